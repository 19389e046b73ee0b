"""Times and durations from uniforms: the inverse CDF of each distribution family.

A distribution is one row of a packed table (see `sim.engine.compiled_model`):
(family, a, b, c, d, low, high) with the family's parameters in a..d and the clip
bounds (-inf, inf when not clipped). Gamma quantiles read a cubic table in the normal
score (as `sim.distributions.gamma_quantile`), empirical ones the cumulative weights.
The survival families: Gompertz (shape, rate per month), log-logistic (shape, scale),
generalised gamma (mu, sigma, its gamma table in C, Q; Prentice as flexsurv) and
piecewise exponential (its starts and rates per month where empirical distributions
keep values and weights: C the first position, D the count).
Values are months for times, the covariate's unit for covariates.
"""

from __future__ import annotations

import math

from sim.rules.compile import rule

(FIXED, UNIFORM, EXPONENTIAL, WEIBULL, GAMMA, LOGNORMAL, NORMAL, EMPIRICAL, GOMPERTZ, LOGLOGISTIC, GENGAMMA,
 PIECEWISE_EXPONENTIAL) = range(12)
FAMILY, A, B, C, D, LOW, HIGH = range(7)
WIDTH = 7
Z_LIMIT, Z_STEPS = 8.5, 2048  # the gamma tables span normal scores -8.5 .. 8.5

# Acklam's rational approximation of the normal quantile (relative error 1.2e-9),
# refined by one Halley step to full precision.
_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
      -3.066479806614716e01, 2.506628277459239e00)
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
      -1.328068155288572e01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00,
      4.374664141464968e00, 2.938163982698783e00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
_SQRT2 = math.sqrt(2.0)
_SQRT2PI = math.sqrt(2.0 * math.pi)


