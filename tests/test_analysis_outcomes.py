"""Return to topical therapy, states over time, intervals, adverse events, paired differences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tiny_runs import STRATEGIES, tiny_run
from scipy import stats

from analysis.differences import strategy_differences
from analysis.intervals import poisson_rate_interval, proportion_estimates, wilson_interval
from analysis.outcomes import (
    adverse_event_rates,
    adverse_event_rates_on_treatment,
    first_response,
    lines_used,
    mean_outcomes,
    patient_outcomes,
    topical_return,
    topical_return_at_horizon,
)
from analysis.states import state_counts, state_occupancy, state_segments


@pytest.fixture(scope="module")
def run():
    return tiny_run(patients=300, replicates=1, seed=7)


@pytest.fixture(scope="module")
def replicated():
    return tiny_run(patients=150, replicates=4, seed=8)


def test_state_timeline_agrees_with_the_patient_summaries(run):
    segments = state_segments(run.episodes, run.patients)
    follow_up = run.patients["follow_up_months"].to_numpy()[segments["patient_row"]]
    observed = (np.minimum(segments["stop_months"], follow_up) - segments["start_months"]).clip(
        lower=0
    )
    for state, column in (
        ("topical", "months_topical"),
        ("supportive_care", "months_supportive_care"),
    ):
        months = observed[segments["state"] == state].groupby(segments["patient_row"]).sum()
        months = months.reindex(range(len(run.patients)), fill_value=0.0)
        np.testing.assert_allclose(months, run.patients[column], atol=1e-9)
    systemic = segments["state"].str.startswith("systemic_line_")
    months = observed[systemic].groupby(segments["patient_row"]).sum()
    np.testing.assert_allclose(
        months.reindex(range(len(run.patients)), fill_value=0.0),
        run.patients["months_systemic"],
        atol=1e-9,
    )


def test_state_at_the_horizon_is_the_final_state(run):
    counts = state_counts(run.episodes, run.patients, [60.0])
    counts["state"] = (
        counts["state"].astype(str).str.replace(r"systemic_line_\d+", "systemic", regex=True)
    )
    got = counts.groupby(["strategy", "state"], observed=True)["patients"].sum()
    expected = run.patients.groupby(["strategy", "final_state"], observed=True).size()
    expected.index = expected.index.set_names(["strategy", "state"])
    joined = pd.concat([got, expected], axis=1).fillna(0)
    np.testing.assert_array_equal(joined.iloc[:, 0], joined.iloc[:, 1])


def _counted_from_segments(episodes, patients, times):
    """Patients in each state at each time, by hand: a segment covers t when start <= t < stop."""
    segments = state_segments(episodes, patients)
    rows = []
    for t in times:
        covering = segments[(segments["start_months"] <= t) & (t < segments["stop_months"])]
        strategy = patients["strategy"].to_numpy()[covering["patient_row"]]
        counted = covering.groupby([strategy, covering["state"].astype(str)]).size()
        rows += [(s, t, state, n) for (s, state), n in counted.items()]
    return pd.DataFrame(rows, columns=["strategy", "time_months", "state", "patients"])


def _unusual_tables(run):
    """The run's tables shuffled, with some patients who never start a drug (some of them
    lost to follow-up), and with episodes that overlap the one before."""
    patients = run.patients.copy()
    without = patients["patient"] % 7 == 0
    dropped = set(zip(patients.loc[without, "strategy"], patients.loc[without, "patient"]))
    kept = [key not in dropped for key in zip(run.episodes["strategy"], run.episodes["patient"])]
    patients.loc[without & (patients["patient"] % 2 == 0), "final_state"] = "lost_to_followup"
    overlapping = run.episodes.copy()
    overlapping.loc[overlapping.index[5::9], "start"] -= 3.0
    return {
        "shuffled": (run.episodes.sample(frac=1.0, random_state=3), run.patients),
        "patients without episodes": (run.episodes[kept], patients),
        "overlapping episodes": (overlapping, run.patients),
    }


def test_state_counts_equal_the_segments_counted_by_hand(run):
    """`state_counts` counts without building the segments: it must count what they say,
    on tables in any order, with patients who never start a drug and overlapping episodes."""
    times = [0.0, 0.5, 6.0, 12.0, 30.0, 59.9, 60.0]
    unusual = _unusual_tables(run)
    pd.testing.assert_frame_equal(state_counts(*unusual["shuffled"], times),
                                  state_counts(run.episodes, run.patients, times))
    for name, (episodes, patients) in {"as run": (run.episodes, run.patients), **unusual}.items():
        counts = state_counts(episodes, patients, times)
        counts = counts[counts["patients"] > 0]
        got = sorted(zip(counts["strategy"].astype(str), counts["time_months"], counts["state"].astype(str),
                         counts["patients"]))
        expected = _counted_from_segments(episodes, patients, times)
        assert got == sorted(zip(expected["strategy"].astype(str), expected["time_months"], expected["state"],
                                 expected["patients"])), name


def test_state_counts_when_no_patient_started_a_drug(run):
    """A run without a single episode (it used to fail): everyone waits, or is on topical
    therapy or in supportive care as the final state says, and the lost leave at their
    follow-up."""
    patients = run.patients
    counts = state_counts(run.episodes.iloc[:0], patients, [0.0, 1e9])
    assert len(state_segments(run.episodes.iloc[:0], patients)) >= len(patients)
    at_start = counts[counts["time_months"] == 0.0].groupby("state", observed=True)["patients"].sum()
    final = patients["final_state"].astype(str)
    staying = final.where(final.isin(["topical", "supportive_care"]), "awaiting_treatment")
    assert at_start[at_start > 0].to_dict() == staying.value_counts().to_dict()
    at_end = counts[counts["time_months"] == 1e9]
    lost = at_end[at_end["state"] == "lost_to_followup"]["patients"].sum()
    assert lost == (final == "lost_to_followup").sum() and at_end["patients"].sum() == len(patients)


def test_state_occupancy_sums_to_one(replicated):
    occupancy = state_occupancy(replicated.episodes, replicated.patients)
    totals = occupancy.groupby(["strategy", "time_months"], observed=True)["proportion"].sum()
    np.testing.assert_allclose(totals, 1.0, atol=1e-12)
    assert (occupancy["ci_low"] >= 0).all() and (occupancy["ci_high"] <= 1).all()
    first = occupancy[(occupancy["time_months"] == 0) & (occupancy["state"] == "systemic_line_1")]
    np.testing.assert_allclose(first["proportion"], 1.0)  # everybody starts on line 1


def test_topical_return_at_horizon_is_the_crude_proportion(run):
    at = topical_return_at_horizon(run.patients).set_index(["strategy", "measure"])
    for strategy, patients in run.patients.groupby("strategy", observed=True):
        ever = patients["months_to_first_topical"].notna()
        topical = patients["final_state"] == "topical"
        for measure, flags in (
            ("returned_to_topical_ever", ever),
            ("on_topical_at_horizon", topical),
        ):
            row = at.loc[(strategy, measure)]
            assert row["proportion"] == pytest.approx(flags.mean())
            ci = stats.binomtest(int(flags.sum()), len(flags)).proportion_ci(method="wilson")
            assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_topical_return_curves_end_at_the_horizon_values(run):
    curve = topical_return(run.episodes, run.patients)
    at = topical_return_at_horizon(run.patients).set_index(["strategy", "measure"])["proportion"]
    last = curve[curve["time_months"] == 60.0].set_index(["strategy", "measure"])["proportion"]
    for strategy in STRATEGIES:
        assert (
            last[(strategy, "returned_to_topical_ever")]
            == at[(strategy, "returned_to_topical_ever")]
        )
        assert last[(strategy, "on_topical")] == pytest.approx(
            at[(strategy, "on_topical_at_horizon")]
        )
    ever = curve[curve["measure"] == "returned_to_topical_ever"]
    assert (ever.groupby("strategy", observed=True)["proportion"].diff().dropna() >= 0).all()


def test_wilson_and_poisson_intervals_against_scipy():
    for k, n in ((0, 10), (3, 10), (10, 10), (412, 1000)):
        ci = stats.binomtest(k, n).proportion_ci(method="wilson")
        assert tuple(float(v) for v in wilson_interval(k, n)) == pytest.approx(
            (ci.low, ci.high), abs=1e-12
        )
    rate, low, high = poisson_rate_interval([0, 5], [1.0, 2.0])
    assert high[0] == pytest.approx(-np.log(0.025), rel=1e-9)  # zero events: upper = −ln(α/2)
    assert low[0] == 0
    assert (low[1] * 2, high[1] * 2) == pytest.approx(
        (stats.chi2.ppf(0.025, 10) / 2, stats.chi2.ppf(0.975, 12) / 2)
    )
    assert rate[1] == 2.5


def test_several_replicates_use_the_spread_of_replicate_means():
    counts = pd.DataFrame(
        {"group": "a", "replicate": [0, 1, 2, 3], "successes": [30, 36, 33, 41], "n": 100}
    )
    got = proportion_estimates(counts, ["group"]).iloc[0]
    p = counts["successes"] / counts["n"]
    half = stats.t.ppf(0.975, 3) * p.std(ddof=1) / 2
    assert got["value"] == pytest.approx(p.mean())
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((p.mean() - half, p.mean() + half))
    assert got["replicates"] == 4


def test_lines_used_and_means(replicated):
    table = lines_used(replicated.patients)
    np.testing.assert_allclose(table.groupby("strategy", observed=True)["proportion"].sum(), 1.0)
    outcomes = patient_outcomes(replicated.patients, replicated.episodes)
    means = mean_outcomes(outcomes, ["lines_used", "returned_to_topical_ever"]).set_index(
        ["strategy", "metric"]
    )
    for strategy, group in outcomes.groupby("strategy", observed=True):
        per_replicate = group.groupby("replicate")["lines_used"].mean()
        row = means.loc[(strategy, "lines_used")]
        assert row["value"] == pytest.approx(per_replicate.mean())
        half = stats.t.ppf(0.975, 3) * per_replicate.std(ddof=1) / 2
        assert row["ci_high"] - row["value"] == pytest.approx(half)
        proportions = group.groupby("replicate")["returned_to_topical_ever"].mean()
        row = means.loc[(strategy, "returned_to_topical_ever")]
        half = stats.t.ppf(0.975, 3) * proportions.std(ddof=1) / 2
        assert (row["value"], row["ci_low"], row["ci_high"]) == pytest.approx(
            (proportions.mean(), max(proportions.mean() - half, 0), min(proportions.mean() + half, 1)))
        assert row["patients"] == len(group)


def test_one_replicate_means_use_patients_and_proportions_wilson(run):
    outcomes = patient_outcomes(run.patients, run.episodes)
    means = mean_outcomes(outcomes, ["returned_to_topical_ever", "months_systemic"]).set_index(
        ["strategy", "metric"]
    )
    assert list(means.index.get_level_values("metric")) == ["returned_to_topical_ever"] * 2 + ["months_systemic"] * 2
    for strategy, group in outcomes.groupby("strategy", observed=True):
        row = means.loc[(strategy, "returned_to_topical_ever")]
        k, n = int(group["returned_to_topical_ever"].sum()), len(group)
        assert row["value"] == k / n
        assert (row["ci_low"], row["ci_high"]) == tuple(float(x) for x in wilson_interval(k, n))
        months = group["months_systemic"]
        row = means.loc[(strategy, "months_systemic")]
        half = stats.t.ppf(0.975, n - 1) * months.std(ddof=1) / np.sqrt(n)
        assert (row["value"], row["ci_low"], row["ci_high"]) == pytest.approx(
            (months.mean(), months.mean() - half, months.mean() + half))


def test_first_response_is_the_assessment_of_the_first_responding_episode(run):
    first = first_response(run.episodes, run.patients)
    assert len(first) == len(run.patients) and (first["definition"] == "assessment").all()
    responded = run.episodes[run.episodes["responded"].fillna(False).astype(bool)]
    keys = ["replicate", "strategy", "patient"]
    earliest = responded.sort_values("start").groupby(keys, observed=True).first()
    got = first[first["responded"]].set_index(keys)
    np.testing.assert_allclose(
        got["months_to_first_response"], earliest["assessed"].reindex(got.index)
    )
    np.testing.assert_allclose(
        got["months_to_first_effective_treatment"], earliest["start"].reindex(got.index)
    )
    never = first[~first["responded"]]
    assert never["months_to_first_response"].isna().all()
    np.testing.assert_allclose(
        never["months_observed"], run.patients.loc[never.index, "follow_up_months"]
    )
    # Older runs have no assessment time: the start of the responding episode stands in.
    older = first_response(run.episodes.drop(columns="assessed"), run.patients)
    assert (older["definition"] == "episode_start").all()
    np.testing.assert_allclose(
        older["months_to_first_response"], first["months_to_first_effective_treatment"]
    )


def test_adverse_event_rates(run):
    rates = adverse_event_rates(run.patients, run.adverse_events)
    years = run.patients.groupby("strategy", observed=True)["follow_up_months"].sum() / 12
    for strategy, events in run.adverse_events.groupby("strategy", observed=True):
        row = rates[
            (rates["strategy"] == strategy) & (rates["adverse_event"] == "any_adverse_event")
        ]
        assert row["events"].iloc[0] == len(events)
        assert row["rate_per_100_patient_years"].iloc[0] == pytest.approx(
            100 * len(events) / years[strategy]
        )
    # An older run without the adverse-events table: totals from the episodes.
    fallback = adverse_event_rates(run.patients, None, run.episodes)
    assert fallback["adverse_event"].astype(str).unique().tolist() == ["any_adverse_event"]
    np.testing.assert_array_equal(
        fallback["events"], rates[rates["adverse_event"] == "any_adverse_event"]["events"]
    )
    on_treatment = adverse_event_rates_on_treatment(run.adverse_events, run.episodes)
    assert on_treatment["events"].sum() == 2 * len(run.adverse_events)  # types + "any" rows


def test_paired_differences_use_common_random_numbers(run):
    outcomes = patient_outcomes(run.patients, run.episodes)
    differences = strategy_differences(outcomes, metrics=["months_supportive_care"])
    row = differences.iloc[0]
    wide = outcomes.pivot_table(
        index="patient", columns="strategy", values="months_supportive_care", observed=True
    )
    paired = stats.ttest_rel(wide["mtx_first"], wide["csa_first"]).confidence_interval()
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((paired.low, paired.high))
    assert row["reference"] == "csa_first" and row["pairs"] == 300
    independent = stats.ttest_ind(wide["mtx_first"], wide["csa_first"]).confidence_interval()
    assert paired.high - paired.low < independent.high - independent.low


def test_identical_strategies_differ_by_exactly_nothing():
    same = tiny_run(
        patients=100,
        seed=3,
        strategies={"a": STRATEGIES["csa_first"], "b": STRATEGIES["csa_first"]},
    )
    differences = strategy_differences(patient_outcomes(same.patients, same.episodes))
    assert (differences[["difference", "ci_low", "ci_high"]] == 0).all().all()
    with pytest.raises(ValueError, match="reference strategy"):
        strategy_differences(patient_outcomes(same.patients), reference="c")


def test_quantiles_are_those_of_scipy_stats_without_importing_it():
    import subprocess
    import sys

    from analysis.intervals import z_value, chi2_quantile, student_t_quantile

    df = np.arange(1, 400, dtype=float)
    assert np.array_equal(student_t_quantile(0.975, df), stats.t.ppf(0.975, df))
    assert np.array_equal(chi2_quantile(0.025, 2 * df), stats.chi2.ppf(0.025, 2 * df))
    assert z_value(0.95) == stats.norm.ppf(0.975)
    # A sweep worker imports these modules at start-up; scipy.stats alone took half a second.
    code = ("import sys, sim.app.sweep.worker, analysis.summary, analysis.costs, analysis.economics; "
            "sys.exit('scipy.stats' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.fixture(scope="module")
def children():
    """A pediatric run: each child is observed until 18 (or lost, or to the horizon)."""
    from sim.loader import load_scenario
    from sim.model import compile_model
    from sim.runner import simulate

    loaded = load_scenario("pediatric", {"settings.patients": 300, "settings.replicates": 1})
    tables = simulate(compile_model(loaded.scenario, loaded.name), progress=False)
    return tables.episodes, tables.patients


def test_a_patient_whose_follow_up_ended_is_not_carried_on_in_the_last_state(children):
    """A child observed until 18 is in the state the tables give up to then, and in
    `follow_up_ended` from then on; children observed to the horizon end in their final state."""
    episodes, patients = children
    horizon = patients["follow_up_months"].max()
    final = patients["final_state"].astype(str).to_numpy()
    ended = (patients["follow_up_months"].to_numpy() < horizon) & ~np.isin(final, ["lost_to_followup", "dead"])
    assert 100 < ended.sum() < len(patients)
    counts = state_counts(episodes, patients, [horizon])
    at_horizon = counts.groupby(counts["state"].astype(str))["patients"].sum()
    assert at_horizon["follow_up_ended"] == ended.sum()
    segments = state_segments(episodes, patients)
    last = segments.groupby("patient_row").tail(1).set_index("patient_row")
    before = segments[segments["stop_months"] < np.inf].groupby("patient_row").tail(1).set_index("patient_row")
    systemic_at_end = episodes.groupby(["strategy", "patient"], observed=True)["line"].last()
    for row in np.flatnonzero(ended):
        assert last.loc[row, "state"] == "follow_up_ended"
        assert last.loc[row, "start_months"] == pytest.approx(patients["follow_up_months"].iloc[row])
        state = str(before.loc[row, "state"])
        if final[row] == "systemic":
            line = systemic_at_end[(patients["strategy"].iloc[row], patients["patient"].iloc[row])]
            assert state == f"systemic_line_{line}"
        elif final[row] in ("topical", "supportive_care"):
            assert state == final[row]
    to_the_horizon = ~ended & ~np.isin(final, ["lost_to_followup", "dead"])
    states_there = last.loc[np.flatnonzero(to_the_horizon), "state"].astype(str)
    assert set(states_there.str.replace(r"systemic_line_\d+", "systemic", regex=True)) <= {"systemic", "topical",
                                                                                        "supportive_care"}
    times = [0.0, 12.0, 60.0, 100.0, horizon]
    expected = _counted_from_segments(episodes, patients, times)
    got = state_counts(episodes, patients, times)
    got = got[got["patients"] > 0]
    assert sorted(zip(got["strategy"].astype(str), got["time_months"], got["state"].astype(str), got["patients"])) == \
        sorted(zip(expected["strategy"].astype(str), expected["time_months"], expected["state"], expected["patients"]))


def test_bins_on_whole_months_are_searchsorted():
    """The arithmetic bins of a whole-month grid are those of searchsorted (side left),
    at grid points, between them, before, after and at infinity; other grids searchsorted."""
    import numpy as np

    from analysis.state_passes import time_bins, whole_month_grid

    def _bins(times, values):
        return time_bins(times, values, whole_month_grid(times))

    values = np.array([0.0, -1.0, 1e-12, 0.5, 1.0, 1.0 + 1e-12, 59.999999, 60.0, 60.5, 120.0, 121.0, np.inf])
    for times in (np.arange(0.0, 121.0), np.arange(0.0, 61.0), np.append(np.arange(0.0, 60.0), 60.5),
                  np.arange(0.0, 60.0) + 0.5):
        assert (_bins(times, values) == np.searchsorted(times, values, side="left")).all()
    with_nan = np.append(values, np.nan)
    grid = np.arange(0.0, 121.0)
    assert (_bins(grid, with_nan) == np.searchsorted(grid, with_nan, side="left")).all()
    assert (time_bins(grid, with_nan, False) == np.searchsorted(grid, with_nan, side="left")).all()


def test_paired_differences_counted_or_sorted_are_the_same(replicated):
    """Small patient numbers are paired by counting the (replicate, patient) cells, others by
    sorting: the same differences, in any row order."""
    outcomes = patient_outcomes(replicated.patients, replicated.episodes)
    counted = strategy_differences(outcomes)
    sparse = outcomes.assign(patient=outcomes["patient"] * 10**9 + 7)  # too many cells to count
    pd.testing.assert_frame_equal(strategy_differences(sparse), counted)
    pd.testing.assert_frame_equal(strategy_differences(outcomes.sample(frac=1, random_state=3)), counted)
    assert counted["replicates"].min() == 4


def test_ever_returned_counts_by_codes_are_pandas_groups(replicated):
    """Patients split by their strategy's codes give the counts pandas' groups of a text
    strategy column give (the general path)."""
    from analysis.outcomes import _ever_returned_counts

    times = np.array([0.0, 3.0, 12.0, 60.0])
    by_codes = _ever_returned_counts(replicated.patients, times)
    by_groups = _ever_returned_counts(replicated.patients.astype({"strategy": str}), times)
    pd.testing.assert_frame_equal(by_codes.astype({"strategy": str}), by_groups)
    assert by_codes["replicate"].nunique() == 4


def test_topical_return_at_horizon_by_codes_is_pandas_groups(replicated):
    """Counted by a categorical strategy's codes or by pandas' groups of a text column: the
    same estimates."""
    by_codes = topical_return_at_horizon(replicated.patients)
    by_groups = topical_return_at_horizon(replicated.patients.astype({"strategy": str}))
    pd.testing.assert_frame_equal(by_codes.astype({"strategy": str}), by_groups)


@pytest.mark.parametrize("fixture", ["run", "replicated"])
def test_compact_outcome_columns_give_the_same_estimates(fixture, request):
    """The summary's compact outcome columns (int8 indicators, counts uncopied) hold the
    same values and give bit-identical estimates to the float columns of patient_outcomes."""
    from analysis.survival import group_ids
    from analysis.outcomes import first_response_rows, outcome_columns, outcome_estimates

    tables = request.getfixturevalue(fixture)
    first = first_response_rows(tables.episodes, tables.patients)
    wide = outcome_columns(tables.patients, first)
    compact = outcome_columns(tables.patients, first, compact=True)
    assert compact.keys() == wide.keys()
    assert compact["returned_to_topical_ever"].dtype == np.int8
    for name in wide:
        np.testing.assert_array_equal(compact[name].astype(float), np.asarray(wide[name], dtype=float))
    strategy, _ = group_ids(tables.patients, ["strategy"])
    replicate = tables.patients["replicate"].to_numpy()
    expected = outcome_estimates(strategy, replicate, wide, 0.95)
    got = outcome_estimates(strategy, replicate, compact, 0.95)
    for name in expected:
        for a, b in zip(expected[name], got[name]):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
