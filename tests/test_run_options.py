"""Engine and chunk size are run options: the old scenario settings still load, with one message."""

from __future__ import annotations

import json

from click.testing import CliRunner

from sim.app.cli import main
from sim.loader import load_scenario
from sim.model import compile_model
from sim.runner import tasks_for

SCENARIO = """
name: old_settings
settings: {patients: 40, horizon: 2 years, seed: 3, engine: des, chunk_size: 15}
treatments:
  drug_a:
    label: Drug A
    assess_at: {dist: fixed, value: 3 months}
    response: {p: 0.5}
    course: {dist: exponential, mean: 12 months}
strategies:
  only_a:
    lines: [drug_a]
"""


def test_old_settings_load_with_one_deprecation_message(tmp_path, capsys):
    path = tmp_path / "old_settings.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    for _ in range(2):
        loaded = load_scenario(path)
    said = capsys.readouterr().err
    assert said.count("deprecated") == 1
    assert "settings.chunk_size and settings.engine" in said and "--chunk-size and --engine" in said
    model = compile_model(loaded.scenario, loaded.name)
    assert model.engine == "des" and [task.count for task in tasks_for(model, engine="des")] == [15, 15, 10]


def test_engine_and_chunk_size_are_options_of_run(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", "bordeaux_cohort", "--engine", "compiled", "--chunk-size", "7",
                                       "--patients", "20", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "deprecated" not in result.output
    assert json.loads((out / "run.json").read_text())["engine"] == "compiled"
