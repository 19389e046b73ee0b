"""Stages of `adpath run` outside the kernel: simulate (kernel + tables), Parquet writing, summary.

    PYTHONPATH=. python benchmarks/bench_tables.py [--patients 1000000] [--workers 1] [--out DIR]
        [--no-summary]

Prints each stage's wall time and the process's peak resident memory after it (VmHWM, reset
before each stage where the kernel allows), so that a change to the tables' building or
writing can be timed apart from the summary (`analysis.summary`) it runs beside.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def _peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="adult_conventional")
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--no-summary", action="store_true")
    args = parser.parse_args()

    clock = time.perf_counter()
    from sim.app.outputs import writing_finished_tables
    from sim.loader import load_scenario
    from sim.model import compile_model
    from sim.runner import simulate
    print(f"imports        {time.perf_counter() - clock:6.2f} s  peak {_peak_mib():7.0f} MiB")

    loaded = load_scenario(args.scenario, overrides={"settings.patients": args.patients})
    model = compile_model(loaded.scenario, loaded.name)
    simulate(compile_model(load_scenario(args.scenario, overrides={"settings.patients": 100}).scenario,
                           loaded.name), progress=False)  # the kernel's machine code loaded
    _reset_peak()
    clock = time.perf_counter()
    tables = simulate(model, workers=args.workers, progress=False)
    print(f"simulate       {time.perf_counter() - clock:6.2f} s  peak {_peak_mib():7.0f} MiB  "
          f"episodes {len(tables.episodes):,} rows")
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_tables-"))
    out.mkdir(parents=True, exist_ok=True)
    _reset_peak()
    clock = time.perf_counter()
    names = ("episodes", "patients", "adverse_events", "bursts")
    with writing_finished_tables(out, {name: getattr(tables, name) for name in names}):
        started = time.perf_counter()
        if not args.no_summary:
            from analysis.summary import summarize_run
            summarize_run(tables.episodes, tables.patients)
        summary = time.perf_counter() - started
    print(f"write+summary  {time.perf_counter() - clock:6.2f} s  peak {_peak_mib():7.0f} MiB  "
          f"(summary alone {summary:.2f} s)")


if __name__ == "__main__":
    main()
