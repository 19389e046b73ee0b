"""A compiled `Model` packed into flat NumPy arrays for the compiled engine.

Treatments, strategies, relapse models and the population become arrays indexed by
treatment, strategy, relapse model or condition; every distribution is one row of a
table (family code and parameters, see `sim.rules.durations`), referred to by its row
number (-1: none). Probabilities absent from the scenario are NaN. Times are months.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
from scipy import special

from sim import distributions as d
from sim.engine import limited_resources_refusal
from sim.engine.compiled_kernel import MAX_TREATMENTS
from sim.model import Condition, Model
from sim.rules import durations as q
from sim.rules.eligibility import OPERATORS
from sim.tables import FLARE_STATES


# Below this |Q| a generalised gamma is drawn as its limit, the log-normal: the relative error
# of that limit (about |Q| sigma z^2 / 6) is then below the table route's, whose gamma shape
# 1/Q^2 turns the table's 1e-10 into sigma/|Q| times as much in the time.
GENGAMMA_LOGNORMAL_Q = 1e-5


class UnsupportedFeature(ValueError):
    """A feature of the scenario that the compiled engine does not simulate."""


class Packed(NamedTuple):
    """The arrays the compiled kernel reads (see the module docstring)."""

    distributions: np.ndarray      # [n, durations.WIDTH]
    gamma_tables: np.ndarray       # [k, 4, Z_STEPS]
    empirical: np.ndarray          # [2, m]: values, cumulative weights (piecewise exponential: starts, rates)
    # treatments
    assess: np.ndarray             # dist row
    response: np.ndarray           # base probability
    course: np.ndarray             # dist row or -1
    cap: np.ndarray
    loss: np.ndarray
    fates: np.ndarray              # [T, 3] remission, switch, continue
    escalation: np.ndarray         # probability (NaN: none)
    escalated_response: np.ndarray
    reassess: np.ndarray           # dist row or -1
    target: np.ndarray             # target probability (NaN: none)
    relapse_variant: np.ndarray
    age_allowed: np.ndarray        # bool: the population's age group may take it
    requires_failure: np.ndarray   # [T, T] bool
    eligible_first: np.ndarray     # [T + 1] offsets into eligibility_conditions
    eligibility_conditions: np.ndarray
    covariate_first: np.ndarray    # [T + 1] offsets into the covariate modifiers
    line_first: np.ndarray         # [T + 1] offsets into the line modifiers
    modifier_condition: np.ndarray
    modifier_replacement: np.ndarray  # NaN: an odds ratio instead
    modifier_odds_ratio: np.ndarray
    modifiers: np.ndarray          # [M, 3] condition, replacement, odds ratio (the three above)
    ae_first: np.ndarray           # [T + 1] offsets into the adverse events
    ae_probability: np.ndarray
    ae_onset: np.ndarray
    ae_stop_probability: np.ndarray
    # conditions
    condition_covariate: np.ndarray  # -1: the line of therapy
    condition_operator: np.ndarray
    condition_value: np.ndarray
    condition_levels: np.ndarray     # [C, max levels] bool
    conditions: np.ndarray           # [C, 2] operator, value (the two above)
    # strategies
    lines: np.ndarray              # [S, L] treatment indices, -1 padded
    line_count: np.ndarray
    first_line_cumulative: np.ndarray  # [S, L] (NaN row: the first line is not drawn)
    draws_first_line: np.ndarray   # bool
    retreats: np.ndarray           # bool: on_relapse retreat
    retreat_allowed: np.ndarray    # [S, T] bool
    bridged: np.ndarray            # [S, T] bool
    target_assess: np.ndarray      # dist row or -1 (treat-to-target)
    # relapse models
    relapse_probability: np.ndarray  # NaN: no relapse model
    relapse_time: np.ndarray
    # rescue and flares
    rescue_response: float
    rescue_rebound: float
    rescue_onset: int
    flare_rates: np.ndarray        # [4] per month by state (FLARE_STATES order)
    lays_flares: bool
    # population and observation
    horizon: float
    follow_up: int
    arrival: int
    loss_to_followup: int
    age_limit_months: float        # inf: none
    age_limit_covariate: int       # -1: none
    mortality_covariate: int       # -1: no mortality
    mortality_knots: np.ndarray
    mortality_cumulative: np.ndarray
    mortality_hazards: np.ndarray
    # the work-up at entry
    workup_found: float            # probability a factor is found (diverted); 0 without a work-up
    workup_duration: int           # -1: no work-up


class _Table:
    """Distribution rows as they are packed."""

    def __init__(self):
        self.rows: list[list[float]] = []
        self.gamma: list[np.ndarray] = []
        self.values: list[float] = []
        self.cumulative: list[float] = []

    def add(self, distribution) -> int:
        if distribution is None:
            return -1
        low, high = -math.inf, math.inf
        if isinstance(distribution, d.Clipped):
            low, high, distribution = distribution.low, distribution.high, distribution.inner
        self.rows.append([*self._family(distribution), low, high])
        return len(self.rows) - 1

    def _family(self, x) -> list[float]:
        if isinstance(x, d.Fixed):
            return [q.FIXED, float(x.value), 0, 0, 0]
        if isinstance(x, d.Uniform):
            return [q.UNIFORM, x.low, x.high, 0, 0]
        if isinstance(x, d.Exponential):
            return [q.EXPONENTIAL, x.mean_value, 0, 0, 0]
        if isinstance(x, d.Weibull):
            return [q.WEIBULL, x.shape, x.scale, 0, 0]
        if isinstance(x, d.Gamma):
            self.gamma.append(gamma_table(x.shape))
            return [q.GAMMA, x.shape, x.scale, len(self.gamma) - 1, 0]
        if isinstance(x, d.LogNormal):
            return [q.LOGNORMAL, x.meanlog, x.sdlog, 0, 0]
        if isinstance(x, d.TruncatedNormal):
            return [q.NORMAL, x.mu, x.sigma, float(special.ndtr(-x.mu / x.sigma)), 0]
        if isinstance(x, d.Empirical):
            first = len(self.values)
            weights = np.asarray(x.weights, dtype=float)
            self.values += [float(v) for v in x.values]
            self.cumulative += list(np.cumsum(weights) / weights.sum())
            return [q.EMPIRICAL, 0, 0, first, len(x.values)]
        if isinstance(x, d.Gompertz):
            return [q.GOMPERTZ, x.shape, x.rate, 0, 0]
        if isinstance(x, d.LogLogistic):
            return [q.LOGLOGISTIC, x.shape, x.scale, 0, 0]
        if isinstance(x, d.GeneralizedGamma):
            if abs(x.q) < GENGAMMA_LOGNORMAL_Q:
                return [q.LOGNORMAL, x.mu, x.sigma, 0, 0]
            try:
                self.gamma.append(gamma_table(1.0 / x.q**2))
            except UnsupportedFeature:
                raise UnsupportedFeature(f"the compiled engine cannot draw from a gengamma of Q {x.q:g}: its gamma "
                                         f"of shape 1/Q^2 = {1 / x.q**2:.3g} underflows (|Q| up to about 3.5 is "
                                         "drawn); refit with another family") from None
            return [q.GENGAMMA, x.mu, x.sigma, len(self.gamma) - 1, x.q]
        if isinstance(x, d.PiecewiseExponential):
            first = len(self.values)
            self.values += [float(v) for v in x.starts]
            self.cumulative += [float(v) for v in x.rates]
            return [q.PIECEWISE_EXPONENTIAL, 0, 0, first, len(x.starts)]
        raise UnsupportedFeature(f"the compiled engine cannot draw from {type(x).__name__}")

    def arrays(self):
        rows = np.array(self.rows or np.zeros((0, q.WIDTH)), dtype=np.float64).reshape(-1, q.WIDTH)
        tables = np.stack(self.gamma) if self.gamma else np.zeros((1, 4, q.Z_STEPS))
        empirical = np.array([self.values or [0.0], self.cumulative or [1.0]], dtype=np.float64)
        return rows, tables, empirical


@functools.lru_cache(maxsize=256)
def gamma_table(shape: float) -> np.ndarray:
    """Cubic coefficients (4 x Z_STEPS) of log(standard gamma quantile) between knots equally
    spaced in the normal score, for `sim.rules.durations.gamma_standard_quantile`."""
    z = np.linspace(-q.Z_LIMIT, q.Z_LIMIT, q.Z_STEPS + 1)
    with np.errstate(all="ignore"):
        # Each tail from its own side: ndtr(z) near 1 loses the digits the upper tail needs.
        quantiles = np.where(z <= 0, special.gammaincinv(shape, special.ndtr(z)),
                             special.gammainccinv(shape, special.ndtr(-z)))
        log_q = np.log(quantiles)
        log_density = (shape - 1) * log_q - quantiles - special.gammaln(shape)
        slope = np.exp(-0.5 * z * z - 0.5 * math.log(2 * math.pi) - log_density - log_q) * (2 * q.Z_LIMIT / q.Z_STEPS)
    if not (np.isfinite(log_q).all() and np.isfinite(slope).all()):
        raise UnsupportedFeature(f"the compiled engine cannot tabulate a gamma distribution of shape {shape:g}")
    y0, y1, m0, m1 = log_q[:-1], log_q[1:], slope[:-1], slope[1:]
    table = np.ascontiguousarray(np.stack([y0, m0, 3 * (y1 - y0) - 2 * m0 - m1, 2 * (y0 - y1) + m0 + m1]))
    table.flags.writeable = False  # kept by the cache: a PSA's samples share their shapes' tables
    return table


def distribution_table(distributions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pack `sim.distributions` objects into (rows, gamma tables, empirical) for
    `sim.rules.durations.quantile`; row k is the k-th distribution."""
    table = _Table()
    for distribution in distributions:
        table.add(distribution)
    return table.arrays()


