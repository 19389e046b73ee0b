"""A sweep's output directory: one Parquet file per finished task, a manifest and a log.

```
DIR/
  sweep.json                   manifest: the sweep, its hash, parameter columns, status,
                               failed tasks, one entry per session (run or resume)
  sweep_tasks.parquet          the plan: one row per task with its parameter values
  summary/<task>.parquet       each finished task's summary (long form, as summary.csv)
  episodes/, patients/, ...    each finished task's run tables (one directory per table of
    <task>.parquet             `sim.runner.RunTables`), with --keep-episodes
  tasks.log                    one JSON line per event: task finished, failed, retried,
                               recovered (found on disk after a crash before it was
                               logged); session started, ended
  sweep_summary.parquet        all summaries, one row per task and metric, with the
                               task's parameter values as columns
  sweep_summary.csv            the same rows, without the PSA's drawn parameters
  sweep_tasks.csv              one row per finished task with all its parameter values
```

Every file is written to a temporary name and moved into place with `os.replace`, so a
crash leaves either no file or a whole one. A task's summary file is written last: its
presence is what "finished" means, so a re-run skips exactly the finished tasks. A
re-run whose sweep resolves to a different hash is refused, as it would mix results;
a lock keeps two sweeps from writing to one directory at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sim.loader import Problem, ScenarioError
from sim.app.outputs import package_versions, rebuild_report, restore_abandoned, scenario_hash
from sim.runner import RunTables
from sim.app.sweep.plan import SweepPlan, SweepTask, resolved_sweep
from sim.app.sweep.worker import TaskResult

MANIFEST = "sweep.json"
TASKS = "sweep_tasks.parquet"
LOG = "tasks.log"
SUMMARY = "summary"
TABLES = tuple(item.name for item in dataclasses.fields(RunTables))
TASK_COLUMNS = ["task", "variant", "analysis", "parameter", "bound", "sample", "replicate"]
CSV_FLOAT = "%.10g"


def is_sweep_directory(directory: str | os.PathLike) -> bool:
    """Whether `directory` holds a sweep's results (it has a sweep.json manifest)."""
    return (Path(directory) / MANIFEST).is_file()


