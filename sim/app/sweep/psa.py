"""Probabilistic sensitivity analysis: which parameters are uncertain, and their draws.

Counts are kept as counts in the evidence files so that their uncertainty is known
without retyping anything. With Jeffreys priors:

- a probability written as counts (`{events: 27, n: 41}`) is drawn from
  Beta(events + ½, n − events + ½);
- shares that must sum to 1 and are all written as counts (the fates at the end of a
  course, the levels of a categorical covariate, the first-line choice) are drawn
  together from Dirichlet(events + ½, ...);
- a rate written as counts (`{events: 12, person_years: 80}`) from
  Gamma(events + ½, scale 1/person_years), per year.

Parameters under `psa.parameters` take the distribution declared there instead. A set of
shares in which only some parts are counts is kept at its point estimate (drawing part
of it would break the sum to 1), as is anything under `targets` (observations, not
model inputs) or under `psa.exclude`.

Sample `k` of a sweep depends only on the sweep's seed and on `k`: its standard normal
scores come from `SeedSequence([seed, PSA_STREAM], spawn_key=(k,))`, so adding samples
never changes the earlier ones, and the same sample has the same parameters in every
grid variant. Univariate draws go through their inverse CDF from the normal scores;
declared correlations correlate those scores (a Gaussian copula).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import special

from sim.loader import Problem, ScenarioError
from sim.app.sweep.parameters import Parameter, PathError, document_value, get_path, locate, split_path
from sim.app.sweep.spec import DrawSpec, PsaSpec

if TYPE_CHECKING:
    from sim.app.calibrated_sets import CalibratedSets

PSA_STREAM = 0x505341  # "PSA": keeps parameter draws apart from the patients' random streams
_EXCLUDED_ROOTS = ("targets", "settings")


@dataclass(frozen=True)
class Draw:
    """One parameter drawn in every PSA sample from a univariate distribution.

    `family` is beta, gamma, lognormal, normal or uniform; `arguments` are (alpha, beta),
    (shape, scale), (meanlog, sdlog), (mean, sd) or (low, high), in the parameter's unit.
    `shared` are other parameters that take the same value: sibling counts that repeat
    one observation (same counts, same source), such as one flare rate used in every state.
    """

    parameter: Parameter
    family: str
    arguments: tuple[float, float]
    origin: str
    source: str
    shared: tuple[Parameter, ...] = ()

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        """Every parameter this draw sets."""
        return (self.parameter, *self.shared)

    def quantile(self, u: np.ndarray) -> np.ndarray:
        """Return the values at cumulative probabilities `u` (inverse CDF)."""
        a, b = self.arguments
        if self.family == "beta":
            return special.betaincinv(a, b, u)
        if self.family == "gamma":
            return special.gammaincinv(a, u) * b
        if self.family == "lognormal":
            return np.exp(a + b * special.ndtri(u))
        if self.family == "normal":
            return a + b * special.ndtri(u)
        return a + u * (b - a)

    def mean(self) -> float:
        """The distribution's mean (in the parameter's unit)."""
        a, b = self.arguments
        return {"beta": a / (a + b), "gamma": a * b, "lognormal": math.exp(a + b * b / 2),
                "normal": a, "uniform": (a + b) / 2}[self.family]

    def variance(self) -> float:
        """The distribution's variance."""
        a, b = self.arguments
        return {"beta": a * b / ((a + b) ** 2 * (a + b + 1)), "gamma": a * b * b,
                "lognormal": (math.exp(b * b) - 1) * math.exp(2 * a + b * b),
                "normal": b * b, "uniform": (b - a) ** 2 / 12}[self.family]

    def describe(self) -> str:
        """The distribution as text, e.g. `Beta(27.5, 14.5)`."""
        names = {"beta": "Beta", "gamma": "Gamma", "lognormal": "LogNormal", "normal": "Normal",
                 "uniform": "Uniform"}
        return f"{names[self.family]}({self.arguments[0]:.4g}, {self.arguments[1]:.4g})"


@dataclass(frozen=True)
class SharesDraw:
    """Shares that sum to 1 (fates, levels), drawn together from a Dirichlet."""

    parameter: Parameter
    parts: tuple[str, ...]
    alpha: tuple[float, ...]
    origin: str
    source: str

    def columns(self) -> list[str]:
        """Column names of the parts in sweep tables."""
        return [f"{self.parameter.text}.{part}" for part in self.parts]

    def describe(self) -> str:
        """The distribution as text, e.g. `Dirichlet(remission 23.5, switch 3.5, continue 1.5)`."""
        inner = ", ".join(f"{part} {a:.4g}" for part, a in zip(self.parts, self.alpha))
        return f"Dirichlet({inner})"


