"""Drug survival and competing risks: against hand computation, lifelines and the truth."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from closed_form_episodes import exponential_episodes, true_incidence, true_survival
from tiny_runs import tiny_run
from scipy import stats

from analysis.survival import (
    DISCONTINUATION_REASONS,
    cumulative_incidence,
    drug_survival,
    drug_survival_in_parts,
    event_reasons,
    incidence_at,
    kaplan_meier,
    median_survival,
    survival_at,
    with_patient_columns,
)

lifelines = pytest.importorskip("lifelines")

# Ten episodes, by hand (months, reason). Ties: an event and a censoring at 3 months (the
# censored episode is still at risk at 3), two events at 5 months.
TEN = [
    (2, "nonresponse"),
    (3, "lost_to_followup"),
    (3, "adverse_event"),
    (5, "remission"),
    (5, "nonresponse"),
    (7, "horizon"),
    (8, "loss_of_response"),
    (10, "horizon"),
    (12, "switch"),
    (15, "horizon"),
]

# Kaplan–Meier by hand: time -> (at risk, events, survival).
#   t=2: 10 at risk, 1 event      S = 9/10
#   t=3:  9 at risk, 1 event      S = 9/10 · 8/9 = 0.8
#   t=5:  7 at risk, 2 events     S = 0.8 · 5/7 = 4/7
#   t=7:  5 at risk, censored     S = 4/7
#   t=8:  4 at risk, 1 event      S = 4/7 · 3/4 = 3/7
#   t=10: 3 at risk, censored     S = 3/7
#   t=12: 2 at risk, 1 event      S = 3/7 · 1/2 = 3/14
#   t=15: 1 at risk, censored     S = 3/14
HAND_KM = {
    0: (10, 0, 1.0),
    2: (10, 1, 0.9),
    3: (9, 1, 0.8),
    5: (7, 2, 4 / 7),
    7: (5, 0, 4 / 7),
    8: (4, 1, 3 / 7),
    10: (3, 0, 3 / 7),
    12: (2, 1, 3 / 14),
    15: (1, 0, 3 / 14),
}
# Greenwood at 5 months: S² · (1/(10·9) + 1/(9·8) + 2/(7·5)).
HAND_SE_AT_5 = (4 / 7) * np.sqrt(1 / 90 + 1 / 72 + 2 / 35)
# Aalen–Johansen by hand: increments S(t−) · d_k / n at each event time.
#   nonresponse: 1 · 1/10 (t=2) + 0.8 · 1/7 (t=5) = 0.1 + 0.8/7
#   adverse_event: 0.9 · 1/9 (t=3) = 0.1;  remission: 0.8 · 1/7 (t=5)
#   loss_of_response: 4/7 · 1/4 (t=8) = 1/7;  switch: 3/7 · 1/2 (t=12) = 3/14
HAND_INCIDENCE_AT_15 = {
    "nonresponse": 0.1 + 0.8 / 7,
    "adverse_event": 0.1,
    "remission": 0.8 / 7,
    "loss_of_response": 1 / 7,
    "switch": 3 / 14,
}


def ten_episodes() -> pd.DataFrame:
    durations, reasons = zip(*TEN)
    frame = exponential_episodes(10, {"nonresponse": 1.0}, 0.0, 100.0, seed=0)
    frame["start"] = 1.5  # durations are stop − start, not stop
    frame["stop"] = 1.5 + np.array(durations, dtype=float)
    frame["reason"] = pd.Categorical(reasons, categories=frame["reason"].cat.categories)
    return frame


def test_kaplan_meier_by_hand():
    curve = drug_survival(ten_episodes(), by=None)
    got = {
        t: (n, d, s)
        for t, n, d, s in curve[["time_months", "at_risk", "events", "survival"]].itertuples(
            index=False
        )
    }
    assert set(got) == set(HAND_KM)
    for t, (n, d, s) in HAND_KM.items():
        assert got[t][:2] == (n, d)
        assert got[t][2] == pytest.approx(s, abs=1e-12)
    at5 = curve[curve["time_months"] == 5].iloc[0]
    assert at5["standard_error"] == pytest.approx(HAND_SE_AT_5, rel=1e-12)


def test_median_survival_at_and_beyond_follow_up_by_hand():
    curve = drug_survival(ten_episodes(), by=None)
    median = median_survival(curve).iloc[0]
    assert median["median_months"] == 8  # first time S ≤ 0.5
    assert median["subjects"] == 10
    at = survival_at(curve, [0, 4.9, 6, 12, 15, 16]).set_index("time_months")
    assert at["survival"].tolist()[:5] == pytest.approx([1.0, 0.8, 4 / 7, 3 / 14, 3 / 14])
    assert np.isnan(at.loc[16.0, "survival"])  # after the last observed duration
    assert at["at_risk"].tolist() == [10, 7, 5, 2, 1, 0]


def test_cumulative_incidence_by_hand():
    incidence = cumulative_incidence(ten_episodes(), by=None)
    at15 = incidence_at(incidence, [15.0]).set_index("reason")["cumulative_incidence"]
    for reason, value in HAND_INCIDENCE_AT_15.items():
        assert at15[reason] == pytest.approx(value, abs=1e-12)


def test_event_definitions_change_what_counts():
    episodes = ten_episodes()
    ae_only = drug_survival(episodes, by=None, event="adverse_event")
    # Only the adverse event at 3 months (9 at risk) is an event.
    assert ae_only["survival"].iloc[-1] == pytest.approx(8 / 9)
    ineffective = drug_survival(episodes, by=None, event="ineffectiveness")
    assert ineffective["events"].sum() == 3  # two non-responses, one loss of response
    assert event_reasons("excluding_remission") == (
        "nonresponse",
        "adverse_event",
        "loss_of_response",
        "switch",
    )
    assert event_reasons(["switch"]) == ("switch",)
    with pytest.raises(ValueError, match="always censor"):
        event_reasons(["horizon"])
    with pytest.raises(ValueError, match="unknown event definition"):
        event_reasons("side_effects")


def _lifelines_km(durations, observed):
    fitter = lifelines.KaplanMeierFitter().fit(durations, observed)
    frame = fitter.survival_function_.join(fitter.confidence_interval_)
    frame.columns = ["survival", "low", "high"]
    return fitter, frame


@pytest.mark.parametrize("event", ["any_discontinuation", "adverse_event", "excluding_remission"])
def test_kaplan_meier_matches_lifelines(event):
    run = tiny_run(patients=300, seed=11)
    episodes = run.episodes
    curve = drug_survival(episodes, by=["strategy", "treatment"], event=event)
    medians = median_survival(curve)
    events = set(event_reasons(event))
    for (strategy, treatment), group in episodes.groupby(["strategy", "treatment"], observed=True):
        observed = group["reason"].astype(object).isin(events)
        fitter, expected = _lifelines_km(group["stop"] - group["start"], observed)
        mine = curve[(curve["strategy"] == strategy) & (curve["treatment"] == treatment)]
        mine = mine.set_index("time_months")
        joined = mine.join(expected, how="inner", rsuffix="_lifelines")
        assert len(joined) == len(expected) == len(mine)
        np.testing.assert_allclose(joined["survival"], joined["survival_lifelines"], atol=1e-12)
        inside = (joined["survival"] > 0) & (joined["survival"] < 1)
        np.testing.assert_allclose(
            joined.loc[inside, "ci_low"], joined.loc[inside, "low"], atol=1e-10
        )
        np.testing.assert_allclose(
            joined.loc[inside, "ci_high"], joined.loc[inside, "high"], atol=1e-10
        )
        mine_median = medians[
            (medians["strategy"] == strategy) & (medians["treatment"] == treatment)
        ]
        expected_median = fitter.median_survival_time_
        got = mine_median["median_months"].iloc[0]
        assert (np.isnan(got) and np.isinf(expected_median)) or got == expected_median
        band = lifelines.utils.median_survival_times(fitter.confidence_interval_).to_numpy().ravel()
        band = np.where(np.isinf(band), np.nan, band)
        np.testing.assert_array_equal(mine_median[["ci_low", "ci_high"]].to_numpy().ravel(), band)


def test_kaplan_meier_of_any_column_and_by_patient_covariate():
    run = tiny_run(patients=150, seed=4)
    episodes = with_patient_columns(run.episodes, run.patients, ["sex"])
    by_sex = drug_survival(episodes, by=["sex"])
    assert list(by_sex["sex"].cat.categories) == ["female", "male"]
    female = episodes[episodes["sex"] == "female"]
    alone = drug_survival(female, by=None)
    np.testing.assert_allclose(by_sex.loc[by_sex["sex"] == "female", "survival"], alone["survival"])
    frame = pd.DataFrame({"months": [1.0, 2.0, 2.0, 4.0], "seen": [True, False, True, True]})
    curve = kaplan_meier(frame, "months", "seen")
    # t=1: 3/4; t=2: one event of 3 at risk (the censored one still counts) → 1/2; t=4: 0.
    assert curve["survival"].tolist() == pytest.approx([1.0, 0.75, 0.5, 0.0])


def test_aalen_johansen_matches_lifelines():
    hazards = {"nonresponse": 0.05, "adverse_event": 0.02, "remission": 0.03}
    episodes = exponential_episodes(300, hazards, 0.02, 36.0, seed=5)  # continuous: no ties
    incidence = cumulative_incidence(episodes, by=None)
    codes = {reason: i + 1 for i, reason in enumerate(DISCONTINUATION_REASONS)}
    event = episodes["reason"].astype(object).map(codes).fillna(0).astype(int)
    for reason in hazards:
        fitter = lifelines.AalenJohansenFitter(calculate_variance=True).fit(
            episodes["stop"] - episodes["start"], event, event_of_interest=codes[reason]
        )
        expected = fitter.cumulative_density_.join(fitter.variance_.rename("variance"))
        expected.columns = ["incidence", "variance"]
        # lifelines labels its two limits the other way round; compare them as a set.
        band = fitter.confidence_interval_.to_numpy()
        expected["low"], expected["high"] = band.min(axis=1), band.max(axis=1)
        mine = incidence[incidence["reason"] == reason].set_index("time_months")
        joined = mine.join(expected, how="inner")
        assert len(joined) >= (mine["events"] > 0).sum()
        np.testing.assert_allclose(joined["cumulative_incidence"], joined["incidence"], atol=1e-12)
        # lifelines gives NaN when the last episode at risk stops (0 · ∞); the limit is
        # the variance just before, which is what we report.
        defined = joined["variance"].notna()
        assert (~defined).sum() <= 1
        np.testing.assert_allclose(
            joined.loc[defined, "standard_error"] ** 2, joined.loc[defined, "variance"], atol=1e-12
        )
        positive = (joined["incidence"] > 0) & defined
        np.testing.assert_allclose(
            joined.loc[positive, "ci_low"], joined.loc[positive, "low"], atol=1e-10
        )
        np.testing.assert_allclose(
            joined.loc[positive, "ci_high"], joined.loc[positive, "high"], atol=1e-10
        )
        # Between event times the step function must agree with lifelines at every time.
        times = expected.index.to_numpy()
        stepped = incidence_at(incidence, times)
        stepped = stepped[stepped["reason"] == reason]["cumulative_incidence"].to_numpy()
        np.testing.assert_allclose(stepped, expected["incidence"].to_numpy(), atol=1e-12)


def test_incidences_plus_drug_survival_sum_to_one_at_every_time():
    run = tiny_run(patients=400, replicates=2, seed=2)
    episodes = run.episodes.copy()
    episodes["stop"] = episodes["start"] + np.round(episodes["stop"] - episodes["start"])  # ties
    by = ["strategy", "treatment"]
    incidence = cumulative_incidence(episodes, by=by)
    curve = drug_survival(episodes, by=by)
    total = incidence.groupby([*by, "time_months"], observed=True)["cumulative_incidence"].sum()
    survival = curve.set_index([*by, "time_months"])["survival"]
    joined = pd.concat([total, survival], axis=1, join="inner")
    assert len(joined) == len(total)  # every incidence time is a KM time
    np.testing.assert_allclose(joined["cumulative_incidence"] + joined["survival"], 1.0, atol=1e-12)
    # And on a grid, including censoring-only times between event times.
    grid = np.linspace(0, 60, 121)
    on_grid = (
        incidence_at(incidence, grid)
        .groupby([*by, "time_months"], observed=True)["cumulative_incidence"]
        .sum()
    )
    km = survival_at(curve, grid).set_index([*by, "time_months"])["survival"]
    both = pd.concat([on_grid, km], axis=1).dropna()
    np.testing.assert_allclose(both["cumulative_incidence"] + both["survival"], 1.0, atol=1e-12)


def _coverage_tolerance(repetitions: int, level: float = 0.95) -> float:
    # Four Monte Carlo standard errors of a proportion estimated from `repetitions`.
    return 4 * np.sqrt(level * (1 - level) / repetitions)


def test_confidence_bands_cover_the_true_curves():
    """Over many small samples from a known model the 95% intervals hold the truth ≈95%."""
    hazards = {"nonresponse": 0.04, "adverse_event": 0.015, "remission": 0.025}
    repetitions, n, horizon = 600, 80, 36.0
    frames = []
    for i in range(repetitions):
        sample = exponential_episodes(n, hazards, 0.02, horizon, seed=1000 + i)
        frames.append(sample.assign(sample=i))
    episodes = pd.concat(frames, ignore_index=True)
    times = [6.0, 12.0, 24.0]
    curve = drug_survival(episodes, by="sample")
    at = survival_at(curve, times)
    truth = true_survival(hazards, at["time_months"])
    inside = ((at["ci_low"] <= truth) & (truth <= at["ci_high"])).groupby(at["time_months"]).mean()
    tolerance = _coverage_tolerance(repetitions)
    assert (inside - 0.95).abs().max() < tolerance, inside.to_dict()

    incidence = incidence_at(cumulative_incidence(episodes, by="sample"), times)
    ae = incidence[incidence["reason"] == "adverse_event"]
    truth = true_incidence(hazards, "adverse_event", ae["time_months"])
    inside = ((ae["ci_low"] <= truth) & (truth <= ae["ci_high"])).groupby(ae["time_months"]).mean()
    assert (inside - 0.95).abs().max() < tolerance, inside.to_dict()


def test_estimates_converge_to_the_truth():
    hazards = {"nonresponse": 0.04, "adverse_event": 0.015, "remission": 0.025}
    episodes = exponential_episodes(20_000, hazards, 0.02, 36.0, seed=9)
    at = survival_at(drug_survival(episodes, by=None), [12.0]).iloc[0]
    se = (at["ci_high"] - at["ci_low"]) / (2 * stats.norm.ppf(0.975))
    assert abs(at["survival"] - true_survival(hazards, 12.0)) < 4 * se
    total = sum(hazards.values())
    median = median_survival(drug_survival(episodes, by=None))["median_months"].iloc[0]
    assert median == pytest.approx(np.log(2) / total, rel=0.05)


def test_zero_length_episodes_and_empty_groups():
    episodes = ten_episodes()
    episodes.loc[0, "stop"] = episodes.loc[0, "start"]  # stopped the day it started
    curve = drug_survival(episodes, by=None)
    assert curve["time_months"].iloc[0] == 0
    assert curve["survival"].iloc[0] == pytest.approx(0.9)
    empty = drug_survival(episodes.iloc[:0], by=["strategy"])
    assert empty.empty and "survival" in empty.columns


def test_drug_survival_in_parts_is_drug_survival():
    """One strategy at a time, by group numbers: the very rows of one call, also with a key
    missing, another event definition, an unobserved strategy and text keys."""
    run = tiny_run(patients=200, seed=13, horizon_months=40.0)
    episodes = run.episodes.copy()
    pd.testing.assert_frame_equal(drug_survival_in_parts(episodes), drug_survival(episodes))
    episodes.loc[episodes.index[::7], "treatment"] = np.nan
    episodes["strategy"] = episodes["strategy"].cat.add_categories(["never_run"])
    for by, event in ((["strategy", "treatment"], "ineffectiveness"), (["strategy", "line"], "any_discontinuation"),
                      (["treatment"], "adverse_event")):
        pd.testing.assert_frame_equal(drug_survival_in_parts(episodes, by, event), drug_survival(episodes, by, event))
    text = run.episodes.astype({"strategy": str})
    pd.testing.assert_frame_equal(drug_survival_in_parts(text), drug_survival(text))
    assert drug_survival_in_parts(episodes.iloc[:0]).empty
    some = ["time_months", "survival", "ci_high"]
    pd.testing.assert_frame_equal(drug_survival_in_parts(run.episodes, columns=some),
                                  drug_survival(run.episodes)[["strategy", "treatment", *some]])


def test_incidence_at_chosen_times_equals_reading_the_full_table():
    run = tiny_run(patients=200, seed=12, horizon_months=40.0)
    times = [0.0, 3.0, 12.0, 24.0, 36.0, 45.0]
    full = incidence_at(cumulative_incidence(run.episodes), times)
    direct = cumulative_incidence(run.episodes, times_months=times)
    columns = [
        "strategy",
        "treatment",
        "time_months",
        "reason",
        "cumulative_incidence",
        "ci_low",
        "ci_high",
    ]
    pd.testing.assert_frame_equal(direct[columns], full[columns])
    # Past the 40-month horizon only groups in which every episode had stopped are known.
    late = direct[direct["time_months"] == 45.0].groupby(["strategy", "treatment"], observed=True)
    totals = late["cumulative_incidence"].sum(min_count=5)
    assert totals.isna().any()
    np.testing.assert_allclose(totals.dropna(), 1.0)


@pytest.mark.parametrize("seed", [3, 4])
def test_incidence_at_chosen_times_with_ties_equals_the_full_table_read_by_hand(seed):
    """Whole-month durations give ties of events and censorings, censoring-only times and
    chosen times before the first stop, at a stop and past the data: the direct estimate
    (and its standard error) equals the full-resolution table read at its last row at or
    before each time, NaN past a group's last duration unless all of it had stopped."""
    episodes = tiny_run(patients=150, seed=seed, horizon_months=30.0).episodes.copy()
    episodes["stop"] = episodes["start"] + np.ceil(episodes["stop"] - episodes["start"])
    times = np.array([0.0, 0.5, 1.0, 2.5, 7.0, 12.0, 29.0, 30.0, 31.0, 45.0])
    columns = ["cumulative_incidence", "standard_error", "ci_low", "ci_high"]
    full = cumulative_incidence(episodes, by="treatment")
    direct = cumulative_incidence(episodes, by="treatment", times_months=list(times))
    compared = 0
    for treatment, curve in full.groupby("treatment", observed=True):
        last_time = curve["time_months"].max()
        stopped = curve[curve["time_months"] == last_time]["cumulative_incidence"].sum()
        for reason, rows in curve.groupby("reason", observed=True):
            at = np.searchsorted(rows["time_months"].to_numpy(), times, side="right") - 1
            expected = rows[columns].to_numpy()[at]
            expected[(times > last_time) & ~np.isclose(stopped, 1.0)] = np.nan
            got = direct[(direct["treatment"] == treatment) & (direct["reason"] == reason)]
            np.testing.assert_array_equal(got["time_months"], times)
            np.testing.assert_allclose(got[columns].to_numpy(), expected, rtol=1e-12, atol=1e-15)
            compared += 1
    assert compared == full["treatment"].nunique() * len(DISCONTINUATION_REASONS)
    assert np.isnan(direct["cumulative_incidence"]).any() and (direct["cumulative_incidence"] > 0).any()


