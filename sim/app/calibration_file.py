"""The calibration file: which scenario numbers are free, what they must reproduce, and how.

A calibration file (`scenarios/calibration/*.yaml`) names a `scenario` (a bundled name or
a path relative to the file) and says:

- `parameters`: the free parameters, by scenario key path
  (`treatments.dupilumab.course.mean`), each with its bounds `low` and `high`, an
  optional `prior` (uniform on the bounds by default; beta, gamma, lognormal or normal,
  truncated to the bounds) and an optional `start` for the optimiser;
- `targets`: published proportions the calibrated model should reproduce, each with
  its `value`, its precision (`n`, a binomial count, or `se`) and its `source`:
  `drug_survival` (treatment, optional strategy and line, `at` a time since the drug's
  start), `stop_reason_share` (treatment, `reason`: the share of stops for it) or
  `state_occupancy` (`state`, `at` a time since entry, optional strategy);
- `method`: `optimise` (a deterministic optimiser, Nelder-Mead or Powell, on the
  log-likelihood under common random numbers) or `sir` (sampling-importance-resampling
  from the priors, which returns accepted parameter sets a PSA can draw from);
- `settings`: the cohort each evaluation simulates (`patients`, `seed`, `engine`).

Everything is checked before anything runs; each problem names the file and key path.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from sim.loader import (
    LoadedScenario,
    Problem,
    ScenarioError,
    load_named_scenario,
    read_yaml,
    resolve_bundled_file,
    validation_problems,
)
from sim.guard import estimate_run, too_large
from sim.schema import Duration, Scenario, Source, Strict, suggest
from sim.app.sweep.parameters import Parameter, PathError, apply_overrides, document_value, get_path, locate, numeric_value
from sim.app.sweep.spec import Amount

from analysis.calibration import Prior, prior_from
from analysis.states import OTHER_STATES
from analysis.survival import EVENT_DEFINITIONS, DISCONTINUATION_REASONS

PRIOR_FORMS: dict[str, tuple[tuple[str, ...], ...]] = {
    "uniform": ((),),
    "beta": (("alpha", "beta"), ("mean", "sd")),
    "gamma": (("shape", "scale"), ("mean", "sd")),
    "lognormal": (("median", "sdlog"), ("meanlog", "sdlog"), ("mean", "sd")),
    "normal": (("mean", "sd"),),
}
"""For each prior family, the parameter sets it accepts (durations in months)."""
_PRIOR_KEYS = ("alpha", "beta", "mean", "sd", "shape", "scale", "median", "sdlog", "meanlog")
_CALIBRATED_KINDS = ("probability", "rate", "duration", "number")


class PriorSpec(Strict):
    """A prior, truncated to the parameter's bounds (see `PRIOR_FORMS`)."""

    dist: Literal["uniform", "beta", "gamma", "lognormal", "normal"]
    alpha: float | None = Field(default=None, gt=0)
    beta: float | None = Field(default=None, gt=0)
    mean: Amount | None = None
    sd: Amount | None = Field(default=None, gt=0)
    shape: float | None = Field(default=None, gt=0)
    scale: Amount | None = Field(default=None, gt=0)
    median: Amount | None = Field(default=None, gt=0)
    sdlog: float | None = Field(default=None, gt=0)
    meanlog: float | None = None
    source: Source | None = None

    @model_validator(mode="after")
    def _parameters_match(self) -> PriorSpec:
        given = {key for key in _PRIOR_KEYS if getattr(self, key) is not None}
        forms = PRIOR_FORMS[self.dist]
        if given not in [set(form) for form in forms]:
            wanted = " or ".join(", ".join(form) or "only the parameter's low and high" for form in forms)
            raise PydanticCustomError("prior", "a '{dist}' prior takes {wanted}; got {given}",
                                      {"dist": self.dist, "wanted": wanted, "given": ", ".join(sorted(given)) or "nothing"})
        if self.dist == "beta" and self.mean is not None:
            if not 0 < self.mean < 1 or self.sd**2 >= self.mean * (1 - self.mean):
                raise PydanticCustomError("prior", "beta: the mean must lie in (0, 1) and sd² below mean·(1−mean)")
        if self.dist in ("gamma", "lognormal") and self.mean is not None and self.mean <= 0:
            raise PydanticCustomError("prior", "{dist}: the mean must be > 0", {"dist": self.dist})
        return self

    def values(self) -> dict[str, float]:
        """The given prior parameters by name."""
        return {key: float(getattr(self, key)) for key in _PRIOR_KEYS if getattr(self, key) is not None}


