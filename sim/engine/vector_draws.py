"""A chunk's random numbers as the vector engine reads them: the uniforms and slots of
`sim.draws`, turned into times only where a trajectory reaches them.

The DES transforms every time slot of every patient up front (`draw_chunk`). Most slots
are never read (a patient has a few episodes; the block holds `OCCURRENCES` of every
treatment) and some quantile functions are costly (a gamma quantile takes about half a
microsecond), so the vector engine transforms a slot only for the trajectories that
read it. Quantile functions work element by element, so the values are bit for bit
those the DES reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.draws import (
    OCCURRENCES, OVERFLOW_EPISODE, OVERFLOW_SPELL, SPELLS, Layout, _covariates, _ends, overflow_uniforms,
    patient_treatment_matrices, uniform_block,
)
from sim.model import Model, Treatment


@dataclass
class ChunkNumbers:
    """The raw uniforms of a chunk of patients and what they decide once per patient.

    `uniforms[i]` is patient i's block (see `sim.draws.Layout`); `ends` the end of
    observation (months after entry), `lost` whether it is a loss to follow-up,
    `entries` the entry time (months on the simulation clock), `eligible[i, t]` and
    `response[i, t]` as in `sim.draws.ChunkDraws`.
    """

    model: Model
    layout: Layout
    replicate: int
    first_patient: int
    uniforms: np.ndarray
    ends: np.ndarray
    lost: np.ndarray
    entries: np.ndarray
    covariates: dict[str, np.ndarray]
    eligible: np.ndarray
    response: np.ndarray

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
        decide[inside] = self.uniforms[patients[inside], np.asarray(self.layout.relapse_occurs)[columns]]
        wait_u = np.empty(len(patients))
        wait_u[inside] = self.uniforms[patients[inside], np.asarray(self.layout.relapse_time)[columns]]
        for k in np.flatnonzero(~inside):
            u = overflow_uniforms(self.model.seed, self.replicate, self.first_patient + int(patients[k]),
                                  (OVERFLOW_SPELL, int(spells[k])), 2)
            decide[k], wait_u[k] = u
        return decide, time.ppf(wait_u)


def draw_numbers(model: Model, layout: Layout, replicate: int, first_patient: int, count: int) -> ChunkNumbers:
    """Draw a chunk's uniforms and the per-patient quantities every trajectory needs."""
    u = uniform_block(model.seed, replicate, first_patient, count, layout.width)
    ends, lost = _ends(model, layout, u)
    covariates = _covariates(model, layout, u)
    entries = np.zeros(count)
    if model.population.arrival is not None:
        entries = model.population.arrival.ppf(u[:, layout.arrival])
    eligible, response = patient_treatment_matrices(model, covariates, count)
    return ChunkNumbers(model, layout, replicate, first_patient, u, ends, lost, entries, covariates, eligible, response)


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
        self.beyond = np.flatnonzero(occurrences >= OCCURRENCES)
        self.beyond_uniforms = None
        if self.beyond.size:
            size = numbers.layout.group_sizes[treatment.index]
            self.beyond_uniforms = np.array([
                overflow_uniforms(numbers.model.seed, numbers.replicate, numbers.first_patient + int(patients[k]),
                                  (OVERFLOW_EPISODE, treatment.index, int(occurrences[k])), size)
                for k in self.beyond
            ])

    def __len__(self) -> int:
        return len(self.patients)

    def subset(self, where: np.ndarray) -> EpisodeSlots:
        """The same slots for the episodes at positions `where` only."""
        part = object.__new__(EpisodeSlots)
        part.numbers, part.patients, part.starts = self.numbers, self.patients[where], self.starts[where]
        part.beyond, part.beyond_uniforms = np.empty(0, dtype=np.intp), None
        if self.beyond.size:
            inside = np.isin(where, self.beyond)
            part.beyond = np.flatnonzero(inside)
            part.beyond_uniforms = self.beyond_uniforms[np.searchsorted(self.beyond, where[inside])]
        return part

    def uniform(self, offset: int) -> np.ndarray:
        """Return the uniforms in slot `offset` of the episode group."""
        u = self.numbers.uniforms[self.patients, self.starts + offset]
        if self.beyond.size:
            u[self.beyond] = self.beyond_uniforms[:, offset]
        return u

    def time(self, offset: int, distribution) -> np.ndarray:
        """Return slot `offset` turned into a time (months) by `distribution`."""
        return distribution.ppf(self.uniform(offset))
