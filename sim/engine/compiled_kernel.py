"""The compiled engine's Numba kernel: a per-patient event loop over patients, strategies and
(for a PSA) samples, calling the rules of `sim.rules`.

Every uniform is a pure function of (seed, replicate, patient, purpose, occurrence, offset)
(`sim.random_numbers.uniform`, purposes in `sim.rules.purposes`): the same patient gets the
same number for the same purpose under every strategy (common random numbers), and the
tables do not depend on chunks, workers or how many samples one call simulates. Rows are
written into preallocated columns, one region per (sample, strategy); when a region is
full the kernel stops and says where to resume. Times are months since the patient's entry.

Why it is shaped as it is (measured on Numba 0.68, `benchmarks/README.md`): a call to a
compiled function that binds an array costs two atomic reference counts, about 30 ns
each, on every call; the earlier kernel, whose helpers took 16-60 arrays each, spent most
of its time there. Here one function per sample (`_sample`) binds the packed model's
arrays once, and its steps are closures over them (Numba inlines closures and counts no
reference for what they capture); the rules they call take only numbers. An episode's
plan depends only on (patient, drug, occurrence, response probability, assessment), so a
plan made for one strategy is reused by the others (`plan_cached`); in a PSA, a plan made for
one sample is reused by the next samples whose drug differs at most in its response
probability (in `plan_cached`: keyed by whether the patient responds at the first assessment).
"""

from __future__ import annotations

import math

import numpy as np

from sim.random_numbers import uniform as inline_uniform
from sim.random_numbers import ANY_UNIFORM, decides, uniform_pair
from sim.rules import purposes as P
from sim.rules.adverse_events import happened, occurs, stops_treatment, with_adverse_event
from sim.rules.assessment import is_below_target, is_escalated
from sim.rules.bridges import bridge_burst, controlled_by_bridge
from sim.guard import MAX_BURSTS, MAX_EPISODES
from sim.rules.compile import rule
from sim.rules.courses import at_least_until_assessment, course_end
from sim.rules.durations import (
    EMPIRICAL,
    FIXED,
    GAMMA,
    GENGAMMA,
    PIECEWISE_EXPONENTIAL,
    closed_form_quantile,
    gamma_cubic,
    gamma_position,
    gengamma_from_gamma,
    gamma_score_position,
    gengamma_score,
    hazard_interval,
    quantile,
)
from sim.rules.eligibility import IN, compares, first_line_choice, may_start_coded
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

MAX_TREATMENTS = 63  # treatments are bits of one 64-bit word in the eligibility sets
CACHED_OCCURRENCES = 4  # episode plans kept per drug for reuse across strategies
CACHED_FLARES = 256  # flare gaps and burst outcomes kept per patient for reuse across strategies
CACHED_SPELLS = 16  # relapse draws kept per patient for reuse across strategies
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
# Status words: what stopped the kernel, the patient and strategy of a runaway, the sample to resume.
S_CODE, S_PATIENT, S_STRATEGY, S_SAMPLE = range(4)


@rule
def uniform(seed, replicate, patient, purpose, occurrence, offset):
    """`sim.random_numbers.uniform`, compiled once: called, not inlined at each of the kernel's
    draws, which keeps the kernel's compile time down."""
    return inline_uniform(seed, replicate, patient, purpose, occurrence, offset)


@rule
def patient_uniforms(seed, replicate, first_patient, count, purpose, occurrence, offset):
    """`sim.random_numbers.uniforms` for patients `first_patient .. first_patient+count-1` (the
    same bits), at a fraction of the array version's cost."""
    out = np.empty(count)
    for i in range(count):
        out[i] = inline_uniform(seed, replicate, first_patient + i, purpose, occurrence, offset)
    return out


@rule
def patient_levels(seed, replicate, first_patient, count, purpose, occurrence, offset, cumulative):
    """The level of a categorical covariate of patients `first_patient ..` (`count` of them): the
    number of `cumulative` weights at or below the patient's uniform, at most the last level (as
    `np.searchsorted(cumulative, u, side="right")`, at a fraction of its cost)."""
    # The uniforms first, in their own loop: drawn beside the search, they were drawn 8x slower.
    u = patient_uniforms(seed, replicate, first_patient, count, purpose, occurrence, offset)
    out = np.zeros(count, dtype=np.int64)
    for level in range(cumulative.shape[0] - 1):
        for i in range(count):
            out[i] += cumulative[level] <= u[i]
    return out


@rule
def empirical_value(distributions, index, u, gamma_tables, empirical):
    """`quantile` out of line, for the rare empirical draw (inlined, it would swell every draw)."""
    return quantile(distributions, index, u, gamma_tables, empirical)