class FreeParameterSpec(Strict):
    """A free parameter: its bounds, prior and optional starting value (in its unit)."""

    low: Amount
    high: Amount
    prior: PriorSpec = PriorSpec(dist="uniform")
    start: Amount | None = None
    source: Source | None = None

    @model_validator(mode="after")
    def _ordered(self) -> FreeParameterSpec:
        if not self.low < self.high:
            raise PydanticCustomError("bounds", "low ({low}) must be below high ({high})", {"low": self.low, "high": self.high})
        if self.start is not None and not self.low <= self.start <= self.high:
            raise PydanticCustomError("bounds", "start ({start}) lies outside [low, high]; move it inside",
                                      {"start": self.start})
        return self


class CalibrationTargetSpec(Strict):
    """A published proportion to reproduce, with its precision and source.

    - `drug_survival`: `treatment`, `at` (time since the drug's start), optional
      `strategy` and `line` (without a line: each patient's first episode of the drug);
    - `stop_reason_share`: `treatment`, `reason` (a reason such as `adverse_event`, a
      list, or `ineffectiveness` = nonresponse + loss of response): the share of the
      drug's stops with that reason; optional `strategy` and `line`;
    - `state_occupancy`: `state` (`topical`, `systemic`, `systemic_line_2`,
      `supportive_care`, ...), `at` (time since entry), optional `strategy`.
    `value` is a proportion; give `n` (patients behind it) or `se`, not both.
    """

    metric: Literal["drug_survival", "stop_reason_share", "state_occupancy"]
    value: float = Field(ge=0, le=1)
    n: int | None = Field(default=None, ge=1)
    se: float | None = Field(default=None, gt=0)
    treatment: str | None = None
    strategy: str | None = None
    line: int | None = Field(default=None, ge=1)
    at: Duration | None = None
    reason: str | list[str] | None = None
    state: str | None = None
    source: Source

    @model_validator(mode="after")
    def _complete(self) -> CalibrationTargetSpec:
        if (self.n is None) == (self.se is None):
            raise PydanticCustomError("target", "give the target's precision as n (patients) or se, exactly one")
        needs = {"drug_survival": ("treatment", "at"), "stop_reason_share": ("treatment", "reason"),
                 "state_occupancy": ("state", "at")}[self.metric]
        missing = [key for key in needs if getattr(self, key) is None]
        if missing:
            raise PydanticCustomError("target", "metric '{metric}' needs {missing}",
                                      {"metric": self.metric, "missing": ", ".join(missing)})
        unused = {"drug_survival": ("reason", "state"), "stop_reason_share": ("at", "state"),
                  "state_occupancy": ("treatment", "line", "reason")}[self.metric]
        extra = [key for key in unused if getattr(self, key) is not None]
        if extra:
            raise PydanticCustomError("target", "metric '{metric}' does not use {extra}; remove it",
                                      {"metric": self.metric, "extra": ", ".join(extra)})
        return self


class OptimiseSpec(Strict):
    """A deterministic optimiser of the log-likelihood (scipy.optimize, bounded)."""

    algorithm: Literal["nelder-mead", "powell"] = "nelder-mead"
    max_evaluations: int = Field(default=200, ge=2)
    tolerance: float = Field(default=1e-3, gt=0)  # on each parameter, as a share of its range


class SirSpec(Strict):
    """Sampling-importance-resampling: `draws` parameter sets from the prior, `keep` resampled."""

    draws: int = Field(default=500, ge=2)
    keep: int = Field(default=200, ge=1)


class MethodSpec(Strict):
    """Exactly one of `optimise` or `sir`."""

    optimise: OptimiseSpec | None = None
    sir: SirSpec | None = None
    source: Source | None = None

    @model_validator(mode="after")
    def _one(self) -> MethodSpec:
        if (self.optimise is None) == (self.sir is None):
            raise PydanticCustomError("method", "choose one method: optimise: {...} or sir: {...}")
        return self

    @property
    def name(self) -> str:
        """`optimise` or `sir`."""
        return "optimise" if self.optimise is not None else "sir"


class CalibrationSettingsSpec(Strict):
    """The cohort each evaluation simulates (common random numbers: the same seed every time)."""

    patients: int = Field(default=2000, ge=1, le=1_000_000)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    engine: Literal["auto", "compiled", "des"] = "compiled"


class CalibrationSpec(Strict):
    """A whole calibration file."""

    name: str | None = None
    description: str | None = None
    scenario: str
    settings: CalibrationSettingsSpec = CalibrationSettingsSpec()
    parameters: dict[str, FreeParameterSpec] = Field(min_length=1)
    targets: dict[str, CalibrationTargetSpec] = Field(min_length=1)
    method: MethodSpec
    source: Source | None = None


@dataclass(frozen=True)
class FreeParameter:
    """A located free parameter: where it sits, its bounds, prior and start (its unit)."""

    name: str
    parameter: Parameter
    low: float
    high: float
    prior: Prior
    start: float
    was: float
    was_source: str


