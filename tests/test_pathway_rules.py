"""Every pathway rule moves the outcome it should, by the declared amount (4 Monte Carlo SE).

Each test runs a small scenario twice, with and without the rule, or checks the rule's
declared numbers against the simulated episodes; removing the rule makes it fail.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.loader import load_scenario
from sim.model import compile_model
from sim.rules.response import adjusted_odds
from sim.runner import simulate
from sim.units import parse_duration

BASE = """
settings: {patients: 4000, horizon: 10 years, seed: 5}
population:
  covariates:
    high_ige: {p: 0.5}
    age_years: {dist: uniform, low: 6, high: 18}
treatments:
  slow_drug:
    label: Slow drug
    assess_at: {dist: fixed, value: 12 weeks}
    response: {p: 0.5}
    course: {dist: exponential, mean: 24 months}
  rapid_drug:
    label: Rapid drug
    assess_at: {dist: fixed, value: 4 weeks}
    response: {p: 0.6}
    course: {dist: exponential, mean: 36 months}
    end_of_course: {remission: {p: 0.8}, switch: {p: 0.1}, continue: {p: 0.1}}
  last_drug:
    label: Last drug
    assess_at: {dist: fixed, value: 16 weeks}
    response: {p: 0.4}
strategies:
  slow_first:
    lines: [slow_drug, rapid_drug, last_drug]
relapse:
  probability: {p: 0.6}
  time: {dist: exponential, mean: 12 months}
rescue:
  duration: {dist: fixed, value: 2 weeks}
  onset: {dist: fixed, value: 3 days}
  response: {p: 1}
  rebound: {p: 0.37}
