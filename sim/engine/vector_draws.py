"""A chunk's random numbers as the vector engine reads them: the uniforms and slots of
`sim.draws`, turned into times only where a trajectory reaches them.

The DES transforms, up front, every slot the model can read for every patient of a
chunk (`draw_chunk`, `sim.draws.slots_read`). Most of them are still never read (a
patient has a few episodes; the block holds `OCCURRENCES` of every treatment), so the
vector engine draws a slot only when a trajectory first reads it and transforms it only
for the trajectories that read it. Quantile functions work element by element, so the
values are bit for bit those the DES reads. Strategies reading the same slot of a
patient each transform it: keeping a patient's times to share them cost more than a
gamma quantile (about 30 ns).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from sim.draws import (
    OCCURRENCES,
    OVERFLOW_EPISODE,
    OVERFLOW_SPELL,
    SPELLS,
    Layout,
    SlotStream,
    covariates_of,
    flare_uniforms,
    observation_ends,
    overflow_uniforms,
    patient_treatment_matrices,
    workup_draws,
)
from sim.model import Model, Treatment


@dataclass
class ChunkNumbers:
    """The raw uniforms of a chunk of patients and what they decide once per patient.

    `slots` holds the patients' uniforms, slot by slot (see `sim.draws.Layout`); `ends` the end of
    observation (months after entry), `lost` whether it is a loss to follow-up, `dead`
    whether it is a death (background mortality),
    `entries` the entry time (months on the simulation clock), `eligible[i, t]` and
    `response[i, t]` as in `sim.draws.ChunkDraws`. `slots` lives in a buffer the next
    chunk drawn in the same process overwrites.
    """

    model: Model
    layout: Layout
    replicate: int
    first_patient: int
    slots: ChunkSlots
    ends: np.ndarray
    lost: np.ndarray
    entries: np.ndarray
    covariates: dict[str, np.ndarray]
    eligible: np.ndarray
    response: np.ndarray
    dead: np.ndarray | None = None
    workup: tuple | None = None  # (uniform, duration months) of the work-up at entry (`sim.draws.workup_draws`)

    @property
    def count(self) -> int:
        """Patients in the chunk."""
        return len(self.ends)

    def relapse(self, patients: np.ndarray, spells: np.ndarray, variant: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (uniform deciding a relapse, months until it) of each patient's `spells`-th spell."""
        time = self.model.relapses[variant].time
        decide = np.empty(len(patients))
        inside = spells < SPELLS
        columns = spells[inside]
        decide[inside] = self.slots.at(patients[inside], np.asarray(self.layout.relapse_occurs)[columns])
        wait = np.empty(len(patients))
        wait[inside] = time.ppf(self.slots.at(patients[inside], np.asarray(self.layout.relapse_time)[columns]))
        for k in np.flatnonzero(~inside):
            u = _overflow_uniforms(self, int(patients[k]), (OVERFLOW_SPELL, int(spells[k])), 2)
            decide[k], wait[k] = u[0], time.ppf(u[1:])[0]
        return decide, wait


def draw_numbers(model: Model, layout: Layout, replicate: int, first_patient: int, count: int) -> ChunkNumbers:
    """Prepare a chunk's uniforms and draw the per-patient quantities every trajectory needs."""
    slots = ChunkSlots(SlotStream(model.seed, replicate), first_patient, count, layout.width)
    covariates = covariates_of(model, layout, slots.slot)
    ends, lost, dead = observation_ends(model, layout, slots.slot, count, covariates, replicate, first_patient)
    entries = np.zeros(count)
    if model.population.arrival is not None:
        entries = model.population.arrival.ppf(slots.slot(layout.arrival))
    eligible, response = patient_treatment_matrices(model, covariates, count)
    return ChunkNumbers(model, layout, replicate, first_patient, slots, ends, lost, entries, covariates, eligible,
                        response, dead, workup_draws(model, replicate, first_patient, count))


