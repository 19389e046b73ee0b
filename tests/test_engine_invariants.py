"""Invariants of simulated trajectories on thousands of patients of the bundled scenario."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sim.loader import load_scenario
from sim.model import compile_model
from sim.runner import simulate
from sim.tables import EPISODE_COLUMNS, FINAL_STATES, PATIENT_COLUMNS, REASONS

PATIENTS = 3000


@pytest.fixture(scope="module")
def run():
    loaded = load_scenario("adult_conventional_bordeaux", {"settings.patients": PATIENTS})
    model = compile_model(loaded.scenario, loaded.name)
    return model, simulate(model, progress=False)


def test_tables_have_the_documented_columns(run):
    _, tables = run
    assert list(tables.episodes.columns) == list(EPISODE_COLUMNS)
    covariates = ["age_years", "sex", "ige_over_150_kU_per_l", "age_at_onset_of_dermatitis", "weight_kg", "tpmt_activity"]
    expected = list(PATIENT_COLUMNS)[:4] + covariates + list(PATIENT_COLUMNS)[4:]
    assert list(tables.patients.columns) == expected


def test_episodes_are_contiguous_ordered_and_within_observation(run):
    model, tables = run
    e = tables.episodes.merge(tables.patients[["strategy", "patient", "follow_up_months"]], on=["strategy", "patient"])
    assert (e["stop"] >= e["start"]).all()
    assert (e["stop"] <= e["follow_up_months"] + 1e-9).all()
    assert (e["follow_up_months"] <= model.horizon_months).all()
    previous_stop = e.groupby(["strategy", "patient"], observed=True)["stop"].shift(1)
    previous_reason = e.groupby(["strategy", "patient"], observed=True)["reason"].shift(1).astype(str)
    gap = e["start"] - previous_stop
    has_previous = previous_stop.notna()
    # Back to back, unless the previous episode ended in remission (then a topical spell).
    assert (gap[has_previous] >= -1e-9).all()
    contiguous = has_previous & (previous_reason != "remission")
    assert np.allclose(gap[contiguous], 0.0)
    assert (e.loc[~has_previous, "start"] == 0).all()
    numbers = e.groupby(["strategy", "patient"], observed=True)["episode"].apply(lambda s: list(s) == list(range(1, len(s) + 1)))
    assert numbers.all()


def test_one_row_and_one_final_state_per_patient_and_strategy(run):
    model, tables = run
    p = tables.patients
    assert len(p) == PATIENTS * len(model.strategies)
    assert not p.duplicated(["strategy", "patient"]).any()
    assert set(p["final_state"].astype(str)) <= set(FINAL_STATES)
    assert set(tables.episodes["reason"].astype(str)) <= set(REASONS)


def test_censoring_only_ends_the_last_episode(run):
    e = run[1].episodes
    last = e.groupby(["strategy", "patient"], observed=True)["episode"].transform("max") == e["episode"]
    censored = e["reason"].isin(["horizon", "lost_to_followup"])
    assert not (censored & ~last).any()


def test_responders_and_non_responders_behave_as_declared(run):
    e = run[1].episodes
    reason = e["reason"].astype(str)
    assert (e.loc[reason == "nonresponse", "responded"] == False).all()  # noqa: E712
    for planned in ("remission", "switch", "loss_of_response"):
        assert (e.loc[reason == planned, "responded"] == True).all(), planned  # noqa: E712
    duration = e["stop"] - e["start"]
    # Non-responders stop at the assessment, 3-6 months in every treatment.
    nonresponse = duration[reason == "nonresponse"]
    assert nonresponse.between(3 - 1e-9, 6 + 1e-9).all()
    # The response is unknown only when the episode ended before 6 months.
    assert (duration[e["responded"].isna()] <= 6 + 1e-9).all()
    assert (e["assessed"].isna() == e["responded"].isna()).all()
    known = e["assessed"].notna()
    assert (e.loc[known, "assessed"] >= e.loc[known, "start"] + 3 - 1e-9).all()
    assert (e.loc[known, "assessed"] <= e.loc[known, "stop"] + 1e-9).all()


def test_combination_only_after_methotrexate_failure(run):
    e = run[1].episodes
    failed_mtx = e[(e["treatment"] == "methotrexate") & e["reason"].isin(["nonresponse", "adverse_event", "loss_of_response"])]
    combo = e[e["treatment"] == "mtx_aza"].drop_duplicates(["strategy", "patient"])
    merged = combo.merge(failed_mtx[["strategy", "patient", "stop"]], on=["strategy", "patient"], how="left")
    assert merged["stop_y"].notna().all()
    assert (merged["stop_y"] <= merged["start"] + 1e-9).all()


def test_patient_times_add_up_to_follow_up(run):
    p = run[1].patients
    total = p["months_systemic"] + p["months_topical"] + p["months_supportive_care"]
    assert np.allclose(total, p["follow_up_months"])
    on_topical = p["final_state"] == "topical"
    assert p.loc[on_topical, "months_to_first_topical"].notna().all()


def test_strategies_share_patients_covariates(run):
    p = run[1].patients
    by_strategy = [frame.reset_index(drop=True) for _, frame in p.groupby("strategy", observed=True)]
    for other in by_strategy[1:]:
        pd.testing.assert_series_equal(by_strategy[0]["age_years"], other["age_years"])
        pd.testing.assert_series_equal(by_strategy[0]["follow_up_months"], other["follow_up_months"])


def test_adverse_events_table_agrees_with_episode_counts(run):
    e, ae = run[1].episodes, run[1].adverse_events
    counted = ae.groupby(["strategy", "patient", "episode"], observed=True).size()
    declared = e.set_index(["strategy", "patient", "episode"])["adverse_events"]
    declared = declared[declared > 0]
    assert counted.sort_index().tolist() == declared.sort_index().tolist()
    stopped = ae[ae["stopped_treatment"]]
    assert len(stopped) == (e["reason"] == "adverse_event").sum()


def test_tpmt_deficient_patients_never_receive_azathioprine(run):
    _, tables = run
    e = tables.episodes.merge(tables.patients[["strategy", "patient", "tpmt_activity"]])
    assert (e.loc[e["treatment"] == "azathioprine", "tpmt_activity"] != "deficient").all()