@pytest.mark.parametrize("categories", [4, 60])  # few possible combinations are counted, many sorted
def test_categorical_group_ids_match_pandas_grouping(categories):
    """The codes-based grouping of categorical keys equals pandas' (observed, sorted, NaN dropped)."""
    import numpy as np
    import pandas as pd

    from analysis.survival import _categorical_group_ids

    rng = np.random.default_rng(5)
    names = [f"level{i:02d}" for i in range(categories)]
    frame = pd.DataFrame({
        "strategy": pd.Categorical.from_codes(rng.integers(-1, categories - 1, 500), categories=names[::-1]),
        "treatment": pd.Categorical.from_codes(rng.integers(0, categories, 500), categories=names),
    })
    ids, keys = _categorical_group_ids(frame, ["strategy", "treatment"])
    grouper = frame.groupby(["strategy", "treatment"], observed=True, sort=True, dropna=True)
    assert np.array_equal(ids, grouper.ngroup().fillna(-1).to_numpy(dtype=np.int64))  # -1: a key missing
    pd.testing.assert_frame_equal(keys, grouper.size().reset_index()[["strategy", "treatment"]])


def _four_subjects(durations, events):
    from analysis.survival import kaplan_meier

    frame = pd.DataFrame({"months": np.asarray(durations, float), "stopped": np.asarray(events, bool)})
    return kaplan_meier(frame, "months", "stopped")


