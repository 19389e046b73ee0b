"""A PSA with an economic setting: costs and QALYs per sample, CEAC/CEAF, EVPI, export, report."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from analysis.sweep_economics import economic_samples, economic_tables
from sim.app.cli import main
from sim.app.sweep import SerialExecutor, load_sweep, run_sweep

SWEEP = """
base: modern_adult
economics: uk_nhs
vary:
  settings.patients: [80]
  settings.horizon: [3 years]
psa: {samples: 5}
seed: 4
"""


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("economic_psa")
    path = folder / "psa.yaml"
    path.write_text(textwrap.dedent(SWEEP), encoding="utf-8")
    outcome = run_sweep(load_sweep(path), folder / "out", SerialExecutor(), progress=False)
    assert outcome.status == "complete"
    return folder


def test_every_psa_sample_has_costs_and_qalys_per_strategy(sweep_dir):
    summary = pd.read_parquet(sweep_dir / "out" / "sweep_summary.parquet")
    samples = economic_samples(summary, "GBP")
    assert len(samples) == 5 * 3
    assert samples["cost"].gt(0).all() and samples["effect"].between(0, 3).all()


def test_acceptability_and_evpi_from_the_samples(sweep_dir):
    summary = pd.read_parquet(sweep_dir / "out" / "sweep_summary.parquet")
    tables = economic_tables(economic_samples(summary, "GBP"), [0, 20000, 30000])
    sums = tables["ceac"].groupby("willingness_to_pay")["probability_cost_effective"].sum()
    assert np.allclose(sums, 1.0)
    assert (tables["evpi"]["evpi_per_patient"] >= 0).all()
    assert len(tables["psa_for_bcea"]) == 5
    assert {"cost_conventional_first", "effect_treat_to_target"} <= set(tables["psa_for_bcea"].columns)


def test_sweep_report_shows_the_cost_effectiveness_results(sweep_dir):
    result = CliRunner().invoke(main, ["report", str(sweep_dir / "out")])
    assert result.exit_code == 0, result.output
    page = (sweep_dir / "out" / "report.html").read_text()
    assert "Cost-effectiveness under uncertainty" in page and "Acceptability curves" in page
    assert "EVPI for 86,000 patients (GBP)" in page
    for name in ("ce_plane_v0", "ceac_v0", "evpi_v0"):
        assert (sweep_dir / "out" / "figures" / f"{name}.png").stat().st_size > 10_000
    assert (sweep_dir / "out" / "tables" / "psa_for_bcea.csv").exists()
    assert "Probabilistic results" in page and "Probabilistic ICER" in page and "Deterministic cost" in page
    assert (sweep_dir / "out" / "figures" / "psa_convergence_v0.png").stat().st_size > 10_000
    results = pd.read_csv(sweep_dir / "out" / "tables" / "psa_results.csv")
    samples = pd.read_csv(sweep_dir / "out" / "tables" / "psa_for_bcea.csv")
    for row in results.itertuples():
        assert row.cost_mean == pytest.approx(samples[f"cost_{row.strategy}"].mean(), rel=1e-9)
        assert row.cost_low <= row.cost_mean <= row.cost_high
    evppi = pd.read_csv(sweep_dir / "out" / "tables" / "evppi.csv")
    assert (evppi["evppi_per_patient"] >= 0).all()
    assert (evppi["evppi_per_patient"] <= evppi["evpi_per_patient"] * 1.1 + 1e-9).all()


def test_changing_the_economic_setting_refuses_to_mix_results(sweep_dir, tmp_path):
    setting = yaml.safe_load((load_sweep(sweep_dir / "psa.yaml").base.file.parent / "economics" / "uk_nhs.yaml").read_text())
    setting["discount"]["costs"]["rate_per_year"] = 0.015
    (sweep_dir / "cheaper.yaml").write_text(yaml.safe_dump(setting))
    changed = sweep_dir / "changed.yaml"
    changed.write_text(textwrap.dedent(SWEEP).replace("economics: uk_nhs", "economics: cheaper.yaml"))
    result = CliRunner().invoke(main, ["sweep", str(changed), "--out", str(sweep_dir / "out"), "--workers", "1"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_unknown_economic_setting_in_a_sweep_is_refused_before_running(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent(SWEEP).replace("economics: uk_nhs", "economics: uk_nsh"))
    result = CliRunner().invoke(main, ["sweep", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "economics" in result.output and "did you mean 'uk_nhs'" in result.output
    assert not (tmp_path / "out").exists()


ECONOMIC_DRAWS = """
base: modern_adult
economics: uk_nhs
vary:
  settings.patients: [80]
  settings.horizon: [3 years]
