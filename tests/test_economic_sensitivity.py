"""Economic inputs in a sweep's vary: and one_way:, the economic metrics of the report, and
the report's selectable metrics."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from analysis.costs import discount_factor, discount_integral
from analysis.sweep_report import build_sweep_report
from analysis.sweep_summary import grid_table, load_sweep_results, one_way_table
from sim.app.cli import main
from sim.app.sweep import SerialExecutor, load_sweep, run_sweep
from sim.runner import simulate
from sim.units import parse_duration

LOW, HIGH = 1000.0, 1500.0  # GBP per 600 mg of dupilumab (uk_nhs list price 1,264.89)

ONE_WAY = f"""
base: modern_adult
economics: uk_nhs
vary:
  settings.patients: [60]
  settings.horizon: [2 years]
one_way:
  economics.treatments.dupilumab.price.amount: {{low: {LOW}, high: {HIGH}, source: "test"}}
  economics.utilities.topical.value: {{low: 0.6, high: 0.8, source: "test"}}
seed: 3
"""


@pytest.fixture(scope="module")
def one_way(tmp_path_factory):
    folder = tmp_path_factory.mktemp("economic_one_way")
    path = folder / "one_way.yaml"
    path.write_text(textwrap.dedent(ONE_WAY), encoding="utf-8")
    plan = load_sweep(path)
    assert run_sweep(plan, folder / "out", SerialExecutor(), progress=False).status == "complete"
    return plan, folder / "out"


def test_a_price_moves_nmb_by_the_hand_computed_amount(one_way):
    """NMB(high) − NMB(low) = −(price delta per mg) x (discounted mg consumed: the dose rate
    over each dupilumab episode's discounted months, plus the loading dose discounted to
    the episode's start) / patients; QALYs do not move (same patients, same trajectories)."""
    plan, out = one_way
    point = next(t for t in plan.tasks if t.analysis == "point")
    episodes = simulate(plan.model(point), workers=1, progress=False).episodes
    economics = plan.economics
    rate, method = economics.cost_discount_per_year, economics.method
    mg_per_month = 300 / parse_duration("2 weeks")
    dupilumab = episodes[episodes["treatment"] == "dupilumab"]
    mg = (mg_per_month * discount_integral(dupilumab["start"], dupilumab["stop"], rate, method)
          + 300 * discount_factor(dupilumab["start"], rate, method))
    mg_by_strategy = pd.Series(mg, index=dupilumab.index).groupby(dupilumab["strategy"], observed=True).sum() / 60
    table = one_way_table(load_sweep_results(out))
    nmb = table[(table["metric"] == "nmb_at_20000_GBP")
                & (table["parameter"] == "economics.treatments.dupilumab.price.amount")].set_index("strategy")
    for strategy in plan.base.scenario.strategies:
        expected = -(HIGH - LOW) / 600 * mg_by_strategy.get(strategy, 0.0)
        assert nmb.loc[strategy, "at_high"] - nmb.loc[strategy, "at_low"] == pytest.approx(expected, rel=1e-9)
    assert mg_by_strategy["biologic_first"] > 0
    qalys = table[(table["metric"] == "incremental_qalys")
                  & (table["parameter"] == "economics.treatments.dupilumab.price.amount")]
    assert np.allclose(qalys["at_low"], qalys["at_high"]) and np.allclose(qalys["at_low"], qalys["base"])


def test_a_utility_moves_qalys_and_not_costs(one_way):
    _, out = one_way
    table = one_way_table(load_sweep_results(out))
    utility = table[table["parameter"] == "economics.utilities.topical.value"].set_index(["strategy", "metric"])
    cost = utility.xs("incremental_cost_GBP", level="metric")
    assert np.allclose(cost["at_low"], cost["at_high"])
    nmb = utility.xs("nmb_at_20000_GBP", level="metric")
    assert (nmb["at_high"] > nmb["at_low"]).all()  # more time on topical therapy is worth more


def test_economic_metrics_are_derived_from_costs_and_qalys(one_way):
    _, out = one_way
    results = load_sweep_results(out)
    grid = grid_table(results).set_index(["strategy", "metric"])["value"]
    cost, qalys = grid.xs("mean_cost_total_GBP", level="metric"), grid.xs("mean_qalys", level="metric")
    nmb = grid.xs("nmb_at_20000_GBP", level="metric")
    assert (nmb - (20000 * qalys - cost)).abs().max() < 1e-6
    icer = grid.xs("icer_GBP_per_qaly", level="metric")
    reference = "conventional_first"
    for strategy in ("biologic_first", "treat_to_target"):
        expected = (cost[strategy] - cost[reference]) / (qalys[strategy] - qalys[reference])
        assert icer[strategy] == pytest.approx(expected, rel=1e-12)
    assert np.isnan(icer[reference])


def test_the_report_shows_tornados_on_nmb_and_increments(one_way):
    _, out = one_way
    page = build_sweep_report(out).read_text(encoding="utf-8")
    assert "Tornado: Net monetary benefit (GBP) at 20,000/QALY" in page
    assert "Tornado: Incremental cost (GBP)" in page and "Tornado: Incremental QALYs" in page
    assert "Dupilumab: price amount (economic setting)" in page
    assert (out / "figures" / "tornado_incremental_cost_GBP_v0.png").stat().st_size > 10_000


def test_report_metrics_are_chosen_in_the_sweep_file(tmp_path):
    text = textwrap.dedent(ONE_WAY) + "report: {metrics: [nmb, icer], willingness_to_pay: 30000, reference: biologic_first}\n"
    path = tmp_path / "chosen.yaml"
    path.write_text(text, encoding="utf-8")
    assert run_sweep(load_sweep(path), tmp_path / "out", SerialExecutor(), progress=False).status == "complete"
    results = load_sweep_results(tmp_path / "out")
    assert results.metrics("one_way") == ["nmb_at_30000_GBP", "icer_GBP_per_qaly"]
    assert set(one_way_table(results)["metric"]) == {"nmb_at_30000_GBP", "icer_GBP_per_qaly"}
    icer = grid_table(results).set_index(["strategy", "metric"])["value"]
    assert np.isnan(icer[("biologic_first", "icer_GBP_per_qaly")])  # the chosen reference


@pytest.mark.parametrize("extra, where, message", [
    ("one_way:\n  economics.utilities.topical.value: {low: 0.5, high: 1.5}\n",
     "one_way.economics.utilities.topical.value.high", "economics.utilities.topical.value"),
    ("one_way:\n  economics.treatments.dupilumb.price.amount: {low: 1, high: 2}\n",
     "one_way.economics.treatments.dupilumb.price.amount", "did you mean 'dupilumab'"),
    ("report: {metrics: [nmb, returned_to_topicl_ever]}\n", "report.metrics[1]", "did you mean"),
    ("report: {reference: nobody}\n", "report.reference", "no strategy 'nobody'"),
])
def test_bad_economic_sensitivity_input_is_refused_before_running(tmp_path, extra, where, message):
    text = "base: modern_adult\neconomics: uk_nhs\nvary:\n  settings.patients: [20]\n" + extra
    if "one_way" not in extra:
        text += "one_way:\n  economics.utilities.topical.value: {low: 0.6, high: 0.7}\n"
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["sweep", str(path), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 2, result.output
    assert where in result.output and message in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_economic_one_way_without_a_setting_says_to_add_one(tmp_path):
    path = tmp_path / "bare.yaml"
    path.write_text("base: modern_adult\none_way:\n  economics.utilities.topical.value: {low: 0.6, high: 0.7}\n")
    result = CliRunner().invoke(main, ["sweep", str(path), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 2 and "add economics:" in result.output


def test_at_the_threshold_price_the_nmb_difference_is_zero(tmp_path):
    """`adpath threshold` on a small run: costed by hand at the printed threshold price,
    biologic first and conventional first have the same NMB; and the cost added per unit
    of price is the difference in discounted mg of dupilumab consumed / 600 mg."""
    from analysis.economics_threshold import mean_costs_and_qalys
    from sim.economics import economics_document
    from sim.loader import load_scenario, set_path
    from sim.model import compile_model

    out = tmp_path / "threshold.csv"
    result = CliRunner().invoke(main, ["threshold", "modern_adult", "--economics", "uk_nhs", "--drug", "dupilumab",
                                       "--strategy", "biologic_first", "--patients", "120", "--horizon", "3 years",
                                       "--wtp", "30000", "--out", str(out)])
    assert result.exit_code == 0, result.output
    row = pd.read_csv(out).iloc[0]
    loaded = load_scenario("modern_adult", {"settings.patients": 120, "settings.horizon": "3 years"})
    tables = simulate(compile_model(loaded.scenario, loaded.name), workers=1, progress=False)
    document, _ = economics_document("uk_nhs")
    means = mean_costs_and_qalys(tables, set_path(document, "treatments.dupilumab.price.amount",
                                                  row["threshold_price"]), "uk_nhs", "test")
    nmb = 30000 * means["qalys"] - means["cost"]
    assert abs(nmb["biologic_first"] - nmb["conventional_first"]) < 1e-6 * means["cost"].abs().max()
    episodes = tables.episodes[tables.episodes["treatment"] == "dupilumab"]
    mg = (300 / parse_duration("2 weeks") * discount_integral(episodes["start"], episodes["stop"], 0.035, "annual")
          + 300 * discount_factor(episodes["start"], 0.035, "annual"))
    by_strategy = pd.Series(mg, index=episodes.index).groupby(episodes["strategy"], observed=True).sum() / 120
    assert row["cost_per_price_unit"] == pytest.approx(
        (by_strategy["biologic_first"] - by_strategy.get("conventional_first", 0.0)) / 600, rel=1e-9)
    assert 0 < row["threshold_price"] < row["list_price"]


def test_threshold_refuses_an_unknown_drug_in_one_message(tmp_path):
    result = CliRunner().invoke(main, ["threshold", "modern_adult", "--economics", "uk_nhs", "--drug", "dupilumb",
                                       "--strategy", "biologic_first"])
    assert result.exit_code == 2 and "--drug" in result.output and "did you mean 'dupilumab'" in result.output


def test_evppi_is_zero_without_regressions_when_one_strategy_always_wins():
    from analysis.psa_results import evppi_table

    rng = np.random.default_rng(1)
    samples = pd.DataFrame([{"sample": k, "strategy": s, "cost": c + rng.normal(0, 10), "effect": e}
                            for k in range(50) for s, c, e in (("a", 100, 2.0), ("b", 5000, 1.0))])
    parameters = pd.DataFrame({"x": rng.normal(size=50), "y": rng.normal(size=50)})
    table = evppi_table(samples, parameters, ["a", "b"], [20000, 30000])
    assert (table["evppi_per_patient"] == 0).all() and (table["evpi_per_patient"] == 0).all()
