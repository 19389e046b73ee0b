"""The vector engine: the same tables whatever the chunking, and which engine runs when."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner
from vector_scenarios import EVERY_RULE

from sim.app.cli import main
from sim.loader import ScenarioError, load_scenario
from sim.model import compile_model
from sim.runner import engine_for, simulate

TABLES = ("episodes", "patients", "adverse_events", "bursts")


def _model(path, overrides=None):
    loaded = load_scenario(path, overrides)
    return compile_model(loaded.scenario, loaded.name)


@pytest.fixture(scope="module")
def every_rule(tmp_path_factory):
    path = tmp_path_factory.mktemp("vector") / "every_rule.yaml"
    path.write_text(EVERY_RULE, encoding="utf-8")
    return _model(path, {"settings.patients": 300, "settings.replicates": 2})


@pytest.mark.parametrize("engine", ["des", "vector"])
def test_chunk_size_and_workers_do_not_change_the_tables(every_rule, engine):
    reference = simulate(every_rule, engine=engine, chunk_size=300, progress=False)
    for chunk_size, workers in ((7, 1), (64, 2)):
        other = simulate(every_rule, engine=engine, chunk_size=chunk_size, workers=workers, progress=False)
        for name in TABLES:
            pd.testing.assert_frame_equal(getattr(other, name), getattr(reference, name), obj=f"{name}, chunks of {chunk_size}")


def test_the_des_runs_the_same_patients_as_the_compiled_engine_over_replicates(every_rule):
    des = simulate(every_rule, engine="des", progress=False)
    compiled = simulate(every_rule, engine="compiled", progress=False)
    pd.testing.assert_frame_equal(compiled.episodes, des.episodes)
    assert set(compiled.episodes["replicate"]) == {0, 1}


def test_auto_picks_vector_unless_resources_are_limited():
    assert engine_for(_model("adult_conventional")) == "vector"
    assert engine_for(_model("capacity_biologics")) == "des"
    assert engine_for(_model("capacity_biologics"), "des") == "des"
    unlimited = _model("capacity_biologics", {"resources.biologic_slots.capacity": "unlimited"})
    assert engine_for(unlimited) == "vector"


def test_vector_refuses_limited_resources_clearly():
    model = _model("capacity_biologics", {"settings.engine": "vector", "settings.patients": 20})
    with pytest.raises(ScenarioError) as error:
        simulate(model, progress=False)
    message = str(error.value)
    assert "settings.engine" in message and "biologic_slots" in message and "--engine des" in message


def test_cli_engine_option(tmp_path):
    runner = CliRunner()
    refused = runner.invoke(main, ["run", "capacity_biologics", "--engine", "vector", "--patients", "20",
                                   "--out", str(tmp_path / "refused"), "--quiet"])
    assert refused.exit_code == 2
    assert "limited resources" in refused.output and "Traceback" not in refused.output
    assert not (tmp_path / "refused").exists()
    for engine in ("des", "compiled", "vector"):
        out = tmp_path / engine
        result = runner.invoke(main, ["run", "bordeaux_cohort", "--engine", engine, "--patients", "30",
                                      "--replicates", "2", "--out", str(out), "--quiet"])
        assert result.exit_code == 0, result.output
        assert json.loads((out / "run.json").read_text())["engine"] == engine
    assert pd.read_parquet(tmp_path / "des" / "episodes.parquet").equals(
        pd.read_parquet(tmp_path / "compiled" / "episodes.parquet"))


def test_runs_in_threads_of_one_process_do_not_share_their_numbers():
    """A Dask worker may run tasks in threads of one process: each run keeps its own
    buffer of uniforms, so concurrent runs give the tables they give alone."""
    from concurrent.futures import ThreadPoolExecutor

    loaded = [load_scenario("adult_conventional", {"settings.patients": 3000, "settings.seed": seed})
              for seed in (11, 12)]
    models = [compile_model(item.scenario, item.name) for item in loaded]
    alone = [simulate(model, chunk_size=500, progress=False, engine="vector").episodes for model in models]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda m: simulate(m, chunk_size=500, progress=False, engine="vector").episodes,
                                 models * 3))
    for i, episodes in enumerate(together):
        pd.testing.assert_frame_equal(episodes, alone[i % 2])


def test_numbers_kept_between_runs_of_the_same_patients_change_nothing(tmp_path):
    """The vector engine keeps a chunk's drawn uniforms, flare rounds and overflow numbers for
    the next run of the same patients (the samples of a PSA): runs with other parameters or
    another seed in between must still give the first run's tables."""
    path = tmp_path / "every_rule.yaml"
    path.write_text(EVERY_RULE, encoding="utf-8")
    base = {"settings.patients": 300, "settings.replicates": 1}
    sample = _model(path, base)
    other_sample = _model(path, {**base, "treatments.drug_a.response": 0.4, "relapse.probability": 0.5})
    other_seed = _model(path, {**base, "settings.seed": 18})
    first = simulate(sample, engine="vector", progress=False)
    for model in (other_sample, other_seed, sample):
        tables = simulate(model, engine="vector", progress=False)
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(tables, name), getattr(first, name))
    assert len(first.bursts) and first.episodes["episode"].max() > 3 * 2  # flares and numbers beyond the block
