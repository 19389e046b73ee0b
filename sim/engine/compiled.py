"""The compiled engine: a per-patient event loop over a chunk's patients and every strategy.

One Numba kernel walks each patient of a chunk through every strategy in turn, calling
the rules of `sim.rules` and drawing each uniform as a pure function of (seed,
replicate, patient, purpose, occurrence, offset) (`sim.random_numbers.uniform`, purposes
in `sim.rules.purposes`): the same patient gets the same number for the same purpose
under every strategy (common random numbers), and the tables do not depend on chunks or
workers. Rows are written into preallocated columns, one region per strategy, grown by
doubling when a chunk needs more (the kernel then resumes at the patient that did not
fit). Times are months since the patient's entry.

The helpers take the packed model's arrays one by one (`m_<field>` parameters), not the
packed model: a call taking the tuple counts a reference to each of its fifty-odd arrays
(about a microsecond a call, measured), which was most of the time per trajectory.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sim.engine.compiled_model import Packed, UnsupportedFeature, covariate_levels, pack
from sim.loader import Problem, ScenarioError
from sim.model import Model
from sim.random_numbers import uniform, uniforms
from sim.rules import purposes as P
from sim.rules.adverse_events import happened, occurs, stops_treatment, with_adverse_event
from sim.rules.assessment import is_below_target, is_escalated
from sim.rules.bridges import bridge_burst, controlled_by_bridge
from sim.rules.compile import rule
from sim.rules.courses import at_least_until_assessment, course_end
from sim.rules.durations import is_fixed, quantile
from sim.rules.eligibility import condition_holds, first_line_choice, may_start
from sim.rules.fates import CONTINUE, fate
from sim.rules.flares import burst_outcome, next_flare, unit_exponential
from sim.rules.loss_of_response import with_loss_of_response
from sim.rules.mortality import years_to_death
from sim.rules.observation import observation_end
from sim.rules.reasons import (
    ADVERSE_EVENT,
    BRIDGE,
    CONTROLLED,
    DEATH,
    DEAD,
    DIVERTED,
    FLARE,
    LOSS_OF_RESPONSE,
    LOST_TO_FOLLOWUP,
    NONRESPONSE,
    ON_SUPPORTIVE_CARE,
    ON_SYSTEMIC,
    ON_TOPICAL,
    REMISSION,
    SUPPORTIVE_CARE,
    TOPICAL,
    UNCONTROLLED,
    WAITING,
    WAS_LOST,
)
from sim.rules.relapse import may_retreat, relapse_after
from sim.rules.response import modified_response, responds
from sim.rules.workup import GOES_ON, STILL_IN_WORKUP, workup_months, workup_outcome

CHUNK_PATIENTS = 65_536
MAX_EPISODES = 10_000  # per trajectory: more means a pathway that loops (the runaway guard)
MAX_BURSTS = 30_000  # per trajectory (the table counts them in 16 bits)
DONE, FULL, TOO_MANY_EPISODES, TOO_MANY_BURSTS = range(4)

# Columns of the integer and float blocks of each table.
(E_PATIENT, E_EPISODE, E_LINE, E_TREATMENT, E_REASON, E_RESPONDED, E_RETREATMENT, E_EVENTS, E_STOPPER,
 E_ESCALATED, E_BELOW_TARGET, E_BRIDGED) = range(12)
E_START, E_STOP, E_ASSESSED = range(3)
A_PATIENT, A_EPISODE, A_TREATMENT, A_EVENT, A_STOPPED = range(5)
B_PATIENT, B_REASON, B_STATE, B_EFFECTIVE, B_REBOUND = range(5)
(P_FINAL, P_LINES, P_EPISODES, P_RELAPSES, P_BURSTS, P_REBOUNDS) = range(6)
(P_FOLLOW_UP, P_FIRST_TOPICAL, P_SYSTEMIC, P_TOPICAL, P_SUPPORTIVE, P_ENTRY, P_FIRST_CONTROL) = range(7)
EPISODES, EVENTS, BURSTS = range(3)


@rule
def _draw(tables, index, seed, replicate, patient, purpose, occurrence, offset):
    """The value of distribution `index` of `tables` (distributions, gamma tables, empirical) for a
    draw; a fixed one needs no uniform. (The packed model is not passed: a call taking it counts a
    reference to each of its arrays, about a microsecond.)"""
    distributions, gamma_tables, empirical = tables
    if is_fixed(distributions, index):
        return quantile(distributions, index, 0.5, gamma_tables, empirical)
    u = uniform(seed, replicate, patient, purpose, occurrence, offset)
    return quantile(distributions, index, u, gamma_tables, empirical)


@rule
def _plan_episode(m_ae_first, m_ae_onset, m_ae_probability, m_ae_stop_probability, m_assess, m_cap, m_course,
                  m_distributions, m_empirical, m_escalated_response, m_escalation, m_fates, m_gamma_tables, m_loss,
                  m_reassess, m_target, seed, replicate, patient, t, occurrence, probability, target_assess, onsets,
                  event_ids, stops):
    """How an episode of treatment `t` ends if observation goes on: (end, reason, responded,
    assessed, events, stopper, escalated, below_target), months from its start; the events'
    onsets, numbers and whether they stop the drug are written to `onsets`, `event_ids`, `stops`."""
    tables = (m_distributions, m_gamma_tables, m_empirical)
    off = P.episode_offset(t, 0)
    to_target = target_assess >= 0
    assess = _draw(tables, target_assess if to_target else m_assess[t], seed, replicate, patient, P.ASSESSMENT,
                   occurrence, off)
    responded = responds(uniform(seed, replicate, patient, P.RESPONSE, occurrence, off), probability)
    escalated = False
    if not responded and not math.isnan(m_escalation[t]):
        escalated = is_escalated(responded, uniform(seed, replicate, patient, P.ESCALATION, occurrence, off),
                                 m_escalation[t])
    if escalated:
        assess += _draw(tables, m_reassess[t], seed, replicate, patient, P.REASSESSMENT, occurrence, off)
        responded = responds(uniform(seed, replicate, patient, P.ESCALATED_RESPONSE, occurrence, off),
                             m_escalated_response[t])
    below = False
    if responded and to_target and not math.isnan(m_target[t]):
        below = is_below_target(responded, to_target, uniform(seed, replicate, patient, P.TARGET, occurrence, off),
                                m_target[t])
        responded = not below
    if responded:
        remission, switch, stay = m_fates[t, 0], m_fates[t, 1], m_fates[t, 2]
        u_fate = uniform(seed, replicate, patient, P.FATE, occurrence, off)
        cap = math.inf
        if m_cap[t] >= 0:
            cap = _draw(tables, m_cap[t], seed, replicate, patient, P.CAP, occurrence, off)
        course = math.inf
        if m_course[t] >= 0 and fate(u_fate, remission, switch) != CONTINUE:
            course = _draw(tables, m_course[t], seed, replicate, patient, P.COURSE, occurrence, off)
        end, reason = course_end(u_fate, course, cap, remission, switch, stay)
        end = at_least_until_assessment(end, assess)
        if m_loss[t] >= 0:
            loss = _draw(tables, m_loss[t], seed, replicate, patient, P.LOSS_OF_RESPONSE, occurrence, off)
            end, reason = with_loss_of_response(end, reason, assess, loss)
    else:
        end, reason = assess, NONRESPONSE
    count, stop_at, stopper = 0, math.inf, -1
    first = m_ae_first[t]
    for k in range(first, m_ae_first[t + 1]):
        a = k - first
        if occurs(uniform(seed, replicate, patient, P.ADVERSE_EVENT_OCCURS, occurrence, off + a), m_ae_probability[k]):
            onset = _draw(tables, m_ae_onset[k], seed, replicate, patient, P.ADVERSE_EVENT_ONSET, occurrence, off + a)
            stopping = stops_treatment(uniform(seed, replicate, patient, P.ADVERSE_EVENT_STOPS, occurrence, off + a),
                                       m_ae_stop_probability[k])
            onsets[count], event_ids[count], stops[count] = onset, a, stopping
            count += 1
            if stopping and onset < stop_at:
                stop_at, stopper = onset, a
    end, reason, stopped = with_adverse_event(end, reason, stop_at)
    if not stopped:
        stopper = -1
    count = _keep_events(onsets, event_ids, stops, count, end)
    known = assess <= end
    return end, reason, responded, assess, count, stopper, escalated and known, below and known


@rule
def _keep_events(onsets, event_ids, stops, count, end):
    """Keep the first `count` events that happened before `end`, in order; return how many."""
    kept = 0
    for j in range(count):
        if happened(onsets[j], end):
            onsets[kept], event_ids[kept], stops[kept] = onsets[j], event_ids[j], stops[j]
            kept += 1
    return kept


@rule
def _line_at(lines, s, first, k):
    """The treatment at position `k` of strategy `s`'s order when its first line is position `first`."""
    if k == 0:
        return lines[s, first]
    if k <= first:
        return lines[s, k - 1]
    return lines[s, k]


