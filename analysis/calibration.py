"""Calibration statistics: what a simulated run says about a target, how well it fits,
and the priors and weights of a Bayesian calibration.

A calibration target is a published proportion: a point of a drug-survival curve, the
share of stops for a reason, or the share of patients in a state at a time. It comes
with its precision, either as `n` (a binomial count: the effective number of patients
behind the proportion) or as a standard error `se`. The goodness of fit of a simulated
proportion p to an observed y is a log-likelihood:

- with n: the binomial log-likelihood relative to the saturated model,
  n·[y·log(p/y) + (1−y)·log((1−p)/(1−y))] (zero when p = y; −½ of the deviance);
- with se: the normal log-likelihood −½·((y − p)/se)².

Priors are truncated to the parameter's bounds [low, high]. Sampling-importance-
resampling (Rubin 1988) draws parameter sets from the prior, weights each by its
likelihood and resamples them in proportion to the weights; the effective sample size
(Kish) of the weights says how many distinct draws the result rests on.

Every function here works on the run's tidy tables (see ``sim.tables``) or on plain
numbers; nothing here simulates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from analysis.intervals import wilson_interval, z_value
from analysis.states import state_counts, systemic_state
from analysis.survival import drug_survival, event_reasons, survival_at
from sim.tables import CENSORING_REASONS

PRIOR_FAMILIES = ("uniform", "beta", "gamma", "lognormal", "normal")
_KEYS = ["replicate", "strategy", "patient"]
_SMALLEST = 1e-9  # a simulated proportion of exactly 0 or 1 is read as this far inside (0, 1)


# ------------------------------------------------------------------------- priors


@dataclass(frozen=True)
class Prior:
    """A prior distribution truncated to [low, high], in the parameter's unit.

    `family` is one of `PRIOR_FAMILIES`; `arguments` are (low, high) for uniform,
    (alpha, beta) for beta, (shape, scale) for gamma, (meanlog, sdlog) for lognormal and
    (mean, sd) for normal.
    """

    family: str
    arguments: tuple[float, float]
    low: float
    high: float

    def _frozen(self):
        a, b = self.arguments
        return {
            "uniform": lambda: stats.uniform(loc=a, scale=b - a),
            "beta": lambda: stats.beta(a, b),
            "gamma": lambda: stats.gamma(a, scale=b),
            "lognormal": lambda: stats.lognorm(s=b, scale=np.exp(a)),
            "normal": lambda: stats.norm(loc=a, scale=b),
        }[self.family]()

    def mass(self) -> float:
        """The untruncated prior's probability of [low, high]."""
        dist = self._frozen()
        return float(dist.cdf(self.high) - dist.cdf(self.low))

    def quantile(self, u) -> np.ndarray:
        """Values at cumulative probabilities `u` of the truncated prior."""
        dist = self._frozen()
        lo, hi = dist.cdf(self.low), dist.cdf(self.high)
        return np.clip(dist.ppf(lo + np.asarray(u, dtype=float) * (hi - lo)), self.low, self.high)

    def median(self) -> float:
        """The truncated prior's median."""
        return float(self.quantile(0.5))

    def describe(self) -> str:
        """The prior as text, e.g. `LogNormal(5.67, 0.5) on [100, 1000]`."""
        names = {"uniform": "Uniform", "beta": "Beta", "gamma": "Gamma", "lognormal": "LogNormal",
                 "normal": "Normal"}
        a, b = self.arguments
        return f"{names[self.family]}({a:.4g}, {b:.4g}) on [{self.low:.4g}, {self.high:.4g}]"