class SweepStore:
    """The output directory of one sweep, open for writing by one process."""

    def __init__(self, directory: Path, plan: SweepPlan, keep_tables: bool, lock):
        self.directory = directory
        self.plan = plan
        self.keep_tables = keep_tables
        self._lock = lock
        self.manifest: dict = {}
        self.session = 0
        # Summaries written in this session, kept to assemble sweep_summary without reading
        # them back (about 1 ms a file); those of earlier sessions are read from disk.
        self._summaries: dict[str, pa.Table] = {}

    @classmethod
    def open(cls, directory: str | os.PathLike, plan: SweepPlan, keep_tables: bool = False) -> SweepStore:
        """Open (or create) `directory` for `plan`; refuse it if it holds other results."""
        directory = Path(directory)
        restore_abandoned(directory)
        _refuse_foreign(directory, plan)
        directory.mkdir(parents=True, exist_ok=True)
        store = cls(directory, plan, keep_tables, _take_lock(directory))
        store._clean_partial_files()
        store._begin_session()
        return store

    # ----------------------------------------------------------------- tasks

    def finished(self) -> set[str]:
        """Ids of the plan's tasks whose results are complete on disk."""
        done = {path.stem for path in (self.directory / SUMMARY).glob("*.parquet")}
        if self.keep_tables:
            for name in TABLES:
                done &= {path.stem for path in (self.directory / name).glob("*.parquet")}
        return done & {task.id for task in self.plan.tasks}

    def write(self, task: SweepTask, result: TaskResult, attempt: int) -> None:
        """Write a finished task's files (its summary last) and log it."""
        if self.keep_tables and result.tables is not None:
            for name in TABLES:
                frame = getattr(result.tables, name)
                frame.insert(0, "task", task.id)
                self._write_parquet(self.directory / name / f"{task.id}.parquet",
                                    pa.Table.from_pandas(frame, preserve_index=False))
        self._write_parquet(self.directory / SUMMARY / f"{task.id}.parquet", result.summary)
        self._summaries[task.id] = result.summary
        self.record("finished", task=task.id, attempt=attempt, seconds=round(result.seconds, 3))

    def record(self, event: str, **fields: Any) -> None:
        """Append one event to the log (a JSON line)."""
        line = {"time": _now(), "session": self.session, "event": event, **fields}
        with open(self.directory / LOG, "a", encoding="utf-8") as log:
            log.write(json.dumps(line, default=str) + "\n")

    # --------------------------------------------------------------- closing

    def close(self, status: str, failures: list[dict], executor: str, seconds: float) -> None:
        """Record how the session ended, write the assembled summary, release the lock."""
        try:
            finished = self.finished()
            self.manifest.update({
                "status": status,
                "tasks_finished": len(finished),
                "failed": failures,
                "updated_at": _now(),
            })
            self.manifest["sessions"][-1].update({"ended_at": _now(), "status": status, "executor": executor,
                                                  "wall_time_seconds": round(seconds, 3)})
            self.record("session_ended", status=status, finished=len(finished), failed=len(failures))
            if finished:
                self._write_summary(finished)
            self._write_manifest()
        finally:
            self._lock.close()

    def _write_summary(self, finished: set[str]) -> None:
        tasks = self.plan.task_table()
        tasks = tasks[tasks["task"].isin(finished)]
        parts = [self._summaries.get(task) or pq.read_table(self.directory / SUMMARY / f"{task}.parquet")
                 for task in tasks["task"]]
        summaries = pa.concat_tables(parts).to_pandas()
        parameters = [c.name for c in self.plan.columns]
        table = tasks[TASK_COLUMNS + parameters].merge(summaries, on="task", how="inner", sort=False)
        self._write_parquet(self.directory / "sweep_summary.parquet", pa.Table.from_pandas(table, preserve_index=False))
        # The CSV leaves out the PSA's drawn parameters (dozens of columns repeated on every
        # metric's row would make it hundreds of megabytes); sweep_tasks.csv has them per task.
        drawn = [c.name for c in self.plan.columns if c.role == "psa"]
        _write_text(self.directory / "sweep_summary.csv", _csv(table.drop(columns=drawn)))
        _write_text(self.directory / "sweep_tasks.csv", _csv(tasks))

    # ------------------------------------------------------------- internals

    def _begin_session(self) -> None:
        path = self.directory / MANIFEST
        if path.is_file():
            self.manifest = read_manifest(self.directory)
        else:
            self.manifest = _new_manifest(self.plan)
            self._write_parquet(self.directory / TASKS, pa.Table.from_pandas(self.plan.task_table(),
                                                                             preserve_index=False))
        self.manifest.setdefault("sessions", []).append({"started_at": _now(), "keep_episodes": self.keep_tables})
        self.session = len(self.manifest["sessions"])
        self.manifest.update({"status": "running", "updated_at": _now()})
        self._write_manifest()
        done = self.finished()
        self.record("session_started", finished=len(done), tasks=len(self.plan.tasks))
        logged = {e["task"] for e in read_log(self.directory) if e.get("event") in ("finished", "recovered")}
        for task in sorted(done - logged):  # written just before a crash could log it
            self.record("recovered", task=task)

    def _write_manifest(self) -> None:
        _write_text(self.directory / MANIFEST, json.dumps(self.manifest, indent=2, default=str) + "\n")

    def _write_parquet(self, path: Path, table: pa.Table) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        pq.write_table(table, temporary, compression="zstd")
        os.replace(temporary, path)

    def _clean_partial_files(self) -> None:
        for temporary in self.directory.rglob(".*.tmp"):
            temporary.unlink(missing_ok=True)
        log = self.directory / LOG
        if log.is_file() and log.stat().st_size:
            with open(log, "rb+") as handle:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":  # a line cut short by a crash
                    handle.write(b"\n")


def read_manifest(directory: str | os.PathLike) -> dict:
    """The sweep.json of `directory`; a `ScenarioError` naming it if it is damaged (not a JSON object)."""
    path = Path(directory) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        manifest = exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("sessions", []), list):
        what = f"is not valid JSON ({manifest})" if isinstance(manifest, Exception) else "is not a sweep manifest"
        raise ScenarioError([Problem(str(path), "", f"{what}: the directory's record of its sweep is damaged; "
                                     "delete the directory to start the sweep over, or choose another --out")])
    return manifest


def write_sweep_report(directory: str | os.PathLike, svg: bool = False) -> Path:
    """Build the sweep report of `directory` (`analysis.sweep_report.build_sweep_report`) in a
    staged copy that replaces it whole, holding the sweep's lock; return report.html's path.

    A build killed midway leaves the earlier report, figures and tables as they were.
    """
    import analysis.sweep_report

    directory = Path(directory)
    lock = _take_lock(directory)
    try:
        return rebuild_report(directory, lambda staging: analysis.sweep_report.build_sweep_report(staging, svg=svg))
    finally:
        lock.close()


def read_log(directory: str | os.PathLike) -> list[dict]:
    """Return the events of a sweep's log; a line cut short by a crash is skipped."""
    path = Path(directory) / LOG
    events = []
    if not path.is_file():
        return events
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            events.append(json.loads(line))
    return events


