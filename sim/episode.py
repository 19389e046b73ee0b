"""One treatment episode: how it ends, decided from the patient's draws.

An episode starts a drug, assesses response at `assess_at`, and then:
- a non-responder stops at the assessment (`nonresponse`);
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

from sim.draws import AE_ONSET, AE_OCCURS, AE_STOPS, ASSESS, CAP, COURSE, FATE, FIRST_AE, LOSS, RESPONSE
from sim.model import Treatment

INFINITY = math.inf


@dataclass(slots=True)
class EpisodePlan:
    """How an episode would end if observation went on long enough.

    `duration` is months from the start (infinite when a responder stays on for good);
    `reason` is None in that case. `adverse_events` lists (index, onset months, stops).
    """

    duration: float
    reason: str | None
    responded: bool | None
    assessed_at: float
    adverse_events: tuple[tuple[int, float, bool], ...]
    stopping_event: int | None


def plan_episode(treatment: Treatment, group: list[float], response_probability: float) -> EpisodePlan:
    """Return how an episode of `treatment` ends, given the episode's draws `group`."""
    assess = group[ASSESS]
    responded = group[RESPONSE] < response_probability
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
    return EpisodePlan(end, reason, responded if assess <= end else None, assess, happened, stopper)


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
