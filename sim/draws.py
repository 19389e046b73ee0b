"""The random numbers of each virtual patient, and what each of them decides.

Randomness follows a `SeedSequence` tree: scenario seed -> replicate -> patient. Each
replicate has a PCG64 stream, which can jump to any position at once; slot `c` of
patient `i` is the number at position `c * SLOT_STRIDE + i` in it. A patient's numbers
therefore depend only on (seed, replicate, patient), never on chunking or on the number
of workers, and one slot of many patients is one contiguous run of the stream (an
engine can draw just the slots it reads, for a whole chunk at once).

Within the block every uniform has a fixed meaning (its slot): covariates, end of
follow-up, loss to follow-up, the first-line choice, relapses, and for each treatment
and each of its first `OCCURRENCES` episodes the assessment time, the response, the
course, the cap, the end-of-course fate, loss of response and each adverse event. All
strategies read the same slots, so they are compared on common random numbers. Beyond
the block (a patient treated more often than that), numbers come from per-patient
overflow streams, one per purpose (an episode of a treatment, a topical spell).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.model import Model

OCCURRENCES = 3  # episodes per treatment with common random numbers (then overflow)
SPELLS = 4  # returns to topical therapy with common random numbers (then overflow)

# Offsets inside one treatment-occurrence group of slots.
(ASSESS, RESPONSE, COURSE, CAP, FATE, LOSS, ESCALATE, ESCALATED_RESPONSE, REASSESS, TARGET,
 BRIDGE_RESPONSE, BRIDGE_REBOUND, BRIDGE_DURATION, BRIDGE_ONSET, FIRST_AE) = range(15)
AE_OCCURS, AE_ONSET, AE_STOPS = range(3)


@dataclass(frozen=True)
class Layout:
    """Which column of a patient's block holds which uniform."""

    covariates: tuple[int, ...]
    follow_up: int
    loss_to_followup: int
    first_line: int
    arrival: int
    relapse_occurs: tuple[int, ...]
    relapse_time: tuple[int, ...]
    episode_groups: tuple[tuple[int, ...], ...]  # [treatment][occurrence] -> first column
    group_sizes: tuple[int, ...]
    width: int


def layout_for(model: Model) -> Layout:
    """Return the slot layout of a model's patient blocks."""
    column = 0

    def take(count: int) -> tuple[int, ...]:
        nonlocal column
        slots = tuple(range(column, column + count))
        column += count
        return slots

    covariates = take(len(model.population.covariates))
    follow_up, loss, first_line, arrival = take(4)
    relapse_occurs, relapse_time = take(SPELLS), take(SPELLS)
    groups, sizes = [], []
    for treatment in model.treatments:
        size = FIRST_AE + 3 * len(treatment.adverse_events)
        groups.append(tuple(take(size)[0] for _ in range(OCCURRENCES)))
        sizes.append(size)
    width = column
    return Layout(covariates, follow_up, loss, first_line, arrival, relapse_occurs, relapse_time, tuple(groups), tuple(sizes), width)


SLOT_STRIDE = 2**40  # patients per slot in a replicate's stream (far more than any run)


class SlotStream:
    """The uniforms of one replicate, read one slot of a run of patients at a time."""

    def __init__(self, seed: int, replicate: int):
        self.seed, self.replicate = seed, replicate
        self._bit_generator = np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(replicate,)))
        self._generator = np.random.Generator(self._bit_generator)
        self._position = 0

    def slot(self, slot: int, first_patient: int, count: int, out: np.ndarray | None = None) -> np.ndarray:
        """Return slot `slot` of patients `first_patient .. first_patient+count-1`, written into `out` if given."""
        position = int(slot) * SLOT_STRIDE + int(first_patient)
        # PCG64 moves by any amount modulo its period, backwards included.
        self._bit_generator.advance((position - self._position) % 2**128)
        self._position = position + count
        return self._generator.random(count, out=out)


def uniform_block(seed: int, replicate: int, first_patient: int, count: int, width: int,
                  slots: np.ndarray | None = None) -> np.ndarray:
    """Return every slot of patients `first_patient .. first_patient+count-1` (count x width, C order);
    with `slots`, only those (the others NaN)."""
    stream = SlotStream(seed, replicate)
    block = np.empty((width, count))
    if slots is None:
        slots = range(width)
    else:
        block[np.setdiff1d(np.arange(width), slots)] = np.nan
    for slot in slots:
        stream.slot(slot, first_patient, count, out=block[slot])
    return np.ascontiguousarray(block.T)


