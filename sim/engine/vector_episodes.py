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
from sim.engine.vector_draws import EpisodeSlots
from sim.model import Treatment
from sim.tables import REASON_CODE

NO_REASON = -1  # a responder who stays on for good: only censoring ends the episode
REMISSION, SWITCH = REASON_CODE["remission"], REASON_CODE["switch"]


@dataclass
class EpisodePlans:
    """How episodes would end if observation went on long enough (one entry per episode).

    `duration` (months, infinite for a responder who stays on) and `reason` (a code of
    `sim.tables.REASONS`, `NO_REASON` when infinite); `known` whether the response was
    assessed before the end; `responded`, `escalated`, `below_target` hold where known.
    Adverse events are listed sparsely, one entry per event that occurs, by episode then
    event: `event_episode` (position of the episode), `event_index` (which of the
    treatment's events), `event_onset` (months), `event_stops` (whether it would stop the
    treatment) and `event_happens` (whether it happens before the planned end);
    `stopping_event` is the event that ended each episode (-1: none).
    """

    duration: np.ndarray
    reason: np.ndarray
    responded: np.ndarray
    known: np.ndarray
    assessed_at: np.ndarray
    escalated: np.ndarray
    below_target: np.ndarray
    event_episode: np.ndarray
    event_index: np.ndarray
    event_onset: np.ndarray
    event_stops: np.ndarray
    event_happens: np.ndarray
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
    episode, index, onset, stops = _adverse_events(treatment, slots)
    stop_at, stopper = _first_stopping_events(len(slots), episode, index, onset, stops)
    stopped = stop_at < end
    end = np.where(stopped, stop_at, end)
    reason[stopped] = REASON_CODE["adverse_event"]
    stopper = np.where(stopped, stopper, -1)
    return EpisodePlans(end, reason, responded, assess <= end, assess, escalated, below_target,
                        episode, index, onset, stops, onset <= end[episode], stopper)


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


def _adverse_events(treatment: Treatment, slots: EpisodeSlots) -> tuple[np.ndarray, ...]:
    """The adverse events that occur, by episode then event: (episode position, event,
    onset in months, whether it stops the treatment)."""
    events = treatment.adverse_events
    if not events:
        empty = np.empty(0, dtype=np.intp)
        return empty, empty, np.empty(0), np.empty(0, dtype=bool)
    bases = FIRST_AE + 3 * np.arange(len(events))
    probability = np.array([event.probability for event in events])
    episode, index = np.nonzero(slots.uniforms(bases + AE_OCCURS) < probability)
    onset = _onsets(events, slots, episode, index, bases + AE_ONSET)
    stop_probability = np.array([event.stop_probability for event in events])
    stops = slots.uniforms_at(episode, bases[index] + AE_STOPS, bases + AE_STOPS) < stop_probability[index]
    return episode, index, onset, stops


def _onsets(events, slots: EpisodeSlots, episode: np.ndarray, index: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """The onset (months) of each adverse event that occurs (episode position, event), from
    slot `columns[event]` of its episode."""
    u = slots.uniforms_at(episode, columns[index], columns)
    if all(event.onset == events[0].onset for event in events):
        # Quantile functions work element by element: one call serves every event.
        return events[0].onset.ppf(u)
    onset = np.empty(episode.size)
    for a in np.flatnonzero(np.bincount(index, minlength=len(events))):
        here = np.flatnonzero(index == a)
        onset[here] = events[a].onset.ppf(u[here])
    return onset


def _first_stopping_events(count: int, episode, index, onset, stops) -> tuple[np.ndarray, np.ndarray]:
    """Per episode, the onset (months; inf if none) of the first event that stops the
    treatment, and which event it is (-1: none); of events at the same time, the first listed."""
    stop_at, stopper = np.full(count, np.inf), np.full(count, -1, dtype=np.int16)
    episode, index, onset = episode[stops], index[stops], onset[stops]
    if episode.size:
        np.minimum.at(stop_at, episode, onset)
        earliest = onset == stop_at[episode]
        # Entries come by episode then event: the first earliest entry of an episode wins.
        first = np.unique(episode[earliest], return_index=True)[1]
        stopper[episode[earliest][first]] = index[earliest][first]
    return stop_at, stopper
