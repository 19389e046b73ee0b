"""The rule calls of the discrete-event engine, in the compiled kernel's order and purposes.

The DES walks a trajectory in Python (SimPy holds the clock, the limited resources and
the waits) but takes every clinical decision from the rules of `sim.rules` and every
uniform from `sim.random_numbers.uniform`, for the same purpose, occurrence and offset
as `sim.engine.compiled._trajectory`: for the same seed both engines give the same
tables (`tests/test_engine_agreement.py`). The helpers here are compiled with Numba so
that a step (an episode's plan, a relapse, a bridge, the flares of a trajectory, the
numbers of a chunk's patients) is one call from Python, not one per rule. Times are
months since the patient's entry.
"""

from __future__ import annotations

import math

import numpy as np

from sim.random_numbers import uniform
from sim.rules import purposes as P
from sim.rules.adverse_events import happened, occurs, stops_treatment, with_adverse_event
from sim.rules.assessment import is_below_target, is_escalated
from sim.rules.bridges import bridge_burst, controlled_by_bridge
from sim.rules.compile import rule
from sim.rules.courses import at_least_until_assessment, course_end
from sim.rules.durations import is_fixed, quantile
from sim.rules.eligibility import condition_holds, first_line_choice
from sim.rules.fates import CONTINUE, fate
from sim.rules.flares import burst_outcome, next_flare, unit_exponential
from sim.rules.loss_of_response import with_loss_of_response
from sim.rules.mortality import years_to_death
from sim.rules.observation import observation_end
from sim.rules.reasons import NONRESPONSE
from sim.rules.relapse import relapse_after
from sim.rules.response import modified_response, responds
from sim.rules.workup import GOES_ON, workup_months, workup_outcome

# Columns of a treatment's distribution rows (`rows`) and probabilities (`shares`).
R_ASSESS, R_CAP, R_COURSE, R_LOSS, R_REASSESS = range(5)
S_REMISSION, S_SWITCH, S_STAY, S_ESCALATION, S_ESCALATED_RESPONSE, S_TARGET = range(6)
# Columns of an adverse event (`events`): probability, onset row, probability that it stops the drug.
V_PROBABILITY, V_ONSET, V_STOPS = range(3)


@rule
def draw(distributions, gamma_tables, empirical, index, seed, replicate, patient, purpose, occurrence, offset):
    """The value (months for a time) of distribution `index` for one draw; a fixed one needs no uniform."""
    if is_fixed(distributions, index):
        return quantile(distributions, index, 0.5, gamma_tables, empirical)
    u = uniform(seed, replicate, patient, purpose, occurrence, offset)
    return quantile(distributions, index, u, gamma_tables, empirical)


@rule
def plan_episode(distributions, gamma_tables, empirical, rows, shares, ae_first, events, seed, replicate, patient, t,
                 occurrence, probability, target_assess, out):
    """How an episode of treatment `t` ends if observation goes on: (end, reason, responded,
    assessed, adverse events, stopper, escalated, below_target), months from its start.

    `probability` is the response probability (after modifiers), `target_assess` the
    treat-to-target assessment's distribution row (-1: none). The adverse events that happened
    before the end are written to `out` (onset months, number, stops the drug), in order.
    """
    off = P.episode_offset(t, 0)
    to_target = target_assess >= 0
    assess = draw(distributions, gamma_tables, empirical, target_assess if to_target else rows[t, R_ASSESS], seed,
                  replicate, patient, P.ASSESSMENT, occurrence, off)
    responded = responds(uniform(seed, replicate, patient, P.RESPONSE, occurrence, off), probability)
    escalated = False
    if not responded and not math.isnan(shares[t, S_ESCALATION]):
        escalated = is_escalated(responded, uniform(seed, replicate, patient, P.ESCALATION, occurrence, off),
                                 shares[t, S_ESCALATION])
    if escalated:
        assess += draw(distributions, gamma_tables, empirical, rows[t, R_REASSESS], seed, replicate, patient,
                       P.REASSESSMENT, occurrence, off)
        responded = responds(uniform(seed, replicate, patient, P.ESCALATED_RESPONSE, occurrence, off),
                             shares[t, S_ESCALATED_RESPONSE])
    below = False
    if responded and to_target and not math.isnan(shares[t, S_TARGET]):
        below = is_below_target(responded, to_target, uniform(seed, replicate, patient, P.TARGET, occurrence, off),
                                shares[t, S_TARGET])
        responded = not below
    if responded:
        remission, switch, stay = shares[t, S_REMISSION], shares[t, S_SWITCH], shares[t, S_STAY]
        u_fate = uniform(seed, replicate, patient, P.FATE, occurrence, off)
        cap = math.inf
        if rows[t, R_CAP] >= 0:
            cap = draw(distributions, gamma_tables, empirical, rows[t, R_CAP], seed, replicate, patient, P.CAP,
                       occurrence, off)
        course = math.inf
        if rows[t, R_COURSE] >= 0 and fate(u_fate, remission, switch) != CONTINUE:
            course = draw(distributions, gamma_tables, empirical, rows[t, R_COURSE], seed, replicate, patient,
                          P.COURSE, occurrence, off)
        end, reason = course_end(u_fate, course, cap, remission, switch, stay)
        end = at_least_until_assessment(end, assess)
        if rows[t, R_LOSS] >= 0:
            loss = draw(distributions, gamma_tables, empirical, rows[t, R_LOSS], seed, replicate, patient,
                        P.LOSS_OF_RESPONSE, occurrence, off)
            end, reason = with_loss_of_response(end, reason, assess, loss)
    else:
        end, reason = assess, NONRESPONSE
    count, stop_at, stopper = 0, math.inf, -1
    for k in range(ae_first[t], ae_first[t + 1]):
        a = k - ae_first[t]
        if occurs(uniform(seed, replicate, patient, P.ADVERSE_EVENT_OCCURS, occurrence, off + a),
                  events[k, V_PROBABILITY]):
            onset = draw(distributions, gamma_tables, empirical, int(events[k, V_ONSET]), seed, replicate, patient,
                         P.ADVERSE_EVENT_ONSET, occurrence, off + a)
            stopping = stops_treatment(uniform(seed, replicate, patient, P.ADVERSE_EVENT_STOPS, occurrence, off + a),
                                       events[k, V_STOPS])
            out[count, 0], out[count, 1], out[count, 2] = onset, a, stopping
            count += 1
            if stopping and onset < stop_at:
                stop_at, stopper = onset, a
    end, reason, stopped = with_adverse_event(end, reason, stop_at)
    if not stopped:
        stopper = -1
    kept = 0
    for j in range(count):
        if happened(out[j, 0], end):
            out[kept, 0], out[kept, 1], out[kept, 2] = out[j, 0], out[j, 1], out[j, 2]
            kept += 1
    known = assess <= end
    return end, reason, responded, assess, kept, stopper, escalated and known, below and known