def treatments_used(model: Model) -> tuple[int, ...]:
    """The treatments some strategy of `model` can give (indices, in order)."""
    return tuple(sorted({t for strategy in model.strategies for t in strategy.lines}))


def bridged_treatments(model: Model) -> set[int]:
    """The treatments whose start some strategy covers with a corticosteroid bridge (indices)."""
    if model.rescue is None:
        return set()
    return {t for strategy in model.strategies for t in strategy.bridged}


def slots_read(model: Model, layout: Layout) -> np.ndarray:
    """The slots a patient's trajectories can read (the others mean nothing in this model): those of
    the treatments some strategy gives, and of them only the rules the treatment has."""
    slots = [*layout.covariates, layout.follow_up, layout.loss_to_followup, layout.first_line, layout.arrival,
             *layout.relapse_occurs, *layout.relapse_time]
    to_target = any(strategy.target_assessment is not None for strategy in model.strategies)
    bridged = bridged_treatments(model)
    for t in treatments_used(model):
        treatment = model.treatments[t]
        offsets = [ASSESS, RESPONSE, FATE]
        offsets += [COURSE] if treatment.course is not None else []
        offsets += [CAP] if treatment.cap is not None else []
        offsets += [LOSS] if treatment.loss_of_response is not None else []
        offsets += [ESCALATE, ESCALATED_RESPONSE, REASSESS] if treatment.escalation is not None else []
        offsets += [TARGET] if to_target and treatment.target_probability is not None else []
        offsets += [BRIDGE_RESPONSE, BRIDGE_REBOUND, BRIDGE_ONSET] if t in bridged else []
        offsets += range(FIRST_AE, layout.group_sizes[t])
        slots += [start + offset for start in layout.episode_groups[t] for offset in offsets]
    return np.array(sorted(slots), dtype=np.int64)


OVERFLOW_EPISODE, OVERFLOW_SPELL = 0, 1  # what a number beyond the block is for


def overflow_uniforms(seed: int, replicate: int, patient: int, key: tuple[int, ...], count: int) -> np.ndarray:
    """Return `count` uniforms of a patient beyond its block, for the purpose `key` names.

    `key` is (OVERFLOW_EPISODE, treatment, occurrence) for an episode's group of slots or
    (OVERFLOW_SPELL, spell) for a topical spell. Each purpose has a stream of its own, so
    every strategy reads the same numbers for it (common random numbers), whatever the
    other strategies did before.
    """
    sequence = np.random.SeedSequence(seed, spawn_key=(replicate, patient, 1, *key))
    return np.random.default_rng(sequence).random(count)


FLARES_PER_ROUND = 8  # flares of a patient per round of its flare numbers
FLARE_STREAM = 2**32 - 2  # spawn-key tag of the flare streams (patient numbers stay below it)


def flare_uniforms(seed: int, replicate: int, round_: int, first_patient: int, count: int) -> np.ndarray:
    """The flare numbers of patients `first_patient .. first_patient+count-1` in round `round_`
    (count x 3*FLARES_PER_ROUND): for each of the round's flares, a uniform turned into the
    unit exponential before it, then the uniforms of its burst (response, rebound).

    Flare k of a patient is number k % FLARES_PER_ROUND of round k // FLARES_PER_ROUND;
    each round is a PCG64 stream of its own, patient i at position 3*FLARES_PER_ROUND*i,
    so both engines read the same numbers, whatever the chunk.
    """
    width = 3 * FLARES_PER_ROUND
    bit_generator = np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(replicate, FLARE_STREAM, round_)))
    bit_generator.advance(first_patient * width)
    return np.random.Generator(bit_generator).random((count, width))


def side_uniforms(seed: int, replicate: int, stream: int, first_patient: int, count: int) -> np.ndarray:
    """One uniform per patient from a stream of its own (`stream` >= 3), chunk-independent."""
    bit_generator = np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(replicate, stream)))
    bit_generator.advance(first_patient)
    return np.random.Generator(bit_generator).random(count)


WORKUP_FINDS_STREAM, WORKUP_TIME_STREAM = 4, 5  # side streams of the work-up (3 is death)


def workup_draws(model: Model, replicate: int, first_patient: int, count: int):
    """Each patient's numbers for the work-up at entry (`model.workup`), or None without one:
    (uniform deciding whether a factor is found, the work-up's duration in months). The same
    for every strategy (common random numbers); `sim.rules.workup` decides what they mean."""
    workup = model.workup
    if workup is None:
        return None
    finds = side_uniforms(model.seed, replicate, WORKUP_FINDS_STREAM, first_patient, count)
    duration = workup.duration.ppf(side_uniforms(model.seed, replicate, WORKUP_TIME_STREAM, first_patient, count))
    return finds, duration


