"""Costs and QALYs of each patient, integrated exactly over continuous time.

A trajectory is cut into intervals with a cost rate (drug and monitoring, per month)
and a utility: on a drug before its assessment or not responding (`uncontrolled on
systemic`, also while waiting for a drug), responding (`controlled on systemic`), back
on topical therapy (`topical`), strategy exhausted (`supportive care`). One-off costs
and utility losses happen at events: starting a drug (with its loading dose and tests),
an adverse event, a corticosteroid burst, a relapse. Discounting is exact: the integral
of the discount factor over each interval (continuous), or whole-year factors (annual).
All times are months since the patient entered; QALYs are in years.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.keys import is_one_of, patient_rows, per_label
from sim.economics import Economics, monthly_rate

_KEYS = ["replicate", "strategy", "patient"]
_CENSORED = ("horizon", "lost_to_followup", "death")


def discount_integral(start: np.ndarray, stop: np.ndarray, rate_per_year: float, method: str) -> np.ndarray:
    """Return the integral of the discount factor from `start` to `stop` (months)."""
    start, stop = np.asarray(start, float), np.asarray(stop, float)
    if rate_per_year == 0:
        return stop - start
    if method == "continuous":
        delta = monthly_rate(rate_per_year)
        return (np.exp(-delta * start) - np.exp(-delta * stop)) / delta
    return _annual_cumulative(stop, rate_per_year) - _annual_cumulative(start, rate_per_year)


def _annual_cumulative(t: np.ndarray, rate_per_year: float) -> np.ndarray:
    v = 1.0 / (1.0 + rate_per_year)
    years = np.floor(t / 12.0)
    whole = 12.0 * (1.0 - v**years) / (1.0 - v)
    return whole + (t - 12.0 * years) * v**years


def discount_factor(t: np.ndarray, rate_per_year: float, method: str) -> np.ndarray:
    """Return the discount factor of a one-off event at time `t` (months)."""
    t = np.asarray(t, float)
    if method == "continuous":
        return np.exp(-monthly_rate(rate_per_year) * t)
    return (1.0 + rate_per_year) ** -np.floor(t / 12.0)


def patient_costs(episodes: pd.DataFrame, patients: pd.DataFrame, economics: Economics,
                  adverse_events: pd.DataFrame | None = None, bursts: pd.DataFrame | None = None) -> pd.DataFrame:
    """Return, per patient and strategy, costs (in the setting's currency) and QALYs.

    Columns: `replicate, strategy, patient`, then discounted `cost_drugs_<CUR>`,
    `cost_monitoring_<CUR>`, `cost_events_<CUR>`, `cost_total_<CUR>`, `qalys`, and the
    undiscounted `cost_total_undiscounted_<CUR>`, `qalys_undiscounted`, `life_years`.
    """
    cur = economics.currency
    patients = patients.reset_index(drop=True)
    course = _Episodes(episodes, patient_rows(episodes, patients))
    weights = _weights(course, patients, economics)
    out = patients[_KEYS].copy()
    parts = {
        "drugs": _drug_costs(course, weights, economics),
        "monitoring": _monitoring_costs(course, economics),
        "events": _event_costs(course, economics, adverse_events, bursts, patients),
    }
    for name, (discounted, undiscounted, where) in parts.items():
        out[f"cost_{name}_{cur}"] = _sum_by(discounted, where, len(patients))
        out[f"_undiscounted_{name}"] = _sum_by(undiscounted, where, len(patients))
    out[f"cost_total_{cur}"] = sum(out[f"cost_{name}_{cur}"] for name in parts)
    out[f"cost_total_undiscounted_{cur}"] = sum(out.pop(f"_undiscounted_{name}") for name in parts)
    qalys, qalys_undiscounted = _qalys(course, patients, economics, adverse_events, bursts)
    out["qalys"] = qalys
    out["qalys_undiscounted"] = qalys_undiscounted
    out["life_years"] = patients["follow_up_months"].to_numpy() / 12.0
    return out


class _Episodes:
    """Each patient's course of episodes: the columns costs and QALYs need, as arrays
    ordered by patient row (of the patients table) then episode; `row` is that row."""

    def __init__(self, episodes: pd.DataFrame, rows: np.ndarray):
        order = np.lexsort((episodes["episode"].to_numpy(), rows))
        self.row = rows[order]
        self.start = episodes["start"].to_numpy(float)[order]
        self.stop = episodes["stop"].to_numpy(float)[order]
        self.assessed = (episodes["assessed"].to_numpy(float)[order] if "assessed" in episodes
                         else np.full(len(order), np.nan))
        self.responded = episodes["responded"].astype("boolean").fillna(False).to_numpy(bool)[order]
        self.treatment = episodes["treatment"].iloc[order]
        self.remission = is_one_of(episodes["reason"], ("remission",))[order]
        self.censored = is_one_of(episodes["reason"], _CENSORED)[order]

    def __len__(self) -> int:
        return len(self.row)


def _sum_by(values: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(rows, weights=values, minlength=n) if len(rows) else np.zeros(n)


def _weights(course: _Episodes, patients, economics) -> np.ndarray | None:
    needs_weight = any(per_kg for _, per_kg in economics.drug_per_month.values()) or \
        any(per_kg for _, per_kg in economics.loading.values())
    if not needs_weight:
        return None
    if "weight_kg" not in patients.columns:
        raise ValueError("the economic setting doses a drug per kg: the population needs a weight_kg covariate")
    return patients["weight_kg"].to_numpy(float)[course.row]


def _per_treatment(course: _Episodes, table: dict, position: int | None = None) -> np.ndarray:
    def value_of(treatment: str) -> float:
        if treatment not in table:
            return 0.0
        return table[treatment] if position is None else table[treatment][position]

    return per_label(course.treatment, value_of)


def _drug_costs(course: _Episodes, weights, economics):
    """The drug over each episode, and its loading dose at the start."""
    discounted, undiscounted, rows = _interval_costs(course, _by_weight(course, economics.drug_per_month, weights),
                                                     economics)
    loading = _by_weight(course, economics.loading, weights)
    factor = discount_factor(course.start, economics.cost_discount_per_year, economics.method)
    return discounted + loading * factor, undiscounted + loading, rows


def _by_weight(course: _Episodes, table, weights) -> np.ndarray:
    fixed = _per_treatment(course, table, 0)
    per_kg = _per_treatment(course, table, 1)
    return fixed + (per_kg * weights if weights is not None else 0.0)


def _monitoring_costs(course: _Episodes, economics):
    return _interval_costs(course, _per_treatment(course, economics.monitoring_per_month), economics)


def _interval_costs(course: _Episodes, rate, economics):
    discounted = rate * discount_integral(course.start, course.stop, economics.cost_discount_per_year, economics.method)
    return discounted, rate * (course.stop - course.start), course.row


def _event_costs(course: _Episodes, economics, adverse_events, bursts, patients):
    """One-off costs: drug starts (tests, visit), adverse events, bursts, relapses."""
    relapsed = _after_relapse(course)
    times = [course.start, course.start[relapsed]]
    costs = [_per_treatment(course, economics.at_start) + economics.drug_start,
             np.full(int(relapsed.sum()), economics.relapse)]
    rows = [course.row, course.row[relapsed]]
    for frame, cost_of in ((adverse_events, _adverse_event_cost(economics)),
                           (bursts, lambda f: np.full(len(f), economics.burst[0]))):
        if frame is not None and len(frame):
            times.append(frame["time"].to_numpy(float))
            costs.append(cost_of(frame))
            rows.append(patient_rows(frame, patients))
    t, c, r = np.concatenate(times), np.concatenate(costs), np.concatenate(rows)
    return c * discount_factor(t, economics.cost_discount_per_year, economics.method), c, r


def _adverse_event_cost(economics):
    def cost(frame):
        return per_label(frame["adverse_event"], lambda name: economics.adverse_events.get(name, (0.0, 0.0))[0])
    return cost


def _after_relapse(course: _Episodes) -> np.ndarray:
    """Episodes that start after a spell on topical therapy: a relapse brought the patient back."""
    if not len(course):
        return np.zeros(0, bool)
    return np.r_[False, (course.row[1:] == course.row[:-1]) & course.remission[:-1]]


def state_intervals(course: _Episodes, patients: pd.DataFrame) -> list[tuple]:
    """Return the (patient rows, start, stop, state) intervals covering each patient's
    follow-up (months), as arrays per piece."""
    known = ~np.isnan(course.assessed)
    rows, start, stop, assessed, responded = course.row, course.start, course.stop, course.assessed, course.responded
    pieces = [
        (rows, start, np.where(known, assessed, stop), "uncontrolled_on_systemic"),
        (rows[known & responded], assessed[known & responded], stop[known & responded], "controlled_on_systemic"),
        (rows[known & ~responded], assessed[known & ~responded], stop[known & ~responded], "uncontrolled_on_systemic"),
    ]
    return pieces + _gaps(course, patients)


def _gaps(course: _Episodes, patients):
    """Intervals between and after episodes, and whole follow-ups without any episode."""
    rows, start, stop = course.row, course.start, course.stop
    first = np.r_[True, rows[1:] != rows[:-1]] if len(rows) else np.zeros(0, bool)
    last = np.r_[rows[1:] != rows[:-1], True] if len(rows) else np.zeros(0, bool)
    previous_stop = np.r_[0.0, stop[:-1]] if len(rows) else np.zeros(0)
    gap_start = np.where(first, 0.0, previous_stop)
    after_remission = _after_relapse(course)
    follow_up = patients["follow_up_months"].to_numpy(float)
    waiting = is_one_of(patients["final_state"], ("waiting",))
    tail = last & ~course.censored
    tail_rows, tail_start = rows[tail], stop[tail]
    tail_state = np.where(course.remission[tail], "topical",
                          np.where(waiting[tail_rows], "uncontrolled_on_systemic", "supportive_care"))
    without = np.setdiff1d(np.arange(len(patients)), rows)
    without_state = np.where(waiting[without], "uncontrolled_on_systemic", "supportive_care")
    return [
        (rows[after_remission], gap_start[after_remission], start[after_remission], "topical"),
        (rows[~after_remission], gap_start[~after_remission], start[~after_remission], "uncontrolled_on_systemic"),
        *[(tail_rows[tail_state == s], tail_start[tail_state == s], follow_up[tail_rows[tail_state == s]], s)
          for s in ("topical", "uncontrolled_on_systemic", "supportive_care")],
        *[(without[without_state == s], np.zeros((without_state == s).sum()), follow_up[without[without_state == s]], s)
          for s in ("uncontrolled_on_systemic", "supportive_care")],
    ]


def _qalys(course: _Episodes, patients, economics, adverse_events, bursts):
    pieces = state_intervals(course, patients)
    utility = np.concatenate([np.full(len(r), economics.utilities.get(s, np.nan)) for r, _, _, s in pieces])
    r = np.concatenate([piece[0] for piece in pieces]).astype(int)
    a = np.concatenate([piece[1] for piece in pieces]).astype(float)
    b = np.concatenate([piece[2] for piece in pieces]).astype(float)
    discounted = utility * discount_integral(a, b, economics.qaly_discount_per_year, economics.method) / 12.0
    undiscounted = utility * (b - a) / 12.0
    qalys = _sum_by(discounted, r, len(patients))
    plain = _sum_by(undiscounted, r, len(patients))
    for frame, loss_of in ((adverse_events, lambda f: per_label(
            f["adverse_event"], lambda name: economics.adverse_events.get(name, (0.0, 0.0))[1])),
            (bursts, lambda f: np.full(len(f), economics.burst[1]))):
        if frame is not None and len(frame):
            loss = loss_of(frame) / 12.0
            where = patient_rows(frame, patients)
            qalys -= _sum_by(loss * discount_factor(frame["time"].to_numpy(float), economics.qaly_discount_per_year,
                                                    economics.method), where, len(patients))
            plain -= _sum_by(loss, where, len(patients))
    return qalys, plain
