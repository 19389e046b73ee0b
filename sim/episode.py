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
All times are months since the start of the episode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim.draws import (
    AE_ONSET, AE_OCCURS, AE_STOPS, ASSESS, CAP, COURSE, ESCALATE, ESCALATED_RESPONSE, FATE,
    FIRST_AE, LOSS, REASSESS, RESPONSE, TARGET,
)
from sim.model import Treatment

INFINITY = math.inf


@dataclass(slots=True)
class EpisodePlan:
    """How an episode would end if observation went on long enough.

    `duration` is months from the start (infinite when a responder stays on for good);
    `reason` is None in that case. `assessed_at` is when the response that decided the
    episode was assessed (after escalation, the reassessment). `adverse_events` lists
    (index, onset months, stops); `stopping_event` is the index of the one that ended it.
    """

    duration: float
    reason: str | None
    responded: bool | None
    assessed_at: float
    adverse_events: tuple[tuple[int, float, bool], ...]
    stopping_event: int | None
    escalated: bool
    below_target: bool


def plan_episode(treatment: Treatment, group: list[float], response_probability: float,
                 assess_at: float | None = None, treat_to_target: bool = False) -> EpisodePlan:
    """Return how an episode of `treatment` ends, given the episode's draws `group`.

    `assess_at` overrides the treatment's own assessment time (treat-to-target);
    `treat_to_target` makes responders below target stop at the assessment.
    """
    assess = group[ASSESS] if assess_at is None else assess_at
    responded = group[RESPONSE] < response_probability
    escalated = below_target = False
    if not responded and treatment.escalation is not None and group[ESCALATE] < treatment.escalation.probability:
        escalated = True
        assess += group[REASSESS]
        responded = group[ESCALATED_RESPONSE] < treatment.escalation.response_probability
    if responded and treat_to_target and treatment.target_probability is not None:
        below_target = group[TARGET] >= treatment.target_probability
        responded = not below_target
    if responded:
        end, reason = _course_end(treatment, group)
        end = max(end, assess)
        if treatment.loss_of_response is not None:
            lost_at = assess + group[LOSS]
            if lost_at < end:
                end, reason = lost_at, "loss_of_response"
    else:
        end, reason = assess, "nonresponse"
    events, stop_at, stopper = _adverse_events(treatment, group)
    if stop_at < end:
        end, reason = stop_at, "adverse_event"
    else:
        stopper = None
    happened = tuple(event for event in events if event[1] <= end)
    known = assess <= end
    return EpisodePlan(end, reason, responded if known else None, assess, happened, stopper,
                       escalated and known, below_target and known)


def _course_end(treatment: Treatment, group: list[float]) -> tuple[float, str | None]:
    remission, switch, stay = treatment.fates
    u = group[FATE]
    cap = group[CAP] if treatment.cap is not None else INFINITY
    if u >= remission + switch:  # the fate is to stay on
        if cap == INFINITY:
            return INFINITY, None
        # A capped drug cannot be continued: the hand-over is to topical or to a switch
        # in the proportions of those two fates, reusing the same uniform.
        rescaled = (u - remission - switch) / stay
        ended = remission + switch
        fate = "remission" if ended == 0 or rescaled < remission / ended else "switch"
        return cap, fate
    course = group[COURSE] if treatment.course is not None else INFINITY
    end = min(course, cap)
    if end == INFINITY:
        return INFINITY, None
    return end, "remission" if u < remission else "switch"


def _adverse_events(treatment: Treatment, group: list[float]) -> tuple[list, float, int | None]:
    events, stop_at, stopper = [], INFINITY, None
    for a, event in enumerate(treatment.adverse_events):
        base = FIRST_AE + 3 * a
        if group[base + AE_OCCURS] < event.probability:
            onset = group[base + AE_ONSET]
            stops = group[base + AE_STOPS] < event.stop_probability
            events.append((a, onset, stops))
            if stops and onset < stop_at:
                stop_at, stopper = onset, a
    return events, stop_at, stopper
