"""The discrete-event engine: SimPy processes walking patients through their strategies.

A process yields one timeout per change of state (an episode, a spell on topical
therapy) and waits for a limited resource (biologic slots, phototherapy places, infusion
chairs) when a treatment needs one. Clinical decisions come from `sim.episode` and
`sim.patient`; `sim.engine.trajectory` keeps the patient's clock and tallies; this module
only runs the clock.

Without limited resources, patients do not interact: one process walks the chunk's
patients one after the other, each through its strategies one after the other, every
trajectory on its own clock from the patient's entry (`Trajectory.clock`), which gives
the times one process per patient and strategy would give without starting and ending
a process for each (a process costs about two events).
With limited resources, each strategy is a world of its own (its own resources, one
process per patient) and a chunk must hold the whole population of a replicate (the
runner sees to that).
"""

from __future__ import annotations

import gc
from contextlib import contextmanager

import simpy

from sim.draws import ChunkDraws, Layout
from sim.engine.records import Records
from sim.engine.trajectory import ChunkRules, Trajectory
from sim.episode import REMISSION, plan_episode
from sim.model import Model, Strategy
from sim.patient import ChunkPatients, PathwayPosition, PatientDraws, line_order
from sim.tables import FAILURE_REASONS, REASONS

FAILURE_CODES = frozenset(REASONS.index(reason) for reason in FAILURE_REASONS)
NO_RESOURCES: dict = {}


def simulate_chunk(model: Model, layout: Layout, chunk: ChunkDraws, replicate: int, count: int) -> Records:
    """Simulate every strategy for the `count` patients of `chunk`; return their records."""
    records = Records(len(model.strategies))
    rules = ChunkRules(model, records)
    with _garbage_collection_paused():
        cohort = ChunkPatients(model, layout, chunk, replicate)
        if not model.limited_resources:
            env = simpy.Environment()
            env.process(courses(env, rules, _patient_after_patient(rules.model.strategies, cohort, count),
                                NO_RESOURCES))
            env.run()
        else:
            patients = [cohort.patient(i) for i in range(count)]
            for strategy in model.strategies:
                _run_world(model, rules, strategy, patients)
            del patients
        del cohort
        records.close()
    return records


def _run_world(model: Model, rules: ChunkRules, strategy: Strategy, patients: list[PatientDraws]) -> None:
    """Simulate one strategy in a world of its own, where patients compete for the limited resources."""
    env = simpy.Environment()
    resources = {name: simpy.Resource(env, capacity) for name, capacity in model.limited_resources.items()}
    for draws in patients:
        env.process(courses(env, rules, ((strategy, draws),), resources))
    env.run()


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


def _patient_after_patient(strategies: tuple[Strategy, ...], cohort: ChunkPatients, count: int):
    """(strategy, patient's draws) for the first `count` patients of `cohort`, each patient under
    every strategy in turn (no limited resources: patients do not interact)."""
    for i in range(count):
        draws = cohort.patient(i)
        for strategy in strategies:
            yield strategy, draws


def courses(env: simpy.Environment, rules: ChunkRules, trajectories, resources: dict):
    """SimPy process: each (strategy, patient's draws) of `trajectories` in turn, from the patient's
    entry until the end of observation, waiting for `resources` (the limited ones) when needed."""
    # One generator for every trajectory of the process: handing each resumption on to a
    # generator per trajectory (`yield from`) cost about 2% of the run.
    timeout = env.timeout
    orders, to_targets, treatments = rules.orders, rules.to_target, rules.treatments
    paths: list[Trajectory | None] = [None] * len(rules.model.strategies)  # one account per strategy
    entered = None
    for strategy, draws in trajectories:
        if draws is not entered:
            entered = draws
            if draws.entry > 0:
                yield timeout(draws.entry)
        path = paths[strategy.index]
        if path is None:
            path = paths[strategy.index] = Trajectory(rules, strategy.index)
        path.enter(draws)
        if draws.workup is not None:
            months = path.work_up()
            if path.final is not None:
                path.finish(0)
                continue
            yield timeout(months)
            path.clock += months
        order = orders[strategy.index] or line_order(strategy, rules.model.treatments, draws.first_line_uniform())
        position = PathwayPosition(order, draws.eligible, treatments)
        to_target = to_targets[strategy.index]
        treatment, retreatment = position.next_line(), False
        while True:  # until the trajectory ends (`path.final` is then set)
            if treatment is None:
                path.supportive_care()
                break
            request = None
            if resources and treatment.requires in resources:
                request = resources[treatment.requires].request()
                if not (yield from path.wait_for(env, request)):
                    break
            line, plan, bridged, start, duration, reason = _start_episode(rules, path, position, strategy, to_target,
                                                                          treatment, draws)
            if duration > 0:
                yield timeout(duration)
                path.clock += duration
            path.record_episode(line, treatment, start, reason, plan, retreatment, bridged)
            if request is not None:
                resources[treatment.requires].release(request)
            if path.final is not None:
                break
            if reason == REMISSION:
                start = path.now()
                wait = path.relapse_wait(treatment)
                if wait is None:
                    break
                yield timeout(wait)
                path.clock += wait
                path.relapsed(start, wait)
                if _may_retreat(strategy, position, treatment):
                    retreatment = True
                    continue
            elif reason in FAILURE_CODES:
                position.failed.add(treatment.index)
            treatment, retreatment = position.next_line(), False
        path.finish(len(position.line_numbers))


def _start_episode(rules: ChunkRules, path: Trajectory, position: PathwayPosition, strategy: Strategy,
                   to_target: bool, treatment, draws: PatientDraws) -> tuple:
    """Start an episode of `treatment` now: return its line number, its plan, whether it is bridged, and
    its observable start (months since entry), duration (months) and reason code (`Trajectory.observable`)."""
    line, occurrence = position.start(treatment)
    # The plan depends only on the patient's draws for this occurrence of the drug, and on
    # the line (line modifiers) and the strategy (treat-to-target) when they apply: other
    # strategies reaching the same episode reuse it.
    index = treatment.index
    key = (index, occurrence, line if treatment.line_modifiers else 0, strategy.index if to_target else -1)
    plan = draws.plans.get(key)
    if plan is None:
        assess_at = draws.target_assessment(strategy, treatment, occurrence) if to_target else None
        response = draws.response_probability(treatment, line) if treatment.line_modifiers else draws.response[index]
        plan = plan_episode(rules.episode_rules[index], draws.episode_group(treatment, occurrence), response,
                            assess_at, to_target)
        draws.plans[key] = plan
    bridged = index in strategy.bridged
    if bridged:
        path.bridge(path.now(), draws.episode_group(treatment, occurrence))
    start, duration, reason = path.observable(plan)
    return line, plan, bridged, start, duration, reason


def _may_retreat(strategy: Strategy, position: PathwayPosition, treatment) -> bool:
    if strategy.on_relapse != "retreat" or not position.eligible(treatment):
        return False
    return strategy.retreat_only is None or treatment.index in strategy.retreat_only
