"""The scenario file's schema: what a user may write in YAML, checked by pydantic.

A scenario says who the patients are (`population`), what each treatment does
(`treatments`), in which order they are tried (`strategies`), what happens after a
return to topical therapy (`relapse`), who leaves follow-up (`loss_to_followup`), how
long and how many to simulate (`settings`) and what a calibration should reproduce
(`targets`). Every number may carry a `source:` (a publication and its table or
sentence, or `assumption: <rationale>`).

Durations are strings with a unit (`6 weeks`, `3 months`, `1.5 years`) or numbers in
months. Probabilities are `{p: 0.42}`, a bare number, or counts `{events: 27, n: 41}`
(counts are kept so that a probabilistic sensitivity analysis can draw from a Beta).
"""

from __future__ import annotations

import difflib
import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from sim.tables import FLARE_STATES
from sim.units import DurationError, parse_duration


def _duration(value: Any) -> float:
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise PydanticCustomError("duration", str(exc)) from None


Duration = Annotated[float, BeforeValidator(_duration)]
Source = Annotated[str, Field(min_length=1)]


def suggest(word: str, choices) -> str:
    """Return ` (did you mean 'x'?)` for the closest of `choices`, or an empty string."""
    match = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


class Strict(BaseModel):
    """A schema block that refuses unknown keys, suggesting the nearest known one."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        known = set(cls.model_fields)
        known |= {f.alias for f in cls.model_fields.values() if f.alias}
        for key in data:
            if key not in known:
                raise PydanticCustomError(
                    "unknown_key",
                    "unknown key '{key}'{hint}; allowed here: {allowed}",
                    {"key": key, "hint": suggest(key, known), "allowed": ", ".join(sorted(known))},
                )
        return data


# ----------------------------------------------------------------------------------
# Probabilities


class Probability(Strict):
    """A probability, as `p` or as observed counts `events` of `n`."""

    p: float | None = None
    events: int | None = None
    n: int | None = None
    source: Source | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_number(cls, data: Any) -> Any:
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return {"p": data}
        return data

    @model_validator(mode="after")
    def _one_form(self) -> Probability:
        counts = self.events is not None or self.n is not None
        if self.p is not None and counts:
            raise PydanticCustomError("probability", "give either p or events/n, not both")
        if self.p is None and not counts:
            raise PydanticCustomError(
                "probability", "a probability needs p (e.g. p: 0.42) or counts (events: 27, n: 41)"
            )
        if self.p is not None and not 0.0 <= self.p <= 1.0:
            raise PydanticCustomError(
                "probability", "probability {p} is outside [0, 1]; write a proportion such as 0.42",
                {"p": self.p},
            )
        if counts:
            self._check_counts()
        return self

    def _check_counts(self) -> None:
        if self.events is None or self.n is None:
            raise PydanticCustomError("probability", "counts need both events and n")
        if self.n < 1 or self.events < 0:
            raise PydanticCustomError("probability", "counts need n >= 1 and events >= 0")
        if self.events > self.n:
            raise PydanticCustomError(
                "probability", "events ({events}) exceed n ({n}); events are counted among n",
                {"events": self.events, "n": self.n},
            )

    @property
    def value(self) -> float:
        """The point estimate: p, or events/n."""
        return self.p if self.p is not None else self.events / self.n


# ----------------------------------------------------------------------------------
# Distributions

DIST_PARAMETERS: dict[str, tuple[tuple[str, ...], ...]] = {
    "fixed": (("value",),),
    "uniform": (("low", "high"),),
    "exponential": (("mean",),),
    "weibull": (("shape", "scale"),),
    "gamma": (("shape", "scale"), ("mean", "sd")),
    "lognormal": (("median", "sdlog"), ("mean", "sd")),
    "normal": (("mean", "sd"),),
    "empirical": (("values",), ("values", "weights")),
    "gompertz": (("shape", "rate"),),
    "loglogistic": (("shape", "scale"),),
    "gengamma": (("mu", "sigma", "Q"),),
    "piecewise_exponential": (("starts", "rates"),),
}
"""For each distribution, the parameter sets it accepts (durations in months)."""


class DistributionSpec(Strict):
    """A distribution of a time, a duration or a numeric covariate.

    - `fixed`: `value`
    - `uniform`: `low`, `high`
    - `exponential`: `mean`
    - `weibull`: `shape` (no unit), `scale`
    - `gamma`: `shape` and `scale`, or `mean` and `sd`
    - `lognormal`: `median` and `sdlog` (sd of the log), or `mean` and `sd`
    - `normal`: `mean`, `sd`; truncated at zero
    - `empirical`: `values` (and optional `weights`), resampled
    - `gompertz`: `shape` and `rate` (both per month), hazard rate * exp(shape * t);
      a negative shape leaves a share exp(rate/shape) who never reach the event
    - `loglogistic`: `shape` (no unit), `scale` (the median)
    - `gengamma`: `mu` (log months), `sigma`, `Q` (Prentice's, as flexsurv's `gengamma`)
    - `piecewise_exponential`: `starts` (first 0, increasing) and one hazard per month in
      `rates` per start; a last rate of 0 leaves a share who never reach the event
    Optional `clip: [low, high]` bounds every draw.
    """

    dist: Literal["fixed", "uniform", "exponential", "weibull", "gamma", "lognormal", "normal", "empirical",
                  "gompertz", "loglogistic", "gengamma", "piecewise_exponential"]
    value: Duration | None = None
    low: Duration | None = None
    high: Duration | None = None
    mean: Duration | None = None
    sd: Duration | None = None
    median: Duration | None = None
    sdlog: float | None = Field(default=None, gt=0)
    shape: float | None = None
    scale: Duration | None = None
    rate: float | None = Field(default=None, gt=0)
    mu: float | None = None
    sigma: float | None = Field(default=None, gt=0)
    Q: float | None = None
    starts: list[Duration] | None = None
    rates: list[Annotated[float, Field(ge=0)]] | None = None
    values: list[Duration] | None = None
    weights: list[Annotated[float, Field(ge=0)]] | None = None
    clip: tuple[float, float] | None = None
    source: Source | None = None

    @model_validator(mode="after")
    def _parameters_match(self) -> DistributionSpec:
        given = tuple(
            name for name in ("value", "low", "high", "mean", "sd", "median", "sdlog", "shape", "scale", "values", "weights",
                              "rate", "mu", "sigma", "Q", "starts", "rates")
            if getattr(self, name) is not None
        )
        forms = DIST_PARAMETERS[self.dist]
        if set(given) not in [set(form) for form in forms]:
            wanted = " or ".join(", ".join(form) for form in forms)
            raise PydanticCustomError(
                "distribution",
                "a '{dist}' distribution takes {wanted}; got {given}",
                {"dist": self.dist, "wanted": wanted, "given": ", ".join(given) or "nothing"},
            )
        self._check_values()
        return self

    def _check_values(self) -> None:
        def fail(message: str) -> None:
            raise PydanticCustomError("distribution", message)

        if self.dist == "uniform" and self.low > self.high:
            fail("uniform: low must not exceed high")
        if self.dist in ("exponential", "gamma", "lognormal") and self.mean is not None and self.mean <= 0:
            fail(f"{self.dist}: mean must be > 0")
        if self.sd is not None and self.sd <= 0:
            fail(f"{self.dist}: sd must be > 0")
        if self.scale is not None and self.scale <= 0:
            fail(f"{self.dist}: scale must be > 0")
        if self.median is not None and self.median <= 0:
            fail("lognormal: median must be > 0")
        if self.values is not None and len(self.values) == 0:
            fail("empirical: values must not be empty")
        if self.weights is not None and (len(self.weights) != len(self.values) or sum(self.weights) <= 0):
            fail("empirical: weights need one non-negative weight per value, not all zero")
        if self.shape is not None and self.dist != "gompertz" and self.shape <= 0:
            fail(f"{self.dist}: shape must be > 0")
        if self.starts is not None:
            self._check_intervals(fail)
        if self.clip is not None and not all(math.isfinite(bound) for bound in self.clip):
            fail("clip: both bounds must be finite numbers (not .nan or .inf); leave clip out for no bound")
        if self.clip is not None and self.clip[0] > self.clip[1]:
            fail("clip: the lower bound exceeds the upper bound")


    def _check_intervals(self, fail) -> None:
        if len(self.starts) == 0 or self.starts[0] != 0:
            fail("piecewise_exponential: starts must begin at 0 (e.g. starts: [0, 6 months, 2 years])")
        if any(b <= a for a, b in zip(self.starts, self.starts[1:])):
            fail("piecewise_exponential: starts must increase")
        if len(self.rates) != len(self.starts):
            fail(f"piecewise_exponential: give one rate per start ({len(self.starts)} starts, {len(self.rates)} rates)")
        if not any(r > 0 for r in self.rates):
            fail("piecewise_exponential: at least one rate must be above zero")


def largest_value(spec: DistributionSpec) -> float | None:
    """The largest value a distribution can draw, or None when it has no upper bound."""
    bounds = {"fixed": spec.value, "uniform": spec.high,
              "empirical": max(spec.values) if spec.values else None}
    largest = bounds.get(spec.dist)
    if spec.clip is not None:
        largest = spec.clip[1] if largest is None else min(largest, spec.clip[1])
    return largest


def can_be_zero(spec: DistributionSpec) -> bool:
    """Whether a duration distribution puts probability on exactly zero months."""
    if spec.dist == "fixed":
        return spec.value == 0
    if spec.dist == "empirical":
        weights = spec.weights or [1.0] * len(spec.values)
        return any(value == 0 and weight > 0 for value, weight in zip(spec.values, weights, strict=True))
    return largest_value(spec) == 0


class CategoricalSpec(Strict):
    """A categorical covariate: `levels` maps each level to its probability or counts."""

    levels: dict[str, Probability] = Field(min_length=1)
    source: Source | None = None

    @model_validator(mode="after")
    def _some_level_possible(self) -> CategoricalSpec:
        if not any(p.value > 0 for p in self.levels.values()):
            raise ValueError("every level's share is zero; give at least one level a share above zero")
        return self


def _covariate_kind(data: Any) -> str:
    if isinstance(data, dict):
        if "levels" in data:
            return "categorical"
        if "dist" in data:
            return "numeric"
    return "boolean"


CovariateSpec = Annotated[
    Annotated[DistributionSpec, Tag("numeric")]
    | Annotated[CategoricalSpec, Tag("categorical")]
    | Annotated[Probability, Tag("boolean")],
    Discriminator(_covariate_kind),
]


# ----------------------------------------------------------------------------------
# Rates and conditions


class RateSpec(Strict):
    """A rate of events: `per_year`, `per_month`, or counts `events` over `person_years`."""

    per_year: float | None = Field(default=None, ge=0)
    per_month: float | None = Field(default=None, ge=0)
    events: int | None = Field(default=None, ge=0)
    person_years: float | None = Field(default=None, gt=0)
    source: Source | None = None

    @model_validator(mode="after")
    def _one_form(self) -> RateSpec:
        forms = [self.per_year is not None, self.per_month is not None,
                 self.events is not None or self.person_years is not None]
        if sum(forms) != 1:
            raise PydanticCustomError(
                "rate", "give a rate as per_year, per_month, or events with person_years (exactly one)")
        if forms[2] and (self.events is None or self.person_years is None):
            raise PydanticCustomError("rate", "counts need both events and person_years")
        return self

    @property
    def per_month_value(self) -> float:
        """The rate in events per patient-month."""
        if self.per_month is not None:
            return self.per_month
        if self.per_year is not None:
            return self.per_year / 12.0
        return self.events / self.person_years / 12.0


class ConditionSpec(Strict):
    """A test on a patient covariate (or on the line of therapy): exactly one comparison.

    `at_least` / `below` compare a number; `in` / `not_in` a level; `is` a yes/no covariate.
    """

    covariate: str | None = None
    line: bool = False
    at_least: float | None = None
    below: float | None = None
    in_: list[str] | None = Field(default=None, alias="in")
    not_in: list[str] | None = None
    is_: bool | None = Field(default=None, alias="is")

    @model_validator(mode="after")
    def _one_comparison(self) -> ConditionSpec:
        if (self.covariate is None) == (not self.line):
            raise PydanticCustomError("condition", "a condition tests either a covariate (covariate: name) or the line (line: true)")
        given = [v is not None for v in (self.at_least, self.below, self.in_, self.not_in, self.is_)]
        if sum(given) != 1:
            raise PydanticCustomError("condition", "a condition needs exactly one of at_least, below, in, not_in, is")
        if any(v is not None and not math.isfinite(v) for v in (self.at_least, self.below)):
            raise PydanticCustomError("condition", "at_least and below must be finite numbers (not .nan or .inf)")
        if self.line and self.at_least is None and self.below is None:
            raise PydanticCustomError("condition", "a line condition compares a number: at_least or below")
        return self


class ResponseModifierSpec(Strict):
    """Changes the response probability of the patients a condition selects.

    `odds_ratio` multiplies the odds of response (0 = never responds); `response`
    replaces the probability outright.
    """

    when: ConditionSpec
    odds_ratio: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    response: Probability | None = None
    source: Source | None = None

    @model_validator(mode="after")
    def _one_effect(self) -> ResponseModifierSpec:
        if (self.odds_ratio is None) == (self.response is None):
            raise PydanticCustomError("modifier", "a response modifier needs exactly one of odds_ratio or response")
        return self


class EscalationSpec(Strict):
    """Before abandoning a drug: a non-responder may be escalated (dose or route) and reassessed."""

    label: str | None = None
    probability: Probability
    reassess_after: DistributionSpec
    response: Probability
    source: Source | None = None


class FlareRatesSpec(Strict):
    """Rates of flares needing a corticosteroid burst, by the state the patient is in."""

    topical: RateSpec | None = None
    uncontrolled: RateSpec | None = None
    controlled: RateSpec | None = None
    supportive_care: RateSpec | None = None
    source: Source | None = None

    def per_month(self) -> dict[str, float]:
        """The declared rates in events per patient-month, by state."""
        return {state: getattr(self, state).per_month_value for state in FLARE_STATES if getattr(self, state) is not None}


class RescueSpec(Strict):
    """Short systemic-corticosteroid bursts: for flares, and as a bridge over a slow onset.

    `flare_rate` gives the rate of flares needing a burst in each state: `topical`,
    `uncontrolled` (on a drug before it works, or not working; waiting for a drug),
    `controlled` (a responder on a drug) and `supportive_care`.
    """

    label: str = "Systemic corticosteroid burst"
    duration: DistributionSpec
    onset: DistributionSpec
    response: Probability
    rebound: Probability
    flare_rate: FlareRatesSpec = FlareRatesSpec()
    source: Source | None = None


class ResourceSpec(Strict):
    """A limited resource: `capacity` patients at a time (or `unlimited`)."""

    label: str | None = None
    capacity: int | Literal["unlimited"]
    unit: str | None = None
    source: Source | None = None

    @field_validator("capacity")
    @classmethod
    def _positive(cls, value):
        if value != "unlimited" and value < 1:
            raise PydanticCustomError("capacity", "capacity must be at least 1 (or 'unlimited')")
        return value


# ----------------------------------------------------------------------------------
# Clinical blocks


class AdverseEventSpec(Strict):
    """A named adverse event of a treatment."""

    label: str | None = None
    probability: Probability
    onset: DistributionSpec
    stops_treatment: Probability = Probability(p=0.0)
    source: Source | None = None


class EndOfCourseSpec(Strict):
    """Where a responder goes when the planned course ends: the three must sum to 1."""

    remission: Probability
    switch: Probability
    continue_on: Probability = Field(alias="continue")
    source: Source | None = None

    @model_validator(mode="after")
    def _sums_to_one(self) -> EndOfCourseSpec:
        parts = [self.remission, self.switch, self.continue_on]
        if all(part.n is not None for part in parts):
            return self  # counts are normalised by their total
        total = sum(part.value for part in parts)
        if abs(total - 1.0) > 1e-6:
            raise PydanticCustomError(
                "fates", "remission + switch + continue must sum to 1 (they sum to {total:.4g})",
                {"total": total},
            )
        return self


class EligibilitySpec(Strict):
    """Who may receive a treatment; others skip it and go to the next line."""

    age_groups: list[Literal["adult", "child"]] | None = None
    after_failure_of: list[str] = []
    when: list[ConditionSpec] = []
    source: Source | None = None


class RelapseSpec(Strict):
    """After a return to topical therapy: the probability of a flare that needs systemic
    treatment again, and when (months after stopping the drug)."""

    probability: Probability
    time: DistributionSpec
    source: Source | None = None


class TreatmentSpec(Strict):
    """One treatment (a drug or a named combination) and what the evidence says of it."""

    label: str
    description: str | None = None
    dose: str | None = None
    response_definition: str | None = None
    assess_at: DistributionSpec
    response: Probability
    response_modifiers: list[ResponseModifierSpec] = []
    target_response: Probability | None = None
    escalation: EscalationSpec | None = None
    course: DistributionSpec | None = None
    cap: DistributionSpec | None = None
    end_of_course: EndOfCourseSpec | None = None
    loss_of_response: DistributionSpec | None = None
    adverse_events: dict[str, AdverseEventSpec] = {}
    eligibility: EligibilitySpec = EligibilitySpec()
    relapse: RelapseSpec | None = None
    requires: str | None = None
    source: Source | None = None


class TreatToTargetSpec(Strict):
    """Assess every line at `assess_at`; responders below target move to the next line."""

    assess_at: DistributionSpec
    source: Source | None = None


class StrategySpec(Strict):
    """An ordered list of lines of treatment and the rules for moving along it."""

    label: str | None = None
    description: str | None = None
    lines: list[str] = Field(min_length=1)
    first_line: dict[str, Probability] | None = None
    on_relapse: Literal["retreat", "next_line"] = "retreat"
    retreat_only: list[str] | None = None
    bridge: list[str] = []
    treat_to_target: TreatToTargetSpec | None = None
    source: Source | None = None


class AgeLimitSpec(Strict):
    """Observation ends when the patient reaches `age` (a duration: `18 years`), for instance
    at the 18th birthday, when children move to adult care; `age_covariate` is the
    patient's age at entry (a numeric covariate, in years)."""

    age: Duration
    age_covariate: str = "age_years"
    source: Source | None = None


