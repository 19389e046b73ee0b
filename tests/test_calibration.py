"""`adpath calibrate`: parameter recovery, the Bayesian sets a PSA draws from, outputs, bad input.

The recovery scenario has one drug: responders at the 3-month review with probability p
stay on for an exponential course of mean m months from the start, so drug survival is
S(t) = p·exp(−t/m) for t ≥ 3 months. Targets are read off a simulation with known p and m
(N_t patients, one seed); the calibration simulates N_c other patients (another seed).
Both are Monte Carlo samples, so the recovered values carry their noise:

- p̂ is a share of responders: var ≈ p(1−p)·(1/N_t + 1/N_c);
- m̂ follows from q = S(24)/S(3) = exp(−21/m) among the pN responders:
  var(q̂) ≈ q(1−q)/p·(1/N_t + 1/N_c) and dm/dq = 21/(q·ln²q) (delta method; the other
  target times only add information, so this SE is conservative).

Recovered values must lie within 4 such SE of the truth, from two different starts.
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats
from click.testing import CliRunner

from analysis.calibration import (
    effective_sample_size,
    log_likelihood,
    prior_from,
    resample,
    simulated_drug_survival,
)
from sim.app.calibrate import Evaluator, calibrate, run_optimiser
from sim.app.calibration_file import load_calibration
from sim.app.cli import main
from sim.loader import load_scenario
from sim.model import compile_model
from sim.runner import simulate

TRUE_P, TRUE_MEAN = 0.6, 24.0
N_TARGET, N_CALIBRATION = 4000, 2000
TIMES = (6, 12, 24)

SCENARIO = """
name: recovery
description: One drug, a 3-month review and an exponential course, for parameter recovery.
settings: {patients: 100, horizon: 4 years, seed: 5}
treatments:
  drug_a:
    label: Drug A
    assess_at: {dist: fixed, value: 3 months, source: "assumption: a review at 3 months for the recovery test"}
    response: {p: 0.6, source: "assumption: the known response probability of the recovery test"}
    course: {dist: exponential, mean: 24 months, source: "assumption: the known course mean of the recovery test"}
strategies:
  only_a:
    lines: [drug_a]
