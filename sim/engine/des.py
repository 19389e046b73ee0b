"""The discrete-event engine: SimPy processes walking patients through their strategies.

Every clinical decision comes from the rules of `sim.rules` and every uniform from
`sim.random_numbers.uniform`, in the order and for the purposes of the compiled kernel
(`sim.engine.des_rules`), so that without limited resources both engines write the same
tables for the same seed. What only a DES adds is here: patients who arrive over time,
limited `resources:` (biologic places, phototherapy slots, infusion chairs) and the waits
for them. A patient who needs a resource waits for a place until it is granted or
observation ends (final state `waiting`); the months waited count from entry like any
other time, spent uncontrolled.

With limited resources each strategy is a world of its own (its own resources, one
process per patient) and a chunk holds the whole population of a replicate (the runner
sees to that). Without them patients do not interact and the trajectories run one after
the other without a clock: the times are the same.
"""

from __future__ import annotations

import dataclasses
import gc
import math
from collections import deque
from contextlib import contextmanager

import numpy as np
import simpy

from sim.engine.compiled import chunk_covariates
from sim.engine.compiled_model import Packed, UnsupportedFeature, pack
from sim.engine.des_rules import (
    bridge,
    chunk_patients,
    episode_tables,
    lay_flares,
    line_probability,
    plan_episode,
    relapse_wait,
)
from sim.engine.records import Records
from sim.guard import MAX_BURSTS, MAX_EPISODES, runaway_refusal
from sim.loader import Problem, ScenarioError
from sim.model import Model
from sim.rules import adverse_events, eligibility, relapse
from sim.rules.reasons import (
    ADVERSE_EVENT,
    BRIDGE,
    CONTROLLED,
    DEAD,
    DEATH,
    DIVERTED,
    FLARE,
    LOSS_OF_RESPONSE,
    LOST_TO_FOLLOWUP,
    NONRESPONSE,
    ON_SUPPORTIVE_CARE,
    ON_SYSTEMIC,
    ON_TOPICAL,
    REMISSION,
    SUPPORTIVE_CARE,
    TOPICAL,
    UNCONTROLLED,
    WAITING,
    WAS_LOST,
)
from sim.rules.workup import GOES_ON, STILL_IN_WORKUP


def _python(function):
    """The plain Python source of a rule (a small scalar rule runs faster so than through Numba's dispatcher)."""
    return getattr(function, "py_func", function)


may_start = _python(eligibility.may_start)
may_retreat = _python(relapse.may_retreat)
happened = _python(adverse_events.happened)
CHUNK_PATIENTS = 10_000  # without limited resources (results do not depend on it)
FAILURES = (NONRESPONSE, ADVERSE_EVENT, LOSS_OF_RESPONSE)
NAN = math.nan


def simulate_chunk(model: Model, replicate: int, first_patient: int, count: int) -> tuple[Records, dict]:
    """Simulate every strategy for patients `first_patient .. first_patient+count-1` of `replicate`;
    return their records and their covariates by name."""
    records = Records(len(model.strategies))
    with _garbage_collection_paused():
        chunk = ChunkRules(model, replicate, first_patient, count, records)
        if not model.limited_resources:
            for i in range(count):
                plans: dict = {}
                for s in range(chunk.strategies):
                    deque(trajectory(None, chunk, s, i, plans, {}), maxlen=0)
        else:
            plans = [{} for _ in range(count)]
            for s in range(chunk.strategies):
                env = simpy.Environment()
                resources = {name: simpy.Resource(env, capacity) for name, capacity in model.limited_resources.items()}
                for i in range(count):
                    env.process(trajectory(env, chunk, s, i, plans[i], resources))
                env.run()
        records.close()
    return records, chunk.covariates


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


_PACKED: dict[int, tuple[Model, Packed, tuple]] = {}


def _packed(model: Model) -> tuple[Packed, tuple]:
    """The model packed as the compiled engine packs it (resources aside: the DES simulates them),
    with `plan_episode`'s tables; kept for the model last packed."""
    key = id(model)
    if key not in _PACKED or _PACKED[key][0] is not model:
        _PACKED.clear()
        try:
            packed = pack(dataclasses.replace(model, capacities=None))
        except UnsupportedFeature as exc:
            message = str(exc).replace("the compiled engine", "the des engine (it draws as the compiled engine does)")
            raise ScenarioError([Problem(model.name, "settings.engine", message)]) from None
        _PACKED[key] = (model, packed, episode_tables(packed))
    return _PACKED[key][1], _PACKED[key][2]


