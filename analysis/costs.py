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
    rows = _row_index(episodes, patients)
    order = np.lexsort((episodes["episode"].to_numpy(), rows))
    rows = rows[order]
    episodes = episodes.iloc[order].assign(_row=rows)
    weights = _weights(episodes, patients, economics)
    out = patients[_KEYS].copy()
    parts = {
        "drugs": _drug_costs(episodes, weights, economics),
        "monitoring": _monitoring_costs(episodes, economics),
        "events": _event_costs(episodes, economics, adverse_events, bursts, patients),
    }
    for name, (discounted, undiscounted, where) in parts.items():
        out[f"cost_{name}_{cur}"] = _sum_by(discounted, where, len(patients))
        out[f"_undiscounted_{name}"] = _sum_by(undiscounted, where, len(patients))
    out[f"cost_total_{cur}"] = sum(out[f"cost_{name}_{cur}"] for name in parts)
    out[f"cost_total_undiscounted_{cur}"] = sum(out.pop(f"_undiscounted_{name}") for name in parts)
    qalys, qalys_undiscounted = _qalys(episodes, patients, rows, economics, adverse_events, bursts)
    out["qalys"] = qalys
    out["qalys_undiscounted"] = qalys_undiscounted
    out["life_years"] = patients["follow_up_months"].to_numpy() / 12.0
    return out


def _row_index(frame: pd.DataFrame, patients: pd.DataFrame) -> np.ndarray:
    """Row of `patients` for each row of `frame` (same replicate, strategy and patient)."""
    index = pd.MultiIndex.from_frame(patients[_KEYS].astype({"strategy": str}))
    keys = pd.MultiIndex.from_frame(frame[_KEYS].astype({"strategy": str}))
    return index.get_indexer(keys)


