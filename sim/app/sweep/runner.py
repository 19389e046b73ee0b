"""Running a sweep: tasks go to an executor, results stream to the store as they finish.

Only the tasks not yet finished in the output directory run, so a re-run after Ctrl-C
or a crash resumes where it stopped. At most `executor.slots` tasks are in flight, and
each result is written and dropped as soon as it arrives, so memory stays bounded
whatever the number of tasks. A task that fails is reported with its parameters and
retried once; if it fails again it is listed at the end and the sweep goes on.
"""

from __future__ import annotations

import functools
import math
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from sim.app.sweep.plan import SweepPlan, SweepTask
from sim.app.sweep.store import SweepStore
from sim.app.sweep.worker import run_task

ATTEMPTS = 2
SHOWN_FAILURES = 10  # failures reported as they happen; all are listed at the end


@dataclass(frozen=True)
class SweepOutcome:
    """How a sweep session ended: `complete`, `incomplete` (some tasks failed) or `interrupted`.

    `ran` counts the tasks finished in this session, `finished` all finished tasks;
    `failed` lists the tasks that failed twice (id, what they change, the error).
    """

    directory: Path
    status: str
    tasks: int
    finished: int
    ran: int
    seconds: float
    executor: str
    failed: list[dict] = field(default_factory=list)


def run_sweep(plan: SweepPlan, out: str | Path, executor, keep_episodes: bool = False,
              progress: bool = True, work=None) -> SweepOutcome:
    """Run the unfinished tasks of `plan` on `executor`, writing results under `out`.

    `keep_episodes` also keeps each task's episodes, patients and adverse-events tables.
    `work(task_id, model, replicate, keep_tables)` is what runs one task (default:
    `sim.app.sweep.worker.run_task`, which simulates and summarises it). Ctrl-C ends the
    session with status `interrupted`; what finished is kept.
    """
    work = work or run_task
    store = SweepStore.open(out, plan, keep_episodes)
    started = time.perf_counter()
    session = _Session(plan, store, executor, keep_episodes, work)
    status = "interrupted"
    try:
        done = store.finished()
        pending = deque(task for task in plan.tasks if task.id not in done)
        with tqdm(total=len(plan.tasks), initial=len(done), unit="task", desc=plan.name, file=sys.stderr,
                  disable=not progress, dynamic_ncols=True, smoothing=0.05) as bar:
            session.drive(pending, bar)
        status = "incomplete" if session.failures else "complete"
    except KeyboardInterrupt:
        status = "interrupted"
    finally:
        store.close(status, session.failures, executor.description, time.perf_counter() - started)
    return SweepOutcome(Path(out), status, len(plan.tasks), len(store.finished()), session.ran,
                        time.perf_counter() - started, executor.description, session.failures)


class _Session:
    """The bookkeeping of one run of a sweep: tasks in flight, attempts, failures."""

    def __init__(self, plan: SweepPlan, store: SweepStore, executor, keep_tables: bool, work):
        self.plan, self.store, self.executor = plan, store, executor
        self.keep_tables, self.work = keep_tables, work
        self.in_flight: dict = {}
        self.failures: list[dict] = []
        self.ran = 0
        self.reported = 0

    def drive(self, pending: deque, bar: tqdm) -> None:
        try:
            while pending or self.in_flight:
                while pending and len(self.in_flight) < self.executor.slots:
                    self._submit(pending.popleft(), 1)
                for future in self.executor.wait_any(list(self.in_flight)):
                    task, attempt = self.in_flight.pop(future)
                    self._collect(task, attempt, future, bar)
        except KeyboardInterrupt:
            self.executor.cancel(list(self.in_flight))
            raise

    def _submit(self, task: SweepTask, attempt: int) -> None:
        model = self.plan.model(task)
        work = self.work
        if self.plan.economics is not None:
            work = functools.partial(work, economics=self.plan.economics_for(task))
        future = self.executor.submit(work, task.id, model, task.replicate, self.keep_tables)
        self.in_flight[future] = (task, attempt)

    def _collect(self, task: SweepTask, attempt: int, future, bar: tqdm) -> None:
        try:
            result = future.result()
        except Exception as exc:  # a task's failure is reported and retried, not fatal
            self._failed(task, attempt, exc, bar)
            return
        self.store.write(task, result, attempt)
        self.ran += 1
        bar.update(1)

    def _failed(self, task: SweepTask, attempt: int, exc: Exception, bar: tqdm) -> None:
        error = f"{type(exc).__name__}: {exc}".strip()
        self.reported += 1
        if self.reported <= SHOWN_FAILURES:
            again = "retrying once" if attempt < ATTEMPTS else "giving up on it"
            bar.write(f"task {task.id} failed ({task.describe()}): {error}; {again}", file=sys.stderr)
        elif self.reported == SHOWN_FAILURES + 1:
            bar.write("further failures are listed at the end", file=sys.stderr)
        if attempt < ATTEMPTS:
            self.store.record("retried", task=task.id, attempt=attempt, error=error)
            self._submit(task, attempt + 1)
            return
        self.store.record("failed", task=task.id, attempt=attempt, error=error)
        self.failures.append({"task": task.id, "what": task.describe(), "error": error,
                              "parameters": {k: _plain(v) for k, v in task.values.items()}})


def _plain(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
