"""Costs, QALYs and the decision outputs against hand computation and textbook examples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from analysis.costs import discount_integral, patient_costs
from analysis.economics import (
    acceptability,
    expected_value_of_perfect_information,
    incremental_analysis,
    psa_export,
)
from sim.app.cli import main
from sim.economics import EconomicsSpec, compile_economics

SETTING = {
    "currency": "GBP",
    "price_year": 2024,
    "willingness_to_pay": [20000],
    "discount": {"costs": {"rate_per_year": 0.035}, "qalys": {"rate_per_year": 0.035}, "method": "continuous"},
    "treatments": {
        "drug_a": {"price": {"amount": 1.0, "per": 1, "unit": "mg"},
                   "dose": {"amount": 2, "unit": "mg_per_kg", "every": "1 day"},
                   "monitoring": [{"item": "bloods", "cost": {"amount": 30}, "every": "2 months"}],
                   "at_start": [{"item": "test", "cost": {"amount": 50}}]},
        "drug_b": {"price": {"amount": 600, "per": 600, "unit": "mg"},
                   "dose": {"amount": 300, "unit": "mg", "every": "2 weeks"},
                   "loading": {"amount": 300, "unit": "mg"}},
    },
    "adverse_events": {"rash": {"cost": {"amount": 100}, "disutility": 0.1, "duration": "1 month"}},
    "drug_start": {"cost": {"amount": 120}},
    "relapse": {"cost": {"amount": 80}},
    "burst": {"cost": {"amount": 40}, "disutility": 0.12, "duration": "2 weeks"},
    "utilities": {"controlled_on_systemic": {"value": 0.8}, "uncontrolled_on_systemic": {"value": 0.5},
                  "topical": {"value": 0.75}, "supportive_care": {"value": 0.45}},
}
DAYS = 30.4375
DELTA = math.log(1.035) / 12


def setting(**changes):
    spec = {**SETTING, **changes}
    return compile_economics(EconomicsSpec.model_validate(spec), "test")


def one_patient():
    """Drug A 0-6 months (responds at 3), topical 6-10, relapse, drug B 10-13 (no response), supportive to 24."""
    keys = {"replicate": 0, "strategy": pd.Categorical(["s"]), "patient": 0}
    episodes = pd.DataFrame({
        "replicate": [0, 0], "strategy": pd.Categorical(["s", "s"]), "patient": [0, 0], "episode": [1, 2],
        "line": [1, 2], "treatment": pd.Categorical(["drug_a", "drug_b"]), "start": [0.0, 10.0],
        "stop": [6.0, 13.0], "reason": pd.Categorical(["remission", "nonresponse"]),
        "responded": pd.array([True, False], dtype="boolean"), "assessed": [3.0, 13.0],
    })
    patients = pd.DataFrame({**keys, "weight_kg": [70.0], "final_state": ["supportive_care"],
                             "follow_up_months": [24.0]})
    events = pd.DataFrame({"replicate": [0], "strategy": pd.Categorical(["s"]), "patient": [0],
                           "adverse_event": ["rash"], "time": [2.0]})
    bursts = pd.DataFrame({"replicate": [0], "strategy": pd.Categorical(["s"]), "patient": [0], "time": [20.0]})
    return episodes, patients, events, bursts


def integral(a, b):
    return (math.exp(-DELTA * a) - math.exp(-DELTA * b)) / DELTA


def test_costs_and_qalys_of_a_known_trajectory_match_hand_computation():
    episodes, patients, events, bursts = one_patient()
    result = patient_costs(episodes, patients, setting(), events, bursts).iloc[0]
    drug_a = 2 * 70 * DAYS            # GBP a month: 2 mg/kg/day x 70 kg, GBP 1 per mg
    drug_b = 300 * DAYS / 14          # GBP a month: 300 mg every 14 days, GBP 1 per mg
    drugs = drug_a * integral(0, 6) + drug_b * integral(10, 13) + 300 * math.exp(-DELTA * 10)
    monitoring = 15 * integral(0, 6)
    events_cost = (120 + 50) + 120 * math.exp(-DELTA * 10) + 80 * math.exp(-DELTA * 10) \
        + 100 * math.exp(-DELTA * 2) + 40 * math.exp(-DELTA * 20)
    assert result["cost_drugs_GBP"] == pytest.approx(drugs, rel=1e-12)
    assert result["cost_monitoring_GBP"] == pytest.approx(monitoring, rel=1e-12)
    assert result["cost_events_GBP"] == pytest.approx(events_cost, rel=1e-12)
    qalys = (0.5 * integral(0, 3) + 0.8 * integral(3, 6) + 0.75 * integral(6, 10) + 0.5 * integral(10, 13)
             + 0.45 * integral(13, 24)) / 12 - 0.1 * 1 / 12 * math.exp(-DELTA * 2) \
        - 0.12 * (14 / DAYS) / 12 * math.exp(-DELTA * 20)
    assert result["qalys"] == pytest.approx(qalys, rel=1e-12)
    plain = (0.5 * 3 + 0.8 * 3 + 0.75 * 4 + 0.5 * 3 + 0.45 * 11) / 12 - 0.1 / 12 - 0.12 * (14 / DAYS) / 12
    assert result["qalys_undiscounted"] == pytest.approx(plain, rel=1e-12)


def test_annual_discounting_uses_whole_year_factors():
    v = 1 / 1.035
    assert discount_integral(np.array([6.0]), np.array([30.0]), 0.035, "annual")[0] == pytest.approx(6 + 12 * v + 6 * v**2)
    assert discount_integral(np.array([0.0]), np.array([12.0]), 0.0, "continuous")[0] == 12.0


def test_incremental_analysis_flags_dominated_and_extendedly_dominated():
    costs = pd.Series({"A": 10000.0, "B": 13000.0, "C": 15000.0, "D": 16000.0})
    effects = pd.Series({"A": 5.0, "B": 5.1, "C": 5.5, "D": 5.4})
    table = incremental_analysis(costs, effects).set_index("strategy")
    assert table.loc["A", "status"] == "reference"
    assert table.loc["B", "status"] == "extendedly dominated"
    assert table.loc["D", "status"] == "dominated"
    assert table.loc["C", "status"] == "non-dominated"
    assert table.loc["C", "compared_with"] == "A"
    assert table.loc["C", "icer"] == pytest.approx(10000.0)


def psa_samples(rng, n=500, always_best=None):
    rows = []
    for sample in range(n):
        for strategy, (cost, effect) in {"A": (1000, 1.0), "B": (3000, 1.1), "C": (6000, 1.15)}.items():
            rows.append({"sample": sample, "strategy": strategy,
                         "cost": cost + rng.normal(0, 300), "effect": effect + rng.normal(0, 0.05)})
    frame = pd.DataFrame(rows)
    if always_best:
        frame.loc[frame["strategy"] == always_best, ["cost", "effect"]] = [0.0, 10.0]
    return frame


def test_acceptability_curves_are_probabilities_that_sum_to_one():
    samples = psa_samples(np.random.default_rng(1))
    ceac = acceptability(samples, [0, 10000, 20000, 50000, 100000])
    assert ceac["probability_cost_effective"].between(0, 1).all()
    sums = ceac.groupby("willingness_to_pay")["probability_cost_effective"].sum()
    assert np.allclose(sums, 1.0)
    assert (ceac.groupby("willingness_to_pay")["on_frontier"].sum() == 1).all()
    assert ceac.set_index(["willingness_to_pay", "strategy"]).loc[(0, "A"), "on_frontier"]


def test_evpi_is_positive_and_zero_when_one_strategy_always_wins():
    evpi = expected_value_of_perfect_information(psa_samples(np.random.default_rng(2)), [20000, 30000], population=1000)
    assert (evpi["evpi_per_patient"] >= 0).all() and (evpi["evpi_per_patient"] > 0).any()
    assert np.allclose(evpi["evpi_population"], 1000 * evpi["evpi_per_patient"])
    sure = expected_value_of_perfect_information(psa_samples(np.random.default_rng(3), always_best="B"), [20000])
    assert sure["evpi_per_patient"].iloc[0] == 0.0


def test_psa_export_has_one_row_per_sample_and_columns_per_strategy():
    export = psa_export(psa_samples(np.random.default_rng(4), n=10))
    assert len(export) == 10
    assert {"cost_A", "cost_B", "cost_C", "effect_A", "effect_B", "effect_C"} <= set(export.columns)


def test_unknown_economic_setting_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(main, ["run", "modern_adult", "--patients", 10, "--economics", "uk_nsh",
                                       "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "did you mean 'uk_nhs'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x").exists()


def test_price_without_currency_is_a_clear_error(tmp_path):
    import yaml

    spec = {k: v for k, v in SETTING.items() if k != "currency"}
    path = tmp_path / "nocurrency.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(main, ["run", "modern_adult", "--patients", 10, "--economics", str(path),
                                       "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "price without currency" in result.output and "treatments.drug_a.price" in result.output


def test_common_random_numbers_make_incremental_qalys_precise(tmp_path):
    result = CliRunner().invoke(main, ["run", "modern_adult", "--patients", 1500, "--economics", "uk_nhs",
                                       "--out", str(tmp_path / "run"), "--quiet", "--report"])
    assert result.exit_code == 0, result.output
    patients = pd.read_parquet(tmp_path / "run" / "patients.parquet")
    q = patients.pivot(index="patient", columns="strategy", values="qalys")
    diff = q["biologic_first"] - q["conventional_first"]
    paired = diff.std() / math.sqrt(len(diff))
    independent = math.sqrt(q["biologic_first"].var() / len(q) + q["conventional_first"].var() / len(q))
    assert paired < 0.6 * independent
    assert (tmp_path / "run" / "incremental.csv").exists()
    summary = pd.read_csv(tmp_path / "run" / "summary.csv")
    assert "mean_cost_total_GBP" in set(summary["metric"]) and "mean_qalys" in set(summary["metric"])
    page = (tmp_path / "run" / "report.html").read_text()
    assert "<h2>Cost-effectiveness</h2>" in page and "Net monetary benefit" in page
    assert "Waiting and corticosteroid bursts" in page
    assert (tmp_path / "run" / "figures" / "costs_and_qalys.png").stat().st_size > 10_000
    assert (tmp_path / "run" / "tables" / "incremental.csv").exists()


HEALTH_STATES = {
    "topical": {"resource_use": [{"item": "emollient", "cost": {"amount": 6}, "every": "1 month"},
                                 {"item": "GP", "cost": {"amount": 42}, "per_year": 2}]},
    "supportive_care": {"resource_use": [{"item": "visit", "cost": {"amount": 120}, "per_year": 6}]},
    "uncontrolled_on_systemic": {"resource_use": [{"item": "tube", "cost": {"amount": 3, "per": 1}, "every": "2 weeks"}]},
}


def test_health_state_costs_are_integrated_exactly_over_the_months_in_each_state():
    episodes, patients, events, bursts = one_patient()
    topical, supportive, uncontrolled = 6 + 42 * 2 / 12, 120 * 6 / 12, 3 * DAYS / 14   # GBP a month
    # Uncontrolled: drug A 0-3 (before its assessment), drug B 10-13; topical 6-10; supportive 13-24.
    plain = uncontrolled * 6 + topical * 4 + supportive * 11
    discounted = uncontrolled * (integral(0, 3) + integral(10, 13)) + topical * integral(6, 10) \
        + supportive * integral(13, 24)
    result = patient_costs(episodes, patients, setting(health_states=HEALTH_STATES), events, bursts).iloc[0]
    assert result["cost_health_states_undiscounted_GBP"] == pytest.approx(plain, rel=1e-12)
    assert result["cost_health_states_GBP"] == pytest.approx(discounted, rel=1e-12)
    without = patient_costs(episodes, patients, setting(), events, bursts).iloc[0]
    assert result["cost_total_GBP"] - without["cost_total_GBP"] == pytest.approx(discounted, rel=1e-9)


def test_administration_is_its_own_cost_category():
    treatments = {**SETTING["treatments"], "drug_b": {**SETTING["treatments"]["drug_b"], "administration": [
        {"item": "nurse injection", "cost": {"amount": 28}, "every": "2 weeks"}]}}
    episodes, patients, events, bursts = one_patient()
    result = patient_costs(episodes, patients, setting(treatments=treatments), events, bursts).iloc[0]
    assert result["cost_administration_GBP"] == pytest.approx(28 * DAYS / 14 * integral(10, 13), rel=1e-12)


def norm(age, male=0.5):
    return 0.9508566 + 0.0212126 * male - 0.0002587 * age - 0.0000332 * age**2


@pytest.mark.parametrize("method", ["multiplicative", "additive"])
@pytest.mark.parametrize("discounting", ["continuous", "annual"])
def test_age_adjusted_utilities_follow_the_ara_brazier_norm_on_a_known_trajectory(method, discounting):
    from scipy.integrate import quad

    episodes, patients, _, _ = one_patient()
    patients["age_years"] = 55.0
    adjust = {"method": method, "reference_age": "40 years", "male_share": 0.5}
    spec = setting(age_adjustment=adjust, discount={**SETTING["discount"], "method": discounting})
    result = patient_costs(episodes, patients, spec).iloc[0]
    pieces = [(0, 3, 0.5), (3, 6, 0.8), (6, 10, 0.75), (10, 13, 0.5), (13, 24, 0.45)]

    def utility(u, t):
        ratio = norm(55 + t / 12) / norm(40)
        return u * ratio if method == "multiplicative" else u + norm(55 + t / 12) - norm(40)

    def factor(t):
        return math.exp(-DELTA * t) if discounting == "continuous" else 1.035 ** -math.floor(t / 12)

    expected = sum(quad(lambda t: utility(u, t) * factor(t), a, b, points=[12])[0] for a, b, u in pieces) / 12
    plain = sum(quad(lambda t: utility(u, t), a, b)[0] for a, b, u in pieces) / 12
    assert result["qalys"] == pytest.approx(expected, rel=1e-10)
    assert result["qalys_undiscounted"] == pytest.approx(plain, rel=1e-10)
    assert result["qalys_undiscounted"] < (0.5 * 3 + 0.8 * 3 + 0.75 * 4 + 0.5 * 3 + 0.45 * 11) / 12


def test_a_patients_own_sex_sets_the_norm_and_children_use_their_own_utilities_until_the_age():
    episodes, patients, _, _ = one_patient()
    patients["age_years"], patients["sex"] = 17.5, "male"
    children = {"until_age": "18 years", "utilities": {s: {"value": 0.9} for s in SETTING["utilities"]}}
    adjust = {"method": "additive", "reference_age": "40 years", "male_share": 0.5}
    result = patient_costs(episodes, patients, setting(children=children, age_adjustment=adjust,
                                                       discount={**SETTING["discount"], "costs": {"rate_per_year": 0},
                                                                 "qalys": {"rate_per_year": 0}})).iloc[0]
    from scipy.integrate import quad
    adult = sum(quad(lambda t: u + norm(17.5 + t / 12, 1.0) - norm(40), max(a, 6), b)[0]
                for a, b, u in [(3, 6, 0.8), (6, 10, 0.75), (10, 13, 0.5), (13, 24, 0.45)] if b > 6)
    expected = (0.9 * 6 + adult) / 12   # a child for the first 6 months
    assert result["qalys_undiscounted"] == pytest.approx(expected, rel=1e-10)


def test_life_years_discounted_and_undiscounted():
    episodes, patients, _, _ = one_patient()
    result = patient_costs(episodes, patients, setting()).iloc[0]
    assert result["life_years"] == pytest.approx(2.0)
    assert result["life_years_discounted"] == pytest.approx(integral(0, 24) / 12, rel=1e-12)
    annual = patient_costs(episodes, patients, setting(discount={**SETTING["discount"], "method": "annual"})).iloc[0]
    assert annual["life_years_discounted"] == pytest.approx(1 + 1 / 1.035, rel=1e-12)


def test_a_resource_without_a_frequency_is_refused():
    with pytest.raises(Exception, match="every"):
        EconomicsSpec.model_validate({**SETTING, "health_states": {"topical": {"resource_use": [
            {"item": "x", "cost": {"amount": 1}}]}}})


def test_an_economic_report_reads_as_a_model_description(tmp_path):
    import json

    out = tmp_path / "run"
    # 10-year modern_adult keeps loss to follow-up: costs and QALYs are truncated for some patients.
    result = CliRunner().invoke(main, ["run", "modern_adult", "--patients", 300, "--economics", "uk_nhs",
                                       "--report", "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "warning: costs and QALYs are truncated before the horizon" in result.output
    manifest = json.loads((out / "run.json").read_text())
    economics = manifest["economics"]
    assert economics["resolved"]["health_states"]["supportive_care"]["resource_use"]
    assert len(economics["resolved_hash"]) == 64
    assert 0 < economics["truncated"]["lost_to_followup_share"] < 1
    page = (out / "report.html").read_text()
    for text in ("Model description", "NHS and personal social services", "10 years (120 months)",
                 "continuous time: no cycles", "Monte Carlo", "Warning:", "Economic inputs",
                 "Ara &amp; Brazier", "Treatment pathways", "Cost: health states (GBP)", "Life-years undiscounted"):
        assert text in page, text
    incremental = pd.read_csv(out / "incremental.csv")
    for row in incremental[incremental["status"].str.contains("dominated")].itertuples():
        assert row.dominated_by and not math.isnan(row.incremental_cost_GBP)
        assert ("Dominated by " in page) or ("Extendedly dominated by " in page)
    assert (out / "tables" / "economic_inputs.csv").exists() and (out / "figures" / "pathways.png").exists()
    costs = pd.read_parquet(out / "patients.parquet")
    parts = sum(costs[f"cost_{c}_GBP"] for c in ("drugs", "administration", "monitoring", "health_states", "events"))
    assert np.allclose(parts, costs["cost_total_GBP"])


def test_dominated_strategies_name_what_dominates_them():
    costs = pd.Series({"A": 10000.0, "B": 13000.0, "C": 15000.0, "D": 16000.0})
    effects = pd.Series({"A": 5.0, "B": 5.1, "C": 5.5, "D": 5.4})
    table = incremental_analysis(costs, effects).set_index("strategy")
    assert table.loc["D", "dominated_by"] == "C"
    assert table.loc["D", "incremental_cost"] == pytest.approx(1000.0)
    assert table.loc["D", "incremental_effect"] == pytest.approx(-0.1)
    assert math.isnan(table.loc["D", "icer"])
    assert table.loc["B", "dominated_by"] == "A and C"


def test_user_text_in_the_economic_inputs_is_escaped():
    from analysis.report_sections import _inputs_frame, _inputs_html

    economics = {"name": "<b>x</b>", "resolved": {"utilities": {"topical": {"value": 0.7, "source": "<script>"}}}}
    html_text = _inputs_html(_inputs_frame(economics), economics)
    assert "<script>" not in html_text and "&lt;script&gt;" in html_text and "<b>x</b>" not in html_text


def test_annual_polynomial_integral_equals_the_sum_over_every_year():
    """Integrating each interval over only the years it reaches gives the very floats of
    the sum over every year of the horizon (a year it does not reach adds exactly 0)."""
    import numpy as np

    from analysis.costs import _polynomial_integral, polynomial_discount_integral

    rng = np.random.default_rng(7)
    a = rng.uniform(0.0, 100.0, 2000)
    a[:50] = np.floor(a[:50] / 12.0) * 12.0  # starts on a year boundary
    b = a + rng.exponential(15.0, a.size)
    b[50:100] = a[50:100]  # empty intervals
    c0, c1, c2 = rng.uniform(0.5, 1.0, a.size), rng.normal(0, 1e-3, a.size), rng.normal(0, 1e-6, a.size)
    q0, q1, q2 = c0 + c1 * a + c2 * a * a, c1 + 2 * c2 * a, c2
    v, expected = 1.0 / 1.035, np.zeros(a.size)
    for year in range(int(np.floor(a.min() / 12.0)), int(np.ceil(b.max() / 12.0)) + 1):
        low = np.clip(a, 12.0 * year, 12.0 * (year + 1)) - a
        high = np.clip(b, 12.0 * year, 12.0 * (year + 1)) - a
        expected += v**year * (_polynomial_integral(q0, q1, q2, high) - _polynomial_integral(q0, q1, q2, low))
    assert np.array_equal(polynomial_discount_integral(a, b, c0, c1, c2, 0.035, "annual"), expected)
