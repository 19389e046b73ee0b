"""The HTML report: content, embedded figures, older run directories, a real browser."""

from __future__ import annotations

import base64
import dataclasses
import re
import shutil
import subprocess

import pandas as pd
import pytest
from tiny_runs import STRATEGIES, TREATMENT_LABELS, tiny_run, write_run_dir

from analysis.io import load_run
from analysis.report import build_report

FIGURES = (
    "pathways",
    "drug_survival",
    "discontinuation_reasons",
    "topical_return_at_horizon",
    "topical_return_over_time",
    "state_occupancy",
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run_dir = write_run_dir(tmp_path_factory.mktemp("run"), tiny_run(patients=150, seed=3))
    return build_report(run_dir)


def _images(page: str) -> list[bytes]:
    return [
        base64.b64decode(data)
        for data in re.findall(r'<img src="data:image/png;base64,([^"]*)"', page)
    ]


def test_report_holds_every_strategy_figure_and_table(report):
    page = report.read_text(encoding="utf-8")
    manifest = load_run(report.parent).manifest
    for name, info in manifest["strategies"].items():
        assert info["label"] in page
        pathway = " → ".join(TREATMENT_LABELS[t] for t in STRATEGIES[name])
        assert pathway in page
    for figure in FIGURES:
        assert f'id="{figure}"' in page
        assert (report.parent / "figures" / f"{figure}.png").exists()
    images = _images(page)
    assert len(images) == len(FIGURES) == page.count("<img")
    assert all(len(image) > 5_000 and image.startswith(PNG_SIGNATURE) for image in images)
    for parameter in manifest["parameters"]:
        assert parameter["path"] in page
    assert "Headline results" in page and "Differences between strategies" in page
    assert "<script" not in page and "http://" not in page and "https://" not in page


def test_tables_are_written_and_linked_with_units(report):
    page = report.read_text(encoding="utf-8")
    tables = sorted((report.parent / "tables").glob("*.csv"))
    assert len(tables) >= 10
    for table in tables:
        assert f'href="tables/{table.name}"' in page
    medians = pd.read_csv(report.parent / "tables" / "median_drug_survival.csv")
    assert {"median_months", "ci_low_months", "ci_high_months"} <= set(medians.columns)
    rates = pd.read_csv(report.parent / "tables" / "adverse_event_rates.csv")
    assert "rate_per_100_patient_years" in rates.columns
    summary = pd.read_csv(report.parent / "tables" / "summary.csv")
    assert list(summary.columns) == [
        "strategy",
        "treatment",
        "metric",
        "value",
        "ci_low",
        "ci_high",
    ]


def test_report_from_an_older_run_directory(tmp_path):
    run = tiny_run(patients=80, replicates=2, seed=4)
    omit = (
        "adverse_events.parquet",
        "scenario",
        "strategies",
        "treatments",
        "parameters",
        "horizon_months",
        "engine",
        "seed",
        "versions",
    )
    run_dir = write_run_dir(tmp_path / "old", run, omit=omit)
    page = build_report(run_dir, svg=True).read_text(encoding="utf-8")
    assert "not recorded" in page
    assert "no adverse-events table" in page
    assert "no parameter table" in page
    assert "cyclosporine → methotrexate → azathioprine" in page  # pathway from the episodes
    # No pathway diagram: an older manifest does not declare the strategies' rules.
    assert len(_images(page)) == len(FIGURES) - 1
    assert len(list((run_dir / "figures").glob("*.svg"))) == len(FIGURES) - 1


def test_report_without_a_manifest(tmp_path):
    run_dir = write_run_dir(
        tmp_path / "bare", tiny_run(patients=40, seed=6), omit=("run.json",)
    )
    page = build_report(run_dir).read_text(encoding="utf-8")
    assert "bare" in page and len(_images(page)) == len(FIGURES) - 1  # no pathway diagram without a manifest


def test_missing_tables_give_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="patients.parquet"):
        synthetic = tiny_run(patients=10, seed=1)
        synthetic.episodes.to_parquet(tmp_path / "episodes.parquet")
        build_report(tmp_path)


