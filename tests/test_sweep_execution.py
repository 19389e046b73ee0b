"""Running sweeps: the same tables on every executor, resuming after Ctrl-C or SIGKILL
without running a task twice, retries, refusing to mix two sweeps' results."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest
from click.testing import CliRunner

from sim.app.cli import main
from sim.app.sweep import LocalPool, SerialExecutor, load_sweep, run_sweep
from sim.app.sweep.store import read_log
from sim.app.sweep.worker import run_batch, run_task

SWEEP = """
base: adult_conventional_bordeaux
vary:
  treatments.cyclosporine.cap: [6 months, none]
  settings.patients: [60]
  settings.horizon: [3 years]
one_way:
  relapse.probability: {low: 0.2, high: 0.6}
psa: {samples: 4}
seed: 3
"""
TASKS = 2 * (1 + 2 + 4)


@pytest.fixture(scope="module")
def sweep_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "small.yaml"
    path.write_text(textwrap.dedent(SWEEP), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def small_path(tmp_path_factory):
    """The sweep without its PSA: 6 tasks."""
    path = tmp_path_factory.mktemp("small") / "one_way.yaml"
    path.write_text(textwrap.dedent(SWEEP).replace("psa: {samples: 4}", ""), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reference(sweep_path, tmp_path_factory):
    """The sweep run uninterrupted in this process."""
    out = tmp_path_factory.mktemp("reference") / "out"
    outcome = run_sweep(load_sweep(sweep_path), out, SerialExecutor(), progress=False)
    assert outcome.status == "complete" and outcome.finished == TASKS
    return out


def summary(out) -> pd.DataFrame:
    return pd.read_parquet(out / "sweep_summary.parquet")


def assert_same_results(out, reference) -> None:
    pd.testing.assert_frame_equal(summary(out), summary(reference))
    assert (out / "sweep_summary.csv").read_bytes() == (reference / "sweep_summary.csv").read_bytes()


def finished_once(out) -> collections.Counter:
    events = ("finished", "recovered")  # recovered: written, then killed before the log line
    counts = collections.Counter(e["task"] for e in read_log(out) if e["event"] in events)
    assert len(counts) == TASKS and set(counts.values()) == {1}, counts
    return counts


def test_the_summary_has_a_row_per_task_and_metric_with_parameters(reference):
    table = summary(reference)
    assert table["task"].nunique() == TASKS
    assert {"variant", "analysis", "sample", "replicate", "treatments.cyclosporine.cap", "relapse.probability",
            "treatments.cyclosporine.response", "strategy", "metric", "value", "ci_low", "ci_high"} <= set(table)
    per_task = table.groupby("task").size()
    assert per_task.nunique() == 1 and per_task.iloc[0] > 100
    assert set(table["analysis"]) == {"point", "one_way", "psa"}
    csv = pd.read_csv(reference / "sweep_summary.csv")
    assert len(csv) == len(table) and "treatments.cyclosporine.response" not in csv
    assert "treatments.cyclosporine.response" in pd.read_csv(reference / "sweep_tasks.csv")
    manifest = json.loads((reference / "sweep.json").read_text())
    assert manifest["status"] == "complete" and manifest["tasks_finished"] == TASKS


@pytest.mark.parametrize("batch", [None, 3])
def test_local_processes_give_the_same_tables(sweep_path, reference, tmp_path, batch):
    pool = LocalPool(2)
    try:
        outcome = run_sweep(load_sweep(sweep_path), tmp_path / "pool", pool, progress=False, batch=batch)
    finally:
        pool.close()
    assert outcome.status == "complete"
    assert_same_results(tmp_path / "pool", reference)


def test_a_dask_cluster_gives_the_same_tables(sweep_path, reference, tmp_path):
    pytest.importorskip("distributed")
    from sim.app.sweep import DaskExecutor

    dask = DaskExecutor.local(2, processes=False)
    try:
        outcome = run_sweep(load_sweep(sweep_path), tmp_path / "dask", dask, progress=False)
    finally:
        dask.close()
    assert outcome.status == "complete"
    assert_same_results(tmp_path / "dask", reference)


def test_a_point_task_is_adpath_run_with_the_task_seed(sweep_path, reference, tmp_path):
    tasks = pd.read_parquet(reference / "sweep_tasks.parquet").set_index("task")
    seed = int(tasks.loc["v1-point-r0", "seed"])  # the uncapped variant: the base scenario itself
    result = CliRunner().invoke(main, ["run", "adult_conventional_bordeaux", "--patients", "60", "--horizon", "3 years",
                                       "--seed", str(seed), "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    run = pd.read_csv(tmp_path / "run" / "summary.csv")
    task = summary(reference).query("task == 'v1-point-r0'")[list(run.columns)].reset_index(drop=True)
    task["treatment"], run["treatment"] = task["treatment"].fillna(""), run["treatment"].fillna("")
    pd.testing.assert_frame_equal(task, run, check_dtype=False)


def test_an_interrupted_sweep_resumes_without_redoing_anything(sweep_path, reference, tmp_path):
    calls = []

    def interrupted_after_five(*args):
        calls.append(args[0])
        if len(calls) == 6:
            raise KeyboardInterrupt
        return run_task(*args)

    plan = load_sweep(sweep_path)
    first = run_sweep(plan, tmp_path / "out", SerialExecutor(), progress=False, work=interrupted_after_five)
    assert first.status == "interrupted" and first.finished == 5
    assert json.loads((tmp_path / "out" / "sweep.json").read_text())["status"] == "interrupted"
    second = run_sweep(plan, tmp_path / "out", SerialExecutor(), progress=False)
    assert second.status == "complete" and second.ran == TASKS - 5
    assert_same_results(tmp_path / "out", reference)
    finished_once(tmp_path / "out")


def test_a_killed_sweep_resumes_and_equals_an_uninterrupted_one(sweep_path, reference, tmp_path):
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "sim", "sweep", str(sweep_path), "--out", str(out), "--workers", "2", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while len(list((out / "summary").glob("*.parquet"))) < 2 and time.monotonic() < deadline:
            assert process.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.02)
        process.kill()  # the main process only, as a crash would
        process.wait()
        assert workers_leave(process.pid), "the workers outlived the killed sweep"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    done = len(list((out / "summary").glob("*.parquet")))
    assert 2 <= done < TASKS
    resumed = subprocess.run(command, capture_output=True, text=True, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert "finished before" in resumed.stdout
    assert_same_results(out, reference)
    finished_once(out)
    sessions = [e for e in read_log(out) if e["event"] == "session_started"]
    assert [s["finished"] for s in sessions] == [0, done]


def workers_leave(group: int, seconds: float = 15) -> bool:
    """Whether every process of the killed sweep's session is gone within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_a_task_written_but_not_logged_before_a_crash_is_recovered_not_rerun(small_path, tmp_path):
    plan = load_sweep(small_path)
    run_sweep(plan, tmp_path / "out", SerialExecutor(), progress=False)
    log = tmp_path / "out" / "tasks.log"
    lines = log.read_text().splitlines()
    last = max(i for i, line in enumerate(lines) if '"event": "finished"' in line)
    lost = json.loads(lines[last])["task"]
    log.write_text("\n".join(lines[:last]) + '\n{"time": "cut sho', encoding="utf-8")
    again = run_sweep(plan, tmp_path / "out", SerialExecutor(), progress=False)
    assert again.ran == 0 and again.status == "complete"
    assert [e["task"] for e in read_log(tmp_path / "out") if e["event"] == "recovered"] == [lost]