@dataclass(frozen=True)
class PsaDesign:
    """Everything uncertain in a PSA and how each sample of it is drawn."""

    draws: tuple[Draw, ...]
    shares: tuple[SharesDraw, ...]
    cholesky: tuple[tuple[float, ...], ...] | None
    seed: int
    samples: int
    calibrated: CalibratedSets | None = None  # accepted sets of a calibration, one drawn whole per sample

    @property
    def dimension(self) -> int:
        """How many standard normal scores one sample uses."""
        return len(self.draws) + sum(len(s.parts) for s in self.shares)

    def scores(self, sample: int) -> np.ndarray:
        """Return the standard normal scores of sample `sample` (correlated as declared)."""
        sequence = np.random.SeedSequence([self.seed, PSA_STREAM], spawn_key=(sample,))
        scores = np.random.default_rng(sequence).standard_normal(self.dimension)
        if self.cholesky is not None:
            k = len(self.draws)
            scores[:k] = np.asarray(self.cholesky) @ scores[:k]
        return scores

    def values(self, sample: int) -> dict[str, float]:
        """Return the drawn value of every uncertain parameter in sample `sample`, by column."""
        scores = self.scores(sample)
        u = special.ndtr(scores)
        values = {}
        for i, draw in enumerate(self.draws):
            value = float(draw.quantile(u[i : i + 1])[0])
            values.update((parameter.column, value) for parameter in draw.parameters)
        position = len(self.draws)
        for shares in self.shares:
            width = len(shares.parts)
            gammas = special.gammaincinv(np.asarray(shares.alpha), u[position : position + width])
            position += width
            total = gammas.sum()
            proportions = gammas / total if total > 0 else np.full(width, 1 / width)
            values.update(zip(shares.columns(), proportions.tolist()))
        if self.calibrated is not None:
            values.update(self.calibrated.values(self.seed, PSA_STREAM, sample))
        return values

    def overrides(self, sample: int) -> list[tuple[tuple, Any]]:
        """Return sample `sample` as (path, value) pairs to write into the scenario document."""
        values = self.values(sample)
        pairs = [(p.path, document_value(p, values[p.column])) for d in self.draws for p in d.parameters]
        for shares in self.shares:
            for part, column in zip(shares.parts, shares.columns()):
                pairs.append(((*shares.parameter.path, part), values[column]))
        for parameter in self.calibrated.parameters if self.calibrated is not None else ():
            pairs.append((parameter.path, document_value(parameter, values[parameter.column])))
        return pairs


def build_design(spec: PsaSpec, document: dict, held: Iterable[tuple], seed: int, file: str) -> PsaDesign:
    """Return the PSA design of a sweep; raise `ScenarioError` naming the sweep file.

    `document` is the resolved base scenario; `held` are key paths the grid or the one-way
    analysis sets, which the PSA leaves alone.
    """
    held = [tuple(h) for h in held]
    problems: list[Problem] = []
    calibrated = calibrated_sets(spec, document, held, file)
    if calibrated is not None:
        held = [*held, *(p.path for p in calibrated.parameters)]
    declared_draws, declared_shares = _declared(spec, document, held, file, problems)
    declared_paths = [p.path for d in declared_draws for p in d.parameters]
    declared_paths += [s.parameter.path for s in declared_shares]
    excluded = _excluded(spec, document, file, problems)
    draws, shares = [], []
    if spec.counts:
        draws, shares = _from_counts(document, [*held, *declared_paths, *excluded])
    draws = sorted([*draws, *declared_draws], key=lambda d: d.parameter.text)
    shares = sorted([*shares, *declared_shares], key=lambda s: s.parameter.text)
    cholesky = _cholesky(spec, draws, shares, document, file, problems)
    if problems:
        raise ScenarioError(problems)
    if not draws and not shares and calibrated is None:
        raise ScenarioError([Problem(file, "psa", "nothing is uncertain: the base scenario has no counts "
                                     "and psa.parameters declares no distribution")])
    return PsaDesign(tuple(draws), tuple(shares), cholesky, seed, spec.samples, calibrated)


def calibrated_sets(spec: PsaSpec, document: dict, held: list[tuple], file: str) -> CalibratedSets | None:
    """The accepted sets `psa.calibrated` names (beside the sweep file, else from the working
    directory), checked against the base scenario and the grid; None without it."""
    if spec.calibrated is None:
        return None
    from sim.app.calibrated_sets import read_calibrated_sets  # it reads key paths with this package's parameters

    beside = Path(file).parent / spec.calibrated
    sets = read_calibrated_sets(beside if beside.is_dir() else Path(spec.calibrated), document, file)
    for parameter in sets.parameters:
        if _overlaps(parameter.path, held):
            raise ScenarioError([Problem(file, "psa.calibrated", f"{parameter.text} is calibrated and also set by "
                                         "vary or one_way; a parameter is either fixed or drawn")])
    return sets


