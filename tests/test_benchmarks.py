"""The engine benchmark still runs (its measurements, at a tiny size)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_engines


def test_engine_measurement_reports_speed_and_memory():
    row = bench_engines.measure("bordeaux_cohort", 100, "compiled")
    assert row["trajectories_per_second"] > 0 and row["peak_memory_mib"] > 0 and row["episodes"] > 0


def test_psa_draws_response_probabilities_and_extrapolates_a_partial_run():
    models = bench_engines.psa_models("adult_conventional_bordeaux", 3, 50)
    probabilities = {m.treatments[0].response_probability for m in models}
    assert len(probabilities) == 3 and all(0 < p < 1 for p in probabilities)
    row = bench_engines.measure_psa("adult_conventional_bordeaux", 4, 50, "compiled", 2)
    assert row["extrapolated"] and row["seconds"] > 0


def test_same_tables_finds_a_changed_table(tmp_path, monkeypatch, capsys):
    import same_tables
    from sim.loader import load_scenario
    from sim.model import compile_model
    from sim.runner import simulate

    loaded = load_scenario("bordeaux_cohort", {"settings.patients": 40})
    tables = simulate(compile_model(loaded.scenario, loaded.name), engine="compiled", progress=False)
    monkeypatch.setattr(same_tables, "runs", lambda: iter([("bordeaux_cohort-compiled", tables)]))
    for mode, expected in (("save", 0), ("check", 0)):
        monkeypatch.setattr(sys, "argv", ["same_tables.py", mode, str(tmp_path / "baseline")])
        assert same_tables.main() == expected
    tables.episodes.loc[0, "stop"] += 1e-12  # one number, off in its last digits
    assert same_tables.main() == 1
    assert "different: bordeaux_cohort-compiled episodes" in capsys.readouterr().out


def test_kernel_benchmark_times_the_kernel_call_alone():
    import bench_kernel

    row = bench_kernel.measure("bordeaux_cohort", 60, 1)
    assert row["trajectories"] % 60 == 0 and row["kernel_cpu_s"] >= 0 and row["rows"][0] > 0


def test_report_benchmark_draws_a_report_from_tables_in_memory(tmp_path, monkeypatch, capsys):
    import bench_report
    from tiny_runs import tiny_run, write_run_dir

    run_dir = write_run_dir(tmp_path, tiny_run(patients=60, seed=1))
    out = tmp_path / "report" / run_dir.name
    monkeypatch.setattr(sys, "argv", ["bench_report.py", "--run-dir", str(run_dir), "--out", str(out)])
    bench_report.main()
    assert (out / "report.html").is_file() and (out / "tables" / "summary.csv").is_file()
    assert "report wall time" in capsys.readouterr().out