def covariate_levels(model: Model) -> dict[str, tuple[str, ...]]:
    """The levels of each categorical covariate (a level's number is its code)."""
    return {c.name: c.levels for c in model.population.covariates if c.kind == "categorical"}


def pack(model: Model) -> Packed:
    """Pack `model` for the compiled engine; raises `UnsupportedFeature` for what it cannot simulate."""
    if model.limited_resources:
        raise UnsupportedFeature(limited_resources_refusal(model, "compiled"))
    table = _Table()
    covariates = [c.name for c in model.population.covariates]
    kinds = {c.name: c.kind for c in model.population.covariates}
    levels = covariate_levels(model)
    width = max([len(v) for v in levels.values()] + [1])
    conditions: list[tuple] = []

    def condition(c: Condition) -> int:
        operator = OPERATORS.index(c.operator)
        mask = np.zeros(width, dtype=bool)
        value = 0.0
        if c.operator in ("in", "not_in"):
            if c.covariate is None or kinds.get(c.covariate) != "categorical":
                raise UnsupportedFeature(f"the compiled engine compares levels (in, not_in) of categorical covariates "
                                         f"only, not of '{c.covariate}'")
            mask[:len(levels[c.covariate])] = [level in set(c.value) for level in levels[c.covariate]]
        elif c.operator == "is":
            value = 1.0 if c.value else 0.0
        else:
            value = float(c.value)
        conditions.append((-1 if c.covariate is None else covariates.index(c.covariate), operator, value, mask))
        return len(conditions) - 1

    treatments = model.treatments
    n = len(treatments)
    if n > MAX_TREATMENTS:
        raise UnsupportedFeature(f"the compiled engine simulates at most {MAX_TREATMENTS} treatments, not {n}")
    eligible_first, eligibility = [0], []
    covariate_first, line_first, modifiers = [0], [0], []
    for t in treatments:
        eligibility += [condition(c) for c in t.eligible_when]
        eligible_first.append(len(eligibility))
    for group, first in ((lambda t: t.response_modifiers, covariate_first), (lambda t: t.line_modifiers, line_first)):
        first[0] = len(modifiers)
        for t in treatments:
            modifiers += [(condition(m.condition), math.nan if m.probability is None else m.probability,
                           math.nan if m.odds_ratio is None else m.odds_ratio) for m in group(t)]
            first.append(len(modifiers))
    ae_first, events = [0], []
    for t in treatments:
        events += [(e.probability, table.add(e.onset), e.stop_probability) for e in t.adverse_events]
        ae_first.append(len(events))
    requires = np.zeros((n, n), dtype=bool)
    for t in treatments:
        requires[t.index, list(t.after_failure_of)] = True
    strategies = model.strategies
    longest = max(len(s.lines) for s in strategies)
    lines = np.full((len(strategies), longest), -1, dtype=np.int64)
    cumulative = np.full((len(strategies), longest), np.nan)
    retreat_allowed = np.ones((len(strategies), n), dtype=bool)
    bridged = np.zeros((len(strategies), n), dtype=bool)
    for s in strategies:
        lines[s.index, :len(s.lines)] = s.lines
        if s.first_line_weights is not None:
            cumulative[s.index, :len(s.lines)] = np.cumsum(s.first_line_weights)
        if s.retreat_only is not None:
            retreat_allowed[s.index] = [t in s.retreat_only for t in range(n)]
        bridged[s.index, list(s.bridged)] = model.rescue is not None
    rescue = model.rescue
    rates = rescue.flare_rates if rescue is not None else {}
    population = model.population
    life = model.mortality
    if life is not None:
        knots = np.asarray(life.ages + (life.ages[-1] + 1,), dtype=float)
        hazards = np.asarray(life.hazards_per_year, dtype=float)
        if not np.isfinite(hazards).all():
            raise UnsupportedFeature("the compiled engine needs every qx of the life table below 1")
        cumulative_hazard = np.concatenate([[0.0], np.cumsum(hazards)])
    else:
        knots, hazards, cumulative_hazard = np.zeros(2), np.zeros(1), np.zeros(2)
    mod = np.array(modifiers, dtype=float).reshape(-1, 3)
    ev = np.array(events, dtype=float).reshape(-1, 3)
    packed = dict(
        assess=np.array([table.add(t.assess_at) for t in treatments], dtype=np.int64),
        response=np.array([t.response_probability for t in treatments], dtype=float),
        course=np.array([table.add(t.course) for t in treatments], dtype=np.int64),
        cap=np.array([table.add(t.cap) for t in treatments], dtype=np.int64),
        loss=np.array([table.add(t.loss_of_response) for t in treatments], dtype=np.int64),
        fates=np.array([t.fates for t in treatments], dtype=float).reshape(n, 3),
        escalation=np.array([math.nan if t.escalation is None else t.escalation.probability for t in treatments]),
        escalated_response=np.array([math.nan if t.escalation is None else t.escalation.response_probability
                                     for t in treatments]),
        reassess=np.array([table.add(None if t.escalation is None else t.escalation.reassess_after)
                           for t in treatments], dtype=np.int64),
        target=np.array([math.nan if t.target_probability is None else t.target_probability for t in treatments]),
        relapse_variant=np.array([t.relapse_variant for t in treatments], dtype=np.int64),
        age_allowed=np.array([t.age_groups is None or population.age_group in t.age_groups for t in treatments]),
        requires_failure=requires,
        eligible_first=np.array(eligible_first, dtype=np.int64),
        eligibility_conditions=np.array(eligibility, dtype=np.int64),
        covariate_first=np.array(covariate_first, dtype=np.int64),
        line_first=np.array(line_first, dtype=np.int64),
        modifier_condition=mod[:, 0].astype(np.int64),
        modifier_replacement=mod[:, 1].copy(),
        modifier_odds_ratio=mod[:, 2].copy(),
        modifiers=np.ascontiguousarray(mod),
        ae_first=np.array(ae_first, dtype=np.int64),
        ae_probability=ev[:, 0].copy(),
        ae_onset=ev[:, 1].astype(np.int64),
        ae_stop_probability=ev[:, 2].copy(),
        condition_covariate=np.array([c[0] for c in conditions], dtype=np.int64),
        condition_operator=np.array([c[1] for c in conditions], dtype=np.int64),
        condition_value=np.array([c[2] for c in conditions], dtype=float),
        conditions=np.array([(c[1], c[2]) for c in conditions], dtype=float).reshape(-1, 2),
        condition_levels=np.array([c[3] for c in conditions], dtype=bool).reshape(len(conditions), width),
        lines=lines,
        line_count=np.array([len(s.lines) for s in strategies], dtype=np.int64),
        first_line_cumulative=cumulative,
        draws_first_line=np.array([s.first_line_weights is not None for s in strategies]),
        retreats=np.array([s.on_relapse == "retreat" for s in strategies]),
        retreat_allowed=retreat_allowed,
        bridged=bridged,
        target_assess=np.array([table.add(s.target_assessment) for s in strategies], dtype=np.int64),
        relapse_probability=np.array([math.nan if r is None else r.probability for r in model.relapses]),
        relapse_time=np.array([table.add(None if r is None else r.time) for r in model.relapses], dtype=np.int64),
        rescue_response=rescue.response_probability if rescue is not None else 0.0,
        rescue_rebound=rescue.rebound_probability if rescue is not None else 0.0,
        rescue_onset=table.add(rescue.onset) if rescue is not None else -1,
        flare_rates=np.array([float(rates.get(state, 0.0)) for state in _STATES]),
        lays_flares=bool(rescue is not None and rates),
        horizon=float(model.horizon_months),
        follow_up=table.add(population.follow_up),
        arrival=table.add(population.arrival),
        loss_to_followup=table.add(model.loss_to_followup),
        age_limit_months=math.inf if population.observed_until_age is None else float(population.observed_until_age),
        age_limit_covariate=-1 if population.observed_until_age is None else covariates.index(population.age_covariate),
        mortality_covariate=-1 if life is None else covariates.index(model.age_covariate),
        mortality_knots=knots,
        mortality_cumulative=cumulative_hazard,
        mortality_hazards=hazards,
        workup_found=0.0 if model.workup is None else float(model.workup.found_probability),
        workup_duration=-1 if model.workup is None else table.add(model.workup.duration),
    )
    rows, tables, empirical = table.arrays()
    return Packed(distributions=rows, gamma_tables=tables, empirical=empirical, **packed)


