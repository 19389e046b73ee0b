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

from analysis.outcomes import first_response_rows, outcome_columns, outcome_estimates
from analysis.survival import (
    DISCONTINUATION_REASONS,
    cause_codes,
    estimates_at,
    group_ids,
    z_value,
    episode_durations,
)
from sim.tables import REPORT_TIMES_MONTHS

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
    times_months: Sequence[float] = REPORT_TIMES_MONTHS,
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
    rows = _Rows()
    # Months on the drug and the reason for stopping, shared by both episode walks.
    stops = (episode_durations(episodes), cause_codes(episodes["reason"], DISCONTINUATION_REASONS))
    _strategy_rows(rows, episodes, patients, times, stops)
    _treatment_rows(rows, episodes, times, stops)
    return rows.table(_strategy_order(patients, episodes), _category_order(episodes["treatment"]),
                      _strategy_metrics(times), treatment_metrics(times))


class _Rows:
    """The summary's rows, gathered block by block as arrays and put in order once.

    Rows come per strategy (in `order`): its own rows, then its treatments' rows
    (treatments in their category order), each by metric in the documented order;
    rows that tie keep the order they were added in.
    """

    def __init__(self):
        self.blocks: list[dict] = []

    def add(self, strategy, metric, value, low, high, treatment=None) -> None:
        """Add rows: `strategy` and `treatment` labels (treatment None: strategy rows), the
        metric names, and value with its interval (NaN: none)."""
        count = len(value)
        labels = np.full(count, None, dtype=object) if treatment is None else np.asarray(treatment, dtype=object)
        self.blocks.append({
            "strategy": np.asarray(strategy, dtype=object),
            "treatment": labels,
            "of_treatment": np.full(count, treatment is not None),
            "metric": np.broadcast_to(np.asarray(metric, dtype=object), (count,)),
            "value": np.asarray(value, dtype=float),
            "ci_low": np.broadcast_to(np.asarray(low, dtype=float), (count,)),
            "ci_high": np.broadcast_to(np.asarray(high, dtype=float), (count,)),
        })

    def table(self, order: list, treatments: list, strategy_metrics: list, per_treatment: list) -> pd.DataFrame:
        """The rows in summary order as ``SUMMARY_COLUMNS``, values rounded."""
        columns = {name: np.concatenate([block[name] for block in self.blocks]) for name in self.blocks[0]}
        last = len(columns["value"])  # rank of anything not listed: after everything listed
        of_treatment = columns["of_treatment"]
        strategy = _ranks(columns["strategy"], order, -1)
        treatment = np.where(of_treatment, _ranks(columns["treatment"], treatments, last), -1)
        metric = np.where(of_treatment, _ranks(columns["metric"], per_treatment, last),
                          _ranks(columns["metric"], strategy_metrics, last))
        rows = np.lexsort((np.arange(len(metric)), metric, treatment, of_treatment, strategy))
        rows = rows[strategy[rows] >= 0]
        out = {name: columns[name][rows] for name in ("strategy", "treatment", "metric")}
        out |= {name: _round(columns[name][rows]) for name in ("value", "ci_low", "ci_high")}
        return pd.DataFrame(out, columns=SUMMARY_COLUMNS)


def _ranks(labels: np.ndarray, listed: list, unlisted: int) -> np.ndarray:
    """Position of each label in `listed` (`unlisted` where it is not there)."""
    rank = {label: i for i, label in enumerate(listed)}
    return np.fromiter((rank.get(label, unlisted) for label in labels), dtype=np.int64, count=len(labels))


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


def _strategy_metrics(times: list[float]) -> list[str]:
    """Names of the per-strategy metrics, in row order."""
    return [
        "patients_n",
        *[name for name, _ in STRATEGY_METRICS],
        "median_months_to_first_response",
        *[f"first_line_drug_survival_{_at(t)}" for t in times],
        "first_line_median_drug_survival_months",
    ]


def _strategy_rows(rows: _Rows, episodes: pd.DataFrame, patients: pd.DataFrame, times: list[float],
                   stops: tuple) -> None:
    """Add each strategy's own rows: patients, outcome means, first response, first-line drug survival."""
    strategy, keys = group_ids(patients, ["strategy"])
    names = _labels(keys, "strategy")
    rows.add(names, "patients_n", np.bincount(strategy[strategy >= 0], minlength=len(names)).astype(float),
             np.nan, np.nan)
    first = first_response_rows(episodes, patients)
    estimates = outcome_estimates(strategy, patients["replicate"].to_numpy(),
                                   outcome_columns(patients, first, compact=True), _CONFIDENCE)
    for name, column in STRATEGY_METRICS:
        rows.add(names, name, *estimates[column][:3])
    responded = np.where(first["responded"], 0, -1)
    response = estimates_at(first["months_observed"], responded, strategy, 1, [], _Z, incidence=False)
    _add_medians(rows, response, names, None, "median_months_to_first_response")
    _first_line_rows(rows, episodes, times, stops)