class ChunkSlots:
    """The uniforms of a chunk's patients, one slot at a time, each drawn the first time it is read.

    Most slots are never read (a patient has a few episodes; the layout holds
    `OCCURRENCES` of every treatment), so only the slots a trajectory reaches are drawn,
    for the whole chunk at once. They are those of `sim.draws.uniform_block`, number for number.
    """

    def __init__(self, stream: SlotStream, first_patient: int, count: int, width: int):
        self.stream, self.first_patient, self.count = stream, first_patient, count
        self._values, self._drawn = _kept.slots((stream.seed, stream.replicate, first_patient, count, width))
        self._flat = self._values.reshape(-1)

    def slot(self, column: int) -> np.ndarray:
        """Slot `column` of every patient of the chunk."""
        if not self._drawn[column]:
            self.stream.slot(column, self.first_patient, self.count, out=self._values[column])
            self._drawn[column] = True
        return self._values[column]

    def at(self, patients: np.ndarray, columns: np.ndarray, among: np.ndarray | None = None) -> np.ndarray:
        """The uniforms at (patients, columns), element by element (chunk rows, slots).

        `among` lists the distinct columns when the caller knows them (saves a pass).
        """
        columns = np.asarray(columns, dtype=np.intp)
        return self.at_index(columns * self.count + patients, np.flatnonzero(np.bincount(columns)) if among is None else among)

    def at_index(self, index: np.ndarray, among) -> np.ndarray:
        """The uniforms at flat positions `index` (column * count + patient) of the columns `among`."""
        for column in among:
            if not self._drawn[column]:
                self.slot(int(column))
        return self._flat.take(index)


class EpisodeSlots:
    """The slots of one episode of `treatment` for many trajectories at once.

    `patients` are the chunk rows of the trajectories and `occurrences` which episode of
    the treatment (0-based) each one starts; beyond `OCCURRENCES` the numbers come from
    the patient's overflow stream, as in the DES.
    """

    def __init__(self, numbers: ChunkNumbers, treatment: Treatment, patients: np.ndarray, occurrences: np.ndarray):
        self.numbers = numbers
        self.patients = patients
        groups = np.asarray(numbers.layout.episode_groups[treatment.index])
        self.starts = groups[np.minimum(occurrences, OCCURRENCES - 1)]
        self.distinct_starts = groups[:min(int(occurrences.max(initial=0)) + 1, OCCURRENCES)]
        self.index = self.starts * numbers.count + patients  # flat position of slot offset 0
        self.beyond = np.flatnonzero(occurrences >= OCCURRENCES)
        self.beyond_uniforms = None
        if self.beyond.size:
            size = numbers.layout.group_sizes[treatment.index]
            self.beyond_uniforms = np.array([
                _overflow_uniforms(numbers, int(patients[k]), (OVERFLOW_EPISODE, treatment.index, int(occurrences[k])), size)
                for k in self.beyond
            ])

    def __len__(self) -> int:
        return len(self.patients)

    def subset(self, where: np.ndarray) -> EpisodeSlots:
        """The same slots for the episodes at positions `where` only."""
        part = object.__new__(EpisodeSlots)
        part.numbers, part.patients, part.starts = self.numbers, self.patients[where], self.starts[where]
        part.distinct_starts, part.index = self.distinct_starts, self.index[where]
        part.beyond, part.beyond_uniforms = np.empty(0, dtype=np.intp), None
        if self.beyond.size:
            inside = np.isin(where, self.beyond)
            part.beyond = np.flatnonzero(inside)
            part.beyond_uniforms = self.beyond_uniforms[np.searchsorted(self.beyond, where[inside])]
        return part

    def uniform(self, offset: int) -> np.ndarray:
        """Return the uniforms in slot `offset` of the episode group."""
        slots = self.numbers.slots
        u = slots.at_index(self.index + offset * slots.count, self.distinct_starts + offset)
        if self.beyond.size:
            u[self.beyond] = self.beyond_uniforms[:, offset]
        return u

    def uniforms(self, offsets: np.ndarray) -> np.ndarray:
        """Return the uniforms in slots `offsets` (distinct) of the episode group (episodes x offsets)."""
        slots = self.numbers.slots
        among = (self.distinct_starts[:, None] + offsets[None, :]).reshape(-1)
        u = slots.at_index(self.index[:, None] + offsets[None, :] * slots.count, among)
        if self.beyond.size:
            u[self.beyond] = self.beyond_uniforms[:, offsets]
        return u

    def uniforms_at(self, positions: np.ndarray, offsets: np.ndarray, distinct: np.ndarray) -> np.ndarray:
        """Return, element by element, the uniform in slot `offsets` of the episode at `positions`
        (`distinct`: the distinct offsets, or more)."""
        slots = self.numbers.slots
        among = (self.distinct_starts[:, None] + distinct[None, :]).reshape(-1)
        u = slots.at_index(self.index[positions] + offsets * slots.count, among)
        if self.beyond.size:
            rank = np.minimum(np.searchsorted(self.beyond, positions), self.beyond.size - 1)
            overflow = self.beyond[rank] == positions
            u[overflow] = self.beyond_uniforms[rank[overflow], offsets[overflow]]
        return u

    def time(self, offset: int, distribution) -> np.ndarray:
        """Return slot `offset` turned into a time (months) by `distribution`."""
        return distribution.ppf(self.uniform(offset))


