"""What each strategy does for its patients: return to topical therapy, lines used,
time to first response and adverse events.

Proportions are over all patients of a strategy (pooled over replicates), so a patient
lost to follow-up before returning to topical therapy counts as not returned: these are
the proportions a cohort study would report, not estimates corrected for loss. Intervals
follow ``analysis.intervals``: Wilson within one replicate, mean ± t·SE of the replicate
values when there are several.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.intervals import poisson_rate_interval, proportion_estimates, t_limits, wilson_interval
from analysis.keys import label_codes, ordered_patient_rows, patient_rows
from analysis.states import horizon_of, monthly_grid, state_counts
from analysis.survival import group_ids, kaplan_meier

#: Measures of return to topical therapy.
TOPICAL_MEASURES = ("returned_to_topical_ever", "on_topical")

_KEYS = ["replicate", "strategy", "patient"]


def topical_return(
    episodes: pd.DataFrame,
    patients: pd.DataFrame,
    times_months: Sequence[float] | None = None,
    confidence: float = 0.95,
    counts: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Return to topical therapy over time, per strategy.

    Parameters
    ----------
    episodes, patients : pandas.DataFrame
        The run tables.
    times_months : sequence of float, optional
        Months since entry; default: every month up to the horizon.
    confidence : float
        Level of the intervals.
    counts : pandas.DataFrame, optional
        ``analysis.states.state_counts`` of these tables at these times, if the caller
        already has it.

    Returns
    -------
    pandas.DataFrame
        ``strategy``, ``measure`` (``returned_to_topical_ever``: had returned to topical
        therapy at least once by that time; ``on_topical``: on topical therapy at that
        time), ``time_months``, ``proportion``, ``ci_low``, ``ci_high``, ``patients``.
    """
    times = np.asarray(
        monthly_grid(horizon_of(patients)) if times_months is None else times_months, dtype=float
    )
    ever = _ever_returned_counts(patients, times)
    on = state_counts(episodes, patients, times) if counts is None else counts
    on = on[on["state"] == "topical"].rename(columns={"patients": "successes"})
    on = on[["strategy", "replicate", "time_months", "successes", "n"]]
    if on.empty:  # nobody ever on topical therapy: the state was dropped
        on = ever.assign(successes=0)
    frames = []
    for measure, counts in zip(TOPICAL_MEASURES, (ever, on)):
        estimate = proportion_estimates(counts, ["strategy", "time_months"], confidence)
        frames.append(estimate.assign(measure=measure))
    out = pd.concat(frames, ignore_index=True).rename(columns={"value": "proportion"})
    out["measure"] = pd.Categorical(out["measure"], categories=TOPICAL_MEASURES)
    columns = ["strategy", "measure", "time_months", "proportion", "ci_low", "ci_high", "patients"]
    return out.sort_values(["strategy", "measure", "time_months"], ignore_index=True)[columns]


