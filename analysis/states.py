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
- a patient whose final state is ``lost_to_followup`` is lost from
  ``follow_up_months`` on.

The last state is carried past ``follow_up_months``, so at the horizon the state equals
``final_state`` and every patient is in exactly one state at every time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.intervals import proportion_estimates

#: States that are not a systemic line, in display order.
OTHER_STATES = ("awaiting_treatment", "topical", "supportive_care", "lost_to_followup", "dead")

_KEYS = ["replicate", "strategy", "patient"]


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
    strategies = _strategy_categories(patients)

    def key(frame):
        # (replicate, strategy, patient) packed into one integer.
        return (
            frame["replicate"].to_numpy(np.int64) * (len(strategies) + 1)
            + _codes(frame["strategy"], strategies)
        ) * (1 << 32) + frame["patient"].to_numpy(np.int64)

    patient_keys = key(patients)
    order = np.argsort(patient_keys, kind="stable")
    episode_keys = key(episodes)
    at = np.minimum(np.searchsorted(patient_keys[order], episode_keys), len(order) - 1)
    where = order[at] if len(order) else np.zeros(0, dtype=np.int64)
    if len(episode_keys) and (patient_keys[where] != episode_keys).any():
        raise ValueError("episodes.parquet has episodes of patients missing from patients.parquet")
    return where


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
    max_line = int(episodes["line"].max()) if len(episodes) else 0
    states = state_order(max_line)
    code = {name: i for i, name in enumerate(states)}
    row = _patient_index(episodes, patients)
    order = np.lexsort((episodes["episode"].to_numpy(), episodes["start"].to_numpy(), row))
    row = row[order]
    start = episodes["start"].to_numpy(dtype=float)[order]
    stop = episodes["stop"].to_numpy(dtype=float)[order]
    systemic = episodes["line"].to_numpy(np.int64)[order] - 1  # code of systemic_line_<line>
    reason = episodes["reason"].astype(object).to_numpy()[order]
    first = np.ones(len(row), dtype=bool)
    first[1:] = row[1:] != row[:-1]
    last = np.append(first[1:], True)

    previous_stop = np.where(first, 0.0, np.roll(stop, 1))
    previous_remission = ~first & np.roll(reason == "remission", 1)
    gap = np.where(previous_remission, code["topical"], code["awaiting_treatment"])
    tail = np.select(
        [reason == "remission", reason == "horizon", reason == "lost_to_followup", reason == "death"],
        [code["topical"], systemic, code["lost_to_followup"], code["dead"]],
        code["supportive_care"],
    )
    follow_up = patients["follow_up_months"].to_numpy(dtype=float)
    final = patients["final_state"].astype(object).to_numpy()
    # Leaving follow-up and dying both end the timeline: from then on the patient is in
    # that state for good.
    lost = (final == "lost_to_followup") | (final == "dead")
    ending = np.where(final == "dead", code["dead"], code["lost_to_followup"])
    tail_stop = np.where(lost[row], np.maximum(follow_up[row], stop), np.inf)
    lost_start = np.where(lost[row], tail_stop, np.inf)
    # Four slots per episode, in time order: the gap before it, the episode, and after
    # the last episode of a patient the tail and the loss to follow-up.
    columns = {
        "patient_row": np.repeat(row, 4),
        "state": np.column_stack(
            [gap, systemic, tail, ending[row]]
        ),
        "start_months": np.column_stack([previous_stop, start, stop, lost_start]),
        "stop_months": np.column_stack([start, stop, tail_stop, np.full(len(row), np.inf)]),
    }
    valid = np.column_stack([np.ones((len(row), 2), dtype=bool), last, last & lost[row]]).ravel()
    columns = {name: values.ravel()[valid] for name, values in columns.items()}
    columns = _with_patients_without_episodes(columns, row, final, follow_up, lost, ending, code)
    keep = columns["stop_months"] > columns["start_months"]
    segments = pd.DataFrame({name: values[keep] for name, values in columns.items()})
    segments["state"] = pd.Categorical.from_codes(segments["state"].to_numpy(), categories=states)
    return segments


def _with_patients_without_episodes(columns, row, final, follow_up, lost, ending, code) -> dict:
    """Add the timeline of patients who never started a systemic treatment."""
    has_episode = np.zeros(len(final), dtype=bool)
    has_episode[row] = True
    without = np.flatnonzero(~has_episode)
    if without.size == 0:
        return columns
    state = np.array(
        [
            code[f] if f in ("topical", "supportive_care") else code["awaiting_treatment"]
            for f in final[without]
        ],
        dtype=np.int64,
    )
    end = np.where(lost[without], follow_up[without], np.inf)
    extra = {
        "patient_row": np.concatenate([without, without[lost[without]]]),
        "state": np.concatenate([state, ending[without][lost[without]]]),
        "start_months": np.concatenate([np.zeros(without.size), end[lost[without]]]),
        "stop_months": np.concatenate([end, np.full(lost[without].sum(), np.inf)]),
    }
    merged = {name: np.concatenate([columns[name], extra[name]]) for name in columns}
    order = np.argsort(merged["patient_row"], kind="stable")
    return {name: values[order] for name, values in merged.items()}


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
    segments = state_segments(episodes, patients)
    states = list(segments["state"].cat.categories)
    strategies = _strategy_categories(patients)
    replicates, replicate = np.unique(patients["replicate"].to_numpy(), return_inverse=True)
    cohort = replicate * len(strategies) + _codes(patients["strategy"], strategies)
    n_cohorts = len(replicates) * len(strategies)
    sizes = np.bincount(cohort, minlength=n_cohorts)
    # Patients in a state at t: segments started by t minus segments ended by t, counted
    # per (replicate, strategy, state) with one bincount over time bins.
    group = (
        cohort[segments["patient_row"].to_numpy()] * len(states)
        + segments["state"].cat.codes.to_numpy()
    )
    counts = _counted_by(
        group, segments["start_months"].to_numpy(), times, n_cohorts * len(states)
    ) - _counted_by(group, segments["stop_months"].to_numpy(), times, n_cohorts * len(states))
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


def _counted_by(
    group: np.ndarray, values: np.ndarray, times: np.ndarray, n_groups: int
) -> np.ndarray:
    """groups × times: how many values of each group are ≤ each time."""
    bins = np.searchsorted(times, values, side="left")  # value ≤ times[j] ⇔ bin ≤ j
    counts = np.bincount(group * (len(times) + 1) + bins, minlength=n_groups * (len(times) + 1))
    return counts.reshape(n_groups, len(times) + 1)[:, : len(times)].cumsum(axis=1)


def state_occupancy(
    episodes: pd.DataFrame,
    patients: pd.DataFrame,
    times_months: Sequence[float] | None = None,
    confidence: float = 0.95,
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

    Returns
    -------
    pandas.DataFrame
        ``strategy``, ``time_months``, ``state``, ``proportion``, ``ci_low``,
        ``ci_high``, ``patients`` (denominator). At every time the proportions of a
        strategy sum to one.
    """
    counts = state_counts(episodes, patients, times_months)
    counts = counts.rename(columns={"patients": "successes"})
    out = proportion_estimates(counts, ["strategy", "time_months", "state"], confidence)
    return out.rename(columns={"value": "proportion"}).drop(columns="replicates")
