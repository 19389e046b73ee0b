"""Throughput and peak memory of the DES (SimPy) engine on a bundled scenario.

Both engines, more sizes and a PSA: `benchmarks/bench_engines.py`.

    python benchmarks/bench_engine.py                       # adult_conventional, 10k and 100k patients
    python benchmarks/bench_engine.py --patients 2000 --scenario bordeaux_cohort

Each size runs in a fresh process so that its peak resident memory is its own. Only the
simulation is timed (tables built in memory, nothing written).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time


def measure(scenario: str, patients: int) -> dict:
    """Simulate `patients` patients of `scenario`; return timings (s) and peak memory (MiB)."""
    from sim.loader import load_scenario
    from sim.model import compile_model
    from sim.runner import simulate

    loaded = load_scenario(scenario, {"settings.patients": patients, "settings.replicates": 1})
    model = compile_model(loaded.scenario, loaded.name)
    start = time.perf_counter()
    tables = simulate(model, progress=False, engine="des")
    seconds = time.perf_counter() - start
    trajectories = patients * len(model.strategies)
    return {
        "scenario": scenario,
        "patients": patients,
        "strategies": len(model.strategies),
        "episodes": len(tables.episodes),
        "seconds": round(seconds, 2),
        "trajectories_per_second": round(trajectories / seconds),
        "peak_memory_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def cpu_model() -> str:
    """Return the processor's model name (Linux), or the machine type."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def memory_pages() -> str:
    """Say which memory pages a run gets: the kernel's transparent huge page settings and
    whether runs ask NumPy for them (`sim.memory.small_pages`)."""
    import os

    settings = []
    for name in ("enabled", "defrag"):
        try:
            with open(f"/sys/kernel/mm/transparent_hugepage/{name}", encoding="utf-8") as setting:
                chosen = setting.read().split("[", 1)[1].split("]", 1)[0]
        except (OSError, IndexError):
            chosen = "n/a"
        settings.append(f"{name}={chosen}")
    user = os.environ.get("NUMPY_MADVISE_HUGEPAGE")
    numpy = "off during runs" if user is None else f"as NUMPY_MADVISE_HUGEPAGE={user}"
    return f"THP {' '.join(settings)}; NumPy huge pages {numpy}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="adult_conventional")
    parser.add_argument("--patients", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        print(json.dumps(measure(args.scenario, args.patients[0])))
        return
    print(f"# {cpu_model()}, Python {platform.python_version()}, one core")
    print(f"{'patients':>9} {'trajectories/s':>15} {'seconds':>8} {'episodes':>9} {'peak MiB':>9}")
    for patients in args.patients:
        out = subprocess.run(
            [sys.executable, __file__, "--single", "--scenario", args.scenario, "--patients", str(patients)],
            check=True, capture_output=True, text=True,
        ).stdout
        row = json.loads(out)
        print(f"{row['patients']:>9} {row['trajectories_per_second']:>15} {row['seconds']:>8} "
              f"{row['episodes']:>9} {row['peak_memory_mib']:>9}")


if __name__ == "__main__":
    main()
