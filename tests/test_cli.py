"""The command line end to end: run, validate, list, check, on bundled scenarios."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from click.testing import CliRunner

from sim.app.cli import main
from sim.tables import REASONS


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "adult"
    result = invoke("run", "adult_conventional", "--patients", 400, "--seed", 5, "--horizon", "5 years", "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    return out


def test_run_writes_every_output(run_dir):
    names = {path.name for path in run_dir.iterdir()}
    assert {"episodes.parquet", "patients.parquet", "adverse_events.parquet", "summary.csv", "run.json"} <= names
    assert not any(name.startswith(".") for name in names)


def test_run_applies_command_line_settings(run_dir):
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["patients"] == 400 and manifest["seed"] == 5 and manifest["horizon_months"] == 60.0
    assert manifest["engine"] == "compiled"  # auto: no limited resources
    assert manifest["random_numbers"] == "philox4x32-10" and manifest["results_version"] >= 3
    assert len(manifest["scenario_hash"]) == 64
    assert set(manifest["strategies"]) == {"csa_first", "mtx_first", "aza_first"}
    assert manifest["strategies"]["csa_first"]["lines"][0] == "cyclosporine"
    assert all(row["source"] for row in manifest["parameters"])
    assert {"numpy", "simpy", "pandas"} <= set(manifest["versions"])
    patients = pd.read_parquet(run_dir / "patients.parquet")
    assert len(patients) == 400 * 3
    assert patients["follow_up_months"].max() <= 60.0


def test_summary_holds_the_required_metrics(run_dir):
    summary = pd.read_csv(run_dir / "summary.csv")
    assert list(summary.columns) == ["strategy", "treatment", "metric", "value", "ci_low", "ci_high"]
    per_strategy = summary[summary["treatment"].isna()]
    for metric in ("returned_to_topical_ever", "on_topical_at_horizon"):
        assert set(per_strategy.loc[per_strategy["metric"] == metric, "strategy"]) == {"csa_first", "mtx_first", "aza_first"}
    per_drug = summary[summary["treatment"].notna()]
    for metric in ("drug_survival_12m", "drug_survival_24m", "drug_survival_36m", "median_drug_survival_months"):
        assert len(per_drug[per_drug["metric"] == metric]) == 12, metric
    rows = summary[summary["metric"].str.startswith("drug_survival")]
    assert rows["value"].between(0, 1).all()
    assert (rows["ci_low"] <= rows["value"]).all() and (rows["value"] <= rows["ci_high"]).all()


def test_same_seed_gives_byte_identical_tables(run_dir, tmp_path):
    again = tmp_path / "again"
    result = invoke("run", "adult_conventional", "--patients", 400, "--seed", 5, "--horizon", "5 years",
                    "--out", again, "--quiet", "--workers", 2)
    assert result.exit_code == 0, result.output
    for name in ("episodes.parquet", "patients.parquet", "adverse_events.parquet", "summary.csv"):
        assert (again / name).read_bytes() == (run_dir / name).read_bytes(), name


def test_episode_reasons_are_from_the_documented_set(run_dir):
    episodes = pd.read_parquet(run_dir / "episodes.parquet")
    assert set(episodes["reason"].astype(str)) <= set(REASONS)
    assert str(episodes["responded"].dtype) == "boolean"


def test_list_shows_bundled_scenarios_with_descriptions():
    result = invoke("list")
    assert result.exit_code == 0
    assert "adult_conventional" in result.output and "bordeaux_cohort" in result.output
    assert "Adults on conventional systemic agents" in result.output


def test_validate_reports_sources():
    result = invoke("validate", "bordeaux_cohort")
    assert result.exit_code == 0, result.output
    assert "bordeaux_practice" in result.output and "54 patients" in result.output
    assert "no source" not in result.output


def test_check_bordeaux_cohort_meets_its_enforced_targets(tmp_path):
    out = tmp_path / "bordeaux"
    result = invoke("check", "bordeaux_cohort", "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "targets.csv")
    assert len(table) == 16
    assert table.loc[table["enforced"] & table["discriminates"], "within"].all()
    # Four targets rest on 4-7 patients: their simulated 95% ranges cover most of [0, 1].
    assert "10 of 10 enforced targets that can be judged met" in result.output
    assert "4 cannot be judged" in result.output and "0 validation targets, 16 input reproductions" in result.output


def test_check_fails_when_a_target_is_missed(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "extends: bordeaux_cohort\n"
        "settings: {replicates: 40}\n"
        "targets:\n"
        "  cyclosporine_response: {metric: response_rate, treatment: cyclosporine, observed: {events: 5, n: 41}}\n"
    )
    result = invoke("check", bad, "--out", tmp_path / "bad", "--quiet")
    assert result.exit_code == 1, result.output
    assert "cyclosporine_response" in result.output


def test_python_dash_m_sim_is_the_same_command(tmp_path):
    completed = subprocess.run([sys.executable, "-m", "sim", "list"], capture_output=True, text=True, check=False)
    assert completed.returncode == 0
    assert "adult_conventional" in completed.stdout


def test_run_with_report_summarises_once(tmp_path, monkeypatch):
    """`adpath run --report` hands the run's summary to the report instead of computing it
    again (seconds at a million patients); the report's summary table is summary.csv's."""
    import analysis.report

    def not_again(*args, **kwargs):
        raise AssertionError("the report recomputed the summary")

    monkeypatch.setattr(analysis.report, "summarize_run", not_again)
    result = invoke("run", "adult_conventional", "--patients", 300, "--out", tmp_path / "run", "--report", "--quiet")
    assert result.exit_code == 0, result.output
    assert f"report: {tmp_path / 'run' / 'report.html'}" in result.output
    written = pd.read_csv(tmp_path / "run" / "summary.csv")
    in_report = pd.read_csv(tmp_path / "run" / "tables" / "summary.csv")
    pd.testing.assert_frame_equal(in_report, written)
