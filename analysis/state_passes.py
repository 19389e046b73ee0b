"""Compiled passes behind `analysis.states`: each patient's timeline walked episode by episode.

The rule of `analysis.states` (what a patient is in before, during and after each episode)
is written once, in `_walk`, which writes the segments out (`episode_segments`) or adds
them straight into counts per (group, time bin) (`count_episode_segments`), so a million patients' states over time are counted without
the hundreds of megabytes of segment arrays.

Episodes come by patient row, then start, then episode number. Per episode: its patient
row, start and stop (months since entry), the code of its systemic line's state and the
index of its reason in `analysis.states._ENDINGS` (-1 for any other). Per patient: follow-up
(months), whether the timeline ends early and the state it ends in, and the months on
topical therapy of the patients table.
"""

from __future__ import annotations

import numba
import numpy as np

#: Segments an episode gives at most: the gap before it, the episode, and after a
#: patient's last episode the tail, the ending, and the end of follow-up after supportive care.
MAX_SEGMENTS = 5

_REMISSION, _HORIZON, _LOST, _DEATH = 0, 1, 2, 3


@numba.njit(cache=True, inline="always", error_model="numpy")
def _maximum(a, b):
    """NumPy's `maximum`: NaN if either is NaN."""
    if np.isnan(a) or np.isnan(b):
        return np.nan
    return a if a >= b else b




@numba.njit(cache=True, inline="always", error_model="numpy")
def _bin(times, value, whole_months):
    """How many of `times` (sorted) are below `value` (NumPy's searchsorted, side left); on a
    grid of whole months 0, 1, 2, ... by arithmetic (the same number)."""
    n = len(times)
    if np.isnan(value):
        return n  # NaN sorts last
    if whole_months:
        if value <= 0.0:
            return 0
        if value >= n:
            return n
        return int(np.ceil(value))
    low, high = 0, n
    while low < high:
        middle = (low + high) // 2
        if times[middle] < value:
            low = middle + 1
        else:
            high = middle
    return low


def whole_month_grid(times: np.ndarray) -> bool:
    """Whether `times` (months) are 0, 1, 2, ..., a grid `_bin` reads by arithmetic."""
    n = len(times)
    return bool(n > 0 and times[0] == 0.0 and times[-1] == n - 1 and (np.diff(times) == 1.0).all())


@numba.njit(cache=True, error_model="numpy")
def time_bins(times, values, whole_months):
    """How many of `times` (sorted, months) are below each of `values`: NumPy's
    ``searchsorted(times, values)``, by arithmetic where `whole_months` (`whole_month_grid`)."""
    out = np.empty(len(values), np.int64)
    for i in range(len(values)):
        out[i] = _bin(times, values[i], whole_months)
    return out


#: What `_walk` does with the segments: count them, write them out, or add them to counts.
_SIZE, _WRITE, _COUNT = 0, 1, 2