@rule
def _next_line(lines, line_count, requires_failure, s, first, position, failed, allowed):
    """Advance from `position` to the next line the patient may start: (treatment or -1, position)."""
    position += 1
    while position < line_count[s]:
        t = _line_at(lines, s, first, position)
        if may_start(t, failed, allowed, requires_failure):
            return t, position
        position += 1
    return -1, position


@rule
def _line_probability(line_first, modifiers, conditions, levels, t, probability, line):
    """The response probability of treatment `t` as line number `line` (`modifiers`: condition,
    replacement, odds ratio; `conditions`: operator, value)."""
    for k in range(line_first[t], line_first[t + 1]):
        c = int(modifiers[k, 0])
        if condition_holds(int(conditions[c, 0]), float(line), conditions[c, 1], levels, c):
            probability = modified_response(probability, modifiers[k, 1], modifiers[k, 2])
    return probability


@rule
def _patient_matrices(m_age_allowed, m_condition_covariate, m_condition_levels, m_condition_operator,
                      m_condition_value, m_covariate_first, m_eligibility_conditions, m_eligible_first,
                      m_modifier_condition, m_modifier_odds_ratio, m_modifier_replacement, m_response, x, i, allowed,
                      probability):
    """Fill whether patient `i` (covariates `x[i]`) may take each treatment and their response
    probability to it after covariate modifiers."""
    for t in range(m_response.shape[0]):
        ok = m_age_allowed[t]
        for j in range(m_eligible_first[t], m_eligible_first[t + 1]):
            c = m_eligibility_conditions[j]
            ok = ok and condition_holds(m_condition_operator[c], x[i, m_condition_covariate[c]], m_condition_value[c],
                                        m_condition_levels, c)
        allowed[t] = ok
        p = m_response[t]
        for k in range(m_covariate_first[t], m_covariate_first[t + 1]):
            c = m_modifier_condition[k]
            if condition_holds(m_condition_operator[c], x[i, m_condition_covariate[c]], m_condition_value[c],
                               m_condition_levels, c):
                p = modified_response(p, m_modifier_replacement[k], m_modifier_odds_ratio[k])
        probability[t] = p


