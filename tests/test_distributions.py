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


SURVIVAL_FAMILIES = [
    d.Gompertz(0.05, 0.03),
    d.Gompertz(0.0, 0.1),
    d.LogLogistic(3.5, 14.0),
    d.GeneralizedGamma(2.5, 0.6, 0.7),
    d.GeneralizedGamma(2.0, 0.8, -0.5),
    d.GeneralizedGamma(2.0, 0.5, 0.0),
    d.PiecewiseExponential((0.0, 4.0, 12.0), (0.1, 0.03, 0.06)),
    d.PiecewiseExponential((0.0, 3.0, 6.0), (0.2, 0.0, 0.05)),
]


@pytest.mark.parametrize("dist", SURVIVAL_FAMILIES, ids=lambda c: type(c).__name__)
def test_survival_families_samples_match_closed_form(dist):
    test_sample_mean_and_variance_match_closed_form(dist)


@pytest.mark.parametrize("dist", SURVIVAL_FAMILIES, ids=lambda c: type(c).__name__)
def test_survival_families_closed_forms_match_numerical_integration(dist):
    from scipy import integrate

    def quantile(u):
        return float(dist.ppf(np.array([u]))[0])

    mean, _ = integrate.quad(quantile, 0, 1, limit=400)
    second, _ = integrate.quad(lambda u: quantile(u) ** 2, 0, 1, limit=400)
    assert dist.mean() == pytest.approx(mean, rel=1e-6)
    assert dist.variance() == pytest.approx(second - mean**2, rel=1e-5)


@pytest.mark.parametrize("dist", SURVIVAL_FAMILIES, ids=lambda c: type(c).__name__)
def test_scalar_quantiles_equal_the_vectorised_ones(dist):
    scalar = {d.Gompertz: lambda u: d.gompertz_quantile(u, dist.shape, dist.rate),
              d.LogLogistic: lambda u: d.loglogistic_quantile(u, dist.shape, dist.scale),
              d.GeneralizedGamma: lambda u: d.generalized_gamma_quantile(u, dist.mu, dist.sigma, dist.q),
              d.PiecewiseExponential: lambda u: d.piecewise_exponential_quantile(u, dist.starts, dist.rates)}[type(dist)]
    u = np.concatenate([[0.0, 1e-12], np.random.default_rng(3).random(2000), [1 - 1e-12]])
    assert np.allclose([scalar(x) for x in u], dist.ppf(u), rtol=1e-9, atol=0)
    assert np.all(np.diff(dist.ppf(np.sort(u))) >= 0)


def test_generalized_gamma_special_cases_are_weibull_lognormal_and_gamma():
    u = np.linspace(0.01, 0.99, 99)
    # q = 1: Weibull with shape 1/sigma, scale e^mu; q = sigma: gamma with shape 1/q^2, scale e^mu q^2.
    assert np.allclose(d.GeneralizedGamma(2.0, 0.5, 1.0).ppf(u), d.Weibull(2.0, math.exp(2.0)).ppf(u))
    assert np.allclose(d.GeneralizedGamma(2.0, 0.5, 0.5).ppf(u), d.Gamma(4.0, math.exp(2.0) / 4).ppf(u))
    assert np.allclose(d.GeneralizedGamma(2.0, 0.5, 1e-9).ppf(u), d.LogNormal(2.0, 0.5).ppf(u), rtol=1e-6)


@pytest.mark.parametrize("dist", [d.Gompertz(-0.1, 0.05), d.PiecewiseExponential((0.0, 6.0), (0.1, 0.0))],
                         ids=lambda c: type(c).__name__)
def test_cured_share_never_ends_and_has_the_stated_size(dist):
    cured = math.exp(0.05 / -0.1) if isinstance(dist, d.Gompertz) else math.exp(-0.6)
    x = dist.ppf(np.random.default_rng(5).random(N))
    share = np.mean(np.isinf(x))
    assert abs(share - cured) < 4 * math.sqrt(cured * (1 - cured) / N)
    assert dist.mean() == math.inf and np.all(x[np.isfinite(x)] >= 0)


