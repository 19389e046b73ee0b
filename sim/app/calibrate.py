"""`adpath calibrate`: fit free scenario parameters to published targets.

Each evaluation writes the free parameters into the scenario, simulates the targets'
strategies with the calibration's cohort and seed (common random numbers: every
evaluation runs the same virtual patients, so the log-likelihood changes with the
parameters, not with Monte Carlo noise) and scores the simulated proportions against the
targets (`analysis.calibration.log_likelihood`).

- `optimise`: Nelder-Mead or Powell (scipy.optimize) on the parameters scaled to [0, 1]
  between their bounds, from `start` (default: the prior's median); the best evaluation
  seen is the result.
- `sir`: `draws` parameter sets from the truncated priors (their own random stream),
  weighted by their likelihood and resampled `keep` times; the calibrated scenario takes
  the accepted sets' medians, and `parameter_sets.csv` the accepted sets themselves, which a
  sweep's `psa: {calibrated: DIR}` draws from.

The output directory is written as `adpath run` writes a run (staged, then moved into
place): `scenario.yaml` (the calibrated scenario; each calibrated value's `source:` says
what it was calibrated to and how), `targets.csv`, `parameters.csv`, `evaluations.csv`,
`parameter_sets.csv` (sir), `targets.png` and the manifest `calibration.json`.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy import optimize
from tqdm import tqdm

from analysis.calibration import (
    Estimate,
    binomial_se,
    effective_sample_size,
    log_likelihood,
    observed_interval,
    resample,
    drug_survival_curve,
    simulated_state_occupancy,
    simulated_stop_reason_share,
    summary_of_draws,
    survival_estimate,
)
from sim import RESULTS_VERSION
from sim.loader import Problem, ScenarioError
from sim.model import compile_model
from sim.runner import RunTables, simulate
from sim.schema import Scenario
from sim.app.calibration_file import Calibration, CalibrationTargetSpec, FreeParameter, load_calibration
from sim.app.sweep.parameters import set_path

MANIFEST = "calibration.json"
PARAMETER_SETS = "parameter_sets.csv"
CALIBRATION_STREAM = 0x43414C  # "CAL": prior draws apart from the patients' random streams
LOW_EFFECTIVE_SAMPLE_SIZE = 20  # below it the accepted sets rest on too few distinct draws to describe a posterior
_FAILED = 1e12  # the objective of an evaluation whose targets cannot be estimated


@dataclass(frozen=True)
class Evaluation:
    """One simulation of the calibration: parameter values, estimates and log-likelihood."""

    values: tuple[float, ...]
    estimates: tuple[Estimate, ...]
    per_target: tuple[float, ...]

    @property
    def log_likelihood(self) -> float:
        """The sum of the targets' log-likelihoods (-inf if one cannot be estimated)."""
        return float(np.sum(self.per_target))


