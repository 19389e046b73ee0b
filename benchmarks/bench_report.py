"""Time the report of a run drawn from tables in memory, as `adpath run --report` draws it.

    python benchmarks/bench_report.py --run-dir results/adult_big          # an existing run directory
    python benchmarks/bench_report.py --run-dir results/adult_big --profile /tmp/report.prof
    python benchmarks/bench_report.py --run-dir results/adult_big --out /tmp/report   # keep what it wrote

The run directory's tables are read and summarised first (not timed); the report is then
written into a scratch directory from the tables in memory, and its wall time, CPU time and
the growth of the peak resident memory are printed.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    """Parse the arguments, load the run, draw its report once and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, required=True, help="a run directory written by `adpath run`")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the report to this file")
    parser.add_argument("--out", type=Path, help="write the report here (a new directory) instead of a scratch one")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from analysis.io import load_run, run_in_memory
    from analysis.report import build_report
    from analysis.summary import summarize_run

    loaded = load_run(args.run_dir)
    summary = summarize_run(loaded.episodes, loaded.patients)
    with tempfile.TemporaryDirectory() as scratch:
        target = args.out or Path(scratch) / args.run_dir.name
        target.mkdir(parents=True)
        (target / "run.json").write_bytes((args.run_dir / "run.json").read_bytes())
        run = run_in_memory(target, loaded.episodes, loaded.patients, loaded.adverse_events, loaded.bursts, summary)
        del loaded
        before_peak, before, start = _peak_mib(), os.times(), time.perf_counter()
        profile = cProfile.Profile(time.process_time) if args.profile else None
        if profile:
            profile.enable()
        build_report(target, summary=summary, run=run)
        if profile:
            profile.disable()
            profile.dump_stats(args.profile)
        wall, after = time.perf_counter() - start, os.times()
    print(f"# {len(run.episodes):,} episodes, {len(run.patients):,} patient trajectories ({args.run_dir})")
    print(f"report wall time      {wall:7.2f} s")
    print(f"CPU user / system     {after.user - before.user:7.2f} / {after.system - before.system:.2f} s")
    print(f"peak memory           {_peak_mib():7.0f} MiB ({_peak_mib() - before_peak:+.0f} MiB during the report)")


if __name__ == "__main__":
    main()