def test_a_changed_sweep_is_refused_but_a_new_source_text_is_not(sweep_path, reference, tmp_path):
    changed = tmp_path / "changed.yaml"
    changed.write_text(sweep_path.read_text().replace("high: 0.6", "high: 0.65"), encoding="utf-8")
    result = CliRunner().invoke(main, ["sweep", str(changed), "--out", str(reference), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "different sweep" in result.output and "one_way.relapse.probability.high: 0.6 -> 0.65" in result.output
    annotated = tmp_path / "annotated.yaml"
    annotated.write_text(sweep_path.read_text().replace("high: 0.6}", "high: 0.6, source: 'assumption: a range "
                                                        "wide enough for a tornado'}"), encoding="utf-8")
    before = summary(reference)
    result = CliRunner().invoke(main, ["sweep", str(annotated), "--out", str(reference), "--quiet"])
    assert result.exit_code == 0, result.output
    assert f"({0} now, {TASKS} finished before)" in result.output
    pd.testing.assert_frame_equal(summary(reference), before)


def test_a_failing_task_is_retried_once(small_path, tmp_path):
    failures = collections.Counter()

    def flaky(task_id, *args):
        if task_id == "v0-ow00-low-r0" and not failures[task_id]:
            failures[task_id] += 1
            raise RuntimeError("worker lost")
        return run_task(task_id, *args)

    outcome = run_sweep(load_sweep(small_path), tmp_path / "out", SerialExecutor(), progress=False, work=flaky)
    assert outcome.status == "complete" and outcome.finished == 6
    events = [(e["event"], e.get("attempt")) for e in read_log(tmp_path / "out") if e.get("task") == "v0-ow00-low-r0"]
    assert events == [("retried", 1), ("finished", 2)]


def test_a_task_failing_twice_is_listed_and_the_rest_finish(small_path, tmp_path):
    def broken(task_id, *args):
        if task_id == "v1-ow00-high-r0":
            raise ValueError("no such thing")
        return run_task(task_id, *args)

    plan = load_sweep(small_path)
    outcome = run_sweep(plan, tmp_path / "out", SerialExecutor(), progress=False, work=broken)
    assert outcome.status == "incomplete" and outcome.finished == 5
    assert [f["task"] for f in outcome.failed] == ["v1-ow00-high-r0"]
    failure = json.loads((tmp_path / "out" / "sweep.json").read_text())["failed"][0]
    assert failure["error"] == "ValueError: no such thing"
    assert "relapse.probability = 0.6 (high)" in failure["what"]
    assert failure["parameters"]["relapse.probability"] == 0.6
    assert "v1-ow00-high-r0" not in set(summary(tmp_path / "out")["task"])
    again = run_sweep(plan, tmp_path / "out", SerialExecutor(), progress=False)
    assert again.status == "complete" and again.ran == 1
    assert "v1-ow00-high-r0" in set(summary(tmp_path / "out")["task"])


def test_the_command_line_lists_failed_tasks_and_exits_1(small_path, tmp_path, monkeypatch):
    import sim.app.sweep.runner

    def broken(task_id, *args):
        raise ValueError("always")

    monkeypatch.setattr(sim.app.sweep.runner, "run_task", broken)
    result = CliRunner().invoke(main, ["sweep", str(small_path), "--out", str(tmp_path / "out"), "--workers", "1",
                                       "--quiet"])
    assert result.exit_code == 1, result.output
    assert "6 of 6 tasks failed twice" in result.output and "ValueError: always" in result.output


def test_keep_episodes_keeps_every_task_table(small_path, tmp_path):
    outcome = run_sweep(load_sweep(small_path), tmp_path / "out", SerialExecutor(), keep_episodes=True,
                        progress=False)
    assert outcome.finished == 6
    episodes = pd.read_parquet(tmp_path / "out" / "episodes" / "v0-point-r0.parquet")
    assert set(episodes["task"]) == {"v0-point-r0"} and set(episodes["replicate"]) == {0}
    for table in ("patients", "adverse_events"):
        assert len(list((tmp_path / "out" / table).glob("*.parquet"))) == 6


def test_a_directory_of_other_files_is_refused(sweep_path, tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    result = CliRunner().invoke(main, ["sweep", str(sweep_path), "--out", str(tmp_path / "other"), "--quiet"])
    assert result.exit_code == 2 and "not a sweep's results" in result.output


def test_the_fork_server_starts_before_planning_only_for_a_local_pool(monkeypatch):
    import multiprocessing.forkserver

    from sim.app.sweep import start_fork_server

    started = []
    monkeypatch.setattr(multiprocessing.forkserver, "ensure_running", lambda: started.append(True))
    start_fork_server(1)
    start_fork_server(2, scheduler="tcp://127.0.0.1:8786")
    start_fork_server(2, dask_local=True)
    assert started == []
    start_fork_server(2)
    assert started == ([True] if "forkserver" in multiprocessing.get_all_start_methods() else [])



def test_batches_of_samples_give_the_same_files_whatever_their_size(sweep_path, tmp_path):
    plan = load_sweep(sweep_path)
    outs = {}
    for batch in (1, 3, None):
        outs[batch] = tmp_path / f"batch_{batch}"
        outcome = run_sweep(plan, outs[batch], SerialExecutor(), keep_episodes=True, progress=False, batch=batch)
        assert outcome.status == "complete" and outcome.finished == TASKS
    for batch in (3, None):
        assert_same_results(outs[batch], outs[1])
        for table in ("summary", "episodes", "patients", "adverse_events", "bursts"):
            for path in sorted((outs[1] / table).glob("*.parquet")):
                pd.testing.assert_frame_equal(pd.read_parquet(outs[batch] / table / path.name), pd.read_parquet(path))
    batched = [e for e in read_log(outs[3]) if e["event"] == "finished"]
    assert len(batched) == TASKS and {e["attempt"] for e in batched} == {1}


def test_an_interrupted_batch_loses_only_its_own_samples(sweep_path, reference, tmp_path, monkeypatch):
    import sim.app.sweep.runner

    calls = []

    def interrupted_second_batch(*args):
        calls.append(args[0])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return run_batch(*args)

    monkeypatch.setattr(sim.app.sweep.runner, "run_batch", interrupted_second_batch)
    plan = load_sweep(sweep_path)
    first = run_sweep(plan, tmp_path / "out", SerialExecutor(), progress=False, batch=3)
    # variant 0 whole (point, two one-way bounds, a batch of 3 samples and one alone), variant 1's point and one-way
    assert first.status == "interrupted" and first.finished == 7 + 3
    monkeypatch.undo()
    second = run_sweep(plan, tmp_path / "out", SerialExecutor(), progress=False, batch=2)
    assert second.status == "complete" and second.ran == TASKS - first.finished
    assert_same_results(tmp_path / "out", reference)
    finished_once(tmp_path / "out")


def test_a_failing_batch_is_retried_sample_by_sample(sweep_path, reference, tmp_path, monkeypatch):
    import sim.app.sweep.runner

    def broken(*args):
        raise RuntimeError("worker lost")

    monkeypatch.setattr(sim.app.sweep.runner, "run_batch", broken)
    outcome = run_sweep(load_sweep(sweep_path), tmp_path / "out", SerialExecutor(), progress=False, batch=4)
    assert outcome.status == "complete" and outcome.finished == TASKS
    events = [(e["event"], e.get("attempt")) for e in read_log(tmp_path / "out") if e.get("task") == "v0-psa2-r0"]
    assert events == [("retried", 1), ("finished", 2)]
    assert_same_results(tmp_path / "out", reference)


def test_only_compiled_samples_of_one_chunk_share_a_kernel_call(sweep_path):
    import dataclasses

    from sim.app.sweep.worker import batches_in_one_call

    plan = load_sweep(sweep_path)
    model = plan.model(next(task for task in plan.tasks if task.analysis == "psa"))
    assert batches_in_one_call(model)
    assert not batches_in_one_call(dataclasses.replace(model, engine="des"))
    assert not batches_in_one_call(dataclasses.replace(model, chunk_size=model.patients // 2))
