"""Property-based fuzz of the sweep and economics entry points: any mutation of a valid
sweep file (grid, one-way, PSA, economics) or of the bundled `uk_nhs` setting ends either
in a valid load or in a `ScenarioError` (one message per problem), never in another
exception. 120 examples each by default; `ADPATH_FUZZ_EXAMPLES=5000` runs more, as for
`tests/test_fuzz_validation.py`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.app.sweep.plan import load_sweep
from sim.economics import economics_path, load_economics
from sim.loader import ScenarioError, load_scenario

SWEEP = yaml.safe_load("""
name: fuzzed_sweep
description: a sweep to mutate
base: adult_conventional_bordeaux
economics: uk_nhs
vary:
  settings.patients: {values: [20], source: "assumption: small"}
  treatments.cyclosporine.cap: [6 months, none]
one_way:
  treatments.methotrexate.response: {low: 0.37, high: 0.73, source: "Bordeaux 15/27"}
psa:
  samples: 3
  counts: true
  parameters:
    relapse.time.mean: {dist: gamma, mean: 22.7 months, sd: 6.71 months, source: "Sibbald et al. 2015"}
replicates: 1
seed: 5
""")

ECONOMICS = yaml.safe_load(economics_path("uk_nhs").read_text(encoding="utf-8"))

EXAMPLES = int(os.environ.get("ADPATH_FUZZ_EXAMPLES", "120"))

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["6 weeks", "3 months", "-1 months", "0 days", "nan", ".inf", "", "none", "every 0 weeks",
                     "cyclosporine", "methotrexate", "uk_nhs", "gamma", "fixed", "41", "1e400 months", "12 parsecs",
                     "treatments.cyclosporine.cap", "economics.utilities.topical.value", "../../etc/passwd",
                     "settings.patients", "no.such.key"]),
    st.text(max_size=12),
)
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.text(max_size=8) | st.sampled_from(
        ["dist", "value", "values", "mean", "sd", "p", "events", "n", "low", "high", "samples", "source", "amount",
         "per", "unit", "every", "cost", "item", "rate_per_year", "components"]), inner, max_size=4)), max_leaves=8)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


def _replaced(document, path, value, delete):
    copy = dict(document) if isinstance(document, dict) else list(document)
    if len(path) == 1:
        if delete and isinstance(copy, dict):
            copy.pop(path[0], None)
        else:
            copy[path[0]] = value
        return copy
    copy[path[0]] = _replaced(document[path[0]], path[1:], value, delete)
    return copy


def _mutated(document, mutations):
    for path, value, delete in mutations:
        try:
            document = _replaced(document, path, value, delete)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this path's parent
    return document


def _written(document, folder: str) -> Path | None:
    path = Path(folder) / "fuzzed.yaml"
    try:
        path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    except (ValueError, OverflowError):
        return None
    return path


def _mutations(document):
    paths = [p for p in _paths(document) if p]
    return st.lists(st.tuples(st.sampled_from(paths), _values, st.booleans()), min_size=1, max_size=3)


_FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@_FUZZ
@given(mutations=_mutations(SWEEP))
def test_any_mutation_of_a_sweep_is_valid_or_one_clear_error(mutations):
    with tempfile.TemporaryDirectory() as folder:
        path = _written(_mutated(SWEEP, mutations), folder)
        if path is None:
            return
        try:
            plan = load_sweep(path, workers=1)
        except ScenarioError as exc:
            assert exc.problems and all(str(problem) for problem in exc.problems)
            return
        assert plan.tasks


@pytest.fixture(scope="module")
def adverse_events():
    loaded = load_scenario("modern_adult")
    return {name: list(t.adverse_events) for name, t in loaded.scenario.treatments.items()}


@_FUZZ
@given(mutations=_mutations(ECONOMICS))
def test_any_mutation_of_an_economic_setting_is_valid_or_one_clear_error(adverse_events, mutations):
    with tempfile.TemporaryDirectory() as folder:
        path = _written(_mutated(ECONOMICS, mutations), folder)
        if path is None:
            return
        try:
            setting = load_economics(str(path), adverse_events)
        except ScenarioError as exc:
            assert exc.problems and all(str(problem) for problem in exc.problems)
            return
        assert setting.currency


def test_the_unmutated_files_are_valid(adverse_events, tmp_path):
    assert len(load_sweep(_written(SWEEP, str(tmp_path)), workers=1).tasks) == 12
    assert load_economics(str(_written(ECONOMICS, str(tmp_path))), adverse_events).name == "uk_nhs"
