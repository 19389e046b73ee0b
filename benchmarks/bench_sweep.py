"""Throughput of a probabilistic sensitivity analysis on the local executors.

    python benchmarks/bench_sweep.py                          # 200 samples x 2,000 patients, 1 and 2 workers
    python benchmarks/bench_sweep.py --samples 50 --workers 1 2 4
    python benchmarks/bench_sweep.py --batch 1 0              # each sample alone, then batches (0: automatic)

The sweep is a PSA of adult_conventional (3 strategies): every count drawn from its
Beta/Dirichlet, 2,000 patients per sample, plus the deterministic base case. Each worker
count runs the whole sweep into a fresh directory, timed end to end as `adpath sweep`
does it: planning and validation, worker start-up, simulation and summary of every task,
Parquet writes, and the final sweep_summary. `--workers 1` runs in this process, more
in a pool of processes. `--batch` is the PSA samples a worker simulates in one kernel call
(`run_sweep(batch=...)`; 0 lets the sweep choose, 1 sends each sample alone). Scaling efficiency is the rate with N workers over N times the
rate with one. "other load" is the CPU that other processes used during the run, in
cores: on a shared machine, trust rows where it is near zero.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from bench_engine import cpu_model  # noqa: E402  (one definition for every benchmark)

SWEEP = """
base: adult_conventional
vary:
  settings.patients: [{patients}]
psa:
  samples: {samples}
seed: 1
"""


def measure(sweep_file: Path, out: Path, workers: int, batch: int | None = None) -> dict:
    """Run the sweep with `workers` local workers (`batch` samples per kernel call, None: the
    sweep's choice); return its tasks, seconds and tasks per minute.

    `other_cores` is the CPU other processes used meanwhile, in cores (NaN where it
    cannot be read): a run that shared the machine says so.
    """
    from sim.app.sweep import load_sweep, make_executor, run_sweep, start_fork_server

    busy, mine = _machine_busy_seconds(), _own_cpu_seconds()
    start = time.perf_counter()
    start_fork_server(workers)  # as `adpath sweep` does
    plan = load_sweep(sweep_file)
    executor = make_executor(workers)
    try:
        outcome = run_sweep(plan, out, executor, progress=False, batch=batch)
        seconds = time.perf_counter() - start
        mine = _own_cpu_seconds() - mine  # before closing: the pool's workers are still there to ask
    finally:
        executor.close()
    other = (_machine_busy_seconds() - busy - mine) / seconds
    assert outcome.status == "complete", outcome.failed
    return {"workers": workers, "batch": batch or "auto", "tasks": outcome.finished, "seconds": seconds,
            "tasks_per_minute": 60 * outcome.finished / seconds, "other_cores": max(other, 0.0)}


def _machine_busy_seconds() -> float:
    """CPU seconds all processes have used since boot (Linux /proc/stat), NaN elsewhere."""
    try:
        with open("/proc/stat", encoding="utf-8") as stat:
            fields = [float(x) for x in stat.readline().split()[1:]]
    except OSError:
        return float("nan")
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    """CPU seconds used by this process and every process it started (psutil), NaN without psutil."""
    try:
        import psutil
    except ImportError:
        return float("nan")
    me = psutil.Process()
    total = 0.0
    for process in [me, *me.children(recursive=True)]:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            continue
    return total



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, nargs="+", default=[0], help="samples per kernel call (0: automatic)")
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# {cpu_model()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, "
          f"load average {load:.2f} before the run")
    print(f"# PSA of adult_conventional: {args.samples} samples x {args.patients} patients x 3 strategies "
          "(+ the base case)")
    print(f"{'workers':>7} {'batch':>5} {'tasks':>6} {'seconds':>8} {'tasks/min':>10} {'speed-up':>9} {'efficiency':>10} "
          f"{'other load':>10}")
    with tempfile.TemporaryDirectory() as root:
        sweep_file = Path(root) / "bench_psa.yaml"
        sweep_file.write_text(SWEEP.format(patients=args.patients, samples=args.samples), encoding="utf-8")
        baseline = None
        for workers in args.workers:
            for k, batch in enumerate(args.batch):
                row = measure(sweep_file, Path(root) / f"out_{workers}_{k}", workers, batch or None)
                baseline = baseline or row["tasks_per_minute"] / row["workers"]
                speed_up = row["tasks_per_minute"] / baseline
                print(f"{workers:>7} {row['batch']:>5} {row['tasks']:>6} {row['seconds']:>8.1f} {row['tasks_per_minute']:>10.1f} "
                      f"{speed_up:>8.2f}x {speed_up / workers:>10.0%} {row['other_cores']:>5.2f} cores")
                sys.stdout.flush()


if __name__ == "__main__":
    main()