@numba.njit(cache=True, error_model="numpy")
def _walk(row, start, stop, systemic, reason, follow_up, ends_early, ending, topical, codes, same_month, mode,
          out_rows, out_states, out_starts, out_stops, cohort, n_states, times, whole_months, counts):
    """Walk the episodes and give each its segments (state code, start and stop in months, in
    time order): count them (mode `_SIZE`; returns how many), write them into the `out_*`
    arrays (`_WRITE`) or add the lasting ones to `counts` (`_COUNT`, as `count_episode_segments`).

    Between an episode that ended in remission and the next the patient is on topical
    therapy, in any other gap awaiting treatment. After the last episode: topical therapy
    after a remission, the same line if it ran to the horizon, lost to follow-up or dead
    after those endings, supportive care otherwise; a timeline that ends early goes on in
    its ending state from the end of follow-up (or from the stop, if later); a relapse
    after the last remission with no line left (the patients table's topical months run
    out before follow-up does) is supportive care from then on. `codes`: the states
    topical, awaiting treatment, supportive care, lost to follow-up, dead."""
    # One loop with the segments in local scratch arrays: the same rule as a helper function
    # writing through its array arguments ran about 20 times slower.
    topical_code, awaiting_code, supportive_code, lost_code, dead_code = codes[0], codes[1], codes[2], codes[3], \
        codes[4]
    gaps = np.zeros(len(follow_up))  # per patient: months on topical therapy between its episodes so far
    state_at, start_at, stop_at = np.empty(MAX_SEGMENTS, np.int64), np.empty(MAX_SEGMENTS), np.empty(MAX_SEGMENTS)
    n, size = len(row), 0
    for i in range(n):
        r = row[i]
        first = i == 0 or row[i - 1] != r
        last = i == n - 1 or row[i + 1] != r
        previous_stop = 0.0 if first else stop[i - 1]
        previous_remission = not first and reason[i - 1] == _REMISSION
        gaps[r] += start[i] - previous_stop if previous_remission else 0.0
        state_at[0], start_at[0], stop_at[0] = topical_code if previous_remission else awaiting_code, \
            previous_stop, start[i]
        state_at[1], start_at[1], stop_at[1] = systemic[i], start[i], stop[i]
        k = 2
        if last:
            why = reason[i]
            if why == _REMISSION:
                tail = topical_code
            elif why == _HORIZON:
                tail = systemic[i]
            elif why == _LOST:
                tail = lost_code
            elif why == _DEATH:
                tail = dead_code
            else:
                tail = supportive_code
            early = ends_early[r]
            tail_stop = _maximum(follow_up[r], stop[i]) if early else np.inf
            relapse_at = stop[i] + _maximum(topical[r] - gaps[r], 0.0) if why == _REMISSION else stop[i]
            relapsed = why == _REMISSION and relapse_at < follow_up[r] - same_month
            if relapsed:
                tail_stop = relapse_at
            state_at[2], start_at[2], stop_at[2] = tail, stop[i], tail_stop
            k = 3
            if early or relapsed:
                state_at[3], start_at[3] = supportive_code if relapsed else ending[r], tail_stop
                stop_at[3] = follow_up[r] if relapsed and early else np.inf
                k = 4
            if relapsed and early:
                state_at[4], start_at[4], stop_at[4] = ending[r], follow_up[r], np.inf
                k = 5
        if mode == _WRITE:
            for s in range(k):
                out_rows[size + s], out_states[size + s] = r, state_at[s]
                out_starts[size + s], out_stops[size + s] = start_at[s], stop_at[s]
        elif mode == _COUNT:
            group = cohort[r] * n_states
            for s in range(k):
                if stop_at[s] > start_at[s]:  # segments of no time (or none at all) are not counted
                    counts[group + state_at[s], _bin(times, start_at[s], whole_months)] += 1
                    counts[group + state_at[s], _bin(times, stop_at[s], whole_months)] -= 1
        size += k
    return size


_NO_ROWS, _NO_VALUES, _NO_COUNTS = np.zeros(0, np.int64), np.zeros(0), np.zeros((0, 0), np.int64)


def episode_segments(row, start, stop, systemic, reason, follow_up, ends_early, ending, topical, codes, same_month):
    """Every episode's segments, in walking order: patient row, state code, start and stop
    (months). Zero-length segments are kept."""
    walk = (row, start, stop, systemic, reason, follow_up, ends_early, ending, topical, codes, same_month)
    no_counting = (_NO_ROWS, 0, _NO_VALUES, False, _NO_COUNTS)
    size = _walk(*walk, _SIZE, _NO_ROWS, _NO_ROWS, _NO_VALUES, _NO_VALUES, *no_counting)
    out = np.empty(size, np.int64), np.empty(size, np.int64), np.empty(size), np.empty(size)
    _walk(*walk, _WRITE, *out, *no_counting)
    return out


def count_episode_segments(row, start, stop, systemic, reason, follow_up, ends_early, ending, topical, codes,
                           same_month, cohort, n_states, times, whole_months, counts):
    """Add every episode's lasting segments to `counts`, groups ``cohort[row] * n_states +
    state`` × (times + 1) bins: +1 in the bin of the first time at or after a segment's
    start, -1 in that of its stop; after a cumulative sum along the bins, how many segments
    of each group cover each time (start <= t < stop)."""
    _walk(row, start, stop, systemic, reason, follow_up, ends_early, ending, topical, codes, same_month, _COUNT,
          _NO_ROWS, _NO_ROWS, _NO_VALUES, _NO_VALUES, cohort, n_states, times, whole_months, counts)


@numba.njit(cache=True, error_model="numpy")
def count_segments(group, start, stop, times, whole_months, counts):
    """Add segments given as arrays (group, start and stop in months) to `counts`, as
    `count_episode_segments`."""
    for i in range(len(group)):
        if stop[i] > start[i]:
            counts[group[i], _bin(times, start[i], whole_months)] += 1
            counts[group[i], _bin(times, stop[i], whole_months)] -= 1
