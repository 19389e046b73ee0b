"""The compiled passes of `analysis.survival` against plain loops written from the definitions.

Kaplan–Meier, Greenwood, Aalen–Johansen (Collett's variance) and R's median rule, computed
here one subject at a time in Python, on tables with ties, censoring at event times, groups
left empty, a group with every subject censored and report times before, on and after the data.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.survival import _TOLERANCE, estimates_at, event_table, km_curves

Z = 1.959963984540054
TIMES = np.array([36.0, 0.5, 3.0, 12.0, 40.0])  # not ascending on purpose


def _plain_rows(t, cause, n_causes):
    """Distinct times of one group: (time, at risk, censored, events by cause)."""
    rows = []
    for time in sorted(set(t)):
        at = [c for x, c in zip(t, cause) if x == time]
        rows.append((time, sum(x >= time for x in t), at.count(-1), [at.count(c) for c in range(n_causes)]))
    return rows


def _plain_estimates(t, cause, n_causes, times):
    """KM survival and limits, median (R's rule) and AJ incidence with Collett's variance at `times`."""
    rows, s, v = _plain_rows(t, cause, n_causes), 1.0, 0.0
    curve = [(0.0, 1.0, 0.0)] if rows[0][0] > 0 else []
    f, history = [0.0] * n_causes, []  # history: (time, S before, n, d_all, d by cause)
    for time, n, _, d in rows:
        history.append((time, s, n, sum(d), d))
        s *= 1 - sum(d) / n
        v += (sum(d) / (n * (n - sum(d))) if n > sum(d) else math.inf) if sum(d) else 0.0
        curve.append((time, s, v))
    last = rows[-1][0]

    def km(at):
        past = [c for c in curve if c[0] <= at] or curve[:1]
        _, s_at, v_at = past[-1]
        if at > last and curve[-1][1] != 0:
            return (math.nan,) * 3
        return (s_at, *_limits(s_at, v_at))

    def aj(at):
        seen = [h for h in history if h[0] <= at]
        f = [sum(h[1] * h[4][c] / h[2] for h in seen) for c in range(n_causes)]
        total = sum(h[1] * h[4][c] / h[2] for h in history for c in range(n_causes))
        if at > last and not math.isclose(total, 1.0, abs_tol=1e-8, rel_tol=1e-5):
            return [math.nan] * n_causes, [math.nan] * n_causes
        variance = []
        for c in range(n_causes):
            total_var, f_j = 0.0, 0.0
            for _, lag, n, d_all, d in seen:
                f_j += lag * d[c] / n
                a = d_all / (n * (n - d_all)) if d_all and n > d_all else 0.0
                total_var += a * (f[c] - f_j) ** 2 + lag**2 * d[c] * (n - d[c]) / n**3 \
                    - 2 * lag * d[c] / n**2 * (f[c] - f_j)
            variance.append(max(total_var, 0.0))
        return f, variance

    bands = [[(c[0], c[1]) for c in curve], [(c[0], _limits(c[1], c[2])[0]) for c in curve],
             [(c[0], _limits(c[1], c[2])[1]) for c in curve]]
    return [km(x) for x in times], [_median(b, last) for b in bands], [aj(x) for x in times]


def _limits(s, v):
    if s == 0:
        return math.nan, math.nan
    if s == 1:
        return 1.0, 1.0
    sigma = math.sqrt(v) / abs(math.log(s))
    return s ** math.exp(Z * sigma), s ** math.exp(-Z * sigma)


def _median(curve, last):
    """R's quantile.survfit at 0.5 on a step curve [(time, value)]."""
    steps, previous = [], None
    for time, value in curve:
        if not math.isnan(value) and value != previous:
            steps.append((time, value))
            previous = value
    for i, (time, value) in enumerate(steps):
        if value <= 0.5 + _TOLERANCE:
            if abs(value - 0.5) >= _TOLERANCE:
                return time
            return (time + (steps[i + 1][0] if i + 1 < len(steps) else last)) / 2
    return math.nan


def _sample(seed):
    """Five groups: 0 and 3 small with ties, 1 empty, 2 all censored, 4 with a median flat at 0.5."""
    rng = np.random.default_rng(seed)
    t0 = rng.integers(0, 12, 60).astype(float)  # many ties, some durations 0
    c0 = rng.integers(-1, 3, 60)
    t2, c2 = rng.exponential(5, 7), np.full(7, -1)
    t3 = rng.integers(1, 40, 300) / 2.0
    c3 = rng.integers(-1, 3, 300)
    t4, c4 = np.array([1.0, 2.0, 3.0, 5.0]), np.array([0, 1, -1, 2])  # S = 3/4, 1/2 (flat), 0
    t = np.concatenate([t0, t2, t3, t4, [7.0, np.nan]])
    cause = np.concatenate([c0, c2, c3, c4, [0, 0]])
    group = np.concatenate([np.zeros(60), np.full(7, 2), np.full(300, 3), np.full(4, 4), [-1, 0]]).astype(int)
    return t, cause, group


@pytest.mark.parametrize("seed", [1, 2])
def test_event_table_and_curves_equal_plain_counts_and_products(seed):
    t, cause, group = _sample(seed)
    table = event_table(t, cause, group, 3)
    curve = km_curves(table, Z)
    for g in (0, 2, 3, 4):
        keep = (group == g) & ~np.isnan(t)
        rows = _plain_rows(t[keep].tolist(), cause[keep].tolist(), 3)
        mine = table["group"] == g
        assert np.array_equal(table["time"][mine], [r[0] for r in rows])
        assert np.array_equal(table["at_risk"][mine], [r[1] for r in rows])
        assert np.array_equal(table["censored"][mine], [r[2] for r in rows])
        assert np.array_equal(table["by_cause"][mine], [r[3] for r in rows])
        km, _, _ = _plain_estimates(t[keep].tolist(), cause[keep].tolist(), 3, curve["time"][curve["group"] == g].tolist())
        np.testing.assert_allclose(curve["survival"][curve["group"] == g], [k[0] for k in km], rtol=1e-12)
        np.testing.assert_allclose(curve["ci_low"][curve["group"] == g], [k[1] for k in km], rtol=1e-12)
    assert 1 not in table["group"] and table["first"].sum() == 4


@pytest.mark.parametrize("seed", [1, 2])
def test_estimates_at_times_equal_plain_definitions(seed):
    t, cause, group = _sample(seed)
    at = estimates_at(t, cause, group, 3, TIMES, Z)
    assert list(at["group"]) == [0, 2, 3, 4]
    for i, g in enumerate(at["group"]):
        keep = (group == g) & ~np.isnan(t)
        km, medians, aj = _plain_estimates(t[keep].tolist(), cause[keep].tolist(), 3, TIMES)
        assert at["subjects"][i] == keep.sum()
        for name, j in (("survival", 0), ("ci_low", 1), ("ci_high", 2)):
            np.testing.assert_allclose(at[name][i], [k[j] for k in km], rtol=1e-12)
        np.testing.assert_allclose([at["median_months"][i], at["median_ci_low"][i], at["median_ci_high"][i]],
                                   medians, rtol=1e-12)
        rows = slice(i * len(TIMES), (i + 1) * len(TIMES))
        np.testing.assert_allclose(at["cumulative_incidence"][rows], [a[0] for a in aj], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(at["standard_error"][rows] ** 2, [a[1] for a in aj], rtol=1e-9, atol=1e-15)
    flat = list(at["group"]).index(4)
    assert at["median_months"][flat] == 3.5  # S = 1/2 from 2 to 5 months: the midpoint, as R
    assert np.isnan(at["median_months"][list(at["group"]).index(2)])  # all censored: never reached


def test_estimates_at_with_no_rows_and_a_bad_cause():
    empty = estimates_at(np.zeros(0), np.zeros(0, int), np.zeros(0, int), 2, TIMES, Z)
    assert len(empty["group"]) == 0 and empty["cumulative_incidence"].shape == (0, 2)
    with pytest.raises(ValueError, match="cause"):
        event_table(np.ones(3), np.array([0, 5, 0]), np.zeros(3, int), 2)
