"""Copying the compiled kernel's rows into a run's table columns, in table order, in one pass.

The kernel writes a chunk's rows into blocks (a row of integer fields and one of float fields
per record, one region per strategy; `sim.engine.compiled_kernel`). These functions copy a
region's rows straight into the run's columns (`sim.engine.records.RunColumns`) at the place
where they belong in the finished table, each field in its table type and each coded field as
its category code: one copy per value from the kernel to the table. A region's rows are in
patient order; an episode's adverse events and a patient's bursts are put in time order
(stable: equal times keep the kernel's order, as the sort of `sim.engine.records._in_order` does).
"""

from __future__ import annotations

import math

from sim.engine.compiled_kernel import (
    A_EPISODE,
    A_EVENT,
    A_PATIENT,
    A_STOPPED,
    A_TREATMENT,
    B_EFFECTIVE,
    B_PATIENT,
    B_REASON,
    B_REBOUND,
    B_STATE,
    E_ASSESSED,
    E_BELOW_TARGET,
    E_BRIDGED,
    E_EPISODE,
    E_ESCALATED,
    E_EVENTS,
    E_LINE,
    E_PATIENT,
    E_REASON,
    E_RESPONDED,
    E_RETREATMENT,
    E_START,
    E_STOP,
    E_STOPPER,
    E_TREATMENT,
    P_BURSTS,
    P_ENTRY,
    P_EPISODES,
    P_FINAL,
    P_FIRST_CONTROL,
    P_FIRST_TOPICAL,
    P_FOLLOW_UP,
    P_LINES,
    P_REBOUNDS,
    P_RELAPSES,
    P_SUPPORTIVE,
    P_SYSTEMIC,
    P_TOPICAL,
)
from sim.rules.compile import rule


@rule
def event_code(event_codes, treatment, event):
    """The category code of adverse event number `event` of `treatment` (-1, none: the last column)."""
    return event_codes[treatment, event if event >= 0 else event_codes.shape[1] - 1]


# Each function reads a region's rows through views of one row (`block[g][r]`): indexing the
# 3-D blocks afresh for every field cost about twice as much.


@rule
def place_episodes(ep_i, ep_f, g, rows, at, event_codes, patient, episode, line, treatment, start, stop, reason,
                   responded, unknown, assessed, retreatment, adverse_events, stopper, escalated, below_target,
                   bridged):
    """Copy rows 0 .. `rows`-1 of region `g` of the episode blocks to the columns from row `at`.
    Returns whether they are in (patient, episode) order."""
    ordered = True
    ints, floats = ep_i[g], ep_f[g]
    last_patient, last_episode = -1, -1
    for r in range(rows):
        k, row, values = at + r, ints[r], floats[r]
        p, e, t = row[E_PATIENT], row[E_EPISODE], row[E_TREATMENT]
        patient[k], episode[k], line[k], treatment[k], reason[k] = p, e, row[E_LINE], t, row[E_REASON]
        response = row[E_RESPONDED]
        responded[k], unknown[k] = response == 1, response < 0
        start[k], stop[k], assessed[k] = values[E_START], values[E_STOP], values[E_ASSESSED]
        retreatment[k], adverse_events[k] = row[E_RETREATMENT] != 0, row[E_EVENTS]
        stopper[k] = event_code(event_codes, t, row[E_STOPPER])
        escalated[k], below_target[k] = row[E_ESCALATED] != 0, row[E_BELOW_TARGET] != 0
        bridged[k] = row[E_BRIDGED] != 0
        if p < last_patient or p == last_patient and e <= last_episode:
            ordered = False
        last_patient, last_episode = p, e
    return ordered


@rule
def _earlier(a, b):
    # NaN sorts last, as in np.lexsort.
    return a < b or (math.isnan(b) and not math.isnan(a))


@rule
def place_events(ae_i, ae_f, g, rows, at, event_codes, patient, episode, treatment, adverse_event, time, stopped):
    """Copy rows 0 .. `rows`-1 of region `g` of the adverse-event blocks to the columns from row `at`,
    each episode's events in time order. Returns whether the episodes are in (patient, episode) order."""
    ordered = True
    ints, times = ae_i[g], ae_f[g]
    group = at  # the first row of the current episode
    last_patient, last_episode = -1, -1
    for r in range(rows):
        k, row = at + r, ints[r]
        p, e, t, when = row[A_PATIENT], row[A_EPISODE], row[A_TREATMENT], times[r]
        if p != last_patient or e != last_episode:
            group = k
            if p < last_patient or p == last_patient and e < last_episode:
                ordered = False
            last_patient, last_episode = p, e
        code, stops = event_code(event_codes, t, row[A_EVENT]), row[A_STOPPED] != 0
        j = k  # insertion sort within the episode (stable)
        while j > group and _earlier(when, time[j - 1]):
            patient[j], episode[j], treatment[j] = patient[j - 1], episode[j - 1], treatment[j - 1]
            adverse_event[j], time[j], stopped[j] = adverse_event[j - 1], time[j - 1], stopped[j - 1]
            j -= 1
        patient[j], episode[j], treatment[j], adverse_event[j], time[j], stopped[j] = p, e, t, code, when, stops
    return ordered


@rule
def place_bursts(b_i, b_f, g, rows, at, patient, time, reason, state, effective, rebound):
    """Copy rows 0 .. `rows`-1 of region `g` of the burst blocks to the columns from row `at`, each
    patient's bursts in time order. Returns whether the patients are in order."""
    ordered = True
    ints, times = b_i[g], b_f[g]
    group = at
    last_patient = -1
    for r in range(rows):
        k, row = at + r, ints[r]
        p, when = row[B_PATIENT], times[r]
        if p != last_patient:
            group = k
            if p < last_patient:
                ordered = False
            last_patient = p
        kind, where = row[B_REASON], row[B_STATE]
        worked, rebounded = row[B_EFFECTIVE] != 0, row[B_REBOUND] != 0
        j = k
        while j > group and _earlier(when, time[j - 1]):
            patient[j], time[j], reason[j] = patient[j - 1], time[j - 1], reason[j - 1]
            state[j], effective[j], rebound[j] = state[j - 1], effective[j - 1], rebound[j - 1]
            j -= 1
        patient[j], time[j], reason[j], state[j], effective[j], rebound[j] = p, when, kind, where, worked, rebounded
    return ordered


@rule
def place_patients(pat_i, pat_f, g, rows, at, first_patient, patient, final_state, follow_up, first_topical,
                   lines_used, episodes, relapses, systemic, topical, supportive, entry, first_control, bursts,
                   rebounds):
    """Copy the patient rows 0 .. `rows`-1 of region `g` (patients `first_patient ..`) to the columns
    from row `at`."""
    ints, floats = pat_i[g], pat_f[g]
    for r in range(rows):
        k, row, values = at + r, ints[r], floats[r]
        patient[k] = first_patient + r
        final_state[k], lines_used[k], episodes[k] = row[P_FINAL], row[P_LINES], row[P_EPISODES]
        relapses[k], bursts[k], rebounds[k] = row[P_RELAPSES], row[P_BURSTS], row[P_REBOUNDS]
        follow_up[k], first_topical[k] = values[P_FOLLOW_UP], values[P_FIRST_TOPICAL]
        systemic[k], topical[k] = values[P_SYSTEMIC], values[P_TOPICAL]
        supportive[k], entry[k], first_control[k] = values[P_SUPPORTIVE], values[P_ENTRY], values[P_FIRST_CONTROL]
