"""What a worker does with one sweep task: simulate one replicate of a compiled model and
summarise it.

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
from sim.runner import RunTables, simulate


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
    from analysis.summary import summarize_run

    start = time.perf_counter()
    tables = _numbered(simulate(model, workers=1, progress=False), replicate)
    summary = summarize_run(tables.episodes, tables.patients)
    if economics is not None:
        summary = _with_costs(summary, tables, economics)
    return TaskResult(task_id, summary_table(task_id, summary), tables if keep_tables else None,
                      time.perf_counter() - start)


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
    frames = {}
    for item in dataclasses.fields(tables):
        frame = getattr(tables, item.name)
        if "replicate" in frame.columns:
            frame = frame.assign(replicate=pd.Series(replicate, index=frame.index, dtype=frame["replicate"].dtype))
        frames[item.name] = frame
    return RunTables(**frames)