def _overlaps(path: tuple, others: Iterable[tuple]) -> bool:
    return any(path[: len(o)] == o or o[: len(path)] == path for o in others)


def _excluded(spec: PsaSpec, document: dict, file: str, problems: list[Problem]) -> list[tuple]:
    paths = []
    for i, text in enumerate(spec.exclude):
        try:
            paths.append(locate(text, document).path)
        except PathError as exc:
            problems.append(Problem(file, f"psa.exclude[{i}]", str(exc)))
    return paths


# --------------------------------------------------------------------- counts


def _from_counts(document: dict, skip: list[tuple]) -> tuple[list[Draw], list[SharesDraw]]:
    draws, shares, grouped = {}, [], set()
    for path, node in _mappings(document, ()):
        if not path or path[0] in _EXCLUDED_ROOTS or _overlaps(path, skip):
            continue
        try:
            parameter = locate(path, document)
        except PathError:
            continue  # not a place the schema knows (cannot happen in a validated scenario)
        if parameter.kind == "fates":
            group = _shares_from_counts(parameter, node, _source(document, path))
            grouped.update((*path, part) for part in _parts(node))
            if group is not None:
                shares.append(group)
        elif path not in grouped and _is_counts(node) and parameter.kind in ("probability", "rate"):
            source = _source(document, path)
            # One observation written out for several siblings is one uncertain number.
            key = (path[:-1], parameter.kind, node.get("events"), node.get("n"), node.get("person_years"), source)
            if key in draws:
                draws[key] = replace(draws[key], shared=(*draws[key].shared, parameter))
            else:
                draws[key] = _draw_from_counts(parameter, node, source)
    return list(draws.values()), shares


def _source(document: dict, path: tuple) -> str:
    """The parameter's own source, or that of the nearest enclosing block."""
    for length in range(len(path), -1, -1):
        node = get_path(document, path[:length])
        if isinstance(node, dict) and node.get("source"):
            return str(node["source"]).strip()
    return ""


