"""The resource guard: an estimate of a run's or a sweep's memory and time before anything runs.

A run keeps every trajectory's rows in memory until its tables are written, so its peak
grows with patients x strategies x replicates. The per-trajectory figures are measured
(`benchmarks/README.md`: `adpath run adult_conventional --patients 1000000 --quiet`,
3M trajectories, peak 3,190 MiB, 19.1 s on 2 cores), rounded up: an estimate, not a promise.

A sweep holds its whole plan in memory (every task's overrides and parameter values) and
checks every task against the schema before the first one runs; each worker then holds
one task's trajectories at a time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

BYTES_PER_TRAJECTORY = 1_200
"""Peak memory per trajectory of an end-to-end run (measured 1,115 bytes, rounded up)."""

SECONDS_PER_TRAJECTORY = 7e-6
"""Wall time per trajectory of an end-to-end run on this project's 2-core machine (6.4 µs measured)."""

BYTES_PER_PLANNED_TASK = 20_000
"""Memory the plan of a sweep holds per task (10 KB measured for `adult_psa`, 19 KB for `modern_psa`)."""

SECONDS_PER_PLANNED_TASK = 0.02
"""Time to expand and check one task of a sweep's plan (16 ms measured for `adult_psa` on 2 busy cores)."""

MEMORY_SHARE = 0.8
"""Share of the machine's physical memory a run may plan to use."""


@dataclass(frozen=True)
class RunEstimate:
    """What a run of `trajectories` is expected to need: memory in bytes, time in seconds."""

    trajectories: int
    memory_bytes: float
    seconds: float

    def describe(self) -> str:
        """One line: trajectories, memory in GiB and time in minutes."""
        return (f"{self.trajectories:,} trajectories, about {self.memory_bytes / 2**30:,.1f} GiB of memory "
                f"and {self.seconds / 60:,.1f} minutes")


def estimate_run(patients: int, strategies: int, replicates: int) -> RunEstimate:
    """Estimate the memory (bytes) and wall time (seconds) of a run of this size."""
    trajectories = int(patients) * int(strategies) * int(replicates)
    return RunEstimate(trajectories, trajectories * BYTES_PER_TRAJECTORY, trajectories * SECONDS_PER_TRAJECTORY)


def physical_memory_bytes() -> int | None:
    """The machine's physical memory in bytes, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


@dataclass(frozen=True)
class SweepEstimate:
    """What a sweep of `tasks` tasks is expected to need: memory in bytes, time in seconds
    (planning included), for `trajectories` simulated trajectories in all."""

    tasks: int
    trajectories: int
    memory_bytes: float
    seconds: float

    def describe(self) -> str:
        """One line: tasks, trajectories, memory in GiB and time in minutes."""
        return (f"{self.tasks:,} tasks of {self.trajectories // max(self.tasks, 1):,} trajectories "
                f"({self.trajectories:,} in all), about {self.memory_bytes / 2**30:,.1f} GiB of memory "
                f"and {self.seconds / 60:,.1f} minutes")


def estimate_sweep(tasks: int, patients: int, strategies: int, workers: int) -> SweepEstimate:
    """Estimate the memory (bytes) and wall time (seconds) of a sweep of `tasks` tasks of
    `patients` x `strategies` trajectories each, run by `workers` processes."""
    per_task = int(patients) * int(strategies)
    trajectories = int(tasks) * per_task
    workers = max(int(workers), 1)
    memory = tasks * BYTES_PER_PLANNED_TASK + workers * per_task * BYTES_PER_TRAJECTORY
    seconds = tasks * SECONDS_PER_PLANNED_TASK + trajectories * SECONDS_PER_TRAJECTORY / workers
    return SweepEstimate(int(tasks), trajectories, float(memory), float(seconds))


RUN_FIX = ("lower --patients or --replicates, or run fewer strategies (a sweep spreads replicates "
           "over tasks)")


def too_large(estimate: RunEstimate | SweepEstimate, memory_bytes: int | None = None,
              fix: str = RUN_FIX) -> str | None:
    """Why the run or sweep cannot be held in memory here, with `fix` (how to lower it);
    None when it fits."""
    memory_bytes = physical_memory_bytes() if memory_bytes is None else memory_bytes
    if memory_bytes is None or estimate.memory_bytes <= MEMORY_SHARE * memory_bytes:
        return None
    kind = "sweep" if isinstance(estimate, SweepEstimate) else "run"
    return (f"this {kind} would need {estimate.describe()}, more than this machine's "
            f"{memory_bytes / 2**30:,.1f} GiB can hold; {fix}")


MAX_EPISODES = 10_000
"""Treatment episodes one trajectory may have: more means a pathway that loops (the runaway guard)."""

MAX_BURSTS = 30_000
"""Corticosteroid bursts one trajectory may have: more means flare rates far too high."""


def runaway_refusal(scenario: str, strategy: str, patient: int, episodes: bool):
    """The `ScenarioError` of a trajectory with more than `MAX_EPISODES` episodes (`episodes`)
    or more than `MAX_BURSTS` bursts: patient `patient` under strategy `strategy` of `scenario`."""
    from sim.loader import Problem, ScenarioError

    what = (f"more than {MAX_EPISODES} treatment episodes" if episodes
            else f"more than {MAX_BURSTS} corticosteroid bursts")
    return ScenarioError([Problem(scenario, f"strategies.{strategy}",
                                  f"patient {patient} had {what} in one trajectory: the pathway loops (short courses "
                                  "that remit and relapse at once, or flare rates far too high); check the durations, "
                                  "relapse times and flare rates")])
