"""Economic settings: prices, dosing, monitoring, event costs, utilities and discounting.

An economics file (`scenarios/economics/<name>.yaml`, chosen with `--economics`) states
its currency and price year, and for each treatment how much a month on it costs (the
drug at its dose, its administration and its monitoring), what a month in each health
state costs (resource use x unit costs: visits, emollients and topical steroids, ...),
what one-off events cost (starting a drug, an adverse event, a corticosteroid burst),
how good each state is (utilities, optionally adjusted for age by a general-population
norm, with separate utilities for children) and how costs and QALYs are discounted.
Costs follow the trajectory; the engine never sees them.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from sim.loader import Problem, ScenarioError, bundled_dir, read_with_extends, validation_problems
from sim.schema import Duration, Source, Strict, suggest

STATES = ("controlled_on_systemic", "uncontrolled_on_systemic", "topical", "supportive_care")


class Price(Strict):
    """An amount of money for `per` units of `unit` (mg, tablet, syringe, test, visit...)."""

    amount: float = Field(ge=0)
    currency: str | None = None
    per: float = Field(default=1.0, gt=0)
    unit: str | None = None
    source: Source | None = None


class Dose(Strict):
    """How much of a drug is given: `amount` of `unit` every `every` (mg_per_kg scales with weight)."""

    amount: float = Field(gt=0)
    unit: str
    every: Duration = Field(gt=0)
    source: Source | None = None


class Loading(Strict):
    """An extra quantity given once at the start of each episode."""

    amount: float = Field(gt=0)
    unit: str
    source: Source | None = None


class Monitoring(Strict):
    """A repeated test or visit while on a drug, or a one-off one at its start."""

    item: str
    cost: Price
    every: Duration | None = Field(default=None, gt=0)
    source: Source | None = None


class DrugCosting(Strict):
    """What a treatment costs: its price and dose, loading, administration and monitoring."""

    price: Price | None = None
    dose: Dose | None = None
    loading: Loading | None = None
    components: list[str] = []
    administration: list[Monitoring] = []
    monitoring: list[Monitoring] = []
    at_start: list[Monitoring] = []
    source: Source | None = None

    @model_validator(mode="after")
    def _price_with_dose(self) -> DrugCosting:
        if (self.price is None) != (self.dose is None):
            raise PydanticCustomError("costing", "give both price and dose (or neither, e.g. for a combination)")
        for given in (self.dose, self.loading):
            if given is not None and self.price.unit is not None and given.unit.removesuffix("_per_kg") != self.price.unit:
                raise PydanticCustomError(
                    "costing", "dose in {d} but price per {p}: use the same unit (mg_per_kg goes with mg)",
                    {"d": given.unit, "p": self.price.unit})
        return self


class EventCost(Strict):
    """A one-off event: its cost, and a utility decrement for a duration."""

    cost: Price | None = None
    disutility: float = Field(default=0.0, ge=0, le=1)
    duration: Duration = 0.0
    source: Source | None = None


class Rate(Strict):
    """A yearly discount rate."""

    rate_per_year: float = Field(ge=0, lt=1)
    source: Source | None = None


class Discounting(Strict):
    """Discount rates for costs and QALYs, applied continuously or per whole year."""

    costs: Rate
    qalys: Rate
    method: Literal["continuous", "annual"] = "continuous"
    source: Source | None = None


class Utility(Strict):
    """A health-state utility (0 = dead, 1 = full health)."""

    value: float = Field(ge=-1, le=1)
    source: Source | None = None


class ResourceUse(Strict):
    """One resource used in a health state: its unit cost, used once `every` duration or
    `per_year` times a year."""

    item: str
    cost: Price
    every: Duration | None = Field(default=None, gt=0)
    per_year: float | None = Field(default=None, ge=0)
    source: Source | None = None

    @model_validator(mode="after")
    def _one_frequency(self) -> ResourceUse:
        if (self.every is None) == (self.per_year is None):
            raise PydanticCustomError("frequency", "give how often it is used: every (e.g. 3 months) or per_year, one of them")
        return self

    @property
    def per_month(self) -> float:
        """Cost a month of this item (currency a month)."""
        uses = 1.0 / self.every if self.every is not None else self.per_year / 12.0
        return self.cost.amount / self.cost.per * uses


class HealthStateCost(Strict):
    """What a month in a health state costs: the sum of its resource-use items."""

    resource_use: list[ResourceUse] = Field(min_length=1)
    source: Source | None = None


#: General-population EQ-5D norms by age (years) and sex: (intercept, male, age, age squared).
NORMS = {
    # Ara R, Brazier JE. Populating an economic model with health state utility values: moving
    # towards better practice. Value Health 2010;13(5):509-518 (UK EQ-5D-3L, Health Survey for England).
    "ara_brazier_2010": (0.9508566, 0.0212126, -0.0002587, -0.0000332),
}


class AgeAdjustment(Strict):
    """Adult state utilities follow a general-population norm as patients age: multiplied
    by norm(age) / norm(reference_age), or shifted by norm(age) - norm(reference_age).

    `reference_age` and `male_share` describe the people the state utilities were measured
    in; a patient's own sex comes from `sex_covariate` (`male` / other) when the
    population has it, `male_share` otherwise."""

    norm: Literal[tuple(NORMS)] = "ara_brazier_2010"
    method: Literal["multiplicative", "additive"]
    reference_age: Duration = Field(gt=0)
    male_share: float = Field(ge=0, le=1)
    age_covariate: str = "age_years"
    sex_covariate: str = "sex"
    source: Source | None = None


class ChildUtilities(Strict):
    """State utilities of children, used until `until_age`; adult `utilities` after it."""

    until_age: Duration = Field(gt=0)
    utilities: dict[Literal[STATES], Utility]
    age_covariate: str = "age_years"
    source: Source | None = None

    @model_validator(mode="after")
    def _all_states(self) -> ChildUtilities:
        missing = [s for s in STATES if s not in self.utilities]
        if missing:
            raise PydanticCustomError("utilities", "children's utilities missing for: {m}", {"m": ", ".join(missing)})
        return self


class EvpiPopulation(Strict):
    """Who the decision concerns, for the population EVPI: patients affected (over the
    decision's lifetime, already discounted if wanted)."""

    patients: float = Field(gt=0)
    source: Source | None = None


class EconomicsSpec(Strict):
    """A whole economics file."""

    name: str | None = None
    description: str | None = None
    currency: str | None = None
    price_year: int
    perspective: str | None = None
    discount: Discounting
    willingness_to_pay: list[Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(min_length=1)
    treatments: dict[str, DrugCosting] = {}
    adverse_events: dict[str, EventCost] = {}
    drug_start: EventCost | None = None
    burst: EventCost | None = None
    relapse: EventCost | None = None
    health_states: dict[Literal[STATES], HealthStateCost] = {}
    utilities: dict[Literal[STATES], Utility]
    age_adjustment: AgeAdjustment | None = None
    children: ChildUtilities | None = None
    evpi_population: EvpiPopulation | None = None
    source: Source | None = None

    @model_validator(mode="after")
    def _prices_have_currency(self) -> EconomicsSpec:
        for path, price in self._prices():
            if price.currency is None and self.currency is None:
                raise PydanticCustomError(
                    "currency", "price without currency: add currency: GBP (or USD, ...) at the top or to the price",
                    {"path": path})
            if price.currency is not None and self.currency is not None and price.currency != self.currency:
                raise PydanticCustomError(
                    "currency", "price in {c} but the file is in {f}: convert it, one currency per file",
                    {"c": price.currency, "f": self.currency, "path": path})
        missing = [s for s in STATES if s not in self.utilities]
        if missing:
            raise PydanticCustomError("utilities", "utilities missing for: {m}", {"m": ", ".join(missing), "path": "utilities"})
        return self

    def _prices(self):
        for name, drug in self.treatments.items():
            if drug.price is not None:
                yield f"treatments.{name}.price", drug.price
            for kind in ("administration", "monitoring", "at_start"):
                for i, item in enumerate(getattr(drug, kind)):
                    yield f"treatments.{name}.{kind}[{i}].cost", item.cost
        for name, event in self.adverse_events.items():
            if event.cost is not None:
                yield f"adverse_events.{name}.cost", event.cost
        for state, cost in self.health_states.items():
            for i, item in enumerate(cost.resource_use):
                yield f"health_states.{state}.resource_use[{i}].cost", item.cost
        for name in ("drug_start", "burst", "relapse"):
            event = getattr(self, name)
            if event is not None and event.cost is not None:
                yield f"{name}.cost", event.cost

    @property
    def currency_code(self) -> str:
        """The file's currency (or the one its prices share)."""
        return self.currency or next(price.currency for _, price in self._prices())


@dataclass(frozen=True)
class Economics:
    """Numbers ready for costing a trajectory: per-month rates and one-off costs, in one currency."""

    name: str
    currency: str
    price_year: int
    cost_discount_per_year: float
    qaly_discount_per_year: float
    method: str
    willingness_to_pay: tuple[float, ...]
    drug_per_month: dict = field(default_factory=dict)          # treatment -> (fixed, per kg of weight)
    monitoring_per_month: dict = field(default_factory=dict)    # treatment -> cost a month
    administration_per_month: dict = field(default_factory=dict)  # treatment -> cost a month
    health_state_per_month: dict = field(default_factory=dict)  # state -> cost a month
    loading: dict = field(default_factory=dict)                 # treatment -> (fixed, per kg) one-off drug
    at_start: dict = field(default_factory=dict)                # treatment -> one-off tests at the start
    adverse_events: dict = field(default_factory=dict)          # name -> (cost, disutility x months)
    drug_start: float = 0.0
    burst: tuple[float, float] = (0.0, 0.0)                     # (cost, disutility x months)
    relapse: float = 0.0
    utilities: dict = field(default_factory=dict)
    age_adjustment: AgeAdjustment | None = None
    children: ChildUtilities | None = None
    evpi_population: float | None = None
    perspective: str | None = None
    resolved: dict = field(default_factory=dict, compare=False)   # the validated file, as JSON values

    @property
    def resolved_hash(self) -> str:
        """SHA-256 of the resolved economic values (canonical JSON), for run.json."""
        return hashlib.sha256(json.dumps(self.resolved, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def economics_path(name_or_path: str) -> Path:
    """Return the economics file for a bundled name (`uk_nhs`) or a path."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    bundled = {p.stem: p for p in sorted((bundled_dir() / "economics").glob("*.yaml"))}
    if name_or_path in bundled:
        return bundled[name_or_path]
    raise ScenarioError([Problem(
        name_or_path, "--economics",
        f"unknown economic setting{suggest(name_or_path, bundled)}; bundled: {', '.join(bundled)}, or give a path")])


def economics_document(name_or_path: str) -> tuple[dict, Path]:
    """Return the resolved document of an economic setting (its `extends` applied) and its file.

    `extends: uk_nhs` (a bundled setting, or a file beside this one) inherits every value;
    the file then overrides keys (mappings merge key by key) and `null` removes one. The
    name is the file's own (`name:` or its stem), never inherited.
    """
    document, _, _ = _resolved(economics_path(name_or_path))
    return document, economics_path(name_or_path)


def _resolved(path: Path) -> tuple[dict, dict, dict]:
    document, origins, removed = read_with_extends(path, bundled_dir() / "economics", "economics")
    if origins.get(("name",)) not in (None, str(path)):
        document = {k: v for k, v in document.items() if k != "name"}
    return document, origins, removed


def load_economics(name_or_path: str, treatments: dict[str, list[str]]) -> Economics:
    """Read and validate an economics file against the scenario's treatments and adverse events.

    `treatments` maps each treatment of the scenario to its adverse-event names; adverse
    events the file does not price cost nothing (`unpriced_adverse_events` lists them).
    """
    path = economics_path(name_or_path)
    document, origins, removed = _resolved(path)
    spec = _validated(document, path, origins, removed)
    _check_names(spec, treatments, path)
    return compile_economics(spec, spec.name or path.stem)


def economics_from_document(document: dict, name: str, where: str) -> Economics:
    """Validate and compile an economics document (e.g. one with a PSA sample's values
    written in); raise `ScenarioError` naming `where` and the key path."""
    return compile_economics(_validated(document, where), name)


def _validated(document: dict, where, origins: dict | None = None, removed: dict | None = None) -> EconomicsSpec:
    try:
        return EconomicsSpec.model_validate(document)
    except ValidationError as exc:
        raise ScenarioError(validation_problems(exc, document, origins or {}, where, removed)) from None


def _component_loop(spec: EconomicsSpec, chain: list[str]) -> list[str] | None:
    """The chain of components from `chain[0]` back to itself, if there is one."""
    for component in spec.treatments[chain[-1]].components:
        if component == chain[0]:
            return [*chain, component]
        if component in spec.treatments and component not in chain:
            found = _component_loop(spec, [*chain, component])
            if found:
                return found
    return None


def _check_names(spec: EconomicsSpec, treatments: dict[str, list[str]], path: Path) -> None:
    problems = []
    for name, drug in spec.treatments.items():
        for component in drug.components:
            if component not in spec.treatments:
                problems.append(Problem(str(path), f"treatments.{name}.components",
                                        f"unknown component '{component}'{suggest(component, spec.treatments)}"))
    for name in spec.treatments:
        loop = _component_loop(spec, [name])
        if loop:
            problems.append(Problem(str(path), f"treatments.{name}.components",
                                    f"the components refer back to '{name}' ({' -> '.join(loop)}); a combination "
                                    "lists its single drugs, each costed by its own price and dose"))
            break
    missing = [t for t in treatments if t not in spec.treatments]
    if missing:
        problems.append(Problem(str(path), "treatments",
                                f"no costing for {', '.join(missing)}: add them (a drug with no cost can say price: "
                                "{amount: 0, ...} and dose)"))
    if problems:
        raise ScenarioError(problems)


def unpriced_adverse_events(economics: Economics, treatments: dict[str, list[str]]) -> list[str]:
    """The scenario's adverse events that the economic setting gives no cost or disutility."""
    events = sorted({event for names in treatments.values() for event in names})
    return [event for event in events if event not in economics.adverse_events]


def compile_economics(spec: EconomicsSpec, name: str) -> Economics:
    """Turn a validated economics file into per-month rates and one-off costs."""
    drug, monitoring, administration, loading, at_start = {}, {}, {}, {}, {}
    for treatment, costing in spec.treatments.items():
        drug[treatment] = _drug_per_month(costing)
        monitoring[treatment] = _per_month(costing.monitoring)
        administration[treatment] = _per_month(costing.administration)
        loading[treatment] = (_loading_cost(costing), _loading_per_kg(costing))
        at_start[treatment] = sum(item.cost.amount / item.cost.per for item in costing.at_start)
    for treatment, costing in spec.treatments.items():
        for component in costing.components:
            fixed, per_kg = drug[component]
            drug[treatment] = (drug[treatment][0] + fixed, drug[treatment][1] + per_kg)
    return Economics(
        name=name,
        currency=spec.currency_code,
        price_year=spec.price_year,
        cost_discount_per_year=spec.discount.costs.rate_per_year,
        qaly_discount_per_year=spec.discount.qalys.rate_per_year,
        method=spec.discount.method,
        willingness_to_pay=tuple(spec.willingness_to_pay),
        drug_per_month=drug,
        monitoring_per_month=monitoring,
        administration_per_month=administration,
        health_state_per_month={state: sum(item.per_month for item in cost.resource_use)
                                for state, cost in spec.health_states.items()},
        loading=loading,
        at_start=at_start,
        adverse_events={n: _event(e) for n, e in spec.adverse_events.items()},
        drug_start=_event(spec.drug_start)[0],
        burst=_event(spec.burst),
        relapse=_event(spec.relapse)[0],
        utilities={state: u.value for state, u in spec.utilities.items()},
        age_adjustment=spec.age_adjustment,
        children=spec.children,
        evpi_population=spec.evpi_population.patients if spec.evpi_population else None,
        perspective=spec.perspective,
        resolved=spec.model_dump(mode="json", exclude_none=True),
    )


def _per_month(items: list[Monitoring]) -> float:
    """Cost a month of repeated items (one-off items, without `every`, are not counted)."""
    return sum(item.cost.amount / item.cost.per / item.every for item in items if item.every)


def population_norm(norm: str, age_years, male_share: float):
    """General-population utility at `age_years` (array) for a population with
    `male_share` men (Ara & Brazier 2010 for `ara_brazier_2010`)."""
    c0, male, c1, c2 = NORMS[norm]
    return c0 + male * male_share + c1 * age_years + c2 * age_years**2


def _event(event: EventCost | None) -> tuple[float, float]:
    if event is None:
        return 0.0, 0.0
    cost = event.cost.amount / event.cost.per if event.cost is not None else 0.0
    return cost, event.disutility * event.duration


def _unit_price(costing: DrugCosting) -> float:
    return costing.price.amount / costing.price.per


def _drug_per_month(costing: DrugCosting) -> tuple[float, float]:
    """(cost a month, cost a month per kg of body weight) of the drug itself."""
    if costing.dose is None:
        return 0.0, 0.0
    per_month = costing.dose.amount / costing.dose.every * _unit_price(costing)
    if costing.dose.unit.endswith("_per_kg"):
        return 0.0, per_month
    return per_month, 0.0


def _loading_cost(costing: DrugCosting) -> float:
    if costing.loading is None or costing.loading.unit.endswith("_per_kg"):
        return 0.0
    return costing.loading.amount * _unit_price(costing)


def _loading_per_kg(costing: DrugCosting) -> float:
    if costing.loading is None or not costing.loading.unit.endswith("_per_kg"):
        return 0.0
    return costing.loading.amount * _unit_price(costing)


def monthly_rate(rate_per_year: float) -> float:
    """Return the continuous discount rate per month equivalent to a yearly rate."""
    return math.log1p(rate_per_year) / 12.0



def input_rows(resolved: dict) -> list[dict]:
    """Every input of a resolved economic setting as rows `path, value, source`: one row
    per group of numbers (a price, a dose, a resource-use item, a utility...), its source
    the group's own or the nearest enclosing one."""
    rows: list[dict] = []

    def walk(node, path: str, inherited: str) -> None:
        if isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{path}[{i}]", inherited)
            return
        if not isinstance(node, dict):
            return
        source = str(node.get("source", inherited) or "")
        scalars = {k: v for k, v in node.items() if k != "source" and (
            not isinstance(v, (dict, list)) or (isinstance(v, list) and v and not isinstance(v[0], dict)))}
        if scalars:
            rows.append({"path": path or "setting",
                         "value": ", ".join(f"{k}: {_shown(k, v)}" for k, v in scalars.items()), "source": source})
        for key, value in node.items():
            if key not in scalars and isinstance(value, (dict, list)):
                walk(value, f"{path}.{key}" if path else key, source)

    walk({k: v for k, v in resolved.items() if k not in ("name", "description")}, "", "")
    return rows


#: Keys whose values are durations (months once resolved).
_DURATIONS = ("every", "duration", "until_age", "reference_age")


def _shown(key: str, value) -> str:
    if isinstance(value, list):
        return ", ".join(_shown("", v) for v in value)
    if key in _DURATIONS and isinstance(value, (int, float)):
        if value < 1:
            return f"{value * 30.4375:.3g} days"
        return f"{value:.4g} months" if value < 24 else f"{value / 12:.4g} years"
    return f"{value:g}" if isinstance(value, float) else str(value)
