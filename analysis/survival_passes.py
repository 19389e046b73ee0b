"""Compiled passes behind `analysis.survival`: durations sorted once, then walked once per group.

Durations (months) go into buckets, one per group and cause: bucket 0 of a group holds its
censored durations, bucket ``c + 1`` those ending with cause ``c``. Each bucket is sorted on
its own, values only (sorting values is several times faster than sorting an index of
rows), and walking a group's buckets together in time order gives every distinct time with
its counts. From that walk come the event table, and the Kaplan–Meier and Aalen–Johansen
estimates at chosen times without any table of all times.

The arithmetic repeats, operation for operation, the NumPy running products and sums that
`analysis.survival` used before, so the estimates agree to the last bit or nearly.
"""

from __future__ import annotations

import numba
import numpy as np

#: Buckets up to this many durations are sorted inside the compiled scatter; larger ones
#: by NumPy's vectorised sort, which is faster on long arrays (one Python call each).
_SORTED_INSIDE = 4096


def sorted_by_bucket(durations, cause, group, n_groups: int, n_causes: int):
    """Durations (months) of every (group, cause) bucket, each sorted, and where buckets start.

    ``cause`` is -1 for censored, else the cause index; rows with ``group`` -1 or a missing
    duration are left out. Returns ``(times, starts)``: bucket ``b = g * (n_causes + 1) +
    cause + 1`` is ``times[starts[b]:starts[b + 1]]``.
    """
    starts = _bucket_starts(durations, cause, group, n_groups, n_causes)
    times = _scatter(durations, cause, group, starts, n_causes)
    for b in np.flatnonzero(np.diff(starts) > _SORTED_INSIDE):
        times[starts[b]:starts[b + 1]].sort()
    return times, starts


@numba.njit(cache=True, error_model="numpy")
def _bucket_starts(durations, cause, group, n_groups, n_causes):
    width = n_causes + 1
    starts = np.zeros(n_groups * width + 1, np.int64)
    for i in range(len(group)):
        if group[i] >= 0 and not np.isnan(durations[i]):
            if cause[i] < -1 or cause[i] >= n_causes:
                raise ValueError("cause code out of range")
            starts[group[i] * width + cause[i] + 2] += 1
    for b in range(1, len(starts)):
        starts[b] += starts[b - 1]
    return starts


@numba.njit(cache=True, error_model="numpy")
def _scatter(durations, cause, group, starts, n_causes):
    width = n_causes + 1
    fill = starts[:-1].copy()
    times = np.empty(starts[-1])
    for i in range(len(group)):
        if group[i] >= 0 and not np.isnan(durations[i]):
            b = group[i] * width + cause[i] + 1
            times[fill[b]] = durations[i]
            fill[b] += 1
    for b in range(len(starts) - 1):
        if 1 < starts[b + 1] - starts[b] <= _SORTED_INSIDE:
            times[starts[b]:starts[b + 1]].sort()
    return times


@numba.njit(cache=True, inline="always", error_model="numpy")
def _open_group(starts, g, width, position, stop):
    """Point `position`/`stop` at group g's buckets; return how many durations it has."""
    for c in range(width):
        position[c] = starts[g * width + c]
        stop[c] = starts[g * width + c + 1]
    return stop[width - 1] - position[0]


@numba.njit(cache=True, inline="always", error_model="numpy")
def _next_time(times, position, stop, counts):
    """The next distinct time of a group's buckets; `counts[c]` how many of bucket c end then,
    `counts[-1]` how many of all buckets but the censored one (the events)."""
    width = len(position)
    t = np.inf
    found = False
    for c in range(width):
        if position[c] < stop[c]:
            value = times[position[c]]
            if not found or value < t:
                t = value
                found = True
    events = 0
    for c in range(width):
        p = position[c]
        while p < stop[c] and times[p] == t:
            p += 1
        counts[c] = p - position[c]
        events += counts[c] if c else 0
        position[c] = p
    counts[width] = events
    return t


@numba.njit(cache=True, error_model="numpy")
def _count_times(times, starts, n_groups, width):
    position, stop = np.empty(width, np.int64), np.empty(width, np.int64)
    counts = np.empty(width + 1, np.int64)
    rows = 0
    for g in range(n_groups):
        remaining = _open_group(starts, g, width, position, stop)
        while remaining > 0:
            _next_time(times, position, stop, counts)
            remaining -= counts[0] + counts[-1]
            rows += 1
    return rows


