"""The compiled engine: the same tables as the DES on every bundled scenario (limited resources
lifted), tables independent of chunks, workers and of Numba itself, a closed form, the
runaway guard and the engine choice.

Both engines call the rules of `sim.rules` and draw every uniform from Philox
(`sim.random_numbers`) for the same purposes, so for the same seed they agree row for
row, to the bit. Numba compiles the kernel once (cached on disk after).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from every_rule import scenario_file

from sim.loader import ScenarioError, bundled_scenarios, load_scenario
from sim.model import compile_model
from sim.runner import engine_for, simulate

PATIENTS = 1500
IDENTITY_PATIENTS = 300
IDENTICAL = sorted(bundled_scenarios()) + ["every_rule"]  # capacity_biologics with its resources lifted


def _model(name: str, directory: str, patients: int = PATIENTS, **overrides):
    path = scenario_file(name, directory)
    loaded = load_scenario(path)
    values = {"settings.patients": patients, "settings.replicates": 1}
    values |= {f"resources.{r}.capacity": "unlimited" for r in loaded.scenario.resources}
    loaded = load_scenario(path, values | overrides)
    return compile_model(loaded.scenario, loaded.name)


@pytest.fixture(scope="module")
def directory(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("compiled"))


@pytest.mark.parametrize("name", IDENTICAL)
def test_des_and_compiled_give_identical_tables(name, directory):
    """Both engines call the rules of `sim.rules` and draw the same Philox numbers for the same
    purposes: without limited resources (lifted here) they write the same tables, to the bit."""
    model = _model(name, directory, patients=IDENTITY_PATIENTS)
    des = simulate(model, engine="des", progress=False)
    compiled = simulate(model, engine="compiled", progress=False)
    _assert_same(des, compiled)
    assert len(des.episodes) and len(des.patients) == IDENTITY_PATIENTS * len(model.strategies)


def _assert_same(a, b) -> None:
    for table in ("episodes", "patients", "adverse_events", "bursts"):
        pd.testing.assert_frame_equal(getattr(a, table), getattr(b, table), check_exact=True)


@pytest.mark.parametrize("name", ["every_rule", "modern_adult"])
def test_tables_do_not_depend_on_chunks_or_workers(name, directory):
    model = _model(name, directory, patients=600)
    whole = simulate(model, engine="compiled", progress=False, chunk_size=600)
    _assert_same(whole, simulate(model, engine="compiled", progress=False, chunk_size=97))
    _assert_same(whole, simulate(model, engine="compiled", progress=False, chunk_size=150, workers=2))
    assert len(whole.episodes) and len(whole.patients) == 600 * len(model.strategies)


def test_plain_python_gives_the_same_tables(directory, tmp_path):
    """NUMBA_DISABLE_JIT=1 runs the same source as Python: the same tables, to the bit."""
    model = _model("every_rule", directory, patients=25)
    compiled = simulate(model, engine="compiled", progress=False)
    script = textwrap.dedent(f"""
        import pickle, sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        import test_compiled_engine as t
        from sim.runner import simulate
        model = t._model("every_rule", {directory!r}, patients=25)
        tables = simulate(model, engine="compiled", progress=False)
        with open({str(tmp_path / "tables.pickle")!r}, "wb") as handle:
            pickle.dump(tables, handle)
    """)
    environment = dict(os.environ, NUMBA_DISABLE_JIT="1")
    subprocess.run([sys.executable, "-c", script], check=True, env=environment, timeout=300)
    plain = pd.read_pickle(tmp_path / "tables.pickle")
    _assert_same(compiled, plain)


CLOSED_FORM = """
name: closed_form
settings: {patients: 4000, horizon: 10 years, seed: 5}
treatments:
  drug_a:
    label: Drug A
    assess_at: {dist: fixed, value: 1 months}
    response: {p: 1}
    course: {dist: exponential, mean: 12 months}
strategies:
  only_a:
    lines: [drug_a]
"""


def test_mean_time_on_drug_has_its_closed_form(write_scenario):
    """Every patient responds at 1 month and stays for an exponential course (mean 12) from the
    start, censored at 120 months: E[min(max(C, 1), 120)] = 1 + 12 (e^(-1/12) - e^(-10))."""
    loaded = load_scenario(write_scenario(CLOSED_FORM))
    tables = simulate(compile_model(loaded.scenario, loaded.name), engine="compiled", progress=False)
    months = tables.episodes["stop"] - tables.episodes["start"]
    assert len(months) == 4000 and (tables.episodes["episode"] == 1).all()
    expected = 1 + 12 * (math.exp(-1 / 12) - math.exp(-10))
    assert abs(months.mean() - expected) < 4 * months.std() / math.sqrt(len(months))
    assert set(tables.episodes["reason"]) <= {"remission", "horizon"}


RUNAWAY = """
name: runaway
settings: {patients: 3, horizon: 10 years, seed: 5}
relapse: {probability: 1, time: {dist: fixed, value: 0.001 months}}
treatments:
  drug_a:
    label: Drug A
    assess_at: {dist: fixed, value: 0.001 months}
    response: {p: 1}
    course: {dist: fixed, value: 0.001 months}
strategies:
  only_a:
    lines: [drug_a]
    on_relapse: retreat
"""


def test_a_pathway_that_loops_is_stopped_with_a_clear_message(write_scenario):
    loaded = load_scenario(write_scenario(RUNAWAY))
    with pytest.raises(ScenarioError, match="more than 10000 treatment episodes"):
        simulate(compile_model(loaded.scenario, loaded.name), engine="compiled", progress=False)


def test_compiled_runs_when_asked_for_and_refuses_limited_resources():
    adult = load_scenario("adult_conventional")
    assert engine_for(compile_model(adult.scenario, adult.name), "compiled") == "compiled"
    capacity = load_scenario("capacity_biologics")
    model = compile_model(capacity.scenario, capacity.name)
    assert engine_for(model, "auto") == "des"
    with pytest.raises(ScenarioError, match="cannot simulate limited resources"):
        engine_for(model, "compiled")


def test_common_random_numbers_across_strategies(directory):
    """The same patient has the same covariates and end of observation under every strategy."""
    tables = simulate(_model("every_rule", directory, patients=200), engine="compiled", progress=False)
    p = tables.patients
    for column in ("weight_kg", "follow_up_months", "entry_month"):
        wide = p.pivot(index="patient", columns="strategy", values=column)
        assert np.allclose(wide.to_numpy(), wide.to_numpy()[:, :1])
