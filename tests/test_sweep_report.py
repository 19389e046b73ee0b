"""Sweep summaries and the sweep report: tornado order, PSA tables, the self-contained
HTML page, and `adpath report` on a sweep directory."""

from __future__ import annotations

import re
import textwrap

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from analysis.sweep_summary import (
    key_metrics,
    load_sweep_results,
    one_way_table,
    probability_best,
    psa_increments,
    psa_table,
)
from sim.app.cli import main

SWEEP = """
base: adult_conventional
vary:
  treatments.cyclosporine.cap: [6 months, none]
  settings.patients: [80]
  settings.horizon: [4 years]
one_way:
  relapse.probability: {low: 0.1, high: 0.8}
  treatments.methotrexate.response: {low: 0.45, high: 0.65}
psa: {samples: 6}
seed: 5
"""


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    path = root / "report.yaml"
    path.write_text(textwrap.dedent(SWEEP), encoding="utf-8")
    out = root / "out"
    result = CliRunner().invoke(main, ["sweep", str(path), "--out", str(out), "--workers", "1", "--quiet", "--report"])
    assert result.exit_code == 0, result.output
    assert f"report: {out / 'report.html'}" in result.output
    return out


def test_the_report_is_one_self_contained_page(sweep_dir):
    page = (sweep_dir / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page and "http://" not in page and "https://" not in page
    images = re.findall(r'<img src="data:image/png;base64,', page)
    figures = sorted(p.name for p in (sweep_dir / "figures").glob("*.png"))
    assert len(images) == len(figures)
    assert "grid_treatments_cyclosporine_cap.png" in figures
    for variant in (0, 1):
        assert f"tornado_on_topical_at_horizon_v{variant}.png" in figures
        assert f"psa_distributions_v{variant}.png" in figures and f"psa_increments_v{variant}.png" in figures
    for heading in ("What was run", "Parameters", "Grid", "One-way sensitivity analysis",
                    "Probabilistic sensitivity analysis", "Probability each strategy is best", "Per-variant results"):
        assert heading in page
    assert {p.name for p in (sweep_dir / "tables").glob("*.csv")} >= {"one_way.csv", "psa_summary.csv", "grid.csv"}


def test_adpath_report_on_a_sweep_directory_builds_the_sweep_report(sweep_dir, monkeypatch):
    import analysis.sweep_report

    built = []
    monkeypatch.setattr(analysis.sweep_report, "build_sweep_report",
                        lambda directory, svg=False: built.append(directory) or directory / "report.html")
    result = CliRunner().invoke(main, ["report", str(sweep_dir)])
    assert result.exit_code == 0, result.output
    assert [d.name for d in built] == [sweep_dir.name]  # a staged copy of it, which then replaces it


def test_the_tornado_is_ordered_by_swing(sweep_dir):
    table = one_way_table(load_sweep_results(sweep_dir))
    assert set(table["parameter"]) == {"relapse.probability", "treatments.methotrexate.response"}
    assert len(table) == 2 * 3 * 3 * 2  # variants x strategies x metrics x parameters
    for _, group in table.groupby(["variant", "strategy", "metric"]):
        swings = group["swing"].dropna().to_numpy()
        assert (np.diff(swings) <= 0).all()
    relapse = table[table["parameter"] == "relapse.probability"].iloc[0]
    assert (relapse["low_setting"], relapse["high_setting"]) == (0.1, 0.8)
    assert relapse["base_setting"] == pytest.approx(15 / 37)


def test_more_relapses_mean_fewer_patients_on_topical_therapy(sweep_dir):
    table = one_way_table(load_sweep_results(sweep_dir))
    rows = table[(table["parameter"] == "relapse.probability") & (table["metric"] == "on_topical_at_horizon")]
    assert (rows["at_high"] < rows["at_low"]).all()


def test_probabilities_of_being_best_sum_to_one(sweep_dir):
    best = probability_best(load_sweep_results(sweep_dir))
    sums = best.groupby(["variant", "metric"])["probability"].sum()
    assert np.allclose(sums, 1.0)


def test_psa_summary_and_increments_cover_every_sample(sweep_dir):
    results = load_sweep_results(sweep_dir)
    table = psa_table(results)
    assert (table["samples"] == 6).all()
    assert ((table["p2_5"] <= table["median"]) & (table["median"] <= table["p97_5"])).all()
    increments = psa_increments(results)
    assert set(increments["reference"]) == {"csa_first"}
    assert set(increments["strategy"]) == {"mtx_first", "aza_first"}
    assert len(increments) == 2 * 6 * 2 * 3  # variants x samples x comparisons x metrics


def test_replicates_are_averaged_with_pooled_standard_errors():
    rows = pd.DataFrame({
        "task": ["a", "b"], "variant": 0, "analysis": "point", "parameter": None, "bound": None,
        "sample": pd.array([pd.NA, pd.NA], dtype="Int64"), "replicate": [0, 1], "strategy": "s", "treatment": None,
        "metric": "returned_to_topical_ever", "value": [0.4, 0.6], "ci_low": [0.3, 0.5], "ci_high": [0.5, 0.7],
    })
    out = key_metrics(rows).iloc[0]
    se = np.sqrt(2 * (0.2 / (2 * 1.959964)) ** 2) / 2
    assert out["value"] == pytest.approx(0.5) and out["replicates"] == 2
    assert out["ci_low"] == pytest.approx(0.5 - 1.959964 * se) and out["ci_high"] == pytest.approx(0.5 + 1.959964 * se)
