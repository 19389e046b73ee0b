"""What a worker does with one sweep task: simulate one replicate of a compiled model and
summarise it; or with a batch of a PSA's samples: simulate them in one call of the compiled
engine (`sim.engine.compiled.simulate_samples`) and summarise each as its own task.

This module is what a local worker process or a Dask worker imports; it receives the
compiled `Model` (never a file path), so workers need the adpath package but not the
scenario files. The simulation itself is `sim.runner.simulate`, as for `adpath run`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from sim.model import Model
from sim.engine import compiled
from sim.engine.records import join_columns
from sim.memory import small_pages
from sim.runner import TABLES, RunTables, chunk_columns, engine_for, simulate, tasks_for


#: A task's summary as the sweep stores it (`summary/<task>.parquet`): summary.csv's
#: columns with the task's id in front.
SUMMARY_SCHEMA = pa.schema([
    ("task", pa.string()), ("strategy", pa.string()), ("treatment", pa.string()), ("metric", pa.string()),
    ("value", pa.float64()), ("ci_low", pa.float64()), ("ci_high", pa.float64()),
])


@dataclass(frozen=True)
class TaskResult:
    """A finished task: its summary (long form, as summary.csv, with the task's id; an Arrow
    table of `SUMMARY_SCHEMA`), and its tables if kept.

    `seconds` is the wall time the worker spent on it.
    """

    task: str
    summary: pa.Table
    tables: RunTables | None
    seconds: float


def run_task(task_id: str, model: Model, replicate: int, keep_tables: bool = False,
             economics=None) -> TaskResult:
    """Simulate `model` (one replicate, seeded for replicate `replicate`) and summarise it.

    The tables' `replicate` column says `replicate`; the summary comes from
    `analysis.summary.summarize_run`, as for `adpath run`. With an economic setting
    (`sim.economics.Economics`) the summary also holds each strategy's mean costs and
    QALYs (`analysis.economics.economics_summary`, as for `adpath run --economics`).
    """
    start = time.perf_counter()
    tables = simulate(model, workers=1, progress=False)
    return _result(task_id, tables, replicate, keep_tables, economics, time.perf_counter() - start)


def batches_in_one_call(model: Model) -> bool:
    """Whether `run_batch` can simulate `model` with other samples: on the compiled engine, its
    patients one chunk."""
    return engine_for(model) == "compiled" and len(tasks_for(model, engine="compiled")) == 1


def run_batch(task_ids: list[str], models: list[Model], replicates: list[int], keep_tables: bool = False,
              economics: list | None = None) -> list[TaskResult]:
    """Simulate PSA samples (`models`: one task each, the same structure and patients, each
    `batches_in_one_call`) in one call of the compiled engine and summarise each as `run_task`
    would: the same results, whatever the batch. `economics` holds each task's economic
    setting (or is None); a task's `seconds` is its share of the call plus its own summary."""
    start = time.perf_counter()
    with small_pages():
        samples = compiled.simulate_samples(list(models), 0, 0, models[0].patients)
    shared = (time.perf_counter() - start) / len(models)
    results = []
    for k, (task_id, model, replicate) in enumerate(zip(task_ids, models, replicates, strict=True)):
        own = time.perf_counter()
        records, covariates = samples[k]
        samples[k] = None  # each sample's columns go once its tables are made
        tables = _run_tables(model, records, covariates)
        results.append(_result(task_id, tables, replicate, keep_tables, None if economics is None else economics[k],
                               shared + time.perf_counter() - own))
    return results


def _run_tables(model: Model, records, covariates: dict) -> RunTables:
    """The tables of a run of `model` (one replicate, one chunk) from its columns, as `sim.runner.simulate` makes them."""
    columns = chunk_columns(records, covariates, model, 0, 0)
    return RunTables(*(join_columns([columns[name]], len(model.strategies)) for name in TABLES))


def _result(task_id: str, tables: RunTables, replicate: int, keep_tables: bool, economics,
            seconds: float) -> TaskResult:
    from analysis.summary import summarize_run

    start = time.perf_counter()
    tables = _numbered(tables, replicate)
    summary = summarize_run(tables.episodes, tables.patients)
    if economics is not None:
        summary = _with_costs(summary, tables, economics)
    return TaskResult(task_id, summary_table(task_id, summary), tables if keep_tables else None,
                      seconds + time.perf_counter() - start)


def summary_table(task_id: str, summary: pd.DataFrame) -> pa.Table:
    """`summary` (long form, as summary.csv) with the task's id in front, as stored."""
    # Built here, in the worker, rather than by the process that writes it: that process
    # serves every worker, and the conversion was a third of its work per task.
    return pa.Table.from_pandas(summary.assign(task=task_id)[SUMMARY_SCHEMA.names], schema=SUMMARY_SCHEMA,
                                preserve_index=False)


def _with_costs(summary: pd.DataFrame, tables: RunTables, economics) -> pd.DataFrame:
    from analysis.costs import patient_costs
    from analysis.economics import economics_summary, strategy_costs

    costs = patient_costs(tables.episodes, tables.patients, economics, tables.adverse_events, tables.bursts)
    return pd.concat([summary, economics_summary(strategy_costs(costs, economics.currency))], ignore_index=True)


def _numbered(tables: RunTables, replicate: int) -> RunTables:
    if replicate == 0:  # a task's model runs one replicate, numbered 0 already
        return tables
    frames = {}
    for item in dataclasses.fields(tables):
        frame = getattr(tables, item.name)
        if "replicate" in frame.columns:
            frame = frame.assign(replicate=pd.Series(replicate, index=frame.index, dtype=frame["replicate"].dtype))
        frames[item.name] = frame
    return RunTables(**frames)
