"""PSA draws against their closed forms: Beta from counts, Dirichlet fates, declared
distributions and correlations, each within 4 Monte Carlo standard errors."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from scipy import special, stats

from sim.app.sweep.plan import load_sweep

SAMPLES = 4000


@pytest.fixture(scope="module")
def adult_psa(tmp_path_factory):
    path = tmp_path_factory.mktemp("psa") / "psa.yaml"
    path.write_text(textwrap.dedent("""
        base: adult_conventional_bordeaux
        psa:
          samples: 2
          parameters:
            relapse.time.mean: {dist: gamma, mean: 22.7 months, sd: 6.71 months}
            loss_to_followup.mean: {dist: lognormal, median: 600 months, sdlog: 0.5}
            treatments.cyclosporine.loss_of_response.mean: {dist: uniform, low: 120, high: 480}
          correlations:
            - {parameters: [treatments.cyclosporine.response, treatments.methotrexate.response], rho: 0.6}
        seed: 11
    """), encoding="utf-8")
    plan = load_sweep(path)
    # Sample k depends on k alone, so many samples can be drawn without planning as many tasks.
    values = [plan.design.values(k) for k in range(SAMPLES)]
    return plan, {column: np.array([v[column] for v in values]) for column in values[0]}


def within_mc_error(draws: np.ndarray, mean: float, variance: float) -> None:
    n = len(draws)
    assert abs(draws.mean() - mean) < 4 * np.sqrt(variance / n), (draws.mean(), mean)
    fourth = np.mean((draws - draws.mean()) ** 4)
    assert abs(draws.var(ddof=1) - variance) < 4 * np.sqrt((fourth - variance**2) / n), (draws.var(), variance)


def beta_moments(a: float, b: float) -> tuple[float, float]:
    return a / (a + b), a * b / ((a + b) ** 2 * (a + b + 1))


def test_every_count_is_drawn_from_its_jeffreys_beta(adult_psa):
    plan, draws = adult_psa
    counted = [d for d in plan.design.draws if d.origin == "counts"]
    assert len(counted) >= 25
    for draw in counted:
        node = plan.document
        for key in draw.parameter.path:
            node = node[key]
        a, b = node["events"] + 0.5, node["n"] - node["events"] + 0.5
        assert draw.family == "beta" and draw.arguments == (a, b)
        within_mc_error(draws[draw.parameter.column], *beta_moments(a, b))


def test_response_to_cyclosporine_has_the_bordeaux_posterior(adult_psa):
    _, draws = adult_psa
    within_mc_error(draws["treatments.cyclosporine.response"], *beta_moments(27.5, 14.5))


def test_fates_are_dirichlet_and_sum_to_one(adult_psa):
    plan, draws = adult_psa
    fates = {s.parameter.text: s for s in plan.design.shares}
    cyclosporine = fates["treatments.cyclosporine.end_of_course"]
    assert cyclosporine.parts == ("remission", "switch", "continue") and cyclosporine.alpha == (23.5, 3.5, 1.5)
    for shares in plan.design.shares:
        parts = np.column_stack([draws[c] for c in shares.columns()])
        assert np.allclose(parts.sum(axis=1), 1.0, atol=1e-12)
        assert (parts >= 0).all()
        total = sum(shares.alpha)
        for column, alpha in zip(shares.columns(), shares.alpha):
            # each part of a Dirichlet is Beta(alpha_i, total - alpha_i)
            within_mc_error(draws[column], *beta_moments(alpha, total - alpha))


def test_declared_distributions_have_their_moments(adult_psa):
    _, draws = adult_psa
    within_mc_error(draws["relapse.time.mean_months"], 22.7, 6.71**2)
    lognormal = draws["loss_to_followup.mean_months"]
    mean, variance = np.exp(np.log(600) + 0.125), (np.exp(0.25) - 1) * np.exp(2 * np.log(600) + 0.25)
    within_mc_error(lognormal, mean, variance)
    within_mc_error(draws["treatments.cyclosporine.loss_of_response.mean_months"], 300.0, 360.0**2 / 12)


def test_correlated_draws_have_the_declared_normal_score_correlation(adult_psa):
    _, draws = adult_psa
    scores = [special.ndtri(stats.beta.cdf(draws[f"treatments.{drug}.response"], a, b))
              for drug, a, b in (("cyclosporine", 27.5, 14.5), ("methotrexate", 15.5, 12.5))]
    rho = np.corrcoef(*scores)[0, 1]
    assert abs(rho - 0.6) < 4 * (1 - 0.6**2) / np.sqrt(SAMPLES)
    uncorrelated = special.ndtri(stats.beta.cdf(draws["treatments.azathioprine.response"], 6.5, 10.5))
    assert abs(np.corrcoef(scores[0], uncorrelated)[0, 1]) < 4 / np.sqrt(SAMPLES)


def test_drawn_values_reach_the_compiled_model(adult_psa):
    plan, draws = adult_psa
    task = next(t for t in plan.tasks if t.sample == 1)
    model = plan.model(task)
    cyclosporine = next(t for t in model.treatments if t.name == "cyclosporine")
    assert cyclosporine.response_probability == pytest.approx(draws["treatments.cyclosporine.response"][1])
    assert cyclosporine.fates == pytest.approx(
        [draws[f"treatments.cyclosporine.end_of_course.{part}"][1] for part in ("remission", "switch", "continue")])


def test_one_observation_written_for_several_states_is_one_draw(tmp_path):
    path = tmp_path / "modern.yaml"
    path.write_text("base: modern_adult\npsa: {samples: 3}\n", encoding="utf-8")
    plan = load_sweep(path)
    rates = next(d for d in plan.design.draws if d.parameter.text.startswith("rescue.flare_rate"))
    assert rates.family == "gamma" and rates.arguments == pytest.approx((12.5, 1 / 75))
    assert len(rates.parameters) == 4
    values = plan.design.values(1)
    assert len({values[p.column] for p in rates.parameters}) == 1


def test_excluded_and_varied_parameters_are_not_drawn(tmp_path):
    path = tmp_path / "held.yaml"
    path.write_text(textwrap.dedent("""
        base: adult_conventional_bordeaux
        vary: {treatments.cyclosporine.response: [0.5]}
        psa: {samples: 2, exclude: [population]}
    """), encoding="utf-8")
    drawn = {p.text for d in load_sweep(path).design.draws for p in d.parameters}
    assert "treatments.cyclosporine.response" not in drawn
    assert not any(text.startswith("population") for text in drawn)
    assert "treatments.methotrexate.response" in drawn
