"""The engine benchmark still runs (its measurements, at a tiny size)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_engines


def test_engine_measurement_reports_speed_and_memory():
    row = bench_engines.measure("bordeaux_cohort", 100, "vector")
    assert row["trajectories_per_second"] > 0 and row["peak_memory_mib"] > 0 and row["episodes"] > 0


def test_psa_draws_response_probabilities_and_extrapolates_a_partial_run():
    models = bench_engines.psa_models("adult_conventional", 3, 50)
    probabilities = {m.treatments[0].response_probability for m in models}
    assert len(probabilities) == 3 and all(0 < p < 1 for p in probabilities)
    row = bench_engines.measure_psa("adult_conventional", 4, 50, "vector", 2)
    assert row["extrapolated"] and row["seconds"] > 0
