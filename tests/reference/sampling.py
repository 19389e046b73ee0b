"""Drawing from the scenario's distributions with the reference's own random numbers.

The families and their parameters are those README.md lists under "Writing a scenario"
(and `sim.schema.DistributionSpec`'s docstring): every draw is made here from a NumPy
`Generator`, nothing is taken from `sim.distributions`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Distribution:
    """A distribution of a time (months) or of a numeric covariate, as the YAML declares it.

    `kind` is the README's `dist:`; `parameters` its numbers (durations in months);
    `clip` the optional (low, high) bounds.
    """

    kind: str
    parameters: dict
    clip: tuple[float, float] | None = None

    def draw(self, rng: np.random.Generator) -> float:
        """One draw (months for a time)."""
        value = self._unclipped(rng)
        if self.clip is not None:
            # Reading: "clip: [low, high] bounds every draw" - a draw outside is moved to the
            # bound (clamped), not redrawn.
            value = min(max(value, self.clip[0]), self.clip[1])
        return value

    def _unclipped(self, rng: np.random.Generator) -> float:
        p = self.parameters
        if self.kind == "fixed":
            return p["value"]
        if self.kind == "uniform":
            return p["low"] + (p["high"] - p["low"]) * rng.random()
        if self.kind == "exponential":
            return rng.exponential(p["mean"])
        if self.kind == "weibull":
            return p["scale"] * rng.weibull(p["shape"])
        if self.kind == "gamma":
            if p.get("shape") is not None:
                return rng.gamma(p["shape"], p["scale"])
            # mean = k theta, sd^2 = k theta^2
            return rng.gamma((p["mean"] / p["sd"]) ** 2, p["sd"] ** 2 / p["mean"])
        if self.kind == "lognormal":
            if p.get("median") is not None:
                return p["median"] * math.exp(p["sdlog"] * rng.standard_normal())
            # mean = exp(mu + s^2/2), sd^2 = mean^2 (exp(s^2) - 1)
            s2 = math.log(1.0 + (p["sd"] / p["mean"]) ** 2)
            return math.exp(math.log(p["mean"]) - s2 / 2 + math.sqrt(s2) * rng.standard_normal())
        if self.kind == "normal":
            # "truncated at zero": the normal conditioned on being >= 0 (redrawn, not clamped)
            while True:
                value = p["mean"] + p["sd"] * rng.standard_normal()
                if value >= 0:
                    return value
        if self.kind == "empirical":
            values = p["values"]
            weights = np.asarray(p["weights"] or [1.0] * len(values), dtype=float)
            return float(values[rng.choice(len(values), p=weights / weights.sum())])
        raise ValueError(f"unknown distribution {self.kind!r}")


def from_spec(spec) -> Distribution | None:
    """The reference's `Distribution` for a validated `DistributionSpec` (None stays None)."""
    if spec is None:
        return None
    names = ("value", "low", "high", "mean", "sd", "median", "sdlog", "shape", "scale", "values", "weights")
    parameters = {name: getattr(spec, name) for name in names}
    clip = None if spec.clip is None else (float(spec.clip[0]), float(spec.clip[1]))
    return Distribution(spec.dist, parameters, clip)


def choose(weights, rng: np.random.Generator) -> int:
    """Index drawn with probability proportional to `weights`."""
    u = rng.random() * sum(weights)
    total = 0.0
    for i, weight in enumerate(weights):
        total += weight
        if u < total:
            return i
    return max(i for i, weight in enumerate(weights) if weight > 0)
