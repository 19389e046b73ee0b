"""Individual patients' data rebuilt from a published Kaplan–Meier curve.

The algorithm of Guyot, Ades, Ouwens and Welton (BMC Med Res Methodol 2012; 12:9):
between two times of the published risk table, censorings are spread evenly and
their number adjusted until the rebuilt number at risk at the next time matches the
published one; the events at each digitised point are those that bring the rebuilt
Kaplan–Meier estimate down to the digitised survival. Times are in months.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Reconstructed:
    """Rebuilt individual data: `months` to event or censoring and `event` (True = event)."""

    months: np.ndarray
    event: np.ndarray


def _clean_curve(times: np.ndarray, survival: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Digitised points sorted, starting at (0, 1), survival made non-increasing (digitising jitter)."""
    order = np.argsort(times, kind="stable")
    t, s = np.asarray(times, float)[order], np.clip(np.asarray(survival, float)[order], 0.0, 1.0)
    if t[0] > 0:
        t, s = np.concatenate([[0.0], t]), np.concatenate([[1.0], s])
    s[0] = 1.0
    return t, np.minimum.accumulate(s)


def _interval_pass(i, lower, upper, t, s, censored, ncensor, nhat, deaths, km, last):
    """Spread `ncensor` censorings over interval i and rebuild its events; returns the last index with an event."""
    a, b = lower[i], upper[i]
    censored[a:b + 1] = 0
    if ncensor > 0:
        end = t[lower[i + 1]] if i + 1 < len(lower) else t[b]
        spread = t[a] + np.arange(1, ncensor + 1) * (end - t[a]) / (ncensor + 1)
        edges = t[a:b + 2] if b + 1 < len(t) else np.append(t[a:b + 1], np.inf)
        censored[a:b + 1] = np.histogram(spread, bins=edges)[0] if len(edges) > 1 else ncensor
    for k in range(a, b + 1):
        if k == 0:
            deaths[k], km[k] = 0, 1.0
        else:
            base = km[last] if km[last] > 0 else 1.0
            deaths[k] = max(0, int(round(nhat[k] * (1 - s[k] / base)))) if nhat[k] > 0 else 0
            deaths[k] = min(deaths[k], nhat[k])
            km[k] = km[last] * (1 - deaths[k] / nhat[k]) if nhat[k] > 0 else km[last]
        censored[k] = min(censored[k], nhat[k] - deaths[k])
        nhat[k + 1] = nhat[k] - deaths[k] - censored[k]
        if deaths[k] != 0:
            last = k
    return last


def guyot(curve_months, curve_survival, risk_months, at_risk) -> Reconstructed:
    """Rebuild individual data from digitised points (`curve_months`, `curve_survival` in
    [0, 1]) and the published numbers `at_risk` at `risk_months` (the first at 0 months:
    the cohort size). Returns one row per patient (months, event)."""
    t, s = _clean_curve(np.asarray(curve_months, float), np.asarray(curve_survival, float))
    risk_t = np.asarray(risk_months, float)
    n_risk = np.asarray(at_risk, dtype=np.int64).copy()
    lower = np.searchsorted(t, risk_t, side="left")
    keep = lower < len(t)  # risk-table times after the last digitised point add nothing
    lower, n_risk = lower[keep], n_risk[keep]
    upper = np.append(lower[1:] - 1, len(t) - 1)
    n_points, n_int = len(t), len(lower)
    censored = np.zeros(n_points, dtype=np.int64)
    deaths = np.zeros(n_points, dtype=np.int64)
    nhat = np.zeros(n_points + 1, dtype=np.int64)
    nhat[0] = n_risk[0]
    km = np.ones(n_points)
    ncensor = np.zeros(n_int, dtype=np.int64)
    last = 0
    for i in range(n_int - 1):
        ratio = s[lower[i + 1]] / s[lower[i]] if s[lower[i]] > 0 else 0.0
        ncensor[i] = max(0, int(round(n_risk[i] * ratio - n_risk[i + 1])))
        nhat[lower[i]] = n_risk[i]
        for _ in range(200):  # converges in a few passes; the cap guards against a cycle
            candidate = _interval_pass(i, lower, upper, t, s, censored, ncensor[i], nhat, deaths, km, last)
            miss = nhat[lower[i + 1]] - n_risk[i + 1]
            if miss == 0 or (miss < 0 and ncensor[i] == 0):
                break
            ncensor[i] = max(0, ncensor[i] + miss)
        last = candidate
        n_risk[i + 1] = min(n_risk[i + 1], nhat[lower[i + 1]])
    # The last interval has no number at risk at its end: censor at the average rate so far.
    i = n_int - 1
    nhat[lower[i]] = n_risk[i]
    if n_int > 1:
        so_far = t[upper[i - 1]] - t[lower[0]]
        rate = ncensor[:i].sum() / so_far if so_far > 0 else 0.0
        ncensor[i] = min(int(round(rate * (t[upper[i]] - t[lower[i]]))), n_risk[i])
    _interval_pass(i, lower, upper, t, s, censored, ncensor[i], nhat, deaths, km, last)
    return _rows(t, deaths, censored, int(n_risk[0]))


def _rows(t, deaths, censored, total) -> Reconstructed:
    """Events at their digitised time, censorings midway to the next point, the rest at the last time."""
    midway = np.append((t[:-1] + t[1:]) / 2, t[-1])
    months = np.concatenate([np.repeat(t, deaths), np.repeat(midway, censored)])
    event = np.concatenate([np.ones(deaths.sum(), bool), np.zeros(censored.sum(), bool)])
    rest = max(0, total - len(months))
    months = np.concatenate([months, np.full(rest, t[-1])])
    event = np.concatenate([event, np.zeros(rest, bool)])
    return Reconstructed(months, event)


def km_steps(months, event) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan–Meier of individual data: the distinct event times (months) and survival just after each."""
    months, event = np.asarray(months, float), np.asarray(event, bool)
    times = np.unique(months[event])
    at_risk = (months[None, :] >= times[:, None]).sum(axis=1)
    died = np.array([np.sum((months == x) & event) for x in times])
    return times, np.cumprod(1 - died / at_risk)


def km_at(times, survival, at) -> np.ndarray:
    """A step curve (`times`, `survival`, starting from 1 at 0) read at months `at`."""
    index = np.searchsorted(np.asarray(times), np.asarray(at, float), side="right") - 1
    return np.where(index >= 0, np.asarray(survival)[np.maximum(index, 0)], 1.0)
