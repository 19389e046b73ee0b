"""Probability distributions of times, durations and numeric covariates.

Each distribution turns uniform random numbers into values by its inverse cumulative
distribution function (`ppf`). Drawing through the inverse CDF lets every strategy and
every engine reuse the same uniforms for the same patient (common random numbers), and
lets a whole chunk of patients be transformed in one vectorised call.

Times and durations are in months. The closed-form `mean` and `variance` are what the
tests check the samples against.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import special


@dataclass(frozen=True)
class Fixed:
    """Always `value`."""

    value: float

    def ppf(self, u: np.ndarray) -> np.ndarray:
        return np.full_like(u, self.value, dtype=float)

    def mean(self) -> float:
        return self.value

    def variance(self) -> float:
        return 0.0


@dataclass(frozen=True)
class Uniform:
    """Uniform between `low` and `high`."""

    low: float
    high: float

    def ppf(self, u: np.ndarray) -> np.ndarray:
        return self.low + u * (self.high - self.low)

    def mean(self) -> float:
        return (self.low + self.high) / 2

    def variance(self) -> float:
        return (self.high - self.low) ** 2 / 12


@dataclass(frozen=True)
class Exponential:
    """Exponential with mean `mean` (rate 1/mean)."""

    mean_value: float

    def ppf(self, u: np.ndarray) -> np.ndarray:
        return -self.mean_value * np.log1p(-u)

    def mean(self) -> float:
        return self.mean_value

    def variance(self) -> float:
        return self.mean_value**2


@dataclass(frozen=True)
class Weibull:
    """Weibull with `shape` k and `scale` lambda: S(t) = exp(-(t/lambda)^k)."""

    shape: float
    scale: float

    def ppf(self, u: np.ndarray) -> np.ndarray:
        return self.scale * (-np.log1p(-u)) ** (1.0 / self.shape)

    def mean(self) -> float:
        return self.scale * math.gamma(1 + 1 / self.shape)

    def variance(self) -> float:
        g1 = math.gamma(1 + 1 / self.shape)
        g2 = math.gamma(1 + 2 / self.shape)
        return self.scale**2 * (g2 - g1**2)


@dataclass(frozen=True)
class Gamma:
    """Gamma with `shape` k and `scale` theta (mean k*theta)."""

    shape: float
    scale: float

    def ppf(self, u: np.ndarray) -> np.ndarray:
        return gamma_quantile(self.shape, u) * self.scale

    def mean(self) -> float:
        return self.shape * self.scale

    def variance(self) -> float:
        return self.shape * self.scale**2


_Z_LIMIT, _Z_STEPS = 8.5, 2048  # the table spans u from 1e-17 to 1 - 1e-17


def gamma_quantile(shape: float, u) -> np.ndarray:
    """The quantile of the standard gamma distribution (scale 1) at `u`.

    Interpolated from a table per shape, about ten times faster than
    `scipy.special.gammaincinv` (which a run calls millions of times) and within 1e-10
    of it relatively (tested): log(quantile) is a smooth function of z = ndtri(u) in
    both tails, so a cubic Hermite interpolant in z, with the exact derivative at each
    knot, is accurate to the last digits. Shapes whose table cannot be built in floating
    point fall back to `gammaincinv`.
    """
    coefficients = _gamma_table(float(shape))
    u = np.asarray(u, dtype=float)
    if coefficients is None:
        return special.gammaincinv(shape, u)
    step = 2 * _Z_LIMIT / _Z_STEPS
    x = np.clip((special.ndtri(u) + _Z_LIMIT) / step, 0.0, _Z_STEPS - 1e-9)
    knot = x.astype(np.intp)
    t = x - knot
    a, b, c, d = coefficients[:, knot]
    q = np.exp(((d * t + c) * t + b) * t + a)
    return np.where(u <= 0.0, 0.0, np.where(u >= 1.0, np.inf, q))


@functools.lru_cache(maxsize=256)
def _gamma_table(shape: float) -> np.ndarray | None:
    """Cubic coefficients (4 x steps) of log(quantile) between knots equally spaced in z."""
    z = np.linspace(-_Z_LIMIT, _Z_LIMIT, _Z_STEPS + 1)
    with np.errstate(all="ignore"):
        # Each tail from its own side: ndtr(z) near 1 loses the digits the upper tail needs.
        q = np.where(z <= 0, special.gammaincinv(shape, special.ndtr(z)), special.gammainccinv(shape, special.ndtr(-z)))
        log_q = np.log(q)
        log_density = (shape - 1) * log_q - q - special.gammaln(shape)
        slope = np.exp(-0.5 * z * z - 0.5 * math.log(2 * math.pi) - log_density - log_q) * (2 * _Z_LIMIT / _Z_STEPS)
    if not (np.isfinite(log_q).all() and np.isfinite(slope).all()):
        return None
    y0, y1, m0, m1 = log_q[:-1], log_q[1:], slope[:-1], slope[1:]
    return np.stack([y0, m0, 3 * (y1 - y0) - 2 * m0 - m1, 2 * (y0 - y1) + m0 + m1])


@dataclass(frozen=True)
class LogNormal:
    """Log-normal: log(value) is normal with mean `meanlog` and sd `sdlog`."""

    meanlog: float
    sdlog: float

    def ppf(self, u: np.ndarray) -> np.ndarray:
        return np.exp(self.meanlog + self.sdlog * special.ndtri(u))

    def mean(self) -> float:
        return math.exp(self.meanlog + self.sdlog**2 / 2)

    def variance(self) -> float:
        s2 = self.sdlog**2
        return (math.exp(s2) - 1) * math.exp(2 * self.meanlog + s2)


@dataclass(frozen=True)
class TruncatedNormal:
    """Normal with `mu` and `sigma`, truncated at zero (no negative durations)."""

    mu: float
    sigma: float

    def ppf(self, u: np.ndarray) -> np.ndarray:
        below_zero = special.ndtr(-self.mu / self.sigma)
        q = below_zero + u * (1.0 - below_zero)
        return np.maximum(self.mu + self.sigma * special.ndtri(q), 0.0)

    def _ratio(self) -> tuple[float, float]:
        a = -self.mu / self.sigma
        density = math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
        return a, density / (1 - float(special.ndtr(a)))

    def mean(self) -> float:
        _, lam = self._ratio()
        return self.mu + self.sigma * lam

    def variance(self) -> float:
        a, lam = self._ratio()
        return self.sigma**2 * (1 + a * lam - lam**2)


@dataclass(frozen=True)
class Empirical:
    """Resampling of observed `values`, each with its `weight` (equal by default)."""

    values: tuple[float, ...]
    weights: tuple[float, ...]

    def ppf(self, u: np.ndarray) -> np.ndarray:
        cumulative = np.cumsum(self.weights) / sum(self.weights)
        index = np.searchsorted(cumulative, u, side="right")
        return np.asarray(self.values, dtype=float)[np.minimum(index, len(self.values) - 1)]

    def mean(self) -> float:
        w = np.asarray(self.weights) / sum(self.weights)
        return float(np.dot(w, self.values))

    def variance(self) -> float:
        w = np.asarray(self.weights) / sum(self.weights)
        v = np.asarray(self.values)
        return float(np.dot(w, (v - np.dot(w, v)) ** 2))


@dataclass(frozen=True)
class Clipped:
    """Another distribution with values clipped into [low, high] (point masses at the bounds)."""

    inner: object
    low: float
    high: float

    def ppf(self, u: np.ndarray) -> np.ndarray:
        return np.clip(self.inner.ppf(u), self.low, self.high)

    def mean(self) -> float:
        return float(np.mean(self.ppf((np.arange(200_000) + 0.5) / 200_000)))

    def variance(self) -> float:
        x = self.ppf((np.arange(200_000) + 0.5) / 200_000)
        return float(np.var(x))


# ----------------------------------------------------------------------------------
# Parametric survival families. Each has a scalar `*_quantile(u, ...)` in plain `math`
# (no NumPy) that a compiled engine can reuse; the class's `ppf` is its vectorised twin.


def gompertz_quantile(u: float, shape: float, rate: float) -> float:
    """Months at which a Gompertz S(t) = exp(-rate/shape (e^(shape t) - 1)) falls to 1 - u.

    `shape` and `rate` are per month; a negative shape leaves a cured share
    exp(rate/shape) whose time is infinite.
    """
    if u <= 0.0:
        return 0.0
    if u >= 1.0:
        return math.inf
    cumulative_hazard = -math.log1p(-u)
    if shape == 0.0:
        return cumulative_hazard / rate
    x = shape * cumulative_hazard / rate
    if x <= -1.0:
        return math.inf
    return math.log1p(x) / shape


@dataclass(frozen=True)
class Gompertz:
    """Gompertz with hazard rate * exp(shape t) (both per month; shape < 0: a cured share)."""

    shape: float
    rate: float

    def ppf(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=float)
        h = -np.log1p(-u)
        if self.shape == 0.0:
            return h / self.rate
        x = self.shape * h / self.rate
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.log1p(x) / self.shape
        return np.where(x <= -1.0, np.inf, t)

    def cured(self) -> float:
        """The share who never reach the event (exp(rate/shape) when shape < 0, else 0)."""
        return math.exp(self.rate / self.shape) if self.shape < 0 else 0.0

    def mean(self) -> float:
        if self.shape < 0:
            return math.inf
        if self.shape == 0:
            return 1 / self.rate
        # integral of S: e^b E1(b) / shape with b = rate/shape; U(1, 1, b) = e^b E1(b) without overflow.
        return float(special.hyperu(1.0, 1.0, self.rate / self.shape)) / self.shape

    def variance(self) -> float:
        if self.shape < 0:
            return math.inf
        if self.shape == 0:
            return 1 / self.rate**2
        from scipy import integrate

        # E[T^2] = 2 int t S(t) dt has no elementary form (a hypergeometric 3F3). With
        # x = b e^(shape t) - b it is 2/shape^2 int log1p(x/b) e^-x / (b + x) dx: bounded, by quadrature.
        b = self.rate / self.shape
        integral, _ = integrate.quad(lambda x: math.log1p(x / b) * math.exp(-x) / (b + x), 0, math.inf, limit=200)
        return 2 * integral / self.shape**2 - self.mean() ** 2


def loglogistic_quantile(u: float, shape: float, scale: float) -> float:
    """Months at which a log-logistic S(t) = 1 / (1 + (t/scale)^shape) falls to 1 - u."""
    if u <= 0.0:
        return 0.0
    if u >= 1.0:
        return math.inf
    return scale * (u / (1.0 - u)) ** (1.0 / shape)


@dataclass(frozen=True)
class LogLogistic:
    """Log-logistic with `shape` a and `scale` b (the median, months): S(t) = 1/(1 + (t/b)^a)."""

    shape: float
    scale: float

    def ppf(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=float)
        with np.errstate(divide="ignore"):
            return self.scale * np.exp((np.log(u) - np.log1p(-u)) / self.shape)

    def mean(self) -> float:
        if self.shape <= 1:
            return math.inf
        c = math.pi / self.shape
        return self.scale * c / math.sin(c)

    def variance(self) -> float:
        if self.shape <= 2:
            return math.inf
        c = math.pi / self.shape
        return self.scale**2 * (2 * c / math.sin(2 * c) - (c / math.sin(c)) ** 2)


def generalized_gamma_quantile(u: float, mu: float, sigma: float, q: float) -> float:
    """Months at quantile `u` of the generalised gamma (Prentice 1974, flexsurv's `gengamma`).

    log T = mu + sigma * log(G / g) / q with G ~ Gamma(g = 1/q^2, 1); q = 0 is the
    log-normal. Needs the standard gamma quantile (scipy's `gammaincinv`).
    """
    if u <= 0.0:
        return 0.0
    if u >= 1.0:
        return math.inf
    if q == 0.0:
        return math.exp(mu + sigma * float(special.ndtri(u)))
    g = 1.0 / (q * q)
    p = u if q > 0 else 1.0 - u
    return math.exp(mu + sigma * math.log(float(special.gammaincinv(g, p)) / g) / q)


@dataclass(frozen=True)
class GeneralizedGamma:
    """Generalised gamma of Prentice (flexsurv `gengamma`): location `mu`, scale `sigma`, shape `q`.

    q = 1 is the Weibull, q = 0 the log-normal, q = sigma the gamma; times in months.
    """

    mu: float
    sigma: float
    q: float

    def ppf(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=float)
        if self.q == 0.0:
            return np.exp(self.mu + self.sigma * special.ndtri(u))
        g = 1.0 / self.q**2
        draw = gamma_quantile(g, u if self.q > 0 else 1.0 - u)
        with np.errstate(divide="ignore"):
            return np.exp(self.mu + self.sigma * np.log(draw / g) / self.q)

    def _raw_moment(self, r: int) -> float:
        if self.q == 0.0:
            return math.exp(r * self.mu + (r * self.sigma) ** 2 / 2)
        g, k = 1.0 / self.q**2, r * self.sigma / self.q
        if g + k <= 0:
            return math.inf
        return math.exp(r * self.mu + special.gammaln(g + k) - special.gammaln(g) - k * math.log(g))

    def mean(self) -> float:
        return self._raw_moment(1)

    def variance(self) -> float:
        second = self._raw_moment(2)
        return math.inf if math.isinf(second) else second - self.mean() ** 2


def piecewise_exponential_quantile(u: float, starts: tuple[float, ...], rates: tuple[float, ...]) -> float:
    """Months at which a piecewise-constant hazard (`rates[i]` per month from `starts[i]`,
    `starts[0] == 0`) has brought survival down to 1 - u; infinite if it never does."""
    if u <= 0.0:
        return 0.0
    remaining = -math.log1p(-u)
    for i in range(len(starts)):
        width = starts[i + 1] - starts[i] if i + 1 < len(starts) else math.inf
        used = rates[i] * width
        if remaining <= used:
            return starts[i] + remaining / rates[i]
        remaining -= used
    return math.inf


@dataclass(frozen=True)
class PiecewiseExponential:
    """Constant hazard `rates[i]` (per month) from `starts[i]` months to the next start; starts[0] = 0.

    A last rate of zero leaves a share who never reach the event (infinite time).
    """

    starts: tuple[float, ...]
    rates: tuple[float, ...]

    def _at_starts(self) -> tuple[np.ndarray, np.ndarray]:
        """Cumulative hazard at each start, and each interval's width (the last infinite)."""
        starts, rates = np.asarray(self.starts, float), np.asarray(self.rates, float)
        widths = np.append(np.diff(starts), np.inf)
        with np.errstate(invalid="ignore"):
            used = np.where(rates > 0, rates * widths, 0.0)
        return np.concatenate([[0.0], np.cumsum(used[:-1])]), widths

    def ppf(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=float)
        h = -np.log1p(-u)
        at_start, _ = self._at_starts()
        rates = np.asarray(self.rates, float)
        i = np.searchsorted(at_start, h, side="right") - 1
        i = np.clip(i, 0, len(rates) - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.asarray(self.starts, float)[i] + (h - at_start[i]) / rates[i]
        return np.where(u <= 0, 0.0, np.where(rates[i] > 0, t, np.inf))

    def _moments(self) -> tuple[float, float]:
        at_start, widths = self._at_starts()
        first = second = 0.0
        for a, w, rate, h in zip(self.starts, widths, self.rates, at_start, strict=True):
            s = math.exp(-h)
            if rate == 0:
                if math.isinf(w):
                    return (math.inf, math.inf) if s > 0 else (first, second)
                first += s * w
                second += 2 * s * (a * w + w * w / 2)
                continue
            tail = 0.0 if math.isinf(w) else math.exp(-rate * w)
            first += s * (1 - tail) / rate
            # 2 * int t S dt over the interval, S = s e^(-rate (t - a)).
            lead = 0.0 if math.isinf(w) else tail * (1 + rate * w)
            second += 2 * s * (a * (1 - tail) / rate + (1 - lead) / rate**2)
        return first, second

    def mean(self) -> float:
        return self._moments()[0]

    def variance(self) -> float:
        first, second = self._moments()
        return math.inf if math.isinf(second) else second - first**2


Distribution = (Fixed | Uniform | Exponential | Weibull | Gamma | LogNormal | TruncatedNormal | Empirical | Clipped
                | Gompertz | LogLogistic | GeneralizedGamma | PiecewiseExponential)
