"""One kernel call for a PSA's samples (`sim.engine.compiled.simulate_samples`): each sample's
tables equal those of its own run, and samples that differ in structure are refused."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
from every_rule import scenario_file

from sim.engine import compiled
from sim.loader import ScenarioError, load_scenario
from sim.model import compile_model


def _samples(name: str, directory: str, samples: int, patients: int) -> list:
    """`samples` models of scenario `name` with other response probabilities and seeds."""
    loaded = load_scenario(scenario_file(name, directory),
                           {"settings.patients": patients, "settings.replicates": 1})
    model = compile_model(loaded.scenario, loaded.name)
    rng = np.random.default_rng(17)
    models = []
    for k in range(samples):
        treatments = tuple(dataclasses.replace(t, response_probability=float(rng.uniform(0.2, 0.9)))
                           for t in model.treatments)
        models.append(dataclasses.replace(model, treatments=treatments, seed=model.seed + k))
    return models


@pytest.fixture(scope="module")
def directory(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("scenarios"))


def _same(a: compiled.ColumnRecords, b: compiled.ColumnRecords) -> None:
    for table in ("episodes", "events", "patients", "bursts"):
        left, right = getattr(a, table), getattr(b, table)
        assert left.keys() == right.keys()
        for column in left:
            np.testing.assert_array_equal(left[column], right[column], err_msg=f"{table}.{column}")


@pytest.mark.parametrize("name", ["every_rule", "modern_adult"])
def test_one_call_for_all_samples_gives_each_sample_its_own_tables(name, directory):
    models = _samples(name, directory, samples=4, patients=300)
    together = compiled.simulate_samples(models, replicate=0, first_patient=100, count=300)
    assert len(together) == len(models)
    for model, (records, covariates) in zip(models, together):
        alone, own = compiled.simulate_chunk(model, 0, 100, 300)
        _same(records, alone)
        assert covariates.keys() == own.keys()
    # the samples do differ: another response probability, other episodes
    assert len(together[0][0].episodes["patient"]) != len(together[1][0].episodes["patient"])


def test_samples_that_differ_in_structure_are_refused(directory):
    models = _samples("every_rule", directory, samples=2, patients=50)
    fewer = dataclasses.replace(models[1], strategies=models[1].strategies[:1])
    with pytest.raises(ScenarioError, match="differ in the structure"):
        compiled.simulate_samples([models[0], fewer], replicate=0, first_patient=0, count=50)


def test_the_psa_benchmark_runs_at_a_toy_size():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_psa

    row = bench_psa.measure("adult_conventional", 3, 40)
    assert row["trajectories"] == 3 * 40 * 3 and row["simulate_s"] > 0 and row["episodes"] > 0


def test_samples_simulated_a_group_at_a_time_give_the_same_tables(directory, monkeypatch):
    models = _samples("every_rule", directory, samples=5, patients=120)
    together = compiled.simulate_samples(models, replicate=0, first_patient=0, count=120)
    monkeypatch.setattr(compiled, "CHUNK_PATIENTS", 240)  # groups of 2 samples, the blocks reused
    grouped = compiled.simulate_samples(models, replicate=0, first_patient=0, count=120)
    for (a, _), (b, _) in zip(together, grouped, strict=True):
        _same(a, b)


def _changed(model, probability: float | None = None, fates: bool = False):
    """`model` with its adverse events `probability` (if given) or its fates rotated."""
    treatments = []
    for t in model.treatments:
        if probability is not None:
            t = dataclasses.replace(t, adverse_events=tuple(dataclasses.replace(e, probability=probability)
                                                            for e in t.adverse_events))
        if fates:
            t = dataclasses.replace(t, fates=(t.fates[1], t.fates[2], t.fates[0]))
        treatments.append(t)
    return dataclasses.replace(model, treatments=tuple(treatments))


@pytest.mark.parametrize("name", ["every_rule", "modern_adult"])
def test_samples_of_one_seed_share_plans_and_still_get_their_own_tables(name, directory, monkeypatch):
    # One seed: samples whose drugs differ only in their response probability share episode plans
    # (`drug_classes`); the others, in between, must not reuse them. (every_rule's empirical course
    # keeps a class per sample: its values are pooled sample by sample.)
    models = [dataclasses.replace(m, seed=7) for m in _samples(name, directory, samples=5, patients=150)]
    models[1], models[3] = _changed(models[1], probability=0.5), _changed(models[3], fates=True)
    stacked = compiled.stack_models(models)
    classes = compiled.drug_classes(stacked, np.array([m.seed for m in models]))
    assert (classes[0] == classes[2]).sum() >= len(classes[0]) - 1 and (classes[2] == classes[4]).sum() >= 2
    assert (classes[0] != classes[1]).any() and (classes[0] != classes[3]).any()
    assert compiled.shared_plans(stacked, classes, 150)[1].shape[0] == 150
    monkeypatch.setattr(compiled, "CHUNK_PATIENTS", 300)  # groups of 2 samples: the plans kept across groups
    together = compiled.simulate_samples(models, replicate=0, first_patient=20, count=150)
    for model, (records, _) in zip(models, together, strict=True):
        _same(records, compiled.simulate_chunk(model, 0, 20, 150)[0])
