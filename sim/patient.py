"""A virtual patient's draws and where the patient stands in a strategy.

`PatientDraws` hands out the patient's pre-drawn numbers (common to every strategy);
`PathwayPosition` applies the strategy's rules: which line comes next, who is eligible,
and what happens after a relapse.
"""

from __future__ import annotations

import bisect
import itertools

import numpy as np

from sim.draws import (
    ASSESS,
    OCCURRENCES,
    OVERFLOW_EPISODE,
    OVERFLOW_SPELL,
    SPELLS,
    ChunkDraws,
    Layout,
    draw_group_values,
    flare_generator,
    overflow_uniforms,
)
from sim.model import Model, Strategy, Treatment, adjust_odds


class PatientDraws:
    """The numbers of one patient in one replicate, read slot by slot."""

    __slots__ = ("model", "layout", "row", "relapse_times", "end", "lost", "dead", "replicate", "patient", "entry",
                 "eligible", "response", "_chunk", "_i", "_flares")

    def __init__(self, model: Model, layout: Layout, chunk: ChunkDraws, i: int, replicate: int):
        self.model = model
        self.layout = layout
        self.row = chunk.values[i]
        self.relapse_times = chunk.relapse_times[i]
        self.end = float(chunk.ends[i])
        self.lost = bool(chunk.lost[i])
        self.dead = bool(chunk.dead[i]) if chunk.dead is not None else False
        self.entry = float(chunk.entries[i])
        self.eligible = chunk.eligible[i].tolist()
        self.response = chunk.response[i].tolist()
        self.replicate = replicate
        self.patient = chunk.first_patient + i
        self._chunk, self._i = chunk, i
        self._flares = None

    def target_assessment(self, strategy: Strategy, treatment: Treatment, occurrence: int) -> float:
        """Return the assessment time (months) of an episode under a treat-to-target strategy."""
        if occurrence < OCCURRENCES:
            return float(self._chunk.target_assessments[strategy.index][self._i, treatment.index, occurrence])
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
            self._flares = FlareNumbers(flare_generator(self.model.seed, self.replicate, self.patient))
        return self._flares

    def episode_group(self, treatment: Treatment, occurrence: int) -> list[float]:
        """Return the draws of the `occurrence`-th episode (0-based) of `treatment`."""
        size = self.layout.group_sizes[treatment.index]
        if occurrence < OCCURRENCES:
            start = self.layout.episode_groups[treatment.index][occurrence]
            return self.row[start:start + size].tolist()
        return draw_group_values(self.model, treatment, self._overflow(treatment, occurrence))

    def relapse(self, spell: int, variant: int) -> tuple[float, float]:
        """Return (uniform deciding whether a relapse comes, months until it comes)."""
        relapse = self.model.relapses[variant]
        if spell < SPELLS:
            return float(self.row[self.layout.relapse_occurs[spell]]), float(self.relapse_times[variant, spell])
        u = overflow_uniforms(self.model.seed, self.replicate, self.patient, (OVERFLOW_SPELL, spell), 2)
        return float(u[0]), float(relapse.time.ppf(u[1:])[0])

    def first_line_uniform(self) -> float:
        """Return the uniform that picks the first line when a strategy draws it."""
        return float(self.row[self.layout.first_line])

    def _overflow(self, treatment: Treatment, occurrence: int) -> np.ndarray:
        """The uniforms of an episode group beyond the block (the same in every strategy)."""
        key = (OVERFLOW_EPISODE, treatment.index, occurrence)
        return overflow_uniforms(self.model.seed, self.replicate, self.patient, key, self.layout.group_sizes[treatment.index])


class FlareNumbers:
    """A patient's flare numbers from its flare generator: before the k-th flare a unit
    exponential, then the two uniforms of its burst (response, rebound).

    Every strategy reads them in the order exponential, pair, exponential, ... so they are
    drawn once, in that order, and replayed for the other strategies (drawing them from a
    fresh generator per strategy gave the same numbers at the cost of a generator each).
    """

    __slots__ = ("_exponentials", "_generator", "_pairs")

    def __init__(self, generator: np.random.Generator):
        self._generator = generator
        self._exponentials: list[float] = []
        self._pairs: list[np.ndarray] = []

    def exponential(self, k: int) -> float:
        """The unit exponential before flare `k` (0-based)."""
        while len(self._exponentials) <= k:
            self._draw_next()
        return self._exponentials[k]

    def pair(self, k: int) -> np.ndarray:
        """The two uniforms of flare `k`'s burst."""
        while len(self._pairs) <= k:
            self._draw_next()
        return self._pairs[k]

    def _draw_next(self) -> None:
        if len(self._exponentials) == len(self._pairs):
            self._exponentials.append(self._generator.exponential())
        else:
            self._pairs.append(self._generator.random(2))


class PathwayPosition:
    """A patient's place in a strategy: the order of lines and what has failed so far."""

    __slots__ = ("order", "position", "failed", "line_numbers", "allowed", "treatments", "occurrences")

    def __init__(self, strategy: Strategy, treatments: tuple[Treatment, ...], allowed: list[bool], first_uniform: float):
        self.order = _line_order(strategy, first_uniform)
        self.position = -1
        self.failed: set[int] = set()
        self.line_numbers: dict[int, int] = {}
        self.allowed = allowed
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
        if treatment.index in self.failed or not self.allowed[treatment.index]:
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
