"""Where each patient is over time: on which line of systemic therapy, back on topical
therapy, in supportive care, or lost to follow-up.

The state timeline is rebuilt from the tables (see ``sim/tables.py``):

- an episode is ``systemic_line_<line>`` from its start to its stop;
- between an episode that ended in ``remission`` and the next episode the patient is on
  ``topical`` therapy; any other gap (before the first episode, or between a stop and
  a later start, e.g. while waiting for a treatment) is ``awaiting_treatment``;
- after the last episode: ``topical`` if it ended in remission, the same systemic line
  if it was still running at the horizon, ``lost_to_followup`` if it ended with the
  loss, otherwise ``supportive_care`` (the strategy is exhausted);
- a patient diverted by the work-up at entry (no episode, a return to topical therapy at
  ``months_to_first_topical``) is ``awaiting_treatment`` until then, ``topical`` after;
- a patient whose final state is ``lost_to_followup`` (or ``dead``) is in that state from
  ``follow_up_months`` on;
- a patient whose observation ended before the horizon for any other reason (a personal
  follow-up, or an age at which observation ends, such as a child's 18th birthday) is in
  ``follow_up_ended`` from ``follow_up_months`` on.

The horizon is the longest follow-up in the patients table. A patient observed to the
horizon keeps the last state past it, so at the horizon every such patient's state equals
``final_state``; every patient is in exactly one state at every time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.intervals import proportion_estimates
from analysis.keys import ordered_patient_rows
from analysis.survival import cause_codes

#: States that are not a systemic line, in display order.
OTHER_STATES = ("awaiting_treatment", "topical", "supportive_care", "follow_up_ended", "lost_to_followup", "dead")

_KEYS = ["replicate", "strategy", "patient"]

#: Reasons for stopping that decide what follows an episode (any other: supportive care
#: after the last episode).
_ENDINGS = ("remission", "horizon", "lost_to_followup", "death")


def systemic_state(line: int) -> str:
    """Name of the state "on systemic therapy, line ``line``" (1-based)."""
    return f"systemic_line_{int(line)}"


def state_order(max_line: int) -> list[str]:
    """All state names in display order: systemic lines first, then the others.

    Parameters
    ----------
    max_line : int
        Highest line of therapy in the run.

    Returns
    -------
    list of str
    """
    return [systemic_state(k) for k in range(1, max_line + 1)] + list(OTHER_STATES)


def _codes(column: pd.Series, categories: list) -> np.ndarray:
    return pd.Categorical(column, categories=categories).codes.astype(np.int64)


def _strategy_categories(patients: pd.DataFrame) -> list:
    column = patients["strategy"]
    if isinstance(column.dtype, pd.CategoricalDtype):
        return list(column.cat.categories)
    return sorted(column.astype(object).unique())


def _patient_index(episodes: pd.DataFrame, patients: pd.DataFrame) -> np.ndarray:
    """Row of ``patients`` that each episode belongs to."""
    rows = ordered_patient_rows(episodes, patients)  # one walk over both tables in the engines' order
    if rows is not None:
        if (rows < 0).any():
            raise ValueError("episodes.parquet has episodes of patients missing from patients.parquet")
        return rows
    strategies = _strategy_categories(patients)

    def key(frame):
        # (replicate, strategy, patient) packed into one integer.
        return (
            frame["replicate"].to_numpy(np.int64) * (len(strategies) + 1)
            + _codes(frame["strategy"], strategies)
        ) * (1 << 32) + frame["patient"].to_numpy(np.int64)

    patient_keys = key(patients)
    episode_keys = key(episodes)
    if len(patient_keys) and _ascending(patient_keys, strict=True) and _ascending(episode_keys, strict=False):
        # The runner's order: each patient's episodes together, patients in key order. One
        # search per patient with episodes, not per episode (8 million at a million patients).
        starts = np.flatnonzero(np.concatenate([[True], episode_keys[1:] != episode_keys[:-1]])) \
            if len(episode_keys) else np.zeros(0, dtype=np.int64)
        at = np.minimum(np.searchsorted(patient_keys, episode_keys[starts]), len(patient_keys) - 1)
        where = np.repeat(at, np.diff(np.append(starts, len(episode_keys))))
    else:
        order = np.argsort(patient_keys, kind="stable")
        at = np.minimum(np.searchsorted(patient_keys[order], episode_keys), len(order) - 1)
        where = order[at] if len(order) else np.zeros(0, dtype=np.int64)
    if len(episode_keys) and (patient_keys[where] != episode_keys).any():
        raise ValueError("episodes.parquet has episodes of patients missing from patients.parquet")
    return where


def _ascending(keys: np.ndarray, strict: bool) -> bool:
    """Whether `keys` never decrease (with `strict`, always increase)."""
    step = keys[1:] > keys[:-1] if strict else keys[1:] >= keys[:-1]
    return bool(step.all())


def state_segments(episodes: pd.DataFrame, patients: pd.DataFrame) -> pd.DataFrame:
    """Every patient's timeline as consecutive state segments.

    Parameters
    ----------
    episodes : pandas.DataFrame
        The episodes table.
    patients : pandas.DataFrame
        The patients table.

    Returns
    -------
    pandas.DataFrame
        One row per segment, by patient then time: ``patient_row`` (row position in
        ``patients``), ``state`` (categorical, display order), ``start_months``,
        ``stop_months`` (months since entry; the last segment of each patient ends at
        +inf). Zero-length segments are dropped.
    """
    from analysis import state_passes

    timeline = _timeline(episodes, patients)
    names = ("patient_row", "state", "start_months", "stop_months")
    columns = dict(zip(names, state_passes.episode_segments(*timeline.walk)))
    if timeline.extra is not None:
        merged = {name: np.concatenate([columns[name], timeline.extra[name]]) for name in columns}
        order = np.argsort(merged["patient_row"], kind="stable")
        columns = {name: values[order] for name, values in merged.items()}
    keep = columns["stop_months"] > columns["start_months"]
    segments = pd.DataFrame({name: values[keep] for name, values in columns.items()})
    segments["state"] = pd.Categorical.from_codes(segments["state"].to_numpy(), categories=timeline.states)
    return segments


@dataclass
class _Timeline:
    """What `analysis.state_passes` walks to give every patient's timeline, and the segments
    of patients without episodes.

    ``walk`` holds the walk's arguments (episodes by patient row, then time: row, start,
    stop, systemic line's state code, ending index; per patient: follow-up, whether and in
    which state the timeline ends early, months on topical therapy; the state codes of
    topical, awaiting treatment, supportive care, lost to follow-up and dead; the months
    within which two times count as the same); ``extra`` the segments of patients without
    episodes, as in `state_segments` (None if there are none).
    """

    states: list[str]
    walk: tuple
    extra: dict[str, np.ndarray] | None


def _timeline(episodes: pd.DataFrame, patients: pd.DataFrame) -> _Timeline:
    """The `_Timeline` of every patient of `patients` from their `episodes` (in any order)."""
    max_line = int(episodes["line"].max()) if len(episodes) else 0
    states = state_order(max_line)
    code = {name: i for i, name in enumerate(states)}
    row = _patient_index(episodes, patients)
    start = episodes["start"].to_numpy(dtype=float)
    stop = episodes["stop"].to_numpy(dtype=float)
    number = episodes["episode"].to_numpy()
    systemic = episodes["line"].to_numpy(np.int64) - 1  # code of systemic_line_<line>
    reason = cause_codes(episodes["reason"], _ENDINGS)
    if not _in_time_order(row, start, number):  # the runner writes them in order
        order = np.lexsort((number, start, row))
        row, start, stop, systemic, reason = row[order], start[order], stop[order], systemic[order], reason[order]
    follow_up = patients["follow_up_months"].to_numpy(dtype=float)
    final = patients["final_state"].astype(object).to_numpy()
    ends_early, ending = _early_endings(final, follow_up, code)
    # A relapse after the last line's remission with no line left to start (on_relapse:
    # next_line) leaves no episode: the patient is topical until then, in supportive care
    # after; the patients table's months on topical therapy say when.
    topical = patients["months_topical"].to_numpy(dtype=float) if "months_topical" in patients \
        else np.full(len(patients), np.nan)
    codes = np.array([code[name] for name in ("topical", "awaiting_treatment", "supportive_care",
                                              "lost_to_followup", "dead")], dtype=np.int64)
    walk = (np.ascontiguousarray(row, dtype=np.int64), start, stop, systemic, reason, follow_up, ends_early,
            ending.astype(np.int64), topical, codes, _SAME_MONTH)
    diverted_at = patients["months_to_first_topical"].to_numpy(dtype=float) if "months_to_first_topical" in patients \
        else np.full(len(patients), np.nan)
    extra = _patients_without_episodes(row, final, follow_up, ends_early, ending, code, diverted_at)
    return _Timeline(states, walk, extra)


#: Months within which two times count as the same (rounding of the engines' sums).
_SAME_MONTH = 1e-9


def _early_endings(final: np.ndarray, follow_up: np.ndarray, code: dict) -> tuple[np.ndarray, np.ndarray]:
    """Which patients' timelines end before the horizon (the longest follow-up), and the state
    they are in from then on: dead, lost to follow-up, or follow-up ended."""
    # Leaving follow-up, dying and the end of a patient's own observation all end the
    # timeline: carrying the last state on would show a patient where nobody saw them.
    dead, lost = final == "dead", final == "lost_to_followup"
    ending = np.select([dead, lost], [code["dead"], code["lost_to_followup"]], code["follow_up_ended"])
    return dead | lost | _follow_up_ended(final, follow_up), ending


def follow_up_ended(patients: pd.DataFrame) -> np.ndarray:
    """Which patients' follow-up ended before the horizon (the longest follow-up) for another
    reason than loss or death: a personal follow-up, or an age at which observation ends."""
    return _follow_up_ended(patients["final_state"].astype(object).to_numpy(),
                            patients["follow_up_months"].to_numpy(dtype=float))


def _follow_up_ended(final: np.ndarray, follow_up: np.ndarray) -> np.ndarray:
    horizon = follow_up.max() if len(follow_up) else 0.0
    return (follow_up < horizon) & (final != "dead") & (final != "lost_to_followup")


def _in_time_order(row: np.ndarray, start: np.ndarray, number: np.ndarray) -> bool:
    """Whether the episodes already come by patient row, then start, then episode number."""
    if len(row) < 2:
        return True
    same_row = row[1:] == row[:-1]
    same_start = same_row & (start[1:] == start[:-1])
    later = (row[1:] > row[:-1]) | (same_row & (start[1:] > start[:-1])) | (same_start & (number[1:] >= number[:-1]))
    return bool(later.all())


def _patients_without_episodes(row, final, follow_up, ends_early, ending, code, diverted_at) -> dict | None:
    """The timeline of patients who never started a systemic treatment (None if there are none).
    A patient the work-up at entry diverted (a return to topical therapy without an episode,
    at `diverted_at` months) awaits treatment until then and is on topical therapy after."""
    has_episode = np.zeros(len(final), dtype=bool)
    has_episode[row] = True
    without = np.flatnonzero(~has_episode)
    if without.size == 0:
        return None
    state = np.array(
        [
            code[f] if f in ("topical", "supportive_care") else code["awaiting_treatment"]
            for f in final[without]
        ],
        dtype=np.int64,
    )
    end = np.where(ends_early[without], follow_up[without], np.inf)
    at = diverted_at[without]
    # A final state of topical therapy or supportive care without an episode says where the
    # patient was all along; a diverted patient's is `diverted` (or the loss, or death).
    diverted = ~np.isnan(at) & ~np.isin(final[without], ("topical", "supportive_care"))
    state[diverted] = code["awaiting_treatment"]
    early = ends_early[without]
    rows = np.concatenate([without, without[diverted], without[early]])
    order = np.argsort(rows, kind="stable")  # each patient's segments in time order
    return {
        "patient_row": rows[order],
        "state": np.concatenate([state, np.full(diverted.sum(), code["topical"]), ending[without][early]])[order],
        "start_months": np.concatenate([np.zeros(without.size), at[diverted], end[early]])[order],
        "stop_months": np.concatenate([np.where(diverted, at, end), end[diverted], np.full(early.sum(), np.inf)])[order],
    }


def monthly_grid(horizon_months: float, step_months: float = 1.0) -> np.ndarray:
    """Times 0, step, 2·step, … up to and including the horizon, in months.

    Parameters
    ----------
    horizon_months : float
        Last time of the grid.
    step_months : float
        Spacing of the grid.

    Returns
    -------
    numpy.ndarray
    """
    grid = np.arange(0.0, horizon_months + 1e-9, step_months)
    if grid[-1] < horizon_months - 1e-9:
        grid = np.append(grid, horizon_months)
    return grid


def horizon_of(patients: pd.DataFrame) -> float:
    """Longest follow-up in the patients table: the horizon of the run, in months."""
    return float(patients["follow_up_months"].max())


def state_counts(
    episodes: pd.DataFrame,
    patients: pd.DataFrame,
    times_months: Sequence[float] | None = None,
) -> pd.DataFrame:
    """Number of patients in each state at each time, per strategy and replicate.

    Parameters
    ----------
    episodes, patients : pandas.DataFrame
        The run tables.
    times_months : sequence of float, optional
        Times in months since entry; default: every month up to the horizon.

    Returns
    -------
    pandas.DataFrame
        ``strategy``, ``replicate``, ``time_months``, ``state`` (categorical, display
        order), ``patients`` (in the state), ``n`` (patients of the strategy and
        replicate). States never occupied at any time are left out.
    """
    times = np.asarray(
        monthly_grid(horizon_of(patients)) if times_months is None else times_months, dtype=float
    )
    timeline = _timeline(episodes, patients)
    states = timeline.states
    strategies = _strategy_categories(patients)
    replicates, replicate = np.unique(patients["replicate"].to_numpy(), return_inverse=True)
    cohort = replicate * len(strategies) + _codes(patients["strategy"], strategies)
    n_cohorts = len(replicates) * len(strategies)
    sizes = np.bincount(cohort, minlength=n_cohorts)
    # Patients in a state at t: segments started by t minus segments ended by t, counted
    # per (replicate, strategy, state) with bincounts over time bins, slot by slot (the
    # counts need no segment table in time order, which costs more to build than to count).
    n_groups = n_cohorts * len(states)
    counts = _occupied(timeline, cohort, times, n_groups)
    counts = counts.reshape(n_cohorts, len(states), len(times)).transpose(0, 2, 1)
    present = np.flatnonzero(sizes)
    used = np.flatnonzero(counts.sum(axis=(0, 1)))
    counts = counts[present][:, :, used]
    per_cohort = len(times) * len(used)
    out = pd.DataFrame(
        {
            "strategy": pd.Categorical.from_codes(
                np.repeat(present % len(strategies), per_cohort), categories=strategies
            ),
            "replicate": np.repeat(replicates[present // len(strategies)], per_cohort),
            "time_months": np.tile(np.repeat(times, len(used)), len(present)),
            "state": pd.Categorical.from_codes(
                np.tile(np.arange(len(used)), len(times) * len(present)),
                categories=[states[k] for k in used],
            ),
            "patients": counts.ravel(),
            "n": np.repeat(sizes[present], per_cohort),
        }
    )
    return out.sort_values(["strategy", "replicate"], kind="stable", ignore_index=True)


def _occupied(timeline: _Timeline, cohort: np.ndarray, times: np.ndarray, n_groups: int) -> np.ndarray:
    """(cohort, state) groups × times: how many patients' segments cover each time (start <= t
    < stop); `cohort` is by patient row. Counted as segments start and stop, per time bin,
    in one walk over the episodes (no segment table is built)."""
    from analysis import state_passes

    n_states = len(timeline.states)
    counts = np.zeros((n_groups, len(times) + 1), dtype=np.int64)
    whole_months = state_passes.whole_month_grid(times)
    state_passes.count_episode_segments(*timeline.walk, np.ascontiguousarray(cohort, dtype=np.int64), n_states,
                                        times, whole_months, counts)
    if timeline.extra is not None:
        extra = timeline.extra
        group = cohort[extra["patient_row"]] * n_states + extra["state"]
        state_passes.count_segments(np.ascontiguousarray(group, dtype=np.int64), extra["start_months"],
                                    extra["stop_months"], times, whole_months, counts)
    return counts[:, : len(times)].cumsum(axis=1)


def state_occupancy(
    episodes: pd.DataFrame,
    patients: pd.DataFrame,
    times_months: Sequence[float] | None = None,
    confidence: float = 0.95,
    counts: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Proportion of each strategy's patients in each state over time.

    Parameters
    ----------
    episodes, patients : pandas.DataFrame
        The run tables.
    times_months : sequence of float, optional
        Times in months since entry; default: every month up to the horizon.
    confidence : float
        Level of the intervals (Wilson within one replicate, across replicates
        otherwise; see ``analysis.intervals.proportion_estimates``).
    counts : pandas.DataFrame, optional
        `state_counts` of these tables at these times, if the caller already has it.

    Returns
    -------
    pandas.DataFrame
        ``strategy``, ``time_months``, ``state``, ``proportion``, ``ci_low``,
        ``ci_high``, ``patients`` (denominator). At every time the proportions of a
        strategy sum to one.
    """
    counts = state_counts(episodes, patients, times_months) if counts is None else counts
    counts = counts.rename(columns={"patients": "successes"})
    out = proportion_estimates(counts, ["strategy", "time_months", "state"], confidence)
    return out.rename(columns={"value": "proportion"}).drop(columns="replicates")
