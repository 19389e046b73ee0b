"""Everything a user can get wrong in a scenario: one clear message, exit code 2, no traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from sim.app.cli import main

BASE = """
settings: {patients: 20, horizon: 2 years, seed: 1}
treatments:
  drug_a:
    label: Drug A
    assess_at: {dist: fixed, value: 3 months}
    response: {events: 5, n: 10}
strategies:
  only_a:
    lines: [drug_a]
"""


def validate(path):
    result = CliRunner().invoke(main, ["validate", str(path)])
    return result.exit_code, result.output


def broken(write_scenario, old, new):
    assert old in BASE
    return write_scenario(BASE.replace(old, new))


@pytest.mark.parametrize(
    ("old", "new", "key_path", "fragment"),
    [
        ("patients: 20", "patients: many", "settings.patients", "expected a whole number"),
        ("response:", "respnse:", "treatments.drug_a.respnse", "did you mean 'response'"),
        ("{events: 5, n: 10}", "{p: 1.3}", "treatments.drug_a.response", "outside [0, 1]"),
        ("{events: 5, n: 10}", "{events: 12, n: 10}", "treatments.drug_a.response", "exceed n"),
        ("value: 3 months", "value: -3 months", "treatments.drug_a.assess_at.value", "negative"),
        ("value: 3 months", "value: three months", "treatments.drug_a.assess_at.value", "cannot read duration"),
        ("value: 3 months", "value: 3 fortnights", "treatments.drug_a.assess_at.value", "unknown time unit"),
        ("lines: [drug_a]", "lines: [drug_b]", "strategies.only_a.lines[0]", "unknown treatment 'drug_b'"),
        ("lines: [drug_a]", "lines: []", "strategies.only_a.lines", "must not be empty"),
        ("{dist: fixed, value: 3 months}", "{dist: uniform, low: 3 months}", "treatments.drug_a.assess_at",
         "takes low, high"),
        ("{dist: fixed, value: 3 months}", "{dist: poisson, value: 3}", "treatments.drug_a.assess_at.dist",
         "'fixed'"),
        ("horizon: 2 years", "horizon: 0", "settings.horizon", "longer than zero"),
    ],
)
def test_scenario_mistakes_name_file_key_path_and_fix(write_scenario, old, new, key_path, fragment):
    path = broken(write_scenario, old, new)
    code, output = validate(path)
    assert code == 2, output
    assert str(path) in output
    assert key_path in output
    assert fragment in output
    assert "Traceback" not in output


def test_valid_scenario_prints_what_it_resolved(write_scenario):
    code, output = validate(write_scenario(BASE))
    assert code == 0, output
    assert "Drug A" in output and "20 patients" in output and "2 years" in output


def test_yaml_syntax_error_gives_the_line(write_scenario):
    path = write_scenario("settings:\n  patients: [1, 2\ntreatments: {}\n")
    code, output = validate(path)
    assert code == 2
    assert "YAML syntax error" in output and "line 3" in output


def test_yaml_tags_that_build_objects_are_refused(write_scenario):
    path = write_scenario("settings: !!python/object/apply:os.system ['echo hacked']\n")
    code, output = validate(path)
    assert code == 2
    assert "tag not allowed" in output
    assert "hacked" not in output.replace("echo hacked", "")


def test_extends_cycle_is_refused(write_scenario):
    write_scenario("extends: b.yaml\n", "a.yaml")
    b = write_scenario("extends: a.yaml\n", "b.yaml")
    code, output = validate(b)
    assert code == 2 and "extends cycle" in output


def test_extends_missing_file_is_refused(write_scenario):
    code, output = validate(write_scenario("extends: nowhere.yaml\n"))
    assert code == 2 and "cannot find 'nowhere.yaml'" in output


def test_error_in_a_parent_file_names_the_parent(write_scenario):
    write_scenario(BASE.replace("{events: 5, n: 10}", "{p: 2}"), "parent.yaml")
    child = write_scenario("extends: parent.yaml\nsettings: {patients: 5}\n", "child.yaml")
    code, output = validate(child)
    assert code == 2
    assert "parent.yaml: treatments.drug_a.response" in output


def test_extends_overrides_keys_and_replaces_whole_distributions(write_scenario):
    write_scenario(BASE.replace("{dist: fixed, value: 3 months}", "{dist: uniform, low: 3 months, high: 6 months}"),
                   "parent.yaml")
    child = write_scenario(
        "extends: parent.yaml\nsettings: {patients: 7}\n"
        "treatments:\n  drug_a:\n    assess_at: {dist: fixed, value: 4 months}\n", "child.yaml")
    from sim.loader import load_scenario

    loaded = load_scenario(child)
    assert loaded.scenario.settings.patients == 7
    assert loaded.scenario.settings.horizon == 24.0
    assert loaded.scenario.treatments["drug_a"].assess_at.value == 4.0
    assert loaded.scenario.treatments["drug_a"].response.events == 5


def test_unknown_scenario_name_suggests_a_bundled_one():
    result = CliRunner().invoke(main, ["validate", "adult_conventionl"])
    assert result.exit_code == 2
    assert "did you mean 'adult_conventional'" in result.output


def test_bad_option_value_is_a_clear_error(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "adult_conventional", "--horizon", "ten years", "--out", str(out)])
    assert result.exit_code == 2
    assert "--horizon" in result.output and "cannot read duration" in result.output
    assert not out.exists()


AGE = """
population:
  covariates:
    age_years: {dist: uniform, low: 1, high: 18}
  observed_until_age: {age: 18 years}
"""


@pytest.mark.parametrize(
    ("old", "new", "key_path", "fragment"),
    [
        ("age_years: {dist: uniform, low: 1, high: 18}", "age: {dist: uniform, low: 1, high: 18}",
         "population.observed_until_age.age_covariate", "numeric age covariate 'age_years'"),
        ("high: 18}", "high: 25}", "population.observed_until_age.age", "up to 25 years old"),
        ("{dist: uniform, low: 1, high: 18}", "{dist: normal, mean: 9, sd: 4}", "population.observed_until_age.age",
         "can be any age"),
        ("{age: 18 years}", "{age: 18}", "population.observed_until_age.age", "write '18 years'"),
        ("{age: 18 years}", "{age: 18 years, covariate: age_years}", "population.observed_until_age.covariate",
         "did you mean 'age_covariate'"),
    ],
)
def test_age_limit_mistakes_name_file_key_path_and_fix(write_scenario, old, new, key_path, fragment):
    scenario = BASE + AGE
    assert old in scenario
    path = write_scenario(scenario.replace(old, new))
    code, output = validate(path)
    assert code == 2, output
    assert str(path) in output and key_path in output and fragment in output, output
    assert "Traceback" not in output


def test_a_clipped_age_covariate_may_meet_the_age_limit(write_scenario):
    path = write_scenario(BASE + AGE.replace("{dist: uniform, low: 1, high: 18}",
                                             "{dist: normal, mean: 9, sd: 4, clip: [1, 17.5]}"))
    code, output = validate(path)
    assert code == 0, output


def test_failed_run_leaves_no_output_directory(write_scenario, tmp_path):
    path = broken(write_scenario, "{events: 5, n: 10}", "{p: 1.3}")
    out = tmp_path / "results" / "never"
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(out)])
    assert result.exit_code == 2
    assert not out.exists()
    assert not any((tmp_path / "results").glob(".*partial*")) if (tmp_path / "results").exists() else True
