"""Background mortality from a life table: when each virtual patient dies of other causes.

A life table gives, for each whole year of age x, the probability q_x of dying before
age x + 1. Within a year of age the hazard is constant, -ln(1 - q_x) per year; past the
table's last age it stays at the last year's hazard. A patient of age a at entry dies at
the age where the cumulative hazard from a reaches -ln(1 - u), u uniform: an exact
inverse, no discretisation. Death ends observation like the horizon: episodes running
then are censored with reason `death`, and the patient's final state is `dead`.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.loader import Problem, ScenarioError


@dataclass(frozen=True)
class LifeTable:
    """Yearly hazards of death by whole year of age, from a life table's q_x."""

    ages: tuple[int, ...]
    hazards_per_year: tuple[float, ...]

    def years_to_death(self, age_years: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
        """Years from `age_years` until death, for uniforms in [0, 1) (inverse cumulative hazard)."""
        knots, cumulative = self._cumulative()
        age = np.clip(np.asarray(age_years, dtype=float), knots[0], None)
        start = self._cumulative_at(age, knots, cumulative)
        target = start - np.log1p(-np.asarray(uniforms, dtype=float))
        return self._age_at(target, knots, cumulative) - age

    def _cumulative(self) -> tuple[np.ndarray, np.ndarray]:
        knots = np.asarray(self.ages + (self.ages[-1] + 1,), dtype=float)
        cumulative = np.concatenate([[0.0], np.cumsum(self.hazards_per_year)])
        return knots, cumulative

    def _cumulative_at(self, age, knots, cumulative):
        index = np.clip(np.searchsorted(knots, age, side="right") - 1, 0, len(self.ages) - 1)
        hazard = np.asarray(self.hazards_per_year)[index]
        return cumulative[index] + (age - knots[index]) * hazard

    def _age_at(self, target, knots, cumulative):
        hazards = np.asarray(self.hazards_per_year)
        index = np.clip(np.searchsorted(cumulative, target, side="right") - 1, 0, len(self.ages) - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            age = knots[index] + (target - cumulative[index]) / hazards[index]
        return np.where(np.isfinite(age), age, np.inf)


def read_life_table(path: Path) -> LifeTable:
    """Read a CSV with columns `age` (whole years, consecutive) and `qx` (0 to 1)."""
    def fail(message: str) -> ScenarioError:
        return ScenarioError([Problem(str(path), "", f"{message}; a life table is a CSV with columns age,qx")])

    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise ScenarioError([Problem(str(path), "", f"cannot read the life table: {exc.strerror}")]) from None
    if not rows or not {"age", "qx"} <= set(rows[0]):
        raise fail("missing the columns age and qx")
    try:
        ages = [int(row["age"]) for row in rows]
        qx = [float(row["qx"]) for row in rows]
    except ValueError as exc:
        raise fail(f"a value is not a number ({exc})") from None
    if any(b != a + 1 for a, b in zip(ages, ages[1:])):
        raise fail("ages must be consecutive whole years")
    if any(not 0.0 <= q <= 1.0 for q in qx):
        raise fail("every qx must lie in [0, 1]")
    hazards = tuple(-math.log1p(-q) if q < 1.0 else math.inf for q in qx)
    return LifeTable(tuple(ages), hazards)