class PopulationSpec(Strict):
    """Who enters the pathway: age group, covariates, and how long each is observed."""

    age_group: Literal["adult", "child"] = "adult"
    covariates: dict[str, CovariateSpec] = {}
    follow_up: DistributionSpec | None = None
    observed_until_age: AgeLimitSpec | None = None
    arrival: DistributionSpec | None = None
    source: Source | None = None


class WorkupSpec(Strict):
    """The work-up at entry (source document 004): before a systemic drug, treatable
    exacerbating factors are excluded (non-adherence to topical therapy, secondary
    infection, contact allergy to topical treatments). `found` is the share of referred
    patients in whom one is found and treated, who go back to topical therapy without a
    systemic drug; `duration` how long the work-up takes (a duration or a distribution),
    after which the others start their first line."""

    found: Probability
    duration: DistributionSpec
    source: Source | None = None


class MortalitySpec(Strict):
    """Background mortality: a life table (CSV with columns age, qx; path relative to the
    file that declares it) applied to the patient's age (a numeric covariate, in years)."""

    life_table: str
    age_covariate: str = "age_years"
    source: Source | None = None


class SettingsSpec(Strict):
    """How much to simulate."""

    patients: int = Field(default=1000, ge=1)
    horizon: Duration = 120.0
    seed: int = Field(default=1, ge=0, le=2**32 - 1)  # one 32-bit word of the Philox key (sim.random_numbers)
    replicates: int = Field(default=1, ge=1)
    # Deprecated: run options (`--engine`, `--chunk-size`), still read (sim.loader says so once).
    engine: Literal["auto", "compiled", "des"] | None = None
    chunk_size: int | None = Field(default=None, ge=1)

    @field_validator("horizon")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise PydanticCustomError("duration", "the horizon must be longer than zero")
        return value


