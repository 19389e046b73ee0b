"""The discrete-event engine: one SimPy process per patient and strategy.

Each process walks the patient through the strategy, yielding one timeout per change
of state (an episode, a spell on topical therapy) and waiting for a limited resource
(biologic slots, phototherapy places, infusion chairs) when a treatment needs one.
Clinical decisions come from `sim.episode` and `sim.patient`; `sim.engine.trajectory`
keeps the patient's clock and tallies; this module only runs the clock.

Without limited resources, patients do not interact, so all strategies of a chunk run
in one environment. With them, each strategy is a world of its own (its own resources)
and a chunk must hold the whole population of a replicate (the runner sees to that).
"""

from __future__ import annotations

import gc
from contextlib import contextmanager

import simpy

from sim.draws import ChunkDraws, Layout
from sim.engine.records import Records
from sim.engine.trajectory import Trajectory
from sim.episode import plan_episode
from sim.model import Model, Strategy
from sim.patient import PathwayPosition, PatientDraws

FAILURES = frozenset({"nonresponse", "adverse_event", "loss_of_response"})


def simulate_chunk(model: Model, layout: Layout, chunk: ChunkDraws, replicate: int, count: int) -> Records:
    """Simulate every strategy for the `count` patients of `chunk`; return their records."""
    records = Records()
    patients = [PatientDraws(model, layout, chunk, i, replicate) for i in range(count)]
    worlds = [model.strategies] if not model.limited_resources else [(s,) for s in model.strategies]
    with _garbage_collection_paused():
        for strategies in worlds:
            env = simpy.Environment()
            resources = {name: simpy.Resource(env, capacity) for name, capacity in model.limited_resources.items()}
            for draws in patients:
                for strategy in strategies:
                    env.process(patient_pathway(env, model, strategy, draws, records, resources))
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


def patient_pathway(env: simpy.Environment, model: Model, strategy: Strategy, draws: PatientDraws,
                    records: Records, resources: dict):
    """SimPy process: one patient's course through one strategy until the end of observation."""
    if draws.entry > 0:
        yield env.timeout(draws.entry)
    path = Trajectory(env, model, strategy, draws, records)
    position = PathwayPosition(strategy, model.treatments, draws.eligible, draws.first_line_uniform())
    treatment, retreatment = position.next_line(), False
    while path.final is None:
        if treatment is None:
            path.supportive_care()
            break
        request = None
        if treatment.requires in resources:
            request = resources[treatment.requires].request()
            if not (yield from path.wait_for(request)):
                break
        reason = yield from _episode(env, path, position, strategy, treatment, retreatment, draws)
        if request is not None:
            resources[treatment.requires].release(request)
        if path.final is not None:
            break
        if reason == "remission":
            relapsed = yield from path.topical_spell(treatment)
            if relapsed and _may_retreat(strategy, position, treatment):
                retreatment = True
                continue
        elif reason in FAILURES:
            position.failed.add(treatment.index)
        treatment, retreatment = position.next_line(), False
    path.finish(len(position.line_numbers))


def _episode(env, path: Trajectory, position: PathwayPosition, strategy: Strategy, treatment, retreatment, draws):
    """Run one episode (a single timeout); return how it ended."""
    line, occurrence = position.start(treatment)
    assess_at = None
    if strategy.target_assessment is not None:
        assess_at = draws.target_assessment(strategy, treatment, occurrence)
    group = draws.episode_group(treatment, occurrence)
    plan = plan_episode(treatment, group, draws.response_probability(treatment, line), assess_at,
                        treat_to_target=strategy.target_assessment is not None)
    start = path.now()
    bridged = treatment.index in strategy.bridged
    if bridged:
        path.bridge(start, group)
    duration, reason = path.observable(plan)
    if duration > 0:
        yield env.timeout(duration)
    path.record_episode(line, treatment, start, reason, plan, retreatment, bridged)
    return reason


def _may_retreat(strategy: Strategy, position: PathwayPosition, treatment) -> bool:
    if strategy.on_relapse != "retreat" or not position.eligible(treatment):
        return False
    return strategy.retreat_only is None or treatment.index in strategy.retreat_only
