"""The run summary: one long table of headline metrics, written as ``summary.csv``.

Columns are exactly ``strategy, treatment, metric, value, ci_low, ci_high``.
Strategy-level metrics leave ``treatment`` empty. Proportions are in [0, 1], times in
months, counts as counts; the unit is in the metric's name where it is not a proportion.
Rows come in a fixed order (strategies and treatments in their category order, metrics
in the order of `STRATEGY_METRICS` and `treatment_metrics`) and values are rounded to
10 significant digits, so the same tables always give a byte-identical CSV.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.outcomes import first_response, mean_outcomes, patient_outcomes
from analysis.survival import (
    DISCONTINUATION_REASONS,
    cumulative_incidence,
    drug_survival,
    kaplan_meier,
    median_survival,
    survival_at,
)

SUMMARY_COLUMNS = ["strategy", "treatment", "metric", "value", "ci_low", "ci_high"]

#: Patient-level outcomes summarised per strategy: (metric name, outcome column).
STRATEGY_METRICS = (
    ("returned_to_topical_ever", "returned_to_topical_ever"),
    ("on_topical_at_horizon", "on_topical_at_horizon"),
    ("in_supportive_care_at_horizon", "in_supportive_care_at_horizon"),
    ("on_systemic_at_horizon", "on_systemic_at_horizon"),
    ("lost_to_followup", "lost_to_followup"),
    ("died", "died"),
    ("responded_ever", "responded_ever"),
    ("lines_used_mean", "lines_used"),
    ("episodes_mean", "episodes"),
    ("relapses_mean", "relapses"),
    ("months_systemic_mean", "months_systemic"),
    ("months_topical_mean", "months_topical"),
    ("months_supportive_care_mean", "months_supportive_care"),
)

_SIGNIFICANT_DIGITS = 10


def _at(t: float) -> str:
    return f"{t:g}m"


def treatment_metrics(times_months: Sequence[float]) -> list[str]:
    """Names of the per-treatment metrics, in row order, for the given times.

    Parameters
    ----------
    times_months : sequence of float
        Report times in months.

    Returns
    -------
    list of str
    """
    names = ["episodes_n"]
    names += [f"drug_survival_{_at(t)}" for t in times_months]
    names += ["median_drug_survival_months"]
    names += [f"discontinued_{r}_{_at(t)}" for r in DISCONTINUATION_REASONS for t in times_months]
    return names


def summarize_run(
    episodes: pd.DataFrame,
    patients: pd.DataFrame,
    times_months: Sequence[float] = (12, 24, 36),
) -> pd.DataFrame:
    """Headline metrics of a run in long form, for ``summary.csv``.

    Per strategy (``treatment`` empty): ``patients_n``; the proportions
    ``returned_to_topical_ever``, ``on_topical_at_horizon`` (final state topical among
    all patients of the strategy), ``in_supportive_care_at_horizon``,
    ``on_systemic_at_horizon``, ``lost_to_followup``, ``responded_ever``; the means
    ``lines_used_mean``, ``episodes_mean``, ``relapses_mean``, ``months_systemic_mean``,
    ``months_topical_mean``, ``months_supportive_care_mean``;
    ``median_months_to_first_response`` (Kaplan–Meier, from entry to the assessment of
    the first responding episode, censored at the end of follow-up; see
    ``analysis.outcomes.first_response``); first-line drug survival
    ``first_line_drug_survival_<t>m`` and ``first_line_median_drug_survival_months``.

    Per strategy and treatment: ``episodes_n``, ``drug_survival_<t>m`` (Kaplan–Meier,
    any discontinuation is an event, horizon and loss to follow-up censored),
    ``median_drug_survival_months`` (NaN when not reached) and
    ``discontinued_<reason>_<t>m`` (Aalen–Johansen cumulative incidence of each reason).

    Parameters
    ----------
    episodes, patients : pandas.DataFrame
        The run tables (see ``sim/tables.py``).
    times_months : sequence of float
        Times (months since the start of the episode) for drug survival.

    Returns
    -------
    pandas.DataFrame
        Columns ``strategy, treatment, metric, value, ci_low, ci_high``; intervals are
        95% (NaN for counts).
    """
    times = [float(t) for t in times_months]
    strategies = _strategy_rows(episodes, patients, times)
    treatments = _treatment_rows(episodes, times)
    order = _strategy_order(patients, episodes)
    frames = []
    for strategy in order:
        frames.append(strategies[strategies["strategy"] == strategy])
        frames.append(treatments[treatments["strategy"] == strategy])
    out = pd.concat([f for f in frames if len(f)], ignore_index=True)
    out["strategy"] = out["strategy"].astype(object)
    out["treatment"] = out["treatment"].astype(object).where(out["treatment"].notna(), None)
    for column in ("value", "ci_low", "ci_high"):
        out[column] = _round(out[column].to_numpy(dtype=float))
    return out[SUMMARY_COLUMNS]


def _round(values: np.ndarray) -> np.ndarray:
    # Rounding to fixed significant digits keeps the CSV identical when the last bits of
    # a float differ between platforms or NumPy versions.
    return np.array([float(f"{v:.{_SIGNIFICANT_DIGITS}g}") for v in values], dtype=float)


def _strategy_order(patients: pd.DataFrame, episodes: pd.DataFrame) -> list:
    column = patients["strategy"]
    if isinstance(column.dtype, pd.CategoricalDtype):
        seen = _observed(column) | _observed(episodes["strategy"])
        return [c for c in column.cat.categories if c in seen]
    return sorted(set(column) | set(episodes["strategy"].astype(object)))


def _observed(column: pd.Series) -> set:
    """The values that occur in a column (a categorical's from its codes)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy()
        present = np.bincount(codes[codes >= 0], minlength=len(column.cat.categories)) > 0
        return set(column.cat.categories[present])
    return set(column.astype(object))


def _strategy_rows(episodes, patients, times) -> pd.DataFrame:
    first = first_response(episodes, patients)
    outcomes = patient_outcomes(patients, episodes, first)
    names = dict(STRATEGY_METRICS)
    means = mean_outcomes(outcomes, [column for _, column in STRATEGY_METRICS])
    column_to_name = {column: name for name, column in names.items()}
    means = means.assign(metric=means["metric"].map(column_to_name))
    counts = patients.groupby("strategy", observed=True, sort=True).size()
    frames = [
        pd.DataFrame(
            {
                "strategy": counts.index.astype(object),
                "metric": "patients_n",
                "value": counts.to_numpy(dtype=float),
                "ci_low": np.nan,
                "ci_high": np.nan,
            }
        )
    ]
    frames.append(means[["strategy", "metric", "value", "ci_low", "ci_high"]])
    response = median_survival(kaplan_meier(first, "months_observed", "responded", by="strategy"))
    frames.append(_medians(response, "median_months_to_first_response"))
    first_line = episodes[episodes["line"] == 1]
    curve = drug_survival(first_line, by="strategy")
    frames.append(_survival(survival_at(curve, times), "first_line_drug_survival_"))
    frames.append(_medians(median_survival(curve), "first_line_median_drug_survival_months"))
    out = pd.concat(frames, ignore_index=True)
    out["strategy"] = out["strategy"].astype(object)
    out["treatment"] = None
    order = [
        "patients_n",
        *[n for n, _ in STRATEGY_METRICS],
        "median_months_to_first_response",
        *[f"first_line_drug_survival_{_at(t)}" for t in times],
        "first_line_median_drug_survival_months",
    ]
    return _sorted(out, ["strategy"], order)


def _medians(medians: pd.DataFrame, metric: str) -> pd.DataFrame:
    out = medians.rename(columns={"median_months": "value"}).assign(metric=metric)
    return out.drop(columns="subjects")


def _survival(at: pd.DataFrame, prefix: str) -> pd.DataFrame:
    metric = prefix + at["time_months"].map(_at)
    return at.rename(columns={"survival": "value"}).assign(metric=metric.to_numpy())


def _treatment_rows(episodes, times) -> pd.DataFrame:
    by = ["strategy", "treatment"]
    curve = drug_survival(episodes, by=by)
    medians = median_survival(curve)
    counts = medians.rename(columns={"subjects": "value"}).assign(
        metric="episodes_n", ci_low=np.nan, ci_high=np.nan
    )
    incidence = cumulative_incidence(episodes, by=by, times_months=times)
    incidence = incidence.rename(columns={"cumulative_incidence": "value"})
    incidence["metric"] = (
        "discontinued_" + incidence["reason"].astype(str) + "_" + incidence["time_months"].map(_at)
    )
    frames = [
        counts,
        _survival(survival_at(curve, times), "drug_survival_"),
        _medians(medians, "median_drug_survival_months"),
        incidence,
    ]
    columns = [*by, "metric", "value", "ci_low", "ci_high"]
    out = pd.concat([f[columns] for f in frames], ignore_index=True)
    out = out.astype({"strategy": object, "treatment": object})
    treatment_order = _category_order(episodes["treatment"])
    out["treatment_rank"] = out["treatment"].map({t: i for i, t in enumerate(treatment_order)})
    out = _sorted(out, ["strategy", "treatment_rank"], treatment_metrics(times))
    return out.drop(columns="treatment_rank")


def _category_order(column: pd.Series) -> list:
    if isinstance(column.dtype, pd.CategoricalDtype):
        return list(column.cat.categories)
    return sorted(column.astype(object).unique())


def _sorted(frame: pd.DataFrame, keys: list[str], metric_order: list[str]) -> pd.DataFrame:
    rank = {m: i for i, m in enumerate(metric_order)}
    frame = frame.assign(metric_rank=frame["metric"].map(rank))
    frame = frame.sort_values([*keys, "metric_rank"], kind="stable", ignore_index=True)
    return frame.drop(columns="metric_rank")
