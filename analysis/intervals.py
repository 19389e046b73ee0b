"""Confidence intervals for proportions, means and event rates.

A run holds one or several replicates of the same virtual cohort. Within one replicate
patients are independent, so a proportion gets a Wilson interval and a mean a
t-interval over patients. With several replicates the replicate means are the
independent units: the interval is their mean ± t·SE, which stays honest even when the
engine shares something between the patients of a replicate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

#: Default confidence level of every interval in the package.
CONFIDENCE = 0.95

# The quantiles below are the special functions scipy.stats evaluates (norm.ppf, t.ppf,
# chi2.ppf give the same floats) without importing scipy.stats, which takes about half a
# second: every sweep worker and every command would pay it at start-up.


def z_value(confidence: float) -> float:
    """The standard normal quantile of a two-sided `confidence` interval (1.96 for 0.95)."""
    return float(special.ndtri(0.5 + confidence / 2.0))


def student_t_quantile(p: float, df):
    """Quantile `p` of Student's t with `df` degrees of freedom (df >= 1)."""
    return special.stdtrit(df, p)


def chi2_quantile(p: float, df):
    """Quantile `p` of the chi-squared distribution with `df` (> 0) degrees of freedom."""
    return 2 * special.gammaincinv(np.asarray(df, dtype=float) / 2, p)


def wilson_interval(successes, n, confidence: float = CONFIDENCE):
    """Wilson score interval for a binomial proportion.

    Parameters
    ----------
    successes, n : array_like
        Number of patients with the outcome and number of patients (counts).
    confidence : float
        Confidence level, e.g. 0.95.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Lower and upper limits, as proportions in [0, 1]; NaN where ``n == 0``.
    """
    k = np.asarray(successes, dtype=float)
    n = np.asarray(n, dtype=float)
    z = z_value(confidence)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = np.clip(centre - half, 0.0, 1.0)
    high = np.clip(centre + half, 0.0, 1.0)
    # The score interval always contains 0 when k == 0 and 1 when k == n; rounding can
    # leave them a hair off, which would look like a bug in a table.
    low = np.where(k == 0, 0.0, low)
    high = np.where(k == n, 1.0, high)
    return low, high


def t_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Mean of independent values and its Student-t interval.

    Parameters
    ----------
    values : array_like
        Independent observations (any unit; the interval has the same unit).
    confidence : float
        Confidence level.

    Returns
    -------
    (float, float, float)
        Mean, lower and upper limit. The limits are NaN with fewer than two values.
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return np.nan, np.nan, np.nan
    mean = float(x.mean())
    if x.size < 2:
        return mean, np.nan, np.nan
    se = float(x.std(ddof=1)) / np.sqrt(x.size)
    half = float(student_t_quantile(0.5 + confidence / 2.0, x.size - 1)) * se
    return mean, mean - half, mean + half


def poisson_rate_interval(events, exposure, confidence: float = CONFIDENCE):
    """Exact (Garwood) interval for an event rate.

    Parameters
    ----------
    events : array_like
        Event counts.
    exposure : array_like
        Person-time at risk, in the unit the rate is wanted per (e.g. 100 patient-years).
    confidence : float
        Confidence level.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray, numpy.ndarray)
        Rate, lower and upper limit, per unit of ``exposure``.
    """
    k = np.asarray(events, dtype=float)
    e = np.asarray(exposure, dtype=float)
    alpha = 1.0 - confidence
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(k > 0, chi2_quantile(alpha / 2, 2 * k) / 2, 0.0) / e
        high = chi2_quantile(1 - alpha / 2, 2 * k + 2) / 2 / e
        rate = k / e
    return rate, low, high


def _t_quantile(confidence: float, df):
    df = np.asarray(df, dtype=float)
    out = np.full(df.shape, np.nan)
    ok = df >= 1
    out[ok] = student_t_quantile(0.5 + confidence / 2.0, df[ok])
    return out


def t_limits(mean, std, count, confidence: float = CONFIDENCE):
    """Limits mean ± t·SE from a mean, a standard deviation (ddof 1) and a count of
    independent values (arrays or columns of the same shape, in the values' unit); NaN
    with fewer than two values."""
    half = _t_quantile(confidence, count - 1) * std / np.sqrt(count)
    return mean - half, mean + half


def _t_interval_by(means: pd.DataFrame, by: list[str], confidence: float) -> pd.DataFrame:
    """Mean ± t·SE of the independent values in column ``value``, per group."""
    grouped = means.groupby(by, observed=True, sort=True)["value"]
    out = grouped.agg(["mean", "std", "count"]).reset_index()
    low, high = t_limits(out["mean"], out["std"], out["count"], confidence)
    return out.assign(value=out["mean"], ci_low=low, ci_high=high)


def proportion_estimates(
    counts: pd.DataFrame, by: list[str], confidence: float = CONFIDENCE
) -> pd.DataFrame:
    """Proportion per group with the interval the design calls for.

    One replicate in a group: Wilson interval on the pooled counts. Several replicates:
    mean of the replicate proportions ± t·SE across replicates.

    Parameters
    ----------
    counts : pandas.DataFrame
        One row per group and replicate: the ``by`` columns, ``replicate``,
        ``successes`` and ``n`` (counts of patients).
    by : list of str
        Grouping columns (e.g. ``["strategy", "time_months"]``).
    confidence : float
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        The ``by`` columns, ``value`` (proportion), ``ci_low``, ``ci_high``,
        ``patients`` (total n) and ``replicates``, sorted by ``by``.
    """
    grouped = counts.groupby(by, observed=True, sort=True)
    out = grouped.agg(
        successes=("successes", "sum"), patients=("n", "sum"), replicates=("replicate", "nunique")
    ).reset_index()
    low, high = wilson_interval(out["successes"], out["patients"], confidence)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["value"] = out["successes"] / out["patients"]
    out["ci_low"], out["ci_high"] = low, high
    several = out["replicates"] >= 2
    if several.any():
        with np.errstate(invalid="ignore", divide="ignore"):
            per_replicate = counts.assign(value=counts["successes"] / counts["n"])
        across = _t_interval_by(per_replicate, by, confidence)
        across = out[by].merge(across, on=by, how="left")
        for column in ("value", "ci_low", "ci_high"):
            out[column] = np.where(several, across[column], out[column])
        # A t-interval knows nothing of [0, 1]; a proportion cannot leave it.
        out["ci_low"] = out["ci_low"].clip(lower=0.0)
        out["ci_high"] = out["ci_high"].clip(upper=1.0)
    return out[[*by, "value", "ci_low", "ci_high", "patients", "replicates"]]
