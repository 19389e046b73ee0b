"""The engine against an absorbing Markov chain derived by hand.

Two lines, A then B; exponential courses and relapses, fixed assessment, no covariates,
no loss to follow-up and a horizon long enough that every patient is absorbed.

Per episode of A (assessment at a = 3 months): a stopping adverse event at 1 month
with probability q; otherwise response with probability p_A; a responder loses
response before the course ends with probability l = exp(-a/c) * (1/L)/(1/L + 1/c)
(course C ~ Exp(mean c) from the start, ends no earlier than a; loss at a + Exp(mean L),
memorylessness); otherwise the course ends in remission with probability r, else a switch.
So A ends in remission with probability R_A = (1-q) p_A (1-l) r; B likewise with R_B = p_B.
After a remission the patient relapses with probability rho and is re-treated with the
same drug. With x_X = P(ending on topical | starting an episode of X):
    x_B = R_B (1 - rho) / (1 - R_B rho)
    x_A = (R_A (1 - rho) + (1 - R_A) x_B) / (1 - R_A rho)
and the number of A episodes is geometric with mean 1 / (1 - R_A rho).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.loader import load_scenario
from sim.model import compile_model
from sim.runner import simulate

P_A, Q, C, L, R, P_B, RHO, ASSESS = 0.6, 0.2, 12.0, 24.0, 0.7, 0.5, 0.4, 3.0
N = 20_000

SCENARIO = f"""
settings: {{patients: {N}, horizon: 1000 years, seed: 11}}
treatments:
  drug_a:
    label: A
    assess_at: {{dist: fixed, value: {ASSESS}}}
    response: {{p: {P_A}}}
    course: {{dist: exponential, mean: {C}}}
    loss_of_response: {{dist: exponential, mean: {L}}}
    end_of_course: {{remission: {{p: {R}}}, switch: {{p: {1 - R:.10f}}}, continue: {{p: 0}}}}
    adverse_events:
      stopper:
        probability: {{p: {Q}}}
        onset: {{dist: fixed, value: 1}}
        stops_treatment: {{p: 1}}
  drug_b:
    label: B
    assess_at: {{dist: fixed, value: {ASSESS}}}
    response: {{p: {P_B}}}
    course: {{dist: exponential, mean: 6}}
strategies:
  a_then_b:
    lines: [drug_a, drug_b]
    on_relapse: retreat
relapse:
  probability: {{p: {RHO}}}
  time: {{dist: exponential, mean: 12}}
"""

LOSS = math.exp(-ASSESS / C) * (1 / L) / (1 / L + 1 / C)
R_A = (1 - Q) * P_A * (1 - LOSS) * R
R_B = P_B
X_B = R_B * (1 - RHO) / (1 - R_B * RHO)
X_A = (R_A * (1 - RHO) + (1 - R_A) * X_B) / (1 - R_A * RHO)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("markov") / "markov.yaml"
    path.write_text(SCENARIO)
    loaded = load_scenario(path)
    return simulate(compile_model(loaded.scenario, loaded.name), progress=False)


def within_4se(observed: float, expected: float, n: int) -> bool:
    se = math.sqrt(expected * (1 - expected) / n)
    return abs(observed - expected) < 4 * se


def test_probability_of_ending_on_topical_matches_the_chain(run):
    final = run.patients["final_state"].astype(str)
    assert set(final) <= {"topical", "supportive_care"}
    assert within_4se((final == "topical").mean(), X_A, N)


def test_first_episode_reasons_match_their_probabilities(run):
    first = run.episodes[run.episodes["episode"] == 1]
    reasons = first["reason"].astype(str).value_counts(normalize=True)
    responder = (1 - Q) * P_A
    expected = {
        "adverse_event": Q,
        "nonresponse": (1 - Q) * (1 - P_A),
        "loss_of_response": responder * LOSS,
        "remission": responder * (1 - LOSS) * R,
        "switch": responder * (1 - LOSS) * (1 - R),
    }
    for reason, p in expected.items():
        assert within_4se(reasons.get(reason, 0.0), p, len(first)), reason


def test_number_of_episodes_of_the_first_drug_is_geometric(run):
    counts = run.episodes[run.episodes["treatment"] == "drug_a"].groupby("patient").size()
    mean = 1 / (1 - R_A * RHO)
    sd = math.sqrt(R_A * RHO) / (1 - R_A * RHO)
    assert abs(counts.mean() - mean) < 4 * sd / math.sqrt(N)


def test_relapse_times_are_exponential_with_the_declared_mean(run):
    e = run.episodes
    following = e.groupby("patient")["start"].shift(-1)
    gaps = (following - e["stop"])[e["reason"] == "remission"].dropna().to_numpy()
    assert len(gaps) > 1000
    assert abs(gaps.mean() - 12.0) < 4 * 12.0 / math.sqrt(len(gaps))
    assert np.all(gaps > 0)