@rule
def _observation(m_age_limit_covariate, m_age_limit_months, m_arrival, m_distributions, m_empirical, m_follow_up,
                 m_gamma_tables, m_horizon, m_loss_to_followup, m_mortality_covariate, m_mortality_cumulative,
                 m_mortality_hazards, m_mortality_knots, seed, replicate, patient, x, i):
    """The patient's entry (months on the clock) and end of observation (months after entry, reason)."""
    tables = (m_distributions, m_gamma_tables, m_empirical)
    entry = 0.0
    if m_arrival >= 0:
        entry = _draw(tables, m_arrival, seed, replicate, patient, P.ARRIVAL, 0, 0)
    follow_up = math.inf
    if m_follow_up >= 0:
        follow_up = _draw(tables, m_follow_up, seed, replicate, patient, P.FOLLOW_UP, 0, 0)
    to_limit = math.inf
    if m_age_limit_covariate >= 0:
        to_limit = m_age_limit_months - 12.0 * x[i, m_age_limit_covariate]
    death = math.inf
    if m_mortality_covariate >= 0:
        death = 12.0 * years_to_death(x[i, m_mortality_covariate], uniform(seed, replicate, patient, P.DEATH, 0, 0),
                                      m_mortality_knots, m_mortality_cumulative, m_mortality_hazards)
    loss = math.inf
    if m_loss_to_followup >= 0:
        loss = _draw(tables, m_loss_to_followup, seed, replicate, patient, P.LOSS_TO_FOLLOWUP, 0, 0)
    end, reason = observation_end(m_horizon, follow_up, to_limit, death, loss)
    return entry, end, reason


@rule
def simulate_patients(m, seed, replicate, first_patient, count, begin, covariates, ep_i, ep_f, ae_i, ae_f, b_i, b_f,
                      pat_i, pat_f, counts, status):
    """Simulate patients `begin .. count-1` of a chunk under every strategy, writing their rows.

    Returns the index of the first patient not simulated: `count` when all were, else the one
    whose rows did not fit (`status[0]` FULL: grow the columns and call again from it) or that
    ran away (`status[0]` TOO_MANY_EPISODES / TOO_MANY_BURSTS, `status[1]` the patient,
    `status[2]` the strategy). `counts[s]` holds the rows written per table for strategy `s`.
    """
    strategies = m.lines.shape[0]
    treatments = m.response.shape[0]
    events_max = 1
    for t in range(treatments):
        events_max = max(events_max, m.ae_first[t + 1] - m.ae_first[t])
    allowed = np.zeros(treatments, dtype=np.bool_)
    base_probability = np.zeros(treatments)
    failed = np.zeros(treatments, dtype=np.bool_)
    line_number = np.zeros(treatments, dtype=np.int64)
    occurrences = np.zeros(treatments, dtype=np.int64)
    onsets = np.zeros(events_max)
    event_ids = np.zeros(events_max, dtype=np.int64)
    stops = np.zeros(events_max, dtype=np.bool_)
    segments = np.zeros((3 * MAX_EPISODES + 4, 3))
    before = np.zeros_like(counts)
    for i in range(begin, count):
        patient = first_patient + i
        _patient_matrices(m.age_allowed, m.condition_covariate, m.condition_levels, m.condition_operator,
                          m.condition_value, m.covariate_first, m.eligibility_conditions, m.eligible_first,
                          m.modifier_condition, m.modifier_odds_ratio, m.modifier_replacement, m.response, covariates,
                          i, allowed, base_probability)
        entry, end, censor = _observation(m.age_limit_covariate, m.age_limit_months, m.arrival, m.distributions,
                                          m.empirical, m.follow_up, m.gamma_tables, m.horizon, m.loss_to_followup,
                                          m.mortality_covariate, m.mortality_cumulative, m.mortality_hazards,
                                          m.mortality_knots, seed, replicate, patient, covariates, i)
        u_first = uniform(seed, replicate, patient, P.FIRST_LINE, 0, 0)
        workup, outcome = _workup(m.distributions, m.gamma_tables, m.empirical, m.workup_found, m.workup_duration,
                                  seed, replicate, patient, end)
        for s in range(strategies):
            for k in range(3):
                before[s, k] = counts[s, k]
        for s in range(strategies):
            if outcome != GOES_ON:
                code = _without_systemic(m.flare_rates, m.lays_flares, m.rescue_rebound, m.rescue_response, seed,
                                         replicate, patient, i, s, outcome, workup, entry, end, censor, segments,
                                         b_i, b_f, pat_i, pat_f, counts)
            else:
                code = _trajectory(m.ae_first, m.ae_onset, m.ae_probability, m.ae_stop_probability, m.assess, m.bridged,
                                   m.cap, m.condition_levels, m.conditions, m.course, m.distributions, m.draws_first_line,
                                   m.empirical, m.escalated_response, m.escalation, m.fates, m.first_line_cumulative,
                                   m.flare_rates, m.gamma_tables, m.lays_flares, m.line_count, m.line_first, m.lines,
                                   m.loss, m.modifiers, m.reassess, m.relapse_probability, m.relapse_time,
                                   m.relapse_variant, m.requires_failure, m.rescue_onset, m.rescue_rebound,
                                   m.rescue_response, m.retreat_allowed, m.retreats, m.target, m.target_assess, seed,
                                   replicate, patient, i, s, u_first, entry, end, censor, allowed,
                                   base_probability, failed, line_number, occurrences, onsets, event_ids, stops, segments,
                                   ep_i, ep_f, ae_i, ae_f, b_i, b_f, pat_i, pat_f, counts, workup)
            if code != DONE:
                _restore(counts, before)
                status[0], status[1], status[2] = code, patient, s
                return i
        if _overflowed(counts, ep_i.shape[1], ae_i.shape[1], b_i.shape[1]):
            _restore(counts, before)
            status[0] = FULL
            return i
    status[0] = DONE
    return count