def prior_from(family: str, values: dict[str, float], low: float, high: float) -> Prior:
    """Build a `Prior` from the keys a calibration file gives (`mean`/`sd`, `median`/`sdlog`,
    `alpha`/`beta`, `shape`/`scale`, `meanlog`/`sdlog`); uniform takes only the bounds."""
    if family == "uniform":
        return Prior("uniform", (low, high), low, high)
    if family == "beta":
        if "alpha" in values:
            return Prior("beta", (values["alpha"], values["beta"]), low, high)
        mean, sd = values["mean"], values["sd"]
        k = mean * (1 - mean) / sd**2 - 1
        return Prior("beta", (mean * k, (1 - mean) * k), low, high)
    if family == "gamma":
        if "shape" in values:
            return Prior("gamma", (values["shape"], values["scale"]), low, high)
        mean, sd = values["mean"], values["sd"]
        return Prior("gamma", ((mean / sd) ** 2, sd**2 / mean), low, high)
    if family == "lognormal":
        if "mean" in values:
            sdlog2 = np.log1p((values["sd"] / values["mean"]) ** 2)
            return Prior("lognormal", (float(np.log(values["mean"]) - sdlog2 / 2), float(np.sqrt(sdlog2))), low, high)
        meanlog = float(np.log(values["median"])) if "median" in values else values["meanlog"]
        return Prior("lognormal", (meanlog, values["sdlog"]), low, high)
    return Prior("normal", (values["mean"], values["sd"]), low, high)


# ----------------------------------------------------------- simulated targets


@dataclass(frozen=True)
class Estimate:
    """A simulated proportion with its Monte Carlo 95% interval and denominator."""

    value: float
    ci_low: float
    ci_high: float
    n: int


def treatment_episodes(episodes: pd.DataFrame, treatment: str, strategy: str | None = None,
                       line: int | None = None) -> pd.DataFrame:
    """The episodes a drug-survival figure counts: of `treatment` (and `strategy` if given)
    at line `line` (every episode at that line, as `analysis.real_world`'s first_line), or,
    without a line, each patient's first episode of the drug at any line."""
    keep = (episodes["treatment"] == treatment).to_numpy()
    if strategy is not None:
        keep &= (episodes["strategy"] == strategy).to_numpy()
    if line is not None:
        keep &= (episodes["line"] == line).to_numpy()
    chosen = episodes[keep]
    return chosen if line is not None else chosen.drop_duplicates(_KEYS, keep="first")


def drug_survival_curve(episodes: pd.DataFrame, treatment: str, strategy: str | None = None,
                        line: int | None = None) -> pd.DataFrame | None:
    """The Kaplan-Meier drug-survival curve (any discontinuation an event; horizon, loss to
    follow-up and death censor) of the episodes `treatment_episodes` chooses; None if none."""
    chosen = treatment_episodes(episodes, treatment, strategy, line)
    return None if chosen.empty else drug_survival(chosen, by=None)


def survival_estimate(curve: pd.DataFrame | None, at_months: float) -> Estimate:
    """A drug-survival curve read at `at_months` months since the drug's start, with its
    log-log 95% interval and the curve's episodes; NaN without a curve or past its end."""
    if curve is None:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    point = survival_at(curve, [float(at_months)]).iloc[0]
    return Estimate(float(point["survival"]), float(point["ci_low"]), float(point["ci_high"]),
                    int(curve["at_risk"].iloc[0]))


def simulated_drug_survival(episodes: pd.DataFrame, treatment: str, at_months: float,
                            strategy: str | None = None, line: int | None = None) -> Estimate:
    """Kaplan-Meier drug survival of the chosen episodes (`treatment_episodes`) at `at_months`
    months since the drug's start (see `drug_survival_curve` and `survival_estimate`)."""
    return survival_estimate(drug_survival_curve(episodes, treatment, strategy, line), at_months)


def simulated_stop_reason_share(episodes: pd.DataFrame, treatment: str, reason: str | Sequence[str],
                                strategy: str | None = None, line: int | None = None) -> Estimate:
    """Share of the chosen episodes that stopped (not censored by horizon, loss to follow-up
    or death) whose reason is `reason` (a reason, a list, or a name of
    `analysis.survival.EVENT_DEFINITIONS` such as `ineffectiveness`), with a Wilson 95% interval."""
    reasons = treatment_episodes(episodes, treatment, strategy, line)["reason"].astype(str)
    stopped = ~reasons.isin(CENSORING_REASONS)
    n = int(stopped.sum())
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    wanted = event_reasons(reason if isinstance(reason, str) else tuple(reason))
    hits = int((stopped & reasons.isin(wanted)).sum())
    low, high = wilson_interval(hits, n)
    return Estimate(hits / n, float(low), float(high), n)


