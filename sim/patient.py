"""A virtual patient's draws and where the patient stands in a strategy.

`ChunkPatients` holds a chunk's pre-drawn numbers in the form the engine reads fastest
(Python numbers, one flat view per array); `PatientDraws` hands out one patient's numbers
(common to every strategy); `PathwayPosition` applies the strategy's rules: which line
comes next, who is eligible, and what happens after a relapse.
"""

from __future__ import annotations

import bisect
import itertools

import numpy as np

from sim.draws import (
    ASSESS,
    FLARES_PER_ROUND,
    OCCURRENCES,
    OVERFLOW_EPISODE,
    OVERFLOW_SPELL,
    SPELLS,
    ChunkDraws,
    Layout,
    draw_group_values,
    flare_uniforms,
    overflow_uniforms,
)
from sim.model import Model, Strategy, Treatment, adjust_odds


class ChunkPatients:
    """A chunk's draws, read patient by patient as Python floats.

    Reading a NumPy array one scalar at a time costs more than the clinical rule that uses
    it; a memoryview over the array hands out Python floats at the cost of a list index.
    """

    def __init__(self, model: Model, layout: Layout, chunk: ChunkDraws, replicate: int):
        self.model, self.layout, self.replicate, self.first_patient = model, layout, replicate, chunk.first_patient
        self.values = _flat(chunk.values)
        self.relapse_times = _flat(chunk.relapse_times)
        self.target_assessments = {s: _flat(times) for s, times in chunk.target_assessments.items()}
        self.ends, self.lost, self.entries = chunk.ends.tolist(), chunk.lost.tolist(), chunk.entries.tolist()
        self.dead = chunk.dead.tolist() if chunk.dead is not None else [False] * len(self.ends)
        self.eligible, self.response = chunk.eligible.tolist(), chunk.response.tolist()
        self.flare_gaps = self.flare_responses = self.flare_rebounds = None
        if chunk.flares is not None:  # the first round, one list per patient (cheaper than per-patient arrays)
            self.flare_gaps, self.flare_responses, self.flare_rebounds = _flare_lists(chunk.flares)
        self.episode_groups = layout.episode_groups
        self.group_sizes = layout.group_sizes
        self.relapse_occurs = layout.relapse_occurs
        self.treatments = len(model.treatments)
        self.variants = len(model.relapses)
        self.workup = None if chunk.workup is None else tuple(zip(*(column.tolist() for column in chunk.workup)))

    def patient(self, i: int) -> PatientDraws:
        """Return the draws of the chunk's `i`-th patient."""
        return PatientDraws(self, i)


def _flat(array: np.ndarray) -> memoryview:
    return memoryview(np.ascontiguousarray(array, dtype=np.float64).reshape(-1))


class PatientDraws:
    """The numbers of one patient in one replicate, read slot by slot."""

    __slots__ = (
        "_flares",
        "base",
        "chunk",
        "dead",
        "eligible",
        "end",
        "entry",
        "i",
        "lost",
        "model",
        "patient",
        "plans",
        "replicate",
        "response",
        "workup",
    )

    def __init__(self, chunk: ChunkPatients, i: int):
        self.model, self.chunk, self.i = chunk.model, chunk, i
        self.base = i * chunk.layout.width
        self.end, self.lost, self.dead, self.entry = chunk.ends[i], chunk.lost[i], chunk.dead[i], chunk.entries[i]
        self.eligible, self.response = chunk.eligible[i], chunk.response[i]
        self.replicate = chunk.replicate
        self.patient = chunk.first_patient + i
        self.plans: dict[tuple, tuple] = {}  # episode plans already made, shared by the strategies
        self._flares = None
        self.workup = None if chunk.workup is None else chunk.workup[i]  # (uniform, duration months)

    def target_assessment(self, strategy: Strategy, treatment: Treatment, occurrence: int) -> float:
        """Return the assessment time (months) of an episode under a treat-to-target strategy."""
        if occurrence < OCCURRENCES:
            chunk = self.chunk
            return chunk.target_assessments[strategy.index][(self.i * chunk.treatments + treatment.index)
                                                            * OCCURRENCES + occurrence]
        u = self._overflow(treatment, occurrence)[ASSESS:ASSESS + 1]
        return float(strategy.target_assessment.ppf(u)[0])

    def response_probability(self, treatment: Treatment, line: int) -> float:
        """Return the patient's response probability to `treatment` as line number `line`."""
        p = self.response[treatment.index]
        for modifier in treatment.line_modifiers:
            if modifier.condition.holds(line):
                p = modifier.probability if modifier.probability is not None else adjust_odds(p, modifier.odds_ratio)
        return p

    def flare_numbers(self) -> FlareNumbers:
        """Return this patient's flare numbers (the same for every strategy)."""
        if self._flares is None:
            chunk, i = self.chunk, self.i
            self._flares = FlareNumbers(self.model.seed, self.replicate, self.patient,
                                        chunk.flare_gaps[i], chunk.flare_responses[i], chunk.flare_rebounds[i])
        return self._flares

    def episode_group(self, treatment: Treatment, occurrence: int):
        """Return the draws of the `occurrence`-th episode (0-based) of `treatment`, indexed by slot offset."""
        chunk = self.chunk
        if occurrence < OCCURRENCES:
            start = self.base + chunk.episode_groups[treatment.index][occurrence]
            return chunk.values[start:start + chunk.group_sizes[treatment.index]]
        return draw_group_values(self.model, treatment, self._overflow(treatment, occurrence))

    def relapse(self, spell: int, variant: int) -> tuple[float, float]:
        """Return (uniform deciding whether a relapse comes, months until it comes)."""
        chunk = self.chunk
        if spell < SPELLS:
            time = chunk.relapse_times[(self.i * chunk.variants + variant) * SPELLS + spell]
            return chunk.values[self.base + chunk.relapse_occurs[spell]], time
        relapse = self.model.relapses[variant]
        u = overflow_uniforms(self.model.seed, self.replicate, self.patient, (OVERFLOW_SPELL, spell), 2)
        return float(u[0]), float(relapse.time.ppf(u[1:])[0])

    def first_line_uniform(self) -> float:
        """Return the uniform that picks the first line when a strategy draws it."""
        return self.chunk.values[self.base + self.chunk.layout.first_line]

    def _overflow(self, treatment: Treatment, occurrence: int) -> np.ndarray:
        """The uniforms of an episode group beyond the block (the same in every strategy)."""
        key = (OVERFLOW_EPISODE, treatment.index, occurrence)
        size = self.chunk.group_sizes[treatment.index]
        return overflow_uniforms(self.model.seed, self.replicate, self.patient, key, size)


