"""More of issue 19's catalogue: sweep and economics files, life tables, damaged manifests,
contradictory eligibility, mistyped conditions, non-finite numbers, zero frequencies and
self-referring components or extends. Each ends in exit code 2 and one message naming the
file and the key path, at once, and writes nothing.
"""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

from sim.app.cli import main

BASE = """
settings: {patients: 5, horizon: 2 years, seed: 1}
population:
  covariates:
    sex: {levels: {female: 0.5, male: 0.5}}
    age_years: {dist: normal, mean: 40, sd: 12, clip: [18, 90]}
treatments:
  drug_a:
    label: Drug A
    assess_at: {dist: fixed, value: 3 months}
    response: {events: 5, n: 10}
  drug_b:
    label: Drug B
    assess_at: {dist: fixed, value: 3 months}
    response: {p: 0.5}
strategies:
  only_a:
    lines: [drug_a, drug_b]
"""

ECONOMICS = """
name: small
currency: GBP
price_year: 2024
willingness_to_pay: [20000]
discount: {costs: {rate_per_year: 0.035}, qalys: {rate_per_year: 0.035}, method: annual}
treatments:
  drug_a:
    price: {amount: 1, per: 1, unit: mg, source: x}
    dose: {amount: 10, unit: mg, every: 1 week, source: x}
  drug_b:
    price: {amount: 2, per: 1, unit: mg, source: x}
    dose: {amount: 10, unit: mg, every: 1 week, source: x}
utilities:
  controlled_on_systemic: {value: 0.69, source: x}
  topical: {value: 0.69, source: x}
  uncontrolled_on_systemic: {value: 0.53, source: x}
  supportive_care: {value: 0.53, source: x}
"""

DRUG_B = "    response: {p: 0.5}\n"


def one_message(args, file, *fragments):
    """Run `adpath ARGS`; check the single-message refusal naming `file` and every fragment."""
    started = time.perf_counter()
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert time.perf_counter() - started < 5, "a refusal comes at once"
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert str(file) in errors[0], result.output
    for fragment in fragments:
        assert fragment in errors[0], result.output
    return errors[0]


# ------------------------------------------------------------------ scenarios


SCENARIO_CASES = {
    "after_failure_of_itself": (BASE.replace(DRUG_B, DRUG_B + "    eligibility: {after_failure_of: [drug_b]}\n"),
                                ["treatments.drug_b.eligibility.after_failure_of", "its own failure"]),
    "after_failure_of_each_other": (
        BASE.replace(DRUG_B, DRUG_B + "    eligibility: {after_failure_of: [drug_a]}\n").replace(
            "    response: {events: 5, n: 10}\n", "    response: {events: 5, n: 10}\n"
            "    eligibility: {after_failure_of: [drug_b]}\n"),
        ["treatments.drug_a.eligibility.after_failure_of", "each eligible only after the other's failure"]),
    "at_least_on_a_categorical_covariate": (
        BASE.replace(DRUG_B, DRUG_B + "    eligibility: {when: [{covariate: sex, at_least: 2}]}\n"),
        ["treatments.drug_b.eligibility.when[0]", "categorical covariate", "in or not_in"]),
    "in_on_a_numeric_covariate": (
        BASE.replace(DRUG_B, DRUG_B + "    eligibility: {when: [{covariate: age_years, in: [a, b]}]}\n"),
        ["treatments.drug_b.eligibility.when[0]", "numeric covariate", "at_least or below"]),
    "modifier_at_least_on_a_categorical_covariate": (
        BASE.replace(DRUG_B, DRUG_B + "    response_modifiers: [{when: {covariate: sex, at_least: 1}, odds_ratio: 2}]\n"),
        ["treatments.drug_b.response_modifiers[0].when", "categorical covariate"]),
    "nan_threshold": (
        BASE.replace(DRUG_B, DRUG_B + "    response_modifiers: [{when: {covariate: age_years, at_least: .nan}, "
                                      "odds_ratio: 2}]\n"),
        ["treatments.drug_b.response_modifiers[0].when", "finite"]),
    "infinite_odds_ratio": (
        BASE.replace(DRUG_B, DRUG_B + "    response_modifiers: [{when: {covariate: age_years, at_least: 30}, "
                                      "odds_ratio: .inf}]\n"),
        ["treatments.drug_b.response_modifiers[0].odds_ratio", "finite"]),
    "nan_clip": (BASE.replace("clip: [18, 90]", "clip: [18, .nan]"), ["population.covariates.age_years", "clip"]),
    "infinite_clip": (BASE.replace("clip: [18, 90]", "clip: [-.inf, 90]"), ["population.covariates.age_years", "clip"]),
    "nan_probability": (BASE.replace("{p: 0.5}", "{p: .nan}"), ["treatments.drug_b.response", "outside [0, 1]"]),
    "infinite_patients": (BASE.replace("patients: 5", "patients: .inf"), ["settings.patients", "finite"]),
    "nan_sd": (BASE.replace("sd: 12", "sd: .nan"), ["population.covariates.age_years.sd", "not finite"]),
    "infinite_duration": (BASE.replace("value: 3 months}\n" + DRUG_B, "value: .inf}\n" + DRUG_B),
                          ["treatments.drug_b.assess_at.value", "not finite"]),
    "extends_itself": ("extends: scenario.yaml\n" + BASE, ["extends", "extends cycle"]),
    "extends_a_number": ("extends: 5\n" + BASE, ["extends", "must name a file"]),
    "extends_nothing": ("extends: nothere.yaml\n", ["extends", "cannot find 'nothere.yaml'"]),
}


