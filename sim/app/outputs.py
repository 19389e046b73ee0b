"""Writing a run directory: Parquet tables, summary.csv and the run.json manifest.

Everything, the report included, is written into a hidden staging directory beside the
target; an earlier run is replaced whole by two renames (set aside, move in), so an
interrupted run leaves either the old run or the new one, never a mix, and a failed run
leaves no new directory behind. What a killed run left is cleared by the next one.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sim import RESULTS_VERSION
from sim.loader import LoadedScenario, Problem, ScenarioError
from sim.model import Model
from sim.provenance import parameter_table
from sim.random_numbers import GENERATOR
from sim.runner import engine_for
from sim.tables import always_present

COMPRESSION = "zstd"
#: The codec of float columns: zstd saved about 5% of the bytes of most of them (times and
#: ages are nearly random in their low bits) for about a sixth of the writing; LZ4 still shrinks
#: a column of zeros to almost nothing, at a fraction of the cost. The tables of a million
#: patients take 371 -> 396 MiB.
FLOAT_COMPRESSION = "lz4"
PACKAGES = ("adpath", "simpy", "numpy", "scipy", "pandas", "pyarrow", "pydantic", "pyyaml")


def check_out_directory(out_dir: Path, manifest: str = "run.json", force: bool = False) -> None:
    """Refuse an `--out` that would overwrite what is not an earlier adpath output of this kind.

    An existing, non-empty directory must hold `manifest` (an earlier run or sweep) unless
    `force` is set; a file in its place is always refused. Raises `ScenarioError`.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ScenarioError([Problem(str(out_dir), "--out", "this is a file, not a directory; give --out a "
                                     "directory path")])
    if force or not out_dir.is_dir() or (out_dir / manifest).is_file() or not any(out_dir.iterdir()):
        return
    raise ScenarioError([Problem(str(out_dir), "--out", f"the directory exists and is not an adpath output "
                                 f"(it has no {manifest}); choose a new --out, or add --force to write into it")])


#: What a report adds to a run or sweep directory (`adpath report`, `--report`).
REPORT_OUTPUTS = ("report.html", "figures", "tables")
_LONGEST_SIBLING_STEM = 150  # bytes of the directory name kept in a staging name (file names stop at 255)


