"""Costs and QALYs of each patient, integrated exactly over continuous time.

A trajectory is cut into intervals with a cost rate (drug, administration, monitoring
and the health state's own resource use, per month) and a utility: on a drug before its
assessment or not responding (`uncontrolled on systemic`, also while waiting for a drug
or a place), responding (`controlled on systemic`), back on topical therapy
(`topical`), strategy exhausted (`supportive care`). One-off costs and utility losses
happen at events: starting a drug (with its loading dose and tests), an adverse event,
a corticosteroid burst, a relapse. Utilities may follow a general-population norm by
age (a quadratic in age, so a quadratic in time within an interval) and switch from
children's to adults' values at an age. Discounting is exact: the integral of the
discount factor (times the utility polynomial) over each interval, continuous or with
whole-year factors (annual). All times are months since the patient entered; QALYs and
life-years are in years.
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
    factor = v**years  # once: a power of every value is most of the cost
    whole = 12.0 * (1.0 - factor) / (1.0 - v)
    return whole + (t - 12.0 * years) * factor


def polynomial_discount_integral(start, stop, c0, c1, c2, rate_per_year: float, method: str) -> np.ndarray:
    """Return the integral from `start` to `stop` (months) of (c0 + c1 t + c2 t^2) times
    the discount factor at t; coefficients are arrays (or scalars) in months since entry."""
    a, b = np.asarray(start, float), np.asarray(stop, float)
    c0, c1, c2 = (np.broadcast_to(np.asarray(c, float), a.shape) for c in (c0, c1, c2))
    # Expanded around each interval's start: q0 + q1 s + q2 s^2, s = t - start (keeps precision late in life).
    q0, q1, q2 = c0 + c1 * a + c2 * a * a, c1 + 2 * c2 * a, c2
    length = b - a
    if rate_per_year == 0:
        return _polynomial_integral(q0, q1, q2, length)
    if method == "continuous":
        delta = monthly_rate(rate_per_year)
        tail = np.exp(-delta * length)
        j0 = -np.expm1(-delta * length) / delta
        j1 = (j0 - length * tail) / delta
        j2 = (2 * j1 - length**2 * tail) / delta
        return np.exp(-delta * a) * (q0 * j0 + q1 * j1 + q2 * j2)
    total = np.zeros(a.shape)
    if not a.size:
        return total
    v = 1.0 / (1.0 + rate_per_year)
    # Year by year from each interval's first year, over the intervals still reaching into
    # it: a year an interval does not reach adds exactly 0, so leaving it out gives the
    # same sums as going over every year for every interval, at a fraction of the work
    # (most intervals lie within a year or two).
    first = np.floor(a / 12.0)
    span = np.maximum(np.floor(b / 12.0) - first, 0.0)
    q2 = np.broadcast_to(q2, a.shape)
    # Each year's factor as Python computes v**year: NumPy's vectorised power can differ in
    # the last bit.
    lowest = int(first.min())
    factors = np.array([v**year for year in range(lowest, int((first + span).max()) + 1)])
    from analysis import cost_passes  # compiled: imported when first needed (Numba loads slowly)

    begins, ends = cost_passes.year_bounds(a, b, first, span)
    # x**3 by NumPy, as _polynomial_integral computes it (x**2 is NumPy's square, x * x).
    return cost_passes.year_sums(*(np.ascontiguousarray(q) for q in (q0, q1, q2)), first, span, factors, lowest,
                                 begins, ends, begins**3, ends**3)


def _polynomial_integral(q0, q1, q2, x):
    return q0 * x + q1 * x**2 / 2.0 + q2 * x**3 / 3.0


def discount_factor(t: np.ndarray, rate_per_year: float, method: str) -> np.ndarray:
    """Return the discount factor of a one-off event at time `t` (months)."""
    t = np.asarray(t, float)
    if method == "continuous":
        return np.exp(-monthly_rate(rate_per_year) * t)
    return (1.0 + rate_per_year) ** -np.floor(t / 12.0)


def patient_costs(episodes: pd.DataFrame, patients: pd.DataFrame, economics: Economics,
                  adverse_events: pd.DataFrame | None = None, bursts: pd.DataFrame | None = None) -> pd.DataFrame:
    """Return, per patient and strategy, costs (in the setting's currency) and QALYs.

    Columns: `replicate, strategy, patient`, then discounted costs by category
    `cost_drugs_<CUR>`, `cost_administration_<CUR>`, `cost_monitoring_<CUR>`,
    `cost_health_states_<CUR>`, `cost_events_<CUR>` and their sum `cost_total_<CUR>`,
    `qalys`, the undiscounted `cost_total_undiscounted_<CUR>` (and per category
    `cost_<category>_undiscounted_<CUR>`), `qalys_undiscounted`, and life-years
    `life_years` (undiscounted) and `life_years_discounted` (at the QALY rate).
    """
    cur = economics.currency
    patients = patients.reset_index(drop=True)
    course = _Episodes(episodes, patient_rows(episodes, patients))
    weights = _weights(course, patients, economics)
    out = patients[_KEYS].copy()
    pieces = state_intervals(course, patients)
    parts = {
        "drugs": _drug_costs(course, weights, economics),
        "administration": _interval_costs(course, _per_treatment(course, economics.administration_per_month),
                                          economics),
        "monitoring": _monitoring_costs(course, economics),
        "health_states": _health_state_costs(pieces, economics),
        "events": _event_costs(course, economics, adverse_events, bursts, patients),
    }
    for name, (discounted, undiscounted, where) in parts.items():
        out[f"cost_{name}_{cur}"] = _sum_by(discounted, where, len(patients))
        out[f"cost_{name}_undiscounted_{cur}"] = _sum_by(undiscounted, where, len(patients))
    out[f"cost_total_{cur}"] = sum(out[f"cost_{name}_{cur}"] for name in parts)
    out[f"cost_total_undiscounted_{cur}"] = sum(out[f"cost_{name}_undiscounted_{cur}"] for name in parts)
    qalys, qalys_undiscounted = _qalys(pieces, patients, economics, adverse_events, bursts)
    out["qalys"] = qalys
    out["qalys_undiscounted"] = qalys_undiscounted
    follow_up = patients["follow_up_months"].to_numpy(float)
    out["life_years"] = follow_up / 12.0
    out["life_years_discounted"] = discount_integral(np.zeros(len(follow_up)), follow_up,
                                                     economics.qaly_discount_per_year, economics.method) / 12.0
    return out


def truncation_shares(patients: pd.DataFrame, horizon_months: float) -> dict:
    """Shares (0-1) of patients whose costs and QALYs end before `horizon_months` other
    than by death: `lost_to_followup_share`, `observation_ended_share` (a personal
    follow-up or an age limit) and their sum `censored_share`."""
    if not len(patients):
        return {"lost_to_followup_share": 0.0, "observation_ended_share": 0.0, "censored_share": 0.0}
    final = patients["final_state"].astype(object)
    lost = final == "lost_to_followup"
    early = (patients["follow_up_months"].to_numpy(float) < horizon_months - 1e-9) & ~lost & (final != "dead")
    return {"lost_to_followup_share": float(lost.mean()), "observation_ended_share": float(early.mean()),
            "censored_share": float((lost | early).mean())}


#: Cost categories of `patient_costs`, in the order tables and figures show them.
COST_CATEGORIES = ("drugs", "administration", "monitoring", "health_states", "events")


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
    given = set(_labels_used(course.treatment))
    needs_weight = any(per_kg for t, (_, per_kg) in economics.drug_per_month.items() if t in given) or \
        any(per_kg for t, (_, per_kg) in economics.loading.items() if t in given)
    if not needs_weight:
        return None
    if "weight_kg" not in patients.columns:
        raise ValueError("the economic setting doses a drug per kg: the population needs a weight_kg covariate")
    return patients["weight_kg"].to_numpy(float)[course.row]


def _labels_used(column: pd.Series) -> list[str]:
    """The distinct values of a column as strings (a categorical's through its codes)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy()
        used = np.bincount(codes[codes >= 0], minlength=len(column.cat.categories)) > 0
        return [str(c) for c, present in zip(column.cat.categories, used) if present] + \
            (["nan"] if (codes < 0).any() else [])
    return list(column.astype(str).unique())


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


def _health_state_costs(pieces, economics):
    """Each state's resource use (a cost a month) over the months spent in it."""
    rows, discounted, undiscounted = [], [], []
    for r, a, b, state in pieces:
        rate = economics.health_state_per_month.get(state, 0.0)
        rows.append(np.asarray(r, int))
        discounted.append(rate * discount_integral(a, b, economics.cost_discount_per_year, economics.method))
        undiscounted.append(rate * (np.asarray(b, float) - np.asarray(a, float)))
    return np.concatenate(discounted), np.concatenate(undiscounted), np.concatenate(rows)


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
    has_episode = np.zeros(len(patients), bool)
    has_episode[rows] = True
    without = np.flatnonzero(~has_episode)
    # Diverted by the work-up at entry: uncontrolled during it, then on topical therapy.
    back_at = patients["months_to_first_topical"].to_numpy(float) if "months_to_first_topical" in patients \
        else np.full(len(patients), np.nan)
    diverted = without[~np.isnan(back_at[without])]
    without = without[np.isnan(back_at[without])]
    without_state = np.where(waiting[without], "uncontrolled_on_systemic", "supportive_care")
    return [
        (rows[after_remission], gap_start[after_remission], start[after_remission], "topical"),
        (rows[~after_remission], gap_start[~after_remission], start[~after_remission], "uncontrolled_on_systemic"),
        *[(tail_rows[tail_state == s], tail_start[tail_state == s], follow_up[tail_rows[tail_state == s]], s)
          for s in ("topical", "uncontrolled_on_systemic", "supportive_care")],
        *[(without[without_state == s], np.zeros((without_state == s).sum()), follow_up[without[without_state == s]], s)
          for s in ("uncontrolled_on_systemic", "supportive_care")],
        (diverted, np.zeros(diverted.size), back_at[diverted], "uncontrolled_on_systemic"),
        (diverted, back_at[diverted], follow_up[diverted], "topical"),
    ]


def _qalys(pieces, patients, economics, adverse_events, bursts):
    r = np.concatenate([piece[0] for piece in pieces]).astype(int)
    a = np.concatenate([piece[1] for piece in pieces]).astype(float)
    b = np.concatenate([piece[2] for piece in pieces]).astype(float)
    adult = _utility_polynomials(_per_piece(pieces, lambda state: economics.utilities.get(state, np.nan)), r,
                                 patients, economics.age_adjustment)
    if economics.children is None:
        spans = [(a, b, adult)]
    else:
        child = (_per_piece(pieces, lambda state: economics.children.utilities[state].value), 0.0, 0.0)
        # Children's utilities until the age, adults' after it: each interval cut there.
        grown = (economics.children.until_age - 12.0 * _ages(patients, economics.children.age_covariate)[r])
        spans = [(a, np.minimum(b, np.maximum(grown, a)), child), (np.maximum(a, np.minimum(grown, b)), b, adult)]
    qalys, plain = np.zeros(len(patients)), np.zeros(len(patients))
    for lo, hi, (c0, c1, c2) in spans:
        qalys += _sum_by(polynomial_discount_integral(lo, hi, c0, c1, c2, economics.qaly_discount_per_year,
                                                      economics.method) / 12.0, r, len(patients))
        plain += _sum_by(polynomial_discount_integral(lo, hi, c0, c1, c2, 0.0, economics.method) / 12.0,
                         r, len(patients))
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


def _per_piece(pieces, value_of) -> np.ndarray:
    """`value_of(state)` for every interval of `pieces` (each piece is in one state): one
    look-up per piece, not per interval."""
    return np.concatenate([np.full(len(piece[0]), value_of(piece[3]), dtype=float) for piece in pieces])


def _ages(patients: pd.DataFrame, covariate: str) -> np.ndarray:
    if covariate not in patients.columns:
        raise ValueError(f"the economic setting adjusts utilities by age: the population needs a {covariate} covariate")
    return patients[covariate].to_numpy(float)


def _utility_polynomials(value: np.ndarray, rows: np.ndarray, patients, adjustment):
    """Adult utility of each interval as c0 + c1 t + c2 t^2 (t in months since entry), from
    the utility of its state (`value`)."""
    from sim.economics import NORMS, population_norm

    if adjustment is None:
        return value, 0.0, 0.0
    intercept, male, k1, k2 = NORMS[adjustment.norm]
    age = _ages(patients, adjustment.age_covariate)[rows]          # years at entry
    reference = population_norm(adjustment.norm, adjustment.reference_age / 12.0, adjustment.male_share)
    # norm(age + t/12) expanded in t.
    men = ((patients[adjustment.sex_covariate].astype(object) == "male").to_numpy(float)[rows]
           if adjustment.sex_covariate in patients.columns else adjustment.male_share)
    n0 = intercept + male * men + k1 * age + k2 * age**2
    n1 = (k1 + 2 * k2 * age) / 12.0
    n2 = np.full(len(age), k2 / 144.0)
    if adjustment.method == "multiplicative":
        scale = value / reference
        return scale * n0, scale * n1, scale * n2
    return value - reference + n0, n1, n2
