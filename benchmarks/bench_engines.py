"""Both engines on bundled scenarios, and a probabilistic sensitivity analysis (PSA).

    python benchmarks/bench_engines.py            # adult_conventional and modern_adult at 10k, 100k, 1M patients; PSA 1000 x 1000
    python benchmarks/bench_engines.py --quick    # small enough for CI (about a minute)
    python benchmarks/bench_engines.py --scenarios adult_conventional --patients 100000 --engines compiled

Every measurement runs in a fresh process, so that its peak resident memory is its own;
each is repeated (`--repeats`) and the best time kept (the machine may be shared). Only
the simulation is timed: compiling the model and drawing the PSA's parameters are not,
the tables are built in memory (nothing is written). A trajectory is one patient under
one strategy.

PSA: `--psa-samples` compiled models whose response probabilities given as counts are
drawn from Beta(events + 1/2, n - events + 1/2) (Jeffreys), each simulated with
`--psa-patients` patients. The DES runs only the first `--psa-des-samples` of them; its
total is extrapolated from those (marked as such).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import resource
import subprocess
import sys
import time

from bench_engine import cpu_model, memory_pages

FULL = {"scenarios": ["adult_conventional", "modern_adult"], "patients": [10_000, 100_000, 1_000_000],
        "psa_samples": 1000, "psa_patients": 1000, "psa_des_samples": 20}
QUICK = {"scenarios": ["adult_conventional", "modern_adult"], "patients": [2_000],
         "psa_samples": 20, "psa_patients": 200, "psa_des_samples": 2}
ONCE_FROM = 1_000_000  # the DES runs once at this size and above (minutes per run)


def _compiled(scenario: str, patients: int):
    from sim.loader import load_scenario
    from sim.model import compile_model

    loaded = load_scenario(scenario, {"settings.patients": patients, "settings.replicates": 1})
    return loaded, compile_model(loaded.scenario, loaded.name)


def measure(scenario: str, patients: int, engine: str) -> dict:
    """Simulate `patients` patients of `scenario` with `engine`; return time (s) and peak memory (MiB)."""
    from sim.runner import simulate

    _, model = _compiled(scenario, patients)
    start = time.perf_counter()
    tables = simulate(model, engine=engine, progress=False)
    seconds = time.perf_counter() - start
    return {"scenario": scenario, "engine": engine, "patients": patients, "strategies": len(model.strategies),
            "episodes": len(tables.episodes), "seconds": seconds,
            "trajectories_per_second": patients * len(model.strategies) / seconds, "peak_memory_mib": _peak_mib()}


def psa_models(scenario: str, samples: int, patients: int, seed: int = 2024) -> list:
    """`samples` compiled models with response probabilities drawn from Beta(events + 1/2, n - events + 1/2)."""
    import numpy as np

    loaded, model = _compiled(scenario, patients)
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    counted = {t.index: loaded.scenario.treatments[t.name].response for t in model.treatments
               if loaded.scenario.treatments[t.name].response.n is not None}
    models = []
    for _ in range(samples):
        treatments = list(model.treatments)
        for index, response in counted.items():
            p = rng.beta(response.events + 0.5, response.n - response.events + 0.5)
            treatments[index] = dataclasses.replace(treatments[index], response_probability=float(p))
        models.append(dataclasses.replace(model, treatments=tuple(treatments)))
    return models


def measure_psa(scenario: str, samples: int, patients: int, engine: str, run_samples: int) -> dict:
    """Simulate the first `run_samples` of a PSA of `samples` models x `patients` patients with `engine`."""
    from sim.runner import simulate

    models = psa_models(scenario, samples, patients)[:run_samples]
    start = time.perf_counter()
    for model in models:
        simulate(model, engine=engine, progress=False)
    seconds = time.perf_counter() - start
    trajectories = run_samples * patients * len(models[0].strategies)
    return {"scenario": scenario, "engine": engine, "samples": samples, "patients": patients,
            "samples_run": run_samples, "seconds": seconds * samples / run_samples,
            "extrapolated": run_samples < samples, "trajectories_per_second": trajectories / seconds,
            "peak_memory_mib": _peak_mib()}


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _in_fresh_process(arguments: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *arguments], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _best(arguments: list[str], repeats: int) -> dict:
    runs = [_in_fresh_process(arguments) for _ in range(repeats)]
    best = min(runs, key=lambda run: run["seconds"])
    return {**best, "repeats": repeats, "peak_memory_mib": max(run["peak_memory_mib"] for run in runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CI size: 2,000 patients, PSA 20 x 200")
    parser.add_argument("--scenarios", nargs="+")
    parser.add_argument("--patients", type=int, nargs="+")
    parser.add_argument("--engines", nargs="+", default=["des", "compiled"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--psa-samples", type=int)
    parser.add_argument("--psa-patients", type=int)
    parser.add_argument("--psa-des-samples", type=int)
    parser.add_argument("--no-psa", action="store_true")
    parser.add_argument("--json", help="also write every result to this file")
    parser.add_argument("--single", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--single-psa", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        print(json.dumps(measure(args.single[0], int(args.single[1]), args.single[2])))
        return
    if args.single_psa:
        scenario, samples, patients, engine, run_samples = args.single_psa
        print(json.dumps(measure_psa(scenario, int(samples), int(patients), engine, int(run_samples))))
        return
    settings = {**(QUICK if args.quick else FULL)}
    for key in settings:
        if getattr(args, key, None) is not None:
            settings[key] = getattr(args, key)
    results = run_all(settings, args.engines, 1 if args.quick else args.repeats, not args.no_psa)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)


def run_all(settings: dict, engines: list[str], repeats: int, psa: bool) -> list[dict]:
    """Run every measurement, printing a Markdown table as results come in; return them."""
    print(f"# {cpu_model()}, Python {platform.python_version()}, one core, best of {repeats}")
    print(f"# {memory_pages()}\n")
    print("| scenario | engine | patients | trajectories/s | seconds | episodes | peak MiB | compiled / DES |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    results = []
    for scenario in settings["scenarios"]:
        for patients in settings["patients"]:
            speeds = {}
            for engine in engines:
                times = 1 if engine == "des" and patients >= ONCE_FROM else repeats
                row = _best(["--single", scenario, str(patients), engine], times)
                speeds[engine] = row["trajectories_per_second"]
                ratio = f"{speeds['compiled'] / speeds['des']:.0f}x" if len(speeds) == 2 else ""
                print(f"| {scenario} | {engine} | {patients:,} | {row['trajectories_per_second']:,.0f} | "
                      f"{row['seconds']:.2f} | {row['episodes']:,} | {row['peak_memory_mib']:,.0f} | {ratio} |", flush=True)
                results.append(row)
    if psa:
        results += _run_psa(settings, engines, repeats)
    return results


def _run_psa(settings: dict, engines: list[str], repeats: int) -> list[dict]:
    samples, patients = settings["psa_samples"], settings["psa_patients"]
    print(f"\nPSA: {samples:,} models x {patients:,} patients x 3 strategies (adult_conventional)\n")
    print("| engine | samples run | simulation seconds | trajectories/s | peak MiB |")
    print("|---|---:|---:|---:|---:|")
    results = []
    for engine in engines:
        run = samples if engine == "compiled" else min(samples, settings["psa_des_samples"])
        row = _best(["--single-psa", "adult_conventional", str(samples), str(patients), engine, str(run)],
                    repeats if engine == "compiled" else 1)
        note = " (extrapolated)" if row["extrapolated"] else ""
        print(f"| {engine} | {run:,} | {row['seconds']:.1f}{note} | {row['trajectories_per_second']:,.0f} | "
              f"{row['peak_memory_mib']:,.0f} |", flush=True)
        results.append(row)
    return results


if __name__ == "__main__":
    main()
