"""The runaway guard of the DES and compiled engines: a pathway that loops (short courses that
remit and relapse at once) or flare rates far too high end in one message, exit code 2,
and nothing written (`sim.guard.MAX_EPISODES`, `MAX_BURSTS`).
"""

from __future__ import annotations

import pickle

import pandas as pd
import pytest
from click.testing import CliRunner

from sim.app.cli import main
from sim.guard import MAX_BURSTS, MAX_EPISODES
from sim.loader import Problem, ScenarioError

# 0.002 months per episode and relapse: about 60,000 episodes in 10 years. Not a zero-time
# loop (validation refuses those), so only the engines can stop it.
LOOPING = """
name: loops
settings: {patients: 3, horizon: 10 years, seed: 1}
treatments:
  drug_a:
    label: Drug A
    assess_at: {dist: fixed, value: 0.0005 months}
    response: {p: 1}
    course: {dist: fixed, value: 0.001 months}
    end_of_course: {remission: 1, switch: 0, continue: 0}
relapse: {probability: 1, time: {dist: fixed, value: 0.001 months}}
strategies:
  only_a: {lines: [drug_a], on_relapse: retreat}
"""

FLARING = """
name: flares
settings: {patients: 3, horizon: 10 years, seed: 1}
treatments:
  drug_a:
    label: Drug A
    assess_at: {dist: fixed, value: 3 months}
    response: {p: 0.5}
    course: {dist: exponential, mean: 12 months}
rescue:
  duration: {dist: fixed, value: 1 week}
  onset: {dist: fixed, value: 2 days}
  response: {p: 0.9}
  rebound: {p: 0.3}
  flare_rate: {topical: RATE, uncontrolled: RATE, controlled: RATE, supportive_care: RATE}
strategies:
  only_a: {lines: [drug_a]}
"""


def refused_run(path, out, engine):
    result = CliRunner().invoke(main, ["run", str(path), "--engine", engine, "--out", str(out), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not out.exists()
    return result.output


@pytest.mark.parametrize("engine", ["des", "compiled"])
def test_a_pathway_that_loops_is_stopped_with_one_message(write_scenario, tmp_path, engine):
    limit = MAX_EPISODES
    output = refused_run(write_scenario(LOOPING), tmp_path / "out", engine)
    assert f"loops: strategies.only_a: patient 0 had more than {limit} treatment episodes" in output
    assert "check the durations" in output


@pytest.mark.parametrize("engine", ["des", "compiled"])
@pytest.mark.parametrize("rate", ["{per_year: 1000000}", "{per_year: 4000}"])  # far past, and just past, the guard
def test_flare_rates_far_too_high_are_stopped_with_one_message(write_scenario, tmp_path, engine, rate):
    output = refused_run(write_scenario(FLARING.replace("RATE", rate)), tmp_path / "out", engine)
    assert f"flares: strategies.only_a: patient 0 had more than {MAX_BURSTS} corticosteroid bursts" in output


def test_high_flare_rates_below_the_guard_run_alike_in_both_engines(write_scenario, tmp_path):
    path = write_scenario(FLARING.replace("RATE", "{per_year: 500}"))
    bursts = {}
    for engine in ("des", "compiled"):
        out = tmp_path / engine
        result = CliRunner().invoke(main, ["run", str(path), "--engine", engine, "--out", str(out), "--quiet"])
        assert result.exit_code == 0, result.output
        bursts[engine] = len(pd.read_parquet(out / "bursts.parquet"))
    assert bursts["des"] == bursts["compiled"] > 3 * 500 * 5  # 3 patients, about 10 years at 500 a year


def test_a_scenario_error_survives_copying_and_pickling():
    error = ScenarioError([Problem("file.yaml", "settings.patients", "must be positive")])
    for copy in (type(error)(*error.args), pickle.loads(pickle.dumps(error))):  # SimPy, worker processes
        assert copy.problems == error.problems and str(copy) == "file.yaml: settings.patients: must be positive"