TargetMetric = Literal[
    "response_rate",
    "any_adverse_event_rate",
    "responder_fate",
    "adverse_event_rate",
    "adverse_event_discontinuation",
    "final_state",
    "returned_to_topical_ever",
]


class TargetSpec(Strict):
    """An observed figure a run should reproduce (for `adpath check`).

    Metrics: `response_rate` (treatment), `any_adverse_event_rate` (treatment: share of
    its patients with any adverse event), `responder_fate` (treatment; fate remission,
    switch or still_on), `adverse_event_rate` (treatment, adverse_event),
    `adverse_event_discontinuation` (treatment), `final_state` (state),
    `returned_to_topical_ever`. Set `enforce: false` with a `why` for a figure the
    documents' own numbers cannot reproduce. `kind` says whether the figure is an input
    of the scenario (`input_reproduction`) or predicted by the model (`validation`); by
    default `analysis.targets.target_kind` derives it from the metric.
    """

    metric: TargetMetric
    observed: Probability
    treatment: str | None = None
    fate: Literal["remission", "switch", "still_on"] | None = None
    adverse_event: str | None = None
    state: Literal["systemic", "topical", "supportive_care", "lost_to_followup"] | None = None
    strategy: str | None = None
    enforce: bool = True
    why: str | None = None
    kind: Literal["input_reproduction", "validation"] | None = None
    source: Source | None = None

    @model_validator(mode="after")
    def _complete(self) -> TargetSpec:
        needs = {
            "response_rate": ("treatment",),
            "any_adverse_event_rate": ("treatment",),
            "responder_fate": ("treatment", "fate"),
            "adverse_event_rate": ("treatment", "adverse_event"),
            "adverse_event_discontinuation": ("treatment",),
            "final_state": ("state",),
            "returned_to_topical_ever": (),
        }[self.metric]
        missing = [name for name in needs if getattr(self, name) is None]
        if missing:
            raise PydanticCustomError(
                "target", "metric '{metric}' needs {missing}", {"metric": self.metric, "missing": ", ".join(missing)}
            )
        if not self.enforce and not self.why:
            raise PydanticCustomError("target", "a target with enforce: false needs a 'why'")
        return self