"""


def run(write_scenario, overrides=None, text=BASE):
    loaded = load_scenario(write_scenario(text), overrides or {})
    return simulate(compile_model(loaded.scenario, loaded.name), progress=False)


def se(p: float, n: int) -> float:
    return math.sqrt(p * (1 - p) / n)


def first_episodes(tables, treatment):
    e = tables.episodes
    return e[e["treatment"] == treatment].drop_duplicates(["strategy", "patient"])


def test_a_bridge_shortens_time_to_first_control(write_scenario):
    plain = run(write_scenario)
    bridged = run(write_scenario, {"strategies.slow_first.bridge": ["slow_drug"]})
    onset = parse_duration("3 days")
    assert bridged.patients["months_to_first_control"].max() == pytest.approx(onset)
    assert plain.patients["months_to_first_control"].min() >= parse_duration("12 weeks") - 1e-9
    bursts = bridged.bursts[bridged.bursts["reason"] == "bridge"]
    assert len(bursts) == (bridged.episodes["treatment"] == "slow_drug").sum()
    assert abs(bursts["rebound"].mean() - 0.37) < 4 * se(0.37, len(bursts))


def test_a_cap_bounds_the_course(write_scenario):
    cap = {"dist": "fixed", "value": "12 months"}
    capped = run(write_scenario, {"treatments.rapid_drug.cap": cap})
    free = run(write_scenario)
    for tables, bounded in ((capped, True), (free, False)):
        e = first_episodes(tables, "rapid_drug")
        durations = (e["stop"] - e["start"])[e["reason"].isin(["remission", "switch"])]
        assert (durations.max() <= 12 + 1e-9) == bounded
    # The capped drug hands over to topical or a switch: nobody stays on it past the cap.
    e = capped.episodes[capped.episodes["treatment"] == "rapid_drug"]
    assert ((e["stop"] - e["start"]) <= 12 + 1e-9).all()


def test_a_capped_continue_hands_over_in_the_proportions_of_the_other_fates(write_scenario):
    # Courses of 6 months under a 12-month cap: the remission and switch fates end at 6
    # months, so the episodes ending at the cap are exactly the capped 'continue' ones.
    # They must go to topical therapy or a switch as 0.2 : 0.1 (2/3 to topical), and be
    # 0.7 of the responders' courses that end (no loss of response, no adverse events).
    overrides = {"treatments.rapid_drug.cap": {"dist": "fixed", "value": "12 months"},
                 "treatments.rapid_drug.course": {"dist": "fixed", "value": "6 months"},
                 "treatments.rapid_drug.end_of_course": {"remission": {"p": 0.2}, "switch": {"p": 0.1},
                                                         "continue": {"p": 0.7}}}
    e = run(write_scenario, overrides).episodes
    e = e[(e["treatment"] == "rapid_drug") & e["reason"].isin(["remission", "switch"])]
    at_cap = e[np.isclose(e["stop"] - e["start"], 12.0, rtol=0, atol=1e-9)]
    assert np.isclose(e["stop"] - e["start"], 6.0, rtol=0, atol=1e-9).sum() + len(at_cap) == len(e)
    share_capped = len(at_cap) / len(e)
    assert abs(share_capped - 0.7) < 4 * se(0.7, len(e))
    to_topical = (at_cap["reason"] == "remission").mean()
    assert abs(to_topical - 2 / 3) < 4 * se(2 / 3, len(at_cap)), (to_topical, len(at_cap))


def test_retreatment_raises_episodes_of_the_drug_that_worked(write_scenario):
    retreat = run(write_scenario)
    onward = run(write_scenario, {"strategies.slow_first.on_relapse": "next_line"})
    per_patient = [t.episodes[t.episodes["treatment"] == "slow_drug"].groupby("patient").size().mean()
                   for t in (retreat, onward)]
    assert per_patient[1] == 1.0
    # Each slow-drug episode ends in remission w.p. about 0.5 (response, then its course), the
    # patient relapses w.p. 0.6 and is re-treated: more than 1.2 episodes a patient.
    assert per_patient[0] > 1.2
    assert retreat.episodes["retreatment"].any() and not onward.episodes["retreatment"].any()


def test_retreat_only_limits_retreatment_to_the_listed_drugs(write_scenario):
    only_rapid = run(write_scenario, {"strategies.slow_first.retreat_only": ["rapid_drug"]})
    e = only_rapid.episodes
    assert set(e.loc[e["retreatment"], "treatment"].astype(str)) == {"rapid_drug"}


def test_covariate_odds_ratio_moves_response_by_the_declared_amount(write_scenario):
    modifier = [{"when": {"covariate": "high_ige", "is": True}, "odds_ratio": 3.0}]
    tables = run(write_scenario, {"treatments.slow_drug.response_modifiers": modifier})
    e = first_episodes(tables, "slow_drug").merge(tables.patients[["strategy", "patient", "high_ige"]])
    e = e[e["responded"].notna()]
    for high, expected in ((True, adjusted_odds(0.5, 3.0)), (False, 0.5)):
        group = e[e["high_ige"] == high]["responded"].astype(float)
        assert abs(group.mean() - expected) < 4 * se(expected, len(group)), high


def test_covariate_can_exclude_response_entirely(write_scenario):
    modifier = [{"when": {"covariate": "age_years", "below": 12}, "response": {"p": 0}}]
    tables = run(write_scenario, {"treatments.slow_drug.response_modifiers": modifier})
    e = first_episodes(tables, "slow_drug").merge(tables.patients[["strategy", "patient", "age_years"]])
    young = e[(e["age_years"] < 12) & e["responded"].notna()]
    assert len(young) > 500 and not young["responded"].any()


def test_eligibility_conditions_skip_the_treatment(write_scenario):
    rule = {"when": [{"covariate": "age_years", "at_least": 12}]}
    tables = run(write_scenario, {"treatments.rapid_drug.eligibility": rule})
    e = tables.episodes.merge(tables.patients[["strategy", "patient", "age_years"]])
    assert (e.loc[e["treatment"] == "rapid_drug", "age_years"] >= 12).all()
    young_after_slow = e[(e["age_years"] < 12) & (e["episode"] == 2)]
    assert len(young_after_slow) > 0
    assert set(young_after_slow["treatment"].astype(str)) <= {"last_drug", "slow_drug"}


def test_later_lines_respond_less_by_the_declared_odds_ratio(write_scenario):
    modifier = [{"when": {"line": True, "at_least": 2}, "odds_ratio": 0.5}]
    tables = run(write_scenario, {"treatments.rapid_drug.response_modifiers": modifier})
    e = first_episodes(tables, "rapid_drug")
    e = e[e["responded"].notna()]
    assert (e["line"] == 2).all()
    expected = adjusted_odds(0.6, 0.5)
    assert abs(e["responded"].astype(float).mean() - expected) < 4 * se(expected, len(e))


def test_escalation_reassesses_non_responders_before_stopping(write_scenario):
    escalation = {"probability": {"p": 0.4}, "reassess_after": {"dist": "fixed", "value": "3 months"},
                  "response": {"p": 0.25}}
    tables = run(write_scenario, {"treatments.slow_drug.escalation": escalation})
    e = first_episodes(tables, "slow_drug")
    e = e[e["responded"].notna()]
    assert abs(e["escalated"].mean() - 0.5 * 0.4) < 4 * se(0.2, len(e))
    escalated = e[e["escalated"]]
    assert abs(escalated["responded"].astype(float).mean() - 0.25) < 4 * se(0.25, len(escalated))
    failed = escalated[escalated["reason"] == "nonresponse"]
    assert np.allclose(failed["stop"] - failed["start"], parse_duration("12 weeks") + 3)
    plain = first_episodes(run(write_scenario), "slow_drug")
    assert not plain["escalated"].any()


def test_treat_to_target_moves_responders_below_target_on(write_scenario):
    overrides = {
        "strategies.slow_first.treat_to_target": {"assess_at": {"dist": "fixed", "value": "8 weeks"}},
        "treatments.slow_drug.target_response": {"p": 0.6},
    }
    tables = run(write_scenario, overrides)
    e = first_episodes(tables, "slow_drug")
    assert np.allclose(e.loc[e["responded"].notna(), "assessed"] - e.loc[e["responded"].notna(), "start"],
                       parse_duration("8 weeks"))
    assessed = e[e["responded"].notna()]
    below = assessed["below_target"].mean()
    assert abs(below - 0.5 * 0.4) < 4 * se(0.2, len(assessed))
    assert (assessed.loc[assessed["below_target"], "reason"] == "nonresponse").all()


def test_flare_bursts_follow_the_declared_rate(write_scenario):
    text = BASE + "  flare_rate:\n    topical: {per_year: 2}\n    uncontrolled: {per_year: 2}\n" \
                  "    controlled: {per_year: 2}\n    supportive_care: {per_year: 2}\n"
    tables = run(write_scenario, text=text)
    flares = tables.bursts[tables.bursts["reason"] == "flare"]
    person_years = tables.patients["follow_up_months"].sum() / 12
    rate = len(flares) / person_years
    assert abs(rate - 2.0) < 4 * math.sqrt(2.0 / person_years)
    assert abs(flares["rebound"].mean() - 0.37) < 4 * se(0.37, len(flares))


def test_flares_only_in_states_with_a_rate(write_scenario):
    text = BASE + "  flare_rate:\n    topical: {per_year: 3}\n"
    tables = run(write_scenario, text=text)
    flares = tables.bursts[tables.bursts["reason"] == "flare"]
    assert len(flares) > 100 and set(flares["state"].astype(str)) == {"topical"}
    person_years = tables.patients["months_topical"].sum() / 12
    assert abs(len(flares) / person_years - 3.0) < 4 * math.sqrt(3.0 / person_years)
