"""Malformed files the YAML reader must refuse quickly: one message, exit code 2, no traceback.

Each case is a file a user could produce by accident (a Latin-1 editor, a duplicated key
after a copy and paste) or on purpose (an alias bomb), given to `adpath validate`.
"""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

from analysis.report_sections import _unpriced
from sim.app.cli import main
from sim.guard import BYTES_PER_TRAJECTORY, estimate_run, too_large
from sim.loader import MAX_EXTENDS, deep_merge, set_path
from sim.app.outputs import staged_directory
from sim.provenance import parameter_table

BASE = """
settings: {patients: 20, horizon: 2 years, seed: 1}
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

BILLION_LAUGHS = "\n".join(
    ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
) + "\ndescription: *a9\n"


def refused(path, *fragments):
    """Validate `path`, check the one-message refusal and return the message."""
    started = time.perf_counter()
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert time.perf_counter() - started < 5, "a refusal must come at once, not after a hang"
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert str(path) in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output
    return result.output


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        ("name: caf\u00e9\n".encode("latin-1") + BASE.encode(), ["not UTF-8", "0xe9", "save it as UTF-8"]),
        (BASE.encode("utf-16"), ["UTF-16", "save it as UTF-8"]),
        (b"\x00\x01\x02\xffgarbage", ["binary data"]),
    ],
    ids=["latin1", "utf16", "binary"],
)
def test_text_that_is_not_utf8_is_named(tmp_path, data, fragments):
    path = tmp_path / "scenario.yaml"
    path.write_bytes(data)
    refused(path, *fragments)


def test_utf8_with_a_byte_order_mark_is_read(write_scenario, tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + ("description: caf\u00e9" + BASE).encode())
    assert CliRunner().invoke(main, ["validate", str(path)]).exit_code == 0


def test_duplicate_keys_are_refused_with_both_lines(write_scenario):
    path = write_scenario(BASE.replace("    label: Drug B\n", "    label: Drug B\n    label: Drug C\n"))
    refused(path, "key 'label' appears twice", "keep one of them")


def test_an_alias_bomb_is_refused_at_once(write_scenario):
    refused(write_scenario(BASE + BILLION_LAUGHS), "alias bomb")


def test_many_aliases_are_refused(write_scenario):
    aliases = "".join(f"x{i}: *v\n" for i in range(150))
    refused(write_scenario(BASE + "v: &v 1\n" + aliases), "more than 100 YAML aliases")


def test_a_few_aliases_are_accepted(write_scenario):
    text = BASE.replace("assess_at: {dist: fixed, value: 3 months}\n    response: {events",
                        "assess_at: &three {dist: fixed, value: 3 months}\n    response: {events")
    text = text.replace("assess_at: {dist: fixed, value: 3 months}\n    response: {p", "assess_at: *three\n    response: {p")
    assert "*three" in text
    assert CliRunner().invoke(main, ["validate", str(write_scenario(text))]).exit_code == 0


@pytest.mark.parametrize("depth", [60, 5000])
def test_deep_nesting_is_refused(write_scenario, depth):
    refused(write_scenario(BASE + "description: " + "[" * depth + "]" * depth + "\n"), "nested more than")


def test_a_long_extends_chain_is_refused(tmp_path):
    (tmp_path / "f0.yaml").write_text(BASE)
    for i in range(1, MAX_EXTENDS + 5):
        (tmp_path / f"f{i}.yaml").write_text(f"extends: f{i - 1}.yaml\n")
    refused(tmp_path / f"f{MAX_EXTENDS + 4}.yaml", "extends chain is longer than")


def test_a_chain_within_the_limit_is_read(tmp_path):
    (tmp_path / "f0.yaml").write_text(BASE)
    for i in range(1, MAX_EXTENDS - 1):
        (tmp_path / f"f{i}.yaml").write_text(f"extends: f{i - 1}.yaml\n")
    assert CliRunner().invoke(main, ["validate", str(tmp_path / f"f{MAX_EXTENDS - 2}.yaml")]).exit_code == 0


def test_a_treatment_listed_twice_in_a_line_list_is_refused(write_scenario):
    path = write_scenario(BASE.replace("lines: [drug_a, drug_b]", "lines: [drug_a, drug_b, drug_a]"))
    refused(path, "strategies.only_a.lines[2]", "listed twice")


def test_first_line_shares_all_zero_are_refused(write_scenario):
    path = write_scenario(BASE + "    first_line: {drug_a: 0, drug_b: {events: 0, n: 10}}\n")
    refused(path, "strategies.only_a.first_line", "every first_line share is zero")


def test_covariate_levels_all_zero_are_refused(write_scenario):
    population = "population:\n  covariates:\n    sex:\n      levels: {female: 0, male: 0}\n"
    refused(write_scenario(BASE + population), "population.covariates.sex", "every level's share is zero")


def test_counts_given_as_text_end_in_a_message(write_scenario):
    output = refused(write_scenario(BASE.replace("{events: 5, n: 10}", '{events: 5, n: "ten"}')))
    assert "treatments.drug_a.response" in output


def test_unpriced_adverse_event_names_are_escaped():
    payload = "<img src=x onerror=alert(1)>"
    html = _unpriced({"unpriced_adverse_events": [payload, "nausea"]})
    assert payload not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_counts_written_as_quoted_numbers_are_tabulated():
    rows = parameter_table({"treatments": {"drug_a": {"response": {"events": 27, "n": "41", "source": "x"}}}})
    assert rows == [{"path": "treatments.drug_a.response", "value": "events=27, n=41", "source": "x"}]
    assert parameter_table({"r": {"events": 27, "n": 41, "source": "x"}})[0]["value"] == "events=27, n=41, = 0.659"


@pytest.mark.parametrize("name", ["../escaped", "a/b", ".hidden", "x" * 300, "with space"])
def test_a_scenario_name_that_is_not_one_folder_is_refused(write_scenario, name):
    refused(write_scenario(f"name: '{name}'\n" + BASE), "scenario name is 1-100 letters")


def test_run_refuses_a_directory_that_is_not_a_run(write_scenario, tmp_path):
    own = tmp_path / "my_folder"
    own.mkdir()
    (own / "summary.csv").write_text("the user's own numbers\n")
    result = CliRunner().invoke(main, ["run", str(write_scenario(BASE)), "--out", str(own), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "not an adpath output" in result.output and "--force" in result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in own.iterdir()) == ["summary.csv"]
    assert (own / "summary.csv").read_text() == "the user's own numbers\n"
    assert not list(tmp_path.glob(".my_folder*")), "no staging directory is left behind"


def test_run_writes_over_an_earlier_run_and_into_a_foreign_folder_with_force(write_scenario, tmp_path):
    scenario = str(write_scenario(BASE))
    out = tmp_path / "run"
    for _ in range(2):  # the second time onto the first run
        assert CliRunner().invoke(main, ["run", scenario, "--out", str(out), "--quiet"]).exit_code == 0
    own = tmp_path / "own"
    own.mkdir()
    (own / "notes.txt").write_text("keep me")
    assert CliRunner().invoke(main, ["run", scenario, "--out", str(own), "--quiet", "--force"]).exit_code == 0
    assert (own / "run.json").is_file() and (own / "notes.txt").read_text() == "keep me"


def test_run_refuses_a_file_as_out(write_scenario, tmp_path):
    target = tmp_path / "a_file"
    target.write_text("x")
    result = CliRunner().invoke(main, ["run", str(write_scenario(BASE)), "--out", str(target), "--quiet"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert target.read_text() == "x"


def test_a_new_run_replaces_an_earlier_one_whole_and_clears_abandoned_staging(write_scenario, tmp_path):
    scenario = str(write_scenario(BASE))
    out = tmp_path / "run"
    assert CliRunner().invoke(main, ["run", scenario, "--out", str(out), "--quiet"]).exit_code == 0
    (out / "report.html").write_text("the old run's report")
    abandoned = tmp_path / ".run.partial-999999999"  # a pid no process has
    abandoned.mkdir()
    (abandoned / "episodes.parquet").write_text("half written")
    assert CliRunner().invoke(main, ["run", scenario, "--out", str(out), "--quiet"]).exit_code == 0
    assert not (out / "report.html").exists(), "no old report beside the new tables"
    assert (out / "run.json").is_file() and (out / "summary.csv").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_failed_run_leaves_the_earlier_run_intact(write_scenario, tmp_path, monkeypatch):
    scenario = str(write_scenario(BASE))
    out = tmp_path / "run"
    assert CliRunner().invoke(main, ["run", scenario, "--out", str(out), "--quiet"]).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("sim.app.outputs.build_manifest", killed)
    result = CliRunner().invoke(main, ["run", scenario, "--out", str(out), "--quiet", "--seed", "2"])
    assert result.exit_code == 130, result.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_run_set_aside_by_an_unfinished_swap_is_put_back(write_scenario, tmp_path):
    scenario = str(write_scenario(BASE))
    out = tmp_path / "run"
    assert CliRunner().invoke(main, ["run", scenario, "--out", str(out), "--quiet"]).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    out.rename(tmp_path / ".run.old-999999999")  # killed between the swap's two renames
    with pytest.raises(RuntimeError), staged_directory(out, replace_run=True):
        raise RuntimeError("the next run fails too")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_run_too_large_for_the_machine_is_refused_before_it_starts(write_scenario, tmp_path):
    out = tmp_path / "huge"
    started = time.perf_counter()
    result = CliRunner().invoke(main, ["run", str(write_scenario(BASE)), "--patients", "1000000000000",
                                       "--out", str(out), "--quiet"])
    assert time.perf_counter() - started < 5
    assert result.exit_code == 2, result.output
    assert "settings.patients" in result.output and "GiB" in result.output and "lower --patients" in result.output
    assert not out.exists() and not list(tmp_path.glob(".huge*"))


def test_the_run_estimate_scales_with_trajectories():
    estimate = estimate_run(patients=1000, strategies=3, replicates=2)
    assert estimate.trajectories == 6000
    assert estimate.memory_bytes == 6000 * BYTES_PER_TRAJECTORY
    assert too_large(estimate, memory_bytes=10**12) is None
    assert "lower --patients" in too_large(estimate, memory_bytes=6000 * BYTES_PER_TRAJECTORY)


ZERO_LOOP = """
settings: {patients: 5, horizon: 2 years, seed: 1}
treatments:
  drug_a:
    label: Drug A
    assess_at: {dist: fixed, value: 0 months}
    response: {p: 1}
    course: COURSE
    end_of_course: {remission: 1, switch: 0, continue: 0}