def _ever_returned_counts(patients: pd.DataFrame, times: np.ndarray) -> pd.DataFrame:
    frames = []
    for strategy, replicate, months in _by_strategy_and_replicate(patients, "months_to_first_topical"):
        first = np.sort(months.astype(float))
        first = first[~np.isnan(first)]
        frames.append(
            pd.DataFrame(
                {
                    "strategy": strategy,
                    "replicate": replicate,
                    "time_months": times,
                    "successes": np.searchsorted(first, times, side="right"),
                    "n": len(months),
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    out["strategy"] = out["strategy"].astype(patients["strategy"].dtype)
    return out


def _by_strategy_and_replicate(patients: pd.DataFrame, column: str):
    """Yield (strategy, replicate, values of `column`) of each group of patients, as pandas'
    sorted, observed groupby gives them; a categorical strategy is split by its codes (pandas'
    groups copied every column of the patients table: about a second at a million patients)."""
    strategy = patients["strategy"]
    if not isinstance(strategy.dtype, pd.CategoricalDtype):
        needed = patients[["strategy", "replicate", column]]
        for (name, replicate), group in needed.groupby(["strategy", "replicate"], observed=True, sort=True):
            yield name, replicate, group[column].to_numpy()
        return
    codes, replicates = strategy.cat.codes.to_numpy(), patients["replicate"].to_numpy()
    values = patients[column].to_numpy()
    for code in np.unique(codes[codes >= 0]):
        mine = codes == code
        for replicate in np.unique(replicates[mine]):
            yield strategy.cat.categories[code], replicate, values[mine & (replicates == replicate)]


def topical_return_at_horizon(patients: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Return to topical therapy by the end of observation, per strategy.

    Parameters
    ----------
    patients : pandas.DataFrame
        The patients table.
    confidence : float
        Level of the intervals.

    Returns
    -------
    pandas.DataFrame
        ``strategy``, ``measure`` (``returned_to_topical_ever``: returned at least once;
        ``on_topical_at_horizon``: ``final_state == "topical"``), ``proportion``,
        ``ci_low``, ``ci_high``, ``patients``. Denominator: all patients of the strategy.
    """
    # Only the two outcomes and the keys they are counted by, not every outcome column.
    measures = {column: outcome_columns(patients, None, (column,))[column]
                for column in ("returned_to_topical_ever", "on_topical_at_horizon")}
    outcomes = pd.DataFrame({"strategy": patients["strategy"].array, "replicate": patients["replicate"].to_numpy(),
                             **measures})
    frames = [
        _proportion(outcomes, column, confidence).assign(measure=column)
        for column in ("returned_to_topical_ever", "on_topical_at_horizon")
    ]
    out = pd.concat(frames, ignore_index=True).rename(columns={"value": "proportion"})
    columns = ["strategy", "measure", "proportion", "ci_low", "ci_high", "patients"]
    return out.sort_values(["strategy"], kind="stable", ignore_index=True)[columns]


def _proportion(outcomes: pd.DataFrame, column: str, confidence: float) -> pd.DataFrame:
    return proportion_estimates(_successes(outcomes, column), ["strategy"], confidence)


def _successes(outcomes: pd.DataFrame, column: str) -> pd.DataFrame:
    """``strategy``, ``replicate``, ``successes`` (sum of the 0/1 `column`) and ``n`` (rows) per
    observed (strategy, replicate), sorted, as pandas' groupby aggregates them; a categorical
    strategy counted by codes (pandas' grouper took a third of a second at a million patients)."""
    strategy = outcomes["strategy"]
    replicate = outcomes["replicate"].to_numpy()
    values = outcomes[column].to_numpy()
    if not isinstance(strategy.dtype, pd.CategoricalDtype) or replicate.dtype.kind not in "iu" or \
            values.dtype.kind not in "iu" or not len(values):
        return (outcomes.groupby(["strategy", "replicate"], observed=True, sort=True)
                .agg(successes=(column, "sum"), n=(column, "size")).reset_index())
    codes = strategy.cat.codes.to_numpy().astype(np.int64)
    replicates, replicate_index = np.unique(replicate, return_inverse=True)
    kept = codes >= 0
    cell = (codes * len(replicates) + replicate_index)[kept]
    cells = len(strategy.cat.categories) * len(replicates)
    n = np.bincount(cell, minlength=cells)
    # Sums of whole numbers below 2**53: exact as floats in any order.
    successes = np.bincount(cell, weights=values[kept].astype(float), minlength=cells).astype(np.int64)
    observed = np.flatnonzero(n)
    return pd.DataFrame({
        "strategy": pd.Categorical.from_codes(observed // len(replicates), dtype=strategy.dtype),
        "replicate": replicates[observed % len(replicates)],
        "successes": successes[observed],
        "n": n[observed],
    })


def patient_outcomes(patients: pd.DataFrame, episodes: pd.DataFrame | None = None,
                     first: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per patient and strategy with the outcomes compared between strategies.

    Parameters
    ----------
    patients : pandas.DataFrame
        The patients table.
    episodes : pandas.DataFrame, optional
        The episodes table; adds ``responded_ever`` and ``months_to_first_response``.
    first : pandas.DataFrame, optional
        `first_response` of these tables, if the caller already has it.

    Returns
    -------
    pandas.DataFrame
        ``replicate``, ``strategy``, ``patient``, ``returned_to_topical_ever``,
        ``on_topical_at_horizon``, ``in_supportive_care_at_horizon``,
        ``on_systemic_at_horizon``, ``lost_to_followup`` (0/1), ``lines_used``,
        ``episodes``, ``relapses`` (counts), ``months_systemic``, ``months_topical``,
        ``months_supportive_care`` (months), and with episodes ``responded_ever`` (0/1)
        and ``months_to_first_response`` (NaN if never).
    """
    if episodes is not None and first is None:
        first = first_response(episodes, patients)
    responses = None if episodes is None else {name: first[name].to_numpy() for name in _RESPONSE_COLUMNS}
    columns = outcome_columns(patients, responses)
    keys = patients[_KEYS].reset_index(drop=True)
    return pd.concat([keys, pd.DataFrame(columns)], axis=1).set_axis(patients.index)


#: Patient outcomes that count patients in a final state: (outcome column, state).
_FINAL_STATE_OUTCOMES = (
    ("on_topical_at_horizon", "topical"),
    ("in_supportive_care_at_horizon", "supportive_care"),
    ("on_systemic_at_horizon", "systemic"),
    ("lost_to_followup", "lost_to_followup"),
    ("died", "dead"),
)

#: Patient columns carried into the outcomes as floats.
_NUMERIC_OUTCOMES = ("lines_used", "episodes", "relapses", "months_systemic", "months_topical",
                     "months_supportive_care")

#: The columns of `first_response` that `outcome_columns` uses.
_RESPONSE_COLUMNS = ("responded", "months_to_first_response")


def outcome_columns(patients: pd.DataFrame, first: dict | None = None,
                    only: tuple[str, ...] | None = None, compact: bool = False) -> dict[str, np.ndarray]:
    """The outcome columns of `patient_outcomes` (not the keys) as arrays aligned with
    `patients`; `first` holds the `_RESPONSE_COLUMNS` of `first_response` as arrays; `only`:
    just these patient-table outcomes. `compact`: 0/1 outcomes as int8 and counts in the
    patient table's own dtype, not copied (the same values, for estimators that read each
    value as a float; a million-patient summary holds about 0.3 GB less)."""
    wanted = (lambda column: only is None or column in only)  # noqa: E731
    indicator = np.int8 if compact else int
    out = {}
    if wanted("returned_to_topical_ever"):
        out["returned_to_topical_ever"] = patients["months_to_first_topical"].notna().to_numpy().astype(indicator)
    out |= {column: _equals(patients["final_state"], state).astype(indicator) for column, state in _FINAL_STATE_OUTCOMES
            if wanted(column)}
    out |= {column: _numeric(patients[column], compact) for column in _NUMERIC_OUTCOMES if wanted(column)}
    if first is not None:
        out["responded_ever"] = first["responded"].astype(indicator)
        out["months_to_first_response"] = first["months_to_first_response"]
    return out


def _numeric(column: pd.Series, compact: bool) -> np.ndarray:
    """A count or duration column as floats, or (`compact`) as stored when it is a plain
    NumPy number column (no missing values to mark)."""
    if compact and column.dtype.kind in "iuf":
        return column.to_numpy()
    return column.astype(float).to_numpy()


def _equals(column: pd.Series, value: str) -> np.ndarray:
    """Whether each value of a column equals `value` (a categorical's compared through its few
    categories, not row by row as objects; missing values equal nothing)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        matches = np.array([category == value for category in column.cat.categories] + [False], dtype=bool)
        return matches[column.cat.codes.to_numpy()]
    return _values_for_comparison(column) == value


def _values_for_comparison(column: pd.Series) -> np.ndarray:
    """The values of a column as an array to compare with strings (a categorical's through
    its few categories, not row by row as objects)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        categories = np.append(column.cat.categories.to_numpy(dtype=object), None)  # code -1: missing
        return categories[column.cat.codes.to_numpy()]
    return column.astype("object").to_numpy()


def first_response(episodes: pd.DataFrame, patients: pd.DataFrame) -> pd.DataFrame:
    """Time from entry to the first response, per patient.

    The first response is the assessment (``assessed``, months since entry) of the
    first episode with ``responded == True``: the moment the patient was known to be
    controlled. Runs written before ``assessed`` was recorded fall back to the start of
    that episode (the moment the treatment that worked began); the ``definition``
    column says which was used. Patients who never responded are censored at
    ``follow_up_months``.

    Parameters
    ----------
    episodes, patients : pandas.DataFrame
        The run tables.

    Returns
    -------
    pandas.DataFrame
        Rows aligned with ``patients``: ``replicate``, ``strategy``, ``patient``,
        ``responded`` (bool), ``months_to_first_effective_treatment`` (start of the
        first responding episode), ``months_to_first_response`` (its assessment; NaN if
        never), ``months_observed`` (the response time, or follow-up if censored),
        ``definition`` (``"assessment"`` or ``"episode_start"``).
    """
    out = patients[_KEYS].reset_index(drop=True)
    for name, values in first_response_rows(episodes, patients).items():
        out[name] = values
    out["definition"] = "assessment" if "assessed" in episodes.columns else "episode_start"
    return out


def first_response_rows(episodes: pd.DataFrame, patients: pd.DataFrame) -> dict[str, np.ndarray]:
    """The time columns of `first_response` as arrays aligned with `patients` (months)."""
    responding = _true(episodes["responded"])
    start = episodes["start"].to_numpy(dtype=float)
    assessed = episodes["assessed"].to_numpy(dtype=float) if "assessed" in episodes.columns else None
    rows = ordered_patient_rows(episodes, patients)
    if rows is not None:  # tables in the engines' order: one walk, no sort
        from analysis.row_passes import earliest

        started, response = earliest(rows, responding, start, start if assessed is None else assessed,
                                     len(patients))
    else:
        # Rows looked up for the responding episodes only (a patient's row is all they need).
        where = np.flatnonzero(responding)
        rows = patient_rows(episodes[["replicate", "strategy", "patient"]].take(where), patients)
        kept = np.zeros(len(responding), bool)
        kept[where[rows >= 0]] = True
        rows = rows[rows >= 0]
        started = _earliest(rows, start[kept], len(patients))
        response = started if assessed is None else _earliest(rows, assessed[kept], len(patients))
    responded = ~np.isnan(started)
    return {
        "responded": responded,
        "months_to_first_effective_treatment": started,
        "months_to_first_response": response,
        "months_observed": np.where(responded, response, patients["follow_up_months"].to_numpy()),
    }


def _true(column: pd.Series) -> np.ndarray:
    """Whether each value of a (nullable) boolean column is true; missing is false."""
    if isinstance(column.dtype, pd.BooleanDtype):
        return column.to_numpy(dtype=bool, na_value=False)
    return column.fillna(False).astype(bool).to_numpy()


def _earliest(rows: np.ndarray, times: np.ndarray, patients: int) -> np.ndarray:
    """The earliest of `times` (months) per patient row; NaN where there is none."""
    earliest = np.full(patients, np.nan)
    np.fmin.at(earliest, rows, times)
    return earliest


def time_to_first_response(
    episodes: pd.DataFrame, patients: pd.DataFrame, confidence: float = 0.95
) -> pd.DataFrame:
    """Kaplan–Meier curve of the time to first response, per strategy.

    Parameters
    ----------
    episodes, patients : pandas.DataFrame
        The run tables.
    confidence : float
        Level of the pointwise band.

    Returns
    -------
    pandas.DataFrame
        As ``analysis.survival.kaplan_meier`` by ``strategy``: ``survival`` is the
        proportion who have not yet responded (see `first_response` for the definition).
    """
    first = first_response(episodes, patients)
    return kaplan_meier(first, "months_observed", "responded", by="strategy", confidence=confidence)


def lines_used(patients: pd.DataFrame) -> pd.DataFrame:
    """Distribution of the number of lines of therapy used, per strategy.

    Parameters
    ----------
    patients : pandas.DataFrame
        The patients table.

    Returns
    -------
    pandas.DataFrame
        ``strategy``, ``lines_used`` (count), ``patients``, ``proportion`` (of the
        strategy's patients).
    """
    counts = patients.groupby(["strategy", "lines_used"], observed=True, sort=True).size()
    out = counts.rename("patients").reset_index()
    totals = out.groupby("strategy", observed=True)["patients"].transform("sum")
    out["proportion"] = out["patients"] / totals
    return out


def mean_outcomes(
    outcomes: pd.DataFrame, columns: Sequence[str], confidence: float = 0.95
) -> pd.DataFrame:
    """Mean of patient-level outcomes per strategy, with intervals.

    Parameters
    ----------
    outcomes : pandas.DataFrame
        Output of `patient_outcomes` (every patient with a replicate; proportion columns
        0/1 without missing values, as it writes them).
    columns : sequence of str
        Outcome columns; those in `PROPORTION_OUTCOMES` give proportions (Wilson or
        across replicates), the others means (t-interval or across replicates, missing
        values skipped) in their own units.
    confidence : float
        Level of the intervals.

    Returns
    -------
    pandas.DataFrame
        ``strategy``, ``metric``, ``value``, ``ci_low``, ``ci_high``, ``patients``.
    """
    columns = list(columns)
    strategy, keys = group_ids(outcomes, ["strategy"])
    values = {column: outcomes[column].to_numpy() for column in columns}
    estimates = outcome_estimates(strategy, outcomes["replicate"].to_numpy(), values, confidence)
    strategies = pd.Index(keys["strategy"])
    value, low, high, patients = (np.concatenate([estimates[c][i] for c in columns]) for i in range(4))
    return pd.DataFrame({
        "strategy": strategies.take(np.tile(np.arange(len(strategies)), len(columns))),
        "metric": np.repeat(np.array(columns, dtype=object), len(strategies)),
        "value": value, "ci_low": low, "ci_high": high, "patients": patients,
    })


# The estimators below work on arrays, every outcome column at once: a summary of a small
# run would otherwise spend most of its time in per-column pandas overhead. The intervals
# are those of `analysis.intervals` (`proportion_estimates` for proportions).

def outcome_estimates(strategy: np.ndarray, replicate: np.ndarray, values: dict, confidence: float) -> dict:
    """Per outcome column (name -> values per patient): (value, low, high, patients) per
    strategy number (0, 1, ...; -1: left out), as `mean_outcomes` reports them."""
    keep = strategy >= 0
    everyone = bool(keep.all())
    groups = _Groups(strategy if everyone else strategy[keep], replicate if everyone else replicate[keep])
    # One column at a time, each walked once by a compiled pass: no matrix of every patient.
    kept = {column: (array if everyone else array[keep]) for column, array in values.items()}
    estimates = {}
    proportions = [c for c in values if c in PROPORTION_OUTCOMES]
    if proportions:
        estimates |= _proportions(groups, [kept[c] for c in proportions], proportions, confidence)
    means = [c for c in values if c not in PROPORTION_OUTCOMES]
    if means:
        estimates |= _means(groups, [kept[c] for c in means], means, confidence)
    return estimates


class _Groups:
    """Patients numbered by strategy, and by (strategy, replicate) cell in sorted order."""

    def __init__(self, strategy: np.ndarray, replicate: np.ndarray):
        self.strategy = strategy
        self.strategies = int(strategy.max()) + 1 if len(strategy) else 0
        replicate_code = _dense_codes(replicate)[1]
        width = int(replicate_code.max(initial=0)) + 1
        cells, cell = _dense_codes(strategy * width + replicate_code)
        self.cell, self.cells = cell, len(cells)
        self.cell_strategy = cells // width
        self.replicates = np.bincount(self.cell_strategy, minlength=self.strategies)
        self.several = self.replicates >= 2


def _dense_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values, sorted, and each value's position among them (`np.unique` with
    its inverse; by counting when the integers span a short range, as replicates do)."""
    if len(values) and values.dtype.kind in "iu":
        low, high = int(values.min()), int(values.max())
        if high - low <= 2 * len(values) + 1024:
            present = np.bincount(values - low, minlength=high - low + 1) > 0
            number = np.cumsum(present) - 1
            return np.flatnonzero(present) + low, number[values - low]
    distinct, inverse = np.unique(values, return_inverse=True)
    return distinct, inverse.reshape(-1)


def _moments(columns: list[np.ndarray], group: np.ndarray, size: int, spread: bool = True) -> tuple[np.ndarray, ...]:
    """Per group and column (groups × columns): values that are not NaN, sum, mean and
    standard deviation (ddof 1; NaN without `spread`), as pandas' groupby gives the mean and
    deviation."""
    from analysis.row_passes import group_moments  # compiled: imported when first needed

    per_column = [group_moments(column, group, size, spread) for column in columns]
    return tuple(np.stack([moments[i] for moments in per_column], axis=1) for i in range(4))


def _proportions(groups: _Groups, columns: list[np.ndarray], names: list[str], confidence: float) -> dict:
    """Per 0/1 column: (proportion, low, high, patients) per strategy; Wilson on the pooled
    counts, or mean ± t·SE of the replicate proportions (clipped to [0, 1]) with several."""
    # Sums of 0/1 indicators are whole numbers: exact in any order.
    successes = _moments(columns, groups.cell, groups.cells, spread=False)[1]
    n = np.bincount(groups.cell, minlength=groups.cells)
    pooled = _moments(list(successes.T), groups.cell_strategy, groups.strategies, spread=False)[1]
    total = np.bincount(groups.strategy, minlength=groups.strategies)
    several = groups.several
    if several.any():
        count, _, mean, std = _moments(list((successes / n[:, None]).T), groups.cell_strategy, groups.strategies)
    out = {}
    for i, column in enumerate(names):
        k = pooled[:, i]
        with np.errstate(invalid="ignore", divide="ignore"):
            value = k / total
        low, high = wilson_interval(k, total, confidence)
        if several.any():
            t_low, t_high = t_limits(mean[:, i], std[:, i], count[:, i], confidence)
            value = np.where(several, mean[:, i], value)
            # A t-interval knows nothing of [0, 1]; a proportion cannot leave it.
            low = np.maximum(np.where(several, t_low, low), 0.0)
            high = np.minimum(np.where(several, t_high, high), 1.0)
        out[column] = (value, low, high, total)
    return out


def _means(groups: _Groups, columns: list[np.ndarray], names: list[str], confidence: float) -> dict:
    """Per column: (mean, low, high, patients with a value) per strategy; t-interval over
    patients, or mean ± t·SE of the replicate means with several replicates."""
    count, _, mean, std = _moments(columns, groups.strategy, groups.strategies)
    several = groups.several
    if several.any():
        per_replicate = _moments(columns, groups.cell, groups.cells, spread=False)[2]
        across_count, _, across_mean, across_std = _moments(list(per_replicate.T), groups.cell_strategy,
                                                             groups.strategies)
    out = {}
    for i, column in enumerate(names):
        value = mean[:, i]
        low, high = t_limits(value, std[:, i], count[:, i], confidence)
        if several.any():
            t_low, t_high = t_limits(across_mean[:, i], across_std[:, i], across_count[:, i], confidence)
            value = np.where(several, across_mean[:, i], value)
            low, high = np.where(several, t_low, low), np.where(several, t_high, high)
        out[column] = (value, low, high, count[:, i])
    return out


#: Patient outcomes that are 0/1 indicators (their means are proportions).
PROPORTION_OUTCOMES = (
    "returned_to_topical_ever",
    "on_topical_at_horizon",
    "in_supportive_care_at_horizon",
    "on_systemic_at_horizon",
    "lost_to_followup",
    "died",
    "responded_ever",
)


def adverse_event_rates(
    patients: pd.DataFrame,
    adverse_events: pd.DataFrame | None = None,
    episodes: pd.DataFrame | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Adverse events by type per 100 patient-years of follow-up, per strategy.

    Parameters
    ----------
    patients : pandas.DataFrame
        The patients table; follow-up (``follow_up_months``) is the denominator.
    adverse_events : pandas.DataFrame, optional
        The adverse-events table (one row per event).
    episodes : pandas.DataFrame, optional
        Used when ``adverse_events`` is missing (older runs): only the total count per
        episode is known, reported as ``any_adverse_event``.
    confidence : float
        Level of the exact Poisson intervals.

    Returns
    -------
    pandas.DataFrame
        ``strategy``, ``adverse_event`` (each type, then ``any_adverse_event``),
        ``events``, ``patient_years``, ``rate_per_100_patient_years``, ``ci_low``,
        ``ci_high`` (per 100 patient-years).
    """
    years = patients.groupby("strategy", observed=True, sort=True)["follow_up_months"].sum() / 12
    counts = _adverse_event_counts(adverse_events, episodes, "strategy", list(years.index))
    out = counts.assign(patient_years=years.reindex(counts["strategy"]).to_numpy())
    rate, low, high = poisson_rate_interval(out["events"], out["patient_years"] / 100, confidence)
    return out.assign(rate_per_100_patient_years=rate, ci_low=low, ci_high=high)


def adverse_event_rates_on_treatment(
    adverse_events: pd.DataFrame | None,
    episodes: pd.DataFrame,
    by: str = "treatment",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Adverse events by type per 100 patient-years on each treatment.

    Parameters
    ----------
    adverse_events : pandas.DataFrame or None
        The adverse-events table; None for older runs (only totals, from episodes).
    episodes : pandas.DataFrame
        The episodes table; time on treatment (``stop - start``) is the denominator.
    by : str
        Episode column to group by (``"treatment"``; ``"strategy"`` also works).
    confidence : float
        Level of the exact Poisson intervals.

    Returns
    -------
    pandas.DataFrame
        ``by``, ``adverse_event``, ``events``, ``patient_years`` (on treatment),
        ``rate_per_100_patient_years``, ``ci_low``, ``ci_high``.
    """
    exposure = (episodes["stop"] - episodes["start"]).groupby(
        episodes[by], observed=True, sort=True
    ).sum() / 12
    counts = _adverse_event_counts(adverse_events, episodes, by, list(exposure.index))
    out = counts.assign(patient_years=exposure.reindex(counts[by]).to_numpy())
    rate, low, high = poisson_rate_interval(out["events"], out["patient_years"] / 100, confidence)
    return out.assign(rate_per_100_patient_years=rate, ci_low=low, ci_high=high)


def _adverse_event_counts(adverse_events, episodes, by: str, levels: list) -> pd.DataFrame:
    """Events per ``by`` level and type, plus an ``any_adverse_event`` row per level."""
    if adverse_events is not None:
        types = _levels(adverse_events["adverse_event"])
        # Counted by codes (a bincount), not by a crosstab of the names of millions of events.
        level = label_codes(adverse_events[by], pd.Index(levels))
        kind = label_codes(adverse_events["adverse_event"], pd.Index(types))
        known = (level >= 0) & (kind >= 0)
        counts = np.bincount(level[known] * len(types) + kind[known], minlength=len(levels) * len(types))
        table = pd.DataFrame(counts.reshape(len(levels), len(types)), index=pd.Index(levels), columns=types)
        table["any_adverse_event"] = table.sum(axis=1)
    elif episodes is not None:
        total = episodes.groupby(episodes[by].astype(object), sort=False)["adverse_events"].sum()
        table = pd.DataFrame({"any_adverse_event": total.reindex(levels, fill_value=0)})
    else:
        raise ValueError("adverse-event rates need the adverse_events or the episodes table")
    table.index.name, table.columns.name = by, "adverse_event"
    out = table.stack().rename("events").reset_index()
    out[by] = pd.Categorical(out[by], categories=levels)
    out["adverse_event"] = pd.Categorical(out["adverse_event"], categories=list(table.columns))
    out["events"] = out["events"].astype(np.int64)
    return out.sort_values([by, "adverse_event"], ignore_index=True)


def _levels(column: pd.Series) -> list:
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy()
        used = np.bincount(codes[codes >= 0], minlength=len(column.cat.categories)) > 0
        return [c for c, present in zip(column.cat.categories, used) if present]
    return sorted(column.astype(object).unique())
