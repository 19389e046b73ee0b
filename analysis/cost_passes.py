"""Compiled passes behind `analysis.costs`: the year-by-year discounting of each interval.

With whole-year (annual) discounting an interval's integral is a sum over the years it
reaches. NumPy did it year by year over the intervals still reaching that year (gathering
and scattering every array at each step); here two walks over the intervals in order do the
same arithmetic, operation for operation. The cubes in between stay NumPy's (its vectorised
power can differ in the last bit from the compiled one), so the sums are the same floats.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, inline="always", error_model="numpy")
def _clip(x, low, high):
    """NumPy's `clip` of one value: NaN stays NaN."""
    if np.isnan(x):
        return x
    x = x if x > low else low
    return x if x < high else high


@numba.njit(cache=True, error_model="numpy")
def year_bounds(start, stop, first_year, span):
    """For every interval (months `start` to `stop`) and every year it reaches, in order (the
    years `first_year` to `first_year + span`): where that year's part begins and ends,
    in months since the interval's start. Returns (begins, ends), flat."""
    n, size = len(start), 0
    for i in range(n):
        size += int(span[i]) + 1
    begins, ends = np.empty(size), np.empty(size)
    j = 0
    for i in range(n):
        for step in range(int(span[i]) + 1):
            year = first_year[i] + step
            begins[j] = _clip(start[i], 12.0 * year, 12.0 * (year + 1)) - start[i]
            ends[j] = _clip(stop[i], 12.0 * year, 12.0 * (year + 1)) - start[i]
            j += 1
    return begins, ends


@numba.njit(cache=True, error_model="numpy")
def year_sums(q0, q1, q2, first_year, span, factors, lowest, begins, ends, begins_cubed, ends_cubed):
    """Per interval, the sum over its years of the year's discount factor (``factors[year -
    lowest]``) times the integral of q0 + q1 s + q2 s^2 over that year's part (`year_bounds`,
    with the cubes of its bounds)."""
    n = len(q0)
    total = np.zeros(n)
    j = 0
    for i in range(n):
        for step in range(int(span[i]) + 1):
            factor = factors[int(first_year[i] + step) - lowest]
            x, y = ends[j], begins[j]
            upper = q0[i] * x + q1[i] * (x * x) / 2.0 + q2[i] * ends_cubed[j] / 3.0
            lower = q0[i] * y + q1[i] * (y * y) / 2.0 + q2[i] * begins_cubed[j] / 3.0
            total[i] += factor * (upper - lower)
            j += 1
    return total