# Kept from one run to the next up to this many floats (32 MiB): runs of a sweep or a PSA
# are small and many, and faulting their buffer's pages in again cost each run of 10,000
# patients about a quarter of its time.
_KEPT_BETWEEN_RUNS = 2**22


class _KeptNumbers(threading.local):
    """This thread's uniforms, kept for its next chunk (a Dask worker may run several tasks
    in threads of one process).

    A fresh buffer of slots costs a page fault per page on every chunk (about a third of
    the time of drawing the numbers), so the buffer is reused. When the next chunk is the
    same patients of the same stream (the samples of a PSA, the variants of a sweep:
    common random numbers), what was drawn stays drawn: the slots, and for small chunks
    the rounds of flare numbers and the numbers beyond the block. (Kept for a large
    chunk, those many small arrays pinned about 150 MB of freed memory at 1M patients.)
    """

    def __init__(self):
        self.forget()

    def forget(self) -> None:
        """Free every kept number."""
        self.key, self.space, self.drawn, self.flares, self.overflows = None, np.empty(0), None, {}, {}

    def slots(self, key: tuple) -> tuple[np.ndarray, np.ndarray]:
        """The slot-major buffer of a chunk's uniforms and which of its slots are drawn, for
        `key` = (seed, replicate, first patient, patients, slots)."""
        *_, count, width = key
        if self.key != key:
            if self.space.size < width * count:
                self.space = np.empty(width * count)
            self.key, self.drawn, self.flares, self.overflows = key, np.zeros(width, dtype=bool), {}, {}
        return self.space[:width * count].reshape(width, count), self.drawn

    def small(self) -> bool:
        """Whether the current chunk is small enough for all its numbers to be kept."""
        return self.space.size <= _KEPT_BETWEEN_RUNS

    def keep(self, store: dict, key, u: np.ndarray) -> np.ndarray:
        """Return `u`, kept read-only in `store` (`flares`, `overflows`) under `key` if the chunk is small."""
        if self.small():
            u.flags.writeable = False
            store[key] = u
        return u


_kept = _KeptNumbers()


def release_buffer() -> None:
    """Free this thread's uniforms kept between chunks (at the end of a run), if they are many."""
    if not _kept.small():
        _kept.forget()


def chunk_flare_uniforms(numbers: ChunkNumbers, round_: int) -> np.ndarray:
    """Round `round_` of the flare numbers of the chunk's patients (`sim.draws.flare_uniforms`)."""
    if round_ in _kept.flares:
        return _kept.flares[round_]
    u = flare_uniforms(numbers.model.seed, numbers.replicate, round_, numbers.first_patient, numbers.count)
    return _kept.keep(_kept.flares, round_, u)


def _overflow_uniforms(numbers: ChunkNumbers, patient: int, key: tuple, count: int) -> np.ndarray:
    """`sim.draws.overflow_uniforms` of the chunk's patient `patient` (0-based in the chunk);
    each costs about 15 us to draw, mostly seeding its stream."""
    if (patient, key, count) in _kept.overflows:
        return _kept.overflows[patient, key, count]
    u = overflow_uniforms(numbers.model.seed, numbers.replicate, numbers.first_patient + patient, key, count)
    return _kept.keep(_kept.overflows, (patient, key, count), u)
