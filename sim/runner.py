"""Running a compiled model: replicates, chunks of patients, worker processes, progress.

A run is a list of tasks (replicate, first patient, count). Each task draws its
patients' numbers from their own place in the random stream, so the tables are the
same whatever the chunk size or the number of workers; they are concatenated in task
order and sorted.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import pandas as pd
from tqdm import tqdm

from sim.draws import draw_chunk, layout_for
from sim.engine import des
from sim.engine.records import adverse_events_frame, bursts_frame, episodes_frame, patients_frame
from sim.model import Model


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


def tasks_for(model: Model, chunk_size: int | None = None) -> list[Task]:
    """Return the chunks a run is made of, in replicate then patient order."""
    size = chunk_size or model.chunk_size
    if model.limited_resources:
        size = model.patients  # patients compete for the resources: one world per replicate
    return [
        Task(replicate, first, min(size, model.patients - first))
        for replicate in range(model.replicates)
        for first in range(0, model.patients, size)
    ]


def simulate_task(model: Model, task: Task) -> RunTables:
    """Simulate one chunk of patients under every strategy of the model."""
    layout = layout_for(model)
    chunk = draw_chunk(model, layout, task.replicate, task.first_patient, task.count)
    records = des.simulate_chunk(model, layout, chunk, task.replicate, task.count)
    return RunTables(
        episodes=episodes_frame(records, model, task.replicate),
        patients=patients_frame(records, model, task.replicate, task.first_patient, chunk.covariates),
        adverse_events=adverse_events_frame(records, model, task.replicate),
        bursts=bursts_frame(records, model, task.replicate),
    )


def simulate(model: Model, workers: int = 1, chunk_size: int | None = None, progress: bool = True) -> RunTables:
    """Simulate the whole model; return the run's tables.

    `workers` > 1 spreads the chunks over that many processes; the result is identical.
    A progress bar is shown on stderr when the run lasts longer than a second.
    """
    tasks = tasks_for(model, chunk_size)
    bar = tqdm(total=model.patients * model.replicates, unit="patient", desc=model.name,
               disable=not progress, delay=1.0, leave=False, dynamic_ncols=True)
    results = []
    with bar:
        for task, tables in zip(tasks, _results(model, tasks, workers)):
            results.append(tables)
            bar.update(task.count)
    return RunTables(
        episodes=_concat([r.episodes for r in results], ["replicate", "strategy", "patient", "episode"]),
        patients=_concat([r.patients for r in results], ["replicate", "strategy", "patient"]),
        adverse_events=_concat([r.adverse_events for r in results], ["replicate", "strategy", "patient", "episode", "time"]),
        bursts=_concat([r.bursts for r in results], ["replicate", "strategy", "patient", "time"]),
    )


def _results(model: Model, tasks: list[Task], workers: int):
    if workers <= 1 or len(tasks) == 1:
        for task in tasks:
            yield simulate_task(model, task)
        return
    with ProcessPoolExecutor(max_workers=min(workers, os.cpu_count() or 1, len(tasks))) as pool:
        yield from pool.map(simulate_task, [model] * len(tasks), tasks)


def _concat(frames: list[pd.DataFrame], keys: list[str]) -> pd.DataFrame:
    frame = pd.concat(frames, ignore_index=True)
    return frame.sort_values(keys, kind="stable", ignore_index=True)