def _first_line_rows(rows: _Rows, episodes: pd.DataFrame, times: list[float], stops: tuple) -> None:
    """Add each strategy's drug survival of its first line."""
    strategy, keys = group_ids(episodes, ["strategy"])
    names = _labels(keys, "strategy")
    first_line = np.where(episodes["line"].to_numpy() == 1, strategy, -1)
    curve = _episode_estimates(stops, first_line, times, incidence=False)
    _add_survival(rows, curve, times, names, None, "first_line_drug_survival_")
    _add_medians(rows, curve, names, None, "first_line_median_drug_survival_months")


def _treatment_rows(rows: _Rows, episodes: pd.DataFrame, times: list[float], stops: tuple) -> None:
    """Add the rows of each strategy's treatments: episodes, drug survival, reasons for stopping."""
    group, keys = group_ids(episodes, ["strategy", "treatment"])
    strategies, treatments = _labels(keys, "strategy"), _labels(keys, "treatment")
    # Drug survival counts every reason for stopping as an event: one walk over the
    # episodes sorted by group and reason gives it and the competing reasons' incidences.
    at = _episode_estimates(stops, group, times, incidence=True)
    g = at["group"]
    rows.add(strategies[g], "episodes_n", at["subjects"], np.nan, np.nan, treatments[g])
    _add_survival(rows, at, times, strategies, treatments, "drug_survival_")
    _add_medians(rows, at, strategies, treatments, "median_drug_survival_months")
    _add_incidence(rows, at, times, strategies, treatments)


#: Level of every interval of the summary, and its normal quantile.
_CONFIDENCE = 0.95
_Z = z_value(_CONFIDENCE)


def _episode_estimates(stops: tuple, group: np.ndarray, times: list[float], incidence: bool) -> dict:
    """`estimates_at` of the episodes in `group` (-1: left out) at `times` (months); `stops`
    holds every episode's months on the drug and its cause (the reason for stopping)."""
    durations, cause = stops
    return estimates_at(durations, cause, group, len(DISCONTINUATION_REASONS), times, _Z, incidence=incidence)


def _labels(keys: pd.DataFrame, column: str) -> np.ndarray:
    """The labels of one key column of `group_ids`, by group number."""
    return keys[column].to_numpy(dtype=object)


def _add_medians(rows: _Rows, at: dict, strategies, treatments, metric: str) -> None:
    """Add the median of every curve of an `estimates_at` (`treatments` None: strategy rows)."""
    g = at["group"]
    rows.add(strategies[g], metric, at["median_months"], at["median_ci_low"], at["median_ci_high"],
             None if treatments is None else treatments[g])


def _add_incidence(rows: _Rows, at: dict, times: list[float], strategies, treatments) -> None:
    """Add the cumulative incidence of every reason at `times` (rows of an `estimates_at`: each
    group at each time, a column per reason)."""
    g = np.repeat(at["group"], len(times) * len(DISCONTINUATION_REASONS))
    metric = np.array([f"discontinued_{r}_{_at(t)}" for t in times for r in DISCONTINUATION_REASONS], dtype=object)
    rows.add(strategies[g], np.tile(metric, len(at["group"])),
             *(at[name].ravel() for name in ("cumulative_incidence", "incidence_ci_low", "incidence_ci_high")),
             treatments[g])


def _add_survival(rows: _Rows, at: dict, times: list[float], strategies, treatments, prefix: str) -> None:
    """Add every curve's survival at `times` (`treatments` None: strategy rows)."""
    g = np.repeat(at["group"], len(times))
    metric = np.array([prefix + _at(t) for t in times], dtype=object)
    rows.add(strategies[g], np.tile(metric, len(at["group"])), at["survival"].ravel(), at["ci_low"].ravel(),
             at["ci_high"].ravel(), None if treatments is None else treatments[g])


def _category_order(column: pd.Series) -> list:
    if isinstance(column.dtype, pd.CategoricalDtype):
        return list(column.cat.categories)
    return sorted(column.astype(object).unique())