relapse: {probability: 1, time: RELAPSE}
strategies:
  only_a: {lines: [drug_a], on_relapse: retreat}
"""


@pytest.mark.parametrize(("course", "relapse"), [
    ("{dist: fixed, value: 0 months}", "{dist: fixed, value: 0 months}"),
    ("{dist: empirical, values: [0, 3 months]}", "{dist: uniform, low: 0, high: 0}"),
])
def test_a_pathway_that_can_loop_without_time_passing_is_refused(write_scenario, course, relapse):
    path = write_scenario(ZERO_LOOP.replace("COURSE", course).replace("RELAPSE", relapse))
    refused(path, "treatments.drug_a.course", "loop without time passing")


@pytest.mark.parametrize(("course", "relapse"), [
    ("{dist: fixed, value: 1 months}", "{dist: fixed, value: 0 months}"),
    ("{dist: fixed, value: 0 months}", "{dist: exponential, mean: 6 months}"),
    ("{dist: empirical, values: [0, 3 months], weights: [0, 1]}", "{dist: fixed, value: 0 months}"),
])
def test_zero_durations_that_cannot_close_a_loop_are_accepted(write_scenario, course, relapse):
    path = write_scenario(ZERO_LOOP.replace("COURSE", course).replace("RELAPSE", relapse))
    assert CliRunner().invoke(main, ["validate", str(path)]).exit_code == 0


def test_a_rate_given_as_counts_can_be_overridden_per_year(write_scenario):
    child = write_scenario("extends: modern_adult.yaml\nrescue: {flare_rate: {topical: {per_year: 2}}}\n")
    result = CliRunner().invoke(main, ["validate", str(child)])
    assert result.exit_code == 0, result.output


def test_setting_one_form_of_a_probability_replaces_the_other():
    counts = {"treatments": {"a": {"response": {"events": 27, "n": 41, "source": "Bordeaux"}}}}
    assert set_path(counts, "treatments.a.response.p", 0.5)["treatments"]["a"]["response"] == {
        "source": "Bordeaux", "p": 0.5}
    rate = {"rescue": {"flare_rate": {"topical": {"events": 12, "person_years": 75}}}}
    assert set_path(rate, "rescue.flare_rate.topical.per_year", 2)["rescue"]["flare_rate"]["topical"] == {"per_year": 2}
    assert deep_merge(rate, {"rescue": {"flare_rate": {"topical": {"per_month": 0.1}}}}) == {
        "rescue": {"flare_rate": {"topical": {"per_month": 0.1}}}}


def test_a_sweep_value_of_p_replaces_inherited_counts():
    from sim.app.sweep.parameters import set_path as sweep_set_path

    counts = {"treatments": {"a": {"response": {"events": 27, "n": 41, "source": "Bordeaux"}}}}
    updated = sweep_set_path(counts, ("treatments", "a", "response", "p"), 0.6)
    assert updated["treatments"]["a"]["response"] == {"source": "Bordeaux", "p": 0.6}
    assert counts["treatments"]["a"]["response"]["n"] == 41  # the original is not changed


SWEEP_BASE = "base: scenario.yaml\n"


@pytest.mark.parametrize(("body", "key"), [
    ("psa: {samples: 1000000000}\n", "psa.samples"),
    ("vary:\n"
     "  settings.horizon: [" + ", ".join(f"{m} months" for m in range(1, 1001)) + "]\n"
     "  treatments.drug_a.response.p: [" + ", ".join(f"0.{i:03d}" for i in range(1, 1000)) + "]\n"
     "  treatments.drug_b.response.p: [" + ", ".join(f"0.{i:03d}" for i in range(1, 1000)) + "]\n", "vary"),
    ("vary: {settings.patients: [10]}\nreplicates: 1000000000\n", "replicates"),
])
def test_a_sweep_too_large_for_the_machine_is_refused_before_it_starts(write_scenario, tmp_path, body, key):
    write_scenario(BASE)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(SWEEP_BASE + body)
    out = tmp_path / "out"
    started = time.perf_counter()
    result = CliRunner().invoke(main, ["sweep", str(sweep), "--out", str(out), "--quiet", "--workers", "1"])
    assert time.perf_counter() - started < 5, "the guard comes before the plan is expanded"
    assert result.exit_code == 2, result.output
    assert f"{sweep}: {key}: this sweep would need" in result.output and "GiB" in result.output
    assert "lower psa.samples" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_a_long_sweep_is_announced_before_it_is_planned():
    from sim.guard import SECONDS_PER_PLANNED_TASK, estimate_sweep

    estimate = estimate_sweep(tasks=10_000, patients=100, strategies=2, workers=2)
    assert estimate.trajectories == 2_000_000
    assert estimate.seconds > 10_000 * SECONDS_PER_PLANNED_TASK > 60
    assert too_large(estimate, memory_bytes=10**12, fix="lower it") is None
    assert too_large(estimate, memory_bytes=10**6, fix="lower it").endswith("lower it")


def test_the_compiled_engine_with_limited_resources_fails_validation(write_scenario):
    text = BASE.replace("seed: 1}", "seed: 1, engine: compiled}").replace(
        "    response: {p: 0.5}\n", "    response: {p: 0.5}\n    requires: slots\n") + "resources:\n  slots: {capacity: 2}\n"
    refused(write_scenario(text), "settings.engine")
    assert CliRunner().invoke(main, ["validate", str(write_scenario(text.replace("engine: compiled", "engine: des")))]
                              ).exit_code == 0


@pytest.mark.parametrize("parent", ["/etc/passwd", "../../../../etc/hostname", "../outside.yaml"])
def test_an_extends_outside_the_scenario_folder_is_refused(tmp_path, parent):
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (tmp_path / "outside.yaml").write_text(BASE)
    child = folder / "child.yaml"
    child.write_text(f"extends: {parent}\n")
    refused(child, f"{child}: extends:", "outside this scenario's folder")
    (folder / "inside.yaml").write_text(BASE)
    child.write_text("extends: inside.yaml\n")
    assert CliRunner().invoke(main, ["validate", str(child)]).exit_code == 0