psa:
  samples: 5
  counts: false
  parameters:
    economics.utilities.topical.value: {dist: beta, mean: 0.69, sd: 0.03, source: test}
    economics.treatments.dupilumab.price.amount: {dist: gamma, mean: 1264.89, sd: 150, source: test}
seed: 4
"""


def test_drawn_prices_and_utilities_cost_each_sample(tmp_path):
    """Only economic numbers are drawn, so every sample simulates the same trajectories:
    each strategy's QALYs are then exactly affine in the drawn topical utility and its
    costs exactly affine in the drawn dupilumab price."""
    path = tmp_path / "economic_draws.yaml"
    path.write_text(textwrap.dedent(ECONOMIC_DRAWS), encoding="utf-8")
    plan = load_sweep(path)
    assert run_sweep(plan, tmp_path / "out", SerialExecutor(), progress=False).status == "complete"
    summary = pd.read_parquet(tmp_path / "out" / "sweep_summary.parquet")
    samples = economic_samples(summary, "GBP")
    drawn = plan.task_table().dropna(subset=["sample"]).set_index("sample")
    utility = drawn["economics.utilities.topical.value"]
    price = drawn["economics.treatments.dupilumab.price.amount"]
    assert utility.std() > 0.005 and price.std() > 50
    for strategy, rows in samples.groupby("strategy"):
        rows = rows.set_index("sample").sort_index()
        for values, on in ((rows["effect"], utility), (rows["cost"], price)):
            slope, intercept = np.polyfit(on.loc[rows.index], values, 1)
            assert np.abs(values - (slope * on.loc[rows.index] + intercept)).max() < 1e-6 * values.abs().max()
        assert np.polyfit(utility.loc[rows.index], rows["effect"], 1)[0] > 0, strategy
    biologic = samples[samples["strategy"] == "biologic_first"].set_index("sample").sort_index()
    assert np.polyfit(price.loc[biologic.index], biologic["cost"], 1)[0] > 0
    result = CliRunner().invoke(main, ["report", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "out" / "report.html").read_text()
    assert "the PSA draws 2 of the setting" in page and "utilities.topical.value" in page


@pytest.mark.parametrize("draw, message", [
    ("economics.utilities.topical.value: {dist: uniform, low: 0.95, high: 1.3, source: test}",
     "draws values the economic setting refuses"),
    ("economics.utilities.topicl.value: {dist: beta, mean: 0.7, sd: 0.02, source: test}", "did you mean"),
])
def test_bad_economic_draws_are_refused_before_running(tmp_path, draw, message):
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent(ECONOMIC_DRAWS).replace(
        "    economics.utilities.topical.value: {dist: beta, mean: 0.69, sd: 0.03, source: test}", "    " + draw),
        encoding="utf-8")
    result = CliRunner().invoke(main, ["sweep", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_economic_draws_need_an_economic_setting(tmp_path):
    path = tmp_path / "no_setting.yaml"
    path.write_text(textwrap.dedent(ECONOMIC_DRAWS).replace("economics: uk_nhs\n", ""), encoding="utf-8")
    result = CliRunner().invoke(main, ["sweep", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "add economics:" in result.output


def test_psa_exports_have_the_shape_dampack_expects(sweep_dir):
    result = CliRunner().invoke(main, ["report", str(sweep_dir / "out")])
    assert result.exit_code == 0, result.output
    tables = sweep_dir / "out" / "tables"
    cost, effect = pd.read_csv(tables / "psa_cost.csv"), pd.read_csv(tables / "psa_effect.csv")
    parameters = pd.read_csv(tables / "psa_parameters.csv")
    # dampack::make_psa_obj: cost and effectiveness n_sim x n_strategies with the same columns,
    # parameters n_sim x n_parameters; the reference (first declared strategy) first.
    assert cost.shape == effect.shape == (5, 3)
    assert list(cost.columns) == list(effect.columns) == ["conventional_first", "biologic_first", "treat_to_target"]
    assert len(parameters) == 5 and parameters.shape[1] > 5
    assert all(pd.api.types.is_numeric_dtype(parameters[c]) for c in parameters)
    assert (parameters.nunique() > 1).all()
    assert not parameters.T.duplicated().any()
    assert "population.covariates.sex.levels.male" not in parameters or \
        "population.covariates.sex.levels.female" not in parameters
    summary = pd.read_parquet(sweep_dir / "out" / "sweep_summary.parquet")
    samples = economic_samples(summary, "GBP")
    first = samples[(samples["sample"] == 0) & (samples["strategy"] == "biologic_first")]
    assert cost.loc[0, "biologic_first"] == pytest.approx(first["cost"].iloc[0])
