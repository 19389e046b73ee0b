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