@rule
def line_probability(line_first, modifiers, conditions, levels, t, probability, line):
    """The response probability of treatment `t` as line number `line` (`modifiers`: condition,
    replacement, odds ratio; `conditions`: operator, value)."""
    for k in range(line_first[t], line_first[t + 1]):
        c = int(modifiers[k, 0])
        if condition_holds(int(conditions[c, 0]), float(line), conditions[c, 1], levels, c):
            probability = modified_response(probability, modifiers[k, 1], modifiers[k, 2])
    return probability


@rule
def bridge(distributions, gamma_tables, empirical, onset_row, response_probability, rebound_probability, seed,
           replicate, patient, t, occurrence, now, end):
    """A bridging burst at the start of the `occurrence`-th episode of `t` (at `now`): (effective,
    rebound, months at which it controls the disease or -1)."""
    off = P.episode_offset(t, 0)
    effective, rebound = bridge_burst(uniform(seed, replicate, patient, P.BRIDGE_RESPONSE, occurrence, off),
                                      uniform(seed, replicate, patient, P.BRIDGE_REBOUND, occurrence, off),
                                      response_probability, rebound_probability)
    onset = draw(distributions, gamma_tables, empirical, onset_row, seed, replicate, patient, P.BRIDGE_ONSET,
                 occurrence, off)
    return effective, rebound, controlled_by_bridge(effective, now, onset, end)


@rule
def relapse_wait(distributions, gamma_tables, empirical, probability, time_row, seed, replicate, patient, spell,
                 remaining):
    """Months until the relapse that ends topical spell `spell` (-1: none before the end of
    observation, `remaining` months away); `probability` NaN when there is no relapse model."""
    if math.isnan(probability):
        return -1.0
    u = uniform(seed, replicate, patient, P.RELAPSE_OCCURS, spell, 0)
    time = draw(distributions, gamma_tables, empirical, time_row, seed, replicate, patient, P.RELAPSE_TIME, spell, 0)
    return relapse_after(u, probability, time, remaining)


@rule
def lay_flares(rates, response_probability, rebound_probability, seed, replicate, patient, segments, count, out):
    """Lay the flares over a trajectory's intervals (`segments[:count]`: start, stop, state) into
    `out` (time, state, effective, rebound); return how many, or -1 if `out` is too small."""
    flare = 0
    target = unit_exponential(uniform(seed, replicate, patient, P.FLARE_GAP, 0, 0))
    for k in range(count):
        start, stop, state = segments[k, 0], segments[k, 1], int(segments[k, 2])
        rate = rates[state]
        if not (rate > 0.0 and start < stop):
            continue
        position = start
        while True:
            time, remaining = next_flare(position, target, rate, stop)
            if math.isinf(time):
                target = remaining
                break
            if flare >= out.shape[0]:
                return -1
            effective, rebound = burst_outcome(uniform(seed, replicate, patient, P.FLARE_RESPONSE, flare, 0),
                                               uniform(seed, replicate, patient, P.FLARE_REBOUND, flare, 0),
                                               response_probability, rebound_probability)
            out[flare, 0], out[flare, 1], out[flare, 2], out[flare, 3] = time, state, effective, rebound
            flare += 1
            target = unit_exponential(uniform(seed, replicate, patient, P.FLARE_GAP, flare, 0))
            position = time
    return flare


