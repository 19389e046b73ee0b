"""EVPPI by regression against cases with a known answer.

With NMB_1 = 0 and NMB_2 = c (phi + noise), phi ~ N(mu, s^2), learning phi is worth
c (mu Phi(mu/s) + s phi(mu/s) - max(0, mu)) per patient: the expected value of the
better choice made knowing phi, less the value of the choice made on the mean. The
tolerance is 4 Monte Carlo standard errors of the mean of max(0, c phi) over the samples.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from analysis.evppi import evppi, evppi_curve, penalised_spline

N, MU, S, SCALE = 2000, 0.2, 1.0, 1000.0


def known_value(mean: float, sd: float) -> float:
    """EVPPI of learning x ~ N(mean, sd^2) exactly when the choice is max(0, SCALE x)."""
    return SCALE * (mean * stats.norm.cdf(mean / sd) + sd * stats.norm.pdf(mean / sd) - max(0.0, mean))


def tolerance(x: np.ndarray) -> float:
    return 4 * np.std(np.maximum(0.0, SCALE * x)) / np.sqrt(len(x))


@pytest.fixture(scope="module")
def draws():
    rng = np.random.default_rng(20261203)
    return {name: rng.normal(MU, S, N) for name in ("phi", "psi", "unrelated", "unrelated_2")} | {
        "noise": rng.normal(0.0, 2.0, N)}


def test_a_single_parameter_has_its_closed_form_value(draws):
    net_benefit = np.c_[np.zeros(N), SCALE * (draws["phi"] + draws["noise"])]
    assert abs(evppi(net_benefit, draws["phi"]) - known_value(MU, S)) < tolerance(draws["phi"])


def test_a_parameter_that_decides_everything_is_worth_the_evpi(draws):
    net_benefit = np.c_[np.zeros(N), SCALE * draws["phi"]]
    evpi = np.mean(net_benefit.max(axis=1)) - net_benefit.mean(axis=0).max()
    assert evppi(net_benefit, draws["phi"]) == pytest.approx(evpi, rel=1e-6)


def test_an_irrelevant_parameter_is_worth_about_nothing(draws):
    net_benefit = np.c_[np.zeros(N), SCALE * (draws["phi"] + draws["noise"])]
    assert evppi(net_benefit, draws["unrelated"]) < 0.05 * known_value(MU, S)
    assert evppi(net_benefit, np.c_[draws["unrelated"], draws["unrelated_2"]]) < 0.05 * known_value(MU, S)


def test_a_group_learnt_together_has_its_closed_form_value(draws):
    total = draws["phi"] + draws["psi"]
    net_benefit = np.c_[np.zeros(N), SCALE * (total + draws["noise"])]
    value = evppi(net_benefit, np.c_[draws["phi"], draws["psi"]])
    assert abs(value - known_value(2 * MU, np.sqrt(2) * S)) < tolerance(total)
    # One member of the group alone: the other stays at its mean.
    alone = evppi(net_benefit, draws["phi"])
    assert abs(alone - known_value(2 * MU, S)) < tolerance(draws["phi"] + MU)
    assert alone < value


def test_which_strategy_is_the_reference_does_not_matter(draws):
    net_benefit = np.c_[SCALE * (draws["phi"] + draws["noise"]), np.zeros(N), np.full(N, -50.0)]
    swapped = net_benefit[:, [1, 0, 2]]
    assert evppi(net_benefit, draws["phi"]) == pytest.approx(evppi(swapped, draws["phi"]), rel=1e-9)


def test_a_parameter_that_does_not_vary_is_worth_nothing(draws):
    net_benefit = np.c_[np.zeros(N), SCALE * draws["phi"]]
    assert evppi(net_benefit, np.full(N, 3.0)) == 0.0


def test_the_spline_follows_a_curve_and_a_discrete_parameter():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 2 * np.pi, 1500)
    fitted = penalised_spline(x, np.sin(x) + rng.normal(0, 0.3, len(x)))
    assert np.sqrt(np.mean((fitted - np.sin(x)) ** 2)) < 0.05
    levels = rng.integers(0, 3, 900).astype(float)
    means = penalised_spline(levels, levels * 2 + rng.normal(0, 0.1, 900))
    assert np.allclose(np.unique(np.round(means, 1)), [0.0, 2.0, 4.0], atol=0.05)


def test_the_curve_over_willingness_to_pay_matches_one_regression_per_threshold(draws):
    rng = np.random.default_rng(11)
    costs = np.c_[np.full(N, 100.0), 300 + 200 * draws["phi"] + rng.normal(0, 100, N)]
    effects = np.c_[np.zeros(N), 0.01 + 0.01 * draws["phi"] + rng.normal(0, 0.01, N)]
    thresholds = [10_000.0, 40_000.0]  # at 20,000 phi cancels out of the increment
    curve = evppi_curve(costs, effects, draws["phi"], thresholds)
    one_by_one = [evppi(w * effects - costs, draws["phi"]) for w in thresholds]
    assert curve == pytest.approx(one_by_one, rel=0.05, abs=1.0)
    assert np.all(curve > 0)
