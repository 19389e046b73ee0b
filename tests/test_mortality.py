"""Background mortality from a life table: exact inverse of the cumulative hazard, and
deaths in the engines that censor episodes and end follow-up."""

from __future__ import annotations

import math

import numpy as np
import pytest
from click.testing import CliRunner

from sim.app.cli import main
from sim.loader import load_scenario
from sim.model import compile_model
from sim.mortality import LifeTable, read_life_table
from sim.runner import simulate


def table(hazards: dict[int, float]) -> LifeTable:
    ages = tuple(sorted(hazards))
    return LifeTable(ages, tuple(hazards[a] for a in ages))


def test_constant_hazard_gives_exponential_years_to_death():
    life = table({age: 0.05 for age in range(0, 101)})
    u = np.random.default_rng(1).random(200_000)
    years = life.years_to_death(np.full(u.size, 30.0), u)
    assert abs(years.mean() - 20.0) < 4 * 20.0 / math.sqrt(u.size)


def test_survival_across_a_change_of_hazard_matches_the_closed_form():
    # Hazard 0.01 a year before age 50, 0.2 from 50: from age 45, S(10) = exp(-5*0.01 - 5*0.2).
    life = table({age: (0.01 if age < 50 else 0.2) for age in range(0, 101)})
    u = np.random.default_rng(2).random(200_000)
    years = life.years_to_death(np.full(u.size, 45.0), u)
    expected = math.exp(-5 * 0.01 - 5 * 0.2)
    observed = (years > 10).mean()
    assert abs(observed - expected) < 4 * math.sqrt(expected * (1 - expected) / u.size)
    assert (years > 0).all()


def test_a_life_table_file_is_read_into_hazards(tmp_path):
    path = tmp_path / "life.csv"
    path.write_text("age,qx\n0,0.1\n1,0.5\n")
    life = read_life_table(path)
    assert life.ages == (0, 1)
    assert life.hazards_per_year == pytest.approx((-math.log(0.9), -math.log(0.5)))


SCENARIO = """
settings: {{patients: 3000, horizon: 20 years, seed: 9}}
population:
  covariates:
    age_years: {{dist: uniform, low: 30, high: 60}}
mortality:
  life_table: {table}
treatments:
  drug_a:
    label: A
    assess_at: {{dist: fixed, value: 3 months}}
    response: {{p: 0.6}}
strategies:
  only_a: {{lines: [drug_a]}}
"""


def test_deaths_end_follow_up_at_the_life_table_rate(tmp_path):
    (tmp_path / "flat.csv").write_text("age,qx\n" + "".join(f"{a},{1 - math.exp(-0.05):.12f}\n" for a in range(101)))
    (tmp_path / "s.yaml").write_text(SCENARIO.format(table="flat.csv"))
    loaded = load_scenario(tmp_path / "s.yaml")
    for engine in ("des", "compiled"):
        tables = simulate(compile_model(loaded.scenario.model_copy(update={"settings": loaded.scenario.settings.model_copy(
            update={"engine": engine})}), loaded.name), progress=False)
        p, e = tables.patients, tables.episodes
        died = (p["final_state"] == "dead").mean()
        expected = 1 - math.exp(-0.05 * 20)
        assert abs(died - expected) < 4 * math.sqrt(expected * (1 - expected) / len(p)), engine
        assert (p.loc[p["final_state"] == "dead", "follow_up_months"] < 240).all()
        assert (p.loc[p["final_state"] != "dead", "follow_up_months"] == 240).all()
        assert (e.loc[e["reason"] == "death", "stop"].to_numpy() <= 240).all()
        assert (e["reason"] == "death").sum() > 0


def test_a_missing_life_table_is_a_clear_error(tmp_path):
    (tmp_path / "s.yaml").write_text(SCENARIO.format(table="nowhere.csv"))
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "s.yaml")])
    assert result.exit_code == 2
    assert "mortality.life_table" in result.output and "cannot find the life table" in result.output


def test_a_malformed_life_table_is_a_clear_error(tmp_path):
    (tmp_path / "bad.csv").write_text("age,qx\n0,0.1\n2,1.5\n")
    (tmp_path / "s.yaml").write_text(SCENARIO.format(table="bad.csv"))
    result = CliRunner().invoke(main, ["run", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "bad.csv" in result.output and "consecutive" in result.output
    assert not (tmp_path / "out").exists()
