"""The compiled model: a validated scenario turned into immutable numbers and rules.

The engines read only this. Treatments and strategies are referred to by their index;
probabilities are point estimates (counts become events/n); times are months.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim import distributions as d
from sim.schema import ConditionSpec, DistributionSpec, Probability, RelapseSpec, RescueSpec, Scenario

FATES = ("remission", "switch", "continue")


@dataclass(frozen=True)
class AdverseEvent:
    """An adverse event: the chance it happens in an episode, when, and whether it stops the drug."""

    name: str
    probability: float
    onset: d.Distribution
    stop_probability: float


@dataclass(frozen=True)
class Condition:
    """A test on a covariate (`covariate` names it) or on the line of therapy (`covariate` None).

    `operator` is one of at_least, below, in, not_in, is; `value` what it compares with.
    """

    covariate: str | None
    operator: str
    value: object

    def holds(self, values):
        """Return where the condition holds, for an array (or scalar) of covariate values."""
        import numpy as np

        if self.operator == "at_least":
            return np.asarray(values, dtype=float) >= self.value
        if self.operator == "below":
            return np.asarray(values, dtype=float) < self.value
        if self.operator == "is":
            return np.asarray(values, dtype=bool) == self.value
        inside = np.isin(np.asarray(values, dtype=object).astype(str), list(self.value))
        return inside if self.operator == "in" else ~inside


@dataclass(frozen=True)
class ResponseModifier:
    """An odds ratio on response, or a replacement probability, where `condition` holds."""

    condition: Condition
    odds_ratio: float | None
    probability: float | None


@dataclass(frozen=True)
class Escalation:
    """Escalating a non-responder (dose or route) and reassessing, instead of stopping."""

    probability: float
    reassess_after: d.Distribution
    response_probability: float


@dataclass(frozen=True)
class Rescue:
    """Short corticosteroid bursts: duration, onset, response, rebound, and flare rates per month by state."""

    duration: d.Distribution
    onset: d.Distribution
    response_probability: float
    rebound_probability: float
    flare_rates: dict


@dataclass(frozen=True)
class Relapse:
    """The chance of a flare back into the pathway after a return to topical, and its timing."""

    probability: float
    time: d.Distribution


@dataclass(frozen=True)
class Workup:
    """The work-up at entry: the share diverted back to topical therapy and its duration (months)."""

    found_probability: float
    duration: d.Distribution


@dataclass(frozen=True)
class Treatment:
    """One treatment of the scenario, as numbers (times in months)."""

    index: int
    name: str
    label: str
    assess_at: d.Distribution
    response_probability: float
    course: d.Distribution | None
    cap: d.Distribution | None
    fates: tuple[float, float, float]
    loss_of_response: d.Distribution | None
    adverse_events: tuple[AdverseEvent, ...]
    age_groups: frozenset[str] | None
    after_failure_of: tuple[int, ...]
    relapse_variant: int
    eligible_when: tuple[Condition, ...] = ()
    response_modifiers: tuple[ResponseModifier, ...] = ()
    line_modifiers: tuple[ResponseModifier, ...] = ()
    target_probability: float | None = None
    escalation: Escalation | None = None
    requires: str | None = None


@dataclass(frozen=True)
class Strategy:
    """An ordered list of treatment indices and its rules."""

    index: int
    name: str
    label: str
    description: str
    lines: tuple[int, ...]
    first_line_weights: tuple[float, ...] | None
    on_relapse: str
    retreat_only: frozenset[int] | None = None
    bridged: frozenset[int] = frozenset()
    target_assessment: d.Distribution | None = None


@dataclass(frozen=True)
class Covariate:
    """A patient characteristic: numeric (a distribution), boolean (a probability) or categorical."""

    name: str
    kind: str
    distribution: d.Distribution | None = None
    probability: float | None = None
    levels: tuple[str, ...] = ()
    level_weights: tuple[float, ...] = ()


@dataclass(frozen=True)
class Population:
    """Who enters: their age group, covariates and personal end of observation (months)."""

    age_group: str
    covariates: tuple[Covariate, ...]
    follow_up: d.Distribution | None
    arrival: d.Distribution | None = None
    observed_until_age: float | None = None  # months of age at which observation ends
    age_covariate: str | None = None  # the age at entry (years) it is counted from


@dataclass(frozen=True)
class Model:
    """Everything an engine needs to simulate a scenario; no YAML left."""

    name: str
    description: str
    treatments: tuple[Treatment, ...]
    strategies: tuple[Strategy, ...]
    population: Population
    relapses: tuple[Relapse | None, ...]
    loss_to_followup: d.Distribution | None
    horizon_months: float
    patients: int
    replicates: int
    seed: int
    engine: str  # deprecated in scenarios (a run option): "auto" unless settings.engine says
    chunk_size: int | None  # deprecated in scenarios (a run option): None unless settings.chunk_size says
    rescue: Rescue | None = None
    capacities: dict | None = None
    mortality: object = None          # sim.mortality.LifeTable
    age_covariate: str | None = None
    workup: Workup | None = None

    @property
    def limited_resources(self) -> dict:
        """The resources with a finite capacity (patients at a time), by name."""
        return {name: c for name, c in (self.capacities or {}).items() if c is not None}


def compile_model(scenario: Scenario, name: str) -> Model:
    """Turn a validated `Scenario` into an immutable `Model`."""
    index = {treatment: i for i, treatment in enumerate(scenario.treatments)}
    relapses = [_relapse(scenario.relapse)]
    treatments = []
    for i, (key, spec) in enumerate(scenario.treatments.items()):
        variant = 0
        if spec.relapse is not None:
            relapses.append(_relapse(spec.relapse))
            variant = len(relapses) - 1
        treatments.append(_treatment(i, key, spec, index, variant))
    strategies = tuple(
        _strategy(i, key, spec, index) for i, (key, spec) in enumerate(scenario.strategies.items())
    )
    settings = scenario.settings
    return Model(
        name=name,
        description=scenario.description or "",
        treatments=tuple(treatments),
        strategies=strategies,
        population=_population(scenario),
        relapses=tuple(relapses),
        loss_to_followup=_optional(scenario.loss_to_followup),
        horizon_months=settings.horizon,
        patients=settings.patients,
        replicates=settings.replicates,
        seed=settings.seed,
        engine=settings.engine or "auto",
        chunk_size=settings.chunk_size,
        rescue=_rescue(scenario.rescue),
        mortality=_life_table(scenario),
        age_covariate=scenario.mortality.age_covariate if scenario.mortality else None,
        capacities={name: (None if r.capacity == "unlimited" else r.capacity) for name, r in scenario.resources.items()},
        workup=None if scenario.workup is None else Workup(scenario.workup.found.value,
                                                           distribution(scenario.workup.duration)),
    )


def distribution(spec: DistributionSpec) -> d.Distribution:
    """Return the numeric distribution a `DistributionSpec` describes."""
    base = _family(spec)
    if spec.clip is not None:
        return d.Clipped(base, float(spec.clip[0]), float(spec.clip[1]))
    return base


def _family(spec: DistributionSpec) -> d.Distribution:
    kind = spec.dist
    if kind == "fixed":
        return d.Fixed(spec.value)
    if kind == "uniform":
        return d.Uniform(spec.low, spec.high)
    if kind == "exponential":
        return d.Exponential(spec.mean)
    if kind == "weibull":
        return d.Weibull(spec.shape, spec.scale)
    if kind == "gamma":
        if spec.shape is not None:
            return d.Gamma(spec.shape, spec.scale)
        return d.Gamma((spec.mean / spec.sd) ** 2, spec.sd**2 / spec.mean)
    if kind == "lognormal":
        if spec.median is not None:
            return d.LogNormal(math.log(spec.median), spec.sdlog)
        sdlog2 = math.log1p((spec.sd / spec.mean) ** 2)
        return d.LogNormal(math.log(spec.mean) - sdlog2 / 2, math.sqrt(sdlog2))
    if kind == "normal":
        return d.TruncatedNormal(spec.mean, spec.sd)
    if kind == "gompertz":
        return d.Gompertz(spec.shape, spec.rate)
    if kind == "loglogistic":
        return d.LogLogistic(spec.shape, spec.scale)
    if kind == "gengamma":
        return d.GeneralizedGamma(spec.mu, spec.sigma, spec.Q)
    if kind == "piecewise_exponential":
        return d.PiecewiseExponential(tuple(float(s) for s in spec.starts), tuple(float(r) for r in spec.rates))
    weights = spec.weights or [1.0] * len(spec.values)
    return d.Empirical(tuple(spec.values), tuple(float(w) for w in weights))


def _optional(spec: DistributionSpec | None) -> d.Distribution | None:
    return None if spec is None else distribution(spec)


def condition(spec: ConditionSpec) -> Condition:
    """Return the compiled form of a covariate or line condition."""
    for operator, value in (("at_least", spec.at_least), ("below", spec.below), ("in", spec.in_),
                            ("not_in", spec.not_in), ("is", spec.is_)):
        if value is not None:
            return Condition(None if spec.line else spec.covariate, operator,
                             tuple(value) if isinstance(value, list) else value)
    raise AssertionError("validated conditions have one comparison")


def _life_table(scenario: Scenario):
    if scenario.mortality is None:
        return None
    from pathlib import Path

    from sim.mortality import read_life_table

    return read_life_table(Path(scenario.mortality.life_table))


def _rescue(spec: RescueSpec | None) -> Rescue | None:
    if spec is None:
        return None
    return Rescue(
        duration=distribution(spec.duration),
        onset=distribution(spec.onset),
        response_probability=spec.response.value,
        rebound_probability=spec.rebound.value,
        flare_rates=spec.flare_rate.per_month(),
    )


def _modifiers(spec) -> tuple[tuple, tuple]:
    on_covariates, on_line = [], []
    for m in spec.response_modifiers:
        modifier = ResponseModifier(condition(m.when), m.odds_ratio, None if m.response is None else m.response.value)
        (on_line if m.when.line else on_covariates).append(modifier)
    return tuple(on_covariates), tuple(on_line)


def _relapse(spec: RelapseSpec | None) -> Relapse | None:
    if spec is None:
        return None
    return Relapse(probability=spec.probability.value, time=distribution(spec.time))


def _weights(parts: list[Probability]) -> tuple[float, ...]:
    if all(part.n is not None for part in parts):
        total = sum(part.events for part in parts)
        return tuple(part.events / total for part in parts) if total else tuple(1 / len(parts) for _ in parts)
    total = sum(part.value for part in parts)
    return tuple(part.value / total for part in parts)


def _treatment(i, key, spec, index, relapse_variant) -> Treatment:
    fates = (1.0, 0.0, 0.0)
    if spec.end_of_course is not None:
        eoc = spec.end_of_course
        fates = _weights([eoc.remission, eoc.switch, eoc.continue_on])
    events = tuple(
        AdverseEvent(name, ae.probability.value, distribution(ae.onset), ae.stops_treatment.value)
        for name, ae in spec.adverse_events.items()
    )
    groups = spec.eligibility.age_groups
    on_covariates, on_line = _modifiers(spec)
    escalation = None
    if spec.escalation is not None:
        escalation = Escalation(spec.escalation.probability.value, distribution(spec.escalation.reassess_after),
                                spec.escalation.response.value)
    return Treatment(
        index=i,
        name=key,
        label=spec.label,
        assess_at=distribution(spec.assess_at),
        response_probability=spec.response.value,
        course=_optional(spec.course),
        cap=_optional(spec.cap),
        fates=fates,
        loss_of_response=_optional(spec.loss_of_response),
        adverse_events=events,
        age_groups=frozenset(groups) if groups is not None else None,
        after_failure_of=tuple(index[name] for name in spec.eligibility.after_failure_of),
        relapse_variant=relapse_variant,
        eligible_when=tuple(condition(c) for c in spec.eligibility.when),
        response_modifiers=on_covariates,
        line_modifiers=on_line,
        target_probability=None if spec.target_response is None else spec.target_response.value,
        escalation=escalation,
        requires=spec.requires,
    )


def _strategy(i, key, spec, index) -> Strategy:
    weights = None
    if spec.first_line:
        given = [spec.first_line.get(line) for line in spec.lines]
        present = [p for p in given if p is not None]
        normalised = iter(_weights(present))
        weights = tuple(next(normalised) if p is not None else 0.0 for p in given)
    return Strategy(
        index=i,
        name=key,
        label=spec.label or key,
        description=spec.description or "",
        lines=tuple(index[line] for line in spec.lines),
        first_line_weights=weights,
        on_relapse=spec.on_relapse,
        retreat_only=None if spec.retreat_only is None else frozenset(index[t] for t in spec.retreat_only),
        bridged=frozenset(index[t] for t in spec.bridge),
        target_assessment=None if spec.treat_to_target is None else distribution(spec.treat_to_target.assess_at),
    )


def _population(scenario: Scenario) -> Population:
    limit = scenario.population.observed_until_age
    covariates = []
    for name, spec in scenario.population.covariates.items():
        if isinstance(spec, DistributionSpec):
            covariates.append(Covariate(name, "numeric", distribution=distribution(spec)))
        elif isinstance(spec, Probability):
            covariates.append(Covariate(name, "boolean", probability=spec.value))
        else:
            levels = tuple(spec.levels)
            covariates.append(Covariate(name, "categorical", levels=levels, level_weights=_weights(list(spec.levels.values()))))
    return Population(
        age_group=scenario.population.age_group,
        covariates=tuple(covariates),
        follow_up=_optional(scenario.population.follow_up),
        arrival=_optional(scenario.population.arrival),
        observed_until_age=limit.age if limit is not None else None,
        age_covariate=limit.age_covariate if limit is not None else None,
    )
