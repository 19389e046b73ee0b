"""The vector engine against the DES engine on every bundled scenario, in distribution.

The vector engine draws PCG64 slots, the DES Philox numbers (as the compiled engine,
with which it agrees row for row: `tests/test_compiled_engine.py`), so the two agree in
distribution: episodes ending for each reason per treatment and line, drug survival at
12, 24 and 36 months, return to topical therapy, lines used and flare bursts within 4
Monte Carlo standard errors; episode durations by a two-sample Kolmogorov-Smirnov test.
Limited resources (which only the DES simulates) are lifted for the comparison.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from vector_scenarios import EVERY_RULE

from analysis.survival import drug_survival
from sim.loader import bundled_scenarios, load_scenario
from sim.model import compile_model
from sim.runner import simulate

PATIENTS = 1500
TOLERANCE_SE = 4.0
KS_LEVEL = 1e-4  # p-value below which two duration samples are taken to differ
SURVIVAL_TIMES_MONTHS = (12.0, 24.0, 36.0)

SCENARIOS = sorted(bundled_scenarios()) + ["every_rule"]


@functools.cache
def _scenario_file(name: str, directory: str) -> str:
    if name != "every_rule":
        return name
    path = f"{directory}/every_rule.yaml"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(EVERY_RULE)
    return path


@functools.cache
def run(name: str, engine: str, seed_offset: int = 0, directory: str = ""):
    """Tables of `PATIENTS` patients of scenario `name` (one replicate, unlimited resources)."""
    path = _scenario_file(name, directory)
    loaded = load_scenario(path, {"settings.patients": PATIENTS, "settings.replicates": 1})
    overrides = {"settings.patients": PATIENTS, "settings.replicates": 1,
                 "settings.seed": loaded.scenario.settings.seed + seed_offset}
    overrides |= {f"resources.{r}.capacity": "unlimited" for r in loaded.scenario.resources}
    loaded = load_scenario(path, overrides)
    return simulate(compile_model(loaded.scenario, loaded.name), engine=engine, progress=False)


@pytest.fixture(scope="module")
def directory(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("agreement"))


def _rounded(episodes: pd.DataFrame) -> pd.DataFrame:
    """Episodes with times rounded to 1e-9 months: the engines sum times in other orders, and a
    duration that is a point mass (a fixed assessment) would otherwise split into near ties."""
    return episodes.assign(start=episodes["start"].round(9), stop=episodes["stop"].round(9))


@pytest.mark.parametrize("name", SCENARIOS)
def test_engines_agree_in_distribution(name, directory):
    des, vector = run(name, "des", 0, directory), run(name, "vector", 1, directory)
    disagreements = (
        _compare(_per_patient_means(des.episodes, des.patients, ["treatment", "line", "reason"]),
                 _per_patient_means(vector.episodes, vector.patients, ["treatment", "line", "reason"]), "episodes")
        + _compare(survival_table_at(des.episodes), survival_table_at(vector.episodes), "drug survival", absent_is_zero=False)
        + _compare(_patient_proportions(des.patients), _patient_proportions(vector.patients), "patients")
        + _compare(_per_patient_means(des.bursts, des.patients, ["reason", "state"]),
                   _per_patient_means(vector.bursts, vector.patients, ["reason", "state"]), "bursts")
        + _compare(_burst_proportions(des.bursts), _burst_proportions(vector.bursts), "burst outcomes")
        + _durations_differ(_rounded(des.episodes), _rounded(vector.episodes))
    )
    assert not disagreements, "\n".join(disagreements)


# -- estimates with their Monte Carlo standard errors -------------------------------------


def _per_patient_means(rows: pd.DataFrame, patients: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean number of rows per patient in each (strategy, *by) cell, and its standard error."""
    n = patients.groupby("strategy", observed=True).size().rename("n")
    counts = rows.groupby(["strategy", *by, "patient"], observed=True).size().rename("c").reset_index()
    counts["c2"] = counts["c"] ** 2
    cells = counts.groupby(["strategy", *by], observed=True)[["c", "c2"]].sum().reset_index().join(n, on="strategy")
    mean = cells["c"] / cells["n"]
    cells["se"] = np.sqrt(np.maximum(cells["c2"] / cells["n"] - mean**2, 0) / cells["n"])
    cells["estimate"] = mean
    return cells.set_index(["strategy", *by])[["estimate", "se"]]


