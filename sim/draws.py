"""The random numbers of each virtual patient, and what each of them decides.

Randomness follows a `SeedSequence` tree: scenario seed -> replicate -> patient. Each
replicate has a counter-based Philox stream; patient `i` owns a fixed block of
`width` uniforms at position `i * width` in it. A patient's numbers therefore depend
only on (seed, replicate, patient), never on chunking or on the number of workers.

Within the block every uniform has a fixed meaning (its slot): covariates, end of
follow-up, loss to follow-up, the first-line choice, relapses, and for each treatment
and each of its first `OCCURRENCES` episodes the assessment time, the response, the
course, the cap, the end-of-course fate, loss of response and each adverse event. All
strategies read the same slots, so they are compared on common random numbers. Beyond
the block (a patient treated more often than that), numbers come from a per-patient
overflow generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.model import Model

OCCURRENCES = 3  # episodes per treatment with common random numbers (then overflow)
SPELLS = 4  # returns to topical therapy with common random numbers (then overflow)

# Offsets inside one treatment-occurrence group of slots.
ASSESS, RESPONSE, COURSE, CAP, FATE, LOSS, FIRST_AE = range(7)
AE_OCCURS, AE_ONSET, AE_STOPS = range(3)


@dataclass(frozen=True)
class Layout:
    """Which column of a patient's block holds which uniform."""

    covariates: tuple[int, ...]
    follow_up: int
    loss_to_followup: int
    first_line: int
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
    follow_up, loss, first_line = take(3)
    relapse_occurs, relapse_time = take(SPELLS), take(SPELLS)
    groups, sizes = [], []
    for treatment in model.treatments:
        size = FIRST_AE + 3 * len(treatment.adverse_events)
        groups.append(tuple(take(size)[0] for _ in range(OCCURRENCES)))
        sizes.append(size)
    width = -(-column // 4) * 4  # Philox yields four numbers per counter step
    return Layout(covariates, follow_up, loss, first_line, relapse_occurs, relapse_time, tuple(groups), tuple(sizes), width)


def replicate_key(seed: int, replicate: int) -> np.ndarray:
    """Return the Philox key of one replicate, from the scenario seed's `SeedSequence`."""
    return np.random.SeedSequence(seed, spawn_key=(replicate,)).generate_state(2, np.uint64)


def uniform_block(seed: int, replicate: int, first_patient: int, count: int, width: int) -> np.ndarray:
    """Return the uniforms of patients `first_patient .. first_patient+count-1` (count x width)."""
    bit_generator = np.random.Philox(key=replicate_key(seed, replicate))
    bit_generator.advance(first_patient * width // 4)
    return np.random.Generator(bit_generator).random((count, width))


def overflow_generator(seed: int, replicate: int, patient: int) -> np.random.Generator:
    """Return the generator for a patient's numbers beyond its block."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(replicate, patient, 1)))


@dataclass
class ChunkDraws:
    """The draws of a chunk of patients, transformed to times where a slot is a time.

    `values` holds, per patient, the block with every time slot in months and every
    probability slot still a uniform (compared against a probability at run time).
    `relapse_times[v]` holds the relapse times under relapse model `v` (months).
    `ends` is each patient's end of observation and `lost` whether it is a loss to
    follow-up rather than the horizon or the end of a cohort's follow-up.
    """

    first_patient: int
    uniforms: np.ndarray
    values: np.ndarray
    relapse_times: np.ndarray
    ends: np.ndarray
    lost: np.ndarray
    covariates: dict[str, np.ndarray]


def draw_chunk(model: Model, layout: Layout, replicate: int, first_patient: int, count: int) -> ChunkDraws:
    """Draw and transform the random numbers of a chunk of patients."""
    u = uniform_block(model.seed, replicate, first_patient, count, layout.width)
    values = u.copy()
    for treatment, groups in zip(model.treatments, layout.episode_groups):
        for start in groups:
            _transform_episode_group(values, u, treatment, start)
    relapse_u = u[:, list(layout.relapse_time)]
    relapse_times = np.stack([
        relapse.time.ppf(relapse_u) if relapse is not None else np.full_like(relapse_u, np.inf)
        for relapse in model.relapses
    ], axis=1)
    ends, lost = _ends(model, layout, u)
    return ChunkDraws(first_patient, u, values, relapse_times, ends, lost, _covariates(model, layout, u))


def draw_group_values(treatment, uniforms: np.ndarray) -> list[float]:
    """Return one episode group's values from its uniforms (times in months)."""
    u = uniforms.reshape(1, -1)
    values = u.copy()
    _transform_episode_group(values, u, treatment, 0)
    return values[0].tolist()


def _transform_episode_group(values, u, treatment, start) -> None:
    values[:, start + ASSESS] = treatment.assess_at.ppf(u[:, start + ASSESS])
    if treatment.course is not None:
        values[:, start + COURSE] = treatment.course.ppf(u[:, start + COURSE])
    if treatment.cap is not None:
        values[:, start + CAP] = treatment.cap.ppf(u[:, start + CAP])
    if treatment.loss_of_response is not None:
        values[:, start + LOSS] = treatment.loss_of_response.ppf(u[:, start + LOSS])
    for a, event in enumerate(treatment.adverse_events):
        column = start + FIRST_AE + 3 * a + AE_ONSET
        values[:, column] = event.onset.ppf(u[:, column])


def _ends(model: Model, layout: Layout, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    observed = np.full(u.shape[0], model.horizon_months)
    if model.population.follow_up is not None:
        observed = np.minimum(observed, model.population.follow_up.ppf(u[:, layout.follow_up]))
    lost = np.zeros(u.shape[0], dtype=bool)
    if model.loss_to_followup is not None:
        leaves = model.loss_to_followup.ppf(u[:, layout.loss_to_followup])
        lost = leaves < observed
        observed = np.where(lost, leaves, observed)
    return observed, lost


def _covariates(model: Model, layout: Layout, u: np.ndarray) -> dict[str, np.ndarray]:
    columns = {}
    for covariate, slot in zip(model.population.covariates, layout.covariates):
        draw = u[:, slot]
        if covariate.kind == "numeric":
            columns[covariate.name] = covariate.distribution.ppf(draw)
        elif covariate.kind == "boolean":
            columns[covariate.name] = draw < covariate.probability
        else:
            index = np.searchsorted(np.cumsum(covariate.level_weights), draw, side="right")
            index = np.minimum(index, len(covariate.levels) - 1)
            columns[covariate.name] = np.asarray(covariate.levels, dtype=object)[index]
    return columns
