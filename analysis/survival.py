"""Drug survival: how long patients stay on a treatment, and why they stop.

Drug survival is the Kaplan–Meier estimate of the time on a treatment episode
(``stop - start``, in months), by any grouping of the episodes table. Which reasons count
as stopping is one argument (`EVENT_DEFINITIONS`); the reasons ``horizon`` and
``lost_to_followup`` always censor. Because 1 − KM for one reason (adverse events
only, say) overstates how many stopped for that reason when others compete, the
cumulative incidence of every reason is also estimated as competing risks
(Aalen–Johansen); the incidences of all reasons plus the all-cause KM sum to one.

The estimators are written on sorted NumPy arrays so that a million episodes in any
number of groups take well under a second.

Conventions, as in R ``survival`` and lifelines:

- 95% intervals on the log–log scale with Greenwood's variance ("exponential
  Greenwood"), so they stay in [0, 1].
- The median is the first time the curve is at or below 0.5, or, where the curve is
  flat at exactly 0.5, the midpoint of that flat (to the next step, or to the last time
  at the end of the curve), as R's ``quantile.survfit``; its interval is where the lower
  and upper limits of the band cross 0.5 by the same rule (Brookmeyer–Crowley read off
  the log–log band). NaN when not reached: the upper limit is often missing.
- Where the estimate is 0 the log–log limits are undefined and missing (NaN), as in R.
  Where it is 1 (before the first event) R leaves them missing too; here they are 1.
- Survival at a time after the last observed duration of a group is not estimable and
  is NaN (unless the curve has already reached 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from analysis.intervals import z_value
from sim.tables import CENSORING_REASONS, REASONS, REPORT_TIMES_MONTHS

#: Reasons that end an episode (everything that is not censoring), in table order.
DISCONTINUATION_REASONS = tuple(r for r in REASONS if r not in CENSORING_REASONS)

#: Named event definitions for drug survival: which reasons count as stopping the drug.
#: Reasons not listed censor the episode at its stop time.
EVENT_DEFINITIONS = {
    "any_discontinuation": DISCONTINUATION_REASONS,
    "excluding_remission": tuple(r for r in DISCONTINUATION_REASONS if r != "remission"),
    "adverse_event": ("adverse_event",),
    "ineffectiveness": ("nonresponse", "loss_of_response"),
}

#: Columns of a drug-survival curve besides the grouping columns.
CURVE_COLUMNS = (
    "time_months",
    "at_risk",
    "events",
    "censored",
    "survival",
    "standard_error",
    "ci_low",
    "ci_high",
)

#: Columns of a cumulative-incidence table besides the grouping columns.
INCIDENCE_COLUMNS = (
    "time_months",
    "reason",
    "at_risk",
    "events",
    "cumulative_incidence",
    "standard_error",
    "ci_low",
    "ci_high",
)


# --------------------------------------------------------------------------- inputs


def event_reasons(event: str | Iterable[str] = "any_discontinuation") -> tuple[str, ...]:
    """Reasons that count as stopping the drug for a named definition or explicit list.

    Parameters
    ----------
    event : str or iterable of str
        A key of `EVENT_DEFINITIONS` (``"any_discontinuation"``,
        ``"excluding_remission"``, ``"adverse_event"``, ``"ineffectiveness"``) or an
        explicit collection of reasons from ``sim.tables.REASONS``.

    Returns
    -------
    tuple of str
        The event reasons; every other reason censors.
    """
    if isinstance(event, str):
        if event in EVENT_DEFINITIONS:
            return EVENT_DEFINITIONS[event]
        if event not in DISCONTINUATION_REASONS:
            raise ValueError(
                f"unknown event definition {event!r}; use one of "
                f"{sorted(EVENT_DEFINITIONS)} or reasons from {DISCONTINUATION_REASONS}"
            )
        return (event,)
    reasons = tuple(event)
    unknown = [r for r in reasons if r not in DISCONTINUATION_REASONS]
    if unknown:
        raise ValueError(
            f"reasons {unknown} cannot be events; {CENSORING_REASONS} always censor "
            f"and the others are {DISCONTINUATION_REASONS}"
        )
    return reasons


def with_patient_columns(
    episodes: pd.DataFrame, patients: pd.DataFrame, columns: Sequence[str] = ("age_group",)
) -> pd.DataFrame:
    """Add patient columns (age group, covariates) to every episode of that patient.

    Parameters
    ----------
    episodes : pandas.DataFrame
        The episodes table.
    patients : pandas.DataFrame
        The patients table (one row per replicate, strategy and patient).
    columns : sequence of str
        Patient columns to add, e.g. ``("age_group",)``.

    Returns
    -------
    pandas.DataFrame
        The episodes with the extra columns, in the original episode order.
    """
    keys = ["replicate", "strategy", "patient"]
    extra = patients[keys + [c for c in columns if c not in keys]]
    return episodes.merge(extra, on=keys, how="left", validate="many_to_one")


def episode_durations(episodes: pd.DataFrame) -> np.ndarray:
    """Months on treatment of every episode (``stop - start``).

    Parameters
    ----------
    episodes : pandas.DataFrame
        The episodes table.

    Returns
    -------
    numpy.ndarray
        Durations in months, float64.
    """
    return episodes["stop"].to_numpy(dtype=float) - episodes["start"].to_numpy(dtype=float)


# ---------------------------------------------------------------- grouped arrays


def _as_list(by) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


def group_ids(frame: pd.DataFrame, by: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Group number of every row (-1 where a key is missing) and the keys of each group."""
    if not by:
        return np.zeros(len(frame), dtype=np.int64), pd.DataFrame(index=range(1))
    if all(isinstance(frame[column].dtype, pd.CategoricalDtype) for column in by):
        return _categorical_group_ids(frame, by)
    grouper = frame.groupby(by, observed=True, sort=True, dropna=True)
    ids = grouper.ngroup().to_numpy(dtype=np.int64)
    keys = grouper.size().reset_index()[by]
    return ids, keys