_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def _eligibility_cycle(needs: dict[str, set[str]]) -> list[str]:
    """A cycle of `after_failure_of` (each treatment needs the failure of all it lists) as
    [t1, t2, ..., t1], or [] when every treatment can start once those it needs have failed."""
    needs = {t: required & needs.keys() for t, required in needs.items()}  # unknown names are refused elsewhere
    startable: set[str] = set()
    grown = True
    while grown:
        ready = {t for t, required in needs.items() if t not in startable and required <= startable}
        startable |= ready
        grown = bool(ready)
    stuck = sorted(t for t in needs if t not in startable)
    if not stuck:
        return []
    path, here = [], stuck[0]
    while here not in path:  # every stuck treatment needs a stuck one: the walk comes back
        path.append(here)
        here = min(t for t in needs[here] if t not in startable)
    return path[path.index(here):] + [here]


class Scenario(Strict):
    """A whole scenario, after `extends` has been resolved."""

    name: str | None = None
    description: str | None = None
    settings: SettingsSpec = SettingsSpec()
    population: PopulationSpec = PopulationSpec()
    treatments: dict[str, TreatmentSpec] = Field(min_length=1)
    strategies: dict[str, StrategySpec] = Field(min_length=1)
    relapse: RelapseSpec | None = None
    loss_to_followup: DistributionSpec | None = None
    workup: WorkupSpec | None = None
    rescue: RescueSpec | None = None
    resources: dict[str, ResourceSpec] = {}
    mortality: MortalitySpec | None = None
    targets: dict[str, TargetSpec] = {}

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        # The name becomes the default run directory (results/<name>): it must stay one folder.
        if value is not None and not _PLAIN_NAME.fullmatch(value):
            raise PydanticCustomError(
                "name", "a scenario name is 1-100 letters, digits, '_', '-' or '.', starting with a letter or "
                "digit (it names the results folder); '{name}' is not", {"name": value[:60]},
            )
        return value

    @model_validator(mode="after")
    def _names_resolve(self) -> Scenario:
        for name, strategy in self.strategies.items():
            for i, line in enumerate(strategy.lines):
                self._known_treatment(line, f"strategies.{name}.lines[{i}]")
                if line in strategy.lines[:i]:
                    raise PydanticCustomError(
                        "repeated", "treatment '{t}' is listed twice in the lines; list each treatment once "
                        "(retreatment after a relapse is set by on_relapse)",
                        {"t": line, "path": f"strategies.{name}.lines[{i}]"},
                    )
            if strategy.first_line and not any(p.value > 0 for p in strategy.first_line.values()):
                raise PydanticCustomError(
                    "zero_weights", "every first_line share is zero; give at least one treatment a share above zero",
                    {"path": f"strategies.{name}.first_line"},
                )
            for first in strategy.first_line or {}:
                self._known_treatment(first, f"strategies.{name}.first_line.{first}")
                if first not in strategy.lines:
                    raise PydanticCustomError(
                        "reference", "first_line treatment '{t}' is not one of the strategy's lines",
                        {"t": first, "path": f"strategies.{name}.first_line.{first}"},
                    )
            for i, bridged in enumerate(strategy.bridge):
                self._known_treatment(bridged, f"strategies.{name}.bridge[{i}]")
            for i, retreated in enumerate(strategy.retreat_only or []):
                self._known_treatment(retreated, f"strategies.{name}.retreat_only[{i}]")
            if strategy.bridge and self.rescue is None:
                raise PydanticCustomError(
                    "reference", "a bridge needs a rescue: block describing the corticosteroid burst",
                    {"path": f"strategies.{name}.bridge"})
        for name, treatment in self.treatments.items():
            for i, other in enumerate(treatment.eligibility.after_failure_of):
                self._known_treatment(other, f"treatments.{name}.eligibility.after_failure_of[{i}]")
            conditions = [(f"eligibility.when[{i}]", c) for i, c in enumerate(treatment.eligibility.when)]
            conditions += [(f"response_modifiers[{i}].when", m.when) for i, m in enumerate(treatment.response_modifiers)]
            for where, condition in conditions:
                self._known_covariate(condition, f"treatments.{name}.{where}")
            if treatment.requires is not None and treatment.requires not in self.resources:
                raise PydanticCustomError(
                    "reference", "unknown resource '{r}'{hint}; declare it under resources:",
                    {"r": treatment.requires, "hint": suggest(treatment.requires, self.resources),
                     "path": f"treatments.{name}.requires"})
            self._no_zero_time_loop(name, treatment)
        self._consistent_eligibility()
        for name, target in self.targets.items():
            self._check_target(name, target)
        if self.mortality is not None:
            self._numeric_age("mortality", self.mortality.age_covariate, "mortality.age_covariate")
        if self.population.observed_until_age is not None:
            self._check_age_limit(self.population.observed_until_age)
        return self

    def _no_zero_time_loop(self, name: str, treatment: TreatmentSpec) -> None:
        # A responder who can remit at once and relapse at once re-enters the pathway at the
        # same instant, for ever: the simulation would never advance its clock.
        relapse = treatment.relapse or self.relapse
        if relapse is None or relapse.probability.value <= 0 or not can_be_zero(relapse.time):
            return
        remits = treatment.end_of_course is None or treatment.end_of_course.remission.value > 0
        stops_at_once = [key for key in ("course", "cap")
                         if getattr(treatment, key) is not None and can_be_zero(getattr(treatment, key))]
        if treatment.response.value > 0 and remits and stops_at_once:
            where = "treatments.{name}.relapse.time" if treatment.relapse else "relapse.time"
            raise PydanticCustomError(
                "zero_time_loop", "a responder to '{name}' can return to topical therapy after a {key} of zero "
                "months and relapse after zero months ({where}), so the pathway can loop without time passing; "
                "give the {key} or the relapse time a smallest value above zero",
                {"name": name, "key": stops_at_once[0], "where": where.format(name=name),
                 "path": f"treatments.{name}.{stops_at_once[0]}"},
            )

    def _check_age_limit(self, limit: AgeLimitSpec) -> None:
        path = "population.observed_until_age"
        age = self._numeric_age("observed_until_age", limit.age_covariate, f"{path}.age_covariate")
        oldest, years = largest_value(age), limit.age / 12.0
        if oldest is None or oldest > years:
            at_entry = "can be any age" if oldest is None else f"can be up to {oldest:g} years old"
            raise PydanticCustomError(
                "reference",
                "observation ends at {years} years of age, but patients ({c}) {at_entry} at entry; bound the "
                "covariate below it (clip: [low, high] or a uniform's high){hint}",
                {"years": f"{years:g}", "c": limit.age_covariate, "at_entry": at_entry, "path": f"{path}.age",
                 "hint": "; a bare number is read as months: write '18 years'" if years < 2 else ""})

    def _numeric_age(self, what: str, covariate: str, path: str) -> DistributionSpec:
        """The age covariate `what` counts from (years), which must be a numeric covariate."""
        age = self.population.covariates.get(covariate)
        if not isinstance(age, DistributionSpec):
            raise PydanticCustomError(
                "reference", "{what} needs a numeric age covariate '{c}' (years) under population.covariates",
                {"what": what, "c": covariate, "path": path})
        return age

    def _known_treatment(self, treatment: str, path: str) -> None:
        if treatment not in self.treatments:
            raise PydanticCustomError(
                "reference",
                "unknown treatment '{t}'{hint}; define it under treatments: or use one of {known}",
                {"t": treatment, "hint": suggest(treatment, self.treatments), "known": ", ".join(self.treatments), "path": path},
            )

    def _known_covariate(self, condition: ConditionSpec, path: str) -> None:
        covariates = self.population.covariates
        if condition.covariate is not None and condition.covariate not in covariates:
            raise PydanticCustomError(
                "reference", "unknown covariate '{c}'{hint}; declare it under population.covariates",
                {"c": condition.covariate, "hint": suggest(condition.covariate, covariates), "path": f"{path}.covariate"})
        if condition.covariate is None:
            return
        kind = {DistributionSpec: "numeric", CategoricalSpec: "categorical"}.get(
            type(covariates[condition.covariate]), "yes/no")
        fits = {"numeric": ("at_least", "below"), "categorical": ("in_", "not_in"), "yes/no": ("is_",)}[kind]
        given = next(key for key in ("at_least", "below", "in_", "not_in", "is_") if getattr(condition, key) is not None)
        if given not in fits:
            raise PydanticCustomError(
                "condition", "'{c}' is a {kind} covariate: compare it with {fits}, not {given}",
                {"c": condition.covariate, "kind": kind, "given": given.rstrip("_"),
                 "fits": " or ".join(f.rstrip("_") for f in fits), "path": path})

    def _consistent_eligibility(self) -> None:
        # A treatment given only after its own failure, or two given only after each other's,
        # can never start: the line is silently skipped for every patient.
        needs = {name: set(t.eligibility.after_failure_of) for name, t in self.treatments.items()}
        for name, others in needs.items():
            path = f"treatments.{name}.eligibility.after_failure_of"
            if name in others:
                raise PydanticCustomError(
                    "eligibility", "'{t}' is eligible only after its own failure, so it can never start; "
                    "remove it from its after_failure_of", {"t": name, "path": path})
            for other in sorted(others):
                if name in needs.get(other, ()):
                    raise PydanticCustomError(
                        "eligibility", "'{t}' and '{o}' are each eligible only after the other's failure, so "
                        "neither can ever start; remove one of the two after_failure_of entries",
                        {"t": name, "o": other, "path": path})
        cycle = _eligibility_cycle(needs)
        if cycle:
            raise PydanticCustomError(
                "eligibility", "{chain} is a cycle of after_failure_of: each is eligible only after the next "
                "one's failure, so none of them can ever start; remove one of its after_failure_of entries",
                {"chain": " -> ".join(f"'{t}'" for t in cycle),
                 "path": f"treatments.{cycle[0]}.eligibility.after_failure_of"})

    def _check_target(self, name: str, target: TargetSpec) -> None:
        if target.treatment is not None:
            self._known_treatment(target.treatment, f"targets.{name}.treatment")
        if target.strategy is not None and target.strategy not in self.strategies:
            raise PydanticCustomError(
                "reference", "unknown strategy '{s}'{hint}",
                {"s": target.strategy, "hint": suggest(target.strategy, self.strategies), "path": f"targets.{name}.strategy"},
            )
        if target.adverse_event is not None:
            events = self.treatments[target.treatment].adverse_events
            if target.adverse_event not in events:
                raise PydanticCustomError(
                    "reference", "treatment '{t}' has no adverse event '{a}'{hint}",
                    {"t": target.treatment, "a": target.adverse_event, "hint": suggest(target.adverse_event, events),
                     "path": f"targets.{name}.adverse_event"},
                )