def survival_table_at(episodes: pd.DataFrame) -> pd.DataFrame:
    """Drug survival (Kaplan-Meier, Greenwood SE) per strategy and treatment at 12, 24, 36 months."""
    rows = []
    curves = drug_survival(episodes, by=["strategy", "treatment"])
    for (strategy, treatment), curve in curves.groupby(["strategy", "treatment"], observed=True):
        for months in SURVIVAL_TIMES_MONTHS:
            before = curve[curve["time_months"] <= months]
            if (curve["time_months"] >= months).sum() == 0 or before.iloc[-1]["at_risk"] < 20:
                continue
            last = before.iloc[-1]
            rows.append((strategy, treatment, months, last["survival"], last["standard_error"]))
    frame = pd.DataFrame(rows, columns=["strategy", "treatment", "months", "estimate", "se"])
    return frame.set_index(["strategy", "treatment", "months"])


def _patient_proportions(patients: pd.DataFrame) -> pd.DataFrame:
    """Per strategy: ever returned to topical therapy, and the share using each number of lines."""
    p = patients.assign(returned=patients["months_to_first_topical"].notna())
    rows = []
    for strategy, group in p.groupby("strategy", observed=True):
        outcomes = {"returned_to_topical": group["returned"]}
        outcomes |= {f"lines_used={k}": group["lines_used"] == k for k in range(int(p["lines_used"].max()) + 1)}
        for metric, flags in outcomes.items():
            share = flags.mean()
            rows.append((strategy, metric, share, math.sqrt(share * (1 - share) / len(group))))
        lines = group["lines_used"]
        rows.append((strategy, "mean_lines_used", lines.mean(), lines.std() / math.sqrt(len(group))))
    return pd.DataFrame(rows, columns=["strategy", "metric", "estimate", "se"]).set_index(["strategy", "metric"])


def _burst_proportions(bursts: pd.DataFrame) -> pd.DataFrame:
    """Per strategy and reason: the share of bursts that worked and that were followed by a rebound."""
    rows = []
    for (strategy, reason), group in bursts.groupby(["strategy", "reason"], observed=True):
        for metric in ("effective", "rebound"):
            share = group[metric].mean()
            rows.append((strategy, reason, metric, share, math.sqrt(share * (1 - share) / len(group))))
    return pd.DataFrame(rows, columns=["strategy", "reason", "metric", "estimate", "se"]).set_index(
        ["strategy", "reason", "metric"])


def _compare(des: pd.DataFrame, vector: pd.DataFrame, what: str, absent_is_zero: bool = True) -> list[str]:
    """Cells whose estimates differ by more than `TOLERANCE_SE` standard errors.

    A cell absent from one run counts as 0 (no such episodes), or is skipped when
    `absent_is_zero` is False (an estimate that could not be made).
    """
    both = des.join(vector, how="outer" if absent_is_zero else "inner", lsuffix="_des", rsuffix="_vector")
    both = both.fillna(0.0)
    difference = (both["estimate_des"] - both["estimate_vector"]).abs()
    se = np.sqrt(both["se_des"] ** 2 + both["se_vector"] ** 2)
    bad = both[difference > TOLERANCE_SE * se + 1e-12]
    return [f"{what} {key}: DES {row.estimate_des:.4f} (SE {row.se_des:.4f}) vs vector "
            f"{row.estimate_vector:.4f} (SE {row.se_vector:.4f})" for key, row in bad.iterrows()]


def _durations_differ(des: pd.DataFrame, vector: pd.DataFrame) -> list[str]:
    """Strategy-treatment pairs whose episode durations fail a two-sample KS test."""
    out = []
    durations = {name: e.assign(months=e["stop"] - e["start"]) for name, e in (("des", des), ("vector", vector))}
    for key, group in durations["des"].groupby(["strategy", "treatment"], observed=True):
        other = durations["vector"]
        other = other[(other["strategy"] == key[0]) & (other["treatment"] == key[1])]
        if len(group) < 30 or len(other) < 30:
            continue
        p = stats.ks_2samp(group["months"], other["months"]).pvalue
        if p < KS_LEVEL:
            out.append(f"durations {key}: KS p = {p:.2g} ({len(group)} vs {len(other)} episodes)")
    return out
