"""A validated scenario read into the reference's own plain numbers.

Only `sim.loader.load_scenario` is used (to read the YAML, merge `extends`, apply
overrides and turn durations into months); every probability, weight and rate is
resolved here from the fields README.md documents.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field

from reference.sampling import Distribution, from_spec


def probability(spec) -> float:
    """A probability written as `{p: ...}` or counts `{events, n}` (events / n)."""
    return spec.p if spec.p is not None else spec.events / spec.n


def shares(parts) -> list[float]:
    """Weights of a mix (fates, first lines, levels): counts are normalised by their total
    events, probabilities by their sum."""
    if all(part.n is not None for part in parts):
        total = sum(part.events for part in parts)
        return [part.events / total if total else 1 / len(parts) for part in parts]
    values = [probability(part) for part in parts]
    return [v / sum(values) for v in values]


@dataclass(frozen=True)
class Condition:
    """A test on a covariate, or on the line of therapy when `covariate` is None."""

    covariate: str | None
    operator: str
    value: object

    def holds(self, covariates: dict, line: int | None = None) -> bool:
        """Whether the condition holds for a patient's covariates (and the line, 1-based)."""
        x = line if self.covariate is None else covariates[self.covariate]
        if self.operator == "at_least":
            return float(x) >= self.value
        if self.operator == "below":
            return float(x) < self.value
        if self.operator == "is":
            return bool(x) == self.value
        if self.operator == "in":
            return str(x) in self.value
        return str(x) not in self.value  # not_in


def condition(spec) -> Condition:
    """The reference's `Condition` for a `ConditionSpec`."""
    for operator, value in (("at_least", spec.at_least), ("below", spec.below), ("in", spec.in_),
                            ("not_in", spec.not_in), ("is", spec.is_)):
        if value is not None:
            return Condition(None if spec.line else spec.covariate, operator, value)
    raise ValueError("a condition without a comparison")


@dataclass(frozen=True)
class Modifier:
    """Where `when` holds: odds multiplied by `odds_ratio`, or the probability replaced by `probability`."""

    when: Condition
    odds_ratio: float | None
    probability: float | None


@dataclass(frozen=True)
class AdverseEvent:
    """An adverse event: its chance in an episode, its onset (months from the start), its chance of stopping the drug."""

    name: str
    probability: float
    onset: Distribution
    stops: float


@dataclass(frozen=True)
class Relapse:
    """The chance of a relapse after a return to topical therapy and its time (months after stopping)."""

    probability: float
    time: Distribution


@dataclass(frozen=True)
class Treatment:
    """One treatment's numbers (times in months)."""

    name: str
    assess_at: Distribution
    response: float
    modifiers: tuple[Modifier, ...]
    target: float | None
    escalation: tuple[float, Distribution, float] | None  # (probability, reassess after, response)
    course: Distribution | None
    cap: Distribution | None
    fates: tuple[float, float, float]  # remission, switch, continue
    loss_of_response: Distribution | None
    adverse_events: tuple[AdverseEvent, ...]
    age_groups: frozenset | None
    after_failure_of: tuple[str, ...]
    eligible_when: tuple[Condition, ...]
    relapse: Relapse | None


@dataclass(frozen=True)
class Strategy:
    """An ordered list of lines and the strategy's rules."""

    name: str
    lines: tuple[str, ...]
    first_line: tuple[float, ...] | None  # a weight per line, or None (the first listed)
    on_relapse: str
    retreat_only: frozenset | None
    bridge: frozenset
    target_assess_at: Distribution | None


@dataclass(frozen=True)
class Covariate:
    """A patient characteristic: `numeric` (distribution), `boolean` (probability) or `categorical`."""

    name: str
    kind: str
    distribution: Distribution | None = None
    probability: float | None = None
    levels: tuple[str, ...] = ()
    weights: tuple[float, ...] = ()


@dataclass(frozen=True)
class Rescue:
    """Corticosteroid bursts: duration, onset, response and rebound, flare rates per month by state."""

    onset: Distribution
    response: float
    rebound: float
    flare_rates: dict


@dataclass(frozen=True)
class Reference:
    """Everything the reference simulator reads: a scenario in plain numbers."""

    name: str
    horizon_months: float
    age_group: str
    covariates: tuple[Covariate, ...]
    follow_up: Distribution | None
    arrival: Distribution | None
    observed_until_age_months: float | None
    age_covariate: str | None
    loss_to_followup: Distribution | None
    relapse: Relapse | None
    treatments: dict
    strategies: tuple[Strategy, ...]
    rescue: Rescue | None
    life_table_qx: tuple[float, ...] | None = None  # q_x for ages 0, 1, 2, ... (years)
    mortality_age_covariate: str | None = None
    resources: dict = field(default_factory=dict)
    workup: Workup | None = None


@dataclass(frozen=True)
class Workup:
    """The work-up at entry: the chance a treatable factor is found (the patient goes back to
    topical therapy without a systemic drug) and how long it takes (months)."""

    found: float
    duration: Distribution


def _relapse(spec) -> Relapse | None:
    return None if spec is None else Relapse(probability(spec.probability), from_spec(spec.time))


def _rate_per_month(spec) -> float:
    if spec.per_month is not None:
        return spec.per_month
    if spec.per_year is not None:
        return spec.per_year / 12.0
    return spec.events / spec.person_years / 12.0


