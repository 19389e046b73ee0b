"""Each distribution's samples against its closed-form mean and variance (4 Monte Carlo SE)."""

import math

import numpy as np
import pytest

from sim import distributions as d
from sim.model import distribution
from sim.schema import DistributionSpec

N = 200_000

CASES = [
    d.Fixed(2.0),
    d.Uniform(3.0, 6.0),
    d.Exponential(12.0),
    d.Weibull(1.5, 20.0),
    d.Weibull(0.7, 5.0),
    d.Gamma(5.6, 7.5),
    d.LogNormal(math.log(41.0), 0.829),
    d.TruncatedNormal(42.5, 17.9),
    d.TruncatedNormal(5.0, 10.0),
    d.Empirical((1.0, 2.0, 10.0), (1.0, 1.0, 2.0)),
    d.Clipped(d.TruncatedNormal(34.9, 12.0), 18.0, 76.0),
]


@pytest.mark.parametrize("dist", CASES, ids=lambda c: type(c).__name__)
def test_sample_mean_and_variance_match_closed_form(dist):
    x = dist.ppf(np.random.default_rng(7).random(N))
    mean, var = dist.mean(), dist.variance()
    if var == 0:
        assert np.all(x == mean)
        return
    se_mean = math.sqrt(var / N)
    centred = (x - x.mean()) ** 2
    se_var = centred.std() / math.sqrt(N)
    assert abs(x.mean() - mean) < 4 * se_mean
    assert abs(x.var() - var) < 4 * se_var
    assert np.all(x >= 0)


def test_truncated_normal_mean_exceeds_mu_when_truncation_bites():
    assert d.TruncatedNormal(5.0, 10.0).mean() > 5.0 + 3.0


@pytest.mark.parametrize(
    ("spec", "mean", "sd"),
    [
        ({"dist": "gamma", "mean": "42.5 months", "sd": "17.9 months"}, 42.5, 17.9),
        ({"dist": "lognormal", "mean": 19.1, "sd": 26.6}, 19.1, 26.6),
        ({"dist": "lognormal", "median": "41 months", "sdlog": 0.829}, 41 * math.exp(0.829**2 / 2), None),
        ({"dist": "weibull", "shape": 1.0, "scale": "2 years"}, 24.0, 24.0),
        ({"dist": "uniform", "low": "6 weeks", "high": "12 weeks"}, 9 * 7 / 30.4375, None),
    ],
)
def test_yaml_parameter_forms_compile_to_the_stated_moments(spec, mean, sd):
    compiled = distribution(DistributionSpec.model_validate(spec))
    assert compiled.mean() == pytest.approx(mean, rel=1e-9)
    if sd is not None:
        assert math.sqrt(compiled.variance()) == pytest.approx(sd, rel=1e-9)


def test_inverse_cdf_is_monotone():
    u = np.linspace(0.001, 0.999, 500)
    for dist in CASES:
        assert np.all(np.diff(dist.ppf(u)) >= 0)


@pytest.mark.parametrize("shape", [0.2, 0.52, 1.0, 2.14, 5.6, 40.0, 250.0])
def test_gamma_quantile_matches_scipy_to_1e10(shape):
    from scipy import special

    u = np.concatenate([np.random.default_rng(11).random(200_000), 2.0 ** -np.arange(1, 54),
                        1 - 2.0 ** -np.arange(1, 54)])
    fast, exact = d.gamma_quantile(shape, u), special.gammaincinv(shape, u)
    assert np.all(np.abs(fast / exact - 1) < 1e-10)
    assert np.all(np.diff(d.gamma_quantile(shape, np.linspace(1e-9, 1 - 1e-9, 100_001))) >= 0)


def test_gamma_quantile_ends_and_shapes_beyond_the_table():
    assert d.gamma_quantile(2.0, np.array([0.0]))[0] == 0.0
    assert d.gamma_quantile(2.0, np.array([1.0]))[0] == math.inf
    # A tiny shape underflows the table's lower knots: the exact function takes over.
    from scipy import special
    u = np.array([0.3, 0.7])
    assert np.array_equal(d.gamma_quantile(0.002, u), special.gammaincinv(0.002, u))
