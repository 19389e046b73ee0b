"""Finding a patient's row (analysis.keys)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.keys import is_one_of, patient_rows, per_label


def test_rows_of_patients_are_found_by_replicate_strategy_and_patient():
    # The patients table as the engines write it (categorical strategy); the other table
    # shuffled, with strategies as plain strings and keys that are not patients.
    patients = pd.DataFrame({
        "replicate": np.repeat([0, 1], 6),
        "strategy": pd.Categorical(np.tile(np.repeat(["b_first", "a_first"], 3), 2), categories=["b_first", "a_first"]),
        "patient": np.tile([0, 1, 2], 4),
    })
    frame = pd.DataFrame({
        "replicate": [1, 0, 0, 1, 2, 0],
        "strategy": ["a_first", "b_first", "a_first", "b_first", "a_first", "c_first"],
        "patient": [2, 0, 1, 1, 0, 0],
    })
    expected = pd.MultiIndex.from_frame(patients.astype({"strategy": str})).get_indexer(pd.MultiIndex.from_frame(frame))
    assert patient_rows(frame, patients).tolist() == expected.tolist() == [11, 0, 4, 7, -1, -1]


def test_labels_are_compared_as_strings_and_missing_values_match_nothing():
    column = pd.Series(pd.Categorical(["remission", None, "switch", "horizon"]))
    assert is_one_of(column, ("remission", "horizon", "death")).tolist() == [True, False, False, True]
    assert is_one_of(column.astype(object), ("switch",)).tolist() == [False, False, True, False]
    prices = {"switch": 2.0, "nan": 5.0}
    assert per_label(column, lambda name: prices.get(name, 0.0)).tolist() == [0.0, 5.0, 2.0, 0.0]