@pytest.mark.parametrize(
    ("spec", "mean"),
    [
        ({"dist": "gompertz", "shape": 0.0, "rate": 0.1}, 10.0),
        ({"dist": "loglogistic", "shape": 2.0, "scale": "1 year"}, 12 * math.pi / 2),
        ({"dist": "gengamma", "mu": 1.0, "sigma": 0.5, "Q": 0.0}, math.exp(1.125)),
        ({"dist": "piecewise_exponential", "starts": [0, "1 year"], "rates": [0.0, 0.5]}, 14.0),
    ],
)
def test_survival_families_in_yaml(spec, mean):
    assert distribution(DistributionSpec.model_validate(spec)).mean() == pytest.approx(mean, rel=1e-9)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"dist": "loglogistic", "shape": -1.0, "scale": 3}, "shape must be > 0"),
        ({"dist": "gompertz", "shape": 0.1}, "takes shape, rate"),
        ({"dist": "gengamma", "mu": 1.0, "sigma": 0.0, "Q": 1.0}, "greater than 0"),
        ({"dist": "piecewise_exponential", "starts": [1, 2], "rates": [0.1, 0.2]}, "must begin at 0"),
        ({"dist": "piecewise_exponential", "starts": [0, 2], "rates": [0.1]}, "one rate per start"),
        ({"dist": "piecewise_exponential", "starts": [0, 2, 2], "rates": [0.1, 0.1, 0.1]}, "must increase"),
    ],
)
def test_bad_survival_parameters_are_refused_with_one_message(spec, message):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        DistributionSpec.model_validate(spec)


def test_both_engines_run_the_survival_families_with_identical_tables():
    """Scenarios with curves fitted by `adpath fit` run: both engines draw Gompertz (with a cured
    share), generalised gamma, piecewise exponential and log-logistic courses with the rules of
    `sim.rules.durations`, to the same tables (draws against the closed forms:
    `tests/test_survival_family_draws.py`)."""
    import pandas as pd

    from sim.loader import load_scenario
    from sim.model import compile_model
    from sim.runner import simulate

    overrides = {"settings.patients": 600, "settings.replicates": 1,
                 "treatments.cyclosporine.course": {"dist": "gompertz", "shape": -0.05, "rate": 0.04},
                 "treatments.methotrexate.course": {"dist": "gengamma", "mu": 2.5, "sigma": 0.7, "Q": 0.6},
                 "treatments.azathioprine.course": {"dist": "piecewise_exponential", "starts": [0, "6 months"],
                                                    "rates": [0.1, 0.02]},
                 "treatments.mtx_aza.course": {"dist": "loglogistic", "shape": 1.8, "scale": "10 months"}}
    loaded = load_scenario("adult_conventional", overrides)
    model = compile_model(loaded.scenario, loaded.name)
    assert {type(t.course) for t in model.treatments} == {d.Gompertz, d.GeneralizedGamma, d.PiecewiseExponential,
                                                         d.LogLogistic}
    runs = [simulate(model, engine=engine, progress=False) for engine in ("des", "compiled")]
    for table in ("episodes", "patients", "adverse_events", "bursts"):
        pd.testing.assert_frame_equal(getattr(runs[0], table), getattr(runs[1], table), check_exact=True)
    assert set(runs[0].episodes["treatment"]) >= {"cyclosporine", "methotrexate"}


def test_a_gengamma_whose_gamma_cannot_be_tabulated_is_refused_clearly():
    from sim.engine.compiled_model import UnsupportedFeature, distribution_table

    with pytest.raises(UnsupportedFeature, match="cannot draw from a gengamma of Q 5: .* refit with another family"):
        distribution_table([d.GeneralizedGamma(2.0, 0.5, 5.0)])


def test_a_gengamma_with_q_next_to_zero_is_drawn_as_its_log_normal_limit():
    from sim.engine.compiled_model import distribution_table
    from sim.rules import durations as q

    rows, tables, empirical = distribution_table([d.GeneralizedGamma(2.0, 0.5, 1e-12)])
    assert rows[0, 0] == q.LOGNORMAL
    assert q.quantile(rows, 0, 0.3, tables, empirical) == pytest.approx(float(d.LogNormal(2.0, 0.5).ppf(0.3)),
                                                                        rel=1e-12)
