"""One treatment episode: how it ends, decided from the patient's draws.

An episode starts a drug, assesses response at `assess_at`, and then:
- a non-responder stops at the assessment (`nonresponse`), unless the treatment allows
  escalation (a higher dose, another route): then the patient is reassessed later, with
  the response probability after escalation;
- under treat-to-target, a responder who does not reach the target (`target_response`)
  stops at the assessment too (`nonresponse`, recorded as below target);
- a responder stays on for the course (from the start of the drug, at least until the
  assessment), possibly capped; at its end the fate is `remission` (back to topical),
  `switch` (to the next line while controlled) or `continue` (stays on: only loss of
  response, an adverse event or the end of observation end it);
- a responder can lose response (`loss_of_response`) some time after the assessment;
- an adverse event that stops the drug ends the episode at its onset, whatever else
  was planned; adverse events that would start after the episode has ended never happen.
All times are months since the start of the episode. Reasons are codes into
`sim.tables.REASONS` (the engine runs on codes; the tables turn them into names).
"""

from __future__ import annotations

import math

from sim.draws import (
    AE_OCCURS,
    AE_ONSET,
    AE_STOPS,
    ASSESS,
    CAP,
    COURSE,
    ESCALATE,
    ESCALATED_RESPONSE,
    FATE,
    FIRST_AE,
    LOSS,
    REASSESS,
    RESPONSE,
    TARGET,
)
from sim.model import Treatment
from sim.tables import REASONS

INFINITY = math.inf
NONRESPONSE, ADVERSE_EVENT, LOSS_OF_RESPONSE, REMISSION, SWITCH = (
    REASONS.index(reason) for reason in ("nonresponse", "adverse_event", "loss_of_response", "remission", "switch"))


class EpisodeRule:
    """The numbers of a treatment that decide how its episodes end, read once per model.

    `adverse_events` holds, per adverse event, (its index, slot of "it occurs", its
    probability, slot of its onset, slot of "it stops the drug", that probability).
    """

    __slots__ = (
        "adverse_events",
        "capped",
        "coursed",
        "ended",
        "escalated_response",
        "escalation_probability",
        "loses_response",
        "remission",
        "remission_share",
        "stay",
        "switch",
        "target_probability",
    )

    def __init__(self, treatment: Treatment):
        escalation = treatment.escalation
        self.escalation_probability = None if escalation is None else escalation.probability
        self.escalated_response = None if escalation is None else escalation.response_probability
        self.target_probability = treatment.target_probability
        self.remission, self.switch, self.stay = treatment.fates
        self.ended = self.remission + self.switch  # the share of courses that end (not `continue`)
        self.remission_share = None if self.ended == 0 else self.remission / self.ended
        self.capped = treatment.cap is not None
        self.coursed = treatment.course is not None
        self.loses_response = treatment.loss_of_response is not None
        self.adverse_events = tuple(
            (a, FIRST_AE + 3 * a + AE_OCCURS, event.probability, FIRST_AE + 3 * a + AE_ONSET,
             FIRST_AE + 3 * a + AE_STOPS, event.stop_probability)
            for a, event in enumerate(treatment.adverse_events))


def plan_episode(rule: EpisodeRule, group, response_probability: float, assess_at: float | None = None,
                 treat_to_target: bool = False) -> tuple:
    """Return how an episode ends if observation goes on long enough, given the episode's draws `group`.

    `assess_at` overrides the treatment's own assessment time (treat-to-target);
    `treat_to_target` makes responders below target stop at the assessment.

    The plan is the tuple (duration, reason, responded, assessed_at, adverse_events,
    stopping_event, escalated, below_target): `duration` in months from the start
    (infinite when a responder stays on for good; `reason` is then None); `responded`
    None when the episode ends before the assessment; `assessed_at` when the response that
    decided the episode was assessed (after escalation, the reassessment);
    `adverse_events` the (index, onset months, stops) that happened; `stopping_event`
    the index of the one that ended it.
    """
    assess = group[ASSESS] if assess_at is None else assess_at
    responded = group[RESPONSE] < response_probability
    escalated = below_target = False
    if not responded and rule.escalation_probability is not None and group[ESCALATE] < rule.escalation_probability:
        escalated = True
        assess += group[REASSESS]
        responded = group[ESCALATED_RESPONSE] < rule.escalated_response
    if responded and treat_to_target and rule.target_probability is not None:
        below_target = group[TARGET] >= rule.target_probability
        responded = not below_target
    if responded:
        end, reason = _course_end(rule, group)
        if assess > end:
            end = assess
        if rule.loses_response:
            lost_at = assess + group[LOSS]
            if lost_at < end:
                end, reason = lost_at, LOSS_OF_RESPONSE
    else:
        end, reason = assess, NONRESPONSE
    events, stopper = (), None
    if rule.adverse_events:
        events, stop_at, stopper = _adverse_events(rule, group)
        if stop_at < end:
            end, reason = stop_at, ADVERSE_EVENT
        else:
            stopper = None
        events = tuple([event for event in events if event[1] <= end]) if events else ()
    known = assess <= end
    return (end, reason, responded if known else None, assess, events, stopper,
            escalated and known, below_target and known)


def _course_end(rule: EpisodeRule, group) -> tuple[float, int | None]:
    u = group[FATE]
    cap = group[CAP] if rule.capped else INFINITY
    if u >= rule.ended:  # the fate is to stay on
        if cap == INFINITY:
            return INFINITY, None
        # A capped drug cannot be continued: the hand-over is to topical or to a switch
        # in the proportions of those two fates, reusing the same uniform.
        rescaled = (u - rule.remission - rule.switch) / rule.stay
        fate = REMISSION if rule.ended == 0 or rescaled < rule.remission_share else SWITCH
        return cap, fate
    end = group[COURSE] if rule.coursed else INFINITY
    if cap < end:
        end = cap
    if end == INFINITY:
        return INFINITY, None
    return end, REMISSION if u < rule.remission else SWITCH


def _adverse_events(rule: EpisodeRule, group) -> tuple[list, float, int | None]:
    events, stop_at, stopper = [], INFINITY, None
    for a, occurs, probability, onset_slot, stops_slot, stop_probability in rule.adverse_events:
        if group[occurs] < probability:
            onset = group[onset_slot]
            stops = group[stops_slot] < stop_probability
            events.append((a, onset, stops))
            if stops and onset < stop_at:
                stop_at, stopper = onset, a
    return events, stop_at, stopper