def _mappings(node: Any, path: tuple):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _mappings(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _mappings(value, (*path, i))


def _is_counts(node: Any) -> bool:
    return isinstance(node, dict) and "events" in node and ("n" in node or "person_years" in node)


def _parts(node: dict) -> list[str]:
    return [key for key, value in node.items() if key != "source" and isinstance(value, (dict, int, float))]


def _shares_from_counts(parameter: Parameter, node: dict, source: str) -> SharesDraw | None:
    parts = _parts(node)
    if len(parts) < 2 or not all(_is_counts(node[part]) for part in parts):
        return None
    alpha = tuple(node[part]["events"] + 0.5 for part in parts)
    return SharesDraw(parameter, tuple(parts), alpha, "counts", source)


def _draw_from_counts(parameter: Parameter, node: dict, source: str) -> Draw:
    events = node["events"]
    if parameter.kind == "rate":
        return Draw(parameter, "gamma", (events + 0.5, 1.0 / node["person_years"]), "counts", source)
    return Draw(parameter, "beta", (events + 0.5, node["n"] - events + 0.5), "counts", source)


# ------------------------------------------------------------------- declared


_UNIVARIATE_TARGETS = {
    "probability": ("beta", "uniform"),
    "rate": ("gamma", "lognormal", "uniform"),
    "duration": ("gamma", "lognormal", "uniform"),
    "distribution": ("gamma", "lognormal", "uniform"),
    "number": ("beta", "gamma", "lognormal", "normal", "uniform"),
}


def _declared(spec: PsaSpec, document: dict, held: list[tuple], file: str, problems: list[Problem]):
    draws, shares = [], []
    for text, draw in spec.parameters.items():
        where = f"psa.parameters.{text}"
        try:
            parameter = locate(text, document)
        except PathError as exc:
            problems.append(Problem(file, where, str(exc)))
            continue
        if _overlaps(parameter.path, held):
            problems.append(Problem(file, where, "this parameter is also set by vary or one_way; "
                                    "a parameter is either fixed by the grid/one-way analysis or drawn"))
            continue
        try:
            if draw.dist == "dirichlet":
                shares.append(_declared_shares(parameter, draw, document))
            else:
                draws.append(_declared_draw(parameter, draw))
        except PathError as exc:
            problems.append(Problem(file, where, str(exc)))
    return draws, shares


def _declared_shares(parameter: Parameter, draw: DrawSpec, document: dict) -> SharesDraw:
    if parameter.kind != "fates":
        raise PathError("a dirichlet draws shares that sum to 1 (end_of_course, levels, first_line); "
                        f"{parameter.text} is a {parameter.kind}")
    given = draw.alpha if isinstance(draw.alpha, dict) else {k: v + 0.5 for k, v in draw.counts.items()}
    node = get_path(document, parameter.path) or {}
    parts = _parts(node) if isinstance(node, dict) else []
    if set(given) != set(parts):
        raise PathError(f"the dirichlet must name exactly the parts of {parameter.text}: {', '.join(parts)} "
                        f"(got {', '.join(given)})")
    return SharesDraw(parameter, tuple(parts), tuple(float(given[p]) for p in parts), "declared", draw.source or "")


def _declared_draw(parameter: Parameter, draw: DrawSpec) -> Draw:
    allowed = _UNIVARIATE_TARGETS.get(parameter.kind)
    if allowed is None:
        raise PathError(f"{parameter.text} is a {parameter.kind}; only numbers, probabilities, rates and "
                        "durations can be drawn")
    if draw.dist not in allowed:
        raise PathError(f"a {draw.dist} draw does not suit a {parameter.kind}; use {' or '.join(allowed)}")
    arguments = _arguments(draw)
    if draw.dist == "uniform" and parameter.kind == "probability" and not 0 <= arguments[0] <= arguments[1] <= 1:
        raise PathError("a uniform draw of a probability must lie within 0 and 1")
    if draw.dist == "uniform" and parameter.kind != "number" and arguments[0] < 0:
        raise PathError(f"a {parameter.kind} cannot be negative; low must be >= 0")
    return Draw(parameter, draw.dist, arguments, "declared", draw.source or "")


def _arguments(draw: DrawSpec) -> tuple[float, float]:
    if draw.dist == "beta":
        if draw.events is not None:
            return (draw.events + 0.5, draw.n - draw.events + 0.5)
        if draw.mean is not None:
            k = draw.mean * (1 - draw.mean) / draw.sd**2 - 1
            return (draw.mean * k, (1 - draw.mean) * k)
        return (float(draw.alpha), float(draw.beta))
    if draw.dist == "gamma":
        if draw.mean is not None:
            return ((draw.mean / draw.sd) ** 2, draw.sd**2 / draw.mean)
        return (draw.shape, draw.scale)
    if draw.dist == "lognormal":
        if draw.mean is not None:
            sdlog2 = math.log1p((draw.sd / draw.mean) ** 2)
            return (math.log(draw.mean) - sdlog2 / 2, math.sqrt(sdlog2))
        meanlog = math.log(draw.median) if draw.median is not None else draw.meanlog
        return (meanlog, draw.sdlog)
    if draw.dist == "normal":
        return (draw.mean, draw.sd)
    return (draw.low, draw.high)


# ---------------------------------------------------------------- correlations


def _cholesky(spec: PsaSpec, draws: list[Draw], shares: list[SharesDraw], document: dict, file: str,
              problems: list[Problem]) -> tuple | None:
    if not spec.correlations:
        return None
    index = {p.path: i for i, d in enumerate(draws) for p in d.parameters}
    shared = {s.parameter.path for s in shares}
    matrix = np.eye(len(draws))
    for i, correlation in enumerate(spec.correlations):
        positions = []
        for j, text in enumerate(correlation.parameters):
            where = f"psa.correlations[{i}].parameters[{j}]"
            try:
                path = split_path(text)
            except PathError as exc:
                problems.append(Problem(file, where, str(exc)))
                continue
            if path in index:
                positions.append(index[path])
            elif path in shared:
                problems.append(Problem(file, where, f"{text} is drawn from a Dirichlet; only univariate "
                                        "draws can be correlated"))
            else:
                drawn = ", ".join(d.parameter.text for d in draws[:6]) + (", ..." if len(draws) > 6 else "")
                problems.append(Problem(file, where, f"{text} is not drawn in this PSA; drawn: {drawn}"))
        if len(positions) == 2:
            a, b = positions
            if a == b:
                problems.append(Problem(file, f"psa.correlations[{i}]", "a parameter cannot be correlated with itself"))
            matrix[a, b] = matrix[b, a] = correlation.rho
    if problems:
        return None
    try:
        lower = np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        problems.append(Problem(file, "psa.correlations", "these correlations are impossible together "
                                "(the correlation matrix is not positive definite); weaken some of them"))
        return None
    return tuple(tuple(float(x) for x in row) for row in lower)