def test_median_on_a_flat_at_one_half_is_its_midpoint_and_the_upper_limit_is_missing_as_in_r():
    # By hand: S = 3/4 at 1, 1/2 at 2 (flat through the censoring at 3), 0 at 5. R's
    # quantile.survfit: median (2 + 5)/2 = 3.5; lower band 3/4^exp(1.96 * 1.0035) = 0.13
    # at month 1 (limit 1); upper band 0.96, 0.85, 0.85, then missing at S = 0 (limit NA).
    curve = _four_subjects([1, 2, 3, 5], [1, 1, 0, 1])
    median = median_survival(curve).iloc[0]
    assert median["median_months"] == 3.5
    assert median["ci_low"] == 1.0
    assert np.isnan(median["ci_high"])
    last = curve[curve["time_months"] == 5].iloc[0]
    assert last["survival"] == 0 and np.isnan(last["ci_low"]) and np.isnan(last["ci_high"])
    at2 = curve[curve["time_months"] == 2].iloc[0]
    sigma = math.sqrt(1 / 12 + 1 / 6) / math.log(2)
    assert at2["ci_high"] == pytest.approx(0.5 ** math.exp(-stats.norm.ppf(0.975) * sigma), rel=1e-12)


def test_median_on_a_flat_at_one_half_that_ends_the_curve_runs_to_the_last_time():
    curve = _four_subjects([1, 2, 3, 4], [1, 1, 0, 0])
    assert median_survival(curve).iloc[0]["median_months"] == 3.0  # (2 + 4) / 2, as R