@contextmanager
def staged_directory(out_dir: Path, replace_run: bool = False, copy_without: tuple[str, ...] | None = None,
                     manifest: str = "run.json"):
    """Yield a staging directory whose files are moved into `out_dir` when the block succeeds.

    With `replace_run`, an earlier run in `out_dir` (it has `manifest`, a run.json) is replaced whole, so
    that no old report or figure is left beside the new tables; otherwise the staged files
    are moved in one by one. With `copy_without` (names of entries), the staging directory
    starts as a copy of `out_dir` (hard links where the file system allows) less those
    entries, and replaces `out_dir` whole: how a report is rebuilt without ever leaving a
    mix of old and new files. The staging directory has the same name as `out_dir`, so what
    is written in it (a report naming its directory) reads as written in place. Staging
    directories left by killed runs are removed first.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    restore_abandoned(out_dir)
    outer = _sibling(out_dir, "partial")
    shutil.rmtree(outer, ignore_errors=True)
    outer.mkdir()
    staging = outer / out_dir.name
    try:
        if copy_without is not None and out_dir.is_dir():
            _link_tree(out_dir, staging, leave_out=set(copy_without))
        else:
            staging.mkdir()
        yield staging
        whole = copy_without is not None or (replace_run and (out_dir / manifest).is_file())
        if whole and out_dir.exists():
            _swap(staging, out_dir)
        else:
            _publish(staging, out_dir)
    finally:
        shutil.rmtree(outer, ignore_errors=True)


def rebuild_report(directory: Path, build) -> Path:
    """(Re)build the report of an existing run or sweep `directory` with `build(staging)` in a
    staged copy of it that replaces it whole; return the path of its report.html.

    A build that fails or is killed leaves the directory as it was, old report included.
    """
    with staged_directory(directory, copy_without=REPORT_OUTPUTS) as staging:
        build(staging)
    return Path(directory) / "report.html"


def restore_abandoned(out_dir: Path) -> None:
    """Clear what killed runs left beside `out_dir`: staging is removed, and an earlier run
    set aside by a swap that never finished is put back if `out_dir` is missing."""
    out_dir = Path(out_dir)
    if not out_dir.parent.is_dir():
        return
    prefix = _sibling(out_dir, "").name.rpartition(".")[0] + "."
    for leftover in sorted(out_dir.parent.iterdir()):
        if not leftover.name.startswith(prefix):
            continue
        kind, _, pid = leftover.name.removeprefix(prefix).partition("-")
        if kind not in ("partial", "old") or not pid.isdigit() or _alive(int(pid)):
            continue
        if kind == "old" and not out_dir.exists():
            os.rename(leftover, out_dir)
        else:
            shutil.rmtree(leftover, ignore_errors=True)


def _sibling(out_dir: Path, kind: str) -> Path:
    """`.<name>.<kind>-<pid>` beside `out_dir`; a long name is cut and tagged with its hash,
    so that the sibling's name stays within the file system's 255 bytes."""
    name = out_dir.name
    if len(name.encode()) > _LONGEST_SIBLING_STEM:
        cut = name.encode()[:_LONGEST_SIBLING_STEM - 13].decode("utf-8", "ignore")
        name = f"{cut}~{hashlib.sha256(name.encode()).hexdigest()[:12]}"
    return out_dir.parent / f".{name}.{kind}-{os.getpid()}"


def _link_tree(source: Path, target: Path, leave_out: set[str]) -> None:
    """Recreate `source` at `target` with hard links to its files (copies where links fail),
    leaving out the top-level entries named in `leave_out`."""
    target.mkdir()
    for path in sorted(source.iterdir()):
        if path.name in leave_out:
            continue
        destination = target / path.name
        if path.is_symlink():
            os.symlink(os.readlink(path), destination)
        elif path.is_dir():
            _link_tree(path, destination, leave_out=set())
        elif path.is_file():
            try:
                os.link(path, destination)
            except OSError:  # another file system, no hard links (FAT, some network shares)
                shutil.copy2(path, destination)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    return True


def _swap(staging: Path, out_dir: Path) -> None:
    # Two renames: a kill between them leaves the old run aside, intact; the next run puts it back.
    old = _sibling(out_dir, "old")
    shutil.rmtree(old, ignore_errors=True)
    os.rename(out_dir, old)
    os.rename(staging, out_dir)
    shutil.rmtree(old, ignore_errors=True)


def _publish(staging: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        os.rename(staging, out_dir)
        return
    for path in sorted(staging.iterdir()):
        target = out_dir / path.name
        if path.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        os.replace(path, target)


#: The simulated tables nothing after the simulation changes (economics adds columns to the patients).
FINISHED_TABLES = ("episodes", "adverse_events", "bursts")
_WRITERS = 2  # threads writing tables (more than the machine's cores only compete with the block)


@contextmanager
def writing_finished_tables(directory: Path, frames: dict[str, pd.DataFrame]):
    """Write each table of `frames` (name -> frame, e.g. the `FINISHED_TABLES` of a run) into
    `directory` as `<name>.parquet` in a background thread while the block runs (the summary,
    the economics); wait for them, and raise their error, on leaving it.

    The frames are taken out of `frames`: a table nothing else holds leaves memory as soon as
    it is written. Encoding Parquet releases the GIL, so with a second core the writing costs
    little wall time; two writers (the first table, the largest, in one; the others in turn,
    in their order, in the other) finish the tables in about half the time of one, once the
    block is shorter than the writing.
    Each writer turns its table into Arrow one row group at a time (see `write_parquet`); the
    row groups are cut here, before the block, as frames of their own (views, no copy), so that
    a thread never reads a pandas object the block is reading too (pandas does not promise that
    is safe). An error or Ctrl-C in the block stops every writer at its next row group.
    """
    stop = threading.Event()
    groups = {name: _row_groups(frames.pop(name)) for name in list(frames)}
    with ThreadPoolExecutor(max_workers=_WRITERS, thread_name_prefix="adpath-writer") as writer:
        written = [writer.submit(_write, parts, directory / f"{name}.parquet", stop) for name, parts in groups.items()]
        del groups
        try:
            yield
        except BaseException:
            stop.set()
            for future in written:  # no more tables; the one being written ends at its row group
                future.cancel()
            raise
        for future in written:
            future.result()


#: Rows per Parquet row group: pyarrow's own default, so the files are laid out as when a
#: whole table was written at once.
ROW_GROUP_ROWS = 1024 * 1024

#: Columns whose minimum and maximum are written per row group: the keys the tables are
#: sorted by, with which a reader skips row groups (one replicate, one strategy). In tables
#: in that order every other column spans nearly its whole range in every row group, so its
#: statistics would skip nothing; they cost about a sixth of the writing.
STATISTICS_COLUMNS = ("replicate", "strategy", "patient")

#: Rows the Parquet encoder takes at a time (pyarrow's default is 1,024): fewer, larger steps
#: cost about 5% less; pages still end at pyarrow's 1 MiB.
WRITE_BATCH_ROWS = 64 * 1024


class WritingStopped(Exception):
    """A background write given up because the run failed or was interrupted."""


def write_parquet(path: Path, frame: pd.DataFrame) -> None:
    """Write `frame` to `path` as Parquet (zstd; float columns LZ4): the columns, dtypes and
    pandas metadata that `DataFrame.to_parquet(index=False)` writes, dictionary encoding only
    on categorical columns, statistics (minimum, maximum) only of the sort keys
    (`STATISTICS_COLUMNS`). A run table
    (`path` named after one of `sim.tables.TABLE_COLUMNS`) declares its columns that always
    have a value required (`sim.tables.always_present`); a missing value in one raises
    `ValueError`.

    The frame is turned into Arrow one row group (`ROW_GROUP_ROWS`) at a time, by the thread
    that writes it: converting every table before the summary started cost the run about 0.5 s
    at a million patients, and only what a row group needs beside the frame is held at once.
    """
    _write(_row_groups(frame), path)


def _row_groups(frame: pd.DataFrame) -> list[pd.DataFrame]:
    # Row slices are views of the frame's columns (an empty frame: one empty group, its schema).
    return [frame.iloc[start:start + ROW_GROUP_ROWS] for start in range(0, max(len(frame), 1), ROW_GROUP_ROWS)]


def _write(row_groups: list[pd.DataFrame], path: Path, stop: threading.Event | None = None) -> None:
    # Dictionary-encoding a column of a million distinct floats or patient numbers only to
    # give it up page after page cost about a third of the writing time; categorical
    # columns are dictionaries already (benchmarks/README.md, end to end).
    schema = _schema(row_groups[0], always_present(Path(path).stem))
    with _parquet_file(path, schema) as file:
        for number, group in enumerate(row_groups):
            if stop is not None and stop.is_set():
                raise WritingStopped(path)
            row_groups[number] = None  # the group's frame is not needed once converted
            file.write_table(pa.Table.from_pandas(group, schema=schema, preserve_index=False))


def _schema(frame: pd.DataFrame, required: tuple[str, ...]) -> pa.Schema:
    # What `DataFrame.to_parquet(index=False)` converts to, pandas metadata included, with the
    # `required` columns not null: a column that cannot miss a value needs no definition
    # levels, which were about an eighth of the writing. (An empty column without a dtype, or
    # a categorical without categories, has Arrow's null type, which is always nullable.)
    schema = pa.Table.from_pandas(frame.iloc[:0], preserve_index=False).schema
    fields = [field.with_nullable(field.name not in required or _of_nulls(field.type)) for field in schema]
    return pa.schema(fields, metadata=schema.metadata)


def _of_nulls(kind: pa.DataType) -> bool:
    return pa.types.is_null(kind) or (pa.types.is_dictionary(kind) and pa.types.is_null(kind.value_type))


def _parquet_file(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    categorical = [field.name for field in schema if pa.types.is_dictionary(field.type)]
    keys = [name for name in STATISTICS_COLUMNS if name in schema.names]
    codecs = {field.name: FLOAT_COMPRESSION if pa.types.is_floating(field.type) else COMPRESSION for field in schema}
    return pq.ParquetWriter(path, schema, compression=codecs or COMPRESSION, use_dictionary=categorical or False,
                            write_statistics=keys or False, write_batch_size=WRITE_BATCH_ROWS)


def write_json(path: Path, content: dict) -> None:
    """Write `content` as indented JSON."""
    path.write_text(json.dumps(content, indent=2, default=str) + "\n", encoding="utf-8")


def scenario_hash(document: dict) -> str:
    """Return the SHA-256 of the resolved scenario (canonical JSON)."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def build_manifest(loaded: LoadedScenario, model: Model, wall_time_seconds: float, started_at: str,
                   engine: str | None = None) -> dict:
    """Return the run.json manifest: what was run, with which numbers, by which versions
    (`engine`: the run option, see `sim.runner.engine_for`)."""
    engine = engine_for(model, engine)
    return {
        "adpath_version": package_version("adpath"),
        "results_version": RESULTS_VERSION,
        "scenario_name": loaded.name,
        "scenario_file": str(loaded.file),
        "description": model.description,
        "scenario_hash": scenario_hash(loaded.document),
        "scenario": loaded.document,
        "seed": model.seed,
        "engine": engine,
        "random_numbers": GENERATOR,
        "patients": model.patients,
        "replicates": model.replicates,
        "horizon_months": model.horizon_months,
        "strategies": {
            s.name: {"label": s.label, "description": s.description,
                     "lines": [model.treatments[t].name for t in s.lines]}
            for s in model.strategies
        },
        "treatments": {t.name: {"label": t.label} for t in model.treatments},
        "parameters": parameter_table(loaded.document),
        "versions": package_versions(),
        "wall_time_seconds": round(wall_time_seconds, 3),
        "started_at": started_at,
    }


def package_versions() -> dict[str, str]:
    """Python's version and that of each package in `PACKAGES`, for a run's manifest."""
    return {"python": platform.python_version(), **{p: package_version(p) for p in PACKAGES}}


def package_version(package: str) -> str:
    """The installed version of `package`, or "unknown"."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