@rule
def _overflowed(counts, episodes, events, bursts):
    """Whether a strategy's rows passed the capacity of a table."""
    for s in range(counts.shape[0]):
        if counts[s, EPISODES] > episodes or counts[s, EVENTS] > events or counts[s, BURSTS] > bursts:
            return True
    return False


@rule
def _restore(counts, before):
    for s in range(counts.shape[0]):
        for k in range(3):
            counts[s, k] = before[s, k]


@rule
def _burst(b_i, b_f, counts, s, patient, time, reason, state, effective, rebound):
    r = counts[s, BURSTS]
    if r < b_i.shape[1]:
        b_i[s, r, B_PATIENT], b_i[s, r, B_REASON], b_i[s, r, B_STATE] = patient, reason, state
        b_i[s, r, B_EFFECTIVE], b_i[s, r, B_REBOUND] = effective, rebound
        b_f[s, r] = time
    counts[s, BURSTS] = r + 1


@rule
def _trajectory(m_ae_first, m_ae_onset, m_ae_probability, m_ae_stop_probability, m_assess, m_bridged, m_cap,
                m_condition_levels, m_conditions, m_course, m_distributions, m_draws_first_line, m_empirical,
                m_escalated_response, m_escalation, m_fates, m_first_line_cumulative, m_flare_rates, m_gamma_tables,
                m_lays_flares, m_line_count, m_line_first, m_lines, m_loss, m_modifiers, m_reassess,
                m_relapse_probability, m_relapse_time, m_relapse_variant, m_requires_failure, m_rescue_onset,
                m_rescue_rebound, m_rescue_response, m_retreat_allowed, m_retreats, m_target, m_target_assess, seed,
                replicate, patient, i, s, u_first, entry, end, censor, allowed, base_probability, failed,
                line_number, occurrences, onsets, event_ids, stops, segments, ep_i, ep_f, ae_i, ae_f, b_i, b_f,
                pat_i, pat_f, counts, workup):
    """One patient's trajectory under strategy `s` from the end of the work-up (`workup` months
    after entry; 0 without one): its episode, adverse-event and burst rows and its summary row.
    Returns DONE, or the runaway code."""
    tables = (m_distributions, m_gamma_tables, m_empirical)
    for t in range(failed.shape[0]):
        failed[t], line_number[t], occurrences[t] = False, 0, 0
    lines_used = episodes = relapses = spells = segment_count = 0
    systemic = topical = supportive = 0.0
    first_topical = first_control = math.nan
    bursts_from = counts[s, BURSTS]
    lays = m_lays_flares
    first = 0
    if m_draws_first_line[s]:
        first = first_line_choice(u_first, m_first_line_cumulative, s, m_line_count[s])
    target_assess = m_target_assess[s]
    now = workup
    if lays and workup > 0.0:
        segment_count = _segment(segments, segment_count, 0.0, workup, UNCONTROLLED)
    final = -1
    t, position = _next_line(m_lines, m_line_count, m_requires_failure, s, first, -1, failed, allowed)
    retreatment = False
    while True:
        if t < 0:
            supportive += end - now
            if lays:
                segment_count = _segment(segments, segment_count, now, end, SUPPORTIVE_CARE)
            final = ON_SUPPORTIVE_CARE
            break
        if line_number[t] == 0:
            lines_used += 1
            line_number[t] = lines_used
        line = line_number[t]
        occurrence = occurrences[t]
        occurrences[t] += 1
        probability = base_probability[t]
        if m_line_first[t + 1] > m_line_first[t]:
            probability = _line_probability(m_line_first, m_modifiers, m_conditions, m_condition_levels, t,
                                            probability, line)
        duration, reason, responded, assess, n_events, stopper, escalated, below = _plan_episode(m_ae_first,
                m_ae_onset, m_ae_probability, m_ae_stop_probability, m_assess, m_cap, m_course, m_distributions,
                m_empirical, m_escalated_response, m_escalation, m_fates, m_gamma_tables, m_loss, m_reassess,
                m_target, seed, replicate, patient, t, occurrence, probability, target_assess, onsets, event_ids,
                stops)
        bridged = m_bridged[s, t]
        if bridged:
            off = P.episode_offset(t, 0)
            effective, rebound = bridge_burst(
                uniform(seed, replicate, patient, P.BRIDGE_RESPONSE, occurrence, off),
                uniform(seed, replicate, patient, P.BRIDGE_REBOUND, occurrence, off), m_rescue_response,
                m_rescue_rebound)
            onset = _draw(tables, m_rescue_onset, seed, replicate, patient, P.BRIDGE_ONSET, occurrence, off)
            control = controlled_by_bridge(effective, now, onset, end)
            if control >= 0.0 and not (control >= first_control):
                first_control = control
            _burst(b_i, b_f, counts, s, patient, now, BRIDGE, UNCONTROLLED, effective, rebound)
        start = now
        if start + duration >= end:  # observation ends first: only what happened before it is known
            stop, reason, final = end, censor, ON_SYSTEMIC
            known = assess <= stop - start
            escalated, below = escalated and known, below and known
            n_events = _keep_events(onsets, event_ids, stops, n_events, stop - start)
            stopper = -1
        else:
            stop = start + duration
            known = assess <= duration
        episodes += 1
        if episodes > MAX_EPISODES:
            return TOO_MANY_EPISODES
        systemic += stop - start
        if not known:
            assessed, response = math.nan, -1
            if lays:
                segment_count = _segment(segments, segment_count, start, stop, UNCONTROLLED)
        else:
            assessed, response = start + assess, 1 if responded else 0
            if lays:
                segment_count = _segment(segments, segment_count, start, assessed, UNCONTROLLED)
                segment_count = _segment(segments, segment_count, assessed, stop,
                                         CONTROLLED if responded else UNCONTROLLED)
            if responded and not (assessed >= first_control):
                first_control = assessed
        r = counts[s, EPISODES]
        if r < ep_i.shape[1]:
            ep_i[s, r, E_PATIENT], ep_i[s, r, E_EPISODE], ep_i[s, r, E_LINE], ep_i[s, r, E_TREATMENT] = (
                patient, episodes, line, t)
            ep_i[s, r, E_REASON], ep_i[s, r, E_RESPONDED], ep_i[s, r, E_RETREATMENT] = reason, response, retreatment
            ep_i[s, r, E_EVENTS], ep_i[s, r, E_STOPPER], ep_i[s, r, E_ESCALATED] = n_events, stopper, escalated
            ep_i[s, r, E_BELOW_TARGET], ep_i[s, r, E_BRIDGED] = below, bridged
            ep_f[s, r, E_START], ep_f[s, r, E_STOP], ep_f[s, r, E_ASSESSED] = start, stop, assessed
        counts[s, EPISODES] = r + 1
        for j in range(n_events):
            r = counts[s, EVENTS]
            if r < ae_i.shape[1]:
                ae_i[s, r, A_PATIENT], ae_i[s, r, A_EPISODE], ae_i[s, r, A_TREATMENT] = patient, episodes, t
                ae_i[s, r, A_EVENT] = event_ids[j]
                ae_i[s, r, A_STOPPED] = stops[j] and event_ids[j] == stopper
                ae_f[s, r] = start + onsets[j]
            counts[s, EVENTS] = r + 1
        if reason == REMISSION and math.isnan(first_topical):
            first_topical = stop
        now = stop
        if final >= 0:
            break
        if reason == REMISSION:
            v = m_relapse_variant[t]
            remaining = end - now
            wait = -1.0
            if not math.isnan(m_relapse_probability[v]):
                u_relapse = uniform(seed, replicate, patient, P.RELAPSE_OCCURS, spells, 0)
                time = _draw(tables, m_relapse_time[v], seed, replicate, patient, P.RELAPSE_TIME, spells, 0)
                spells += 1
                wait = relapse_after(u_relapse, m_relapse_probability[v], time, remaining)
            if wait < 0.0:
                topical += remaining
                if lays:
                    segment_count = _segment(segments, segment_count, now, end, TOPICAL)
                final = ON_TOPICAL
                break
            topical += wait
            relapses += 1
            if lays:
                segment_count = _segment(segments, segment_count, now, now + wait, TOPICAL)
            now += wait
            if may_retreat(m_retreats[s], may_start(t, failed, allowed, m_requires_failure), m_retreat_allowed[s, t]):
                retreatment = True
                continue
        elif reason == NONRESPONSE or reason == ADVERSE_EVENT or reason == LOSS_OF_RESPONSE:
            failed[t] = True
        t, position = _next_line(m_lines, m_line_count, m_requires_failure, s, first, position, failed, allowed)
        retreatment = False
    if lays and not _lay_flares(m_flare_rates, m_rescue_rebound, m_rescue_response, seed, replicate, patient, s,
                                segments, segment_count, b_i, b_f, counts):
        return TOO_MANY_BURSTS
    rebounds = 0
    for r in range(bursts_from, min(counts[s, BURSTS], b_i.shape[1])):
        rebounds += b_i[s, r, B_REBOUND]
    if censor == LOST_TO_FOLLOWUP:
        final = WAS_LOST
    elif censor == DEATH:
        final = DEAD
    pat_i[s, i, P_FINAL], pat_i[s, i, P_LINES], pat_i[s, i, P_EPISODES] = final, lines_used, episodes
    pat_i[s, i, P_RELAPSES], pat_i[s, i, P_BURSTS] = relapses, counts[s, BURSTS] - bursts_from
    pat_i[s, i, P_REBOUNDS] = rebounds
    pat_f[s, i, P_FOLLOW_UP], pat_f[s, i, P_FIRST_TOPICAL], pat_f[s, i, P_SYSTEMIC] = end, first_topical, systemic
    pat_f[s, i, P_TOPICAL], pat_f[s, i, P_SUPPORTIVE], pat_f[s, i, P_ENTRY] = topical, supportive, entry
    pat_f[s, i, P_FIRST_CONTROL] = first_control
    return DONE


