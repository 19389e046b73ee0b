"""The discrete-event engine: one SimPy process per patient and strategy.

Each process walks the patient through the strategy, yielding one timeout per change
of state (an episode, a spell on topical therapy). Clinical decisions come from
`sim.episode` and `sim.patient`; this module only keeps the clock and the records.
"""

from __future__ import annotations

import gc
import math
from contextlib import contextmanager

import simpy

from sim.draws import ChunkDraws, Layout
from sim.engine.records import Records
from sim.episode import plan_episode
from sim.model import Model, Strategy
from sim.patient import PathwayPosition, PatientDraws

FAILURES = frozenset({"nonresponse", "adverse_event", "loss_of_response"})


def simulate_chunk(model: Model, layout: Layout, chunk: ChunkDraws, replicate: int, count: int) -> Records:
    """Simulate every strategy for the `count` patients of `chunk`; return their records."""
    env = simpy.Environment()
    records = Records()
    for i in range(count):
        draws = PatientDraws(model, layout, chunk, i, replicate)
        for strategy in model.strategies:
            env.process(patient_pathway(env, model, strategy, draws, records))
    with _garbage_collection_paused():
        env.run()
    return records


@contextmanager
def _garbage_collection_paused():
    # The run allocates many short-lived events and few cycles; the cyclic collector
    # would spend much of the run scanning them for nothing.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def patient_pathway(env: simpy.Environment, model: Model, strategy: Strategy, draws: PatientDraws, records: Records):
    """SimPy process: one patient's course through one strategy until the end of observation."""
    position = PathwayPosition(strategy, model.treatments, model.population.age_group, draws.first_line_uniform())
    end = draws.end
    censored_as = "lost_to_followup" if draws.lost else "horizon"
    tally = _Tally()
    treatment = position.next_line()
    retreatment = False
    final = None
    while final is None:
        if treatment is None:
            tally.supportive += end - env.now
            final = "supportive_care"
            break
        line, occurrence = position.start(treatment)
        plan = plan_episode(treatment, draws.episode_group(treatment, occurrence), treatment.response_probability)
        start = env.now
        stop, reason = start + plan.duration, plan.reason
        if stop >= end:
            stop, reason = end, censored_as
        yield env.timeout(stop - start)
        tally.episodes += 1
        tally.systemic += stop - start
        censored = reason == censored_as
        _record_episode(records, strategy, draws, tally.episodes, line, treatment, start, stop, reason, plan, retreatment, censored)
        if censored:
            final = "systemic"
        elif reason == "remission":
            tally.first_topical = env.now if tally.first_topical is None else tally.first_topical
            relapsed = yield from _topical_spell(env, model, treatment, draws, tally)
            if not relapsed:
                final = "topical"
            elif strategy.on_relapse == "retreat" and position.eligible(treatment):
                retreatment = True
                continue
        else:
            if reason in FAILURES:
                position.failed.add(treatment.index)
        treatment, retreatment = position.next_line(), False
    records.patient(
        strategy.index, draws.patient, "lost_to_followup" if draws.lost else final, end,
        tally.first_topical, len(position.line_numbers), tally.episodes, tally.relapses,
        tally.systemic, tally.topical, tally.supportive,
    )


def _topical_spell(env, model, treatment, draws, tally):
    """Stay on topical therapy until a relapse (return True) or the end (return False)."""
    relapse = model.relapses[treatment.relapse_variant]
    remaining = draws.end - env.now
    if relapse is None:
        tally.topical += remaining
        return False
    u, wait = draws.relapse(tally.spells, treatment.relapse_variant)
    tally.spells += 1
    if u >= relapse.probability or wait >= remaining:
        tally.topical += remaining
        return False
    yield env.timeout(wait)
    tally.topical += wait
    tally.relapses += 1
    return True


def _record_episode(records, strategy, draws, number, line, treatment, start, stop, reason, plan, retreatment, censored):
    responded, events, stopper = plan.responded, plan.adverse_events, plan.stopping_event
    if censored:
        # Observation ended first: only what happened before it is known.
        observed = stop - start
        responded = responded if plan.assessed_at <= observed else None
        events = [event for event in events if event[1] <= observed]
        stopper = None
    assessed = start + plan.assessed_at if responded is not None else math.nan
    records.episode(strategy.index, draws.patient, number, line, treatment, start, stop,
                    reason, responded, assessed, retreatment, events, stopper)


class _Tally:
    __slots__ = ("episodes", "relapses", "spells", "first_topical", "systemic", "topical", "supportive")

    def __init__(self):
        self.episodes = self.relapses = self.spells = 0
        self.first_topical = None
        self.systemic = self.topical = self.supportive = 0.0