class Evaluator:
    """Simulates the calibration at given parameter values (in their units) and scores it."""

    def __init__(self, calibration: Calibration):
        self.calibration = calibration
        spec = calibration.spec
        self.targets = list(spec.targets.values())
        self.observed = np.array([t.value for t in self.targets])
        self.n = np.array([np.nan if t.n is None else t.n for t in self.targets])
        self.se = np.array([np.nan if t.se is None else t.se for t in self.targets])
        self.settings = [(("settings", "patients"), spec.settings.patients), (("settings", "seed"), calibration.seed),
                         (("settings", "replicates"), 1), (("settings", "engine"), spec.settings.engine)]
        self.evaluations: list[Evaluation] = []

    def tables(self, values) -> RunTables:
        """The run tables of the calibration's cohort with the free parameters at `values`."""
        document = self.calibration.document_with(values)
        for path, value in self.settings:
            document = set_path(document, path, value)
        model = compile_model(Scenario.model_validate(document), self.calibration.base.name)
        return simulate(model, progress=False)

    def __call__(self, values) -> Evaluation:
        tables = self.tables(values)
        curves: dict = {}  # one drug-survival curve per choice of episodes, read at every target time
        estimates = tuple(target_estimate(target, tables, curves) for target in self.targets)
        model = np.array([e.value for e in estimates])
        per_target = log_likelihood(self.observed, model, self.n, self.se)
        evaluation = Evaluation(tuple(float(v) for v in values), estimates, tuple(float(x) for x in per_target))
        self.evaluations.append(evaluation)
        return evaluation

    def many(self, rows, workers: int = 1, progress: bool = False) -> list[Evaluation]:
        """Evaluate every row of parameter values, on `workers` processes; the results (and
        `evaluations`) are in row order and do not depend on `workers`."""
        rows = [tuple(float(v) for v in row) for row in rows]
        bar = dict(total=len(rows), unit="evaluation", desc=self.calibration.name, disable=not progress, delay=1.0,
                   leave=False)
        if workers <= 1 or len(rows) < 2:
            return [self(row) for row in tqdm(rows, **bar)]
        with ProcessPoolExecutor(max_workers=min(workers, len(rows)), initializer=_start_worker,
                                 initargs=(self.calibration,)) as pool:
            results = list(tqdm(pool.map(_evaluate_in_worker, rows, chunksize=max(1, len(rows) // (8 * workers))),
                                **bar))
        self.evaluations.extend(results)
        return results


_WORKER: dict = {}


def _start_worker(calibration: Calibration) -> None:
    _WORKER["evaluate"] = Evaluator(calibration)


def _evaluate_in_worker(row) -> Evaluation:
    evaluate = _WORKER["evaluate"]
    evaluation = evaluate(row)
    evaluate.evaluations.clear()  # the parent keeps the record
    return evaluation


def target_estimate(target: CalibrationTargetSpec, tables: RunTables, curves: dict | None = None) -> Estimate:
    """The simulated proportion of one target in a run's tables (`curves` caches the
    drug-survival curves of these tables by treatment, strategy and line)."""
    if target.metric == "drug_survival":
        key = (target.treatment, target.strategy, target.line)
        curves = {} if curves is None else curves
        if key not in curves:
            curves[key] = drug_survival_curve(tables.episodes, *key)
        return survival_estimate(curves[key], target.at)
    if target.metric == "stop_reason_share":
        return simulated_stop_reason_share(tables.episodes, target.treatment, target.reason, target.strategy,
                                           target.line)
    return simulated_state_occupancy(tables.episodes, tables.patients, target.state, target.at, target.strategy)


# ----------------------------------------------------------------- methods


@dataclass(frozen=True)
class Result:
    """What a calibration found: the calibrated values (their units) and how."""

    values: tuple[float, ...]
    best: Evaluation
    accepted: np.ndarray | None  # sir: the accepted sets (rows) in the parameters' units
    accepted_draws: np.ndarray | None  # sir: which prior draw each accepted set is
    effective_sample_size: float | None
    message: str


def run_optimiser(calibration: Calibration, evaluate: Evaluator, progress: bool = False, workers: int = 1) -> Result:
    """Maximise the log-likelihood with scipy.optimize over the bounded parameters (one
    evaluation after another: `workers` is not used)."""
    spec = calibration.spec.method.optimise
    low = np.array([p.low for p in calibration.parameters])
    width = np.array([p.high - p.low for p in calibration.parameters])
    start = (np.array([p.start for p in calibration.parameters]) - low) / width
    bar = tqdm(total=spec.max_evaluations, unit="evaluation", desc=calibration.name, disable=not progress,
               delay=1.0, leave=False)

    def objective(u):
        bar.update(1)
        value = -evaluate(low + np.clip(u, 0, 1) * width).log_likelihood
        return value if np.isfinite(value) else _FAILED

    bounds = [(0.0, 1.0)] * len(start)
    with bar:
        if spec.algorithm == "nelder-mead":
            outcome = optimize.minimize(objective, start, method="Nelder-Mead", bounds=bounds,
                                        options={"maxfev": spec.max_evaluations, "xatol": spec.tolerance,
                                                 "fatol": 1e-3, "initial_simplex": _simplex(start)})
        else:
            outcome = optimize.minimize(objective, start, method="Powell", bounds=bounds,
                                        options={"maxfev": spec.max_evaluations, "xtol": spec.tolerance})
    best = max(evaluate.evaluations, key=lambda e: e.log_likelihood)
    return Result(best.values, best, None, None, None, str(outcome.message))


def _simplex(start: np.ndarray, step: float = 0.1) -> np.ndarray:
    """A first simplex of `step` (a share of each range) along every axis, kept inside [0, 1]."""
    vertices = [start]
    for axis in range(len(start)):
        vertex = start.copy()
        vertex[axis] = start[axis] + step if start[axis] + step <= 1 else start[axis] - step
        vertices.append(vertex)
    return np.array(vertices)


def run_sir(calibration: Calibration, evaluate: Evaluator, progress: bool = False, workers: int = 1) -> Result:
    """Sampling-importance-resampling from the priors; the calibrated values are the medians."""
    spec = calibration.spec.method.sir
    rng = np.random.default_rng(np.random.SeedSequence([calibration.seed, CALIBRATION_STREAM]))
    u = rng.random((spec.draws, len(calibration.parameters)))
    draws = np.column_stack([p.prior.quantile(u[:, j]) for j, p in enumerate(calibration.parameters)])
    log_likelihoods = np.array([e.log_likelihood for e in evaluate.many(draws, workers, progress)])
    if not np.isfinite(log_likelihoods).any():
        raise ScenarioError([Problem(str(calibration.file), "targets", "no prior draw gives every target an estimate "
                                     "(a time past every simulated episode?); check the targets' at and the bounds")])
    chosen = resample(log_likelihoods, spec.keep, rng)
    accepted = draws[chosen]
    values = tuple(float(v) for v in np.median(accepted, axis=0))
    best = evaluate.evaluations[int(np.argmax(log_likelihoods))]
    ess = effective_sample_size(log_likelihoods)
    if ess < LOW_EFFECTIVE_SAMPLE_SIZE:
        print(f"note: the effective sample size is {ess:.1f} of {spec.draws} prior draws: the accepted sets repeat "
              "few draws; add draws or narrow the prior around the targets", file=sys.stderr)
    return Result(values, best, accepted, chosen, ess, f"{spec.draws} prior draws, effective sample size {ess:.1f}")


# ------------------------------------------------------------------ outputs


def calibrate(name_or_path: str | Path, out: Path | None = None, force: bool = False, progress: bool = True,
              workers: int = 1) -> Path:
    """Run a calibration file and write its output directory; return the directory.
    `workers` processes share the evaluations of `sir` (the results do not depend on it)."""
    from sim.app.outputs import check_out_directory, staged_directory

    calibration = load_calibration(name_or_path)
    out = Path(out) if out is not None else Path("results") / calibration.name
    check_out_directory(out, manifest=MANIFEST, force=force)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    clock = time.perf_counter()
    evaluate = Evaluator(calibration)
    method = run_optimiser if calibration.spec.method.name == "optimise" else run_sir
    result = method(calibration, evaluate, progress, workers)
    final = evaluate(result.values)  # the model at the calibrated values, for the table
    targets = targets_table(calibration, evaluate, final, result)
    parameters = parameters_table(calibration, result)
    with staged_directory(out, replace_run=True, manifest=MANIFEST) as staging:
        (staging / "scenario.yaml").write_text(calibrated_yaml(calibration, result), encoding="utf-8")
        targets.to_csv(staging / "targets.csv", index=False)
        parameters.to_csv(staging / "parameters.csv", index=False)
        evaluations_table(calibration, evaluate).to_csv(staging / "evaluations.csv", index=False)
        if result.accepted is not None:
            parameter_sets(calibration, result).to_csv(staging / PARAMETER_SETS, index=False)
        _figure(targets, calibration, staging / "targets.png")
        manifest = _manifest(calibration, result, evaluate, final, time.perf_counter() - clock, started)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
    return out


def summary_lines(directory: Path) -> list[str]:
    """What a finished calibration found, for the terminal: each parameter before and after,
    the log-likelihood, the evaluations and the wall time (from its calibration.json)."""
    manifest = json.loads((Path(directory) / MANIFEST).read_text(encoding="utf-8"))
    parameters = pd.read_csv(Path(directory) / "parameters.csv")
    lines = [f"{manifest['method_description']}"]
    for row in parameters.to_dict("records"):
        interval = ""
        if "posterior_q2.5" in row:
            interval = f" (95% interval {row['posterior_q2.5']:.4g} to {row['posterior_q97.5']:.4g})"
        lines.append(f"  {row['parameter']}: {row['before_calibration']:.4g} -> {row['calibrated']:.4g} "
                     f"{row['unit']}{interval}")
    lines.append(f"log-likelihood {manifest['log_likelihood']:.3f} (0 = every target met exactly); "
                 f"{manifest['evaluations']} evaluations in {manifest['wall_time_seconds']:.1f} s")
    return lines


def targets_table(calibration: Calibration, evaluate: Evaluator, final: Evaluation, result: Result) -> pd.DataFrame:
    """One row per target: what it is, the published proportion with its 95% interval, and the
    calibrated model's proportion with its interval (optimise: Monte Carlo 95% of the
    calibrated run; sir: 2.5-97.5% of the accepted sets' predictions)."""
    rows = []
    spread = _accepted_predictions(evaluate, result)
    for i, (name, target) in enumerate(calibration.spec.targets.items()):
        low, high = observed_interval(target.value, target.n, target.se)
        estimate = final.estimates[i]
        model_low, model_high = estimate.ci_low, estimate.ci_high
        if spread is not None:
            model_low, model_high = np.nanquantile(spread[:, i], [0.025, 0.975])
        rows.append({
            "target": name, "metric": target.metric, "treatment": target.treatment, "strategy": target.strategy,
            "line": target.line, "at_months": target.at,
            "reason": target.reason if isinstance(target.reason, str) or target.reason is None else "+".join(target.reason),
            "state": target.state,
            "observed_proportion": target.value, "observed_ci_low": low, "observed_ci_high": high,
            "n_patients": target.n,
            "se_proportion": target.se if target.se is not None else binomial_se(target.value, target.n),
            "model_proportion": estimate.value, "model_ci_low": float(model_low), "model_ci_high": float(model_high),
            "model_denominator": estimate.n, "log_likelihood": final.per_target[i], "source": target.source,
        })
    return pd.DataFrame(rows)


def _accepted_predictions(evaluate: Evaluator, result: Result) -> np.ndarray | None:
    if result.accepted_draws is None:
        return None
    # The prior draws were evaluated first, in order: accepted draw k is evaluation k.
    return np.array([[e.value for e in evaluate.evaluations[k].estimates] for k in result.accepted_draws])


def parameters_table(calibration: Calibration, result: Result) -> pd.DataFrame:
    """One row per free parameter: unit, bounds, prior, start, value before and after."""
    rows = []
    for j, p in enumerate(calibration.parameters):
        unit = "proportion" if p.parameter.kind == "probability" else p.parameter.unit
        row = {"parameter": p.name, "unit": unit, "low": p.low, "high": p.high, "prior": p.prior.describe(), "start": p.start,
               "before_calibration": p.was, "calibrated": result.values[j]}
        if result.accepted is not None:
            summary = summary_of_draws(result.accepted[:, j])
            row.update({"posterior_mean": summary["mean"], "posterior_q2.5": summary["q2.5"],
                        "posterior_q97.5": summary["q97.5"]})
        rows.append(row)
    return pd.DataFrame(rows)


def evaluations_table(calibration: Calibration, evaluate: Evaluator) -> pd.DataFrame:
    """Every evaluation in order: parameter values, each target's proportion, log-likelihood."""
    columns = [p.parameter.column for p in calibration.parameters]
    names = list(calibration.spec.targets)
    rows = []
    for k, e in enumerate(evaluate.evaluations):
        row = {"evaluation": k, **dict(zip(columns, e.values))}
        row.update({f"{name}_proportion": est.value for name, est in zip(names, e.estimates)})
        row["log_likelihood"] = e.log_likelihood
        rows.append(row)
    return pd.DataFrame(rows)


def parameter_sets(calibration: Calibration, result: Result) -> pd.DataFrame:
    """The accepted parameter sets (sir), one row each, columns named as in sweep tables."""
    table = pd.DataFrame(result.accepted, columns=[p.parameter.column for p in calibration.parameters])
    table.insert(0, "prior_draw", result.accepted_draws)
    table.insert(0, "set", np.arange(len(table)))
    return table


def describe_method(calibration: Calibration, result: Result) -> str:
    """The method in words, for sources and the manifest (no dates)."""
    spec, settings = calibration.spec.method, calibration.spec.settings
    cohort = f"{settings.patients} simulated patients per evaluation, seed {calibration.seed}"
    if spec.optimise is not None:
        return (f"maximum likelihood by {spec.optimise.algorithm} (scipy.optimize) under common random numbers, "
                f"{cohort}")
    return (f"sampling-importance-resampling: {spec.sir.draws} draws from the prior, {spec.sir.keep} resampled "
            f"(effective sample size {result.effective_sample_size:.0f}), posterior median, {cohort}")


def calibrated_source(calibration: Calibration, parameter: FreeParameter, j: int, result: Result) -> str:
    """The `source:` of a calibrated value: the targets and their sources, the method, what it was."""
    targets = calibration.spec.targets
    cited = list(dict.fromkeys(" ".join(t.source.split()) for t in targets.values()))
    interval = ""
    if result.accepted is not None:
        q = np.quantile(result.accepted[:, j], [0.025, 0.975])
        interval = f" (95% interval {q[0]:.4g} to {q[1]:.4g})"
    unit = f" {parameter.parameter.unit}" if parameter.parameter.unit else ""
    return (f"calibrated to {', '.join(targets)} ({'; '.join(cited)}), {describe_method(calibration, result)}: "
            f"{parameter.name} = {result.values[j]:.4g}{unit}{interval}, prior {parameter.prior.describe()}; "
            f"before calibration {parameter.was:.4g}{unit} ({parameter.was_source or 'no source'})")


def calibrated_document(calibration: Calibration, result: Result) -> dict:
    """The whole base scenario (every strategy) with the calibrated values and their sources."""
    document = dict(calibration.base.document)
    document["name"] = f"{calibration.base.name}_calibrated"
    document["description"] = (f"{document.get('description', calibration.base.name)} Calibrated by "
                               f"{calibration.file.name} ({calibration.spec.method.name}).")
    for j, (parameter, (path, value)) in enumerate(zip(calibration.parameters, calibration.overrides(result.values))):
        source = calibrated_source(calibration, parameter, j, result)
        if parameter.parameter.kind == "probability":
            value = {"p": float(result.values[j])}
        if isinstance(value, dict):
            document = set_path(document, path, {**value, "source": source})
        else:
            document = set_path(document, path, value)
            document = set_path(document, (*path[:-1], "source"), source)
    return document


def calibrated_yaml(calibration: Calibration, result: Result) -> str:
    """The calibrated scenario as YAML text, with a header saying where it came from."""
    header = (f"# Calibrated scenario written by `adpath calibrate {calibration.file.name}` from "
              f"{calibration.base.file.name}: every value a calibration changed says so in its source.\n")
    return header + yaml.safe_dump(calibrated_document(calibration, result), sort_keys=False, allow_unicode=True,
                                   width=100)


def _figure(targets: pd.DataFrame, calibration: Calibration, path: Path) -> None:
    from analysis.calibration_plots import plot_calibration_targets
    from analysis.plots import save_figure

    save_figure(plot_calibration_targets(targets, f"{calibration.name}: targets and calibrated model"), path)


def _manifest(calibration: Calibration, result: Result, evaluate: Evaluator, final: Evaluation, wall: float,
              started: str) -> dict:
    from sim.app.outputs import package_version, package_versions, scenario_hash

    spec_dump = calibration.spec.model_dump(mode="json", exclude_none=True)
    return {
        "adpath_version": package_version("adpath"),
        "results_version": RESULTS_VERSION,
        "calibration_name": calibration.name,
        "calibration_file": str(calibration.file),
        "calibration": spec_dump,
        "calibration_hash": hashlib.sha256(json.dumps(spec_dump, sort_keys=True).encode()).hexdigest(),
        "scenario_name": calibration.base.name,
        "scenario_file": str(calibration.base.file),
        "scenario_hash": scenario_hash(calibration.base.document),
        "strategies_simulated": list(calibration.document["strategies"]),
        "patients": calibration.spec.settings.patients,
        "seed": calibration.seed,
        "engine": calibration.spec.settings.engine,
        "method": calibration.spec.method.name,
        "method_description": describe_method(calibration, result),
        "evaluations": len(evaluate.evaluations),
        "optimiser_message": result.message,
        "effective_sample_size": result.effective_sample_size,
        "log_likelihood": final.log_likelihood,  # at the calibrated values
        "log_likelihood_best_evaluation": result.best.log_likelihood,
        "parameters": [
            {"name": p.name, "path": list(p.parameter.path), "column": p.parameter.column, "kind": p.parameter.kind,
             "unit": p.parameter.unit, "low": p.low, "high": p.high, "prior": p.prior.describe(), "start": p.start,
             "before_calibration": p.was, "calibrated": result.values[j]}
            for j, p in enumerate(calibration.parameters)
        ],
        "parameter_sets": PARAMETER_SETS if result.accepted is not None else None,
        "versions": package_versions(),
        "wall_time_seconds": round(wall, 3),
        "started_at": started,
    }