@numba.njit(cache=True, error_model="numpy")
def event_rows(times, starts, n_groups, n_causes):
    """The event table of `sorted_by_bucket`'s buckets: per distinct (group, time), in that
    order, group, time (months), at risk, events, censored, events by cause, first of group."""
    width = n_causes + 1
    n = _count_times(times, starts, n_groups, width)
    group, time = np.empty(n, np.int64), np.empty(n)
    at_risk, events, censored = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64)
    by_cause, first = np.zeros((n, n_causes), np.int64), np.zeros(n, np.bool_)
    position, stop = np.empty(width, np.int64), np.empty(width, np.int64)
    counts = np.empty(width + 1, np.int64)
    row = 0
    for g in range(n_groups):
        remaining = _open_group(starts, g, width, position, stop)
        if remaining > 0:
            first[row] = True
        while remaining > 0:
            time[row] = _next_time(times, position, stop, counts)
            group[row], at_risk[row], censored[row] = g, remaining, counts[0]
            by_cause[row] = counts[1:-1]
            events[row] = counts[-1]
            remaining -= counts[0] + counts[-1]
            row += 1
    return group, time, at_risk, events, censored, by_cause, first


@numba.njit(cache=True, error_model="numpy")
def km_rows(group, time, at_risk, events, censored, first):
    """Kaplan–Meier running product and Greenwood sum of an event table, with a time-0 row
    put before every group whose first time is after 0. Returns the table's columns with
    those rows, then survival and the Greenwood sum Σ d / (n (n − d))."""
    n_rows = len(time) + np.sum(first & (time > 0))
    out_group, out_time = np.empty(n_rows, group.dtype), np.empty(n_rows)
    out_at_risk, out_events = np.empty(n_rows, at_risk.dtype), np.empty(n_rows, events.dtype)
    out_censored, out_first = np.empty(n_rows, censored.dtype), np.zeros(n_rows, np.bool_)
    survival, greenwood = np.empty(n_rows), np.empty(n_rows)
    s, v, j = 1.0, 0.0, 0
    for i in range(len(time)):
        if first[i]:
            s, v = 1.0, 0.0
            out_first[j] = True
            if time[i] > 0:
                out_group[j], out_time[j], out_at_risk[j], out_events[j], out_censored[j] = group[i], 0.0, \
                    at_risk[i], 0, 0
                survival[j], greenwood[j] = 1.0, 0.0
                j += 1
        n, d = float(at_risk[i]), float(events[i])
        s = s * (1.0 - d / n)
        if d > 0:
            v = v + d / (n * (n - d))
        out_group[j], out_time[j], out_at_risk[j], out_events[j], out_censored[j] = group[i], time[i], at_risk[i], \
            events[i], censored[i]
        survival[j], greenwood[j] = s, v
        j += 1
    return out_group, out_time, out_at_risk, out_events, out_censored, out_first, survival, greenwood


@numba.njit(cache=True, inline="always", error_model="numpy")
def _loglog_limit(survival, greenwood, signed_z):
    """One log–log limit of a Kaplan–Meier estimate (`signed_z` > 0: lower); as survival's `_loglog_band`."""
    if 0.0 < survival < 1.0:
        return survival ** np.exp(signed_z * (np.sqrt(greenwood) / abs(np.log(survival))))
    if survival > 0.0:
        return survival
    return np.nan


@numba.njit(cache=True, inline="always", error_model="numpy")
def _cross(state, b, t, value, level, tolerance):
    """Feed one step of curve b (0 estimate, 1 lower, 2 upper limit) at time t to the search
    for its first crossing of `level` (R's rule, as survival's `_first_crossing`).

    state[b] = (done, flat pending, time the flat began, crossing time)."""
    if state[b, 0] or np.isnan(value):
        return
    if state[b, 1]:
        state[b, 0], state[b, 3] = 1.0, (state[b, 2] + t) / 2
    elif value <= level + tolerance:
        if abs(value - level) >= tolerance:
            state[b, 0], state[b, 3] = 1.0, t
        else:
            state[b, 1], state[b, 2] = 1.0, t


@numba.njit(cache=True, inline="always", error_model="numpy")
def _cross_step(state, t, survival, greenwood, z, level, tolerance):
    """A step of the Kaplan–Meier curve at time t for the median and both limits' crossings;
    a limit is only computed while it can still cross (the upper one is above the estimate)."""
    _cross(state, 0, t, survival, level, tolerance)
    if not state[1, 0]:
        _cross(state, 1, t, _loglog_limit(survival, greenwood, z), level, tolerance)
    if not state[2, 0] and (state[2, 1] or survival <= level + tolerance):
        _cross(state, 2, t, _loglog_limit(survival, greenwood, -z), level, tolerance)


