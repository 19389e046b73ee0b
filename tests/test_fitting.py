"""Guyot reconstruction and maximum-likelihood fits on data generated with known parameters."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from analysis.fitting import FAMILIES, fit_all, fit_family
from analysis.reconstruction import guyot, km_at, km_steps
from sim import distributions as d
from sim.app.cli import main
from sim.model import distribution
from sim.schema import DistributionSpec

EXAMPLE = Path(__file__).resolve().parents[1] / "scenarios" / "fits" / "example_weibull_generated.csv"

TRUTH = {
    "exponential": ((15.0,), lambda p: d.Exponential(*p)),
    "weibull": ((1.4, 18.0), lambda p: d.Weibull(*p)),
    "lognormal": ((2.6, 0.9), lambda p: d.LogNormal(*p)),
    "loglogistic": ((2.2, 12.0), lambda p: d.LogLogistic(*p)),
    "gompertz": ((0.04, 0.03), lambda p: d.Gompertz(*p)),
    "gamma": ((2.0, 7.0), lambda p: d.Gamma(*p)),
    "gengamma": ((2.6, 0.6, 0.6), lambda p: d.GeneralizedGamma(*p)),
}


def censored_sample(dist, n=500, seed=3, follow_up=60.0):
    rng = np.random.default_rng(seed)
    t = dist.ppf(rng.random(n))
    c = rng.uniform(follow_up / 4, follow_up, n)
    return np.minimum(t, c), t <= c


@pytest.mark.parametrize("family", sorted(TRUTH))
def test_fitting_survival_is_the_simulators_distribution(family):
    # The likelihood's S(t) at the simulator's quantile u must be 1 - u: one parametrisation.
    params, make = TRUTH[family]
    u = np.linspace(0.02, 0.98, 49)
    t = make(params).ppf(u)
    assert np.allclose(np.exp(FAMILIES[family].logsf(t, *params)), 1 - u, atol=1e-9)
    density = np.exp(FAMILIES[family].logpdf(t, *params))
    h = 1e-5 * t
    numeric = (np.exp(FAMILIES[family].logsf(t - h, *params)) - np.exp(FAMILIES[family].logsf(t + h, *params))) / (2 * h)
    assert np.allclose(density, numeric, rtol=1e-6)


@pytest.mark.parametrize("family", sorted(TRUTH))
def test_fits_recover_known_parameters_within_4_se(family):
    params, make = TRUTH[family]
    months, event = censored_sample(make(params))
    fit = fit_family(family, months, event)
    for name, true in zip(FAMILIES[family].parameters, params, strict=True):
        assert abs(fit.estimates[name] - true) < 4 * fit.standard_errors[name], (name, fit)


LIFELINES = {  # our parameter -> lifelines' (fitter, attribute, transform)
    "weibull": ("WeibullFitter", {"shape": ("rho_", float), "scale": ("lambda_", float)}),
    "loglogistic": ("LogLogisticFitter", {"shape": ("beta_", float), "scale": ("alpha_", float)}),
    "lognormal": ("LogNormalFitter", {"meanlog": ("mu_", float), "sdlog": ("sigma_", float)}),
    "gengamma": ("GeneralizedGammaFitter", {"mu": ("mu_", float), "sigma": ("ln_sigma_", math.exp),
                                            "Q": ("lambda_", float)}),
}


@pytest.mark.parametrize("family", sorted(LIFELINES))
def test_fits_agree_with_lifelines_whose_parametrisations_are_ours(family):
    lifelines = pytest.importorskip("lifelines")
    params, make = TRUTH[family]
    months, event = censored_sample(make(params))
    ours = fit_family(family, months, event)
    fitter_name, names = LIFELINES[family]
    theirs = getattr(lifelines, fitter_name)().fit(months, event)
    for name, (attribute, transform) in names.items():
        assert ours.estimates[name] == pytest.approx(transform(theirs.params_[attribute]), rel=1e-3, abs=1e-4)
    assert ours.log_likelihood == pytest.approx(theirs.log_likelihood_, rel=1e-6)


def _published(dist, n=300, seed=11):
    months, event = censored_sample(dist, n=n, seed=seed, follow_up=48.0)
    times, survival = km_steps(months, event)
    risk = np.arange(0, 48, 6.0)
    return months, event, times, survival, risk, np.array([(months >= x).sum() for x in risk])


def test_guyot_rebuilds_the_kaplan_meier_curve_and_the_risk_table():
    months, event, times, survival, risk, at_risk = _published(d.Weibull(1.2, 20.0))
    rebuilt = guyot(times, np.round(survival, 4), risk, at_risk)
    assert len(rebuilt.months) == len(months)
    again_t, again_s = km_steps(rebuilt.months, rebuilt.event)
    grid = np.linspace(0, times.max(), 500)
    assert np.max(np.abs(km_at(times, survival, grid) - km_at(again_t, again_s, grid))) < 0.02
    rebuilt_at_risk = np.array([(rebuilt.months >= x).sum() for x in risk])
    assert np.all(np.abs(rebuilt_at_risk[:-1] - at_risk[:-1]) <= 2)


def test_fits_to_rebuilt_data_recover_the_parameters():
    truth = (1.2, 20.0)
    *_, times, survival, risk, at_risk = _published(d.Weibull(*truth), n=400)
    rebuilt = guyot(times, survival, risk, at_risk)
    fit = fit_family("weibull", rebuilt.months, rebuilt.event)
    assert abs(fit.estimates["shape"] - truth[0]) < 4 * fit.standard_errors["shape"]
    assert abs(fit.estimates["scale"] - truth[1]) < 4 * fit.standard_errors["scale"]
    assert [f.aic for f in fit_all(rebuilt.months, rebuilt.event)] == sorted(f.aic for f in fit_all(rebuilt.months, rebuilt.event))


def test_cli_fits_the_bundled_example_and_writes_a_valid_yaml_block(tmp_path):
    out = tmp_path / "fit.yaml"
    result = CliRunner().invoke(main, ["fit", str(EXAMPLE), "--as", "loss_of_response", "--at", "6,12,24", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "AIC" in result.output and "published" in result.output
    block = yaml.safe_load(out.read_text())["loss_of_response"]
    assert "Guyot" in block["source"] and EXAMPLE.name in block["source"]
    spec = DistributionSpec.model_validate(block)
    assert math.isfinite(distribution(spec).ppf(np.array([0.5]))[0])


@pytest.mark.parametrize(("content", "message"), [
    ("months,survival\n0,1\n", "header must name time_months"),
    ("time_months,survival,n_at_risk\n0,1,100\n6,80,\n", "proportion between 0 and 1"),
    ("time_months,survival,n_at_risk\n1,0.9,\n6,0.8,50\n", "at time_months 0"),
    ("time_months,survival,n_at_risk\n0,1,100\n6,abc,\n", "is not a number"),
    ("time_months,event\n1,1\n2,3\n", "event 0 (censored) or 1"),
    ("time_months,survival,n_at_risk\n0,1,100\n6,0.8,120\n", "must not increase"),
])
def test_bad_csv_exits_2_with_one_message(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    result = CliRunner().invoke(main, ["fit", str(path)])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert result.output.count("error:") == 1


def test_missing_csv_exits_2(tmp_path):
    result = CliRunner().invoke(main, ["fit", str(tmp_path / "none.csv")])
    assert result.exit_code == 2 and "cannot read" in result.output
