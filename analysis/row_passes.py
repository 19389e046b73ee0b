"""Compiled passes behind `analysis.keys`, `analysis.outcomes` and `analysis.survival`: one
walk over the rows where NumPy would sort, search or make a temporary array per step.

The engines write every table in (replicate, strategy, patient) order, so a patient's rows
are found by walking two ordered tables side by side (a merge) instead of sorting one and
searching it; tables in any other order are left to the general NumPy code (the passes
here say so rather than guess).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, inline="always", error_model="numpy")
def _key(replicate, strategy, patient, width):
    # As `analysis.keys._patient_keys`: ordered as (replicate, strategy, patient).
    if strategy < 0:
        return np.int64(-1)
    return (np.int64(replicate) * width + strategy + 1) * np.int64(4294967296) + np.int64(patient)


@numba.njit(cache=True, error_model="numpy")
def merged_rows(replicate, strategy, patient, known_replicate, known_strategy, known_patient, width):
    """Position of each row's patient among the known patients (-1: none), by a merge; the
    known keys must be strictly increasing and every row's key (strategy -1 left out) not
    decreasing. Returns ``(rows, True)``, or ``(empty, False)`` when the order is not so."""
    n_known = len(known_patient)
    known = np.empty(n_known, np.int64)
    for j in range(n_known):
        known[j] = _key(known_replicate[j], known_strategy[j], known_patient[j], width)
        if known[j] < 0 or (j and known[j] <= known[j - 1]):
            return np.empty(0, np.int64), False
    rows = np.empty(len(patient), np.int64)
    j, previous = 0, np.int64(-1)
    for i in range(len(patient)):
        key = _key(replicate[i], strategy[i], patient[i], width)
        if key < 0:
            rows[i] = -1
            continue
        if key < previous:
            return np.empty(0, np.int64), False
        previous = key
        while j < n_known and known[j] < key:
            j += 1
        rows[i] = j if j < n_known and known[j] == key else -1
    return rows, True


@numba.njit(cache=True, error_model="numpy")
def earliest(rows, chosen, first, second, size):
    """The earliest of `first` and of `second` (months) per row number among the `chosen`
    rows with a row number (>= 0); NaN where there is none. As ``np.fmin.at`` in row order:
    missing times are skipped."""
    out_first, out_second = np.full(size, np.nan), np.full(size, np.nan)
    for i in range(len(rows)):
        r = rows[i]
        if chosen[i] and r >= 0:
            t = first[i]
            if not np.isnan(t) and (np.isnan(out_first[r]) or t < out_first[r]):
                out_first[r] = t
            t = second[i]
            if not np.isnan(t) and (np.isnan(out_second[r]) or t < out_second[r]):
                out_second[r] = t
    return out_first, out_second


@numba.njit(cache=True, error_model="numpy")
def combined_codes(first, second, second_size, possible):
    """Combined code ``first * second_size + second`` of every row (-1 where either code is
    -1) and, per possible combination, whether it occurs (a row with codes of one column:
    `second` empty)."""
    n = len(first)
    combined = np.empty(n, np.int64)
    present = np.zeros(possible, np.bool_)
    two = len(second) > 0
    for i in range(n):
        code = np.int64(first[i])
        if two:
            if code < 0 or second[i] < 0:
                combined[i] = -1
                continue
            code = code * second_size + second[i]
        elif code < 0:
            combined[i] = -1
            continue
        combined[i] = code
        present[code] = True
    return combined, present


@numba.njit(cache=True, error_model="numpy")
def renumbered(combined, number):
    """`number[code]` of each row's combined code (-1 stays -1), in place."""
    for i in range(len(combined)):
        if combined[i] >= 0:
            combined[i] = number[combined[i]]
    return combined


@numba.njit(cache=True, error_model="numpy")
def group_moments(values, group, size, spread):
    """Per group number (0 .. size - 1; -1 left out) of one column: values that are not NaN,
    their plain sum, mean and standard deviation (ddof 1; NaN under two values, and all NaN
    without `spread`: Welford's division per value is most of the time).

    The mean and deviation repeat pandas' groupby kernels operation for operation (a
    compensated sum; Welford's update), so they are the floats `DataFrame.groupby(...).mean()`
    and `.std()` give."""
    count = np.zeros(size, np.int64)
    total, compensated, compensation = np.zeros(size), np.zeros(size), np.zeros(size)
    mean, squares = np.zeros(size), np.zeros(size)
    for i in range(len(values)):
        g = group[i]
        value = np.float64(values[i])
        if g < 0 or value != value:
            continue
        count[g] += 1
        total[g] += value
        y = value - compensation[g]
        t = compensated[g] + y
        compensation[g] = t - compensated[g] - y
        if compensation[g] != compensation[g]:  # an infinite value: pandas resets it
            compensation[g] = 0.0
        compensated[g] = t
        if not spread:
            continue
        old = mean[g]
        mean[g] += (value - old) / count[g]
        squares[g] += (value - mean[g]) * (value - old)
    average, deviation = np.full(size, np.nan), np.full(size, np.nan)
    for g in range(size):
        if count[g]:
            average[g] = compensated[g] / count[g]
        if spread and count[g] > 1:
            deviation[g] = np.sqrt(squares[g] / (count[g] - 1))
    return count, total, average, deviation
