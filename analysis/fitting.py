"""Parametric survival curves fitted to time-on-drug data by maximum likelihood.

Seven families, in the parametrisations a scenario's `dist:` takes (times in months):
exponential (mean), Weibull (shape, scale), log-normal (meanlog, sdlog; written as
median and sdlog), log-logistic (shape, scale), Gompertz (shape, rate per month),
gamma (shape, scale) and the generalised gamma of Prentice (mu, sigma, Q, as flexsurv).
Right-censored log-likelihood: sum of log f(t) over events plus log S(t) over
censorings, maximised with scipy.optimize on unconstrained transforms. Standard errors
come from the observed Fisher information (a numerical Hessian in the natural
parameters).

lifelines does not fit here: it has no Gompertz or gamma fitter, and one likelihood for
all seven families keeps the AICs comparable. Its Weibull (lambda_, rho_), log-normal
(mu_, sigma_), log-logistic (alpha_, beta_) and generalised gamma (mu_, ln_sigma_,
lambda_) are our scale/shape, meanlog/sdlog, scale/shape and mu/log sigma/Q; the tests
check our fits against them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats


@dataclass(frozen=True)
class Family:
    """A survival family: parameter names, log-density, log-survival, and the maps between
    natural parameters and the unconstrained vector the optimiser moves."""

    name: str
    parameters: tuple[str, ...]
    logpdf: Callable
    logsf: Callable
    to_natural: Callable
    start: Callable  # (months, event) -> unconstrained start


def _gengamma_terms(t, mu, sigma, q):
    w = (np.log(t) - mu) / sigma
    g = 1.0 / q**2
    u = g * np.exp(q * w)
    logpdf = -np.log(sigma * t) + math.log(abs(q)) + g * math.log(g) + g * q * w - u - special.gammaln(g)
    logsf = np.log(special.gammaincc(g, u) if q > 0 else special.gammainc(g, u))
    return logpdf, logsf


def _gengamma_logpdf(t, mu, sigma, q):
    if abs(q) < 1e-8:
        return stats.norm.logpdf(np.log(t), mu, sigma) - np.log(t)
    return _gengamma_terms(t, mu, sigma, q)[0]


def _gengamma_logsf(t, mu, sigma, q):
    if abs(q) < 1e-8:
        return stats.norm.logsf(np.log(t), mu, sigma)
    return _gengamma_terms(t, mu, sigma, q)[1]


def _gompertz_logsf(t, shape, rate):
    if abs(shape) < 1e-12:
        return -rate * t
    return -rate / shape * np.expm1(shape * t)


_Q_LIMIT = 10.0


def _log_mean(months, event):
    return math.log(max(months.sum() / max(event.sum(), 1), 1e-6))


FAMILIES = {
    "exponential": Family(
        "exponential", ("mean",),
        lambda t, m: -math.log(m) - t / m, lambda t, m: -t / m,
        lambda x: (math.exp(x[0]),), lambda t, e: [_log_mean(t, e)]),
    "weibull": Family(
        "weibull", ("shape", "scale"),
        lambda t, k, lam: stats.weibull_min.logpdf(t, k, scale=lam), lambda t, k, lam: -((t / lam) ** k),
        lambda x: (math.exp(x[0]), math.exp(x[1])), lambda t, e: [0.0, _log_mean(t, e)]),
    "lognormal": Family(
        "lognormal", ("meanlog", "sdlog"),
        lambda t, mu, s: stats.norm.logpdf(np.log(t), mu, s) - np.log(t),
        lambda t, mu, s: stats.norm.logsf(np.log(t), mu, s),
        lambda x: (x[0], math.exp(x[1])), lambda t, e: [_log_mean(t, e) - 0.5, 0.0]),
    "loglogistic": Family(
        "loglogistic", ("shape", "scale"),
        lambda t, a, b: stats.fisk.logpdf(t, a, scale=b), lambda t, a, b: -np.log1p((t / b) ** a),
        lambda x: (math.exp(x[0]), math.exp(x[1])), lambda t, e: [0.3, _log_mean(t, e) - 0.3]),
    "gompertz": Family(
        "gompertz", ("shape", "rate"),
        lambda t, c, r: math.log(r) + c * t + _gompertz_logsf(t, c, r), _gompertz_logsf,
        lambda x: (x[0], math.exp(x[1])), lambda t, e: [0.0, -_log_mean(t, e)]),
    "gamma": Family(
        "gamma", ("shape", "scale"),
        lambda t, k, th: stats.gamma.logpdf(t, k, scale=th), lambda t, k, th: stats.gamma.logsf(t, k, scale=th),
        lambda x: (math.exp(x[0]), math.exp(x[1])), lambda t, e: [0.0, _log_mean(t, e)]),
    "gengamma": Family(
        "gengamma", ("mu", "sigma", "Q"), _gengamma_logpdf, _gengamma_logsf,
        # |Q| < 10: beyond it the terms lose all precision and a spurious degenerate optimum appears.
        lambda x: (x[0], math.exp(x[1]), _Q_LIMIT * math.tanh(x[2])),
        lambda t, e: [_log_mean(t, e), 0.0, math.atanh(1.0 / _Q_LIMIT)]),
}


@dataclass(frozen=True)
class Fit:
    """One family fitted: natural parameters with standard errors, log-likelihood, AIC, BIC."""

    family: str
    estimates: dict[str, float]
    standard_errors: dict[str, float]
    log_likelihood: float
    aic: float
    bic: float

    def survival(self, months) -> np.ndarray:
        """Fitted S(t) at `months`."""
        t = np.maximum(np.asarray(months, float), 1e-12)
        return np.exp(FAMILIES[self.family].logsf(t, *self.estimates.values()))


def log_likelihood(family: Family, natural, months, event) -> float:
    """Right-censored log-likelihood of natural parameters (times in months)."""
    with np.errstate(all="ignore"):
        total = family.logpdf(months[event], *natural).sum() + family.logsf(months[~event], *natural).sum()
    return float(total) if np.isfinite(total) else -np.inf


def fit_family(name: str, months, event) -> Fit:
    """Maximum-likelihood fit of family `name` to right-censored data (months; event True/False)."""
    family = FAMILIES[name]
    months = np.maximum(np.asarray(months, float), 1e-6)  # a zero time has no density on a log scale
    event = np.asarray(event, bool)

    def objective(x):
        try:
            value = -log_likelihood(family, family.to_natural(x), months, event)
        except (OverflowError, ValueError, ZeroDivisionError):
            return 1e300
        return value if np.isfinite(value) else 1e300

    best = optimize.minimize(objective, family.start(months, event), method="Nelder-Mead",
                             options={"maxiter": 4000, "xatol": 1e-8, "fatol": 1e-10})
    polished = optimize.minimize(objective, best.x, method="BFGS")
    x = polished.x if polished.fun <= best.fun else best.x
    natural = family.to_natural(x)
    loglik = -objective(x)
    errors = _standard_errors(family, natural, months, event)
    k, n = len(natural), len(months)
    return Fit(name, dict(zip(family.parameters, map(float, natural), strict=True)),
               dict(zip(family.parameters, map(float, errors), strict=True)),
               loglik, 2 * k - 2 * loglik, k * math.log(n) - 2 * loglik)


def _standard_errors(family: Family, natural, months, event) -> np.ndarray:
    """Square roots of the inverse observed information (central-difference Hessian)."""
    theta = np.asarray(natural, float)
    steps = 1e-4 * np.maximum(np.abs(theta), 1e-2)
    k = len(theta)

    def f(point):
        return log_likelihood(family, point, months, event)

    hessian = np.empty((k, k))
    for i in range(k):
        for j in range(i, k):
            ei, ej = np.eye(k)[i] * steps[i], np.eye(k)[j] * steps[j]
            value = (f(theta + ei + ej) - f(theta + ei - ej) - f(theta - ei + ej) + f(theta - ei - ej)) / (4 * steps[i] * steps[j])
            hessian[i, j] = hessian[j, i] = value
    try:
        covariance = np.linalg.inv(-hessian)
    except np.linalg.LinAlgError:
        return np.full(k, np.nan)
    diagonal = np.diag(covariance)
    return np.where(diagonal > 0, np.sqrt(np.abs(diagonal)), np.nan)


def fit_all(months, event) -> list[Fit]:
    """Every family fitted, best (lowest AIC) first."""
    fits = [fit_family(name, months, event) for name in FAMILIES]
    return sorted(fits, key=lambda fit: fit.aic if np.isfinite(fit.aic) else np.inf)


def yaml_block(fit: Fit, key: str, source: str) -> str:
    """A ready-to-paste scenario block `key:` with the fitted distribution and its source line."""
    p = fit.estimates
    def f(name: str) -> str:
        return f"{p[name]:.4g}"

    lines = {
        "exponential": lambda: [f"mean: {f('mean')} months"],
        "weibull": lambda: [f"shape: {f('shape')}", f"scale: {f('scale')} months"],
        "lognormal": lambda: [f"median: {math.exp(p['meanlog']):.4g} months", f"sdlog: {f('sdlog')}"],
        "loglogistic": lambda: [f"shape: {f('shape')}", f"scale: {f('scale')} months"],
        "gompertz": lambda: [f"shape: {f('shape')}  # per month", f"rate: {f('rate')}  # per month"],
        "gamma": lambda: [f"shape: {f('shape')}", f"scale: {f('scale')} months"],
        "gengamma": lambda: [f"mu: {f('mu')}  # log months", f"sigma: {f('sigma')}", f"Q: {f('Q')}"],
    }[fit.family]()
    body = "\n".join(f"  {line}" for line in [f"dist: {fit.family}", *lines])
    return f"{key}:\n{body}\n  source: >-\n    {source}\n"
