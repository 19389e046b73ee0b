"""The compiled row passes (analysis.row_passes) against the NumPy and pandas code they replace.

Each pass must give the same values to the last bit: patient rows by a merge of ordered
tables, the earliest response per patient, group numbers of categorical keys, and group
means and deviations as pandas' groupby computes them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tiny_runs import tiny_run

from analysis import keys
from analysis.outcomes import _moments, first_response_rows
from analysis.survival import _categorical_group_ids


def _ordered_tables(seed: int):
    """A patients table in the engines' order with patients left out, and rows referring to
    them in the same order, some with strategies or patients the patients table lacks."""
    rng = np.random.default_rng(seed)
    strategies = ["b_first", "a_first", "c_first"]
    full = pd.MultiIndex.from_product([range(3), range(3), range(40)], names=["replicate", "strategy", "patient"])
    patients = full.to_frame(index=False)[rng.random(len(full)) < 0.8].reset_index(drop=True)
    patients["strategy"] = pd.Categorical.from_codes(patients["strategy"], categories=strategies)
    frame = full.to_frame(index=False).loc[np.repeat(np.arange(len(full)), rng.integers(0, 4, len(full)))]
    names = np.array(strategies + ["z_first"], dtype=object)
    frame["strategy"] = names[np.where(rng.random(len(frame)) < 0.05, 3, frame["strategy"])]
    return frame.reset_index(drop=True), patients


def _rows_by_sorting(frame, patients):
    index = pd.MultiIndex.from_frame(patients.astype({"strategy": str}))
    return index.get_indexer(pd.MultiIndex.from_frame(frame[["replicate", "strategy", "patient"]]))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rows_of_ordered_tables_are_found_by_a_merge(seed):
    frame, patients = _ordered_tables(seed)
    merged = keys.ordered_patient_rows(frame, patients)
    assert merged is not None
    assert merged.tolist() == _rows_by_sorting(frame, patients).tolist()
    assert (merged == -1).any() and (merged >= 0).any()


def test_tables_out_of_order_are_left_to_the_general_lookup():
    frame, patients = _ordered_tables(4)
    shuffled = frame.sample(frac=1.0, random_state=1)
    assert keys.ordered_patient_rows(shuffled, patients) is None
    assert keys.patient_rows(shuffled, patients).tolist() == _rows_by_sorting(shuffled, patients).tolist()
    repeated = pd.concat([patients, patients.tail(1)], ignore_index=True)  # a patient twice
    assert keys.ordered_patient_rows(frame, repeated) is None


def test_first_response_by_merge_is_the_first_response_by_lookup():
    run = tiny_run(patients=200, replicates=2, seed=5)
    fast = first_response_rows(run.episodes, run.patients)
    general = first_response_rows(run.episodes.sample(frac=1.0, random_state=3), run.patients)
    assert keys.ordered_patient_rows(run.episodes, run.patients) is not None
    assert fast["responded"].any() and not fast["responded"].all()
    for name, values in fast.items():
        np.testing.assert_array_equal(values, general[name], err_msg=name)


@pytest.mark.parametrize("by", [["strategy"], ["strategy", "treatment"]])
def test_group_numbers_of_categorical_keys_are_pandas_groups(by):
    rng = np.random.default_rng(6)
    frame = pd.DataFrame({
        "strategy": pd.Categorical(rng.choice(["x", "y", None, "w"], 500), categories=["y", "x", "w", "v"]),
        "treatment": pd.Categorical(rng.choice(["a", "b", "c", None], 500), categories=["c", "b", "a"]),
    })
    ids, found = _categorical_group_ids(frame, by)
    grouper = frame.groupby(by, observed=True, sort=True, dropna=True)
    assert ids.tolist() == grouper.ngroup().fillna(-1).astype(int).tolist()
    pd.testing.assert_frame_equal(found, grouper.size().reset_index()[by])


@pytest.mark.parametrize("seed", [1, 2])
def test_group_means_and_deviations_are_pandas_floats_to_the_last_bit(seed):
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 5, 20_000)
    columns = [rng.lognormal(2.0, 1.5, 20_000), rng.integers(0, 7, 20_000).astype(float)]
    columns[0][rng.random(20_000) < 0.1] = np.nan
    columns.append(np.where(group == 3, np.nan, columns[0]))  # a group without values
    count, total, mean, std = _moments(columns, group, 5)
    grouped = pd.DataFrame(np.column_stack(columns)).groupby(group, sort=True)
    np.testing.assert_array_equal(mean, grouped.mean().to_numpy())
    np.testing.assert_array_equal(std, grouped.std().to_numpy())
    np.testing.assert_array_equal(count, grouped.count().to_numpy())
    np.testing.assert_array_equal(total[:, 1], np.bincount(group, weights=columns[1], minlength=5))
