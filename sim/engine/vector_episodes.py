"""How many treatment episodes of one treatment end, decided at once from their slots.

The array form of `sim.episode.plan_episode`, rule for rule and in the same floating-point
operations, so that each episode ends exactly as it does in the DES engine. All times
are months since the start of the episode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.draws import (
    AE_OCCURS,
    AE_ONSET,
    AE_STOPS,
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
from sim.engine.records import REASON_CODE
from sim.engine.vector_draws import EpisodeSlots
from sim.model import Treatment

NO_REASON = -1  # a responder who stays on for good: only censoring ends the episode
REMISSION, SWITCH = REASON_CODE["remission"], REASON_CODE["switch"]


@dataclass
class EpisodePlans:
    """How episodes would end if observation went on long enough (one entry per episode).

    `duration` (months, infinite for a responder who stays on) and `reason` (a code of
    `sim.tables.REASONS`, `NO_REASON` when infinite); `known` whether the response was
    assessed before the end; `responded`, `escalated`, `below_target` hold where known.
    `event_onsets[a]` is adverse event a's onset (months) and `event_happens[a]` whether
    it happens before the planned end; `stopping_event` the one that ended it (-1: none).
    """

    duration: np.ndarray
    reason: np.ndarray
    responded: np.ndarray
    known: np.ndarray
    assessed_at: np.ndarray
    escalated: np.ndarray
    below_target: np.ndarray
    event_onsets: list[np.ndarray]
    event_happens: list[np.ndarray]
    event_stops: list[np.ndarray]
    stopping_event: np.ndarray


def plan_episodes(treatment: Treatment, slots: EpisodeSlots, response_probability: np.ndarray,
                  assess_at: np.ndarray, treat_to_target: np.ndarray) -> EpisodePlans:
    """Return how each episode of `treatment` ends (see `sim.episode.plan_episode`).

    `assess_at` is the assessment time of each episode (months), `treat_to_target` where
    responders below target stop at the assessment.
    """
    assess = assess_at
    responded = slots.uniform(RESPONSE) < response_probability
    escalated = np.zeros_like(responded)
    if treatment.escalation is not None:
        escalation = treatment.escalation
        escalated = ~responded & (slots.uniform(ESCALATE) < escalation.probability)
        assess = np.where(escalated, assess + slots.time(REASSESS, escalation.reassess_after), assess)
        responded = np.where(escalated, slots.uniform(ESCALATED_RESPONSE) < escalation.response_probability, responded)
    below_target = np.zeros_like(responded)
    if treatment.target_probability is not None and treat_to_target.any():
        below_target = responded & treat_to_target & (slots.uniform(TARGET) >= treatment.target_probability)
        responded = responded & ~below_target
    end = assess.copy()
    reason = np.full(len(slots), REASON_CODE["nonresponse"], dtype=np.int8)
    responders = np.flatnonzero(responded)
    if responders.size:
        end[responders], reason[responders] = _responders_end(treatment, slots.subset(responders), assess[responders])
    onsets, stops, stop_at, stopper = _adverse_events(treatment, slots)
    stopped = stop_at < end
    end = np.where(stopped, stop_at, end)
    reason[stopped] = REASON_CODE["adverse_event"]
    stopper = np.where(stopped, stopper, -1)
    happens = [onset <= end for onset in onsets]
    return EpisodePlans(end, reason, responded, assess <= end, assess, escalated, below_target,
                        onsets, happens, stops, stopper)


def _responders_end(treatment: Treatment, slots: EpisodeSlots, assess: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """When and why a responder's episode ends: course, cap, fate, at least the assessment, loss of response."""
    end, reason = _course_end(treatment, slots)
    end = np.maximum(end, assess)
    if treatment.loss_of_response is not None:
        lost_at = assess + slots.time(LOSS, treatment.loss_of_response)
        lost = lost_at < end
        end = np.where(lost, lost_at, end)
        reason = np.where(lost, REASON_CODE["loss_of_response"], reason)
    return end, reason


def _course_end(treatment: Treatment, slots: EpisodeSlots) -> tuple[np.ndarray, np.ndarray]:
    remission, switch, stay = treatment.fates
    u = slots.uniform(FATE)
    count = len(slots)
    cap = slots.time(CAP, treatment.cap) if treatment.cap is not None else np.full(count, np.inf)
    course = slots.time(COURSE, treatment.course) if treatment.course is not None else np.full(count, np.inf)
    end = np.minimum(course, cap)
    reason = np.where(u < remission, REMISSION, SWITCH)
    stays = u >= remission + switch
    if stays.any():
        # A capped drug cannot be continued: remission or switch in the proportions of
        # those two fates, reusing the same uniform (as in `sim.episode`).
        ended = remission + switch
        with np.errstate(divide="ignore", invalid="ignore"):
            rescaled = (u - remission - switch) / stay
        to_topical = (ended == 0) | (rescaled < (remission / ended if ended else 0.0))
        end = np.where(stays, cap, end)
        reason = np.where(stays, np.where(to_topical, REMISSION, SWITCH), reason)
    reason = np.where(end == np.inf, NO_REASON, reason)
    return end, reason


def _adverse_events(treatment: Treatment, slots: EpisodeSlots):
    """Onsets (NaN where the event does not occur), stopping flags, first stopping onset and its event."""
    count = len(slots)
    onsets, stops = [], []
    stop_at, stopper = np.full(count, np.inf), np.full(count, -1, dtype=np.int16)
    for a, event in enumerate(treatment.adverse_events):
        base = FIRST_AE + 3 * a
        occurs = np.flatnonzero(slots.uniform(base + AE_OCCURS) < event.probability)
        onset, stops_here = np.full(count, np.nan), np.zeros(count, dtype=bool)
        if occurs.size:
            some = slots.subset(occurs)
            onset[occurs] = some.time(base + AE_ONSET, event.onset)
            stops_here[occurs] = some.uniform(base + AE_STOPS) < event.stop_probability
        first = stops_here & (onset < stop_at)
        stop_at = np.where(first, onset, stop_at)
        stopper[first] = a
        onsets.append(onset)
        stops.append(stops_here)
    return onsets, stops, stop_at, stopper
