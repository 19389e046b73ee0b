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
OTHER_STATES = ("awaiting_treatment", "topical", "supportive_care", "lost_to_followup")

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


def _patient_index(episodes: pd.DataFrame, patients: pd.DataFrame) -> np.ndarray:
    """Row of ``patients`` that each episode belongs to."""
    keys = patients[_KEYS].astype({"strategy": "object"})
    index = pd.MultiIndex.from_frame(keys)
    where = index.get_indexer(pd.MultiIndex.from_frame(episodes[_KEYS].astype({"strategy": "object"})))
    if (where < 0).any():
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
        One row per segment: ``patient_row`` (row position in ``patients``), ``state``
        (str), ``start_months``, ``stop_months`` (months since entry; the last segment of
        each patient ends at +inf). Zero-length segments are dropped.
    """
    row = _patient_index(episodes, patients)
    order = np.lexsort((episodes["episode"].to_numpy(), episodes["start"].to_numpy(), row))
    row = row[order]
    start = episodes["start"].to_numpy(dtype=float)[order]
    stop = episodes["stop"].to_numpy(dtype=float)[order]
    line = episodes["line"].to_numpy()[order]
    reason = episodes["reason"].astype("object").to_numpy()[order]
    first = np.ones(len(row), dtype=bool)
    first[1:] = row[1:] != row[:-1]
    last = np.append(first[1:], True)

    systemic = np.array([systemic_state(k) for k in line], dtype=object) if len(line) else line
    previous_stop = np.where(first, 0.0, np.roll(stop, 1))
    previous_reason = np.where(first, "", np.roll(reason, 1))
    gap_state = np.where(previous_reason == "remission", "topical", "awaiting_treatment")

    follow_up = patients["follow_up_months"].to_numpy(dtype=float)
    lost = (patients["final_state"].astype("object") == "lost_to_followup").to_numpy()
    tail_state = np.select(
        [reason == "remission", reason == "horizon", reason == "lost_to_followup"],
        ["topical", systemic, "lost_to_followup"],
        "supportive_care",
    )
    tail_rows, tail_start, tail_state = row[last], stop[last], tail_state[last]
    without = np.setdiff1d(np.arange(len(patients)), row[last])
    final = patients["final_state"].astype("object").to_numpy()[without]
    tail_rows = np.concatenate([tail_rows, without])
    tail_start = np.concatenate([tail_start, np.zeros(len(without))])
    tail_state = np.concatenate([
        tail_state,
        np.where(np.isin(final, ["topical", "supportive_care"]), final, "awaiting_treatment"),
    ])
    tail_stop = np.where(lost[tail_rows], np.maximum(follow_up[tail_rows], tail_start), np.inf)
    segments = pd.DataFrame({
        "patient_row": np.concatenate([row, row, tail_rows, tail_rows[lost[tail_rows]]]),
        "state": np.concatenate([
            gap_state, systemic, tail_state,
            np.full(int(lost[tail_rows].sum()), "lost_to_followup", dtype=object),
        ]),
        "start_months": np.concatenate([previous_stop, start, tail_start, tail_stop[lost[tail_rows]]]),
        "stop_months": np.concatenate([start, stop, tail_stop, np.full(int(lost[tail_rows].sum()), np.inf)]),
    })
    keep = segments["stop_months"] > segments["start_months"]
    return segments[keep].sort_values(["patient_row", "start_months"], kind="stable",
                                      ignore_index=True)


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
    owner = patients.iloc[segments["patient_row"].to_numpy()]
    segments["strategy"] = owner["strategy"].to_numpy()
    segments["replicate"] = owner["replicate"].to_numpy()
    max_line = int(episodes["line"].max()) if len(episodes) else 0
    states = state_order(max_line)
    sizes = patients.groupby(["strategy", "replicate"], observed=True, sort=True).size()
    occupied = {
        key: _occupancy(part, times)
        for key, part in segments.groupby(["strategy", "replicate", "state"], sort=False)
    }
    empty = np.zeros(len(times), dtype=np.int64)
    frames = []
    for (strategy, replicate), n in sizes.items():
        counts = np.column_stack([occupied.get((strategy, replicate, s), empty) for s in states])
        frames.append(pd.DataFrame({
            "strategy": strategy,
            "replicate": replicate,
            "time_months": np.repeat(times, len(states)),
            "state": np.tile(np.array(states, dtype=object), len(times)),
            "patients": counts.ravel(),
            "n": n,
        }))
    out = pd.concat(frames, ignore_index=True)
    used = [s for s in states if out.loc[out["state"] == s, "patients"].any()]
    out = out[out["state"].isin(used)].reset_index(drop=True)
    out["state"] = pd.Categorical(out["state"], categories=used)
    out["strategy"] = pd.Categorical(out["strategy"], categories=_categories(patients["strategy"]))
    return out


def _categories(column: pd.Series) -> list:
    if isinstance(column.dtype, pd.CategoricalDtype):
        return list(column.cat.categories)
    return sorted(column.unique())


def _occupancy(segments: pd.DataFrame, times: np.ndarray) -> np.ndarray:
    """Number of segments with start ≤ t < stop at each time."""
    starts = np.sort(segments["start_months"].to_numpy())
    stops = np.sort(segments["stop_months"].to_numpy())
    return np.searchsorted(starts, times, side="right") - np.searchsorted(stops, times, side="right")


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