@dataclass
class ChunkDraws:
    """The draws of a chunk of patients, transformed to times where a slot is a time.

    `values` holds, per patient, the block with every time slot in months and every
    probability slot still a uniform (compared against a probability at run time).
    `relapse_times[v]` holds the relapse times under relapse model `v` (months).
    `ends` is each patient's end of observation (months after entry) and `lost` whether
    it is a loss to follow-up rather than the horizon or the end of a cohort's follow-up.
    `entries` is when each patient enters (months on the simulation clock, 0 unless the
    population declares an `arrival`). `eligible[i, t]` says whether patient i's
    covariates allow treatment t, `response[i, t]` is the response probability after
    covariate modifiers (before line modifiers, applied when the line is known).
    """

    first_patient: int
    uniforms: np.ndarray
    values: np.ndarray
    relapse_times: np.ndarray
    ends: np.ndarray
    lost: np.ndarray
    covariates: dict[str, np.ndarray]
    entries: np.ndarray
    eligible: np.ndarray
    response: np.ndarray
    target_assessments: dict[int, np.ndarray]
    dead: np.ndarray | None = None
    flares: np.ndarray | None = None  # the first round of flare numbers (`flare_uniforms`), if flares are laid
    workup: tuple | None = None  # (uniform, duration months) of the work-up at entry (`workup_draws`), if any


def draw_chunk(model: Model, layout: Layout, replicate: int, first_patient: int, count: int) -> ChunkDraws:
    """Draw and transform the random numbers of a chunk of patients (only the slots the
    model can read: `slots_read`; the others are NaN)."""
    u = uniform_block(model.seed, replicate, first_patient, count, layout.width, slots_read(model, layout))
    values = u.copy()
    bridged = bridged_treatments(model)
    for t in treatments_used(model):
        treatment = model.treatments[t]
        for start in layout.episode_groups[t]:
            _transform_episode_group(values, u, treatment, start, model.rescue if t in bridged else None)
    relapse_u = u[:, list(layout.relapse_time)]
    relapse_times = np.stack([
        relapse.time.ppf(relapse_u) if relapse is not None else np.full_like(relapse_u, np.inf)
        for relapse in model.relapses
    ], axis=1)
    covariates = covariates_of(model, layout, lambda c: u[:, c])
    ends, lost, dead = observation_ends(model, layout, lambda c: u[:, c], count, covariates, replicate, first_patient)
    entries = np.zeros(count)
    if model.population.arrival is not None:
        entries = model.population.arrival.ppf(u[:, layout.arrival])
    eligible, response = patient_treatment_matrices(model, covariates, count)
    flares = None
    if model.rescue is not None and model.rescue.flare_rates:
        flares = flare_uniforms(model.seed, replicate, 0, first_patient, count)
    return ChunkDraws(first_patient, u, values, relapse_times, ends, lost, covariates, entries, eligible, response,
                      _target_assessments(model, layout, u), dead, flares,
                      workup_draws(model, replicate, first_patient, count))


def _target_assessments(model: Model, layout: Layout, u: np.ndarray) -> dict[int, np.ndarray]:
    """Assessment times under each treat-to-target strategy: [patient, treatment, occurrence]
    (NaN for treatments no strategy gives)."""
    used = list(treatments_used(model))
    columns = [[start + ASSESS for start in layout.episode_groups[t]] for t in used]
    times = {}
    for strategy in model.strategies:
        if strategy.target_assessment is not None:
            times[strategy.index] = np.full((len(u), len(model.treatments), OCCURRENCES), np.nan)
            times[strategy.index][:, used] = strategy.target_assessment.ppf(u[:, columns])
    return times