@rule
def simulate_samples(m, seeds, replicate, first_patient, count, begin_sample, begin, covariates, ep_i, ep_f, ae_i,
                     ae_f, b_i, b_f, pat_i, pat_f, counts, status, drug_class, shared):
    """Simulate patients `first_patient ..` (`count` of them) under every strategy of every sample
    of the stacked model `m` (`sim.engine.compiled_model.stack`: each field has the sample first),
    from sample `begin_sample`, patient `begin`; sample k uses `seeds[k]` and `covariates[k]`.

    Rows go to region k * strategies + s of each block. Returns the first patient not simulated
    (`count` when all were) with `status[S_SAMPLE]` its sample and `status[S_CODE]` DONE, FULL
    (grow the blocks and call again from there) or a runaway code (TOO_MANY_EPISODES /
    TOO_MANY_BURSTS, with `status[S_PATIENT]` and `status[S_STRATEGY]`). `counts[region]` holds
    the rows written per table.

    `drug_class[k, t]` numbers drug t's parameters other than its response probability in sample k
    (equal numbers: equal parameters and seed), and `shared` holds the episode plans of the
    patients for the next samples of a class (`plan_cached`): arrays with a first axis of
    `count` (or none, shape 0, when samples share nothing: `sim.engine.compiled.shared_plans`).
    """
    strategies = m.lines.shape[1]
    for k in range(begin_sample, seeds.shape[0]):
        status[S_SAMPLE] = k
        start = begin if k == begin_sample else 0
        stopped = _sample(
            m.assess[k], m.response[k], m.course[k], m.cap[k], m.loss[k], m.fates[k], m.escalation[k],
            m.escalated_response[k], m.reassess[k], m.target[k], m.relapse_variant[k], m.age_allowed[k],
            m.requires_failure[k], m.eligible_first[k], m.eligibility_conditions[k], m.covariate_first[k],
            m.line_first[k], m.modifiers[k], m.ae_first[k], m.ae_probability[k], m.ae_onset[k],
            m.ae_stop_probability[k], m.condition_covariate[k], m.condition_operator[k], m.condition_value[k],
            m.condition_levels[k], m.lines[k], m.line_count[k], m.first_line_cumulative[k], m.draws_first_line[k],
            m.retreats[k], m.retreat_allowed[k], m.bridged[k], m.target_assess[k], m.relapse_probability[k],
            m.relapse_time[k], m.rescue_response[k], m.rescue_rebound[k], m.rescue_onset[k], m.flare_rates[k],
            m.lays_flares[k], m.horizon[k], m.follow_up[k], m.arrival[k], m.loss_to_followup[k],
            m.age_limit_months[k], m.age_limit_covariate[k], m.mortality_covariate[k], m.mortality_knots[k],
            m.mortality_cumulative[k], m.mortality_hazards[k], m.workup_found[k], m.workup_duration[k],
            m.distributions[k], m.gamma_tables, m.empirical,
            seeds[k], replicate, first_patient, count, start, covariates[k], k * strategies, ep_i, ep_f, ae_i, ae_f,
            b_i, b_f, pat_i, pat_f, counts, status, drug_class[k], shared[0], shared[1], shared[2], shared[3],
            shared[4])
        if status[S_CODE] != DONE:
            return stopped
    status[S_CODE] = DONE
    return count


@rule
def _sample(assess, response, course, cap, loss, fates, escalation, escalated_response, reassess, target,
            relapse_variant, age_allowed, requires_failure, eligible_first, eligibility_conditions, covariate_first,
            line_first, modifiers, ae_first, ae_probability, ae_onset, ae_stop_probability, condition_covariate,
            condition_operator, condition_value, condition_levels, lines, line_count, first_line_cumulative,
            draws_first_line, retreats, retreat_allowed, bridged, target_assess, relapse_probability, relapse_time,
            rescue_response, rescue_rebound, rescue_onset, flare_rates, lays, horizon, follow_up, arrival,
            loss_to_followup, age_limit_months, age_limit_covariate, mortality_covariate, mortality_knots,
            mortality_cumulative, mortality_hazards, workup_found, workup_duration, distributions, gamma_tables,
            empirical, seed, replicate,
            first_patient, count, begin, covariates, region, ep_i, ep_f, ae_i, ae_f, b_i, b_f, pat_i, pat_f, counts,
            status, drug_class, shared_f, shared_i, shared_onsets, shared_ids, shared_stops):
    """One sample's patients `begin .. count-1` (the fields of `sim.engine.compiled_model.Packed`,
    then the run's numbers and blocks; rows go to regions `region + s`). Returns the first patient
    not simulated and sets `status[S_CODE]` as `simulate_samples` describes."""
    # The work arrays are made here and handed to `_patients` as arguments: arrays made in the
    # function whose closures use them cost an atomic reference count at each use in a loop.
    strategies = lines.shape[0]
    treatments = response.shape[0]
    events_max = 1
    for t in range(treatments):
        events_max = max(events_max, ae_first[t + 1] - ae_first[t])
    required = np.zeros(treatments, dtype=np.int64)  # bit set of the drugs each must come after
    for t in range(treatments):
        for j in range(treatments):
            if requires_failure[t, j]:
                required[t] |= np.int64(1) << np.int64(j)
    # Then: response probabilities, line numbers and occurrences per drug; an episode's events;
    # plans per (drug, occurrence): end, assessment, probability | valid, reason, responded,
    # events, stopper, escalated, below target, target assessment | the events; segments; counts;
    # flare gaps, burst outcomes (effective, rebound) and how many of each (and spells) are known;
    # relapse draws of the first spells and their variant + 1.
    return _patients(assess, response, course, cap, loss, fates, escalation, escalated_response, reassess, target,
                     relapse_variant, age_allowed, requires_failure, eligible_first, eligibility_conditions,
                     covariate_first, line_first, modifiers, ae_first, ae_probability, ae_onset, ae_stop_probability,
                     condition_covariate, condition_operator, condition_value, condition_levels, lines, line_count,
                     first_line_cumulative, draws_first_line, retreats, retreat_allowed, bridged, target_assess,
                     relapse_probability, relapse_time, rescue_response, rescue_rebound, rescue_onset, flare_rates,
                     lays, horizon, follow_up, arrival, loss_to_followup, age_limit_months, age_limit_covariate,
                     mortality_covariate, mortality_knots, mortality_cumulative, mortality_hazards, workup_found,
                     workup_duration, distributions, gamma_tables, empirical, seed, replicate, first_patient, count,
                     begin, covariates, region, ep_i, ep_f, ae_i, ae_f, b_i, b_f, pat_i, pat_f, counts, status,
                     drug_class, shared_f, shared_i, shared_onsets, shared_ids, shared_stops,
                     required, np.zeros(treatments), np.zeros(treatments, dtype=np.int64),
                     np.zeros(treatments, dtype=np.int64),
                     np.zeros(events_max), np.zeros(events_max, dtype=np.int64), np.zeros(events_max, dtype=np.bool_),
                     np.zeros((treatments, CACHED_OCCURRENCES, 3)),
                     np.zeros((treatments, CACHED_OCCURRENCES, 8), dtype=np.int64),
                     np.zeros((treatments, CACHED_OCCURRENCES, events_max)),
                     np.zeros((treatments, CACHED_OCCURRENCES, events_max), dtype=np.int64),
                     np.zeros((treatments, CACHED_OCCURRENCES, events_max), dtype=np.bool_),
                     np.zeros((3 * MAX_EPISODES + 4, 3)), np.zeros((strategies, 3), dtype=np.int64),
                     np.zeros(CACHED_FLARES), np.zeros((CACHED_FLARES, 2), dtype=np.bool_),
                     np.zeros(3, dtype=np.int64), np.zeros((CACHED_SPELLS, 2)), np.zeros(CACHED_SPELLS, dtype=np.int64))