@rule
def _workup(m_distributions, m_gamma_tables, m_empirical, m_workup_found, m_workup_duration, seed, replicate,
            patient, end):
    """The work-up at entry: (months observed in it, outcome code of `sim.rules.workup`); (0, GOES_ON) without one."""
    if m_workup_duration < 0:
        return 0.0, GOES_ON
    duration = _draw((m_distributions, m_gamma_tables, m_empirical), m_workup_duration, seed, replicate, patient,
                     P.WORKUP_TIME, 0, 0)
    u = uniform(seed, replicate, patient, P.WORKUP_FINDS, 0, 0)
    return workup_months(duration, end), workup_outcome(u, m_workup_found, duration, end)


@rule
def _without_systemic(m_flare_rates, m_lays_flares, m_rescue_rebound, m_rescue_response, seed, replicate, patient, i,
                      s, outcome, workup, entry, end, censor, segments, b_i, b_f, pat_i, pat_f, counts):
    """The summary row (and flare bursts) of a patient whose work-up ended the trajectory: diverted
    back to topical therapy at `workup` months, or still in the work-up when observation ended."""
    bursts_from = counts[s, BURSTS]
    count = _segment(segments, 0, 0.0, workup, UNCONTROLLED)
    final, first_topical, topical = WAITING, math.nan, 0.0
    if outcome != STILL_IN_WORKUP:
        count = _segment(segments, count, workup, end, TOPICAL)
        final, first_topical, topical = DIVERTED, workup, end - workup
    if m_lays_flares and not _lay_flares(m_flare_rates, m_rescue_rebound, m_rescue_response, seed, replicate,
                                         patient, s, segments, count, b_i, b_f, counts):
        return TOO_MANY_BURSTS
    rebounds = 0
    for r in range(bursts_from, min(counts[s, BURSTS], b_i.shape[1])):
        rebounds += b_i[s, r, B_REBOUND]
    if censor == LOST_TO_FOLLOWUP:
        final = WAS_LOST
    elif censor == DEATH:
        final = DEAD
    pat_i[s, i, P_FINAL], pat_i[s, i, P_LINES], pat_i[s, i, P_EPISODES] = final, 0, 0
    pat_i[s, i, P_RELAPSES], pat_i[s, i, P_BURSTS] = 0, counts[s, BURSTS] - bursts_from
    pat_i[s, i, P_REBOUNDS] = rebounds
    pat_f[s, i, P_FOLLOW_UP], pat_f[s, i, P_FIRST_TOPICAL], pat_f[s, i, P_SYSTEMIC] = end, first_topical, 0.0
    pat_f[s, i, P_TOPICAL], pat_f[s, i, P_SUPPORTIVE], pat_f[s, i, P_ENTRY] = topical, 0.0, entry
    pat_f[s, i, P_FIRST_CONTROL] = math.nan
    return DONE


