"""The compiled kernel alone: trajectories per second of CPU time in the Numba call.

    taskset -c 0 python benchmarks/bench_kernel.py                    # adult_conventional, modern_adult, 100k
    taskset -c 0 python benchmarks/bench_kernel.py --patients 20000 --repeats 5

Covariates, packing and output blocks are made before timing (blocks large enough that
the kernel never stops to grow them); only `sim.engine.compiled_kernel.simulate_samples`
is timed, by `time.process_time` (CPU of this process, so other load on the machine counts
less than in wall time), best of `--repeats`. Numba compiles (or loads its cache) first.
Each figure is one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def measure(scenario: str, patients: int, repeats: int) -> dict:
    """Best CPU seconds of the kernel call over `patients` patients x the scenario's strategies."""
    from sim.engine import compiled
    from sim.engine.compiled_kernel import DONE, S_CODE, simulate_samples
    from sim.loader import load_scenario
    from sim.model import compile_model

    loaded = load_scenario(scenario, {"settings.patients": patients, "settings.replicates": 1})
    model = compile_model(loaded.scenario, loaded.name)
    strategies = len(model.strategies)
    m = compiled.stack_models([model])
    matrix = compiled.chunk_covariates(model, 0, 0, patients)[1][None]
    seeds = np.array([model.seed], dtype=np.int64)
    blocks = compiled._blocks(strategies, [8 * patients, 4 * patients, 20 * patients], patients)
    classes = compiled.drug_classes(m, seeds)
    shared = compiled.shared_plans(m, classes, patients)
    best = float("inf")
    for k in range(repeats + 1):  # call 0 compiles or loads the cache
        counts = np.zeros((strategies, 3), dtype=np.int64)
        status = np.zeros(4, dtype=np.int64)
        start = time.process_time()
        simulate_samples(m, seeds, 0, 0, patients, 0, 0, matrix, *blocks, counts, status, classes, shared)
        seconds = time.process_time() - start
        if status[S_CODE] != DONE:
            raise SystemExit(f"{scenario}: the kernel stopped with status {status.tolist()}")
        if k:
            best = min(best, seconds)
    trajectories = patients * strategies
    return {"scenario": scenario, "patients": patients, "trajectories": trajectories, "kernel_cpu_s": round(best, 4),
            "trajectories_per_cpu_s": round(trajectories / best), "rows": counts.sum(axis=0).tolist()}


def main() -> None:
    """Print one JSON line per scenario."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", default=["adult_conventional", "modern_adult"])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for scenario in args.scenarios:
        print(json.dumps(measure(scenario, args.patients, max(1, args.repeats))), flush=True)


if __name__ == "__main__":
    main()
