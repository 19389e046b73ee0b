"""A run or sweep killed (SIGKILL) while it writes its report leaves either the complete new
run, report included, or the earlier one intact, never a mix; no staging directory
survives the next run.

Each test starts `adpath` in a subprocess whose chosen function first announces itself in a
file and then waits; the test kills the process there and looks at what is on disk.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from sim.app.cli import main
from sim.app.outputs import staged_directory

ROOT = Path(__file__).resolve().parents[1]

SCENARIO = """
name: killed
settings: {patients: 40, horizon: 2 years, seed: 1}
treatments:
  drug_a:
    label: Drug A
    assess_at: {dist: fixed, value: 3 months}
    response: {p: 0.5}
    course: {dist: exponential, mean: 12 months}
  drug_b:
    label: Drug B
    assess_at: {dist: fixed, value: 3 months}
    response: {p: 0.4}
    course: {dist: exponential, mean: 12 months}
strategies:
  a_then_b: {lines: [drug_a, drug_b]}
  b_then_a: {lines: [drug_b, drug_a]}
"""

SWEEP = """
name: killed_sweep
base: scenario.yaml
vary:
  treatments.drug_a.response.p: [0.3, 0.6]
"""

# Runs `adpath ARGS...` with `MODULE.FUNCTION` replaced by one that, at its CALL-th call,
# writes the marker file and sleeps until killed (`os.rename` counts only the renames of a
# staging directory into place, so it pauses inside a swap).
WRAPPER = textwrap.dedent("""
    import importlib, os, sys, time
    module_name, function_name, call, marker = sys.argv[1:5]
    module = importlib.import_module(module_name)
    original = getattr(module, function_name)
    calls = []

    def pause():
        open(marker, "w").close()
        time.sleep(600)

    if function_name == "rename":  # staging -> out, the second rename of a swap: the old run is set aside
        def paused(source, target, *args, **kwargs):
            if ".partial-" in str(source):
                calls.append(1)
            if ".partial-" in str(source) and len(calls) == int(call):
                pause()
            return original(source, target, *args, **kwargs)
    else:
        def paused(*args, **kwargs):
            calls.append(1)
            if len(calls) == int(call):
                pause()
            return original(*args, **kwargs)
    setattr(module, function_name, paused)
    from sim.app.cli import main
    sys.argv = ["adpath", *sys.argv[5:]]
    main()
""")


def files(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` (relative path -> content)."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def kill_at(tmp_path: Path, target: str, call: int, *args: str) -> None:
    """Run `adpath ARGS` until `target` (module:function) is called for the `call`-th time; SIGKILL it there."""
    module, function = target.split(":")
    marker = tmp_path / "paused"
    marker.unlink(missing_ok=True)
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(WRAPPER)
    process = subprocess.Popen([sys.executable, str(wrapper), module, function, str(call), str(marker), *args],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})  # this checkout's sim
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            if process.poll() is not None:
                pytest.fail(f"the run ended before {target}: {process.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"{target} was not reached")
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stderr.close()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished run with its report, built once for the module."""
    folder = tmp_path_factory.mktemp("finished_run")
    scenario = folder / "scenario.yaml"
    scenario.write_text(SCENARIO)
    out = folder / "run"
    result = CliRunner().invoke(main, ["run", str(scenario), "--out", str(out), "--quiet", "--report"])
    assert result.exit_code == 0, result.output
    assert (out / "report.html").is_file() and any((out / "figures").iterdir())
    return out


@pytest.fixture
def earlier_run(finished_run, tmp_path):
    """A copy of the finished run in tmp_path/run; returns (scenario, out, its files)."""
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    return scenario, out, files(out)


def next_run_fails(out: Path) -> None:
    """What the next run does before it writes anything: clear what killed runs left."""
    with pytest.raises(RuntimeError), staged_directory(out, replace_run=True):
        raise RuntimeError("the next run fails before it writes anything")


# Where the new run is killed: drawing its report (figures and tables written, report.html
# not yet), and writing its run.json (before the report).
@pytest.mark.parametrize("target", ["analysis.report:_page", "sim.app.outputs:write_json"])
def test_a_run_killed_while_it_writes_leaves_the_earlier_run_intact(earlier_run, tmp_path, target):
    scenario, out, before = earlier_run
    kill_at(tmp_path, target, 1, "run", str(scenario), "--out", str(out), "--quiet", "--report", "--seed", "2")
    assert files(out) == before, "the earlier run, report included, is untouched"
    assert [name for name in hidden(tmp_path) if ".partial-" in name], "the killed run's staging is left..."
    next_run_fails(out)
    assert hidden(tmp_path) == [], "...and the next run clears it"
    assert files(out) == before