def _treatment(name, spec) -> Treatment:
    fates = (1.0, 0.0, 0.0)  # reading: without end_of_course a finished course is a return to topical
    if spec.end_of_course is not None:
        e = spec.end_of_course
        fates = tuple(shares([e.remission, e.switch, e.continue_on]))
    escalation = None
    if spec.escalation is not None:
        x = spec.escalation
        escalation = (probability(x.probability), from_spec(x.reassess_after), probability(x.response))
    modifiers = tuple(
        Modifier(condition(m.when), m.odds_ratio, None if m.response is None else probability(m.response))
        for m in spec.response_modifiers)
    return Treatment(
        name=name,
        assess_at=from_spec(spec.assess_at),
        response=probability(spec.response),
        modifiers=modifiers,
        target=None if spec.target_response is None else probability(spec.target_response),
        escalation=escalation,
        course=from_spec(spec.course),
        cap=from_spec(spec.cap),
        fates=fates,
        loss_of_response=from_spec(spec.loss_of_response),
        adverse_events=tuple(AdverseEvent(n, probability(a.probability), from_spec(a.onset), probability(a.stops_treatment))
                             for n, a in spec.adverse_events.items()),
        age_groups=None if spec.eligibility.age_groups is None else frozenset(spec.eligibility.age_groups),
        after_failure_of=tuple(spec.eligibility.after_failure_of),
        eligible_when=tuple(condition(c) for c in spec.eligibility.when),
        relapse=_relapse(spec.relapse),
    )


def _strategy(name, spec) -> Strategy:
    first = None
    if spec.first_line:
        given = [spec.first_line.get(line) for line in spec.lines]
        weights = iter(shares([g for g in given if g is not None]))
        first = tuple(next(weights) if g is not None else 0.0 for g in given)
    t2t = spec.treat_to_target
    return Strategy(name, tuple(spec.lines), first, spec.on_relapse,
                    None if spec.retreat_only is None else frozenset(spec.retreat_only),
                    frozenset(spec.bridge), None if t2t is None else from_spec(t2t.assess_at))


def _covariate(name, spec) -> Covariate:
    if hasattr(spec, "dist"):
        return Covariate(name, "numeric", distribution=from_spec(spec))
    if hasattr(spec, "levels"):
        levels = tuple(spec.levels)
        return Covariate(name, "categorical", levels=levels, weights=tuple(shares(list(spec.levels.values()))))
    return Covariate(name, "boolean", probability=probability(spec))


def _life_table(path) -> tuple[float, ...]:
    with open(path, encoding="utf-8") as handle:
        rows = sorted((int(r["age"]), float(r["qx"])) for r in csv.DictReader(handle))
    if rows[0][0] != 0:
        raise ValueError("the reference reads life tables that start at age 0")
    return tuple(q for _, q in rows)


def read(loaded) -> Reference:
    """The reference's plain numbers for a `sim.loader.LoadedScenario`."""
    s = loaded.scenario
    population = s.population
    limit = population.observed_until_age
    rescue = None
    if s.rescue is not None:
        r = s.rescue
        rates = {state: _rate_per_month(getattr(r.flare_rate, state))
                 for state in ("topical", "uncontrolled", "controlled", "supportive_care")
                 if getattr(r.flare_rate, state) is not None}
        rescue = Rescue(from_spec(r.onset), probability(r.response), probability(r.rebound), rates)
    return Reference(
        name=loaded.name,
        horizon_months=s.settings.horizon,
        age_group=population.age_group,
        covariates=tuple(_covariate(n, c) for n, c in population.covariates.items()),
        follow_up=from_spec(population.follow_up),
        arrival=from_spec(population.arrival),
        observed_until_age_months=None if limit is None else limit.age,
        age_covariate=None if limit is None else limit.age_covariate,
        loss_to_followup=from_spec(s.loss_to_followup),
        relapse=_relapse(s.relapse),
        treatments={n: _treatment(n, t) for n, t in s.treatments.items()},
        strategies=tuple(_strategy(n, st) for n, st in s.strategies.items()),
        rescue=rescue,
        life_table_qx=None if s.mortality is None else _life_table(s.mortality.life_table),
        mortality_age_covariate=None if s.mortality is None else s.mortality.age_covariate,
        resources={n: r.capacity for n, r in s.resources.items()},
        workup=None if s.workup is None else Workup(probability(s.workup.found), from_spec(s.workup.duration)),
    )


def adjusted_response(p: float, modifiers, covariates: dict, line: int) -> float:
    """The response probability after every modifier whose condition holds, in the order listed.

    Odds ratio: odds p/(1-p) times the ratio ("0 = never responds", sim.schema); at p = 1 the
    odds are infinite, so any ratio above 0 leaves p = 1 and a ratio of 0 gives 0.
    """
    for m in modifiers:
        if not m.when.holds(covariates, line):
            continue
        if m.probability is not None:
            p = m.probability
        elif m.odds_ratio == 0:
            p = 0.0
        elif p < 1.0:
            odds = p / (1.0 - p) * m.odds_ratio
            p = odds / (1.0 + odds)
    return p


def years_to_death(age_years: float, qx, u: float) -> float:
    """Years from `age_years` until death, for a uniform `u` (sim.mortality's stated rule: within a
    year of age the hazard is -ln(1 - q_x) per year, past the table's end the last one)."""
    target = -math.log1p(-u)
    age, years = age_years, 0.0
    while True:
        x = min(int(math.floor(age)), len(qx) - 1)
        hazard = -math.log1p(-qx[x]) if qx[x] < 1 else math.inf
        span = (x + 1 - age) if x < len(qx) - 1 else math.inf
        if hazard * span >= target:
            return years + target / hazard
        target -= hazard * span
        years += span
        age += span
