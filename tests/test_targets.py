"""Target metrics computed on a hand-made two-replicate cohort."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.intervals import wilson_interval
from analysis.targets import check_targets
from sim.schema import Scenario

SCENARIO = {
    "treatments": {"a": {"label": "A", "assess_at": {"dist": "fixed", "value": 3}, "response": {"p": 0.5},
                         "adverse_events": {"rash": {"probability": {"p": 0.1}, "onset": {"dist": "fixed", "value": 1}}}}},
    "strategies": {"s": {"lines": ["a"]}},
}


def frames():
    episodes = pd.DataFrame({
        "replicate": [0, 0, 0, 1, 1], "strategy": "s", "patient": [0, 0, 1, 0, 1], "episode": [1, 2, 1, 1, 1],
        "treatment": "a", "reason": ["remission", "horizon", "nonresponse", "switch", "adverse_event"],
        "responded": pd.array([True, True, False, True, pd.NA], dtype="boolean"),
    })
    patients = pd.DataFrame({"replicate": [0, 0, 1, 1], "strategy": "s", "patient": [0, 1, 0, 1],
                             "final_state": ["systemic", "supportive_care", "topical", "lost_to_followup"],
                             "months_to_first_topical": [5.0, None, 4.0, None]})
    events = pd.DataFrame({"replicate": [0, 0, 1], "strategy": "s", "patient": [0, 0, 1], "treatment": "a",
                           "adverse_event": ["rash", "rash", "rash"]})
    return episodes, patients, events


@pytest.mark.parametrize(("target", "per_replicate"), [
    ({"metric": "response_rate", "treatment": "a"}, [0.5, 1.0]),
    ({"metric": "responder_fate", "treatment": "a", "fate": "remission"}, [1.0, 0.0]),
    ({"metric": "responder_fate", "treatment": "a", "fate": "switch"}, [0.0, 1.0]),
    ({"metric": "any_adverse_event_rate", "treatment": "a"}, [0.5, 0.5]),
    ({"metric": "adverse_event_rate", "treatment": "a", "adverse_event": "rash"}, [0.5, 0.5]),
    ({"metric": "adverse_event_discontinuation", "treatment": "a"}, [0.0, 0.5]),
    ({"metric": "final_state", "state": "topical"}, [0.0, 0.5]),
    ({"metric": "returned_to_topical_ever"}, [0.5, 0.5]),
])
def test_each_metric_counts_as_the_publication_did(target, per_replicate):
    scenario = Scenario.model_validate({**SCENARIO, "targets": {"t": {**target, "observed": {"events": 1, "n": 2}}}})
    row = check_targets(scenario, *frames()).iloc[0]
    assert row["simulated_mean"] == pytest.approx(sum(per_replicate) / 2)
    assert row["replicates"] == 2


def test_wilson_interval_solves_the_score_equation():
    # The Wilson bounds are the p with (27/41 - p)^2 = z^2 p (1 - p) / 41.
    import numpy as np
    from scipy import stats

    n, x, z = 41, 27, stats.norm.ppf(0.975)
    roots = sorted(np.roots([1 + z * z / n, -(2 * x / n + z * z / n), (x / n) ** 2]))
    assert tuple(float(v) for v in wilson_interval(x, n)) == pytest.approx(tuple(roots), abs=1e-12)


def test_kind_defaults_to_input_reproduction_for_declared_quantities_and_can_be_set():
    targets = {"response": {"metric": "response_rate", "treatment": "a", "observed": {"p": 0.5}},
               "final": {"metric": "final_state", "state": "topical", "observed": {"p": 0.2}},
               "told": {"metric": "response_rate", "treatment": "a", "observed": {"p": 0.5}, "kind": "validation"}}
    scenario = Scenario.model_validate({**SCENARIO, "targets": targets})
    kinds = dict(zip(*check_targets(scenario, *frames())[["target", "kind"]].to_numpy().T))
    assert kinds == {"response": "input_reproduction", "final": "validation", "told": "validation"}


def test_a_target_whose_simulated_range_covers_most_of_the_unit_interval_cannot_be_judged():
    # Two cohorts give 0.5 and 1.0 for the response rate: a 95% range of width 0.475
    # discriminates; final state topical gives 0 and 0.5 (width 0.475) too; a cohort of
    # one patient per replicate (0 or 1) cannot.
    from analysis.targets import format_targets

    scenario = Scenario.model_validate({**SCENARIO, "targets": {
        "r": {"metric": "response_rate", "treatment": "a", "observed": {"p": 0.75}},
        "switch": {"metric": "responder_fate", "treatment": "a", "fate": "switch", "observed": {"p": 0.5}}}})
    table = check_targets(scenario, *frames()).set_index("target")
    assert table.loc["r", "judgement"] == "met" and table.loc["r", "discriminates"]
    assert table.loc["switch", "judgement"] == "cannot judge" and not table.loc["switch", "discriminates"]
    text = format_targets(table.reset_index())
    assert "cannot judge: the simulated 95% range covers" in text and "1 cannot be judged" in text


def test_why_a_target_is_not_enforced_is_printed():
    from analysis.targets import format_targets

    scenario = Scenario.model_validate({**SCENARIO, "targets": {"r": {
        "metric": "response_rate", "treatment": "a", "observed": {"p": 0.75}, "enforce": False,
        "why": "the publication counts differently"}}})
    assert "not enforced: the publication counts differently" in format_targets(check_targets(scenario, *frames()))

def test_a_responder_censored_by_death_was_still_on_and_every_responder_has_one_fate():
    episodes = pd.DataFrame({
        "replicate": [0, 0, 0, 0], "strategy": "s", "patient": [0, 1, 2, 3], "episode": 1, "treatment": "a",
        "reason": ["death", "horizon", "remission", "switch"],
        "responded": pd.array([True, True, True, True], dtype="boolean"),
    })
    _, patients, events = frames()
    shares = {}
    for fate in ("still_on", "remission", "switch"):
        target = {"metric": "responder_fate", "treatment": "a", "fate": fate, "observed": {"events": 1, "n": 2}}
        scenario = Scenario.model_validate({**SCENARIO, "targets": {"t": target}})
        shares[fate] = check_targets(scenario, episodes, patients, events).iloc[0]["simulated_mean"]
    assert shares == {"still_on": 0.5, "remission": 0.25, "switch": 0.25}