def test_the_run_after_a_killed_one_is_complete(earlier_run, tmp_path):
    scenario, out, before = earlier_run
    kill_at(tmp_path, "analysis.report:_page", 1, "run", str(scenario), "--out", str(out), "--quiet", "--report",
            "--seed", "2")
    result = CliRunner().invoke(main, ["run", str(scenario), "--out", str(out), "--quiet", "--report", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert hidden(tmp_path) == []
    after = files(out)
    assert after.keys() == before.keys() and after["run.json"] != before["run.json"]


def test_a_run_killed_between_the_two_renames_of_the_swap_is_put_back(earlier_run, tmp_path):
    scenario, out, before = earlier_run
    kill_at(tmp_path, "os:rename", 1, "run", str(scenario), "--out", str(out), "--quiet", "--report", "--seed", "2")
    assert not out.exists()
    aside = [tmp_path / name for name in hidden(tmp_path) if ".old-" in name]
    assert len(aside) == 1 and files(aside[0]) == before, "the earlier run is set aside whole"
    next_run_fails(out)
    assert files(out) == before and hidden(tmp_path) == []


def test_a_fresh_run_killed_while_it_writes_its_report_leaves_nothing(tmp_path):
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "fresh"
    kill_at(tmp_path, "analysis.report:_page", 1, "run", str(scenario), "--out", str(out), "--quiet", "--report")
    assert not out.exists(), "no run directory without its report"


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
    """A finished sweep with its report, built once for the module."""
    folder = tmp_path_factory.mktemp("finished_sweep")
    (folder / "scenario.yaml").write_text(SCENARIO)
    (folder / "sweep.yaml").write_text(SWEEP)
    out = folder / "sweep"
    result = CliRunner().invoke(main, ["sweep", str(folder / "sweep.yaml"), "--out", str(out), "--quiet",
                                       "--workers", "1", "--report"])
    assert result.exit_code == 0, result.output
    assert (out / "report.html").is_file()
    return out


@pytest.fixture
def earlier_sweep(finished_sweep, tmp_path):
    """A copy of the finished sweep in tmp_path/sweep; returns (sweep file, out, its files)."""
    (tmp_path / "scenario.yaml").write_text(SCENARIO)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(SWEEP)
    out = tmp_path / "sweep"
    shutil.copytree(finished_sweep, out)
    return sweep, out, files(out)


def test_a_sweep_report_killed_midway_leaves_the_earlier_report_intact(earlier_sweep, tmp_path):
    sweep, out, before = earlier_sweep
    kill_at(tmp_path, "analysis.sweep_report:write_atomic", 2, "report", str(out))
    assert files(out) == before
    result = CliRunner().invoke(main, ["sweep", str(sweep), "--out", str(out), "--quiet", "--workers", "1",
                                       "--report"])
    assert result.exit_code == 0, result.output
    assert hidden(tmp_path) == [] and (out / "report.html").is_file()
    assert files(out).keys() == before.keys()


def test_a_sweep_killed_between_the_two_renames_of_its_report_is_put_back(earlier_sweep, tmp_path):
    sweep, out, before = earlier_sweep
    kill_at(tmp_path, "os:rename", 1, "report", str(out))
    assert not out.exists()
    result = CliRunner().invoke(main, ["report", str(out)])
    assert result.exit_code == 0, result.output
    assert hidden(tmp_path) == []
    assert files(out).keys() == before.keys()
    for name in ("sweep.json", "sweep_summary.parquet", "sweep_tasks.parquet"):
        assert files(out)[name] == before[name]


def test_a_long_out_name_keeps_its_staging_names_valid(tmp_path):
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO)
    out = tmp_path / ("r" * 250)
    for _ in range(2):  # the second time replaces the first run through the swap
        result = CliRunner().invoke(main, ["run", str(scenario), "--out", str(out), "--quiet"])
        assert result.exit_code == 0, result.output
    assert (out / "run.json").is_file() and hidden(tmp_path) == []
    assert os.path.basename(out) == "r" * 250
