"""Time the analysis of a large run: drug survival, competing risks and outcomes.

    python benchmarks/bench_analysis.py                         # ~1,000,000 simulated episodes
    python benchmarks/bench_analysis.py --episodes 200000
    python benchmarks/bench_analysis.py --run-dir results/adult  # a real run directory
    python benchmarks/bench_analysis.py --report                # also time the figures

Without --run-dir the tables come from a run of ``adult_conventional`` (compiled engine) sized
to about that many episodes; simulating it is not timed. Every step runs on one
core (no step of the analysis is multi-threaded; BLAS threads are pinned to one anyway).
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from bench_engine import cpu_model  # noqa: E402  (one definition for every benchmark)

ROOT = Path(__file__).resolve().parents[1]


def simulated_tables(episodes: int, seed: int):
    """Episodes and patients tables of about ``episodes`` rows: ``adult_conventional`` (three
    strategies, 10 years) run with as many patients as that takes."""
    from sim.loader import load_scenario
    from sim.model import compile_model
    from sim.runner import simulate

    def run(patients: int):
        loaded = load_scenario("adult_conventional", {"settings.patients": patients, "settings.seed": seed})
        return simulate(compile_model(loaded.scenario, loaded.name), progress=False, engine="compiled")

    per_patient = len(run(2000).episodes) / 2000
    tables = run(max(1, round(episodes / per_patient)))
    return tables.episodes, tables.patients


def timed(label: str, timings: list, function, *args, **kwargs):
    start = time.perf_counter()
    value = function(*args, **kwargs)
    timings.append((label, time.perf_counter() - start))
    return value


def analyse(episodes, patients, report: bool) -> list[tuple[str, float]]:
    """Run every analysis of a report on the tables; return (step, seconds)."""
    from analysis.differences import strategy_differences
    from analysis.outcomes import (
        lines_used,
        patient_outcomes,
        time_to_first_response,
        topical_return,
        topical_return_at_horizon,
    )
    from analysis.states import state_occupancy
    from analysis.summary import summarize_run
    from analysis.survival import (
        cumulative_incidence,
        drug_survival,
        incidence_at,
        median_survival,
        survival_at,
    )

    t = []
    curve = timed("drug survival, every strategy × treatment", t, drug_survival, episodes)
    timed(
        "  medians and survival at 12/24/36 months",
        t,
        lambda: (median_survival(curve), survival_at(curve, [12, 24, 36])),
    )
    timed("drug survival by strategy × line", t, drug_survival, episodes, ["strategy", "line"])
    incidence = timed(
        "cumulative incidence of 5 reasons (Aalen–Johansen)", t, cumulative_incidence, episodes
    )
    timed("  incidence at 12/24/36 months", t, incidence_at, incidence, [12, 24, 36])
    timed("return to topical therapy, monthly curve", t, topical_return, episodes, patients)
    timed("return to topical therapy at the horizon", t, topical_return_at_horizon, patients)
    timed("state occupancy, monthly", t, state_occupancy, episodes, patients)
    outcomes = timed(
        "patient outcomes (incl. first response)", t, patient_outcomes, patients, episodes
    )
    timed("time to first response (KM)", t, time_to_first_response, episodes, patients)
    timed("lines used", t, lines_used, patients)
    timed("paired strategy differences", t, strategy_differences, outcomes)
    timed("summarize_run (summary.csv, recomputes its own)", t, summarize_run, episodes, patients)
    timed("costs and QALYs per patient (uk_nhs)", t, _costs, episodes, patients)
    if report:
        from analysis.plots import plot_discontinuation_reasons, plot_drug_survival, save_figure
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            timed(
                "figure: drug survival (PNG)",
                t,
                lambda: save_figure(plot_drug_survival(curve), Path(tmp) / "ds.png"),
            )
            timed(
                "figure: reasons for stopping (PNG)",
                t,
                lambda: save_figure(
                    plot_discontinuation_reasons(cumulative_incidence(episodes, by="treatment")),
                    Path(tmp) / "reasons.png",
                ),
            )
    return t


def _costs(episodes, patients):
    """Costs and QALYs of every patient in the NHS setting (drugs it does not price cost nothing)."""
    from analysis.costs import patient_costs
    from sim.economics import load_economics

    if "weight_kg" not in patients.columns:
        patients = patients.assign(weight_kg=70.0)  # a run without weights; doses are per kg
    return patient_costs(episodes, patients, load_economics("uk_nhs", {}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--episodes",
        type=int,
        default=1_000_000,
        help="approximate number of simulated episodes (default 1,000,000)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--run-dir", type=Path, help="analyse this run directory instead")
    parser.add_argument("--report", action="store_true", help="also time two figures")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.run_dir:
        from analysis.io import load_run

        start = time.perf_counter()
        run = load_run(args.run_dir)
        episodes, patients = run.episodes, run.patients
        source = f"{args.run_dir} (loaded in {time.perf_counter() - start:.2f} s)"
    else:
        episodes, patients = simulated_tables(args.episodes, args.seed)
        source = "simulated (adult_conventional, compiled engine)"
    print(f"# {cpu_model()}, Python {platform.python_version()}, one core")
    print(
        f"# {len(episodes):,} episodes, {len(patients):,} patient trajectories, "
        f"{episodes['strategy'].nunique()} strategies, {episodes['treatment'].nunique()} "
        f"treatments; {source}"
    )
    before = os.times()
    timings = analyse(episodes, patients, args.report)
    after = os.times()
    width = max(len(label) for label, _ in timings)
    for label, seconds in timings:
        print(f"{label:<{width}}  {seconds:7.2f} s")
    total = sum(s for label, s in timings if not label.startswith("figure"))
    print(f"{'total analysis (without figures)':<{width}}  {total:7.2f} s")
    user, system = after.user - before.user, after.system - before.system
    print(f"{'CPU time: user / system (incl. figures)':<{width}}  {user:5.1f} / {system:.1f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'peak resident memory':<{width}}  {peak:7.0f} MiB")


if __name__ == "__main__":
    main()
