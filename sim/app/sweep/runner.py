"""Running a sweep: tasks go to an executor, results stream to the store as they finish.

Only the tasks not yet finished in the output directory run, so a re-run after Ctrl-C
or a crash resumes where it stopped. At most `executor.slots` tasks are in flight, and
each result is written and dropped as soon as it arrives, so memory stays bounded
whatever the number of tasks. A task that fails is reported with its parameters and
retried once; if it fails again it is listed at the end and the sweep goes on.

A PSA's samples on the compiled engine go to the workers in batches (`run_batch`: one
kernel call for the batch), still one task, one file and one log line per sample: the
results do not depend on the batches, and an interrupted batch loses only its own
unwritten samples, which the next session runs again. A batch that fails is retried as
its samples one by one.
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
from sim.app.sweep.worker import batches_in_one_call, run_batch, run_task

ATTEMPTS = 2
SHOWN_FAILURES = 10  # failures reported as they happen; all are listed at the end
MAX_BATCH = 50  # samples per batch: progress stays visible, a lost batch costs little
BATCH_PATIENTS = 100_000  # patients x samples per batch: a worker's columns stay in the tens of megabytes


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
              progress: bool = True, work=None, batch: int | None = None) -> SweepOutcome:
    """Run the unfinished tasks of `plan` on `executor`, writing results under `out`.

    `keep_episodes` also keeps each task's episodes, patients and adverse-events tables.
    `work(task_id, model, replicate, keep_tables)` is what runs one task (default:
    `sim.app.sweep.worker.run_task`, which simulates and summarises it; a custom `work` runs
    every task alone). `batch` is the PSA samples per batch on the compiled engine (default:
    `MAX_BATCH`, fewer for many patients or to keep every worker busy; 1: no batches); it does
    not change the results. Ctrl-C ends the session with status `interrupted`; what finished is kept.
    """
    batching = work is None and batch != 1
    work = work or run_task
    store = SweepStore.open(out, plan, keep_episodes)
    started = time.perf_counter()
    session = _Session(plan, store, executor, keep_episodes, work, batch if batching else 1)
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

    def __init__(self, plan: SweepPlan, store: SweepStore, executor, keep_tables: bool, work, batch: int | None):
        self.plan, self.store, self.executor = plan, store, executor
        self.keep_tables, self.work, self.batch = keep_tables, work, batch
        self.in_flight: dict = {}
        self.failures: list[dict] = []
        self.ran = 0
        self.reported = 0
        self.batchable: dict[int, bool] = {}  # by variant: its samples can share a kernel call
        self.samples = 0  # PSA tasks pending when the session began

    def drive(self, pending: deque, bar: tqdm) -> None:
        self.samples = sum(task.analysis == "psa" for task in pending)
        try:
            while pending or self.in_flight:
                while pending and len(self.in_flight) < self.executor.slots:
                    self._submit_next(pending)
                for future in self.executor.wait_any(list(self.in_flight)):
                    unit, attempt = self.in_flight.pop(future)
                    if isinstance(unit, tuple):
                        self._collect_batch(unit, future, bar)
                    else:
                        self._collect(unit, attempt, future, bar)
        except KeyboardInterrupt:
            self.executor.cancel(list(self.in_flight))
            raise

    def _submit_next(self, pending: deque) -> None:
        """Submit the next task, with the PSA samples after it that can share its kernel call."""
        task = pending.popleft()
        model = self.plan.model(task)
        batch = [task]
        if self.batch != 1 and task.analysis == "psa" and self._batchable(task, model):
            size = self._batch_size(model)
            while pending and len(batch) < size and _same_run(pending[0], task):
                batch.append(pending.popleft())
        if len(batch) == 1:
            self._submit(task, 1, model)
            return
        models = [model, *(self.plan.model(t) for t in batch[1:])]
        economics = None if self.plan.economics is None else [self.plan.economics_for(t) for t in batch]
        future = self.executor.submit(run_batch, [t.id for t in batch], models, [t.replicate for t in batch],
                                      self.keep_tables, economics)
        self.in_flight[future] = (tuple(batch), 1)

    def _batchable(self, task: SweepTask, model) -> bool:
        if task.variant not in self.batchable:
            self.batchable[task.variant] = batches_in_one_call(model)
        return self.batchable[task.variant]

    def _batch_size(self, model) -> int:
        if self.batch is not None:
            return self.batch
        # Enough batches to keep every slot busy twice over, each of at most MAX_BATCH samples.
        spread = math.ceil(self.samples / (2 * self.executor.slots))
        return max(1, min(MAX_BATCH, BATCH_PATIENTS // max(model.patients, 1), spread))

    def _collect_batch(self, batch: tuple[SweepTask, ...], future, bar: tqdm) -> None:
        try:
            results = future.result()
        except Exception as exc:  # retried sample by sample: one sample's failure must not sink the others
            self._batch_failed(batch, exc, bar)
            return
        for task, result in zip(batch, results, strict=True):
            self.store.write(task, result, 1)
            self.ran += 1
            bar.update(1)

    def _batch_failed(self, batch: tuple[SweepTask, ...], exc: Exception, bar: tqdm) -> None:
        error = f"{type(exc).__name__}: {exc}".strip()
        self.reported += 1
        if self.reported <= SHOWN_FAILURES:
            bar.write(f"a batch of {len(batch)} PSA samples ({batch[0].id} to {batch[-1].id}) failed: {error}; "
                      "retrying each sample alone", file=sys.stderr)
        for task in batch:
            self.store.record("retried", task=task.id, attempt=1, error=error)
            self._submit(task, 2)

    def _submit(self, task: SweepTask, attempt: int, model=None) -> None:
        model = model if model is not None else self.plan.model(task)
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


def _same_run(task: SweepTask, first: SweepTask) -> bool:
    """Whether `task` is a PSA sample of the same variant and replicate as `first`."""
    return task.analysis == "psa" and task.variant == first.variant and task.replicate == first.replicate


def _plain(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