@rule
def _segment(segments, count, start, stop, state):
    segments[count, 0], segments[count, 1], segments[count, 2] = start, stop, state
    return count + 1


@rule
def _lay_flares(m_flare_rates, m_rescue_rebound, m_rescue_response, seed, replicate, patient, s, segments,
                segment_count, b_i, b_f, counts):
    """Lay the flares over the trajectory's intervals (`segments`: start, stop, state); False if
    the trajectory has more than MAX_BURSTS."""
    flare = 0
    target = unit_exponential(uniform(seed, replicate, patient, P.FLARE_GAP, 0, 0))
    first = counts[s, BURSTS]
    for k in range(segment_count):
        start, stop, state = segments[k, 0], segments[k, 1], int(segments[k, 2])
        rate = m_flare_rates[state]
        if not (rate > 0.0 and start < stop):
            continue
        position = start
        while True:
            time, remaining = next_flare(position, target, rate, stop)
            if math.isinf(time):
                target = remaining
                break
            effective, rebound = burst_outcome(uniform(seed, replicate, patient, P.FLARE_RESPONSE, flare, 0),
                                               uniform(seed, replicate, patient, P.FLARE_REBOUND, flare, 0),
                                               m_rescue_response, m_rescue_rebound)
            _burst(b_i, b_f, counts, s, patient, time, FLARE, state, effective, rebound)
            if counts[s, BURSTS] - first > MAX_BURSTS:
                return False
            flare += 1
            target = unit_exponential(uniform(seed, replicate, patient, P.FLARE_GAP, flare, 0))
            position = time
    return True


