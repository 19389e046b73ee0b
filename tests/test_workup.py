"""The work-up at entry (issue 16 item 6): the share diverted back to topical therapy
against its closed form, no systemic episode for a diverted patient, the first line
starting at the end of the work-up, the same patients diverted under every strategy, and
the report's count.

Scenario: `adult_conventional` with a work-up that finds a factor in 30% and takes a
fixed 3 months, and loss to follow-up exponential with a mean of 10 months (so that some
patients leave during the work-up). Closed forms: still in the work-up when observation
ends: 1 - exp(-3/10); diverted: 0.3 exp(-3/10).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.report_sections import diverted_by_workup
from sim.loader import ScenarioError, load_scenario
from sim.model import compile_model
from sim.runner import simulate

PATIENTS = 4000
FOUND, DURATION_MONTHS, LOSS_MEAN_MONTHS = 0.3, 3.0, 10.0
OVERRIDES = {
    "workup.found": {"p": FOUND},
    "workup.duration": {"dist": "fixed", "value": "3 months"},
    "loss_to_followup": {"dist": "exponential", "mean": "10 months"},
    "settings.patients": PATIENTS,
    "settings.replicates": 1,
}
KEYS = ["replicate", "strategy", "patient"]


@pytest.fixture(scope="module", params=["des", "compiled"])
def tables(request):
    loaded = load_scenario("adult_conventional", OVERRIDES)
    return simulate(compile_model(loaded.scenario, loaded.name), engine=request.param, progress=False)


def _within_4_se(k: int, n: int, p: float) -> bool:
    return abs(k / n - p) <= 4.0 * math.sqrt(p * (1 - p) / n)


def test_share_diverted_and_still_in_workup_match_their_closed_forms(tables):
    stays = math.exp(-DURATION_MONTHS / LOSS_MEAN_MONTHS)
    for strategy, p in tables.patients.groupby("strategy", observed=True):
        diverted = int(diverted_by_workup(p).sum())
        assert _within_4_se(diverted, len(p), FOUND * stays), (strategy, diverted / len(p))
        never_treated = (p["episodes"] == 0) & p["months_to_first_topical"].isna()
        still = int((never_treated & (p["follow_up_months"] <= DURATION_MONTHS)).sum())
        assert _within_4_se(still, len(p), 1 - stays), (strategy, still / len(p))
        observed_to_end = p["follow_up_months"] >= p["follow_up_months"].max()
        assert (p.loc[diverted_by_workup(p) & observed_to_end, "final_state"].astype(str) == "diverted").all()


def test_diverted_patients_have_no_systemic_episode_and_the_others_start_after_the_workup(tables):
    p, e = tables.patients, tables.episodes
    diverted = p.loc[diverted_by_workup(p), KEYS]
    assert len(diverted) > 0
    assert len(diverted.merge(e, on=KEYS)) == 0
    assert (p.loc[p["final_state"].astype(str) == "diverted", "episodes"] == 0).all()
    np.testing.assert_allclose(p.loc[diverted_by_workup(p), "months_to_first_topical"], DURATION_MONTHS)
    first = e.groupby(KEYS, observed=True)["start"].min()
    np.testing.assert_allclose(first.to_numpy(), DURATION_MONTHS)


def test_the_same_patients_are_diverted_under_every_strategy(tables):
    p = tables.patients
    sets = [set(g.loc[diverted_by_workup(g), "patient"]) for _, g in p.groupby("strategy", observed=True)]
    assert all(s == sets[0] for s in sets)


def test_a_share_above_one_is_refused_naming_the_key():
    with pytest.raises(ScenarioError) as error:
        load_scenario("adult_conventional", {"workup.found": {"p": 1.5}})
    assert "workup.found" in str(error.value)


@pytest.mark.parametrize("name", ["adult_conventional", "modern_adult"])
def test_des_and_compiled_draw_the_same_workup(name):
    """Both engines draw the work-up with purposes 28-29 and follow the same rule: the same
    tables, to the bit, including patients lost during the work-up (and, in modern_adult, flares)."""
    loaded = load_scenario(name, OVERRIDES | {"settings.patients": 400})
    model = compile_model(loaded.scenario, loaded.name)
    des, compiled = (simulate(model, engine=engine, progress=False) for engine in ("des", "compiled"))
    for table in ("episodes", "patients", "adverse_events", "bursts"):
        pd.testing.assert_frame_equal(getattr(des, table), getattr(compiled, table), check_exact=True)
    assert diverted_by_workup(des.patients).any()