def check_supported(model: Model) -> None:
    """Raise `ScenarioError` if the DES cannot simulate `model` (naming what it lacks)."""
    _packed(model)


class ChunkRules:
    """What the trajectories of a chunk read: the packed model, as Python numbers where Python reads
    them, and each patient's numbers (eligibility, response, observation, first line)."""

    def __init__(self, model: Model, replicate: int, first_patient: int, count: int, records: Records):
        m, (self.rows, self.shares, self.events) = _packed(model)
        self.m, self.records = m, records
        self.seed, self.replicate, self.first_patient = model.seed, replicate, first_patient
        self.strategies, self.treatments = len(model.strategies), len(model.treatments)
        self.covariates, x = chunk_covariates(model, replicate, first_patient, count)
        allowed = np.zeros((count, self.treatments), dtype=np.bool_)
        probability = np.zeros((count, self.treatments))
        observation = np.zeros((count, 3))
        first_line = np.zeros((count, self.strategies), dtype=np.int64)
        workup = np.zeros((count, 2))
        chunk_patients(m.age_allowed, m.condition_covariate, m.condition_levels, m.condition_operator,
                       m.condition_value, m.covariate_first, m.eligibility_conditions, m.eligible_first,
                       m.modifier_condition, m.modifier_odds_ratio, m.modifier_replacement, m.response,
                       m.distributions, m.gamma_tables, m.empirical, m.arrival, m.follow_up, m.age_limit_covariate,
                       m.age_limit_months, m.horizon, m.loss_to_followup, m.mortality_covariate,
                       m.mortality_cumulative, m.mortality_hazards, m.mortality_knots, m.first_line_cumulative,
                       m.draws_first_line, m.line_count, m.workup_found, m.workup_duration, model.seed, replicate,
                       first_patient, x, allowed, probability, observation, first_line, workup)
        self.allowed, self.probability = allowed.tolist(), probability.tolist()
        self.observation, self.first_line = observation.tolist(), first_line.tolist()
        self.workup = [(months, int(outcome)) for months, outcome in workup.tolist()]
        self.lines = [row[:n] for row, n in zip(m.lines.tolist(), m.line_count.tolist())]
        self.requires_failure = m.requires_failure
        self.line_modifiers = [m.line_first[t + 1] > m.line_first[t] for t in range(self.treatments)]
        self.bridged, self.target_assess = m.bridged.tolist(), m.target_assess.tolist()
        self.relapse_variant = m.relapse_variant.tolist()
        self.relapse_probability, self.relapse_time = m.relapse_probability.tolist(), m.relapse_time.tolist()
        self.retreats, self.retreat_allowed = m.retreats.tolist(), m.retreat_allowed.tolist()
        self.lays_flares = bool(m.lays_flares)
        self.requires = [t.requires for t in model.treatments]
        self.events_out = np.zeros((max(1, len(self.events)), 3))
        self.name, self.strategy_names = model.name, [s.name for s in model.strategies]


def _next_line(chunk: ChunkRules, s: int, first: int, position: int, failed: list, allowed: list) -> tuple[int, int]:
    """Advance from `position` to the next line of strategy `s` the patient may start: (treatment or -1,
    position); the first line (position 0) is the one at `first` in the strategy's list."""
    lines = chunk.lines[s]
    position += 1
    while position < len(lines):
        t = lines[first] if position == 0 else lines[position - 1] if position <= first else lines[position]
        if may_start(t, failed, allowed, chunk.requires_failure):
            return t, position
        position += 1
    return -1, position


def _plan(chunk: ChunkRules, patient: int, t: int, occurrence: int, probability: float, target: int) -> tuple:
    """`des_rules.plan_episode` with its adverse events as a tuple of (onset, number, stops)."""
    m = chunk.m
    out = chunk.events_out
    plan = plan_episode(m.distributions, m.gamma_tables, m.empirical, chunk.rows, chunk.shares, m.ae_first,
                        chunk.events, chunk.seed, chunk.replicate, patient, t, occurrence, probability, target, out)
    events = tuple((float(out[j, 0]), int(out[j, 1]), bool(out[j, 2])) for j in range(plan[4]))
    return (*plan, events)


