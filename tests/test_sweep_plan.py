"""Sweep files: factorial expansion, dotted-path overrides, seeds, the hash, and every
mistake refused before anything runs (exit 2, sweep file and key path named, nothing written)."""

from __future__ import annotations

import textwrap

import pytest
from click.testing import CliRunner

from sim.app.cli import main
from sim.loader import ScenarioError
from sim.app.sweep.parameters import split_path
from sim.app.sweep.plan import load_sweep, replicate_seeds

GRID = """
base: adult_conventional_bordeaux
vary:
  treatments.cyclosporine.cap: [6 months, 1 year, none]
  settings.patients: [100, 200]
one_way:
  treatments.methotrexate.response: {low: 0.4, high: 0.7}
replicates: 2
seed: 7
"""


@pytest.fixture
def sweep_file(tmp_path):
    def write(text: str, name: str = "sweep.yaml"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


def test_the_grid_is_the_full_factorial_in_file_order(sweep_file):
    plan = load_sweep(sweep_file(GRID))
    points = [t for t in plan.tasks if t.analysis == "point" and t.replicate == 0]
    assert [t.grid for t in points] == [
        (("treatments.cyclosporine.cap", cap), ("settings.patients", n))
        for cap in ("6 months", "1 year", "none") for n in ("100", "200")
    ]
    # per variant: a point task and two one-way bounds, each for two replicates
    assert len(plan.tasks) == 6 * (1 + 2) * 2
    assert len({t.id for t in plan.tasks}) == len(plan.tasks)
    assert [t.order for t in plan.tasks] == list(range(len(plan.tasks)))


def test_overrides_reach_the_compiled_model(sweep_file):
    plan = load_sweep(sweep_file(GRID))
    by_id = {t.id: t for t in plan.tasks}
    six_months = plan.model(by_id["v0-point-r0"])
    cyclosporine = next(t for t in six_months.treatments if t.name == "cyclosporine")
    assert cyclosporine.cap.value == 6.0 and six_months.patients == 100
    uncapped = plan.model(by_id["v5-point-r1"])
    assert next(t for t in uncapped.treatments if t.name == "cyclosporine").cap is None
    assert uncapped.patients == 200 and uncapped.replicates == 1
    one_year = next(t for t in plan.model(by_id["v2-point-r0"]).treatments if t.name == "cyclosporine")
    assert one_year.cap.value == 12.0
    low = plan.model(by_id["v0-ow00-low-r0"])
    assert next(t for t in low.treatments if t.name == "methotrexate").response_probability == 0.4


def test_parameter_columns_carry_units_and_values(sweep_file):
    plan = load_sweep(sweep_file(GRID))
    table = plan.task_table()
    # the cap mixes durations and none, so it is kept as written; patients are numbers
    assert "treatments.cyclosporine.cap" in table and "settings.patients" in table
    assert table["treatments.cyclosporine.cap"].iloc[0] == "6 months"
    response = table["treatments.methotrexate.response"]
    assert set(response[table["bound"] == "low"]) == {0.4}
    assert response[table["analysis"] == "point"].round(6).eq(round(15 / 27, 6)).all()


def test_durations_get_months_in_the_column_name(sweep_file):
    plan = load_sweep(sweep_file("""
        base: adult_conventional_bordeaux
        vary: {treatments.cyclosporine.cap: [6 months, 1 year]}
    """))
    table = plan.task_table()
    assert list(table["treatments.cyclosporine.cap_months"]) == [6.0, 12.0]


def test_every_replicate_has_its_own_seed_shared_by_all_variants(sweep_file):
    plan = load_sweep(sweep_file(GRID))
    seeds = replicate_seeds(7, 2)
    assert seeds[0] != seeds[1]
    for task in plan.tasks:
        assert task.seed == seeds[task.replicate]
        assert plan.model(task).seed == seeds[task.replicate]


def test_psa_samples_do_not_depend_on_how_many_there_are(sweep_file):
    text = "base: adult_conventional_bordeaux\npsa: {samples: %d}\nvary: {treatments.cyclosporine.cap: [6 months, none]}\n"
    few, many = load_sweep(sweep_file(text % 3, "few.yaml")), load_sweep(sweep_file(text % 10, "many.yaml"))
    sample = {(t.variant, t.sample): t.values for t in few.tasks if t.analysis == "psa"}
    for task in many.tasks:
        if task.analysis == "psa" and task.sample < 3:
            assert task.values == sample[(task.variant, task.sample)]
    # the same sample draws the same parameters in every grid variant
    draws = [{k: v for k, v in t.values.items() if "cap" not in k} for t in many.tasks if t.sample == 2]
    assert draws[0] == draws[1]


def test_the_hash_follows_what_decides_the_results(sweep_file):
    first = load_sweep(sweep_file(GRID)).hash
    assert load_sweep(sweep_file(GRID)).hash == first
    sourced = GRID.replace("[100, 200]", "{values: [100, 200], source: 'assumption: any text at all here'}")
    assert load_sweep(sweep_file(sourced)).hash == first
    assert load_sweep(sweep_file(GRID.replace("high: 0.7", "high: 0.71"))).hash != first
    assert load_sweep(sweep_file(GRID.replace("seed: 7", "seed: 8"))).hash != first


def test_split_path_reads_keys_and_list_positions():
    assert split_path("treatments.x.response_modifiers[0].response") == (
        "treatments", "x", "response_modifiers", 0, "response")


def test_the_bundled_sweeps_load():
    assert len(load_sweep("csa_cap").tasks) == 4
    assert len(load_sweep("adult_one_way").tasks) == 1 + 2 * 11
    psa = load_sweep("adult_psa")
    assert psa.design.samples == 1000 and psa.design.cholesky is not None


MISTAKES = [
    ("vary: {treatments.cyclosporin.cap: [6 months]}", "vary.treatments.cyclosporin.cap",
     "did you mean 'cyclosporine'"),
    ("vary: {treatments.cyclosporine.cpa: [6 months]}", "vary.treatments.cyclosporine.cpa", "did you mean 'cap'"),
    ("vary: {settings.patients: [100, ten]}", "vary.settings.patients[1]", "expected a whole number"),
    ("vary: {treatments.cyclosporine.cap: [6 monhts]}", "vary.treatments.cyclosporine.cap[0]", "unknown time unit"),
    ("vary: {settings.patients: 100}", "vary.settings.patients", "list of values"),
    ("vary: {settings.horizon: [none]}", "vary.settings.horizon[0]", "cannot be none"),
    ("one_way: {relapse.probability: {low: 0.6, high: 0.2}}", "one_way.relapse.probability", "exceeds high"),
    ("one_way: {relapse.probability: {low: 0.2, high: 1.3}}", "one_way.relapse.probability.high", "outside [0, 1]"),
    ("one_way: {relapse.probability: {low: 0.2}}", "one_way.relapse.probability.high", "required"),
    ("vray: {settings.patients: [100]}", "vray", "did you mean 'vary'"),
    ("vary: {settings.seed: [1, 2]}", "vary.settings.seed", "sweep's own seed"),
    ("vary: {relapse.probability: [0.3]}\none_way: {relapse.probability.p: {low: 0.2, high: 0.5}}",
     "one_way.relapse.probability.p", "already set"),
    ("psa: {samples: 10, parameters: {relapse.probability: {dist: normal, mean: 0.4, sd: 0.1}}}",
     "psa.parameters.relapse.probability", "use beta or uniform"),
    ("psa: {samples: 10, parameters: {relapse.probability: {dist: beta, mean: 0.4}}}",
     "psa.parameters.relapse.probability", "takes alpha, beta or mean, sd or events, n"),
    ("psa: {samples: 10, parameters: {treatments.cyclosporine.end_of_course: {dist: dirichlet, "
     "alpha: {remission: 2, switch: 1}}}}", "psa.parameters.treatments.cyclosporine.end_of_course",
     "exactly the parts"),
    ("psa: {samples: 10, correlations: ["
     "{parameters: [relapse.probability, treatments.cyclosporine.response], rho: 0.9},"
     " {parameters: [relapse.probability, treatments.methotrexate.response], rho: 0.9},"
     " {parameters: [treatments.cyclosporine.response, treatments.methotrexate.response], rho: -0.9}]}",
     "psa.correlations", "not positive definite"),
    ("psa: {samples: 0}", "psa.samples", "greater than or equal to 1"),
]


@pytest.mark.parametrize(("block", "key_path", "fragment"), MISTAKES, ids=[m[1] for m in MISTAKES])
def test_sweep_mistakes_are_refused_before_anything_runs(sweep_file, tmp_path, block, key_path, fragment):
    path = sweep_file("base: adult_conventional_bordeaux\n" + block + "\n")
    out = tmp_path / "never"
    result = CliRunner().invoke(main, ["sweep", str(path), "--out", str(out), "--quiet"])
    assert result.exit_code == 2, result.output
    assert f"error: {path}: {key_path}" in result.output
    assert fragment in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_an_unknown_base_is_named_with_a_suggestion(sweep_file):
    with pytest.raises(ScenarioError, match="did you mean 'adult_conventional'"):
        load_sweep(sweep_file("base: adult_conventionl\nvary: {settings.patients: [10]}\n"))


def test_a_sweep_that_changes_nothing_is_refused(sweep_file):
    with pytest.raises(ScenarioError, match="changes nothing"):
        load_sweep(sweep_file("base: adult_conventional_bordeaux\nseed: 3\n"))
