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


@rule
def place_episodes(ep_i, ep_f, g, rows, at, event_codes, patient, episode, line, treatment, start, stop, reason,
                   responded, unknown, assessed, retreatment, adverse_events, stopper, escalated, below_target,
                   bridged):
    """Copy rows 0 .. `rows`-1 of region `g` of the episode blocks to the columns from row `at`.
    Returns whether they are in (patient, episode) order."""
    ordered = True
    for r in range(rows):
        k = at + r
        patient[k], episode[k], line[k] = ep_i[g, r, E_PATIENT], ep_i[g, r, E_EPISODE], ep_i[g, r, E_LINE]
        t = ep_i[g, r, E_TREATMENT]
        treatment[k], reason[k] = t, ep_i[g, r, E_REASON]
        response = ep_i[g, r, E_RESPONDED]
        responded[k], unknown[k] = response == 1, response < 0
        start[k], stop[k], assessed[k] = ep_f[g, r, E_START], ep_f[g, r, E_STOP], ep_f[g, r, E_ASSESSED]
        retreatment[k], adverse_events[k] = ep_i[g, r, E_RETREATMENT] != 0, ep_i[g, r, E_EVENTS]
        stopper[k] = event_code(event_codes, t, ep_i[g, r, E_STOPPER])
        escalated[k], below_target[k] = ep_i[g, r, E_ESCALATED] != 0, ep_i[g, r, E_BELOW_TARGET] != 0
        bridged[k] = ep_i[g, r, E_BRIDGED] != 0
        if r and (patient[k] < patient[k - 1] or patient[k] == patient[k - 1] and episode[k] <= episode[k - 1]):
            ordered = False
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
    group = at  # the first row of the current episode
    for r in range(rows):
        k = at + r
        p, e, t = ae_i[g, r, A_PATIENT], ae_i[g, r, A_EPISODE], ae_i[g, r, A_TREATMENT]
        row = (p, e, t, event_code(event_codes, t, ae_i[g, r, A_EVENT]), ae_f[g, r], ae_i[g, r, A_STOPPED] != 0)
        if r and (p != patient[k - 1] or e != episode[k - 1]):
            group = k
            if p < patient[k - 1] or p == patient[k - 1] and e < episode[k - 1]:
                ordered = False
        j = k  # insertion sort within the episode (stable)
        while j > group and _earlier(row[4], time[j - 1]):
            patient[j], episode[j], treatment[j] = patient[j - 1], episode[j - 1], treatment[j - 1]
            adverse_event[j], time[j], stopped[j] = adverse_event[j - 1], time[j - 1], stopped[j - 1]
            j -= 1
        patient[j], episode[j], treatment[j], adverse_event[j], time[j], stopped[j] = row
    return ordered


@rule
def place_bursts(b_i, b_f, g, rows, at, patient, time, reason, state, effective, rebound):
    """Copy rows 0 .. `rows`-1 of region `g` of the burst blocks to the columns from row `at`, each
    patient's bursts in time order. Returns whether the patients are in order."""
    ordered = True
    group = at
    for r in range(rows):
        k = at + r
        p = b_i[g, r, B_PATIENT]
        row = (p, b_f[g, r], b_i[g, r, B_REASON], b_i[g, r, B_STATE], b_i[g, r, B_EFFECTIVE] != 0,
               b_i[g, r, B_REBOUND] != 0)
        if r and p != patient[k - 1]:
            group = k
            if p < patient[k - 1]:
                ordered = False
        j = k
        while j > group and _earlier(row[1], time[j - 1]):
            patient[j], time[j], reason[j] = patient[j - 1], time[j - 1], reason[j - 1]
            state[j], effective[j], rebound[j] = state[j - 1], effective[j - 1], rebound[j - 1]
            j -= 1
        patient[j], time[j], reason[j], state[j], effective[j], rebound[j] = row
    return ordered


@rule
def place_patients(pat_i, pat_f, g, rows, at, first_patient, patient, final_state, follow_up, first_topical,
                   lines_used, episodes, relapses, systemic, topical, supportive, entry, first_control, bursts,
                   rebounds):
    """Copy the patient rows 0 .. `rows`-1 of region `g` (patients `first_patient ..`) to the columns
    from row `at`."""
    for r in range(rows):
        k = at + r
        patient[k] = first_patient + r
        final_state[k], lines_used[k] = pat_i[g, r, P_FINAL], pat_i[g, r, P_LINES]
        episodes[k], relapses[k] = pat_i[g, r, P_EPISODES], pat_i[g, r, P_RELAPSES]
        bursts[k], rebounds[k] = pat_i[g, r, P_BURSTS], pat_i[g, r, P_REBOUNDS]
        follow_up[k], first_topical[k] = pat_f[g, r, P_FOLLOW_UP], pat_f[g, r, P_FIRST_TOPICAL]
        systemic[k], topical[k] = pat_f[g, r, P_SYSTEMIC], pat_f[g, r, P_TOPICAL]
        supportive[k], entry[k] = pat_f[g, r, P_SUPPORTIVE], pat_f[g, r, P_ENTRY]
        first_control[k] = pat_f[g, r, P_FIRST_CONTROL]