def trajectory(env: simpy.Environment | None, chunk: ChunkRules, s: int, i: int, plans: dict, resources: dict):
    """SimPy process (or, with `env` None, a plain walk): patient `i` of the chunk under strategy `s`
    from entry to the end of observation, waiting for `resources` (the limited ones) when needed.
    `plans` keeps the patient's episode plans for the other strategies (they depend only on the
    patient's numbers, the drug's occurrence, its line and the treat-to-target assessment)."""
    m = chunk.m
    patient = chunk.first_patient + i
    entry, end, censor = chunk.observation[i]
    censor = int(censor)
    allowed, base_probability = chunk.allowed[i], chunk.probability[i]
    failed = [False] * chunk.treatments
    line_number = [0] * chunk.treatments
    occurrences = [0] * chunk.treatments
    lines_used = episodes = relapses = spells = 0
    systemic = topical = supportive = waiting = waited = 0.0
    first_topical = first_control = NAN
    lays = chunk.lays_flares
    segments: list[tuple] = []
    bursts: list[tuple] = []
    episode_rows, event_rows = chunk.records.episode_rows[s], chunk.records.event_rows[s]
    first = chunk.first_line[i][s]
    target_assess = chunk.target_assess[s]
    now, final = 0.0, -1
    if env is not None and entry > 0:
        yield env.timeout(entry)
    workup, outcome = chunk.workup[i]
    if outcome != GOES_ON:
        _without_systemic(chunk, patient, s, outcome, workup, entry, end, censor)
        return
    if workup > 0.0:
        now = workup
        if lays:
            segments.append((0.0, workup, UNCONTROLLED))
        if env is not None:
            yield env.timeout(workup)
    t, position = _next_line(chunk, s, first, -1, failed, allowed)
    retreatment = False
    while True:
        if t < 0:
            supportive += end - now
            if lays:
                segments.append((now, end, SUPPORTIVE_CARE))
            final = ON_SUPPORTIVE_CARE
            break
        request = None
        if resources and chunk.requires[t] in resources:
            request = resources[chunk.requires[t]].request()
            asked = env.now
            outcome = yield request | env.timeout(end - now)
            waited = env.now - asked
            waiting += waited
            if lays:
                segments.append((now, now + waited, UNCONTROLLED))
            now += waited
            if request not in outcome:
                request.cancel()
                final = WAITING
                break
        if line_number[t] == 0:
            lines_used += 1
            line_number[t] = lines_used
        line = line_number[t]
        occurrence = occurrences[t]
        occurrences[t] += 1
        probability = base_probability[t]
        if chunk.line_modifiers[t]:
            probability = line_probability(m.line_first, m.modifiers, m.conditions, m.condition_levels, t,
                                           probability, line)
        key = (t, occurrence, probability, target_assess)
        plan = plans.get(key)
        if plan is None:
            plan = plans[key] = _plan(chunk, patient, t, occurrence, probability, target_assess)
        duration, reason, responded, assess, _, stopper, escalated, below, events = plan
        bridged = chunk.bridged[s][t]
        if bridged:
            effective, rebound, control = bridge(m.distributions, m.gamma_tables, m.empirical, m.rescue_onset,
                                                 m.rescue_response, m.rescue_rebound, chunk.seed, chunk.replicate,
                                                 patient, t, occurrence, now, end)
            if control >= 0.0 and not (control >= first_control):
                first_control = control
            bursts.append((now, BRIDGE, UNCONTROLLED, effective, rebound))
        start = now
        if start + duration >= end:  # observation ends first: only what happened before it is known
            stop, reason, final = end, censor, ON_SYSTEMIC
            known = assess <= stop - start
            escalated, below = escalated and known, below and known
            events = tuple(event for event in events if happened(event[0], stop - start))
            stopper = -1
        else:
            stop = start + duration
            known = assess <= duration
        episodes += 1
        if episodes > MAX_EPISODES:
            raise _runaway(chunk, patient, s, f"more than {MAX_EPISODES} treatment episodes")
        systemic += stop - start
        if not known:
            assessed, response = NAN, -1
            if lays:
                segments.append((start, stop, UNCONTROLLED))
        else:
            assessed, response = start + assess, 1 if responded else 0
            if lays:
                segments.append((start, assessed, UNCONTROLLED))
                segments.append((assessed, stop, CONTROLLED if responded else UNCONTROLLED))
            if responded and not (assessed >= first_control):
                first_control = assessed
        # A row of `records._EPISODE_FIELDS` without the strategy.
        episode_rows.append((patient, episodes, line, t, start, stop, reason, response, assessed, retreatment,
                             len(events), stopper, escalated, below, bridged, waited))
        for onset, a, stops in events:
            event_rows.append((patient, episodes, t, a, start + onset, stops and a == stopper))
        if reason == REMISSION and math.isnan(first_topical):
            first_topical = stop
        if env is not None:
            yield env.timeout(stop - start)
            if request is not None:
                resources[chunk.requires[t]].release(request)
        now, waited = stop, 0.0
        if final >= 0:
            break
        if reason == REMISSION:
            v = chunk.relapse_variant[t]
            remaining = end - now
            wait = -1.0
            if not math.isnan(chunk.relapse_probability[v]):
                wait = relapse_wait(m.distributions, m.gamma_tables, m.empirical, chunk.relapse_probability[v],
                                    chunk.relapse_time[v], chunk.seed, chunk.replicate, patient, spells, remaining)
                spells += 1
            if wait < 0.0:
                topical += remaining
                if lays:
                    segments.append((now, end, TOPICAL))
                final = ON_TOPICAL
                break
            topical += wait
            relapses += 1
            if lays:
                segments.append((now, now + wait, TOPICAL))
            now += wait
            if env is not None:
                yield env.timeout(wait)
            if may_retreat(chunk.retreats[s], may_start(t, failed, allowed, chunk.requires_failure),
                           chunk.retreat_allowed[s][t]):
                retreatment = True
                continue
        elif reason in FAILURES:
            failed[t] = True
        t, position = _next_line(chunk, s, first, position, failed, allowed)
        retreatment = False
    if lays:
        bursts += _flares(chunk, patient, s, segments)
    if censor == LOST_TO_FOLLOWUP:
        final = WAS_LOST
    elif censor == DEATH:
        final = DEAD
    rebounds = 0
    if bursts:
        burst_rows = chunk.records.burst_rows[s]
        for time, reason, state, effective, rebound in bursts:
            burst_rows.append((patient, time, reason, state, effective, rebound))
            rebounds += rebound
    # A row of `records._PATIENT_FIELDS` without the strategy.
    chunk.records.patient_rows[s].append((
        patient, final, end, first_topical, lines_used, episodes, relapses, systemic, topical, supportive, waiting,
        entry, first_control, len(bursts), rebounds))