def stack(packs: list[Packed]) -> Packed:
    """The packed models of a PSA's samples as one `Packed` whose every field has the sample
    first (scalars become arrays); the gamma tables and empirical values of all samples are
    pooled, each distinct table once, and the distribution rows point into the pool.
    Raises `UnsupportedFeature` when the samples differ in structure (another number of
    treatments, adverse events, distributions...), which parameter values alone never change."""
    pooled: dict[bytes, int] = {}
    tables, values, cumulative, rows = [], [], [], []
    for p in packs:
        own = p.distributions.copy()
        families = own[:, q.FAMILY]
        pooling = (families == q.GAMMA) | (families == q.GENGAMMA) | (families == q.EMPIRICAL)
        pooling |= families == q.PIECEWISE_EXPONENTIAL
        for r in np.flatnonzero(pooling):  # only these rows point into tables: the rest stay as they are
            family = int(own[r, q.FAMILY])
            if family in (q.GAMMA, q.GENGAMMA):
                table = p.gamma_tables[int(own[r, q.C])]
                key = table.tobytes()
                if key not in pooled:
                    pooled[key] = len(tables)
                    tables.append(table)
                own[r, q.C] = pooled[key]
            elif family in (q.EMPIRICAL, q.PIECEWISE_EXPONENTIAL):
                first, count = int(own[r, q.C]), int(own[r, q.D])
                own[r, q.C] = len(values)
                values += list(p.empirical[0, first:first + count])
                cumulative += list(p.empirical[1, first:first + count])
        rows.append(own)
    fields = {}
    for position, name in enumerate(Packed._fields):
        if name in ("gamma_tables", "empirical"):
            continue
        arrays = rows if name == "distributions" else [np.asarray(p[position]) for p in packs]
        first = arrays[0]
        if any(a.shape != first.shape or a.dtype != first.dtype for a in arrays):
            raise UnsupportedFeature(f"the samples differ in the structure of the model ({name}): one kernel call "
                                     "simulates samples that differ only in parameter values")
        fields[name] = np.array(arrays, dtype=first.dtype) if first.ndim == 0 else _stacked(arrays, first)
    return Packed(gamma_tables=np.stack(tables) if tables else packs[0].gamma_tables,
                  empirical=np.array([values or [0.0], cumulative or [1.0]], dtype=np.float64), **fields)


def _stacked(arrays: list[np.ndarray], first: np.ndarray) -> np.ndarray:
    """`np.stack(arrays)` of arrays of one shape and dtype, without its per-array checks."""
    out = np.empty((len(arrays), *first.shape), dtype=first.dtype)
    for k, a in enumerate(arrays):
        out[k] = a
    return out


_STATES = FLARE_STATES  # flare rates in the order of the state codes
