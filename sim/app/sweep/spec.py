"""The sweep file's schema: what a user may write in a sweep YAML, checked by pydantic.

A sweep names a `base` scenario and says what to change in it:

- `vary`: a full factorial grid over dotted key paths, each with a list of values;
- `one_way`: a `low` and a `high` value per parameter (deterministic sensitivity
  analysis, drawn as a tornado);
- `psa`: `samples` draws of every uncertain parameter (probabilistic sensitivity
  analysis): counts drawn from Beta/Dirichlet/Gamma automatically, others from the
  distributions declared under `parameters`, optionally correlated;
- `economics`: an economic setting (`uk_nhs`, `us_payer` or a path) to cost every task,
  which adds mean costs and QALYs per strategy to the summaries (and, for a PSA, the
  cost-effectiveness plane, acceptability curves and EVPI to the report); a PSA may
  draw its numbers too, under key paths starting with `economics.`;
- `report`: which metrics the report's grid, tornado and PSA figures show, and the
  willingness to pay and reference strategy of NMB and increments;
- `replicates` and `seed`.

Every block may carry a `source:` (a publication, or `assumption: <rationale>`).
Errors name the sweep file and the key path (`vary.settings.patients[1]`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from sim.loader import Problem, ScenarioError, bundled_dir, format_key_path, read_with_extends
from sim.schema import Source, Strict
from sim.units import DurationError, parse_duration


def _number_or_duration(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except DurationError as exc:
            raise PydanticCustomError("duration", str(exc)) from None
    return value


Amount = Annotated[float, BeforeValidator(_number_or_duration)]
"""A number, or a duration (`6 months`) read in months."""


class VarySpec(Strict):
    """The values one key path takes in the grid (a bare list is accepted too)."""

    values: list[Any] = Field(min_length=1)
    source: Source | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_list(cls, data: Any) -> Any:
        if isinstance(data, list):
            return {"values": data}
        if not isinstance(data, dict):
            raise PydanticCustomError("vary", "expected a list of values, e.g. [6 months, 12 months]")
        return data


class OneWaySpec(Strict):
    """The low and high values of one parameter in a one-way sensitivity analysis."""

    low: Any
    high: Any
    source: Source | None = None

    @model_validator(mode="after")
    def _ordered(self) -> OneWaySpec:
        low, high = _as_amount(self.low), _as_amount(self.high)
        if low is None or high is None:
            raise PydanticCustomError(
                "one_way", "low and high must be numbers or durations (got {low!r} and {high!r})",
                {"low": self.low, "high": self.high})
        if low > high:
            raise PydanticCustomError(
                "one_way", "low ({low}) exceeds high ({high}); swap them",
                {"low": self.low, "high": self.high})
        return self


def _as_amount(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except DurationError:
            return None
    return None


DRAW_FORMS: dict[str, tuple[tuple[str, ...], ...]] = {
    "beta": (("alpha", "beta"), ("mean", "sd"), ("events", "n")),
    "gamma": (("shape", "scale"), ("mean", "sd")),
    "lognormal": (("meanlog", "sdlog"), ("median", "sdlog"), ("mean", "sd")),
    "normal": (("mean", "sd"),),
    "uniform": (("low", "high"),),
    "dirichlet": (("alpha",), ("counts",)),
}
"""For each PSA distribution, the parameter sets it accepts (durations in months)."""

DRAW_FORMS_KEYS = ("alpha", "beta", "mean", "sd", "shape", "scale", "meanlog", "median", "sdlog",
                   "low", "high", "events", "n", "counts")


class DrawSpec(Strict):
    """The distribution a PSA draws one parameter from.

    - `beta`: `alpha`, `beta`; or `mean`, `sd`; or counts `events`, `n` (Beta(events+½, n−events+½))
    - `gamma`: `shape`, `scale`; or `mean`, `sd`
    - `lognormal`: `meanlog`, `sdlog`; or `median`, `sdlog`; or `mean`, `sd`
    - `normal`: `mean`, `sd`
    - `uniform`: `low`, `high`
    - `dirichlet` (shares that sum to 1): `alpha` or `counts`, each a mapping of the parts
    Durations (`22.7 months`) are read in months.
    """

    dist: Literal["beta", "gamma", "lognormal", "normal", "uniform", "dirichlet"]
    alpha: float | dict[str, Annotated[float, Field(gt=0)]] | None = None
    beta: float | None = Field(default=None, gt=0)
    mean: Amount | None = None
    sd: Amount | None = Field(default=None, gt=0)
    shape: float | None = Field(default=None, gt=0)
    scale: Amount | None = Field(default=None, gt=0)
    meanlog: float | None = None
    median: Amount | None = Field(default=None, gt=0)
    sdlog: float | None = Field(default=None, gt=0)
    low: Amount | None = None
    high: Amount | None = None
    events: int | None = Field(default=None, ge=0)
    n: int | None = Field(default=None, ge=1)
    counts: dict[str, Annotated[int, Field(ge=0)]] | None = None
    source: Source | None = None

    @model_validator(mode="after")
    def _parameters_match(self) -> DrawSpec:
        given = {name for name in DRAW_FORMS_KEYS if getattr(self, name) is not None}
        forms = DRAW_FORMS[self.dist]
        if given not in [set(form) for form in forms]:
            wanted = " or ".join(", ".join(form) for form in forms)
            raise PydanticCustomError(
                "draw", "a '{dist}' draw takes {wanted}; got {given}",
                {"dist": self.dist, "wanted": wanted, "given": ", ".join(sorted(given)) or "nothing"})
        self._check_values()
        return self

    def _check_values(self) -> None:
        def fail(message: str) -> None:
            raise PydanticCustomError("draw", message)

        if isinstance(self.alpha, dict) != (self.dist == "dirichlet") and self.alpha is not None:
            fail("alpha is a number for a beta draw and a mapping of parts for a dirichlet")
        if self.dist == "beta" and self.alpha is not None and self.alpha <= 0:
            fail("beta: alpha must be > 0")
        if self.dist == "beta" and self.mean is not None:
            if not 0 < self.mean < 1:
                fail("beta: the mean must lie strictly between 0 and 1")
            if self.sd**2 >= self.mean * (1 - self.mean):
                fail("beta: sd is too large for that mean (sd² must be below mean·(1−mean))")
        if self.dist == "beta" and self.events is not None and self.events > self.n:
            fail("beta: events exceed n")
        if self.dist in ("gamma", "lognormal") and self.mean is not None and self.mean <= 0:
            fail(f"{self.dist}: the mean must be > 0")
        if self.dist == "uniform" and self.low > self.high:
            fail("uniform: low exceeds high; swap them")
        shares = self.alpha if isinstance(self.alpha, dict) else self.counts
        if self.dist == "dirichlet" and len(shares) < 2:
            fail("dirichlet: give at least two parts")


class CorrelationSpec(Strict):
    """A correlation between two PSA parameters (of their normal scores: a Gaussian copula)."""

    parameters: tuple[str, str]
    rho: float = Field(gt=-1, lt=1)
    source: Source | None = None


class PsaSpec(Strict):
    """The probabilistic sensitivity analysis: how many samples and what is uncertain.

    `counts: true` draws every probability written as counts from
    Beta(events + ½, n − events + ½), every set of shares written as counts (fates at the
    end of a course, covariate levels, first-line choice) from Dirichlet(events + ½), and
    every rate written as counts from Gamma(events + ½, 1/person_years). `exclude` lists
    key paths (and everything under them) kept at their point estimates. `calibrated`
    names the output directory of a Bayesian calibration (`adpath calibrate`, method
    `sir`; relative to the sweep file or the working directory): each sample takes one
    of its accepted parameter sets whole (see `sim.app.calibrated_sets`).
    """

    samples: int = Field(ge=1)
    calibrated: str | None = None
    counts: bool = True
    exclude: list[str] = []
    parameters: dict[str, DrawSpec] = {}
    correlations: list[CorrelationSpec] = []
    source: Source | None = None


class ReportSpec(Strict):
    """What the sweep report shows: `metrics` (summary metric names, or with an economic
    setting `cost`, `qalys`, `nmb`, `incremental_cost`, `incremental_qalys`,
    `incremental_nmb`, `icer`), the `willingness_to_pay` of NMB (money per QALY; default
    the setting's first) and the `reference` strategy of increments (default the first).
    It does not change the results, so it is not part of the sweep's hash."""

    metrics: list[str] | None = Field(default=None, min_length=1)
    willingness_to_pay: float | None = Field(default=None, ge=0)
    reference: str | None = None


class SweepSpec(Strict):
    """A whole sweep file."""

    name: str | None = None
    description: str | None = None
    base: str
    vary: dict[str, VarySpec] = {}
    one_way: dict[str, OneWaySpec] = {}
    psa: PsaSpec | None = None
    economics: str | None = None
    report: ReportSpec | None = None
    replicates: int = Field(default=1, ge=1)
    seed: int | None = Field(default=None, ge=0)
    source: Source | None = None

    @field_validator("base")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("base", "name a scenario: a bundled name or a path")
        return value


def read_sweep_file(path: Path) -> SweepSpec:
    """Read and check a sweep file's structure; raise `ScenarioError` naming file and key path.

    `extends: modern_psa` (a bundled sweep, or a file beside this one) inherits the whole
    sweep; this file's keys then override it (mappings merge key by key) and `null`
    removes one (`vary: {settings.patients: null}`, `psa: null`). A relative `base:` or
    `economics:` path is read from the file that wrote it; the name is this file's own.
    """
    document, origins, removed = read_with_extends(path, bundled_dir() / "sweeps", "sweep")
    document = _inherited_paths(document, origins, path)
    try:
        spec = SweepSpec.model_validate(document)
    except ValidationError as exc:
        raise ScenarioError(_problems(exc, str(path), origins, removed)) from None
    if not (spec.vary or spec.one_way or spec.psa):
        raise ScenarioError([Problem(str(path), "", "the sweep changes nothing: add vary:, one_way: or psa:")])
    return spec


def _inherited_paths(document: dict, origins: dict, path: Path) -> dict:
    """`base:` and `economics:` paths as the file that wrote them meant them; no inherited name."""
    document = dict(document)
    for key in ("base", "economics"):
        declared = origins.get((key,))
        value = document.get(key)
        if declared not in (None, str(path)) and isinstance(value, str):
            beside = Path(declared).parent / value
            if beside.is_file():
                document[key] = str(beside.resolve())
    if origins.get(("name",)) not in (None, str(path)):
        document.pop("name", None)
    return document


def _problems(exc: ValidationError, file: str, origins: dict | None = None,
              removed: dict | None = None) -> list[Problem]:
    problems = []
    for error in exc.errors():
        loc = [element for element in error["loc"] if not _is_union_tag(element)]
        if error["type"] == "unknown_key":
            loc.append(error["ctx"]["key"])
        message = error["msg"].removeprefix("Value error, ")
        plain_input = "input" in error and not isinstance(error["input"], dict)
        if error["type"] not in ("unknown_key", "missing") and plain_input:
            message += f" (got {error['input']!r})"
        where = _declared_in(tuple(loc), origins or {}, file)
        if error["type"] == "missing":
            message = "this key is required; add it"
            if removed and tuple(loc) in removed:
                where = removed[tuple(loc)]
                message = ("this key is required, but null here removes the inherited value; give a value "
                           "instead (or drop the line to keep the parent's)")
        problems.append(Problem(where, format_key_path(tuple(loc)), message))
    return list(dict.fromkeys(problems))


def _declared_in(key_path: tuple, origins: dict, default: str) -> str:
    for length in range(len(key_path), 0, -1):
        if key_path[:length] in origins:
            return origins[key_path[:length]]
    return default


def _is_union_tag(element) -> bool:
    return isinstance(element, str) and (
        element.startswith(("function-", "list[", "dict[", "tuple[")) or element in ("float", "int", "str"))