def _without_systemic(chunk: ChunkRules, patient: int, s: int, outcome: int, workup: float, entry: float, end: float,
                      censor: int) -> None:
    """The rows of a patient whose work-up at entry ended the trajectory (`sim.rules.workup`):
    diverted back to topical therapy at `workup` months, or still in it when observation ended."""
    segments = [(0.0, workup, UNCONTROLLED)]
    final, first_topical, topical = WAITING, NAN, 0.0
    if outcome != STILL_IN_WORKUP:
        segments.append((workup, end, TOPICAL))
        final, first_topical, topical = DIVERTED, workup, end - workup
    bursts = _flares(chunk, patient, s, segments) if chunk.lays_flares else []
    if censor == LOST_TO_FOLLOWUP:
        final = WAS_LOST
    elif censor == DEATH:
        final = DEAD
    rebounds = 0
    burst_rows = chunk.records.burst_rows[s]
    for time, reason, state, effective, rebound in bursts:
        burst_rows.append((patient, time, reason, state, effective, rebound))
        rebounds += rebound
    # A row of `records._PATIENT_FIELDS` without the strategy.
    chunk.records.patient_rows[s].append((
        patient, final, end, first_topical, 0, 0, 0, 0.0, topical, 0.0, 0.0, entry, NAN, len(bursts), rebounds))


def _flares(chunk: ChunkRules, patient: int, s: int, segments: list[tuple]) -> list[tuple]:
    """The flares of a trajectory as bursts (time, reason, state, effective, rebound)."""
    m = chunk.m
    intervals = np.array(segments, dtype=np.float64).reshape(-1, 3)
    out = np.zeros((64, 4))
    while True:
        count = lay_flares(m.flare_rates, m.rescue_response, m.rescue_rebound, chunk.seed, chunk.replicate, patient,
                           intervals, len(intervals), out)
        if count >= 0:
            break
        if len(out) > MAX_BURSTS:
            raise _runaway(chunk, patient, s, f"more than {MAX_BURSTS} corticosteroid bursts")
        out = np.zeros((2 * len(out), 4))
    return [(time, FLARE, int(state), bool(effective), bool(rebound)) for time, state, effective, rebound
            in out[:count].tolist()]


def _runaway(chunk: ChunkRules, patient: int, s: int, what: str) -> ScenarioError:
    return runaway_refusal(chunk.name, chunk.strategy_names[s], patient, episodes="episodes" in what)