@dataclass(frozen=True)
class Calibration:
    """A checked calibration: its file, spec, the base scenario and the free parameters."""

    file: Path
    name: str
    spec: CalibrationSpec
    base: LoadedScenario
    document: dict  # the base scenario restricted to the strategies the targets need
    parameters: tuple[FreeParameter, ...]
    seed: int

    def document_with(self, values) -> dict:
        """The simulated document with the free parameters at `values` (their units)."""
        return apply_overrides(self.document, self.overrides(values))

    def overrides(self, values) -> list:
        """(path, value) pairs writing `values` into a scenario document."""
        return [(p.parameter.path, document_value(p.parameter, float(v))) for p, v in zip(self.parameters, values)]


def resolve_calibration_path(name_or_path: str | Path) -> Path:
    """Return the calibration file given as a path or as a bundled calibration's name."""
    return resolve_bundled_file(name_or_path, "calibration", "calibration", "bundled")


def load_calibration(name_or_path: str | Path) -> Calibration:
    """Read and check a calibration file against its scenario; raise `ScenarioError`
    (file, key path, fix) for anything wrong. Nothing runs and nothing is written."""
    file = resolve_calibration_path(name_or_path)
    document = read_yaml(file)
    if not isinstance(document, dict):
        raise ScenarioError([Problem(str(file), "", "a calibration file is a mapping with scenario:, parameters:, "
                                     "targets: and method:")])
    try:
        spec = CalibrationSpec.model_validate(document)
    except ValidationError as exc:
        raise ScenarioError(validation_problems(exc, document, {}, file)) from None
    base = _load_base(spec, file)
    where = str(file)
    problems: list[Problem] = []
    strategies = _check_targets(spec, base.scenario, where, problems) or list(base.scenario.strategies)
    simulated = dict(base.document)
    simulated["strategies"] = {name: base.document["strategies"][name] for name in strategies}
    parameters = _free_parameters(spec, base, simulated, where, problems)
    if problems:
        raise ScenarioError(problems)
    _guard_resources(spec, simulated, where)
    seed = spec.settings.seed if spec.settings.seed is not None else base.scenario.settings.seed
    return Calibration(file, spec.name or file.stem, spec, base, simulated, tuple(parameters), seed)


def evaluations_planned(spec: CalibrationSpec) -> int:
    """The most simulations a calibration runs: its SIR draws or the optimiser's limit, plus one."""
    method = spec.method
    return (method.sir.draws if method.sir is not None else method.optimise.max_evaluations) + 1


def _guard_resources(spec: CalibrationSpec, document: dict, file: str) -> None:
    """Refuse an evaluation this machine cannot hold; note on stderr a calibration expected
    to take more than a minute (`sim.guard` estimates, one process)."""
    strategies = len(document["strategies"])
    one = estimate_run(spec.settings.patients, strategies, 1)
    reason = too_large(one, fix="lower settings.patients of the calibration file")
    if reason is not None:
        raise ScenarioError([Problem(file, "settings.patients", reason)])
    seconds = one.seconds * evaluations_planned(spec)
    if seconds > 60:
        print(f"note: {evaluations_planned(spec)} evaluations of {one.trajectories:,} trajectories, about "
              f"{seconds / 60:,.1f} minutes expected", file=sys.stderr)


def _load_base(spec: CalibrationSpec, file: Path) -> LoadedScenario:
    return load_named_scenario(spec.scenario, file, "scenario")


def _check_targets(spec: CalibrationSpec, scenario: Scenario, file: str, problems: list[Problem]) -> list[str]:
    """Check every target against the scenario; return the strategies the targets need."""
    needed: list[str] = []
    horizon = scenario.settings.horizon
    for name, target in spec.targets.items():
        where = f"targets.{name}"
        if target.strategy is not None and target.strategy not in scenario.strategies:
            problems.append(Problem(file, f"{where}.strategy", f"unknown strategy '{target.strategy}'"
                                    f"{suggest(target.strategy, scenario.strategies)}; the scenario has "
                                    f"{', '.join(scenario.strategies)}"))
            continue
        chosen = [target.strategy] if target.strategy else list(scenario.strategies)
        if target.treatment is not None:
            if target.treatment not in scenario.treatments:
                problems.append(Problem(file, f"{where}.treatment", f"unknown treatment '{target.treatment}'"
                                        f"{suggest(target.treatment, scenario.treatments)}"))
                continue
            chosen = [s for s in chosen if target.treatment in scenario.strategies[s].lines]
            if not chosen:
                problems.append(Problem(file, where, f"no strategy{' ' + target.strategy if target.strategy else ''} "
                                        f"uses {target.treatment}; name a strategy whose lines include it"))
                continue
            if target.line is not None and not any(_can_be_at_line(scenario.strategies[s], target.treatment,
                                                                   target.line) for s in chosen):
                problems.append(Problem(file, f"{where}.line", f"{target.treatment} is never line {target.line} of "
                                        f"{target.strategy or 'any strategy'}; give the line at which the strategy "
                                        "uses it, or leave line out (each patient's first episode of the drug)"))
                continue
        if target.reason is not None:
            _check_reason(target.reason, f"{where}.reason", file, problems)
        if target.state is not None and not _known_state(target.state):
            problems.append(Problem(file, f"{where}.state", f"unknown state '{target.state}'"
                                    f"{suggest(target.state, ('systemic', *OTHER_STATES))}; use systemic, "
                                    f"systemic_line_<k> or one of {', '.join(OTHER_STATES)}"))
        if target.at is not None and target.at > horizon:
            problems.append(Problem(file, f"{where}.at", f"{target.at:g} months lies beyond the scenario's horizon "
                                    f"({horizon:g} months)"))
        needed += [s for s in chosen if s not in needed]
    return [s for s in scenario.strategies if s in needed]


