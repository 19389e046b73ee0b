"""The sweep plan: a sweep file resolved into the tasks it runs, all checked up front.

A task is one simulation of the base scenario with some parameters changed, for one
replicate:

- `point`: a variant of the grid (one combination of the `vary` values; the base case
  when nothing is varied), with every other parameter at its point estimate;
- `one_way`: a variant with one `one_way` parameter at its `low` or `high` value;
- `psa`: a variant with every uncertain parameter drawn (sample `k`).

Seeds and common random numbers: replicate `r` of every task simulates with the
scenario seed `SeedSequence(seed, spawn_key=(r,))` (its first 32 bits, recorded per task
as `seed`), one replicate. So every variant, bound and sample of replicate `r` runs on
the same virtual patients with the same random numbers: differences between tasks are
the parameters' doing, not Monte Carlo noise, and a tornado's swing or a grid's slope is
not blurred by it. Replicates give independent patients. A point task is exactly
`adpath run BASE --seed <its seed> --replicates 1` (with the grid's values). PSA
parameter draws have a stream of their own (see `sim.app.sweep.psa`).

Every value, every grid combination and every PSA sample is validated against the
scenario schema before anything runs; problems name the sweep file and the key path.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from sim.economics import economics_document, economics_from_document, economics_path, load_economics
from sim.loader import (
    LoadedScenario,
    Problem,
    ScenarioError,
    load_named_scenario,
    load_scenario,
    resolve_bundled_file,
)
from sim.model import Model, compile_model
from sim.schema import Scenario, suggest
from sim.app.sweep.parameters import (
    ECONOMICS,
    Parameter,
    PathError,
    apply_overrides,
    document_value,
    get_path,
    locate,
    numeric_value,
    value_label,
)
from sim.app.sweep.psa import PsaDesign, build_design
from sim.app.sweep.spec import SweepSpec, read_sweep_file

PLAN_FORMAT = 1
_SET_BY_THE_SWEEP = {("settings", "seed"): "seed", ("settings", "replicates"): "replicates"}
_TEXT_KEYS = {"source", "description", "label", "name", "dose", "response_definition", "why"}
_MAX_SAMPLE_PROBLEMS = 5


@dataclass(frozen=True)
class SweepTask:
    """One simulation of a sweep: a variant, an analysis point and a replicate.

    `grid` holds the variant's (parameter, value) as written in the sweep file; `setting`
    the one-way value. `overrides` are (key path, value) pairs written into the base
    scenario document; `values` maps each parameter column to this task's value.
    """

    order: int
    id: str
    variant: int
    analysis: str
    parameter: str | None
    bound: str | None
    sample: int | None
    replicate: int
    seed: int
    grid: tuple = ()
    setting: str | None = None
    overrides: tuple = ()
    values: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """A short account of what this task changes, for messages."""
        if self.analysis == "one_way":
            what = f"{self.parameter} = {self.setting} ({self.bound})"
        elif self.analysis == "psa":
            what = f"PSA sample {self.sample}"
        else:
            what = "base case"
        grid = ", ".join(f"{k} = {v}" for k, v in self.grid)
        return f"{what}{'; ' + grid if grid else ''}; replicate {self.replicate}"


@dataclass(frozen=True)
class ParameterColumn:
    """A column of parameter values in the sweep tables: which parameter, its role, source."""

    name: str
    path: str
    unit: str
    role: str
    numeric: bool
    distribution: str
    source: str


@dataclass(frozen=True)
class SweepPlan:
    """A validated sweep: its base scenario, its tasks and its parameter columns."""

    name: str
    description: str
    file: Path
    spec: SweepSpec
    base: LoadedScenario
    document: dict
    seed: int
    replicates: int
    tasks: tuple[SweepTask, ...]
    columns: tuple[ParameterColumn, ...]
    design: PsaDesign | None
    hash: str
    economics: Any = None
    economics_document: dict | None = None
    _sample_economics: dict = field(default_factory=dict, repr=False, compare=False)  # overrides -> Economics

    def model(self, task: SweepTask) -> Model:
        """Return the compiled model a task simulates (one replicate, the task's seed)."""
        run = [(("settings", "seed"), task.seed), (("settings", "replicates"), 1)]
        scenario = Scenario.model_validate(apply_overrides(self.document, [*scenario_overrides(task), *run]))
        return compile_model(scenario, self.base.name)

    def economics_for(self, task: SweepTask):
        """Return the economic setting that costs a task: the sweep's, with the task's
        drawn `economics.*` values written in (a PSA of prices or utilities)."""
        own = economics_overrides(task)
        if not own:
            return self.economics
        # Every replicate of a sample, bound or grid cell shares its economic values.
        key = json.dumps(own, sort_keys=True, default=str)
        if key not in self._sample_economics:
            document = apply_overrides(self.economics_document, own)
            self._sample_economics[key] = economics_from_document(
                document, self.economics.name, f"{self.file} (economics of {task.id})")
        return self._sample_economics[key]

    def task_table(self) -> pd.DataFrame:
        """One row per task: its identifiers and the value of every parameter column."""
        rows = []
        for task in self.tasks:
            row = {"task": task.id, "order": task.order, "variant": task.variant, "analysis": task.analysis,
                   "parameter": task.parameter, "bound": task.bound, "sample": task.sample,
                   "replicate": task.replicate, "seed": task.seed}
            row.update({c.name: task.values.get(c.name) for c in self.columns})
            rows.append(row)
        table = pd.DataFrame(rows)
        table["sample"] = table["sample"].astype("Int64")
        for column in self.columns:
            table[column.name] = table[column.name].astype(float if column.numeric else object)
        return table


def scenario_overrides(task: SweepTask) -> list:
    """The (path, value) pairs a task writes into the scenario document."""
    return [(path, value) for path, value in task.overrides if path[:1] != (ECONOMICS,)]


def economics_overrides(task: SweepTask) -> list:
    """The (path, value) pairs a task writes into the economic setting's document (paths without `economics`)."""
    return [(path[1:], value) for path, value in task.overrides if path[:1] == (ECONOMICS,)]


# ------------------------------------------------------------------- loading


def resolve_sweep_path(name_or_path: str | Path) -> Path:
    """Return the sweep file given as a path or as the name of a bundled sweep."""
    return resolve_bundled_file(name_or_path, "sweeps", "sweep", "bundled sweeps")


def load_sweep(name_or_path: str | Path, workers: int = 1, warn=None, samples: int | None = None,
               seed: int | None = None) -> SweepPlan:
    """Read a sweep file, resolve its base scenario and expand and check all its tasks.

    Before any task is expanded, the resource guard (`sim.guard`) estimates the sweep's
    memory and time for `workers` processes: a sweep this machine cannot hold is refused,
    and `warn(text)` (if given) is told of one expected to take more than a minute.
    `samples` and `seed` (from `--samples`, `--seed`) replace the PSA's sample count and
    the sweep's seed. Raises `ScenarioError` (naming the sweep file and key path) when
    anything is wrong; nothing is written.
    """
    file = resolve_sweep_path(name_or_path)
    spec = _with_command_line(read_sweep_file(file), file, samples, seed)
    base = _load_base(spec, file)
    _guard_resources(spec, base, file, workers, warn)
    seed = spec.seed if spec.seed is not None else base.scenario.settings.seed
    document = base.document
    where = str(file)
    economics, economics_document = _economics(spec, file, base)
    # vary, one_way and the PSA may also set the economic setting's numbers (paths economics.*).
    drawable = document if economics_document is None else {**document, ECONOMICS: economics_document}
    grid = _grid_parameters(spec, drawable, where)
    one_way = _one_way_parameters(spec, drawable, where, grid)
    _check_values(spec, drawable, base, where, grid, one_way)
    design = None
    if spec.psa is not None:
        held = [p.path for p in (*grid.values(), *one_way.values())]
        design = build_design(spec.psa, drawable, held, seed, where)
    columns = _columns(spec, document, grid, one_way, design)
    tasks = _tasks(spec, drawable, grid, one_way, design, columns, replicate_seeds(seed, spec.replicates))
    _check_tasks(tasks, document, base, where)
    name = spec.name or file.stem
    plan = SweepPlan(name, spec.description or "", file, spec, base, document, seed, spec.replicates,
                     tuple(tasks), tuple(columns), design,
                     _hash(spec, document, seed, _without_text(economics_document) if economics else None,
                           design.calibrated.hash if design is not None and design.calibrated is not None else None),
                     economics, economics_document)
    _check_economics(plan)
    _check_report(spec, plan)
    return plan


_REPORTED = ("returned_to_topical_ever", "on_topical_at_horizon", "in_supportive_care_at_horizon",
             "on_systemic_at_horizon", "lost_to_followup", "died", "responded_ever", "lines_used_mean",
             "episodes_mean", "relapses_mean", "months_systemic_mean", "months_topical_mean",
             "months_supportive_care_mean", "median_months_to_first_response", "first_line_drug_survival_12m",
             "first_line_drug_survival_24m", "first_line_drug_survival_36m",
             "first_line_median_drug_survival_months")
_ECONOMIC_REPORTED = ("cost", "qalys", "nmb", "incremental_cost", "incremental_qalys", "incremental_nmb", "icer")


def _check_report(spec: SweepSpec, plan: SweepPlan) -> None:
    """The `report:` block names metrics the summaries hold and a strategy of the scenario."""
    if spec.report is None:
        return
    problems, file = [], str(plan.file)
    known = (*_REPORTED, *(_ECONOMIC_REPORTED if plan.economics is not None else ()))
    for i, metric in enumerate(spec.report.metrics or []):
        if metric in _ECONOMIC_REPORTED and plan.economics is None:
            problems.append(Problem(file, f"report.metrics[{i}]", f"'{metric}' needs an economic setting; add "
                                    "economics: (uk_nhs, us_payer or a file) to the sweep file"))
        elif metric not in known:
            problems.append(Problem(file, f"report.metrics[{i}]", f"unknown metric '{metric}'"
                                    f"{suggest(metric, known)}; known: {', '.join(known)}"))
    strategies = list(plan.base.scenario.strategies)
    if spec.report.reference is not None and spec.report.reference not in strategies:
        problems.append(Problem(file, "report.reference", f"no strategy '{spec.report.reference}'"
                                f"{suggest(spec.report.reference, strategies)}; strategies: {', '.join(strategies)}"))
    if spec.report.willingness_to_pay is not None and plan.economics is None:
        problems.append(Problem(file, "report.willingness_to_pay", "needs an economic setting; add economics: "
                                "to the sweep file"))
    if problems:
        raise ScenarioError(problems)


def _with_command_line(spec: SweepSpec, file: Path, samples: int | None, seed: int | None) -> SweepSpec:
    """The sweep with `--samples` (the PSA's sample count) and `--seed` written in."""
    if samples is not None:
        if spec.psa is None:
            raise ScenarioError([Problem(str(file), "psa", "--samples sets the PSA's sample count, but this sweep "
                                         "has no psa: block; drop --samples or add psa:")])
        spec = spec.model_copy(update={"psa": spec.psa.model_copy(update={"samples": samples})})
    if seed is not None:
        spec = spec.model_copy(update={"seed": seed})
    return spec


def sweep_size(spec: SweepSpec) -> dict[str, int]:
    """The factors of a sweep's number of tasks: grid variants, tasks per variant
    (the point, two per one-way parameter, the PSA samples) and replicates."""
    variants = 1
    for entry in spec.vary.values():
        variants *= len(entry.values)
    samples = spec.psa.samples if spec.psa is not None else 0
    return {"vary": variants, "psa.samples": 1 + 2 * len(spec.one_way) + samples, "replicates": spec.replicates}


def _largest_patients(spec: SweepSpec, base: LoadedScenario) -> int:
    """The most patients any task simulates: the largest value the grid gives them (the
    base's when it does not vary them), or a one-way high value above that."""
    patients = base.scenario.settings.patients
    if "settings.patients" in spec.vary:
        patients = max((_whole(v) for v in spec.vary["settings.patients"].values), default=patients)
    if "settings.patients" in spec.one_way:
        patients = max(patients, _whole(spec.one_way["settings.patients"].high))
    return patients


def _whole(value) -> int:
    # A value the schema will refuse later counts as one patient here.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return 1
    return max(int(value), 1)


def _guard_resources(spec: SweepSpec, base: LoadedScenario, file: Path, workers: int, warn) -> None:
    from sim.guard import estimate_sweep, too_large

    factors = sweep_size(spec)
    tasks = factors["vary"] * factors["psa.samples"] * factors["replicates"]
    patients = _largest_patients(spec, base)
    estimate = estimate_sweep(tasks, patients, len(base.scenario.strategies), workers)
    largest = max(factors, key=factors.get)
    key = largest if factors[largest] > 1 else "settings.patients"
    if key == "psa.samples" and spec.psa is None:
        key = "one_way"
    fix = (f"lower psa.samples ({factors['psa.samples'] - 1 - 2 * len(spec.one_way):,}), the grid's "
           f"combinations ({factors['vary']:,} from vary), replicates ({factors['replicates']:,}) or the "
           f"patients per task ({patients:,}, e.g. vary settings.patients: [2000])")
    reason = too_large(estimate, fix=fix)
    if reason is not None:
        raise ScenarioError([Problem(str(file), key, reason)])
    if warn is not None and estimate.seconds > 60:
        warn(f"note: {estimate.describe()} expected")


def _check_economics(plan: SweepPlan) -> None:
    """Every PSA sample's economic setting must be valid (e.g. a drawn utility at most 1)."""
    problems = []
    for task in plan.tasks:
        if task.replicate or not economics_overrides(task):
            continue
        try:
            plan.economics_for(task)
        except ScenarioError as exc:
            refused = f"economics.{exc.problems[0].path}: {exc.problems[0].message}"
            if task.analysis == "psa":
                problems.append(Problem(str(plan.file), "psa", f"sample {task.sample} draws values the economic "
                                        f"setting refuses: {refused}; narrow the distribution in psa.parameters"))
            else:
                problems.append(Problem(str(plan.file), task.analysis if task.analysis == "one_way" else "vary",
                                        f"{task.describe()} is refused by the economic setting: {refused}"))
            if len(problems) >= _MAX_SAMPLE_PROBLEMS:
                break
    if problems:
        raise ScenarioError(problems)


def _economics(spec: SweepSpec, file: Path, base: LoadedScenario):
    """The sweep's economic setting (compiled) and its whole document, or (None, None)."""
    if spec.economics is None:
        return None, None
    beside = file.parent / spec.economics
    name = str(beside) if beside.is_file() else spec.economics
    try:
        path = economics_path(name)
        treatments = {n: list(t.adverse_events) for n, t in base.scenario.treatments.items()}
        return load_economics(str(path), treatments), economics_document(str(path))[0]
    except ScenarioError as exc:
        raise ScenarioError([Problem(str(file), "economics", f"{p.file}: {p.path}: {p.message}" if p.path
                                     else p.message) for p in exc.problems]) from None


def _load_base(spec: SweepSpec, file: Path) -> LoadedScenario:
    return load_named_scenario(spec.base, file, "base")


def _grid_parameters(spec: SweepSpec, document: dict, file: str) -> dict[str, Parameter]:
    return _located(spec.vary, "vary", document, file, {})


def _one_way_parameters(spec: SweepSpec, document: dict, file: str, grid: dict) -> dict[str, Parameter]:
    return _located(spec.one_way, "one_way", document, file, grid)


def _located(entries: Mapping, section: str, document: dict, file: str, taken: dict) -> dict[str, Parameter]:
    found, problems = {}, []
    for text in entries:
        where = f"{section}.{text}"
        try:
            parameter = locate(text, document)
        except PathError as exc:
            problems.append(Problem(file, where, str(exc)))
            continue
        if parameter.path in _SET_BY_THE_SWEEP:
            key = _SET_BY_THE_SWEEP[parameter.path]
            problems.append(Problem(file, where, f"set the sweep's own {key}: instead (top level of the sweep file)"))
        elif any(_overlap(parameter.path, other.path) for other in (*taken.values(), *found.values())):
            problems.append(Problem(file, where, "this parameter (or one inside it) is already set by vary or "
                                    "one_way; set each parameter in one place"))
        else:
            found[text] = parameter
    if problems:
        raise ScenarioError(problems)
    return found


def _overlap(a: tuple, b: tuple) -> bool:
    return a[: len(b)] == b or b[: len(a)] == a


# ------------------------------------------------------------------ checking


def _check_values(spec: SweepSpec, document: dict, base: LoadedScenario, file: str,
                  grid: dict, one_way: dict) -> None:
    problems = []
    for text, parameter in grid.items():
        for i, value in enumerate(spec.vary[text].values):
            problems += _value_problems(parameter, value, f"vary.{text}[{i}]", document, base, file)
    for text, parameter in one_way.items():
        for bound in ("low", "high"):
            value = getattr(spec.one_way[text], bound)
            problems += _value_problems(parameter, value, f"one_way.{text}.{bound}", document, base, file)
    if problems:
        raise ScenarioError(problems)


def _value_problems(parameter: Parameter, value: Any, where: str, document: dict,
                    base: LoadedScenario, file: str) -> list[Problem]:
    try:
        overrides = [(parameter.path, document_value(parameter, value))]
    except PathError as exc:
        return [Problem(file, where, str(exc))]
    if parameter.path[:1] == (ECONOMICS,):
        message = _economics_refusal(document[ECONOMICS], [(parameter.path[1:], overrides[0][1])])
    else:
        scenario = {key: value for key, value in document.items() if key != ECONOMICS}
        message = _refusal(scenario, overrides, base, file)
    return [] if message is None else [Problem(file, where, message)]


def _economics_refusal(document: dict, overrides: list) -> str | None:
    """Return why the economic setting refuses `document` with `overrides` (paths without
    `economics`), or None if it is valid."""
    try:
        economics_from_document(apply_overrides(document, overrides), "check", "economics")
        return None
    except ScenarioError as exc:
        return "; ".join(f"economics.{p.path}: {p.message}" if p.path else p.message for p in exc.problems)


def _refusal(document: dict, overrides: list, base: LoadedScenario, file: str) -> str | None:
    """Return why the scenario schema refuses `document` with `overrides`, or None if it is valid."""
    try:
        Scenario.model_validate(apply_overrides(document, overrides))
        return None
    except ValidationError as exc:
        fallback = _first_error(exc)
    # The loader words schema errors best (key path, hint, the value given); it takes
    # dotted paths without list positions.
    dotted = {_dotted(path): value for path, value in overrides if all(isinstance(k, str) for k in path)}
    try:
        load_scenario(base.file, dotted, overrides_from=file)
    except ScenarioError as exc:
        return "; ".join(_within(problem.path, dotted) + problem.message for problem in exc.problems)
    return fallback


def _within(path: str, dotted: dict) -> str:
    """The part of a problem's key path below the override it is in, as a prefix."""
    for key in dotted:
        if path == key:
            return ""
        if path.startswith(key + "."):
            return path[len(key) + 1:] + ": "
    return f"{path}: " if path else ""


def _dotted(path: tuple) -> str:
    return ".".join(path)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    loc = ".".join(str(part) for part in error["loc"] if not str(part).startswith("function-"))
    return f"{loc}: {error['msg'].removeprefix('Value error, ')}"


def _check_tasks(tasks: list[SweepTask], document: dict, base: LoadedScenario, file: str) -> None:
    problems, seen, refused_samples = [], set(), 0
    for task in tasks:
        if task.replicate or (task.variant, task.analysis, task.parameter, task.bound, task.sample) in seen:
            continue
        seen.add((task.variant, task.analysis, task.parameter, task.bound, task.sample))
        if not task.overrides or (task.analysis == "one_way" and len(task.overrides) == 1):
            continue  # the base scenario, or one value already checked alone
        message = _refusal(document, scenario_overrides(task), base, file)
        if message is None:
            continue
        if task.analysis == "psa":
            refused_samples += 1
            if refused_samples > _MAX_SAMPLE_PROBLEMS:
                continue
            problems.append(Problem(file, "psa", f"sample {task.sample} draws values the scenario refuses: "
                                    f"{message}; narrow the distribution in psa.parameters"))
        else:
            grid = ", ".join(f"{k} = {v}" for k, v in task.grid)
            problems.append(Problem(file, "vary", f"the combination {grid} is refused: {message}"))
    if refused_samples > _MAX_SAMPLE_PROBLEMS:
        problems.append(Problem(file, "psa", f"... {refused_samples - _MAX_SAMPLE_PROBLEMS} more samples refused"))
    if problems:
        raise ScenarioError(problems)


# --------------------------------------------------------------------- tasks


def _columns(spec: SweepSpec, document: dict, grid: dict, one_way: dict,
             design: PsaDesign | None) -> list[ParameterColumn]:
    columns = []
    for text, parameter in grid.items():
        values = spec.vary[text].values
        numeric = all(numeric_value(parameter, v) is not None for v in values)
        name = parameter.column if numeric else parameter.text
        columns.append(ParameterColumn(name, text, parameter.unit if numeric else "", "vary", numeric,
                                       ", ".join(value_label(v) for v in values), spec.vary[text].source or ""))
    for text, parameter in one_way.items():
        entry = spec.one_way[text]
        columns.append(ParameterColumn(parameter.column, text, parameter.unit, "one_way", True,
                                       f"{value_label(entry.low)} to {value_label(entry.high)}", entry.source or ""))
    if design is not None:
        for draw in design.draws:
            for parameter in draw.parameters:
                same = f" (the same draw as {draw.parameter.text})" if parameter is not draw.parameter else ""
                columns.append(ParameterColumn(parameter.column, parameter.text, parameter.unit, "psa", True,
                                               draw.describe() + same, draw.source))
        for shares in design.shares:
            for name in shares.columns():
                columns.append(ParameterColumn(name, name, "", "psa", True, shares.describe(), shares.source))
        for parameter in design.calibrated.parameters if design.calibrated is not None else ():
            columns.append(ParameterColumn(parameter.column, parameter.text, parameter.unit, "psa", True,
                                           "calibrated", design.calibrated.description))
    return columns


def replicate_seeds(seed: int, replicates: int) -> list[int]:
    """Return the scenario seed of each replicate: `SeedSequence(seed, spawn_key=(r,))`, 32 bits."""
    return [int(np.random.SeedSequence(seed, spawn_key=(r,)).generate_state(1, np.uint32)[0])
            for r in range(replicates)]


def _tasks(spec: SweepSpec, document: dict, grid: dict, one_way: dict, design: PsaDesign | None,
           columns: list[ParameterColumn], seeds: list[int]) -> list[SweepTask]:
    grid_columns = [c.name for c in columns if c.role == "vary"]
    points = _point_values(document, one_way, design)
    combinations = list(itertools.product(*(spec.vary[text].values for text in grid))) or [()]
    widths = _widths(len(combinations), spec)
    tasks: list[SweepTask] = []

    def add(variant, label, **fields):
        for replicate in range(spec.replicates):
            task_id = f"v{variant:0{widths[0]}d}-{label}-r{replicate:0{widths[2]}d}"
            fields.setdefault("parameter", None)
            fields.setdefault("bound", None)
            fields.setdefault("sample", None)
            tasks.append(SweepTask(order=len(tasks), id=task_id, variant=variant, replicate=replicate,
                                   seed=seeds[replicate], **fields))

    for variant, combination in enumerate(combinations):
        base_overrides, base_values, labels = [], dict(points), []
        for (text, parameter), value, column in zip(grid.items(), combination, grid_columns):
            base_overrides.append((parameter.path, document_value(parameter, value)))
            numeric = numeric_value(parameter, value)
            base_values[column] = numeric if column == parameter.column and numeric is not None else value_label(value)
            labels.append((text, value_label(value)))
        common = {"grid": tuple(labels)}
        add(variant, "point", analysis="point", overrides=tuple(base_overrides), values=base_values, **common)
        for j, (text, parameter) in enumerate(one_way.items()):
            for bound in ("low", "high"):
                value = getattr(spec.one_way[text], bound)
                add(variant, f"ow{j:02d}-{bound}", analysis="one_way", parameter=text, bound=bound,
                    setting=value_label(value),
                    overrides=(*base_overrides, (parameter.path, document_value(parameter, value))),
                    values={**base_values, parameter.column: numeric_value(parameter, value)}, **common)
        for sample in range(design.samples if design is not None else 0):
            add(variant, f"psa{sample:0{widths[1]}d}", analysis="psa", sample=sample,
                overrides=(*base_overrides, *design.overrides(sample)),
                values={**base_values, **design.values(sample)}, **common)
    return tasks


def _widths(variants: int, spec: SweepSpec) -> tuple[int, int, int]:
    samples = spec.psa.samples if spec.psa is not None else 1
    return (len(str(max(variants - 1, 0))), len(str(max(samples - 1, 0))), len(str(max(spec.replicates - 1, 0))))


def _point_values(document: dict, one_way: dict, design: PsaDesign | None) -> dict[str, float | None]:
    """The base scenario's value of every one-way and PSA parameter (NaN where not a number)."""
    values = {}
    for parameter in one_way.values():
        values[parameter.column] = numeric_value(parameter, get_path(document, parameter.path))
    if design is not None:
        for parameter in (p for draw in design.draws for p in draw.parameters):
            values[parameter.column] = numeric_value(parameter, get_path(document, parameter.path))
        for shares in design.shares:
            node = get_path(document, shares.parameter.path) or {}
            values.update(zip(shares.columns(), _point_shares(node, shares.parts)))
        for parameter in design.calibrated.parameters if design.calibrated is not None else ():
            values[parameter.column] = numeric_value(parameter, get_path(document, parameter.path))
    return values


def _point_shares(node: dict, parts: tuple[str, ...]) -> list[float]:
    # As the compiled model reads them: counts normalised by their total events,
    # probabilities by their sum.
    entries = [node.get(part) or {} for part in parts]
    if all(isinstance(e, dict) and "events" in e for e in entries):
        weights = [e["events"] for e in entries]
    else:
        weights = [e.get("p", 0.0) if isinstance(e, dict) else float(e) for e in entries]
    total = sum(weights)
    return [w / total if total else 1 / len(parts) for w in weights]


# ---------------------------------------------------------------------- hash


def _hash(spec: SweepSpec, document: dict, seed: int, economics: dict | None = None,
          calibrated: str | None = None) -> str:
    """Return the SHA-256 of what decides the sweep's results (not its texts or sources)."""
    from sim import RESULTS_VERSION

    content = {
        "format": PLAN_FORMAT,
        "results_version": RESULTS_VERSION,
        "base": _without_text(document),
        "sweep": _without_text(spec.model_dump(mode="json", by_alias=True, exclude_none=True,
                                               exclude={"report"})),
        "seed": seed,
    }
    if economics is not None:
        content["economics"] = economics
    if calibrated is not None:
        content["calibrated_sets"] = calibrated
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def resolved_sweep(plan: SweepPlan) -> dict:
    """Return what the hash covers, readable: the base scenario and the sweep (texts removed)."""
    return {
        "base": _without_text(plan.document),
        "sweep": _without_text(plan.spec.model_dump(mode="json", by_alias=True, exclude_none=True)),
        "seed": plan.seed,
    }


def _without_text(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_text(v) for k, v in node.items() if k not in _TEXT_KEYS}
    if isinstance(node, list):
        return [_without_text(v) for v in node]
    return node
