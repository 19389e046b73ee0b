"""The survival families (Gompertz, log-logistic, generalised gamma, piecewise exponential)
drawn by both engines: their quantile rules against scipy, and the courses the engines draw
against each family's closed-form mean (4 Monte Carlo SE) and CDF (Kolmogorov-Smirnov).

`tests/scenario_files/survival_families.yaml` makes each episode's length one draw of a course.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from sim import distributions as d
from sim.engine.compiled_model import distribution_table
from sim.loader import load_scenario
from sim.model import compile_model
from sim.rules import durations as q
from sim.runner import simulate

SCENARIO = Path(__file__).parent / "scenario_files" / "survival_families.yaml"
U = np.concatenate([[1e-12, 1e-6, 0.5, 1 - 1e-6], np.random.default_rng(29).random(400)])


def _scipy(dist):
    """The scipy.stats twin of `dist` (Prentice's generalised gamma as scipy's gengamma)."""
    if isinstance(dist, d.Gompertz):
        return stats.gompertz(dist.rate / dist.shape, scale=1 / dist.shape)
    if isinstance(dist, d.LogLogistic):
        return stats.fisk(dist.shape, scale=dist.scale)
    # log T = mu + sigma log(q^2 G) / q, G ~ Gamma(1/q^2): T^(q/sigma) is gamma-distributed.
    return stats.gengamma(1 / dist.q**2, dist.q / dist.sigma, scale=math.exp(dist.mu) * (dist.q**2) ** (dist.sigma / dist.q))


def _packed_quantile(dist, u):
    rows, tables, empirical = distribution_table([dist])
    return np.array([q.quantile(rows, 0, x, tables, empirical) for x in u])


@pytest.mark.parametrize("dist", [d.Gompertz(0.05, 0.03), d.Gompertz(2.0, 0.5), d.LogLogistic(3.5, 14.0),
                                  d.LogLogistic(0.8, 3.0), d.GeneralizedGamma(2.5, 0.6, 0.7),
                                  d.GeneralizedGamma(2.0, 0.8, -0.5), d.GeneralizedGamma(1.0, 1.3, 2.0)],
                         ids=repr)
def test_quantile_rules_match_scipy_ppf(dist):
    expected = _scipy(dist).ppf(U)
    assert np.all(np.abs(_packed_quantile(dist, U) / expected - 1) < 1e-9)


def test_gompertz_and_loglogistic_scalar_rules_match_scipy():
    assert np.allclose([q.gompertz_quantile(x, 0.05, 0.03) for x in U], _scipy(d.Gompertz(0.05, 0.03)).ppf(U),
                       rtol=1e-9, atol=0)
    assert np.allclose([q.loglogistic_quantile(x, 3.5, 14.0) for x in U], stats.fisk(3.5, scale=14.0).ppf(U),
                       rtol=1e-9, atol=0)


@pytest.mark.parametrize("dist", [d.PiecewiseExponential((0.0, 4.0, 12.0), (0.1, 0.03, 0.06)),
                                  d.PiecewiseExponential((0.0, 3.0, 6.0), (0.2, 0.0, 0.05)),
                                  d.PiecewiseExponential((0.0, 6.0), (0.1, 0.0)),
                                  d.Gompertz(-0.1, 0.05), d.GeneralizedGamma(2.0, 0.5, 0.0)], ids=repr)
def test_packed_quantile_equals_the_distribution_ppf(dist):
    """No scipy twin (piecewise exponential), a cured share (infinite times) or Q = 0 (log-normal)."""
    u = np.concatenate([[0.0, 0.999999], U])
    got, expected = _packed_quantile(dist, u), dist.ppf(u)
    assert np.array_equal(np.isinf(got), np.isinf(expected))
    finite = np.isfinite(expected)
    assert np.allclose(got[finite], expected[finite], rtol=1e-9, atol=1e-12)


def test_the_quantile_rules_hold_at_the_ends():
    assert q.gompertz_quantile(0.0, 0.05, 0.03) == 0.0 and q.gompertz_quantile(1.0, 0.05, 0.03) == math.inf
    assert q.loglogistic_quantile(0.0, 2.0, 3.0) == 0.0 and q.loglogistic_quantile(1.0, 2.0, 3.0) == math.inf
    assert q.gengamma_from_gamma(0.0, 1.0, 0.5, 0.7) == 0.0 and q.gengamma_from_gamma(0.0, 1.0, 0.5, -0.7) == math.inf
    zero_first = distribution_table([d.PiecewiseExponential((0.0, 2.0), (0.0, 0.1))])
    assert q.quantile(zero_first[0], 0, 0.0, zero_first[1], zero_first[2]) == 0.0
    assert q.hazard_interval(1.0, 0.0, 4.0, 0.0) == (math.inf, 1.0)
    assert q.hazard_interval(0.2, 4.0, 12.0, 0.1) == pytest.approx((6.0, 0.0))


@pytest.fixture(scope="module")
def courses():
    """The course lengths (months) both engines drew, by strategy, from the one scenario."""
    loaded = load_scenario(str(SCENARIO))
    model = compile_model(loaded.scenario, loaded.name)
    runs = {engine: simulate(model, engine=engine, progress=False) for engine in ("compiled", "des")}
    by_engine = {}
    for engine, run in runs.items():
        episodes = run.episodes
        assert set(episodes["reason"]) == {"remission"} and (episodes["start"] == 0).all()
        by_engine[engine] = {s: g["stop"].to_numpy() for s, g in episodes.groupby("strategy", observed=True)}
    return loaded, model, by_engine


FAMILIES = ["gompertz", "loglogistic", "gengamma", "gengamma_negative", "piecewise"]


@pytest.mark.parametrize("strategy", FAMILIES)
def test_engines_draw_each_family_with_its_mean_and_cdf(strategy, courses):
    _, model, by_engine = courses
    treatment = next(t for t in model.treatments if t.name == f"{strategy}_drug")
    dist = treatment.course
    x = by_engine["compiled"][strategy]
    assert np.array_equal(x, by_engine["des"][strategy])  # the same rules and numbers
    assert len(x) == model.patients
    se = math.sqrt(dist.variance() / len(x))
    assert abs(x.mean() - dist.mean()) < 4 * se
    cdf = _cdf(dist)
    assert stats.kstest(x, cdf).pvalue > 0.001


def _cdf(dist):
    """The CDF of `dist` at times in months."""
    if isinstance(dist, d.PiecewiseExponential):
        starts, rates = np.asarray(dist.starts), np.asarray(dist.rates)
        at_start = np.concatenate([[0.0], np.cumsum(rates[:-1] * np.diff(starts))])

        def cdf(t):
            i = np.searchsorted(starts, t, side="right") - 1
            return -np.expm1(-(at_start[i] + rates[i] * (t - starts[i])))
        return cdf
    return _scipy(dist).cdf


def test_a_psa_of_survival_family_courses_gives_each_sample_its_own_tables(courses):
    """`sim.engine.compiled_model.stack` pools generalised gamma tables and piecewise starts and
    rates across samples: one kernel call gives each sample the tables of its own run."""
    import dataclasses

    from sim.engine import compiled

    _, model, _ = courses
    scaled = [dataclasses.replace(model, seed=model.seed + k, treatments=tuple(
        dataclasses.replace(t, course=_rescaled(t.course, 1.0 + 0.3 * k)) for t in model.treatments))
        for k in range(3)]
    together = compiled.simulate_samples(scaled, replicate=0, first_patient=0, count=200)
    for sample, (records, _) in zip(scaled, together):
        alone, _ = compiled.simulate_chunk(sample, 0, 0, 200)
        for column, values in alone.episodes.items():
            np.testing.assert_array_equal(records.episodes[column], values, err_msg=column)
    assert not np.array_equal(together[0][0].episodes["stop"], together[2][0].episodes["stop"])


def _rescaled(dist, factor):
    """`dist` with other parameter values in the same structure (times about `factor` times as long;
    a generalised gamma also gets another Q, so another gamma table to pool)."""
    if isinstance(dist, d.Gompertz):
        return d.Gompertz(dist.shape / factor, dist.rate / factor)
    if isinstance(dist, d.LogLogistic):
        return d.LogLogistic(dist.shape, dist.scale * factor)
    if isinstance(dist, d.GeneralizedGamma):
        return d.GeneralizedGamma(dist.mu + math.log(factor), dist.sigma, dist.q * factor)
    return d.PiecewiseExponential(tuple(s * factor for s in dist.starts), tuple(r / factor for r in dist.rates))