@pytest.mark.parametrize("case", sorted(SCENARIO_CASES))
def test_a_malformed_scenario_is_refused_in_one_message(write_scenario, case):
    text, fragments = SCENARIO_CASES[case]
    path = write_scenario(text)
    one_message(["validate", path], path, *fragments)


def test_two_scenarios_that_extend_each_other_are_refused(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    one_message(["validate", tmp_path / "a.yaml"], tmp_path / "a.yaml", "extends cycle: a.yaml -> b.yaml -> a.yaml")


def test_a_condition_of_the_right_kind_is_accepted(write_scenario):
    path = write_scenario(BASE.replace(DRUG_B, DRUG_B + "    response_modifiers: [{when: {covariate: sex, in: [male]}, "
                                                        "odds_ratio: 2}]\n"))
    assert CliRunner().invoke(main, ["validate", str(path)]).exit_code == 0


def test_long_treatment_and_strategy_names_stay_valid(write_scenario, tmp_path):
    path = write_scenario(BASE.replace("drug_b", "b" * 300).replace("only_a", "s" * 300))
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "run.json").is_file()


# ---------------------------------------------------------------- life tables

LIFE_TABLES = {
    "missing_columns": ("age,px\n0,0.1\n1,0.2\n", "missing the columns"),
    "empty": ("age,qx\n", "missing the columns"),
    "ages_not_in_order": ("age,qx\n0,0.1\n2,0.2\n1,0.3\n", "consecutive whole years"),
    "negative_rate": ("age,qx\n0,-0.1\n1,0.2\n", "every qx must lie in [0, 1]"),
    "rate_above_one": ("age,qx\n0,1.5\n1,0.2\n", "every qx must lie in [0, 1]"),
    "nan_rate": ("age,qx\n0,nan\n1,0.1\n", "every qx must lie in [0, 1]"),
    "text_rate": ("age,qx\n0,abc\n1,0.2\n", "not a number"),
}


@pytest.mark.parametrize("case", sorted(LIFE_TABLES))
def test_a_malformed_life_table_is_refused_in_one_message(write_scenario, tmp_path, case):
    csv, fragment = LIFE_TABLES[case]
    table = tmp_path / "table.csv"
    table.write_text(csv)
    path = write_scenario(BASE + "mortality: {life_table: table.csv, age_covariate: age_years, source: x}\n")
    one_message(["validate", path], table, fragment, "age,qx")


# --------------------------------------------------------------------- sweeps

SWEEP_CASES = {
    "yaml_syntax": ("base: scenario.yaml\nvary: {a: [1, 2}\n", ["YAML syntax error"]),
    "unknown_key": ("base: scenario.yaml\nvarry: {settings.patients: [10]}\n", ["varry", "did you mean 'vary'"]),
    "a_list": ("- 1\n- 2\n", ["a sweep file is a mapping"]),
    "duplicate_key": ("base: scenario.yaml\nbase: scenario.yaml\nvary: {settings.patients: [10]}\n", ["appears twice"]),
    "missing_base": ("base: nothere.yaml\nvary: {settings.patients: [10]}\n", ["base", "no such file"]),
    "unknown_path": ("base: scenario.yaml\nvary: {treatments.nope.response.p: [0.1]}\n",
                     ["vary.treatments.nope.response.p", "no 'nope' under treatments"]),
    "nan_value": ("base: scenario.yaml\nvary: {treatments.drug_b.response.p: [.nan]}\n",
                  ["vary.treatments.drug_b.response.p[0]", "outside [0, 1]"]),
    "no_samples": ("base: scenario.yaml\npsa: {samples: 0}\n", ["psa.samples"]),
    "unknown_economics": ("base: scenario.yaml\neconomics: nothere\nvary: {settings.patients: [10]}\n",
                          ["economics", "unknown economic setting"]),
}


@pytest.mark.parametrize("case", sorted(SWEEP_CASES))
def test_a_malformed_sweep_is_refused_in_one_message(write_scenario, tmp_path, case):
    write_scenario(BASE)
    text, fragments = SWEEP_CASES[case]
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(text)
    out = tmp_path / "out"
    one_message(["sweep", sweep, "--out", out, "--quiet", "--workers", "1"], sweep, *fragments)
    assert not out.exists()


