"""Property-based fuzz of reading and validating a scenario: any mutation of a valid file
ends either in a valid scenario or in a `ScenarioError` (one message per problem), never
in another exception. A few hundred examples by default; `ADPATH_FUZZ_EXAMPLES` raises it.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.loader import ScenarioError, load_scenario
from sim.model import compile_model

VALID = yaml.safe_load("""
name: fuzzed
settings: {patients: 20, horizon: 2 years, seed: 1}
population:
  covariates:
    sex: {levels: {female: {events: 30, n: 54}, male: {events: 24, n: 54}}}
    age_years: {dist: normal, mean: 40, sd: 12, clip: [18, 90]}
treatments:
  drug_a:
    label: Drug A
    assess_at: {dist: fixed, value: 3 months}
    response: {events: 5, n: 10}
    course: {dist: gamma, mean: 12 months, sd: 6 months}
    cap: {dist: fixed, value: 12 months}
    end_of_course: {remission: 0.5, switch: 0.25, continue: 0.25}
    adverse_events:
      nausea: {probability: 0.2, onset: {dist: uniform, low: 0, high: 3 months}, stops_treatment: 0.5}
  drug_b:
    label: Drug B
    assess_at: {dist: fixed, value: 16 weeks}
    response: {p: 0.5}
    course: {dist: weibull, shape: 1.2, scale: 24 months}
relapse: {probability: 0.6, time: {dist: exponential, mean: 12 months}}
loss_to_followup: {dist: exponential, mean: 120 months}
strategies:
  a_then_b: {lines: [drug_a, drug_b], on_relapse: retreat}
  b_then_a: {lines: [drug_b, drug_a], first_line: {drug_b: 0.7, drug_a: 0.3}}
""")

EXAMPLES = int(os.environ.get("ADPATH_FUZZ_EXAMPLES", "300"))

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["6 weeks", "3 months", "-1 months", "1.5 years", "0 days", "nan", "inf", "", "none",
                     "drug_a", "drug_b", "retreat", "gamma", "fixed", "41", "1e400 months", "12 parsecs"]),
    st.text(max_size=12),
)
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=8) | st.sampled_from(
                                                             ["dist", "value", "mean", "sd", "p", "events", "n",
                                                              "low", "high", "shape", "scale", "source"]),
                                                             inner, max_size=4)), max_leaves=8)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


_ALL_PATHS = [p for p in _paths(VALID) if p]


def _replaced(document, path, value, delete):
    if len(path) == 1:
        copy = dict(document) if isinstance(document, dict) else list(document)
        if delete and isinstance(copy, dict):
            copy.pop(path[0], None)
        else:
            copy[path[0]] = value
        return copy
    copy = dict(document) if isinstance(document, dict) else list(document)
    copy[path[0]] = _replaced(document[path[0]], path[1:], value, delete)
    return copy


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutations=st.lists(st.tuples(st.sampled_from(_ALL_PATHS), _values, st.booleans()), min_size=1, max_size=3))
def test_any_mutation_is_valid_or_one_clear_error(mutations):
    document = VALID
    for path, value, delete in mutations:
        try:
            document = _replaced(document, path, value, delete)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this path's parent
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzzed.yaml"
        try:
            path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
        except (ValueError, OverflowError):
            return
        try:
            loaded = load_scenario(path)
        except ScenarioError as exc:
            assert exc.problems and all(str(problem) for problem in exc.problems)
            return
        model = compile_model(loaded.scenario, loaded.name)
        assert model is not None
        assert not math.isnan(loaded.scenario.settings.horizon)


def test_the_unmutated_document_is_valid(tmp_path):
    path = tmp_path / "valid.yaml"
    path.write_text(yaml.safe_dump(VALID), encoding="utf-8")
    loaded = load_scenario(path)
    assert {s.name for s in compile_model(loaded.scenario, loaded.name).strategies} == {"a_then_b", "b_then_a"}
