"""The compiled engine's throughput: trajectories per second on one core.

    python benchmarks/bench_compiled.py                      # adult_conventional and modern_adult, 100k and 1M patients
    python benchmarks/bench_compiled.py --patients 100000 --scenarios adult_conventional

A trajectory is one patient under one strategy (3 strategies in both scenarios). Two
figures per run: the kernel alone writing its columns (`sim.engine.compiled.simulate_chunk`
over the run's chunks), and the whole `sim.runner.simulate` with the tables built (one
worker). Numba compiles (or loads from its cache) before timing; the best of `--repeats`
is kept.
"""

from __future__ import annotations

import argparse
import json
import platform
import time


def _model(scenario: str, patients: int):
    from sim.loader import load_scenario
    from sim.model import compile_model

    loaded = load_scenario(scenario, {"settings.patients": patients, "settings.replicates": 1})
    return compile_model(loaded.scenario, loaded.name)


def measure(scenario: str, patients: int, repeats: int) -> dict:
    """Seconds and trajectories per second of the kernel into columns and of a run with tables."""
    from sim.engine import compiled
    from sim.runner import simulate, tasks_for

    model = _model(scenario, patients)
    compiled.simulate_chunk(model, 0, 0, 10)  # compile or load the cache
    trajectories = patients * len(model.strategies)
    kernel = run = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for task in tasks_for(model, engine="compiled"):
            compiled.simulate_chunk(model, task.replicate, task.first_patient, task.count)
        kernel = min(kernel, time.perf_counter() - start)
        start = time.perf_counter()
        simulate(model, engine="compiled", progress=False)
        run = min(run, time.perf_counter() - start)
    return {"scenario": scenario, "patients": patients, "trajectories": trajectories,
            "columns_s": round(kernel, 3), "columns_per_s": round(trajectories / kernel),
            "tables_s": round(run, 3), "tables_per_s": round(trajectories / run)}


def main() -> None:
    """Measure every (scenario, patients) and print one JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", default=["adult_conventional", "modern_adult"])
    parser.add_argument("--patients", nargs="+", type=int, default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(json.dumps({"machine": platform.processor() or platform.machine(), "python": platform.python_version()}))
    for scenario in args.scenarios:
        for patients in args.patients:
            print(json.dumps(measure(scenario, patients, args.repeats)), flush=True)


if __name__ == "__main__":
    main()