@pytest.mark.parametrize("damage", ["{not json", "[1, 2]", "\xff\xfe"])
def test_a_damaged_sweep_manifest_is_named_when_resuming_or_reporting(write_scenario, tmp_path, damage):
    write_scenario(BASE)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("base: scenario.yaml\nvary: {settings.patients: [4, 5]}\n")
    out = tmp_path / "out"
    assert CliRunner().invoke(main, ["sweep", str(sweep), "--out", str(out), "--quiet", "--workers", "1"]).exit_code == 0
    (out / "sweep.json").write_text(damage, encoding="latin-1")
    before = sorted(p.name for p in out.iterdir())
    for args in (["sweep", sweep, "--out", out, "--quiet", "--workers", "1"], ["report", out]):
        one_message(args, out / "sweep.json", "damaged", "delete the directory")
    assert sorted(p.name for p in out.iterdir()) == before


def test_a_damaged_run_manifest_is_replaced_by_the_next_run(write_scenario, tmp_path):
    path = write_scenario(BASE)
    out = tmp_path / "out"
    assert CliRunner().invoke(main, ["run", str(path), "--out", str(out), "--quiet"]).exit_code == 0
    (out / "run.json").write_bytes(b"\xff\xfe garbage")
    assert CliRunner().invoke(main, ["run", str(path), "--out", str(out), "--quiet"]).exit_code == 0
    assert (out / "run.json").read_text(encoding="utf-8").startswith("{")


# ------------------------------------------------------------------ economics

ECONOMICS_CASES = {
    "yaml_syntax": (ECONOMICS + "treatments: {a: [1\n", ["YAML syntax error"]),
    "unknown_key": (ECONOMICS + "utilitys: {}\n", ["utilitys", "did you mean 'utilities'"]),
    "extends": ("extends: uk_nhs\n" + ECONOMICS, ["extends", "unknown key 'extends'"]),
    "a_list": ("- 1\n", ["expected a mapping"]),
    "dose_every_0_weeks": (ECONOMICS.replace("every: 1 week, source: x}\n  drug_b", "every: 0 weeks, source: x}\n  drug_b"),
                           ["treatments.drug_a.dose.every", "greater than 0"]),
    "monitoring_every_0_weeks": (
        ECONOMICS.replace("    dose: {amount: 10, unit: mg, every: 1 week, source: x}\n  drug_b",
                          "    dose: {amount: 10, unit: mg, every: 1 week, source: x}\n    monitoring:\n"
                          "      - {item: visit, cost: {amount: 10, source: x}, every: 0 weeks, source: x}\n  drug_b"),
        ["treatments.drug_a.monitoring[0].every", "greater than 0"]),
    "component_of_itself": (
        ECONOMICS.replace("  drug_b:\n    price: {amount: 2, per: 1, unit: mg, source: x}\n"
                          "    dose: {amount: 10, unit: mg, every: 1 week, source: x}\n", "  drug_b:\n    components: [drug_b]\n"),
        ["treatments.drug_b.components", "refer back to 'drug_b'"]),
    "components_of_each_other": (
        ECONOMICS.replace("    price: {amount: 1, per: 1, unit: mg, source: x}\n"
                          "    dose: {amount: 10, unit: mg, every: 1 week, source: x}\n  drug_b:\n"
                          "    price: {amount: 2, per: 1, unit: mg, source: x}\n"
                          "    dose: {amount: 10, unit: mg, every: 1 week, source: x}\n",
                          "    components: [drug_b]\n  drug_b:\n    components: [drug_a]\n"),
        ["treatments.drug_a.components", "drug_a -> drug_b -> drug_a"]),
    "nan_price": (ECONOMICS.replace("amount: 2,", "amount: .nan,"), ["treatments.drug_b.price.amount"]),
    "infinite_willingness_to_pay": (ECONOMICS.replace("[20000]", "[.inf]"), ["willingness_to_pay[0]", "finite"]),
}


@pytest.mark.parametrize("case", sorted(ECONOMICS_CASES))
def test_a_malformed_economic_setting_is_refused_in_one_message(write_scenario, tmp_path, case):
    path = write_scenario(BASE)
    text, fragments = ECONOMICS_CASES[case]
    setting = tmp_path / "setting.yaml"
    setting.write_text(text)
    out = tmp_path / "out"
    one_message(["run", path, "--economics", setting, "--out", out, "--quiet"], setting, *fragments)
    assert not out.exists()


def test_the_small_economic_setting_is_valid(write_scenario, tmp_path):
    setting = tmp_path / "setting.yaml"
    setting.write_text(ECONOMICS)
    result = CliRunner().invoke(main, ["run", str(write_scenario(BASE)), "--economics", str(setting), "--out",
                                       str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 0, result.output