def _categorical_group_ids(frame: pd.DataFrame, by: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """`group_ids` for categorical keys, from their codes (as pandas groups them: observed
    combinations in category order, missing keys dropped), without pandas' grouper."""
    sizes = [len(frame[column].cat.categories) for column in by]
    possible = int(np.prod(sizes, dtype=object))
    if len(by) <= 2 and possible <= 2 * len(frame) + 1024:
        return _compiled_group_ids(frame, by, sizes, possible)
    codes = [frame[column].cat.codes.to_numpy().astype(np.int64) for column in by]
    combined = np.zeros(len(frame), dtype=np.int64)
    for code, size in zip(codes, sizes):
        combined = combined * size + code
    missing = np.logical_or.reduce([code < 0 for code in codes])
    ids = np.full(len(frame), -1, dtype=np.int64)
    valid = combined[~missing]
    if possible <= 2 * len(valid) + 1024:
        # Few possible combinations (strategy × treatment): counting them beats sorting rows.
        present = np.bincount(valid, minlength=possible) > 0
        observed = np.flatnonzero(present)
        ids[~missing] = (np.cumsum(present) - 1)[valid]
    else:
        observed, ids[~missing] = np.unique(valid, return_inverse=True)
    return ids, _observed_keys(frame, by, sizes, observed)


def _observed_keys(frame: pd.DataFrame, by: list[str], sizes: list[int], observed: np.ndarray) -> pd.DataFrame:
    """The key columns of the observed combined codes (in the order of `observed`)."""
    keys = {}
    for column, size in zip(reversed(by), reversed(sizes)):
        observed, code = np.divmod(observed, size)
        keys[column] = pd.Categorical.from_codes(code, dtype=frame[column].dtype)
    return pd.DataFrame({column: keys[column] for column in by})


def _compiled_group_ids(frame: pd.DataFrame, by: list[str], sizes: list[int], possible: int):
    """`_categorical_group_ids` of one or two keys with few possible combinations, in two
    compiled passes over the codes (no temporary arrays of all rows)."""
    from analysis import row_passes

    codes = [frame[column].cat.codes.to_numpy() for column in by]
    second = codes[1] if len(by) == 2 else np.zeros(0, dtype=codes[0].dtype)
    combined, present = row_passes.combined_codes(codes[0], second, sizes[-1], possible)
    ids = row_passes.renumbered(combined, np.cumsum(present) - 1)
    return ids, _observed_keys(frame, by, sizes, np.flatnonzero(present))


def _group_bounds(group: np.ndarray):
    """(start, stop) of each run of equal, contiguous group numbers."""
    if len(group) == 0:
        return []
    cuts = np.flatnonzero(group[1:] != group[:-1]) + 1
    return zip(np.concatenate([[0], cuts]), np.append(cuts, len(group)))


def _passes():
    """The compiled passes (imported on first use: Numba takes half a second to import)."""
    from analysis import survival_passes

    return survival_passes


def _buckets(durations, cause, group, n_causes):
    """`survival_passes.sorted_by_bucket` of the rows, with the number of groups."""
    durations = np.asarray(durations, dtype=float)
    cause, group = np.asarray(cause, dtype=np.int64), np.asarray(group, dtype=np.int64)
    n_groups = int(group.max()) + 1 if len(group) else 0
    return (*_passes().sorted_by_bucket(durations, cause, group, max(n_groups, 0), n_causes), max(n_groups, 0))


def event_table(durations, cause, group, n_causes):
    """Distinct (group, time) rows with at-risk, censored and per-cause event counts.

    ``durations`` in months; ``cause`` is the index of the event cause of each observation,
    -1 when censored; rows with ``group`` -1 or a missing duration are left out. Rows come
    sorted by group then time.
    """
    times, starts, n_groups = _buckets(durations, cause, group, n_causes)
    names = ("group", "time", "at_risk", "events", "censored", "by_cause", "first")
    return dict(zip(names, _passes().event_rows(times, starts, n_groups, n_causes)))


def estimates_at(durations, cause, group, n_causes: int, times_months, z: float, incidence: bool = True) -> dict:
    """Kaplan–Meier (every cause an event) and Aalen–Johansen estimates of every group at chosen
    times, with the median, from one sort and one walk, without the table of all times.

    Returns per group with observations (``group``, ascending): ``subjects``; ``survival``,
    ``ci_low``, ``ci_high`` (groups × times; as `survival_at`); ``median_months``,
    ``median_ci_low``, ``median_ci_high`` (as `median_survival`); with `incidence`,
    ``cumulative_incidence``, ``standard_error``, ``incidence_ci_low``, ``incidence_ci_high``
    ((groups × times) × causes, as `cumulative_incidence` with ``times_months``).
    """
    times = np.asarray(times_months, dtype=float)
    ascending = np.argsort(times, kind="stable")
    sorted_times, starts, n_groups = _buckets(durations, cause, group, n_causes)
    subjects, survival, greenwood, crossings, aj, variance = _passes().estimates_at(
        sorted_times, starts, n_groups, n_causes, times[ascending], z, 0.5, _TOLERANCE, incidence)
    del sorted_times
    present = np.flatnonzero(subjects > 0)
    unsort = np.argsort(ascending)
    km = _km_columns(survival[present][:, unsort], greenwood[present][:, unsort], z)
    out = {"group": present, "subjects": subjects[present], "survival": km["survival"], "ci_low": km["ci_low"],
           "ci_high": km["ci_high"], "median_months": crossings[present, 0], "median_ci_low": crossings[present, 1],
           "median_ci_high": crossings[present, 2]}
    if incidence:
        band = _with_band({"incidence": aj[present][:, unsort].reshape(-1, n_causes),
                           "variance": variance[present][:, unsort].reshape(-1, n_causes)}, z)
        out |= {"cumulative_incidence": band["cumulative_incidence"], "standard_error": band["standard_error"],
                "incidence_ci_low": band["ci_low"], "incidence_ci_high": band["ci_high"]}
    return out


def cause_codes(reasons: pd.Series, causes: Sequence[str]) -> np.ndarray:
    """Index of each episode's reason in ``causes``; -1 for reasons that censor."""
    if isinstance(reasons.dtype, pd.CategoricalDtype):
        index = {cause: i for i, cause in enumerate(causes)}
        lookup = np.array([index.get(c, -1) for c in reasons.cat.categories] + [-1], dtype=np.int64)
        return lookup[reasons.cat.codes.to_numpy()]  # code −1 (missing) picks the final −1
    values = reasons.astype("object").to_numpy()
    codes = np.full(len(values), -1, dtype=np.int64)
    for i, cause in enumerate(causes):
        codes[values == cause] = i
    return codes


def _loglog_band(estimate, standard_error_of_log, z):
    """Limits of ``estimate`` on the log–log scale; ``standard_error_of_log`` is SE(log p)."""
    # Computed on every value and then kept only inside (0, 1) (0 and 1, and NaN, are their
    # own limits): the same floats as on the values inside alone, without gathering and
    # scattering millions of them (one curve row per episode on a large run).
    estimate = np.asarray(estimate, dtype=float)
    outside = ~((estimate > 0) & (estimate < 1))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        sigma = np.log(estimate)
        np.abs(sigma, out=sigma)
        np.divide(standard_error_of_log, sigma, out=sigma)
        exponent = np.multiply(sigma, z)
        low = np.power(estimate, np.exp(exponent, out=exponent), out=exponent)
        np.multiply(sigma, -z, out=sigma)
        high = np.power(estimate, np.exp(sigma, out=sigma), out=sigma)
    np.copyto(low, estimate, where=outside)
    np.copyto(high, estimate, where=outside)
    return low, high


def _frame(keys: pd.DataFrame, group: np.ndarray, columns: dict) -> pd.DataFrame:
    data = {name: keys[name].take(group).reset_index(drop=True) for name in keys.columns}
    # copy=False: these arrays are fresh; copying millions of rows again costs seconds.
    return pd.DataFrame({**data, **columns}, copy=False)


# ------------------------------------------------------------------ Kaplan–Meier


def _km_columns(survival: np.ndarray, greenwood: np.ndarray, z: float) -> dict:
    """Survival, its Greenwood standard error and log–log limits from the Kaplan–Meier
    product and the Greenwood sum Σ d / (n (n − d)) (arrays of the same shape)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        root = np.sqrt(greenwood)
        standard_error = survival * root
    not_positive = ~(survival > 0)
    np.copyto(standard_error, np.nan, where=not_positive)
    low, high = _loglog_band(survival, root, z)
    # At S = 0 the log-log limits are undefined: R's survfit leaves them missing.
    np.copyto(low, np.nan, where=not_positive)
    np.copyto(high, np.nan, where=not_positive)
    return {"survival": survival, "standard_error": standard_error, "ci_low": low, "ci_high": high}


def kaplan_meier(
    frame: pd.DataFrame,
    duration: str,
    event: str,
    by: str | Sequence[str] | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Kaplan–Meier curves of any time-to-event column, one per group.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per subject (episode, patient...).
    duration : str
        Column with the time to the event or censoring, in months.
    event : str
        Boolean column: True if the event was observed, False if censored.
    by : str, sequence of str or None
        Grouping columns (``None``: one curve).
    confidence : float
        Level of the pointwise log–log confidence band.

    Returns
    -------
    pandas.DataFrame
        As `drug_survival`.
    """
    by = _as_list(by)
    group, keys = group_ids(frame, by)
    cause = np.where(frame[event].to_numpy(dtype=bool), 0, -1)
    return _curves(frame[duration].to_numpy(dtype=float), cause, group, keys, confidence)


_CURVE_ARRAYS = ("group", "time", "at_risk", "events", "censored", "survival", "standard_error", "ci_low", "ci_high")


#: The `km_curves` array of a curve column named differently.
_ARRAY_OF = {"time_months": "time"}


def _curves(durations, cause, group, keys, confidence) -> pd.DataFrame:
    return _curve_frame(keys, km_curves(event_table(durations, cause, group, 1), z_value(confidence)))


def _curve_frame(keys: pd.DataFrame, curve: dict) -> pd.DataFrame:
    """The drug-survival frame of `km_curves` arrays (their group numbers index `keys`)."""
    names = _CURVE_ARRAYS[2:]
    return _frame(keys, curve["group"], {"time_months": curve["time"], **{name: curve[name] for name in names}})


def km_curves(table: dict, z: float) -> dict:
    """An `event_table` (any number of causes; every cause is an event) with its time-0
    rows and the Kaplan–Meier columns of `_km_columns`; without the counts by cause."""
    names = ("group", "time", "at_risk", "events", "censored", "first")
    *columns, survival, greenwood = _passes().km_rows(*(table[name] for name in names))
    return {**dict(zip(names, columns)), **_km_columns(survival, greenwood, z)}


def drug_survival(
    episodes: pd.DataFrame,
    by: str | Sequence[str] | None = ("strategy", "treatment"),
    event: str | Iterable[str] = "any_discontinuation",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Kaplan–Meier drug survival curves, one per group of episodes.

    Parameters
    ----------
    episodes : pandas.DataFrame
        The episodes table (see ``sim.tables``); any extra grouping column (e.g.
        ``age_group`` from `with_patient_columns`) may be used in ``by``.
    by : str, sequence of str or None
        Columns defining the groups (``None`` or ``[]``: all episodes together).
    event : str or iterable of str
        Which reasons count as stopping the drug; see `event_reasons`. Default: any
        discontinuation (``horizon`` and ``lost_to_followup`` censored).
    confidence : float
        Level of the pointwise log–log confidence band.

    Returns
    -------
    pandas.DataFrame
        Tidy curve: the ``by`` columns, then ``time_months`` (each distinct episode
        duration, plus 0), ``at_risk`` (episodes still on the drug just before that
        time), ``events``, ``censored``, ``survival`` (proportion still on the drug),
        ``standard_error`` (Greenwood), ``ci_low``, ``ci_high``. Sorted by group, then
        time.
    """
    group, keys = group_ids(episodes, _as_list(by))
    cause = np.where(cause_codes(episodes["reason"], event_reasons(event)) >= 0, 0, -1)
    return _curves(episode_durations(episodes), cause, group, keys, confidence)


def drug_survival_in_parts(
    episodes: pd.DataFrame,
    by: Sequence[str] = ("strategy", "treatment"),
    event: str | Iterable[str] = "any_discontinuation",
    confidence: float = 0.95,
    columns: Sequence[str] = CURVE_COLUMNS,
) -> pd.DataFrame:
    """`drug_survival` of the episodes, the same rows, made one value of the first ``by``
    column at a time: only that part's sorted durations and curve rows are in memory besides
    the result (at a million patients the intermediate tables of every episode at once took
    about 1.5 GB), and no part of the episodes table is copied. ``columns``: which of
    `CURVE_COLUMNS` to keep (with the ``by`` columns), the others never joined."""
    by = _as_list(by)
    group, keys = group_ids(episodes, by)
    cause = np.where(cause_codes(episodes["reason"], event_reasons(event)) >= 0, 0, -1)
    durations = episode_durations(episodes)
    first = _codes(keys[by[0]]) if len(by) else np.zeros(len(keys), dtype=np.int64)
    z, parts = z_value(confidence), []
    kept = ["group", *(_ARRAY_OF.get(column, column) for column in columns)]
    part = np.where(group >= 0, first[np.maximum(group, 0)], -1)  # of every row
    for code in np.unique(first):
        # Each curve depends only on its own episodes: the other groups are left out (-1).
        mine = np.where(part == code, group, -1)
        curve = km_curves(event_table(durations, cause, mine, 1), z)
        parts.append({name: curve[name] for name in kept})
        del mine, curve
    if not parts:
        return _curves(durations, cause, group, keys, confidence)[[*by, *columns]]
    # The parts' arrays joined, then one frame (joining frames cost a second at 8M rows).
    joined = {name: np.concatenate([part.pop(name) for part in parts]) for name in kept}
    return _frame(keys, joined.pop("group"), {column: joined.pop(_ARRAY_OF.get(column, column)) for column in columns})


# ------------------------------------------------------------ competing risks


def cumulative_incidence(
    episodes: pd.DataFrame,
    by: str | Sequence[str] | None = ("strategy", "treatment"),
    confidence: float = 0.95,
    times_months: Sequence[float] | None = None,
) -> pd.DataFrame:
    """Cumulative incidence of each discontinuation reason (Aalen–Johansen).

    Every reason in `DISCONTINUATION_REASONS` competes with the others; ``horizon`` and
    ``lost_to_followup`` censor. At every time the incidences of all reasons plus the
    any-discontinuation drug survival sum to one.

    Parameters
    ----------
    episodes : pandas.DataFrame
        The episodes table.
    by : str, sequence of str or None
        Grouping columns, as in `drug_survival`.
    confidence : float
        Level of the pointwise interval (delta method on the log–log scale, variance as
        in Collett, *Modelling Survival Data in Medical Research*, 3rd ed., p. 411).
    times_months : sequence of float, optional
        Report only these times (months since the start of the episode), as
        `incidence_at` would, without building the full table: much faster on large
        runs. NaN after the last observed duration of a group unless every episode of
        it had stopped.

    Returns
    -------
    pandas.DataFrame
        The ``by`` columns, ``time_months`` (0 and every time with at least one
        discontinuation, or ``times_months``), ``reason``, ``at_risk`` and ``events``
        (of that reason at that time; not with ``times_months``),
        ``cumulative_incidence`` (proportion of episodes stopped for that reason by
        that time), ``standard_error``, ``ci_low``, ``ci_high``. Sorted by group, time,
        then reason in table order.
    """
    by = _as_list(by)
    causes = DISCONTINUATION_REASONS
    k = len(causes)
    group, keys = group_ids(episodes, by)
    cause = cause_codes(episodes["reason"], causes)
    if times_months is not None:
        return _incidence_at_frame(episodes, cause, group, keys, times_months, z_value(confidence))
    table = incidence_table(event_table(episode_durations(episodes), cause, group, k), z_value(confidence))
    rows = len(table["time"])
    columns = {
        "time_months": np.repeat(table["time"], k),
        "reason": pd.Categorical.from_codes(np.tile(np.arange(k, dtype=np.int8), rows), causes),
        "at_risk": np.repeat(table["at_risk"], k),
        "events": table["by_cause"].ravel(),
    }
    columns.update({name: table[name].ravel() for name in ("cumulative_incidence", "standard_error", "ci_low",
                                                           "ci_high")})
    return _frame(keys, np.repeat(table["group"], k), columns)


def _incidence_at_frame(episodes, cause, group, keys, times_months, z) -> pd.DataFrame:
    """`cumulative_incidence` at `times_months` only, from `estimates_at`."""
    causes = DISCONTINUATION_REASONS
    k, times = len(causes), np.asarray(times_months, dtype=float)
    at = estimates_at(episode_durations(episodes), cause, group, k, times, z)
    columns = {
        "time_months": np.repeat(np.tile(times, len(at["group"])), k),
        "reason": pd.Categorical.from_codes(np.tile(np.arange(k, dtype=np.int8), len(at["group"]) * len(times)),
                                            causes),
        "cumulative_incidence": at["cumulative_incidence"].ravel(),
        "standard_error": at["standard_error"].ravel(),
        "ci_low": at["incidence_ci_low"].ravel(),
        "ci_high": at["incidence_ci_high"].ravel(),
    }
    return _frame(keys, np.repeat(at["group"], len(times) * k), columns)


def incidence_table(table: dict, z: float) -> dict:
    """Aalen–Johansen estimates of an `event_table` with one cause per reason.

    Rows are (group, time): time 0 and every time with a discontinuation;
    ``cumulative_incidence``, ``standard_error``, ``ci_low`` and ``ci_high`` are rows ×
    causes (proportions). (At chosen times only: `estimates_at`.)
    """
    # Censoring-only times change neither the incidence nor its variance (their at-risk
    # counts are already in the later rows); the last time of each group stays, to mark
    # how far the estimate reaches.
    last = np.append(table["first"][1:], True)
    keep = (table["events"] > 0) | last
    names = ("group", "time", "at_risk", "events", "censored", "by_cause")
    kept = [table[name][keep] for name in names]
    n_cubed = kept[2].astype(float) ** 3  # NumPy's power, not the compiled one: the same float
    present = kept[5].any(axis=0)
    columns = _passes().incidence_rows(*kept, n_cubed, present)
    return _with_band(dict(zip((*names, "first", "incidence", "variance"), columns)), z)


def _with_band(table: dict, z: float) -> dict:
    """The table with its incidence's standard error and log–log interval."""
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(table["variance"])
        low, high = _loglog_band(table["incidence"], se / table["incidence"], z)
    return {**table, "cumulative_incidence": table["incidence"], "standard_error": se, "ci_low": low,
            "ci_high": high}


def _first_of_group(group: np.ndarray) -> np.ndarray:
    first = np.ones(len(group), dtype=bool)
    first[1:] = group[1:] != group[:-1]
    return first


# --------------------------------------------------------------- reading curves


def curve_groups(curve: pd.DataFrame) -> list[str]:
    """Grouping columns of a curve or incidence table (all columns it did not compute).

    Parameters
    ----------
    curve : pandas.DataFrame
        Output of `drug_survival` or `cumulative_incidence`.

    Returns
    -------
    list of str
        The grouping columns, in order.
    """
    known = set(CURVE_COLUMNS) | set(INCIDENCE_COLUMNS)
    return [c for c in curve.columns if c not in known]


def _group_slices(curve: pd.DataFrame, by: list[str]):
    """(key tuple, start, stop) of each group's contiguous block of rows."""
    if not by:
        yield (), 0, len(curve)
        return
    # A curve's groups are contiguous blocks: a block starts where any key changes.
    first = np.zeros(len(curve), dtype=bool)
    for column in by:
        first |= _first_of_group(_codes(curve[column]))
    starts = np.flatnonzero(first) if len(curve) else np.array([], dtype=int)
    stops = np.append(starts[1:], len(curve))
    key_frame = curve[by].iloc[starts]
    for key, start, stop in zip(key_frame.itertuples(index=False, name=None), starts, stops):
        yield key, start, stop


def _codes(column: pd.Series) -> np.ndarray:
    """Integer codes that change where the values do (a categorical's own codes)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy()
    return pd.factorize(column, use_na_sentinel=True)[0]


def survival_at(
    curve: pd.DataFrame, times_months: Sequence[float] = REPORT_TIMES_MONTHS
) -> pd.DataFrame:
    """Drug survival read off the curves at chosen times.

    Parameters
    ----------
    curve : pandas.DataFrame
        Output of `drug_survival`.
    times_months : sequence of float
        Times in months since the start of the episode.

    Returns
    -------
    pandas.DataFrame
        The grouping columns, ``time_months``, ``at_risk`` (episodes lasting at least
        that long), ``survival``, ``ci_low``, ``ci_high``. Survival is NaN after the
        last observed duration of a group unless the curve had reached 0.
    """
    by = curve_groups(curve)
    times = np.asarray(times_months, dtype=float)
    columns_of = _arrays(curve, ("time_months", "survival", "at_risk", "ci_low", "ci_high"))
    rows = []
    for key, start, stop in _group_slices(curve, by):
        block = {name: array[start:stop] for name, array in columns_of.items()}
        at_risk, values = _read_curve(block["time_months"], block["at_risk"], block, times)
        rows.extend(
            (*key, time, int(n_at), *(v[i] for v in values))
            for i, (time, n_at) in enumerate(zip(times, at_risk))
        )
    columns = [*by, "time_months", "at_risk", "survival", "ci_low", "ci_high"]
    return _typed(pd.DataFrame(rows, columns=columns), curve, by)


def _read_curve(t: np.ndarray, n: np.ndarray, curve: dict, times: np.ndarray) -> tuple[np.ndarray, list]:
    """Number at risk and [survival, ci_low, ci_high] of one group's curve at `times`
    (months): step function, NaN after the last time unless the curve reached 0."""
    at = np.maximum(np.searchsorted(t, times, side="right") - 1, 0)
    after = np.searchsorted(t, times, side="left")
    at_risk = np.where(after < len(t), n[np.minimum(after, len(t) - 1)], 0)
    estimable = (times <= t[-1]) | (curve["survival"][-1] == 0)
    return at_risk, [np.where(estimable, curve[name][at], np.nan) for name in ("survival", "ci_low", "ci_high")]


def survival_table_at(curve: dict, times: np.ndarray) -> dict:
    """`survival_at` of a `km_curves` table: ``group`` per group, and ``survival``,
    ``ci_low``, ``ci_high`` as groups × times."""
    names = ("survival", "ci_low", "ci_high")
    bounds = list(_group_bounds(curve["group"]))
    read = [_read_curve(curve["time"][a:b], curve["at_risk"][a:b], {name: curve[name][a:b] for name in names}, times)[1]
            for a, b in bounds]
    out = {"group": curve["group"][[a for a, _ in bounds]]}
    for i, name in enumerate(names):
        out[name] = np.array([values[i] for values in read]).reshape(len(bounds), len(times))
    return out


def median_table(curve: dict) -> dict:
    """`median_survival` of a `km_curves` table: per group ``group``, ``subjects``,
    ``median_months``, ``ci_low``, ``ci_high`` (months; NaN where not reached)."""
    bounds = list(_group_bounds(curve["group"]))
    starts = np.array([a for a, _ in bounds], dtype=np.int64)
    out = {"group": curve["group"][starts], "subjects": curve["at_risk"][starts]}
    for name, band in (("median_months", "survival"), ("ci_low", "ci_low"), ("ci_high", "ci_high")):
        out[name] = np.array([_first_crossing(curve["time"][a:b], curve[band][a:b], 0.5) for a, b in bounds],
                             dtype=float)
    return out


def _arrays(frame: pd.DataFrame, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The columns `names` of a frame as NumPy arrays (sliced per group without pandas)."""
    return {name: frame[name].to_numpy() for name in names}


def _typed(out: pd.DataFrame, source: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Give the grouping columns of ``out`` the dtypes they had in ``source``."""
    for column in by:
        out[column] = out[column].astype(source[column].dtype)
    return out


_TOLERANCE = float(np.sqrt(np.finfo(float).eps))  # R's quantile.survfit tolerance


def _first_crossing(t: np.ndarray, values: np.ndarray, level: float) -> float:
    """The first time (months) a step curve is at or below `level`, by R's rule: where the
    curve is flat at exactly `level` (within 1.5e-8), the midpoint of that flat, up to
    the next step or, at the end of the curve, to its last time. Missing values are
    skipped; NaN when the curve never gets there."""
    known = ~np.isnan(values)
    if not known.any():
        return np.nan
    last_time = float(t[-1])
    t, values = t[known], values[known]
    steps = np.concatenate([[True], values[1:] != values[:-1]])  # censoring rows repeat the value
    t, values = t[steps], values[steps]
    hit = np.flatnonzero(values <= level + _TOLERANCE)
    if not hit.size:
        return np.nan
    i = hit[0]
    if abs(values[i] - level) >= _TOLERANCE:
        return float(t[i])
    following = float(t[i + 1]) if i + 1 < len(t) else last_time
    return (float(t[i]) + following) / 2


def median_survival(curve: pd.DataFrame) -> pd.DataFrame:
    """Median time of every Kaplan–Meier curve (e.g. median drug survival), with its interval.

    Parameters
    ----------
    curve : pandas.DataFrame
        Output of `drug_survival` or `kaplan_meier`.

    Returns
    -------
    pandas.DataFrame
        The grouping columns, ``subjects`` (episodes or patients in the curve),
        ``median_months``, ``ci_low``, ``ci_high`` (months). The median is the first
        time survival is at or below 0.5 (the midpoint of a flat at exactly 0.5, as R's
        survival); its lower limit is where the lower band crosses 0.5 and its upper
        limit where the upper band does. NaN where not reached.
    """
    by = curve_groups(curve)
    t_all, n_all, *bands = _arrays(curve, ("time_months", "at_risk", "survival", "ci_low", "ci_high")).values()
    rows = []
    for key, start, stop in _group_slices(curve, by):
        t = t_all[start:stop]
        rows.append(
            (*key, int(n_all[start]), *(_first_crossing(t, band[start:stop], 0.5) for band in bands))
        )
    columns = [*by, "subjects", "median_months", "ci_low", "ci_high"]
    return _typed(pd.DataFrame(rows, columns=columns), curve, by)


def incidence_at(
    incidence: pd.DataFrame, times_months: Sequence[float] = REPORT_TIMES_MONTHS
) -> pd.DataFrame:
    """Cumulative incidence of each reason read off at chosen times.

    Parameters
    ----------
    incidence : pandas.DataFrame
        Output of `cumulative_incidence`.
    times_months : sequence of float
        Times in months since the start of the episode.

    Returns
    -------
    pandas.DataFrame
        The grouping columns, ``time_months``, ``reason``, ``cumulative_incidence``,
        ``ci_low``, ``ci_high`` (proportions of episodes). NaN after the last observed
        duration of a group unless every episode of it had stopped.
    """
    by = curve_groups(incidence)
    reasons = list(incidence["reason"].cat.categories)
    k = len(reasons)
    times = np.asarray(times_months, dtype=float)
    columns_of = _arrays(incidence, ("time_months", "cumulative_incidence", "ci_low", "ci_high"))
    frames = []
    for key, start, stop in _group_slices(incidence, by):
        t = columns_of["time_months"][start:stop][::k]
        at = np.maximum(np.searchsorted(t, times, side="right") - 1, 0)
        values = {
            name: columns_of[name][start:stop].reshape(-1, k)
            for name in ("cumulative_incidence", "ci_low", "ci_high")
        }
        everyone_stopped = np.isclose(values["cumulative_incidence"][-1].sum(), 1.0)
        estimable = ((times <= t[-1]) | everyone_stopped)[:, None]
        frame = pd.DataFrame({name: [value] * (len(times) * k) for name, value in zip(by, key)})
        frame["time_months"] = np.repeat(times, k)
        frame["reason"] = pd.Categorical(reasons * len(times), categories=reasons)
        for name, array in values.items():
            frame[name] = np.where(estimable, array[at], np.nan).ravel()
        frames.append(frame)
    columns = [*by, "time_months", "reason", "cumulative_incidence", "ci_low", "ci_high"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return _typed(pd.concat(frames, ignore_index=True), incidence, by)[columns]