def _sum_by(values: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(rows, weights=values, minlength=n) if len(rows) else np.zeros(n)


def _weights(episodes, patients, economics) -> np.ndarray | None:
    needs_weight = any(per_kg for _, per_kg in economics.drug_per_month.values()) or \
        any(per_kg for _, per_kg in economics.loading.values())
    if not needs_weight:
        return None
    if "weight_kg" not in patients.columns:
        raise ValueError("the economic setting doses a drug per kg: the population needs a weight_kg covariate")
    return patients["weight_kg"].to_numpy(float)[_row_index(episodes, patients)]


def _per_treatment(episodes: pd.DataFrame, table: dict, position: int | None = None) -> np.ndarray:
    names = episodes["treatment"].astype(str).to_numpy()
    lookup = {t: (v if position is None else v[position]) for t, v in table.items()}
    return np.array([lookup.get(t, 0.0) for t in names], dtype=float) if len(names) else np.zeros(0)


def _drug_costs(episodes, weights, economics):
    """The drug over each episode, and its loading dose at the start."""
    discounted, undiscounted, rows = _interval_costs(
        episodes, _by_weight(episodes, economics.drug_per_month, weights), economics)
    loading = _by_weight(episodes, economics.loading, weights)
    factor = discount_factor(episodes["start"].to_numpy(float), economics.cost_discount_per_year, economics.method)
    return discounted + loading * factor, undiscounted + loading, rows


def _by_weight(episodes, table, weights) -> np.ndarray:
    fixed = _per_treatment(episodes, table, 0)
    per_kg = _per_treatment(episodes, table, 1)
    return fixed + (per_kg * weights if weights is not None else 0.0)


def _monitoring_costs(episodes, economics):
    return _interval_costs(episodes, _per_treatment(episodes, economics.monitoring_per_month), economics)


def _interval_costs(episodes, rate, economics):
    start, stop = episodes["start"].to_numpy(float), episodes["stop"].to_numpy(float)
    discounted = rate * discount_integral(start, stop, economics.cost_discount_per_year, economics.method)
    return discounted, rate * (stop - start), episodes["_row"].to_numpy()


def _event_costs(episodes, economics, adverse_events, bursts, patients):
    """One-off costs: drug starts (tests, visit), adverse events, bursts, relapses."""
    times, costs, rows = [], [], []
    start_cost = _per_treatment(episodes, economics.at_start) + economics.drug_start
    times.append(episodes["start"].to_numpy(float))
    costs.append(start_cost)
    rows.append(episodes["_row"].to_numpy())
    relapse = _relapse_times(episodes)
    times.append(relapse["start"].to_numpy(float))
    costs.append(np.full(len(relapse), economics.relapse))
    rows.append(relapse["_row"].to_numpy())
    for frame, cost_of in ((adverse_events, _adverse_event_cost(economics)), (bursts, lambda f: np.full(len(f), economics.burst[0]))):
        if frame is not None and len(frame):
            times.append(frame["time"].to_numpy(float))
            costs.append(cost_of(frame))
            rows.append(_row_index(frame, patients))
    t, c, r = np.concatenate(times), np.concatenate(costs), np.concatenate(rows)
    return c * discount_factor(t, economics.cost_discount_per_year, economics.method), c, r


def _adverse_event_cost(economics):
    def cost(frame):
        names = frame["adverse_event"].astype(str).to_numpy()
        return np.array([economics.adverse_events.get(n, (0.0, 0.0))[0] for n in names], dtype=float)
    return cost


def _relapse_times(episodes: pd.DataFrame) -> pd.DataFrame:
    """Episodes that start after a spell on topical therapy: a relapse brought the patient back."""
    previous = episodes.groupby(_KEYS, observed=True, sort=False)["reason"].shift(1)
    return episodes[previous.astype(object) == "remission"]


def state_intervals(episodes: pd.DataFrame, patients: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """Return (row, start, stop, state) intervals covering each patient's follow-up (months)."""
    e = episodes
    start, stop = e["start"].to_numpy(float), e["stop"].to_numpy(float)
    assessed = e["assessed"].to_numpy(float) if "assessed" in e else np.full(len(e), np.nan)
    responded = e["responded"].astype("boolean").fillna(False).to_numpy(bool)
    known = ~np.isnan(assessed)
    pieces = [
        (rows, start, np.where(known, assessed, stop), "uncontrolled_on_systemic"),
        (rows[known & responded], assessed[known & responded], stop[known & responded], "controlled_on_systemic"),
        (rows[known & ~responded], assessed[known & ~responded], stop[known & ~responded], "uncontrolled_on_systemic"),
    ]
    pieces += _gaps(e, rows, start, stop, patients)
    frames = [pd.DataFrame({"row": r, "start": a, "stop": b, "state": s}) for r, a, b, s in pieces if len(r)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["row", "start", "stop", "state"])


def _gaps(e, rows, start, stop, patients):
    """Intervals between and after episodes, and whole follow-ups without any episode."""
    reason = e["reason"].astype(str).to_numpy()
    first = np.r_[True, rows[1:] != rows[:-1]] if len(rows) else np.zeros(0, bool)
    last = np.r_[rows[1:] != rows[:-1], True] if len(rows) else np.zeros(0, bool)
    previous_stop = np.r_[0.0, stop[:-1]] if len(rows) else np.zeros(0)
    previous_reason = np.concatenate([[""], reason[:-1]]) if len(rows) else np.zeros(0, str)
    gap_start = np.where(first, 0.0, previous_stop)
    after_remission = ~first & (previous_reason == "remission")
    follow_up = patients["follow_up_months"].to_numpy(float)
    final = patients["final_state"].astype(str).to_numpy()
    tail_rows = rows[last & ~np.isin(reason, _CENSORED)]
    tail_start = stop[last & ~np.isin(reason, _CENSORED)]
    tail_reason = reason[last & ~np.isin(reason, _CENSORED)]
    tail_state = np.where(tail_reason == "remission", "topical",
                          np.where(final[tail_rows] == "waiting", "uncontrolled_on_systemic", "supportive_care"))
    without = np.setdiff1d(np.arange(len(patients)), rows)
    without_state = np.where(final[without] == "waiting", "uncontrolled_on_systemic", "supportive_care")
    return [
        (rows[after_remission], gap_start[after_remission], start[after_remission], "topical"),
        (rows[~after_remission], gap_start[~after_remission], start[~after_remission], "uncontrolled_on_systemic"),
        *[(tail_rows[tail_state == s], tail_start[tail_state == s], follow_up[tail_rows[tail_state == s]], s)
          for s in ("topical", "uncontrolled_on_systemic", "supportive_care")],
        *[(without[without_state == s], np.zeros((without_state == s).sum()), follow_up[without[without_state == s]], s)
          for s in ("uncontrolled_on_systemic", "supportive_care")],
    ]


def _qalys(episodes, patients, rows, economics, adverse_events, bursts):
    intervals = state_intervals(episodes, patients, rows)
    utility = intervals["state"].map(economics.utilities).to_numpy(float)
    a, b = intervals["start"].to_numpy(float), intervals["stop"].to_numpy(float)
    r = intervals["row"].to_numpy(int)
    discounted = utility * discount_integral(a, b, economics.qaly_discount_per_year, economics.method) / 12.0
    undiscounted = utility * (b - a) / 12.0
    qalys = _sum_by(discounted, r, len(patients))
    plain = _sum_by(undiscounted, r, len(patients))
    for frame, loss_of in ((adverse_events, lambda f: np.array(
            [economics.adverse_events.get(n, (0.0, 0.0))[1] for n in f["adverse_event"].astype(str)], dtype=float)),
            (bursts, lambda f: np.full(len(f), economics.burst[1]))):
        if frame is not None and len(frame):
            loss = loss_of(frame) / 12.0
            where = _row_index(frame, patients)
            qalys -= _sum_by(loss * discount_factor(frame["time"].to_numpy(float), economics.qaly_discount_per_year,
                                                    economics.method), where, len(patients))
            plain -= _sum_by(loss, where, len(patients))
    return qalys, plain