# -- the Python side: a chunk's covariates, the columns, the records ----------------------


class ColumnRecords:
    """A chunk's rows as columns (NumPy arrays), one dict per table, as `sim.engine.records` reads them."""

    def __init__(self, episodes: dict, events: dict, patients: dict, bursts: dict):
        self.episodes, self.events, self.patients, self.bursts = episodes, events, patients, bursts


_PACKED: dict[int, tuple[Model, Packed]] = {}


def packed_model(model: Model) -> Packed:
    """`pack(model)`, kept for the model last packed (a run packs once, not once per chunk)."""
    key = id(model)
    if key not in _PACKED or _PACKED[key][0] is not model:
        _PACKED.clear()
        _PACKED[key] = (model, pack(model))
    return _PACKED[key][1]


def check_supported(model: Model) -> None:
    """Raise `ScenarioError` if the compiled engine cannot simulate `model` (naming what it lacks)."""
    try:
        packed_model(model)
    except UnsupportedFeature as exc:
        raise ScenarioError([Problem(model.name, "settings.engine", str(exc))]) from None


def supports(model: Model) -> bool:
    """Whether the compiled engine can simulate `model`."""
    try:
        packed_model(model)
    except UnsupportedFeature:
        return False
    return True


def chunk_covariates(model: Model, replicate: int, first_patient: int, count: int) -> tuple[dict, np.ndarray]:
    """The covariates of a chunk's patients: by name (for the patients table) and as a
    patients x covariates matrix of numbers (yes/no as 0/1, a level as its number) for the kernel."""
    patients = np.arange(first_patient, first_patient + count, dtype=np.uint64)
    named, matrix = {}, np.zeros((count, max(1, len(model.population.covariates))))
    levels = covariate_levels(model)
    for k, covariate in enumerate(model.population.covariates):
        u = uniforms(model.seed, replicate, patients, P.COVARIATE, k, 0)
        if covariate.kind == "numeric":
            value = covariate.distribution.ppf(u)
            named[covariate.name] = matrix[:, k] = value
        elif covariate.kind == "boolean":
            value = u < covariate.probability
            named[covariate.name], matrix[:, k] = value, value
        else:
            codes = np.searchsorted(np.cumsum(covariate.level_weights), u, side="right")
            codes = np.minimum(codes, len(covariate.levels) - 1)
            matrix[:, k] = codes
            named[covariate.name] = pd.Categorical.from_codes(codes, categories=list(levels[covariate.name]))
    return named, matrix


def simulate_chunk(model: Model, replicate: int, first_patient: int, count: int) -> tuple[ColumnRecords, dict]:
    """Simulate every strategy for patients `first_patient .. first_patient+count-1` of
    `replicate`; return their records (columns) and their covariates by name."""
    m = packed_model(model)
    strategies = len(model.strategies)
    covariates, matrix = chunk_covariates(model, replicate, first_patient, count)
    capacity = [max(16, 4 * count), max(16, count), max(16, count if m.lays_flares or m.bridged.any() else 1)]
    blocks = _blocks(strategies, capacity, count)
    counts = np.zeros((strategies, 3), dtype=np.int64)
    status = np.zeros(3, dtype=np.int64)
    begin = 0
    while True:
        begin = simulate_patients(m, model.seed, replicate, first_patient, count, begin, matrix, *blocks, counts,
                                  status)
        if status[0] == DONE:
            break
        if status[0] != FULL:
            raise _runaway(model, int(status[0]), int(status[1]), int(status[2]))
        blocks = _grown(blocks, capacity, counts, strategies, count)
    return _records(blocks, counts, strategies, first_patient, count), covariates