_LOAD_CHECK = (
    "<script>window.addEventListener('load',()=>{const i=[...document.images];"
    "document.body.dataset.images=i.length;"
    "document.body.dataset.loaded=i.filter(x=>x.complete&&x.naturalWidth>0).length;});</script>"
)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_every_image_loads_in_headless_chromium(report, tmp_path):
    # A copy of the page with a probe that counts the images the browser decoded.
    probe = tmp_path / "probe.html"
    probe.write_text(
        report.read_text(encoding="utf-8").replace("</body>", _LOAD_CHECK + "</body>"),
        encoding="utf-8",
    )
    command = [
        shutil.which("chromium"),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        probe.as_uri(),
    ]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    body = re.search(r"<body([^>]*)>", dom).group(1)
    images = int(re.search(r'data-images="(\d+)"', body).group(1))
    loaded = int(re.search(r'data-loaded="(\d+)"', body).group(1))
    assert images == loaded == len(FIGURES)


def test_report_of_a_run_in_which_no_patient_started_a_drug(tmp_path):
    """Every figure is still drawn (the episode figures say why they are empty) and every
    patient is accounted for in the state tables."""
    run = tiny_run(patients=40, seed=4)
    patients = run.patients.copy()
    patients["final_state"] = patients["final_state"].where(
        patients["final_state"].isin(["topical", "lost_to_followup"]), "supportive_care")
    nothing = dataclasses.replace(run, episodes=run.episodes.iloc[:0], adverse_events=run.adverse_events.iloc[:0],
                                  patients=patients)
    report = build_report(write_run_dir(tmp_path, nothing))
    page = report.read_text(encoding="utf-8")
    assert len(_images(page)) == len(FIGURES)
    occupancy = pd.read_csv(report.parent / "tables" / "state_occupancy_monthly.csv")
    assert set(occupancy["state"]) <= {"awaiting_treatment", "topical", "supportive_care", "lost_to_followup"}


def test_report_of_children_observed_until_18(tmp_path):
    """The run table says where observation ends, and the state figure's table shows the
    children whose follow-up ended at 18 rather than carrying them on."""
    from click.testing import CliRunner

    from sim.app.cli import main

    out = tmp_path / "children"
    result = CliRunner().invoke(main, ["run", "pediatric", "--patients", "200", "--quiet", "--report", "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Observation ends at age" in page and "18 years (covariate age_years)" in page
    assert "On topical therapy at the end of observation" in page
    assert "of the patients ended before the horizon" in page
    occupancy = pd.read_csv(out / "tables" / "state_occupancy_monthly.csv")
    at_horizon = occupancy[occupancy["time_months"] == occupancy["time_months"].max()]
    assert (at_horizon.loc[at_horizon["state"] == "follow_up_ended", "proportion"] > 0.3).all()


def test_an_adult_report_has_no_age_limit(report):
    page = report.read_text(encoding="utf-8")
    assert "Observation ends at age" not in page and "On topical therapy at the end of observation" not in page
    assert "On topical therapy at 60 months" in page


def test_a_difference_that_rounds_to_zero_has_no_minus_sign():
    from analysis.report import number_text as _number

    assert _number(0.0, -0.0004, 0.0003, " mo") == "0.00 mo (0.00 to 0.00)"
    assert _number(-0.34, -0.41, -0.26, " mo") == "\u22120.34 mo (\u22120.41 to \u22120.26)"


def test_run_report_is_drawn_from_the_tables_in_memory(tmp_path, monkeypatch):
    """`adpath run --report` reads nothing back from its Parquet files (reading a million
    patients back took seconds and held every table twice), and its report is the one
    `adpath report RUN_DIR` draws from the written files, economics included."""
    from click.testing import CliRunner

    import analysis.io
    import analysis.report
    from sim.app.cli import main

    def read_back(*args, **kwargs):
        raise AssertionError("the report read the run back from disk")

    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        for module, name in ((analysis.io, "load_run"), (analysis.report, "load_run"), (pd, "read_parquet")):
            patch.setattr(module, name, read_back)
        result = CliRunner().invoke(main, ["run", "modern_adult", "--patients", "150", "--economics", "uk_nhs",
                                           "--quiet", "--report", "--out", str(out)])
    assert result.exit_code == 0, result.output
    in_memory = {path.name: path.read_bytes() for path in (out / "tables").iterdir()}
    assert {"summary.csv", "economics.csv", "drug_survival_monthly.csv"} <= set(in_memory)
    page = (out / "report.html").read_text(encoding="utf-8")
    result = CliRunner().invoke(main, ["report", str(out)])
    assert result.exit_code == 0, result.output
    from_disk = {path.name: path.read_bytes() for path in (out / "tables").iterdir()}
    assert from_disk.keys() == in_memory.keys()
    assert [name for name in from_disk if from_disk[name] != in_memory[name]] == []
    assert (out / "report.html").read_text(encoding="utf-8") == page