def patient_treatment_matrices(model: Model, covariates: dict, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (eligible, response probability) per patient and treatment from the covariates."""
    eligible = np.ones((count, len(model.treatments)), dtype=bool)
    response = np.empty((count, len(model.treatments)))
    for t, treatment in enumerate(model.treatments):
        if treatment.age_groups is not None and model.population.age_group not in treatment.age_groups:
            eligible[:, t] = False
        for condition in treatment.eligible_when:
            eligible[:, t] &= condition.holds(covariates[condition.covariate])
        p = np.full(count, treatment.response_probability)
        for modifier in treatment.response_modifiers:
            where = condition_holds(modifier.condition, covariates, count)
            p = np.where(where, _modified(p, modifier), p)
        response[:, t] = p
    return eligible, response


def condition_holds(condition, covariates: dict, count: int) -> np.ndarray:
    """Return where a covariate condition holds for each patient of a chunk."""
    return np.broadcast_to(condition.holds(covariates[condition.covariate]), (count,))


def _modified(p: np.ndarray, modifier) -> np.ndarray:
    if modifier.probability is not None:
        return np.full_like(p, modifier.probability)
    odds = np.divide(p, 1.0 - p, out=np.full_like(p, np.inf), where=p < 1.0) * modifier.odds_ratio
    return np.where(np.isinf(odds), np.where(modifier.odds_ratio > 0, 1.0, 0.0), odds / (1.0 + odds))


def draw_group_values(model: Model, treatment, uniforms: np.ndarray) -> list[float]:
    """Return one episode group's values from its uniforms (times in months)."""
    u = uniforms.reshape(1, -1)
    values = u.copy()
    _transform_episode_group(values, u, treatment, 0, model.rescue)
    return values[0].tolist()


def _transform_episode_group(values, u, treatment, start, rescue) -> None:
    values[:, start + ASSESS] = treatment.assess_at.ppf(u[:, start + ASSESS])
    if treatment.course is not None:
        values[:, start + COURSE] = treatment.course.ppf(u[:, start + COURSE])
    if treatment.cap is not None:
        values[:, start + CAP] = treatment.cap.ppf(u[:, start + CAP])
    if treatment.loss_of_response is not None:
        values[:, start + LOSS] = treatment.loss_of_response.ppf(u[:, start + LOSS])
    if treatment.escalation is not None:
        values[:, start + REASSESS] = treatment.escalation.reassess_after.ppf(u[:, start + REASSESS])
    if rescue is not None:  # the treatment is bridged (a burst's duration is not simulated)
        values[:, start + BRIDGE_ONSET] = rescue.onset.ppf(u[:, start + BRIDGE_ONSET])
    for a, event in enumerate(treatment.adverse_events):
        column = start + FIRST_AE + 3 * a + AE_ONSET
        values[:, column] = event.onset.ppf(u[:, column])


def observation_ends(model: Model, layout: Layout, slot, count: int, covariates: dict, replicate: int,
                     first_patient: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each patient's end of observation (months after entry): the horizon, the end of the
    patient's follow-up or the age at which observation ends, whichever comes first, unless
    a death or a loss to follow-up comes before; and whether it is a loss or a death.

    `slot(c)` returns slot `c` of the chunk's `count` patients.
    """
    population = model.population
    observed = np.full(count, model.horizon_months)
    if population.follow_up is not None:
        observed = np.minimum(observed, population.follow_up.ppf(slot(layout.follow_up)))
    if population.observed_until_age is not None:
        months_to_limit = population.observed_until_age - 12.0 * covariates[population.age_covariate]
        observed = np.minimum(observed, np.maximum(months_to_limit, 0.0))
    dead = np.zeros(count, dtype=bool)
    if model.mortality is not None:
        death_u = side_uniforms(model.seed, replicate, 3, first_patient, count)
        dies = 12.0 * model.mortality.years_to_death(covariates[model.age_covariate], death_u)
        dead = dies < observed
        observed = np.where(dead, dies, observed)
    lost = np.zeros(count, dtype=bool)
    if model.loss_to_followup is not None:
        leaves = model.loss_to_followup.ppf(slot(layout.loss_to_followup))
        lost = leaves < observed
        observed = np.where(lost, leaves, observed)
        dead &= ~lost
    return observed, lost, dead


def covariates_of(model: Model, layout: Layout, slot) -> dict[str, np.ndarray]:
    """Each covariate of a chunk's patients, from `slot(c)` (slot `c` of every patient)."""
    columns = {}
    for covariate, column in zip(model.population.covariates, layout.covariates):
        draw = slot(column)
        if covariate.kind == "numeric":
            columns[covariate.name] = covariate.distribution.ppf(draw)
        elif covariate.kind == "boolean":
            columns[covariate.name] = draw < covariate.probability
        else:
            index = np.searchsorted(np.cumsum(covariate.level_weights), draw, side="right")
            index = np.minimum(index, len(covariate.levels) - 1)
            columns[covariate.name] = np.asarray(covariate.levels, dtype=object)[index]
    return columns
