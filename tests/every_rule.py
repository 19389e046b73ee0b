"""A scenario for the engine tests that uses every rule both engines share."""

import functools

# Every clinical rule except limited capacity: covariates (numeric, yes/no, categorical)
# with eligibility and response modifiers, line modifiers, arrivals, per-patient
# follow-up, loss to follow-up, escalation, treat-to-target, caps, all three fates,
# loss of response, stopping and non-stopping adverse events (two with the same onset),
# a treatment's own relapse, after-failure-of, an age group nobody has, drawn first lines,
# retreat / next_line / retreat_only, bridges, flares in every state, an unlimited
# resource, and a drug re-treated many times (occurrences of its numbers beyond the first few).
EVERY_RULE = """
name: every_rule
description: Every clinical rule the engines share, on a small population.
settings: {patients: 400, horizon: 8 years, seed: 17}
population:
  age_group: adult
  covariates:
    weight_kg: {dist: normal, mean: 75, sd: 15}
    high_ige: {p: 0.6}
    phenotype: {levels: {a: 0.5, b: 0.3, c: 0.2}}
  follow_up: {dist: weibull, shape: 1.5, scale: 80 months}
  arrival: {dist: uniform, low: 0, high: 2 years}
loss_to_followup: {dist: exponential, mean: 200 months}
rescue:
  duration: {dist: fixed, value: 2 weeks}
  onset: {dist: uniform, low: 0.1, high: 1}
  response: {p: 0.8}
  rebound: {p: 0.3}
  flare_rate:
    topical: {per_year: 1.5}
    uncontrolled: {per_month: 0.3}
    controlled: {per_year: 0.5}
    supportive_care: {per_month: 0.5}
resources:
  infusion_chairs: {capacity: unlimited}
relapse:
  probability: 0.8
  time: {dist: gamma, mean: 4 months, sd: 3 months}
treatments:
  drug_a:
    label: A, short courses and quick relapses (many episodes, beyond the pre-drawn block)
    assess_at: {dist: fixed, value: 1 months}
    response: 0.85
    response_modifiers:
      - {when: {covariate: high_ige, is: true}, odds_ratio: 0.5}
      - {when: {line: true, at_least: 2}, odds_ratio: 0.7}
    course: {dist: exponential, mean: 2 months}
    end_of_course: {remission: 0.9, switch: 0.05, continue: 0.05}
    relapse: {probability: 0.9, time: {dist: exponential, mean: 1 months}}
    adverse_events:
      rash: {probability: 0.2, onset: {dist: uniform, low: 0, high: 2 months}, stops_treatment: 0.5}
      nausea: {probability: 0.3, onset: {dist: fixed, value: 0.5 months}}
      headache: {probability: 0.3, onset: {dist: fixed, value: 0.5 months}, stops_treatment: 0.2}
  drug_b:
    label: B, escalation, target, cap, loss of response, weight limit, chairs
    assess_at: {dist: uniform, low: 3 months, high: 6 months}
    response: 0.5
    target_response: 0.6
    escalation: {probability: 0.5, reassess_after: {dist: fixed, value: 2 months}, response: 0.4}
    course: {dist: lognormal, median: 20 months, sdlog: 0.8}
    cap: {dist: uniform, low: 12 months, high: 24 months}
    end_of_course: {remission: 0.3, switch: 0.2, continue: 0.5}
    loss_of_response: {dist: weibull, shape: 1.2, scale: 30 months}
    eligibility: {when: [{covariate: weight_kg, at_least: 50}]}
    requires: infusion_chairs
  drug_c:
    label: C, only after A failed, stays on for good
    assess_at: {dist: fixed, value: 16 weeks}
    response: {events: 30, n: 50}
    response_modifiers:
      - {when: {covariate: phenotype, in: [b]}, response: 0.9}
      - {when: {line: true, below: 3}, response: 0.1}
    end_of_course: {remission: 0, switch: 0, continue: 1}
    loss_of_response: {dist: exponential, mean: 40 months}
    eligibility: {after_failure_of: [drug_a], when: [{covariate: phenotype, in: [a, b]}]}
  drug_d:
    label: D, children only
    assess_at: {dist: fixed, value: 3 months}
    response: 0.5
    eligibility: {age_groups: [child]}
  drug_e:
    label: E, empirical course
    assess_at: {dist: normal, mean: 3 months, sd: 1 months, clip: [1, 5]}
    response: 0.6
    course: {dist: empirical, values: [6, 12, 24], weights: [1, 2, 1]}
    end_of_course: {remission: 0.7, switch: 0.3, continue: 0}
strategies:
  retreating:
    lines: [drug_a, drug_b, drug_c, drug_d, drug_e]
    on_relapse: retreat
    bridge: [drug_b]
  next_line:
    lines: [drug_b, drug_a, drug_e, drug_c]
    on_relapse: next_line
  drawn_first:
    lines: [drug_a, drug_b, drug_e]
    first_line: {drug_a: 0.5, drug_b: 0.3, drug_e: 0.2}
    retreat_only: [drug_a]
  to_target:
    lines: [drug_b, drug_e, drug_a]
    treat_to_target: {assess_at: {dist: fixed, value: 12 weeks}}
    bridge: [drug_b]
"""


@functools.cache
def scenario_file(name: str, directory: str) -> str:
    """The bundled scenario `name`, or for "every_rule" the path of EVERY_RULE written into `directory`."""
    if name != "every_rule":
        return name
    path = f"{directory}/every_rule.yaml"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(EVERY_RULE)
    return path