def _refuse_foreign(directory: Path, plan: SweepPlan) -> None:
    if not directory.exists():
        return
    if not directory.is_dir():
        raise ScenarioError([Problem(str(directory), "", "--out must be a directory; this is a file")])
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        if any(directory.iterdir()):
            raise ScenarioError([Problem(str(directory), "", "this directory holds other files, not a sweep's "
                                         "results; choose another --out")])
        return
    manifest = read_manifest(directory)
    if manifest.get("sweep_hash") == plan.hash:
        return
    changes = _differences(manifest.get("resolved", {}), resolved_sweep(plan))
    listed = "; ".join(changes[:5]) + ("; ..." if len(changes) > 5 else "")
    raise ScenarioError([Problem(
        str(directory), "",
        f"holds results of a different sweep (hash {str(manifest.get('sweep_hash'))[:12]}, now {plan.hash[:12]}); "
        f"resuming would mix results. What changed: {listed or 'the sweep format'}. Use another --out, or delete "
        "this directory to start over")])


def _differences(old: Any, new: Any, where: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        changes = []
        for key in list(dict.fromkeys([*old, *new])):
            path = f"{where}.{key}" if where else str(key)
            changes += _differences(old.get(key), new.get(key), path)
        return changes
    if old != new:
        return [f"{where}: {_short(old)} -> {_short(new)}"]
    return []


def _short(value: Any) -> str:
    text = "absent" if value is None else json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


class _Lock:
    """An exclusive lock on DIR/.lock, released when closed or when the process dies."""

    def __init__(self, handle):
        self._handle = handle

    def close(self) -> None:
        self._handle.close()


def _take_lock(directory: Path) -> _Lock:
    handle = open(directory / ".lock", "a+", encoding="utf-8")
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; one sweep per directory is then up to the user
        return _Lock(handle)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ScenarioError([Problem(str(directory), "", "another adpath sweep is writing to this directory; "
                                     "wait for it to finish or choose another --out")]) from None
    return _Lock(handle)


def _new_manifest(plan: SweepPlan) -> dict:
    counts = pd.Series([t.analysis for t in plan.tasks]).value_counts().to_dict()
    first = plan.model(plan.tasks[0])
    return {
        "format": 1,
        "sweep_name": plan.name,
        "description": plan.description,
        "sweep_file": str(plan.file),
        "sweep_hash": plan.hash,
        "base_scenario": plan.base.name,
        "base_file": str(plan.base.file),
        "base_hash": scenario_hash(plan.base.document),
        "seed": plan.seed,
        "replicates": plan.replicates,
        "strategies": {s.name: {"label": s.label, "description": s.description,
                                "lines": [first.treatments[t].name for t in s.lines]} for s in first.strategies},
        "treatments": {t.name: {"label": t.label} for t in first.treatments},
        "economics": None if plan.economics is None else {
            "name": plan.economics.name, "currency": plan.economics.currency,
            "price_year": plan.economics.price_year,
            "willingness_to_pay": list(plan.economics.willingness_to_pay),
            "evpi_population": plan.economics.evpi_population},
        "tasks": len(plan.tasks),
        "tasks_by_analysis": {k: int(v) for k, v in counts.items()},
        "variants": [_variant(plan, task) for task in plan.tasks if task.analysis == "point" and not task.replicate],
        "parameters": [vars(column) for column in plan.columns],
        "sweep": plan.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
        "resolved": resolved_sweep(plan),
        "versions": package_versions(),
        "created_at": _now(),
    }


def _variant(plan: SweepPlan, task: SweepTask) -> dict:
    model = plan.model(task)
    return {"variant": task.variant, "grid": dict(task.grid), "patients": model.patients,
            "horizon_months": model.horizon_months}



def _csv(frame: pd.DataFrame) -> str:
    """The frame as CSV text, floats written as `CSV_FLOAT` and missing values empty.

    Floats are formatted here, a column at a time: pandas' `float_format` went through
    its formatter cell by cell and took about 3 seconds for a 1,000-sample sweep.
    """
    columns = {}
    for name, column in frame.items():
        if column.dtype.kind == "f":
            missing = column.isna().to_numpy()
            values = column.to_numpy(dtype=float, na_value=np.nan).tolist()
            column = pd.Series([_MISSING if gap else CSV_FLOAT % value for value, gap in zip(values, missing)],
                               index=frame.index, dtype=object)
        columns[name] = column
    return pd.DataFrame(columns, index=frame.index).to_csv(index=False)


_MISSING = ""


def _write_text(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
