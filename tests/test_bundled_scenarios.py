"""Every bundled scenario validates, and every number in scenarios/ says where it comes from."""

from __future__ import annotations

import pytest

from sim.loader import bundled_dir, bundled_scenarios, load_scenario, read_yaml
from sim.model import compile_model
from sim.provenance import is_assumption, parameter_table, unsourced

ALL_FILES = sorted(bundled_dir().rglob("*.yaml"))
# A source names a publication (one of the seed documents or another named study) or
# declares an assumption with its rationale.
PUBLICATIONS = ("Bordeaux", "Marmara", "review", "guide", "et al.", "NICE", "ICER", "Table", "SmPC", "label", "doi")


def test_there_are_bundled_scenarios():
    assert {"adult_conventional", "bordeaux_cohort"} <= set(bundled_scenarios())


@pytest.mark.parametrize("name", sorted(bundled_scenarios()))
def test_bundled_scenario_validates_and_compiles(name):
    loaded = load_scenario(name)
    model = compile_model(loaded.scenario, loaded.name)
    assert loaded.scenario.description, "a bundled scenario needs a one-line description"
    assert model.strategies


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_every_number_has_a_source(path):
    document = read_yaml(path)
    document.pop("extends", None)
    assert unsourced(document) == []


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_sources_name_a_publication_or_give_the_assumption_rationale(path):
    document = read_yaml(path)
    document.pop("extends", None)
    for row in parameter_table(document):
        source = row["source"]
        if is_assumption(source):
            assert len(source.split(":", 1)[-1].strip()) > 20, f"{row['path']}: an assumption needs its rationale"
        else:
            assert any(word in source for word in PUBLICATIONS), f"{row['path']}: {source!r} names no publication"


def test_the_source_check_catches_a_missing_source():
    document = {"treatments": {"x": {"response": {"p": 0.4}, "assess_at": {"dist": "fixed", "value": 3, "source": "guide"}}}}
    assert unsourced(document) == ["treatments.x.response"]
