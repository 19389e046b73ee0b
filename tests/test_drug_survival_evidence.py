"""First-line drug survival of the bundled defaults against the real-world figures they cite.

Each published point of analysis/drug_survival_evidence.csv is labelled: an input
reproduction (the figure was used to derive the parameters: meeting it checks the
derivation, not the model) or a validation (the model predicts it). Enforced points must
lie within 10 percentage points of the simulated Kaplan-Meier drug survival (4,000
patients: the Monte Carlo SE of a survival near 0.5 is about 0.01, far below the
tolerance). Points that are not enforced say why.
"""

from __future__ import annotations

import pytest

from analysis.real_world import TOLERANCE, compare, evidence_table
from sim.loader import bundled_dir, load_scenario, read_yaml
from sim.model import compile_model
from sim.runner import simulate

PATIENTS = 4000
SCENARIOS = ("modern_adult", "adult_conventional")
DRUGS = ("dupilumab", "upadacitinib", "cyclosporine", "methotrexate")


@pytest.fixture(scope="module")
def comparisons():
    tables = {}
    for name in SCENARIOS:
        loaded = load_scenario(name, {"settings.patients": PATIENTS})
        episodes = simulate(compile_model(loaded.scenario, loaded.name), progress=False).episodes
        tables[name] = compare(episodes, name)
    return tables


def test_every_point_is_labelled_and_cited():
    table = evidence_table()
    assert set(table["kind"]) == {"input_reproduction", "validation"}
    assert (table["publication"].str.len() > 10).all() and (table["where"].str.len() > 5).all()
    assert (table["n"] > 0).all() and table["survival"].between(0, 1).all()
    unexplained = table[~table["enforced"] & (table["why_not_enforced"].str.len() < 10)]
    assert unexplained.empty, unexplained


@pytest.mark.parametrize("drug", DRUGS)
def test_enforced_points_of_each_drug_are_within_ten_points(comparisons, drug):
    for scenario, table in comparisons.items():
        rows = table[(table["drug"] == drug) & table["enforced"]]
        for row in rows.itertuples():
            assert abs(row.simulated - row.survival) <= TOLERANCE, (
                f"{drug} in {scenario} at {row.months} months ({row.kind}): simulated {row.simulated:.3f}, "
                f"published {row.survival:.3f} [{row.publication}]")
    every = [table[(table["drug"] == drug) & table["enforced"]] for table in comparisons.values()]
    assert sum(len(rows) for rows in every) >= 2, f"{drug} needs at least two enforced points"


@pytest.mark.parametrize("drug", ("dupilumab", "upadacitinib", "cyclosporine", "methotrexate"))
def test_each_real_world_drug_has_a_validation_point(drug):
    table = evidence_table()
    assert ((table["drug"] == drug) & (table["kind"] == "validation") & table["enforced"]).any()


def test_the_two_copies_of_the_real_world_conventional_evidence_agree():
    # A file extends one parent, so cyclosporine and methotrexate are written in both files.
    conventional = read_yaml(bundled_dir() / "evidence" / "conventional_real_world.yaml")["treatments"]
    biologics = read_yaml(bundled_dir() / "evidence" / "biologics_real_world.yaml")["treatments"]
    for drug in ("cyclosporine", "methotrexate"):
        assert conventional[drug] == biologics[drug]


def test_the_run_report_has_the_validation_section(tmp_path):
    from click.testing import CliRunner

    from sim.app.cli import main

    out = tmp_path / "modern"
    result = CliRunner().invoke(main, ["run", "modern_adult", "--patients", "300", "--horizon", "3 years",
                                       "--out", str(out), "--report", "--quiet"])
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Validation: drug survival against real-world cohorts" in page and "Spekhorst et al." in page
    assert (out / "figures" / "drug_survival_validation.png").exists()
    table = (out / "tables" / "drug_survival_validation.csv").read_text(encoding="utf-8")
    assert "input_reproduction" in table and "validation" in table
