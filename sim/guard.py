"""The resource guard: an estimate of a run's memory and time before anything runs.

A run keeps every trajectory's rows in memory until its tables are written, so its peak
grows with patients x strategies x replicates. The per-trajectory figures are measured
(`benchmarks/README.md`: `adpath run adult_conventional --patients 1000000 --quiet`,
3M trajectories, peak 3,190 MiB, 19.1 s on 2 cores), rounded up: an estimate, not a promise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

BYTES_PER_TRAJECTORY = 1_200
"""Peak memory per trajectory of an end-to-end run (measured 1,115 bytes, rounded up)."""

SECONDS_PER_TRAJECTORY = 7e-6
"""Wall time per trajectory of an end-to-end run on this project's 2-core machine (6.4 µs measured)."""

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


def too_large(estimate: RunEstimate, memory_bytes: int | None = None) -> str | None:
    """Why the run cannot be held in memory here, with how to lower it; None when it fits."""
    memory_bytes = physical_memory_bytes() if memory_bytes is None else memory_bytes
    if memory_bytes is None or estimate.memory_bytes <= MEMORY_SHARE * memory_bytes:
        return None
    return (f"this run would need {estimate.describe()}, more than this machine's "
            f"{memory_bytes / 2**30:,.1f} GiB can hold; lower --patients or --replicates, or run fewer "
            "strategies (a sweep spreads replicates over tasks)")