@rule
def normal_quantile(u):
    """The standard normal quantile at `u` in (0, 1) (-inf at 0, inf at 1)."""
    if u <= 0.0:
        return -math.inf
    if u >= 1.0:
        return math.inf
    q = u if u < 0.5 else 1.0 - u  # exact for u >= 0.5 (Sterbenz)
    if q < 0.02425:
        r = math.sqrt(-2.0 * math.log(q))
        x = (((((_C[0] * r + _C[1]) * r + _C[2]) * r + _C[3]) * r + _C[4]) * r + _C[5]) / (
            (((_D[0] * r + _D[1]) * r + _D[2]) * r + _D[3]) * r + 1.0)
    else:
        t = q - 0.5
        r = t * t
        x = (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * t / (
            ((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0)
    e = 0.5 * math.erfc(-x / _SQRT2) - q
    step = e * _SQRT2PI * math.exp(0.5 * x * x)
    x = x - step / (1.0 + 0.5 * x * step)
    return x if u < 0.5 else -x


@rule
def normal_cdf(x):
    """The standard normal CDF at `x`."""
    return 0.5 * math.erfc(-x / _SQRT2)


@rule
def gamma_position(u):
    """Where uniform `u` falls in a gamma cubic table: (knot, t) with t in [0, 1) the position
    between knot and knot + 1; knot -1 when u <= 0 (quantile 0), -2 when u >= 1 (quantile inf)."""
    if u <= 0.0:
        return -1, 0.0
    if u >= 1.0:
        return -2, 0.0
    return gamma_score_position(normal_quantile(u))


@rule
def gamma_score_position(z):
    """`gamma_position` at the normal score `z` = ndtri(u) (-inf: knot -1, inf: knot -2)."""
    if z == -math.inf:
        return -1, 0.0
    if z == math.inf:
        return -2, 0.0
    step = 2.0 * Z_LIMIT / Z_STEPS
    x = (z + Z_LIMIT) / step
    x = min(max(x, 0.0), Z_STEPS - 1e-9)
    knot = int(x)
    return knot, x - knot


@rule
def gamma_cubic(knot, t, y0, m0, c2, c3):
    """The standard gamma quantile at position (knot, t) of `gamma_position` from the knot's
    cubic coefficients (y0, m0, c2, c3) of log(quantile)."""
    if knot == -1:
        return 0.0
    if knot == -2:
        return math.inf
    return math.exp(((c3 * t + c2) * t + m0) * t + y0)


@rule
def gamma_standard_quantile(tables, k, u):
    """The standard gamma quantile (scale 1) at `u` from the k-th cubic table (4 x Z_STEPS) in z = ndtri(u)."""
    knot, t = gamma_position(u)
    if knot < 0:
        return gamma_cubic(knot, t, 0.0, 0.0, 0.0, 0.0)
    return gamma_cubic(knot, t, tables[k, 0, knot], tables[k, 1, knot], tables[k, 2, knot], tables[k, 3, knot])


@rule
def gompertz_quantile(u, shape, rate):
    """Months at which a Gompertz S(t) = exp(-rate/shape (e^(shape t) - 1)) falls to 1 - u (shape,
    rate per month); infinite for the cured share a negative shape leaves."""
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


@rule
def loglogistic_quantile(u, shape, scale):
    """Months at which a log-logistic S(t) = 1 / (1 + (t/scale)^shape) falls to 1 - u."""
    if u <= 0.0:
        return 0.0
    if u >= 1.0:
        return math.inf
    return scale * math.exp((math.log(u) - math.log1p(-u)) / shape)


@rule
def gengamma_score(u, q):
    """The normal score at which the standard gamma table of shape 1/q^2 is read for a generalised
    gamma's quantile at `u` (q != 0): ndtri(u) when q > 0, ndtri(1 - u) = -ndtri(u) when q < 0 (the
    time falls as the gamma draw grows; mirrored, the lower tail keeps its digits)."""
    z = normal_quantile(u)
    return z if q > 0.0 else -z


@rule
def gengamma_from_gamma(g, mu, sigma, q):
    """Months of a generalised gamma (Prentice: log T = mu + sigma log(q^2 G) / q, q != 0) whose
    standard gamma draw of shape 1/q^2 is `g` (0 and inf map to the ends)."""
    if g <= 0.0:
        return 0.0 if q > 0.0 else math.inf
    if g == math.inf:
        return math.inf if q > 0.0 else 0.0
    return math.exp(mu + sigma * math.log(g * q * q) / q)


@rule
def hazard_interval(remaining, start, end, rate):
    """One interval [start, end) months of constant hazard `rate` per month: (months at which the
    cumulative hazard `remaining` is used up, 0) if within it, else (inf, what is left after it)."""
    if rate > 0.0:
        used = rate * (end - start)
        if remaining <= used:
            return start + remaining / rate, 0.0
        return math.inf, remaining - used
    return math.inf, remaining


@rule
def closed_form_quantile(family, a, b, c, u, low, high):
    """The value at uniform `u` of a distribution of a family with a closed-form quantile (all but
    GAMMA, EMPIRICAL, GENGAMMA and PIECEWISE_EXPONENTIAL), parameters a, b, c of its row, clipped
    to [low, high]."""
    if family == FIXED:
        x = a
    elif family == UNIFORM:
        x = a + u * (b - a)
    elif family == EXPONENTIAL:
        x = -a * math.log1p(-u)
    elif family == WEIBULL:
        x = b * (-math.log1p(-u)) ** (1.0 / a)
    elif family == LOGNORMAL:
        x = math.exp(a + b * normal_quantile(u))
    elif family == GOMPERTZ:
        x = gompertz_quantile(u, a, b)
    elif family == LOGLOGISTIC:
        x = loglogistic_quantile(u, a, b)
    else:  # NORMAL, truncated at zero: c is the mass below zero
        x = max(a + b * normal_quantile(c + u * (1.0 - c)), 0.0)
    return min(max(x, low), high)


@rule(inline=True)
def quantile(distributions, index, u, gamma_tables, empirical):
    """The value at uniform `u` of distribution `index` of the packed table `distributions`.

    `gamma_tables[k]` is the cubic table of the k-th gamma shape (parameter C of a gamma or
    generalised gamma row), `empirical[0]` the values and `empirical[1]` the cumulative weights
    of the empirical distributions, or the starts and rates of piecewise exponential ones (a
    row's C is the first position, D the count).
    """
    # Scalar reads: a row slice would count a reference to the table at each call.
    family = int(distributions[index, FAMILY])
    low, high = distributions[index, LOW], distributions[index, HIGH]
    if family == GAMMA:
        x = gamma_standard_quantile(gamma_tables, int(distributions[index, C]), u) * distributions[index, B]
    elif family == EMPIRICAL:
        first, count = int(distributions[index, C]), int(distributions[index, D])
        k = first
        last = first + count - 1
        while k < last and empirical[1, k] <= u:
            k += 1
        x = empirical[0, k]
    elif family == GENGAMMA:
        q, k = distributions[index, D], int(distributions[index, C])
        knot, t = gamma_score_position(gengamma_score(u, q))
        if knot < 0:
            g = gamma_cubic(knot, t, 0.0, 0.0, 0.0, 0.0)
        else:
            g = gamma_cubic(knot, t, gamma_tables[k, 0, knot], gamma_tables[k, 1, knot], gamma_tables[k, 2, knot],
                            gamma_tables[k, 3, knot])
        x = gengamma_from_gamma(g, distributions[index, A], distributions[index, B], q)
    elif family == PIECEWISE_EXPONENTIAL:
        first, count = int(distributions[index, C]), int(distributions[index, D])
        remaining, x = -math.log1p(-u), 0.0 if u <= 0.0 else math.inf
        for k in range(first, first + count if u > 0.0 else first):
            end = empirical[0, k + 1] if k + 1 < first + count else math.inf
            x, remaining = hazard_interval(remaining, empirical[0, k], end, empirical[1, k])
            if x < math.inf:
                break
    else:
        return closed_form_quantile(family, distributions[index, A], distributions[index, B], distributions[index, C],
                                    u, low, high)
    return min(max(x, low), high)


@rule(inline=True)
def is_fixed(distributions, index):
    """Whether distribution `index` always gives the same value (no uniform needed)."""
    return int(distributions[index, FAMILY]) == FIXED or distributions[index, LOW] == distributions[index, HIGH]
