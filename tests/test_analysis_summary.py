"""summary.csv: its columns, metrics, agreement with the estimators, and byte stability."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tiny_runs import STRATEGIES, tiny_run

from analysis.summary import SUMMARY_COLUMNS, summarize_run, treatment_metrics
from analysis.survival import drug_survival, median_survival, survival_at


@pytest.fixture(scope="module")
def run():
    return tiny_run(patients=250, replicates=2, seed=5)


@pytest.fixture(scope="module")
def summary(run):
    return summarize_run(run.episodes, run.patients)


def test_columns_and_required_metrics(summary, run):
    assert list(summary.columns) == SUMMARY_COLUMNS
    strategy_rows = summary[summary["treatment"].isna()]
    for strategy in STRATEGIES:
        metrics = set(strategy_rows.loc[strategy_rows["strategy"] == strategy, "metric"])
        assert {
            "returned_to_topical_ever",
            "on_topical_at_horizon",
            "lines_used_mean",
            "first_line_median_drug_survival_months",
        } <= metrics
    pairs = run.episodes.groupby(["strategy", "treatment"], observed=True).size().index
    for strategy, treatment in pairs:
        rows = summary[(summary["strategy"] == strategy) & (summary["treatment"] == treatment)]
        assert rows["metric"].tolist() == treatment_metrics([12, 24, 36])
        assert {
            "drug_survival_12m",
            "drug_survival_24m",
            "drug_survival_36m",
            "median_drug_survival_months",
        } <= set(rows["metric"])


def test_values_are_those_of_the_estimators(summary, run):
    curve = drug_survival(run.episodes)
    at = survival_at(curve, [12, 24, 36])
    medians = median_survival(curve)
    for row in at.itertuples(index=False):
        got = summary[
            (summary["strategy"] == row.strategy)
            & (summary["treatment"] == row.treatment)
            & (summary["metric"] == f"drug_survival_{row.time_months:g}m")
        ].iloc[0]
        assert got["value"] == pytest.approx(row.survival, rel=1e-9, nan_ok=True)
        assert got["ci_low"] == pytest.approx(row.ci_low, rel=1e-9, nan_ok=True)
    for row in medians.itertuples(index=False):
        got = summary[
            (summary["strategy"] == row.strategy)
            & (summary["treatment"] == row.treatment)
            & (summary["metric"] == "median_drug_survival_months")
        ].iloc[0]
        assert got["value"] == pytest.approx(row.median_months, rel=1e-9, nan_ok=True)
    on_topical = summary[(summary["metric"] == "on_topical_at_horizon")].set_index("strategy")[
        "value"
    ]
    crude = run.patients.groupby("strategy", observed=True)["final_state"].apply(
        lambda s: (s == "topical").mean()
    )
    for strategy in STRATEGIES:
        # Two replicates of equal size: the mean of replicate proportions is the pooled one.
        assert on_topical[strategy] == pytest.approx(crude[strategy], rel=1e-9)


def test_median_not_reached_is_nan():
    run = tiny_run(patients=40, seed=2, horizon_months=3.0)
    summary = summarize_run(run.episodes, run.patients)
    medians = summary[summary["metric"] == "median_drug_survival_months"]
    assert medians["value"].isna().any()
    assert summary.loc[summary["metric"] == "drug_survival_36m", "value"].isna().all()


def test_same_input_gives_byte_identical_csv(run, summary):
    again = summarize_run(run.episodes.copy(), run.patients.copy())
    assert summary.to_csv(index=False) == again.to_csv(index=False)
    shuffled = summarize_run(
        run.episodes.sample(frac=1.0, random_state=1), run.patients.sample(frac=1.0, random_state=2)
    )
    assert shuffled.to_csv(index=False) == summary.to_csv(index=False)


def test_row_order_is_strategy_then_treatment(summary):
    order = list(dict.fromkeys(summary["strategy"]))
    assert order == list(STRATEGIES)
    first = summary[summary["strategy"] == "csa_first"]
    treatments = list(dict.fromkeys(first["treatment"].dropna()))
    assert treatments == STRATEGIES["csa_first"]  # category order of the treatments
    assert first["treatment"].isna().to_numpy()[: first["treatment"].isna().sum()].all()


def test_strings_only_and_no_categoricals(summary):
    assert summary["strategy"].dtype == object and summary["treatment"].dtype == object
    assert np.isfinite(summary.loc[summary["metric"] == "patients_n", "value"]).all()
    assert isinstance(summary, pd.DataFrame)
