"""A virtual patient's draws and where the patient stands in a strategy.

`PatientDraws` hands out the patient's pre-drawn numbers (common to every strategy);
`PathwayPosition` applies the strategy's rules: which line comes next, who is eligible,
and what happens after a relapse.
"""

from __future__ import annotations

import bisect
import itertools

import numpy as np

from sim.draws import OCCURRENCES, SPELLS, ChunkDraws, Layout, draw_group_values, overflow_generator
from sim.model import Model, Strategy, Treatment


class PatientDraws:
    """The numbers of one patient in one replicate, read slot by slot."""

    __slots__ = ("model", "layout", "row", "relapse_times", "end", "lost", "replicate", "patient", "_overflow")

    def __init__(self, model: Model, layout: Layout, chunk: ChunkDraws, i: int, replicate: int):
        self.model = model
        self.layout = layout
        self.row = chunk.values[i]
        self.relapse_times = chunk.relapse_times[i]
        self.end = float(chunk.ends[i])
        self.lost = bool(chunk.lost[i])
        self.replicate = replicate
        self.patient = chunk.first_patient + i
        self._overflow = None

    def episode_group(self, treatment: Treatment, occurrence: int) -> list[float]:
        """Return the draws of the `occurrence`-th episode (0-based) of `treatment`."""
        size = self.layout.group_sizes[treatment.index]
        if occurrence < OCCURRENCES:
            start = self.layout.episode_groups[treatment.index][occurrence]
            return self.row[start:start + size].tolist()
        return draw_group_values(treatment, self._generator().random(size))

    def relapse(self, spell: int, variant: int) -> tuple[float, float]:
        """Return (uniform deciding whether a relapse comes, months until it comes)."""
        relapse = self.model.relapses[variant]
        if spell < SPELLS:
            return float(self.row[self.layout.relapse_occurs[spell]]), float(self.relapse_times[variant, spell])
        u = self._generator().random(2)
        return float(u[0]), float(relapse.time.ppf(u[1:])[0])

    def first_line_uniform(self) -> float:
        """Return the uniform that picks the first line when a strategy draws it."""
        return float(self.row[self.layout.first_line])

    def _generator(self) -> np.random.Generator:
        if self._overflow is None:
            self._overflow = overflow_generator(self.model.seed, self.replicate, self.patient)
        return self._overflow


class PathwayPosition:
    """A patient's place in a strategy: the order of lines and what has failed so far."""

    __slots__ = ("order", "position", "failed", "line_numbers", "age_group", "treatments", "occurrences")

    def __init__(self, strategy: Strategy, treatments: tuple[Treatment, ...], age_group: str, first_uniform: float):
        self.order = _line_order(strategy, first_uniform)
        self.position = -1
        self.failed: set[int] = set()
        self.line_numbers: dict[int, int] = {}
        self.age_group = age_group
        self.treatments = treatments
        self.occurrences = [0] * len(treatments)

    def next_line(self) -> Treatment | None:
        """Advance to the next eligible line and return its treatment (None: exhausted)."""
        for position in range(self.position + 1, len(self.order)):
            treatment = self.treatments[self.order[position]]
            if self.eligible(treatment):
                self.position = position
                return treatment
        self.position = len(self.order)
        return None

    def eligible(self, treatment: Treatment) -> bool:
        """Whether the patient may start `treatment` now."""
        if treatment.index in self.failed:
            return False
        if treatment.age_groups is not None and self.age_group not in treatment.age_groups:
            return False
        return all(prior in self.failed for prior in treatment.after_failure_of)

    def start(self, treatment: Treatment) -> tuple[int, int]:
        """Record the start of an episode; return (line number, occurrence of this drug)."""
        line = self.line_numbers.setdefault(treatment.index, len(self.line_numbers) + 1)
        occurrence = self.occurrences[treatment.index]
        self.occurrences[treatment.index] += 1
        return line, occurrence


def _line_order(strategy: Strategy, u: float) -> tuple[int, ...]:
    if strategy.first_line_weights is None:
        return strategy.lines
    cumulative = list(itertools.accumulate(strategy.first_line_weights))
    chosen = min(bisect.bisect_right(cumulative, u * cumulative[-1]), len(cumulative) - 1)
    first = strategy.lines[chosen]
    return (first, *(line for line in strategy.lines if line != first))