def _can_be_at_line(strategy, treatment: str, line: int) -> bool:
    # A drawn first line can put any of its treatments first, which moves the others along.
    if strategy.first_line:
        return treatment in strategy.lines and line <= len(strategy.lines)
    return len(strategy.lines) >= line and strategy.lines[line - 1] == treatment


def _check_reason(reason: Any, where: str, file: str, problems: list[Problem]) -> None:
    allowed = (*DISCONTINUATION_REASONS, *EVENT_DEFINITIONS)
    for item in [reason] if isinstance(reason, str) else reason:
        if item not in allowed:
            problems.append(Problem(file, where, f"unknown reason '{item}'{suggest(item, allowed)}; one of "
                                    f"{', '.join(allowed)}"))


def _known_state(state: str) -> bool:
    if state in ("systemic", *OTHER_STATES):
        return True
    head, _, line = state.rpartition("_")
    return head == "systemic_line" and line.isdigit() and int(line) >= 1


def _free_parameters(spec: CalibrationSpec, base: LoadedScenario, document: dict, file: str,
                     problems: list[Problem]) -> list[FreeParameter]:
    found = []
    for text, entry in spec.parameters.items():
        where = f"parameters.{text}"
        try:
            parameter = locate(text, document)
        except PathError as exc:
            problems.append(Problem(file, where, str(exc)))
            continue
        current = numeric_value(parameter, get_path(document, parameter.path))
        if parameter.kind not in _CALIBRATED_KINDS or current is None:
            problems.append(Problem(file, where, f"the scenario holds no number here ({parameter.kind}: "
                                    f"{get_path(document, parameter.path)!r}); name the number itself, e.g. "
                                    f"{text}.mean for an exponential's mean"))
            continue
        if parameter.path[:1] in (("settings",), ("targets",)):
            problems.append(Problem(file, where, "settings and targets are not model parameters; name a treatment, "
                                    "population or pathway number"))
            continue
        prior = prior_from(entry.prior.dist, entry.prior.values(), entry.low, entry.high)
        if not prior.mass() > 1e-12:
            problems.append(Problem(file, f"{where}.prior", f"the prior puts no probability on [{entry.low:g}, "
                                    f"{entry.high:g}]; widen the bounds or move the prior"))
            continue
        refused = _refusal(document, parameter, (entry.low, entry.high))
        if refused is not None:
            problems.append(Problem(file, where, f"the scenario refuses a value in the bounds: {refused}; narrow them"))
            continue
        start = entry.start if entry.start is not None else prior.median()
        found.append(FreeParameter(text, parameter, entry.low, entry.high, prior, start, current,
                                   _source(base.document, parameter.path)))
    _no_overlap(found, file, problems)
    return found


def _refusal(document: dict, parameter: Parameter, values) -> str | None:
    for value in values:
        try:
            Scenario.model_validate(apply_overrides(document, [(parameter.path, document_value(parameter, value))]))
        except ValidationError as exc:
            error = exc.errors()[0]
            return f"{value:g}: {error['msg'].removeprefix('Value error, ')}"
    return None


def _no_overlap(found: list[FreeParameter], file: str, problems: list[Problem]) -> None:
    for i, a in enumerate(found):
        for b in found[:i]:
            shorter = min(len(a.parameter.path), len(b.parameter.path))
            if a.parameter.path[:shorter] == b.parameter.path[:shorter]:
                problems.append(Problem(file, f"parameters.{a.name}", f"overlaps parameters.{b.name}; free each "
                                        "number once"))


def _source(document: dict, path: tuple) -> str:
    """The parameter's own source, or that of the nearest enclosing block."""
    for length in range(len(path), -1, -1):
        node = get_path(document, path[:length])
        if isinstance(node, dict) and node.get("source"):
            return " ".join(str(node["source"]).split())
    return ""