@numba.njit(cache=True, inline="always", error_model="numpy")
def _aalen_johansen_step(sums, lagged, n, counts, d_all):
    """Add one time's terms to the running Aalen–Johansen sums (rows: causes; columns: incidence,
    Σ a F, Σ a F², Σ b, Σ c, Σ c F; sums[0, 6] holds Σ a), as survival's `_aalen_johansen`."""
    a = d_all / (n * (n - d_all)) if d_all > 0 and n > d_all else 0.0
    sums[0, 6] = sums[0, 6] + a
    lagged_squared, n_squared = lagged * lagged, n * n
    n_cubed = n_squared * n
    for c in range(sums.shape[0]):
        f = sums[c, 0]
        if counts[c + 1]:  # without events of cause c only the Σ a terms grow
            d = float(counts[c + 1])
            f = sums[c, 0] = f + lagged * d / n
            cc = lagged * d / n_squared
            sums[c, 3] += lagged_squared * d * (n - d) / n_cubed
            sums[c, 4] += cc
            sums[c, 5] += cc * f
        sums[c, 1] += a * f
        sums[c, 2] += a * (f * f)


@numba.njit(cache=True, inline="always", error_model="numpy")
def _read_incidence(sums, incidence, variance):
    """Incidence and delta-method variance of each cause from the running sums (Collett, p. 411)."""
    a_sum = sums[0, 6]
    for c in range(sums.shape[0]):
        f = sums[c, 0]
        v = f**2 * a_sum - 2 * f * sums[c, 1] + sums[c, 2] + sums[c, 3] - 2 * (f * sums[c, 4] - sums[c, 5])
        incidence[c], variance[c] = f, (0.0 if v < 0.0 else v)


@numba.njit(cache=True, error_model="numpy")
def estimates_at(times, starts, n_groups, n_causes, report_times, z, level, tolerance, with_incidence):
    """Per group of `sorted_by_bucket`'s buckets, in one walk: its size; Kaplan–Meier survival
    and Greenwood sum at `report_times` (months, ascending; NaN where not estimable); the first
    crossing of `level` by the estimate and its lower and upper log–log limits (months, NaN
    where not reached); with `with_incidence`, the Aalen–Johansen incidence and variance of
    every cause at `report_times` (groups × times × causes; NaN where not estimable)."""
    width, n_times = n_causes + 1, len(report_times)
    subjects = np.zeros(n_groups, np.int64)
    survival, greenwood = np.full((n_groups, n_times), np.nan), np.full((n_groups, n_times), np.nan)
    crossings = np.full((n_groups, 3), np.nan)
    k = n_causes if with_incidence else 0
    incidence, variance = np.full((n_groups, n_times, k), np.nan), np.full((n_groups, n_times, k), np.nan)
    position, stop, counts = np.empty(width, np.int64), np.empty(width, np.int64), np.empty(width + 1, np.int64)
    sums, state = np.zeros((max(k, 1), 7)), np.zeros((3, 4))
    for g in range(n_groups):
        remaining = subjects[g] = _open_group(starts, g, width, position, stop)
        s, v, t, km_at, aj_at = 1.0, 0.0, 0.0, 0, 0
        sums[:], state[:] = 0.0, 0.0
        while remaining > 0:
            first = remaining == subjects[g]
            t = _next_time(times, position, stop, counts)
            if first and t > 0:
                _cross_step(state, 0.0, 1.0, 0.0, z, level, tolerance)  # the curve's time-0 row
            while aj_at < n_times and report_times[aj_at] < t and k:
                _read_incidence(sums, incidence[g, aj_at], variance[g, aj_at])
                aj_at += 1
            while km_at < n_times and report_times[km_at] < t and not (first and t <= 0):
                survival[g, km_at], greenwood[g, km_at] = s, v
                km_at += 1
            n, d_all = float(remaining), float(counts[-1])
            lagged = s
            s = s * (1.0 - d_all / n)
            if d_all > 0:
                v = v + d_all / (n * (n - d_all))
            if k:
                _aalen_johansen_step(sums, lagged, n, counts, d_all)
            if first or d_all > 0:
                _cross_step(state, t, s, v, z, level, tolerance)
            remaining -= counts[0] + counts[-1]
        if subjects[g] == 0:
            continue
        everyone_stopped = k > 0 and abs(sums[:, 0].sum() - 1.0) <= 1e-8 + 1e-5
        for j in range(aj_at, n_times if k else 0):
            if report_times[j] <= t or everyone_stopped:
                _read_incidence(sums, incidence[g, j], variance[g, j])
        for j in range(km_at, n_times):
            if report_times[j] <= t or s == 0.0:
                survival[g, j], greenwood[g, j] = s, v
        for b in range(3):
            crossings[g, b] = state[b, 3] if state[b, 0] else ((state[b, 2] + t) / 2 if state[b, 1] else np.nan)
    return subjects, survival, greenwood, crossings, incidence, variance


