"""`extends` for economic settings and sweep files, `null` to remove an inherited key,
`adpath sweep --samples/--seed`, and `adpath list` of every bundled kind."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from sim.app.cli import main
from sim.app.sweep import load_sweep
from sim.economics import economics_document, load_economics
from sim.loader import load_scenario

TREATMENTS = {"dupilumab": [], "methotrexate": [], "cyclosporine": [], "upadacitinib": []}


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_an_economic_setting_inherits_and_overrides_one_price(tmp_path):
    child = _write(tmp_path / "cheaper.yaml",
                   "extends: uk_nhs\ntreatments:\n  dupilumab:\n    price: {amount: 632.45, per: 600, unit: mg, "
                   "source: 'assumption: half the list price'}\n")
    parent = load_economics("uk_nhs", TREATMENTS)
    setting = load_economics(str(child), TREATMENTS)
    assert setting.name == "cheaper"  # its own name, not the parent's
    assert setting.drug_per_month["dupilumab"][0] == pytest.approx(parent.drug_per_month["dupilumab"][0] * 632.45 / 1264.89)
    assert setting.drug_per_month["upadacitinib"] == parent.drug_per_month["upadacitinib"]
    assert setting.utilities == parent.utilities and setting.willingness_to_pay == parent.willingness_to_pay
    document, _ = economics_document(str(child))
    assert document["treatments"]["dupilumab"]["monitoring"]  # the rest of dupilumab's costing is kept


def test_null_removes_an_inherited_key_of_an_economic_setting(tmp_path):
    child = _write(tmp_path / "no_burst.yaml", "extends: uk_nhs\nburst: null\n")
    assert load_economics(str(child), TREATMENTS).burst == (0.0, 0.0)
    assert load_economics("uk_nhs", TREATMENTS).burst != (0.0, 0.0)


def test_null_for_a_required_key_says_so_in_one_message(tmp_path):
    child = _write(tmp_path / "bad.yaml", "extends: uk_nhs\ndiscount: null\n")
    result = CliRunner().invoke(main, ["run", "modern_adult", "--patients", "10", "--economics", str(child),
                                       "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 2, result.output
    assert f"{child}: discount: this key is required, but null here removes the inherited value" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_null_removes_an_inherited_strategy(tmp_path):
    child = _write(tmp_path / "two.yaml", "extends: modern_adult\nstrategies:\n  treat_to_target: null\n")
    assert list(load_scenario(child).scenario.strategies) == ["conventional_first", "biologic_first"]


def test_a_sweep_extends_a_bundled_sweep(tmp_path):
    child = _write(tmp_path / "small_psa.yaml",
                   "extends: modern_psa\nvary:\n  settings.patients: [50]\n  settings.horizon: [2 years]\n"
                   "psa:\n  samples: 4\n  parameters:\n    economics.utilities.topical.value: null\n")
    plan = load_sweep(child)
    parent = load_sweep("modern_psa", samples=1)
    assert plan.name == "small_psa" and plan.economics.name == "uk_nhs" and plan.seed == parent.seed
    assert sum(t.analysis == "psa" for t in plan.tasks) == 4
    assert plan.model(plan.tasks[0]).patients == 50
    drawn = set(plan.spec.psa.parameters)
    assert "economics.utilities.topical.value" not in drawn and "economics.utilities.supportive_care.value" in drawn


def test_samples_and_seed_from_the_command_line(tmp_path):
    plan = load_sweep("modern_psa", samples=3, seed=11)
    assert plan.seed == 11 and sum(t.analysis == "psa" for t in plan.tasks) == 3
    result = CliRunner().invoke(main, ["sweep", "csa_cap", "--samples", "5", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "--samples" in result.output and "no psa: block" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("files, message", [
    ({"a.yaml": "extends: b.yaml\nbase: modern_adult\n", "b.yaml": "extends: a.yaml\n"}, "extends cycle"),
    ({"a.yaml": "extends: nowhere.yaml\none_way: {}\n"}, "cannot find 'nowhere.yaml'"),
    ({"a.yaml": "extends: modern_psa\nbase: null\n"}, "base: this key is required, but null here removes"),
])
def test_bad_sweep_inheritance_is_refused_in_one_message(tmp_path, files, message):
    for name, text in files.items():
        _write(tmp_path / name, text)
    result = CliRunner().invoke(main, ["sweep", str(tmp_path / "a.yaml"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert message in result.output and "a.yaml" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_economics_extends_cycle_is_refused(tmp_path):
    _write(tmp_path / "a.yaml", "extends: b.yaml\n")
    _write(tmp_path / "b.yaml", "extends: a.yaml\n")
    result = CliRunner().invoke(main, ["run", "modern_adult", "--economics", str(tmp_path / "a.yaml"),
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "extends cycle" in result.output and not (tmp_path / "out").exists()


def test_list_shows_sweeps_and_economic_settings():
    result = CliRunner().invoke(main, ["list"])
    assert result.exit_code == 0
    for name in ("modern_adult_lifetime", "modern_psa", "csa_cap", "uk_nhs", "us_payer"):
        assert name in result.output
    assert "sweeps (adpath sweep NAME)" in result.output and "economic settings" in result.output


def test_the_bundled_modern_psa_is_lifetime_like_its_base_case():
    plan = load_sweep("modern_psa", samples=1)
    base = load_scenario("modern_adult_lifetime")
    model = plan.model(plan.tasks[0])
    assert model.horizon_months == base.scenario.settings.horizon == 720
    assert plan.base.scenario.loss_to_followup is None and plan.base.scenario.mortality is not None
    assert plan.economics.name == "uk_nhs"