"""


def _targets_from_simulation(scenario: Path) -> dict:
    loaded = load_scenario(scenario, {"settings.patients": N_TARGET, "settings.seed": 999})
    tables = simulate(compile_model(loaded.scenario, loaded.name), progress=False, engine="compiled")
    return {f"s{t}": {"metric": "drug_survival", "treatment": "drug_a", "line": 1, "at": f"{t} months",
                      "value": round(simulated_drug_survival(tables.episodes, "drug_a", t, line=1).value, 6),
                      "n": N_TARGET, "source": "assumption: read off a simulation with the known values"}
            for t in TIMES}


@pytest.fixture(scope="module")
def recovery_files(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("recovery")
    scenario = folder / "recovery.yaml"
    scenario.write_text(textwrap.dedent(SCENARIO), encoding="utf-8")
    targets = _targets_from_simulation(scenario)

    def write(name: str, method: dict, parameters: dict) -> Path:
        document = {"name": name, "scenario": "recovery.yaml", "settings": {"patients": N_CALIBRATION, "seed": 7},
                    "parameters": parameters, "targets": targets, "method": method}
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        return path

    return {"folder": folder, "write": write, "targets": targets}


def _standard_errors() -> tuple[float, float]:
    both = 1 / N_TARGET + 1 / N_CALIBRATION
    se_p = math.sqrt(TRUE_P * (1 - TRUE_P) * both)
    q = math.exp(-21 / TRUE_MEAN)
    se_q = math.sqrt(q * (1 - q) / TRUE_P * both)
    return se_p, 21 / (q * math.log(q) ** 2) * se_q


@pytest.mark.parametrize("start", [(0.3, 10.0), (0.85, 70.0)], ids=["low_start", "high_start"])
def test_the_optimiser_recovers_known_parameters_from_different_starts(recovery_files, start):
    path = recovery_files["write"](f"optimise_{start[0]}", {"optimise": {"algorithm": "nelder-mead",
                                                                          "max_evaluations": 80}},
                                   {"treatments.drug_a.response.p": {"low": 0.1, "high": 0.95, "start": start[0]},
                                    "treatments.drug_a.course.mean": {"low": "3 months", "high": "120 months",
                                                                      "start": start[1]}})
    calibration = load_calibration(path)
    result = run_optimiser(calibration, Evaluator(calibration))
    se_p, se_mean = _standard_errors()
    p, mean = result.values
    assert abs(p - TRUE_P) < 4 * se_p, (p, se_p)
    assert abs(mean - TRUE_MEAN) < 4 * se_mean, (mean, se_mean)


@pytest.fixture(scope="module")
def sir_directory(recovery_files) -> Path:
    path = recovery_files["write"]("sir", {"sir": {"draws": 60, "keep": 40}},
                                   {"treatments.drug_a.course.mean": {
                                       "low": "6 months", "high": "60 months",
                                       "prior": {"dist": "lognormal", "median": "20 months", "sdlog": 0.6}}})
    out = recovery_files["folder"] / "sir_out"
    calibrate(path, out, progress=False)
    return out


def test_sir_accepts_sets_around_the_known_value_and_writes_its_outputs(sir_directory):
    sets = pd.read_csv(sir_directory / "parameter_sets.csv")
    column = "treatments.drug_a.course.mean_months"
    assert len(sets) == 40 and column in sets.columns
    _, se_mean = _standard_errors()
    assert abs(np.median(sets[column]) - TRUE_MEAN) < 4 * se_mean
    manifest = json.loads((sir_directory / "calibration.json").read_text())
    assert manifest["method"] == "sir" and manifest["evaluations"] == 61 and manifest["effective_sample_size"] > 1
    targets = pd.read_csv(sir_directory / "targets.csv")
    assert list(targets["target"]) == ["s6", "s12", "s24"]
    assert (targets["model_ci_low"] <= targets["model_proportion"] + 1e-9).all()
    assert (targets["observed_ci_low"] < targets["observed_proportion"]).all()
    assert (sir_directory / "targets.png").stat().st_size > 1000
    calibrated = load_scenario(sir_directory / "scenario.yaml")
    course = calibrated.document["treatments"]["drug_a"]["course"]
    assert course["source"].startswith("calibrated to s6, s12, s24")
    assert "sampling-importance-resampling" in course["source"]
    assert course["mean"] == pytest.approx(float(np.median(sets[column])))


def test_a_sweep_draws_whole_calibrated_sets(sir_directory, recovery_files):
    from sim.app.sweep import SerialExecutor, load_sweep, run_sweep

    folder = recovery_files["folder"]
    sweep = folder / "psa.yaml"
    sweep.write_text(yaml.safe_dump({"base": "recovery.yaml", "psa": {"samples": 6, "counts": False,
                                                                       "calibrated": "sir_out"}}), encoding="utf-8")
    plan = load_sweep(sweep)
    column = "treatments.drug_a.course.mean_months"
    accepted = set(pd.read_csv(sir_directory / "parameter_sets.csv")[column].round(9))
    samples = [task for task in plan.tasks if task.analysis == "psa"]
    drawn = [task.values[column] for task in samples]
    assert len(drawn) == 6
    assert all(round(value, 9) in accepted for value in drawn)
    assert len(set(drawn)) > 1, "samples draw different sets"
    assert load_sweep(sweep).tasks[3].values == plan.tasks[3].values, "the same sample draws the same set"
    for path, value in samples[0].overrides:
        assert path == ("treatments", "drug_a", "course", "mean") and value == drawn[0]
    run_sweep(plan, folder / "psa_out", SerialExecutor(), progress=False)
    tasks = pd.read_csv(folder / "psa_out" / "sweep_tasks.csv")
    written = tasks.loc[tasks["analysis"] == "psa", column].to_numpy()
    assert np.allclose(written, drawn, rtol=1e-6), "sweep_tasks.csv records each sample's calibrated set"


def test_a_sweep_refuses_an_optimiser_calibration(recovery_files, tmp_path):
    optimised = tmp_path / "optimised"
    optimised.mkdir()
    (optimised / "calibration.json").write_text(json.dumps({"method": "optimise", "parameter_sets": None}))
    sweep = recovery_files["folder"] / "psa_bad.yaml"
    sweep.write_text(yaml.safe_dump({"base": "recovery.yaml", "psa": {"samples": 2, "calibrated": str(optimised)}}))
    result = CliRunner().invoke(main, ["sweep", str(sweep), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 2
    assert "psa.calibrated" in result.output and "method: {sir: ...}" in result.output
    assert not (tmp_path / "out").exists()


BAD = [
    ("parameters.treatments.drug_a.cuorse.mean", {"parameters": {"treatments.drug_a.cuorse.mean": {"low": 1, "high": 2}}},
     "did you mean 'course'"),
    ("parameters.treatments.drug_a.course.mean", {"parameters": {"treatments.drug_a.course.mean":
                                                                 {"low": 10, "high": 20, "start": 30}}},
     "outside [low, high]"),
    ("parameters.treatments.drug_a.course", {"parameters": {"treatments.drug_a.course": {"low": 10, "high": 20}}},
     "holds no number here"),
    ("targets.s6.treatment", {"targets": {"s6": {"metric": "drug_survival", "treatment": "drug_b", "at": 6,
                                                 "value": 0.5, "n": 10, "source": "x et al."}}}, "unknown treatment"),
    ("targets.s6", {"targets": {"s6": {"metric": "drug_survival", "treatment": "drug_a", "at": 6, "value": 0.5,
                                       "n": 10, "se": 0.1, "source": "x et al."}}}, "exactly one"),
    ("method", {"method": {}}, "choose one method"),
    ("parameters.treatments.drug_a.response.p", {"parameters": {"treatments.drug_a.response.p":
                                                                {"low": 0.5, "high": 1.5}}}, "refuses"),
]


@pytest.mark.parametrize("key, change, words", BAD, ids=[b[0] for b in BAD])
def test_a_bad_calibration_file_gets_one_clear_message_and_writes_nothing(recovery_files, tmp_path, key, change, words):
    document = {"scenario": "recovery.yaml", "settings": {"patients": 50},
                "parameters": {"treatments.drug_a.course.mean": {"low": 6, "high": 60}},
                "targets": dict(list(recovery_files["targets"].items())[:1]), "method": {"sir": {"draws": 4, "keep": 2}}}
    document.update(change)
    path = recovery_files["folder"] / f"bad_{len(key)}_{abs(hash(key)) % 1000}.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["calibrate", str(path), "--out", str(out), "--quiet"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and str(path) in lines[0] and key in lines[0] and words in lines[0], result.output
    assert "Traceback" not in result.output and not out.exists()


def test_the_binomial_log_likelihood_is_zero_at_the_observation_and_matches_its_closed_form():
    y, n, p = 0.3, 50, 0.4
    expected = n * (y * math.log(p / y) + (1 - y) * math.log((1 - p) / (1 - y)))
    assert log_likelihood([y], [p], [n]) == pytest.approx([expected])
    assert log_likelihood([y], [y], [n]) == pytest.approx([0.0])
    assert log_likelihood([y], [0.5], None, [0.1]) == pytest.approx([-0.5 * 4.0])
    assert log_likelihood([y], [float("nan")], [n])[0] == -math.inf


def test_truncated_priors_stay_in_their_bounds_and_resampling_follows_the_weights():
    prior = prior_from("lognormal", {"median": 20.0, "sdlog": 1.0}, 10.0, 30.0)
    values = prior.quantile(np.linspace(0, 1, 101))
    assert values.min() == pytest.approx(10.0) and values.max() == pytest.approx(30.0)
    dist = stats.lognorm(s=1.0, scale=20.0)
    assert prior.median() == pytest.approx(dist.ppf((dist.cdf(10.0) + dist.cdf(30.0)) / 2))
    log_weights = np.log([0.1, 0.2, 0.7])
    assert effective_sample_size(log_weights) == pytest.approx(1 / (0.01 + 0.04 + 0.49))
    counts = np.bincount(resample(log_weights, 20000, np.random.default_rng(1)), minlength=3) / 20000
    assert np.all(np.abs(counts - [0.1, 0.2, 0.7]) < 4 * np.sqrt(np.array([0.09, 0.16, 0.21]) / 20000))


def test_the_bundled_calibration_loads():
    calibration = load_calibration("dupilumab_bioday")
    assert [p.name for p in calibration.parameters] == ["treatments.dupilumab.course.mean"]
    assert list(calibration.document["strategies"]) == ["biologic_first"]


def test_worker_processes_do_not_change_the_evaluations(recovery_files):
    path = recovery_files["write"]("workers", {"sir": {"draws": 3, "keep": 3}},
                                   {"treatments.drug_a.course.mean": {"low": 6, "high": 60}})
    calibration = load_calibration(path)
    rows = [(10.0,), (20.0,), (40.0,)]
    alone, shared = Evaluator(calibration), Evaluator(calibration)
    assert alone.many(rows) == shared.many(rows, workers=2)
    assert shared.evaluations == alone.evaluations


def test_the_bundled_optimiser_calibration_loads_with_its_start():
    calibration = load_calibration("dupilumab_bioday_optimise")
    assert calibration.parameters[0].start == pytest.approx(289.4)
    assert calibration.spec.method.name == "optimise"


def test_stop_reason_and_state_targets_match_their_closed_forms(recovery_files):
    # Non-responders stop at 3 months; responders remit at the end of an exponential course
    # (no relapse), or are censored at the 48-month horizon.
    folder = recovery_files["folder"]
    document = {"scenario": "recovery.yaml", "settings": {"patients": N_TARGET, "seed": 11},
                "parameters": {"treatments.drug_a.course.mean": {"low": 6, "high": 60}},
                "targets": {"nonresponse_share": {"metric": "stop_reason_share", "treatment": "drug_a",
                                                  "reason": "nonresponse", "value": 0.5, "se": 0.1, "source": "x et al."},
                            "topical_12": {"metric": "state_occupancy", "state": "topical", "at": "12 months",
                                           "value": 0.5, "se": 0.1, "source": "x et al."},
                            "systemic_12": {"metric": "state_occupancy", "state": "systemic", "at": "12 months",
                                            "value": 0.5, "se": 0.1, "source": "x et al."}},
                "method": {"sir": {"draws": 2, "keep": 1}}}
    path = folder / "states.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    estimates = Evaluator(load_calibration(path))([TRUE_MEAN]).estimates
    remitted_by_horizon = TRUE_P * (1 - math.exp(-48 / TRUE_MEAN))
    expected = [(1 - TRUE_P) / ((1 - TRUE_P) + remitted_by_horizon),
                TRUE_P * (1 - math.exp(-12 / TRUE_MEAN)), TRUE_P * math.exp(-12 / TRUE_MEAN)]
    for estimate, value in zip(estimates, expected):
        se = math.sqrt(value * (1 - value) / estimate.n)
        assert abs(estimate.value - value) < 4 * se, (estimate, value)


def test_a_target_line_that_the_strategy_never_gives_the_drug_is_refused(tmp_path):
    path = tmp_path / "line.yaml"
    path.write_text(yaml.safe_dump({
        "scenario": "modern_adult", "parameters": {"treatments.dupilumab.course.mean": {"low": 60, "high": 600}},
        "targets": {"t": {"metric": "drug_survival", "treatment": "dupilumab", "strategy": "conventional_first",
                          "line": 1, "at": 12, "value": 0.9, "n": 100, "source": "x et al."}},
        "method": {"optimise": {}}}), encoding="utf-8")
    result = CliRunner().invoke(main, ["calibrate", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "targets.t.line" in result.output and "never line 1" in result.output
