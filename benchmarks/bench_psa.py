"""A probabilistic sensitivity analysis on the compiled engine in one `simulate_samples` call.

    python benchmarks/bench_psa.py                          # 1,000 samples x 1,000 patients, adult_conventional
    python benchmarks/bench_psa.py --samples 20 --patients 200

The samples are `adult_conventional` with the response probabilities given as counts
drawn from Beta(events + 1/2, n - events + 1/2), as `bench_engines.py` draws them for the
other engines. `sim.engine.compiled.simulate_samples` simulates every sample's patients
under the 3 strategies (a group of `CHUNK_PATIENTS` patient-samples per kernel call, into
blocks reused from group to group) and returns each sample's columns. Timed separately:
packing the models (`pack_s`: not simulation), and the call (`simulate_s`: covariates,
kernel and columns). Numba compiles (or loads its cache) before timing.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time

from bench_engines import psa_models  # one way of drawing a PSA's models for every benchmark


def measure(scenario: str, samples: int, patients: int) -> dict:
    """Seconds to pack and to simulate a PSA of `samples` x `patients` in one kernel call."""
    from sim.engine import compiled

    models = psa_models(scenario, samples, patients)
    compiled.simulate_samples(models[:2], 0, 0, 10)  # compile or load the cache
    start = time.perf_counter()
    stacked = compiled.stack_models(models)
    packing = time.perf_counter() - start
    start = time.perf_counter()
    results = compiled.simulate_samples(models, 0, 0, patients, stacked)
    seconds = time.perf_counter() - start
    trajectories = samples * patients * len(models[0].strategies)
    return {"scenario": scenario, "samples": samples, "patients": patients, "trajectories": trajectories,
            "episodes": sum(len(r.episodes["patient"]) for r, _ in results), "pack_s": round(packing, 3),
            "simulate_s": round(seconds, 3), "trajectories_per_s": round(trajectories / seconds),
            "peak_memory_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    """Print the machine and one JSON line of figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="adult_conventional")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--patients", type=int, default=1000)
    args = parser.parse_args()
    print(json.dumps({"machine": platform.processor() or platform.machine(), "python": platform.python_version()}))
    print(json.dumps(measure(args.scenario, args.samples, args.patients)), flush=True)


if __name__ == "__main__":
    main()
