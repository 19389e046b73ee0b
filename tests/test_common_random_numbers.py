"""Strategies share each patient's numbers, also beyond the pre-drawn block (overflow)."""

from __future__ import annotations

import pandas as pd

from sim.loader import load_scenario
from sim.model import compile_model
from sim.runner import simulate

# Short courses, certain remission and frequent relapses: many episodes of the same drug
# and many topical spells, far beyond the block of pre-drawn numbers.
TWINS = """
name: twins
settings: {patients: 200, horizon: 10 years, seed: 5}
treatments:
  drug_a:
    label: Drug A
    assess_at: {dist: fixed, value: 1 months}
    response: {p: 0.9}
    course: {dist: exponential, mean: 3 months}
    end_of_course: {remission: 1, switch: 0, continue: 0}
  drug_b:
    label: Drug B
    assess_at: {dist: uniform, low: 1 months, high: 2 months}
    response: {p: 0.5}
    course: {dist: exponential, mean: 3 months}
relapse:
  probability: 0.95
  time: {dist: exponential, mean: 2 months}
strategies:
  first:
    lines: [drug_a, drug_b]
  second:
    lines: [drug_a, drug_b]
"""


def _run(path, overrides=None):
    loaded = load_scenario(path, overrides)
    return simulate(compile_model(loaded.scenario, loaded.name), progress=False)


def _of(frame: pd.DataFrame, strategy: str) -> pd.DataFrame:
    return frame[frame["strategy"] == strategy].drop(columns="strategy").reset_index(drop=True)


def test_identical_strategies_give_identical_trajectories(write_scenario):
    tables = _run(write_scenario(TWINS))
    assert tables.episodes.groupby(["strategy", "patient"], observed=True).size().max() > 10  # overflow is used
    for name in ("episodes", "patients", "adverse_events"):
        frame = getattr(tables, name)
        pd.testing.assert_frame_equal(_of(frame, "first"), _of(frame, "second"), obj=name)


def test_a_strategy_does_not_depend_on_the_others(write_scenario):
    both = _run(write_scenario(TWINS))
    alone = _run(write_scenario(TWINS.replace("  second:\n    lines: [drug_a, drug_b]\n", "")))
    pd.testing.assert_frame_equal(_of(both.episodes, "first"), _of(alone.episodes, "first"))
