"""Reading a run directory: the tables, the manifest and the summary.

A run directory holds ``episodes.parquet``, ``patients.parquet``, optionally
``adverse_events.parquet``, ``run.json`` (the manifest) and ``summary.csv``. Runs written
by older versions may lack the optional files or some manifest keys; they load with
``None`` / an empty manifest in those places so that analyses and the report can say
"not recorded" instead of failing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

REQUIRED_TABLES = ("episodes.parquet", "patients.parquet")


@dataclass(frozen=True)
class Run:
    """The tables and manifest of one run directory."""

    run_dir: Path
    episodes: pd.DataFrame
    patients: pd.DataFrame
    adverse_events: pd.DataFrame | None = None
    manifest: dict = field(default_factory=dict)
    summary: pd.DataFrame | None = None
    bursts: pd.DataFrame | None = None


def load_run(run_dir: str | os.PathLike) -> Run:
    """Load a run directory.

    Parameters
    ----------
    run_dir : path-like
        Directory written by ``adpath run`` (or a directory holding the same files).

    Returns
    -------
    Run
        ``episodes`` and ``patients`` (required); ``adverse_events`` and ``summary``
        (None when the file is absent); ``manifest`` (the parsed ``run.json``, empty
        when absent).

    Raises
    ------
    FileNotFoundError
        When the directory or one of the required tables is missing.
    """
    run_dir = Path(run_dir)
    missing = [name for name in REQUIRED_TABLES if not (run_dir / name).exists()]
    if not run_dir.is_dir() or missing:
        what = "the directory" if not run_dir.is_dir() else ", ".join(missing)
        raise FileNotFoundError(
            f"{run_dir} is not a complete run directory: {what} missing "
            f"(expected {', '.join(REQUIRED_TABLES)}; write one with `adpath run`)"
        )
    return Run(
        run_dir=run_dir,
        episodes=pd.read_parquet(run_dir / "episodes.parquet"),
        patients=pd.read_parquet(run_dir / "patients.parquet"),
        adverse_events=_optional_parquet(run_dir / "adverse_events.parquet"),
        manifest=_manifest(run_dir / "run.json"),
        summary=pd.read_csv(run_dir / "summary.csv")
        if (run_dir / "summary.csv").exists()
        else None,
        bursts=_optional_parquet(run_dir / "bursts.parquet"),
    )


def run_in_memory(run_dir: str | os.PathLike, episodes: pd.DataFrame, patients: pd.DataFrame,
                  adverse_events: pd.DataFrame | None = None, bursts: pd.DataFrame | None = None,
                  summary: pd.DataFrame | None = None) -> Run:
    """A `Run` of tables the caller holds in memory (``adpath run --report``): as `load_run`
    would give once they are written to `run_dir`, without reading them back.

    Only the manifest is read, from ``run_dir/run.json`` (empty when absent), so that it
    holds exactly what a reader of the directory sees (JSON types, not Python objects).
    """
    run_dir = Path(run_dir)
    return Run(run_dir=run_dir, episodes=episodes, patients=patients, adverse_events=adverse_events,
               manifest=_manifest(run_dir / "run.json"), summary=summary, bursts=bursts)


def _optional_parquet(path: Path) -> pd.DataFrame | None:
    return pd.read_parquet(path) if path.exists() else None


def _manifest(path: Path) -> dict:
    if not path.exists():
        return {}
    manifest = json.loads(path.read_text(encoding="utf-8"))
    return manifest if isinstance(manifest, dict) else {}


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write a file so that readers never see it half-written (temp file + rename).

    Parameters
    ----------
    path : path-like
        Target file.
    data : str or bytes
        Content; text is written as UTF-8.

    Returns
    -------
    pathlib.Path
        The target path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