def simulated_state_occupancy(episodes: pd.DataFrame, patients: pd.DataFrame, state: str, at_months: float,
                              strategy: str | None = None) -> Estimate:
    """Share of patients (of `strategy` if given) in `state` at `at_months` months since entry,
    with a Wilson 95% interval. `state` is a state of `analysis.states` (`topical`,
    `systemic_line_2`, `supportive_care`, ...) or `systemic` (any line)."""
    if strategy is not None:
        patients = patients[(patients["strategy"] == strategy).to_numpy()]
        episodes = episodes[(episodes["strategy"] == strategy).to_numpy()]
    n = len(patients)
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    counts = state_counts(episodes, patients, [float(at_months)])
    names = counts["state"].astype(str)
    systemic = names.str.fullmatch(systemic_state(1).replace("1", r"\d+"))
    inside = systemic if state == "systemic" else names == state
    hits = int(counts.loc[inside, "patients"].sum())
    low, high = wilson_interval(hits, n)
    return Estimate(hits / n, float(low), float(high), n)


# ------------------------------------------------------------- goodness of fit


def log_likelihood(observed, model, n=None, se=None) -> np.ndarray:
    """Per-target log-likelihood of simulated proportions `model` given published `observed`
    proportions with binomial counts `n` (NaN where a target gives `se` instead) or standard
    errors `se`: binomial relative to the saturated model, or normal (see the module).
    A simulated proportion that is NaN (not estimable) gives -inf."""
    y = np.asarray(observed, dtype=float)
    p = np.clip(np.asarray(model, dtype=float), _SMALLEST, 1 - _SMALLEST)
    n = np.full(y.shape, np.nan) if n is None else np.asarray(n, dtype=float)
    se = np.full(y.shape, np.nan) if se is None else np.asarray(se, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        yc = np.clip(y, _SMALLEST, 1 - _SMALLEST)
        binomial = n * (y * np.log(p / yc) + (1 - y) * np.log((1 - p) / (1 - yc)))
        normal = -0.5 * ((y - p) / se) ** 2
    value = np.where(np.isfinite(n), binomial, normal)
    return np.where(np.isnan(np.asarray(model, dtype=float)), -np.inf, value)


def observed_interval(observed: float, n: float | None = None, se: float | None = None) -> tuple[float, float]:
    """The 95% interval of a published proportion: Wilson from (observed·n of n), or
    observed ± 1.96·se clipped to [0, 1]."""
    if n is not None and np.isfinite(n):
        low, high = wilson_interval(observed * n, n)
        return float(low), float(high)
    z = z_value(0.95)
    return max(0.0, observed - z * se), min(1.0, observed + z * se)


def binomial_se(observed: float, n: float) -> float:
    """Standard error sqrt(y(1-y)/n) of a proportion y from n patients."""
    return float(np.sqrt(observed * (1 - observed) / n))


# ------------------------------------------------------ importance resampling


def normalised_weights(log_weights) -> np.ndarray:
    """Importance weights from log-weights, summing to one (all zero weight: NaN)."""
    log_weights = np.asarray(log_weights, dtype=float)
    finite = np.isfinite(log_weights)
    if not finite.any():
        return np.full(log_weights.shape, np.nan)
    w = np.where(finite, np.exp(log_weights - log_weights[finite].max()), 0.0)
    return w / w.sum()


def effective_sample_size(log_weights) -> float:
    """Kish's effective sample size 1/Σw² of normalised importance weights (0 if none)."""
    w = normalised_weights(log_weights)
    return 0.0 if np.isnan(w).any() else float(1.0 / np.sum(w**2))


def resample(log_weights, size: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of `size` draws with replacement in proportion to the importance weights."""
    w = normalised_weights(log_weights)
    return rng.choice(len(w), size=size, replace=True, p=w)


def summary_of_draws(values, probabilities: Sequence[float] = (0.025, 0.5, 0.975)) -> dict[str, float]:
    """Mean and quantiles of accepted values (keys `mean`, `q2.5`, `q50`, `q97.5`)."""
    values = np.asarray(values, dtype=float)
    out = {"mean": float(values.mean())}
    for p in probabilities:
        out[f"q{100 * p:g}"] = float(np.quantile(values, p))
    return out
