"""Writing a run directory: Parquet tables, summary.csv and the run.json manifest.

Everything is written into a hidden staging directory beside the target and moved into
place file by file with `os.replace`, so an interrupted run leaves either the old file
or the new one, never half of one, and a failed run leaves no new directory behind.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from sim import RESULTS_VERSION
from sim.loader import LoadedScenario
from sim.model import Model
from sim.provenance import parameter_table
from sim.runner import RunTables, engine_for

PACKAGES = ("adpath", "simpy", "numpy", "scipy", "pandas", "pyarrow", "pydantic", "pyyaml")


@contextmanager
def staged_directory(out_dir: Path):
    """Yield a staging directory whose files are moved into `out_dir` when the block succeeds."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        _publish(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish(staging: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        os.rename(staging, out_dir)
        return
    for path in sorted(staging.iterdir()):
        target = out_dir / path.name
        if path.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        os.replace(path, target)


def write_tables(directory: Path, tables: RunTables, summary: pd.DataFrame) -> None:
    """Write the run's tables into `directory` (Parquet, and summary.csv)."""
    tables.episodes.to_parquet(directory / "episodes.parquet", index=False, compression="zstd")
    tables.patients.to_parquet(directory / "patients.parquet", index=False, compression="zstd")
    tables.adverse_events.to_parquet(directory / "adverse_events.parquet", index=False, compression="zstd")
    tables.bursts.to_parquet(directory / "bursts.parquet", index=False, compression="zstd")
    summary.to_csv(directory / "summary.csv", index=False)


def write_json(path: Path, content: dict) -> None:
    """Write `content` as indented JSON."""
    path.write_text(json.dumps(content, indent=2, default=str) + "\n", encoding="utf-8")


def scenario_hash(document: dict) -> str:
    """Return the SHA-256 of the resolved scenario (canonical JSON)."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def build_manifest(loaded: LoadedScenario, model: Model, wall_time_seconds: float, started_at: str) -> dict:
    """Return the run.json manifest: what was run, with which numbers, by which versions."""
    return {
        "adpath_version": _version("adpath"),
        "results_version": RESULTS_VERSION,
        "scenario_name": loaded.name,
        "scenario_file": str(loaded.file),
        "description": model.description,
        "scenario_hash": scenario_hash(loaded.document),
        "scenario": loaded.document,
        "seed": model.seed,
        "engine": engine_for(model),
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
        "versions": {"python": platform.python_version(), **{p: _version(p) for p in PACKAGES}},
        "wall_time_seconds": round(wall_time_seconds, 3),
        "started_at": started_at,
    }


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
