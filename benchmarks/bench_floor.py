"""Where a vector-engine run spends its time, and the part no faster rule code could save.

    python benchmarks/bench_floor.py                                   # adult_conventional, 1,000,000 patients
    python benchmarks/bench_floor.py --scenario modern_adult --patients 100000

One run of `sim.runner.simulate` (vector engine, one core, tables built in memory), with
timers around the functions that draw random numbers, run the clinical rules, build each
chunk's table columns and join the chunks. Each timer counts its own time only (time in
a nested timed function goes to that function), so the parts add up to the run.

The floor is what any engine writing the same tables from the same common random
numbers must spend: drawing the slots it reads and building and joining the tables.
The clinical rules (the loop, less the slot draws inside it) are what a faster rule
implementation, compiled or not, could shrink.
"""

from __future__ import annotations

import argparse
import functools
import platform
import time

from bench_engine import cpu_model, memory_pages

PARTS = {
    "random numbers: slot columns (PCG64)": ("sim.draws", "SlotStream", "slot"),
    "per-patient quantities (covariates, follow-up, eligibility)": ("sim.runner", None, "draw_numbers"),
    "clinical rules (the loop, less its slot draws)": ("sim.engine.vector", None, "simulate_chunk"),
    "table columns of each chunk": ("sim.runner", None, "episodes_columns"),
    "table columns of each chunk ": ("sim.runner", None, "patients_columns"),
    "table columns of each chunk  ": ("sim.runner", None, "adverse_events_columns"),
    "table columns of each chunk   ": ("sim.runner", None, "bursts_columns"),
    "joining the chunks into DataFrames": ("sim.runner", None, "join_columns"),
}
FLOOR = ("random numbers: slot columns (PCG64)", "table columns of each chunk", "joining the chunks into DataFrames")


class ExclusiveTimers:
    """Seconds spent in each timed function, less the time in timed functions it calls."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._stack: list[list] = []

    def wrap(self, label: str, function):
        """Return `function` timed under `label`."""
        @functools.wraps(function)
        def timed(*args, **kwargs):
            frame = [time.perf_counter(), 0.0]
            self._stack.append(frame)
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - frame[0]
                self._stack.pop()
                self.seconds[label] = self.seconds.get(label, 0.0) + elapsed - frame[1]
                if self._stack:
                    self._stack[-1][1] += elapsed
        return timed


def install(timers: ExclusiveTimers) -> None:
    """Put a timer around every function of `PARTS` (labels differing in trailing spaces add up)."""
    import importlib

    for label, (module_name, class_name, name) in PARTS.items():
        owner = importlib.import_module(module_name)
        if class_name:
            owner = getattr(owner, class_name)
        setattr(owner, name, timers.wrap(label.rstrip(), getattr(owner, name)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="adult_conventional")
    parser.add_argument("--patients", type=int, default=1_000_000)
    args = parser.parse_args()

    from bench_engines import _compiled
    from sim.runner import simulate

    _, model = _compiled(args.scenario, args.patients)
    timers = ExclusiveTimers()
    install(timers)
    start = time.perf_counter()
    tables = simulate(model, engine="vector", progress=False)
    total = time.perf_counter() - start
    trajectories = args.patients * len(model.strategies)
    print(f"# {cpu_model()}, Python {platform.python_version()}, one core")
    print(f"# {memory_pages()}")
    print(f"# {args.scenario}: {args.patients:,} patients x {len(model.strategies)} strategies, "
          f"{len(tables.episodes):,} episodes; {total:.2f} s, {trajectories / total:,.0f} trajectories/s\n")
    print(f"{'part':62s} {'seconds':>8s} {'us/trajectory':>14s}")
    timed = sum(timers.seconds.values())
    for label, seconds in [*timers.seconds.items(), ("the rest (runner, progress, chunk bookkeeping)", total - timed)]:
        print(f"{label:62s} {seconds:8.2f} {1e6 * seconds / trajectories:14.3f}")
    floor = sum(timers.seconds.get(label, 0.0) for label in FLOOR)
    print(f"\nfloor (slots, columns, join): {floor:.2f} s = {1e6 * floor / trajectories:.3f} us/trajectory, "
          f"at most {trajectories / floor:,.0f} trajectories/s with rules that cost nothing")


if __name__ == "__main__":
    main()