class FlareNumbers:
    """A patient's flare numbers (`sim.draws.flare_uniforms`, as the vector engine reads
    them): before the k-th flare a unit exponential (`gaps[k]`), then the two uniforms of
    its burst (`responses[k]`, `rebounds[k]`). Every strategy reads the same ones; the
    first round comes with the chunk, later rounds are drawn for this patient when a
    trajectory reaches them (`more`).
    """

    __slots__ = ("gaps", "patient", "rebounds", "replicate", "responses", "seed")

    def __init__(self, seed: int, replicate: int, patient: int, gaps: list[float], responses: list[float],
                 rebounds: list[float]):
        self.seed, self.replicate, self.patient = seed, replicate, patient
        self.gaps, self.responses, self.rebounds = gaps, responses, rebounds

    def more(self) -> None:
        """Draw the next round of flare numbers."""
        u = flare_uniforms(self.seed, self.replicate, len(self.gaps) // FLARES_PER_ROUND, self.patient, 1)
        gaps, responses, rebounds = _flare_lists(u)
        self.gaps += gaps[0]
        self.responses += responses[0]
        self.rebounds += rebounds[0]


def _flare_lists(u: np.ndarray) -> tuple[list, list, list]:
    """A round of flare numbers (`flare_uniforms`, patients x 3*FLARES_PER_ROUND) as lists per patient:
    the unit exponentials before the flares, and their bursts' response and rebound uniforms."""
    k = FLARES_PER_ROUND
    return (-np.log1p(-u[:, :k])).tolist(), u[:, k:2 * k].tolist(), u[:, 2 * k:3 * k].tolist()


class PathwayPosition:
    """A patient's place in a strategy: the order of lines and what has failed so far."""

    __slots__ = ("allowed", "failed", "line_numbers", "occurrences", "order", "position")

    def __init__(self, order: tuple[Treatment, ...], allowed: list[bool], treatments: int):
        self.order = order
        self.position = -1
        self.failed: set[int] = set()
        self.line_numbers: dict[int, int] = {}
        self.allowed = allowed
        self.occurrences = [0] * treatments

    def next_line(self) -> Treatment | None:
        """Advance to the next eligible line and return its treatment (None: exhausted)."""
        order, failed, allowed = self.order, self.failed, self.allowed
        position = self.position + 1
        while position < len(order):
            treatment = order[position]
            # `eligible` spelt out where no earlier failure is required (most lines): this runs
            # for every line considered, and the call cost more than the test
            if treatment.index not in failed and allowed[treatment.index] and (
                    not treatment.after_failure_of or self.eligible(treatment)):
                self.position = position
                return treatment
            position += 1
        self.position = position
        return None

    def eligible(self, treatment: Treatment) -> bool:
        """Whether the patient may start `treatment` now."""
        if treatment.index in self.failed or not self.allowed[treatment.index]:
            return False
        for prior in treatment.after_failure_of:
            if prior not in self.failed:
                return False
        return True

    def start(self, treatment: Treatment) -> tuple[int, int]:
        """Record the start of an episode; return (line number, occurrence of this drug)."""
        index = treatment.index
        line = self.line_numbers.setdefault(index, len(self.line_numbers) + 1)
        occurrence = self.occurrences[index]
        self.occurrences[index] = occurrence + 1
        return line, occurrence


def line_order(strategy: Strategy, treatments: tuple[Treatment, ...], u: float | None = None) -> tuple[Treatment, ...]:
    """Return the treatments of `strategy` in the order a patient meets them; `u` (the patient's
    first-line uniform) picks the first line when the strategy draws it."""
    if strategy.first_line_weights is None:
        return tuple(treatments[t] for t in strategy.lines)
    cumulative = list(itertools.accumulate(strategy.first_line_weights))
    chosen = min(bisect.bisect_right(cumulative, u * cumulative[-1]), len(cumulative) - 1)
    first = strategy.lines[chosen]
    return tuple(treatments[t] for t in (first, *(line for line in strategy.lines if line != first)))