def _blocks(strategies: int, capacity: list[int], count: int) -> list[np.ndarray]:
    episodes, events, bursts = capacity
    return [np.zeros((strategies, episodes, 12), dtype=np.int32), np.zeros((strategies, episodes, 3)),
            np.zeros((strategies, events, 5), dtype=np.int32), np.zeros((strategies, events)),
            np.zeros((strategies, bursts, 5), dtype=np.int32), np.zeros((strategies, bursts)),
            np.zeros((strategies, count, 6), dtype=np.int32), np.zeros((strategies, count, 7))]


def _grown(blocks: list[np.ndarray], capacity: list[int], counts: np.ndarray, strategies: int,
           count: int) -> list[np.ndarray]:
    """The blocks with twice the capacity of each table (the rows written so far kept)."""
    for k in range(3):
        capacity[k] *= 2
    new = _blocks(strategies, capacity, count)
    for k, (old, fresh) in enumerate(zip(blocks[:6], new[:6])):
        rows = counts[:, k // 2].max()
        fresh[:, :rows] = old[:, :rows]
    return [*new[:6], *blocks[6:]]  # one patient row each: never grown


def _runaway(model: Model, code: int, patient: int, strategy: int) -> ScenarioError:
    what = (f"more than {MAX_EPISODES} treatment episodes" if code == TOO_MANY_EPISODES
            else f"more than {MAX_BURSTS} corticosteroid bursts")
    return ScenarioError([Problem(model.name, f"strategies.{model.strategies[strategy].name}",
                                  f"patient {patient} had {what} in one trajectory: the pathway loops (short courses "
                                  "that remit and relapse at once, or flare rates far too high); check the durations, "
                                  "relapse times and flare rates")])


def _records(blocks: list[np.ndarray], counts: np.ndarray, strategies: int, first_patient: int,
             count: int) -> ColumnRecords:
    ep_i, ep_f, ae_i, ae_f, b_i, b_f, pat_i, pat_f = blocks

    def rows(block: np.ndarray, table: int) -> np.ndarray:
        return np.concatenate([block[s, :counts[s, table]] for s in range(strategies)])

    def strategy_codes(table: int) -> np.ndarray:
        return np.repeat(np.arange(strategies, dtype=np.int16), counts[:, table])

    ei, ef = rows(ep_i, EPISODES), rows(ep_f, EPISODES)
    episodes = {
        "strategy": strategy_codes(EPISODES), "patient": ei[:, E_PATIENT], "episode": ei[:, E_EPISODE],
        "line": ei[:, E_LINE], "treatment": ei[:, E_TREATMENT], "start": ef[:, E_START], "stop": ef[:, E_STOP],
        "reason": ei[:, E_REASON], "responded": ei[:, E_RESPONDED], "assessed": ef[:, E_ASSESSED],
        "retreatment": ei[:, E_RETREATMENT], "adverse_events": ei[:, E_EVENTS],
        "stopping_adverse_event": ei[:, E_STOPPER], "escalated": ei[:, E_ESCALATED],
        "below_target": ei[:, E_BELOW_TARGET], "bridged": ei[:, E_BRIDGED], "months_waited": np.zeros(len(ei)),
    }
    ai, af = rows(ae_i, EVENTS), rows(ae_f, EVENTS)
    events = {"strategy": strategy_codes(EVENTS), "patient": ai[:, A_PATIENT], "episode": ai[:, A_EPISODE],
              "treatment": ai[:, A_TREATMENT], "adverse_event": ai[:, A_EVENT], "time": af,
              "stopped_treatment": ai[:, A_STOPPED]}
    bi, bf = rows(b_i, BURSTS), rows(b_f, BURSTS)
    bursts = {"strategy": strategy_codes(BURSTS), "patient": bi[:, B_PATIENT], "time": bf, "reason": bi[:, B_REASON],
              "state": bi[:, B_STATE], "effective": bi[:, B_EFFECTIVE], "rebound": bi[:, B_REBOUND]}
    pi, pf = pat_i.reshape(-1, 6), pat_f.reshape(-1, 7)
    patients = {
        "strategy": np.repeat(np.arange(strategies, dtype=np.int16), count),
        "patient": np.tile(np.arange(first_patient, first_patient + count, dtype=np.int32), strategies),
        "final_state": pi[:, P_FINAL], "follow_up_months": pf[:, P_FOLLOW_UP],
        "months_to_first_topical": pf[:, P_FIRST_TOPICAL], "lines_used": pi[:, P_LINES],
        "episodes": pi[:, P_EPISODES], "relapses": pi[:, P_RELAPSES], "months_systemic": pf[:, P_SYSTEMIC],
        "months_topical": pf[:, P_TOPICAL], "months_supportive_care": pf[:, P_SUPPORTIVE],
        "months_waiting": np.zeros(len(pi)), "entry_month": pf[:, P_ENTRY],
        "months_to_first_control": pf[:, P_FIRST_CONTROL], "bursts": pi[:, P_BURSTS], "rebounds": pi[:, P_REBOUNDS],
    }
    return ColumnRecords(episodes, events, patients, bursts)