@numba.njit(cache=True, error_model="numpy")
def incidence_rows(group, time, at_risk, events, censored, by_cause, n_cubed, present):
    """Aalen–Johansen incidence of every cause and its delta-method variance (Collett, p. 411)
    on the rows of an event table (group, time order), with a time-0 row put before every
    group whose first time is after 0. `n_cubed` is at risk cubed per row (NumPy's power,
    passed in so that it is NumPy's float); causes not `present` keep 0.

    The arithmetic repeats, operation for operation, the NumPy running products and sums of
    the full-table estimate this replaced (`lagged d / n` summed, Σ a F, Σ a F², Σ b, Σ c,
    Σ c F), so the values are those floats. Returns the table's columns with the time-0 rows,
    then incidence and variance (rows × causes)."""
    n_rows, k = len(time), by_cause.shape[1]
    extra = 0
    for i in range(n_rows):
        if (i == 0 or group[i] != group[i - 1]) and time[i] > 0:
            extra += 1
    size = n_rows + extra
    out_group, out_time = np.empty(size, group.dtype), np.empty(size)
    out_at_risk, out_events = np.empty(size, at_risk.dtype), np.empty(size, events.dtype)
    out_censored, out_first = np.empty(size, censored.dtype), np.zeros(size, np.bool_)
    out_by_cause = np.zeros((size, k), by_cause.dtype)
    incidence, variance = np.zeros((size, k)), np.zeros((size, k))
    sums = np.zeros((k, 6))  # per cause: F, Σ a F, Σ a F², Σ b, Σ c, Σ c F
    survival, a_sum, j = 1.0, 0.0, 0
    for i in range(n_rows):
        first = i == 0 or group[i] != group[i - 1]
        if first:
            out_first[j] = True
            if time[i] > 0:
                out_group[j], out_time[j], out_at_risk[j], out_events[j], out_censored[j] = group[i], 0.0, \
                    at_risk[i], 0, 0
                j += 1
                out_first[j] = False
        n, d_all = float(at_risk[i]), float(events[i])
        lagged = 1.0 if first else survival
        ratio = 1.0 - d_all / n
        survival = ratio if first else survival * ratio
        a = d_all / (n * (n - d_all)) if d_all > 0 and n > d_all else 0.0
        a_sum = a if first else a_sum + a
        for c in range(k):
            if not present[c]:
                continue
            d = float(by_cause[i, c])
            f = lagged * d / n
            b = lagged * lagged * d * (n - d) / n_cubed[i]
            cc = lagged * d / (n * n)
            if first:
                sums[c, 0] = f
                sums[c, 1], sums[c, 2], sums[c, 3] = a * f, a * (f * f), b
                sums[c, 4], sums[c, 5] = cc, cc * f
            else:
                f = sums[c, 0] = sums[c, 0] + f
                sums[c, 1] += a * f
                sums[c, 2] += a * (f * f)
                sums[c, 3] += b
                sums[c, 4] += cc
                sums[c, 5] += cc * f
            v = f * f * a_sum - 2.0 * f * sums[c, 1] + sums[c, 2] + sums[c, 3] - 2.0 * (f * sums[c, 4] - sums[c, 5])
            incidence[j, c], variance[j, c] = f, (0.0 if v < 0.0 else v)
        out_group[j], out_time[j], out_at_risk[j], out_events[j], out_censored[j] = group[i], time[i], at_risk[i], \
            events[i], censored[i]
        out_by_cause[j] = by_cause[i]
        j += 1
    return out_group, out_time, out_at_risk, out_events, out_censored, out_by_cause, out_first, incidence, variance
