"""Running a compiled model: replicates, chunks of patients, worker processes, progress.

A run is a list of tasks (replicate, first patient, count). Each task draws its
patients' numbers from their own place in the random stream, so the tables are the
same whatever the chunk size or the number of workers; each chunk's rows are copied
into their place in the run's tables as it comes (`sim.engine.records.RunColumns`).

Two engines run a chunk: `compiled` (Numba, a per-patient event loop over the rules of
`sim.rules`, counter-based random numbers) and `des` (SimPy, the same rules and the same
numbers, one process per patient and strategy when resources are limited). Without
limited resources they give identical tables for the same seed; only the DES simulates
limited resources. `auto` picks `compiled` unless resources are limited (then `des`).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import pandas as pd
from tqdm import tqdm

from sim.engine import compiled, des
from sim.engine.records import (
    RunColumns,
    adverse_events_columns,
    bursts_columns,
    episodes_columns,
    patients_columns,
    table_frame,
)
from sim.loader import Problem, ScenarioError
from sim.memory import hand_back_freed_memory, small_pages
from sim.model import Model

ENGINES = ("auto", "compiled", "des")


@dataclass(frozen=True)
class RunTables:
    """The tables of a run (see `sim.tables` for their columns)."""

    episodes: pd.DataFrame
    patients: pd.DataFrame
    adverse_events: pd.DataFrame
    bursts: pd.DataFrame


@dataclass(frozen=True)
class Task:
    """A chunk of patients of one replicate."""

    replicate: int
    first_patient: int
    count: int


def engine_for(model: Model, engine: str | None = None) -> str:
    """Return the engine that runs `model`: `engine` (the run option), else the scenario's deprecated
    `settings.engine` (default auto);
    `auto` is `compiled`, or `des` when resources are limited.

    Raises `ScenarioError` for an engine that cannot simulate the scenario.
    """
    engine = engine or model.engine
    if engine not in ENGINES:
        raise ScenarioError([Problem(model.name, "settings.engine", f"unknown engine '{engine}'; one of {', '.join(ENGINES)}")])
    if engine == "auto":
        return "des" if model.limited_resources else "compiled"
    if engine == "compiled":
        compiled.check_supported(model)
    if engine == "des":
        des.check_supported(model)
    return engine


def tasks_for(model: Model, chunk_size: int | None = None, engine: str = "des") -> list[Task]:
    """Return the chunks a run is made of, in replicate then patient order.

    Without `chunk_size` (the run option), the scenario's deprecated `settings.chunk_size`, else
    the engine's own `CHUNK_PATIENTS` (the tables do not depend on it).
    """
    default = compiled.CHUNK_PATIENTS if engine == "compiled" else des.CHUNK_PATIENTS
    size = chunk_size or model.chunk_size or default
    if model.limited_resources:
        size = model.patients  # patients compete for the resources: one world per replicate
    return [
        Task(replicate, first, min(size, model.patients - first))
        for replicate in range(model.replicates)
        for first in range(0, model.patients, size)
    ]


TABLES = ("episodes", "patients", "adverse_events", "bursts")
_TRIM_FROM = 10_000  # patients in a chunk (or a run) worth handing memory back after (a trim costs about 1 ms)


def simulate_task(model: Model, task: Task, engine: str = "des") -> dict[str, dict]:
    """Simulate one chunk of patients under every strategy of the model with `engine`;
    return each table's columns (see `sim.engine.records`), sorted within the chunk."""
    with small_pages():
        if engine == "compiled":  # the kernel's rows copied once, into columns of the chunk's exact size
            blocks, counts, covariates = compiled.simulate_into(model, task.replicate, task.first_patient,
                                                                task.count, compiled.Blocks())
            run = RunColumns(model, replicates=1, patients=task.count, exact=True, first_replicate=task.replicate)
            run.add_compiled(0, task.first_patient, task.count, blocks, counts, covariates)
            del blocks
            tables = run.finished()
        else:
            records, covariates = des.simulate_chunk(model, task.replicate, task.first_patient, task.count)
            tables = chunk_columns(records, covariates, model, task.replicate, task.first_patient)
            del records
        if task.count >= _TRIM_FROM:
            hand_back_freed_memory()
    return tables


def chunk_columns(records, covariates: dict, model: Model, replicate: int, first_patient: int) -> dict[str, dict]:
    """Each table's columns (see `sim.engine.records`) of one simulated chunk of patients,
    numbered from `first_patient` in `replicate`; times in months."""
    return {
        "episodes": episodes_columns(records, model, replicate),
        "patients": patients_columns(records, model, replicate, first_patient, covariates),
        "adverse_events": adverse_events_columns(records, model, replicate),
        "bursts": bursts_columns(records, model, replicate),
    }


def simulate(model: Model, workers: int = 1, chunk_size: int | None = None, progress: bool = True,
             engine: str | None = None) -> RunTables:
    """Simulate the whole model; return the run's tables.

    `workers` > 1 spreads the chunks over that many processes; the result is identical.
    `engine` overrides the scenario's `settings.engine` (see `engine_for`).
    A progress bar is shown on stderr when the run lasts longer than a second. NumPy's
    arrays get ordinary pages during the run (see `sim.memory.small_pages`).
    Each chunk's rows are copied once, into their place in the run's tables
    (`sim.engine.records.RunColumns`): straight from the compiled kernel's blocks in this
    process, from the chunks' columns when they come from workers or the DES.
    """
    engine = engine_for(model, engine)
    tasks = tasks_for(model, chunk_size, engine)
    with small_pages():
        bar = tqdm(total=model.patients * model.replicates, unit="patient", desc=model.name,
                   disable=not progress, delay=1.0, leave=False, dynamic_ncols=True)
        run = RunColumns(model)
        with bar:
            if engine == "compiled" and (workers <= 1 or len(tasks) == 1):
                kept, blocks = compiled.Blocks(), None
                for task in tasks:
                    blocks, counts, covariates = compiled.simulate_into(
                        model, task.replicate, task.first_patient, task.count, kept)
                    run.add_compiled(task.replicate, task.first_patient, task.count, blocks, counts, covariates)
                    bar.update(task.count)
                del kept, blocks
            else:
                for task, tables in zip(tasks, _results(model, tasks, workers, engine)):
                    run.add_columns(task.replicate, task.count, tables)
                    bar.update(task.count)
        return _tables(run, model)


def _tables(run: RunColumns, model: Model) -> RunTables:
    """The run's DataFrames from its finished columns, a table at a time."""
    tables = []
    for name in TABLES:
        tables.append(table_frame(run.finished_table(name)))
    if model.patients * model.replicates >= _TRIM_FROM:
        hand_back_freed_memory(keep_mib=0)  # no chunk comes after: keep nothing
    return RunTables(*tables)



def _results(model: Model, tasks: list[Task], workers: int, engine: str):
    if workers <= 1 or len(tasks) == 1:
        for task in tasks:
            yield simulate_task(model, task, engine)
        return
    with ProcessPoolExecutor(max_workers=min(workers, os.cpu_count() or 1, len(tasks))) as pool:
        yield from pool.map(simulate_task, [model] * len(tasks), tasks, [engine] * len(tasks))