@rule
def _patients(assess, response, course, cap, loss, fates, escalation, escalated_response, reassess, target,
              relapse_variant, age_allowed, requires_failure, eligible_first, eligibility_conditions, covariate_first,
              line_first, modifiers, ae_first, ae_probability, ae_onset, ae_stop_probability, condition_covariate,
              condition_operator, condition_value, condition_levels, lines, line_count, first_line_cumulative,
              draws_first_line, retreats, retreat_allowed, bridged, target_assess, relapse_probability, relapse_time,
              rescue_response, rescue_rebound, rescue_onset, flare_rates, lays, horizon, follow_up, arrival,
              loss_to_followup, age_limit_months, age_limit_covariate, mortality_covariate, mortality_knots,
              mortality_cumulative, mortality_hazards, workup_found, workup_duration, distributions, gamma_tables,
              empirical, seed, replicate, first_patient, count, begin, covariates, region, ep_i, ep_f, ae_i, ae_f, b_i,
              b_f, pat_i, pat_f, counts, status, drug_class, shared_f, shared_i, shared_onsets, shared_ids, shared_stops,
              required, base_probability, line_number, occurrences, onsets,
              event_ids, stops, plan_f, plan_i, plan_onsets, plan_ids, plan_stops, segments, before, flare_gaps,
              flare_outcomes, flares_known, spell_draws, spell_variant):
    """`_sample` with its work arrays: `required` (bit set of the drugs each must come after),
    the patient's response probabilities, lines and occurrences per drug, an episode's events,
    the plans per (drug, occurrence), the trajectory's segments, the row counts before the patient and
    the patient's first flare gaps and burst outcomes (a pure function of the flare's number, so the
    same under every strategy), how many of each are known (and of spells on topical therapy), and
    the relapse draws of the first spells with their relapse variant + 1 (0: not drawn yet)."""
    strategies = lines.shape[0]
    treatments = response.shape[0]
    sharing = shared_i.shape[0] >= count  # plans kept per patient for the next samples
    draws_any = False  # whether any strategy draws its first line
    for s in range(strategies):
        draws_any = draws_any or draws_first_line[s]

    def table_gamma(k, position):
        knot, t = position
        if knot < 0:
            return gamma_cubic(knot, t, 0.0, 0.0, 0.0, 0.0)
        return gamma_cubic(knot, t, gamma_tables[k, 0, knot], gamma_tables[k, 1, knot], gamma_tables[k, 2, knot],
                           gamma_tables[k, 3, knot])

    def standard_gamma(k, u):
        # `sim.rules.durations.gamma_standard_quantile` on the captured k-th table.
        return table_gamma(k, gamma_position(u))

    def piecewise_exponential(first, count, u):
        # The piecewise exponential branch of `sim.rules.durations.quantile`: starts and rates
        # are kept where empirical distributions keep values and weights.
        if u <= 0.0:
            return 0.0
        remaining, x = -math.log1p(-u), math.inf
        for k in range(first, first + count):
            end = empirical[0, k + 1] if k + 1 < first + count else math.inf
            x, remaining = hazard_interval(remaining, empirical[0, k], end, empirical[1, k])
            if x < math.inf:
                break
        return x

    def draw(patient, index, purpose, occurrence, offset):
        # `sim.rules.durations.quantile` on the captured table (a fixed one needs no uniform).
        family = int(distributions[index, 0])
        low, high = distributions[index, 5], distributions[index, 6]
        u = 0.5
        if not (family == FIXED or low == high):
            u = uniform(seed, replicate, patient, purpose, occurrence, offset)
        if family == GAMMA:
            return min(max(standard_gamma(int(distributions[index, 3]), u) * distributions[index, 2], low), high)
        if family == GENGAMMA:
            shape_q = distributions[index, 4]
            g = table_gamma(int(distributions[index, 3]), gamma_score_position(gengamma_score(u, shape_q)))
            return min(max(gengamma_from_gamma(g, distributions[index, 1], distributions[index, 2], shape_q), low), high)
        if family == PIECEWISE_EXPONENTIAL:
            return min(max(piecewise_exponential(int(distributions[index, 3]), int(distributions[index, 4]), u), low),
                       high)
        if family == EMPIRICAL:
            return empirical_value(distributions, index, u, gamma_tables, empirical)
        return closed_form_quantile(family, distributions[index, 1], distributions[index, 2],
                                    distributions[index, 3], u, low, high)

    def chance(patient, purpose, occurrence, offset, probability):
        # The uniform of a comparison with `probability`, drawn only if it can change the outcome.
        if decides(probability):
            return uniform(seed, replicate, patient, purpose, occurrence, offset)
        return ANY_UNIFORM

    def holds(c, x):
        operator = condition_operator[c]
        inside = operator >= IN and condition_levels[c, int(x)]
        return compares(operator, x, condition_value[c], inside)

    def keep_events(n_events, end):
        kept = 0
        for j in range(n_events):
            if happened(onsets[j], end):
                onsets[kept], event_ids[kept], stops[kept] = onsets[j], event_ids[j], stops[j]
                kept += 1
        return kept

    def plan(patient, t, occurrence, responded, to_assess):
        # How an episode of `t` ends if observation goes on, given whether the patient responded at
        # the first assessment: (end, reason, responded, assessed, events, stopper, escalated, below
        # target), months from its start; events in `onsets`...
        off = P.episode_offset(t, 0)
        to_target = to_assess >= 0
        assessed = draw(patient, to_assess if to_target else assess[t], P.ASSESSMENT, occurrence, off)
        escalated = False
        if not responded and not math.isnan(escalation[t]):
            escalated = is_escalated(responded, chance(patient, P.ESCALATION, occurrence, off, escalation[t]),
                                     escalation[t])
        if escalated:
            assessed += draw(patient, reassess[t], P.REASSESSMENT, occurrence, off)
            responded = responds(chance(patient, P.ESCALATED_RESPONSE, occurrence, off, escalated_response[t]),
                                 escalated_response[t])
        below = False
        if responded and to_target and not math.isnan(target[t]):
            below = is_below_target(responded, to_target, chance(patient, P.TARGET, occurrence, off, target[t]),
                                    target[t])
            responded = not below
        if responded:
            remission, switch, stay = fates[t, 0], fates[t, 1], fates[t, 2]
            u_fate = uniform(seed, replicate, patient, P.FATE, occurrence, off)
            capped = math.inf
            if cap[t] >= 0:
                capped = draw(patient, cap[t], P.CAP, occurrence, off)
            months = math.inf
            if course[t] >= 0 and fate(u_fate, remission, switch) != CONTINUE:
                months = draw(patient, course[t], P.COURSE, occurrence, off)
            end, reason = course_end(u_fate, months, capped, remission, switch, stay)
            end = at_least_until_assessment(end, assessed)
            if loss[t] >= 0:
                lost = draw(patient, loss[t], P.LOSS_OF_RESPONSE, occurrence, off)
                end, reason = with_loss_of_response(end, reason, assessed, lost)
        else:
            end, reason = assessed, NONRESPONSE
        n_events, stop_at, stopper = 0, math.inf, -1
        first = ae_first[t]
        u_next = 0.0
        for e in range(first, ae_first[t + 1]):
            a = e - first
            if a % 2 == 0:  # off is even: events 2j and 2j + 1 share a Philox block
                u_occurs = u_next = ANY_UNIFORM
                if decides(ae_probability[e]) or (e + 1 < ae_first[t + 1] and decides(ae_probability[e + 1])):
                    u_occurs, u_next = uniform_pair(seed, replicate, patient, P.ADVERSE_EVENT_OCCURS, occurrence,
                                                    off + a)
            else:
                u_occurs = u_next
            if occurs(u_occurs, ae_probability[e]):
                onset = draw(patient, ae_onset[e], P.ADVERSE_EVENT_ONSET, occurrence, off + a)
                stopping = stops_treatment(chance(patient, P.ADVERSE_EVENT_STOPS, occurrence, off + a,
                                                  ae_stop_probability[e]), ae_stop_probability[e])
                onsets[n_events], event_ids[n_events], stops[n_events] = onset, a, stopping
                n_events += 1
                if stopping and onset < stop_at:
                    stop_at, stopper = onset, a
        end, reason, stopped = with_adverse_event(end, reason, stop_at)
        if not stopped:
            stopper = -1
        n_events = keep_events(n_events, end)
        known = assessed <= end
        return end, reason, responded, assessed, n_events, stopper, escalated and known, below and known

    def plan_cached(patient, i, t, occurrence, probability, to_assess):
        # `plan`, reused when another strategy asked for the same (drug, occurrence) with the
        # same probability and assessment (a plan is a pure function of these).
        o = occurrence
        cached = o < CACHED_OCCURRENCES
        if cached and plan_i[t, o, 0] == 1 and plan_f[t, o, 2] == probability and plan_i[t, o, 7] == to_assess:
            n_events = plan_i[t, o, 3]
            for j in range(n_events):
                onsets[j], event_ids[j], stops[j] = plan_onsets[t, o, j], plan_ids[t, o, j], plan_stops[t, o, j]
            return (plan_f[t, o, 0], plan_i[t, o, 1], plan_i[t, o, 2] == 1, plan_f[t, o, 1], n_events,
                    plan_i[t, o, 4], plan_i[t, o, 5] == 1, plan_i[t, o, 6] == 1)
        responded = responds(chance(patient, P.RESPONSE, o, P.episode_offset(t, 0), probability), probability)
        # Across the samples of a PSA, a plan is a pure function of the drug's parameters other than
        # its response probability (the same in the samples of one `drug_class`), the assessment and
        # the first response: kept per patient `i` for the next samples. (One call of `plan`: each
        # call site inlines it, at a cost in compile time.)
        r = 1 if responded else 0
        share = sharing and cached
        if share and shared_i[i, t, o, r, 0] == drug_class[t] + 1 and shared_i[i, t, o, r, 7] == to_assess:
            end, reason, responded, assessed = (shared_f[i, t, o, r, 0], int(shared_i[i, t, o, r, 1]),
                                                shared_i[i, t, o, r, 2] == 1, shared_f[i, t, o, r, 1])
            n_events, stopper = int(shared_i[i, t, o, r, 3]), int(shared_i[i, t, o, r, 4])
            escalated, below = shared_i[i, t, o, r, 5] == 1, shared_i[i, t, o, r, 6] == 1
            for j in range(n_events):
                onsets[j], event_ids[j] = shared_onsets[i, t, o, r, j], shared_ids[i, t, o, r, j]
                stops[j] = shared_stops[i, t, o, r, j]
        else:
            end, reason, responded, assessed, n_events, stopper, escalated, below = plan(patient, t, o, responded,
                                                                                         to_assess)
            if share:
                shared_f[i, t, o, r, 0], shared_f[i, t, o, r, 1] = end, assessed
                shared_i[i, t, o, r, 0], shared_i[i, t, o, r, 1] = drug_class[t] + 1, reason
                shared_i[i, t, o, r, 2], shared_i[i, t, o, r, 3], shared_i[i, t, o, r, 4] = responded, n_events, stopper
                shared_i[i, t, o, r, 5], shared_i[i, t, o, r, 6], shared_i[i, t, o, r, 7] = escalated, below, to_assess
                for j in range(n_events):
                    shared_onsets[i, t, o, r, j], shared_ids[i, t, o, r, j] = onsets[j], event_ids[j]
                    shared_stops[i, t, o, r, j] = stops[j]
        if not cached:
            return end, reason, responded, assessed, n_events, stopper, escalated, below
        plan_f[t, o, 0], plan_f[t, o, 1], plan_f[t, o, 2] = end, assessed, probability
        plan_i[t, o, 0], plan_i[t, o, 1], plan_i[t, o, 2], plan_i[t, o, 3] = 1, reason, responded, n_events
        plan_i[t, o, 4], plan_i[t, o, 5], plan_i[t, o, 6], plan_i[t, o, 7] = stopper, escalated, below, to_assess
        for j in range(n_events):
            plan_onsets[t, o, j], plan_ids[t, o, j], plan_stops[t, o, j] = onsets[j], event_ids[j], stops[j]
        return end, reason, responded, assessed, n_events, stopper, escalated, below

    def next_line(s, first, position, failed, allowed):
        position += 1
        while position < line_count[s]:
            t = lines[s, line_index(first, position)]
            if may_start_coded(t, failed, allowed, required[t]):
                return t, position
            position += 1
        return -1, position

    def line_probability(t, probability, line):
        for k in range(line_first[t], line_first[t + 1]):
            if holds(int(modifiers[k, 0]), float(line)):
                probability = modified_response(probability, modifiers[k, 1], modifiers[k, 2])
        return probability

    def patient_matrices(i):
        # The bit set of the treatments patient `i` may take; their response probabilities
        # after covariate modifiers go to `base_probability`.
        allowed = np.int64(0)
        for t in range(treatments):
            ok = age_allowed[t]
            for j in range(eligible_first[t], eligible_first[t + 1]):
                c = eligibility_conditions[j]
                ok = ok and holds(c, covariates[i, condition_covariate[c]])
            if ok:
                allowed |= np.int64(1) << np.int64(t)
            p = response[t]
            for k in range(covariate_first[t], covariate_first[t + 1]):
                c = int(modifiers[k, 0])
                if holds(c, covariates[i, condition_covariate[c]]):
                    p = modified_response(p, modifiers[k, 1], modifiers[k, 2])
            base_probability[t] = p
        return allowed

    def observation(patient, i):
        # The patient's entry (months on the clock) and end of observation (months after entry, reason).
        entry = 0.0
        if arrival >= 0:
            entry = draw(patient, arrival, P.ARRIVAL, 0, 0)
        followed = math.inf
        if follow_up >= 0:
            followed = draw(patient, follow_up, P.FOLLOW_UP, 0, 0)
        to_limit = math.inf
        if age_limit_covariate >= 0:
            to_limit = age_limit_months - 12.0 * covariates[i, age_limit_covariate]
        death = math.inf
        if mortality_covariate >= 0:
            death = 12.0 * years_to_death(covariates[i, mortality_covariate],
                                          uniform(seed, replicate, patient, P.DEATH, 0, 0), mortality_knots,
                                          mortality_cumulative, mortality_hazards)
        lost = math.inf
        if loss_to_followup >= 0:
            lost = draw(patient, loss_to_followup, P.LOSS_TO_FOLLOWUP, 0, 0)
        end, reason = observation_end(horizon, followed, to_limit, death, lost)
        return entry, end, reason

    def work_up(patient, end):
        # The work-up at entry (`sim.rules.workup`): (months observed in it, outcome); (0, GOES_ON) without one.
        if workup_duration < 0:
            return 0.0, GOES_ON
        duration = draw(patient, workup_duration, P.WORKUP_TIME, 0, 0)
        u = chance(patient, P.WORKUP_FINDS, 0, 0, workup_found)
        return workup_months(duration, end), workup_outcome(u, workup_found, duration, end)

    def segment(n, start, stop, state):
        segments[n, 0], segments[n, 1], segments[n, 2] = start, stop, state
        return n + 1

    def burst(g, patient, time, reason, state, effective, rebound):
        r = counts[g, BURSTS]
        if r < b_i.shape[1]:
            b_i[g, r, B_PATIENT], b_i[g, r, B_REASON], b_i[g, r, B_STATE] = patient, reason, state
            b_i[g, r, B_EFFECTIVE], b_i[g, r, B_REBOUND] = effective, rebound
            b_f[g, r] = time
        counts[g, BURSTS] = r + 1

    def flare_gap(patient, flare):
        # The unit exponential gap before flare `flare` (0, 1, ...), kept for the other strategies.
        if flare >= CACHED_FLARES:
            return unit_exponential(uniform(seed, replicate, patient, P.FLARE_GAP, flare, 0))
        for k in range(flares_known[0], flare + 1):
            flare_gaps[k] = unit_exponential(uniform(seed, replicate, patient, P.FLARE_GAP, k, 0))
        flares_known[0] = max(flares_known[0], flare + 1)
        return flare_gaps[flare]

    def flare_outcome(patient, flare):
        # (effective, rebound) of the burst of flare `flare`, kept for the other strategies.
        if flare >= CACHED_FLARES:
            return burst_outcome(chance(patient, P.FLARE_RESPONSE, flare, 0, rescue_response),
                                 chance(patient, P.FLARE_REBOUND, flare, 0, rescue_rebound), rescue_response,
                                 rescue_rebound)
        for k in range(flares_known[1], flare + 1):
            flare_outcomes[k, 0], flare_outcomes[k, 1] = burst_outcome(
                chance(patient, P.FLARE_RESPONSE, k, 0, rescue_response),
                chance(patient, P.FLARE_REBOUND, k, 0, rescue_rebound), rescue_response, rescue_rebound)
        flares_known[1] = max(flares_known[1], flare + 1)
        return flare_outcomes[flare, 0], flare_outcomes[flare, 1]

    def relapse_draws(patient, v, spell):
        # (uniform, months) of the relapse ending spell `spell` on topical therapy under relapse
        # variant `v`: a pure function of these, kept for the other strategies.
        cached = spell < CACHED_SPELLS
        if cached and spell_variant[spell] == v + 1:
            return spell_draws[spell, 0], spell_draws[spell, 1]
        u = chance(patient, P.RELAPSE_OCCURS, spell, 0, relapse_probability[v])
        time = draw(patient, relapse_time[v], P.RELAPSE_TIME, spell, 0)
        if cached:
            spell_draws[spell, 0], spell_draws[spell, 1], spell_variant[spell] = u, time, v + 1
            flares_known[2] = max(flares_known[2], spell + 1)
        return u, time

    def lay_flares(patient, g, segment_count):
        # Flares over the trajectory's intervals (`segments`); False past MAX_BURSTS.
        flare = 0
        gap = flare_gap(patient, 0)
        first = counts[g, BURSTS]
        for k in range(segment_count):
            start, stop, state = segments[k, 0], segments[k, 1], int(segments[k, 2])
            rate = flare_rates[state]
            if not (rate > 0.0 and start < stop):
                continue
            position = start
            while True:
                time, remaining = next_flare(position, gap, rate, stop)
                if math.isinf(time):
                    gap = remaining
                    break
                effective, rebound = flare_outcome(patient, flare)
                burst(g, patient, time, FLARE, state, effective, rebound)
                if counts[g, BURSTS] - first > MAX_BURSTS:
                    return False
                flare += 1
                gap = flare_gap(patient, flare)
                position = time
        return True

    def episode_row(g, patient, episodes, line, t, reason, response, retreatment, n_events, stopper, escalated,
                    below, was_bridged, start, stop, assessed):
        r = counts[g, EPISODES]
        if r < ep_i.shape[1]:
            ep_i[g, r, E_PATIENT], ep_i[g, r, E_EPISODE], ep_i[g, r, E_LINE], ep_i[g, r, E_TREATMENT] = (
                patient, episodes, line, t)
            ep_i[g, r, E_REASON], ep_i[g, r, E_RESPONDED], ep_i[g, r, E_RETREATMENT] = reason, response, retreatment
            ep_i[g, r, E_EVENTS], ep_i[g, r, E_STOPPER], ep_i[g, r, E_ESCALATED] = n_events, stopper, escalated
            ep_i[g, r, E_BELOW_TARGET], ep_i[g, r, E_BRIDGED] = below, was_bridged
            ep_f[g, r, E_START], ep_f[g, r, E_STOP], ep_f[g, r, E_ASSESSED] = start, stop, assessed
        counts[g, EPISODES] = r + 1
        for j in range(n_events):
            r = counts[g, EVENTS]
            if r < ae_i.shape[1]:
                ae_i[g, r, A_PATIENT], ae_i[g, r, A_EPISODE], ae_i[g, r, A_TREATMENT] = patient, episodes, t
                ae_i[g, r, A_EVENT] = event_ids[j]
                ae_i[g, r, A_STOPPED] = stops[j] and event_ids[j] == stopper
                ae_f[g, r] = start + onsets[j]
            counts[g, EVENTS] = r + 1

    def overflowed():
        for g in range(region, region + strategies):
            if counts[g, EPISODES] > ep_i.shape[1] or counts[g, EVENTS] > ae_i.shape[1]:
                return True
            if counts[g, BURSTS] > b_i.shape[1]:
                return True
        return False

    def without_systemic(patient, i, s, outcome, workup, entry, end, censor):
        # The rows of a patient whose work-up ended the trajectory: diverted back to topical
        # therapy at `workup` months, or still in the work-up when observation ended.
        g = region + s
        bursts_from = counts[g, BURSTS]
        segment_count = segment(0, 0.0, workup, UNCONTROLLED)
        final, first_topical, topical = WAITING, math.nan, 0.0
        if outcome != STILL_IN_WORKUP:
            segment_count = segment(segment_count, workup, end, TOPICAL)
            final, first_topical, topical = DIVERTED, workup, end - workup
        if lays and not lay_flares(patient, g, segment_count):
            return TOO_MANY_BURSTS
        rebounds = 0
        for r in range(bursts_from, min(counts[g, BURSTS], b_i.shape[1])):
            rebounds += b_i[g, r, B_REBOUND]
        if censor == LOST_TO_FOLLOWUP:
            final = WAS_LOST
        elif censor == DEATH:
            final = DEAD
        pat_i[g, i, P_FINAL], pat_i[g, i, P_LINES], pat_i[g, i, P_EPISODES] = final, 0, 0
        pat_i[g, i, P_RELAPSES], pat_i[g, i, P_BURSTS] = 0, counts[g, BURSTS] - bursts_from
        pat_i[g, i, P_REBOUNDS] = rebounds
        pat_f[g, i, P_FOLLOW_UP], pat_f[g, i, P_FIRST_TOPICAL], pat_f[g, i, P_SYSTEMIC] = end, first_topical, 0.0
        pat_f[g, i, P_TOPICAL], pat_f[g, i, P_SUPPORTIVE], pat_f[g, i, P_ENTRY] = topical, 0.0, entry
        pat_f[g, i, P_FIRST_CONTROL] = math.nan
        return DONE

    def trajectory(patient, i, s, u_first, entry, end, censor, allowed, workup):
        # One patient's trajectory under strategy `s` from the end of the work-up (`workup`
        # months after entry; 0 without one): its rows; DONE or the runaway code.
        g = region + s
        for t in range(treatments):
            line_number[t], occurrences[t] = 0, 0
        failed = np.int64(0)
        lines_used = episodes = relapses = spells = segment_count = 0
        systemic = topical = supportive = 0.0
        first_topical = first_control = math.nan
        bursts_from = counts[g, BURSTS]
        first = 0
        if draws_first_line[s]:
            first = first_line_choice(u_first, first_line_cumulative, s, line_count[s])
        to_assess = target_assess[s]
        now = workup
        if lays and workup > 0.0:
            segment_count = segment(segment_count, 0.0, workup, UNCONTROLLED)
        final = -1
        t, position = next_line(s, first, -1, failed, allowed)
        retreatment = False
        while True:
            if t < 0:
                supportive += end - now
                if lays:
                    segment_count = segment(segment_count, now, end, SUPPORTIVE_CARE)
                final = ON_SUPPORTIVE_CARE
                break
            if line_number[t] == 0:
                lines_used += 1
                line_number[t] = lines_used
            line = line_number[t]
            occurrence = occurrences[t]
            occurrences[t] += 1
            probability = base_probability[t]
            if line_first[t + 1] > line_first[t]:
                probability = line_probability(t, probability, line)
            duration, reason, responded, assessed, n_events, stopper, escalated, below = plan_cached(
                patient, i, t, occurrence, probability, to_assess)
            was_bridged = bridged[s, t]
            if was_bridged:
                off = P.episode_offset(t, 0)
                effective, rebound = bridge_burst(
                    chance(patient, P.BRIDGE_RESPONSE, occurrence, off, rescue_response),
                    chance(patient, P.BRIDGE_REBOUND, occurrence, off, rescue_rebound), rescue_response,
                    rescue_rebound)
                onset = draw(patient, rescue_onset, P.BRIDGE_ONSET, occurrence, off)
                control = controlled_by_bridge(effective, now, onset, end)
                if control >= 0.0 and not (control >= first_control):
                    first_control = control
                burst(g, patient, now, BRIDGE, UNCONTROLLED, effective, rebound)
            start = now
            if start + duration >= end:  # observation ends first: only what happened before it is known
                stop, reason, final = end, censor, ON_SYSTEMIC
                known = assessed <= stop - start
                escalated, below = escalated and known, below and known
                n_events = keep_events(n_events, stop - start)
                stopper = -1
            else:
                stop = start + duration
                known = assessed <= duration
            episodes += 1
            if episodes > MAX_EPISODES:
                return TOO_MANY_EPISODES
            systemic += stop - start
            if not known:
                at, response = math.nan, -1
                if lays:
                    segment_count = segment(segment_count, start, stop, UNCONTROLLED)
            else:
                at, response = start + assessed, 1 if responded else 0
                if lays:
                    segment_count = segment(segment_count, start, at, UNCONTROLLED)
                    segment_count = segment(segment_count, at, stop, CONTROLLED if responded else UNCONTROLLED)
                if responded and not (at >= first_control):
                    first_control = at
            episode_row(g, patient, episodes, line, t, reason, response, retreatment, n_events, stopper, escalated,
                        below, was_bridged, start, stop, at)
            if reason == REMISSION and math.isnan(first_topical):
                first_topical = stop
            now = stop
            if final >= 0:
                break
            if reason == REMISSION:
                v = relapse_variant[t]
                remaining = end - now
                wait = -1.0
                if not math.isnan(relapse_probability[v]):
                    u_relapse, time = relapse_draws(patient, v, spells)
                    spells += 1
                    wait = relapse_after(u_relapse, relapse_probability[v], time, remaining)
                if wait < 0.0:
                    topical += remaining
                    if lays:
                        segment_count = segment(segment_count, now, end, TOPICAL)
                    final = ON_TOPICAL
                    break
                topical += wait
                relapses += 1
                if lays:
                    segment_count = segment(segment_count, now, now + wait, TOPICAL)
                now += wait
                if may_retreat(retreats[s], may_start_coded(t, failed, allowed, required[t]), retreat_allowed[s, t]):
                    retreatment = True
                    continue
            elif reason == NONRESPONSE or reason == ADVERSE_EVENT or reason == LOSS_OF_RESPONSE:
                failed |= np.int64(1) << np.int64(t)
            t, position = next_line(s, first, position, failed, allowed)
            retreatment = False
        if lays and not lay_flares(patient, g, segment_count):
            return TOO_MANY_BURSTS
        rebounds = 0
        for r in range(bursts_from, min(counts[g, BURSTS], b_i.shape[1])):
            rebounds += b_i[g, r, B_REBOUND]
        if censor == LOST_TO_FOLLOWUP:
            final = WAS_LOST
        elif censor == DEATH:
            final = DEAD
        pat_i[g, i, P_FINAL], pat_i[g, i, P_LINES], pat_i[g, i, P_EPISODES] = final, lines_used, episodes
        pat_i[g, i, P_RELAPSES], pat_i[g, i, P_BURSTS] = relapses, counts[g, BURSTS] - bursts_from
        pat_i[g, i, P_REBOUNDS] = rebounds
        pat_f[g, i, P_FOLLOW_UP], pat_f[g, i, P_FIRST_TOPICAL], pat_f[g, i, P_SYSTEMIC] = end, first_topical, systemic
        pat_f[g, i, P_TOPICAL], pat_f[g, i, P_SUPPORTIVE], pat_f[g, i, P_ENTRY] = topical, supportive, entry
        pat_f[g, i, P_FIRST_CONTROL] = first_control
        return DONE

    for i in range(begin, count):
        patient = first_patient + i
        allowed = patient_matrices(i)
        entry, end, censor = observation(patient, i)
        u_first = uniform(seed, replicate, patient, P.FIRST_LINE, 0, 0) if draws_any else ANY_UNIFORM
        workup, outcome = work_up(patient, end)
        for t in range(treatments):
            for o in range(CACHED_OCCURRENCES):
                plan_i[t, o, 0] = 0
        for k in range(flares_known[2]):
            spell_variant[k] = 0
        flares_known[0], flares_known[1], flares_known[2] = 0, 0, 0
        for s in range(strategies):
            for k in range(3):
                before[s, k] = counts[region + s, k]
        for s in range(strategies):
            if outcome != GOES_ON:
                code = without_systemic(patient, i, s, outcome, workup, entry, end, censor)
            else:
                code = trajectory(patient, i, s, u_first, entry, end, censor, allowed, workup)
            if code != DONE:
                _restore(counts, before, region)
                status[S_CODE], status[S_PATIENT], status[S_STRATEGY] = code, patient, s
                return i
        if overflowed():
            _restore(counts, before, region)
            status[S_CODE] = FULL
            return i
    status[S_CODE] = DONE
    return count


@rule
def line_index(first, k):
    """Where in a strategy's line list the treatment at position `k` of its order is, when its first
    line is entry `first` of the list (the others keep their order)."""
    if k == 0:
        return first
    if k <= first:
        return k - 1
    return k


@rule
def _restore(counts, before, region):
    for s in range(before.shape[0]):
        for k in range(3):
            counts[region + s, k] = before[s, k]