@rule
def chunk_patients(m_age_allowed, m_condition_covariate, m_condition_levels, m_condition_operator, m_condition_value,
                   m_covariate_first, m_eligibility_conditions, m_eligible_first, m_modifier_condition,
                   m_modifier_odds_ratio, m_modifier_replacement, m_response, m_distributions, m_gamma_tables,
                   m_empirical, m_arrival, m_follow_up, m_age_limit_covariate, m_age_limit_months, m_horizon,
                   m_loss_to_followup, m_mortality_covariate, m_mortality_cumulative, m_mortality_hazards,
                   m_mortality_knots, m_first_line_cumulative, m_draws_first_line, m_line_count, m_workup_found,
                   m_workup_duration, seed, replicate, first_patient, x, allowed, probability, observation, first_line,
                   workup):
    """Fill, for each patient `i` of a chunk (covariates `x[i]`): whether they may take each treatment
    and their response probability after covariate modifiers; their entry (months on the clock), end
    of observation (months after entry) and its reason code (`observation[i]`); the position of
    their first line in each strategy (`first_line[i, s]`); and the months observed in the work-up
    at entry with its outcome code of `sim.rules.workup` (`workup[i]`; 0, GOES_ON without one)."""
    for i in range(x.shape[0]):
        patient = first_patient + i
        for t in range(m_response.shape[0]):
            ok = m_age_allowed[t]
            for j in range(m_eligible_first[t], m_eligible_first[t + 1]):
                c = m_eligibility_conditions[j]
                ok = ok and condition_holds(m_condition_operator[c], x[i, m_condition_covariate[c]],
                                            m_condition_value[c], m_condition_levels, c)
            allowed[i, t] = ok
            p = m_response[t]
            for k in range(m_covariate_first[t], m_covariate_first[t + 1]):
                c = m_modifier_condition[k]
                if condition_holds(m_condition_operator[c], x[i, m_condition_covariate[c]], m_condition_value[c],
                                   m_condition_levels, c):
                    p = modified_response(p, m_modifier_replacement[k], m_modifier_odds_ratio[k])
            probability[i, t] = p
        entry = 0.0
        if m_arrival >= 0:
            entry = draw(m_distributions, m_gamma_tables, m_empirical, m_arrival, seed, replicate, patient, P.ARRIVAL,
                         0, 0)
        follow_up = math.inf
        if m_follow_up >= 0:
            follow_up = draw(m_distributions, m_gamma_tables, m_empirical, m_follow_up, seed, replicate, patient,
                             P.FOLLOW_UP, 0, 0)
        to_limit = math.inf
        if m_age_limit_covariate >= 0:
            to_limit = m_age_limit_months - 12.0 * x[i, m_age_limit_covariate]
        death = math.inf
        if m_mortality_covariate >= 0:
            death = 12.0 * years_to_death(x[i, m_mortality_covariate],
                                          uniform(seed, replicate, patient, P.DEATH, 0, 0), m_mortality_knots,
                                          m_mortality_cumulative, m_mortality_hazards)
        loss = math.inf
        if m_loss_to_followup >= 0:
            loss = draw(m_distributions, m_gamma_tables, m_empirical, m_loss_to_followup, seed, replicate, patient,
                        P.LOSS_TO_FOLLOWUP, 0, 0)
        end, reason = observation_end(m_horizon, follow_up, to_limit, death, loss)
        observation[i, 0], observation[i, 1], observation[i, 2] = entry, end, reason
        workup[i, 0], workup[i, 1] = 0.0, GOES_ON
        if m_workup_duration >= 0:
            duration = draw(m_distributions, m_gamma_tables, m_empirical, m_workup_duration, seed, replicate, patient,
                            P.WORKUP_TIME, 0, 0)
            u = uniform(seed, replicate, patient, P.WORKUP_FINDS, 0, 0)
            workup[i, 0], workup[i, 1] = workup_months(duration, end), workup_outcome(u, m_workup_found, duration, end)
        u_first = uniform(seed, replicate, patient, P.FIRST_LINE, 0, 0)
        for s in range(m_line_count.shape[0]):
            first_line[i, s] = 0
            if m_draws_first_line[s]:
                first_line[i, s] = first_line_choice(u_first, m_first_line_cumulative, s, m_line_count[s])


def episode_tables(packed) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The per-treatment arrays `plan_episode` reads, from a packed model
    (`sim.engine.compiled_model.Packed`): distribution rows, shares and probabilities, adverse events."""
    rows = np.stack([packed.assess, packed.cap, packed.course, packed.loss, packed.reassess], axis=1).astype(np.int64)
    shares = np.column_stack([packed.fates, packed.escalation, packed.escalated_response, packed.target])
    events = np.column_stack([packed.ae_probability, packed.ae_onset.astype(np.float64), packed.ae_stop_probability])
    return np.ascontiguousarray(rows), np.ascontiguousarray(shares), np.ascontiguousarray(events.reshape(-1, 3))
