"""Finding a patient's row: the rows of the patients table that other tables refer to.

Every run table names its patient by (replicate, strategy, patient). Analyses that add
up episodes, adverse events or bursts per patient look the patient's row up once, as one
integer per key, instead of joining tables on three columns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def patient_rows(frame: pd.DataFrame, patients: pd.DataFrame) -> np.ndarray:
    """Position in `patients` of the patient of each row of `frame` (same replicate,
    strategy and patient; strategies compared by name); -1 where there is none."""
    rows = ordered_patient_rows(frame, patients)
    if rows is not None:
        return rows
    names = pd.Index(_labels(patients["strategy"]))
    known = _patient_keys(patients, names)
    keys = _patient_keys(frame, names)
    if not len(known):
        return np.full(len(keys), -1)
    order = np.argsort(known, kind="stable")
    position = np.minimum(np.searchsorted(known[order], keys), len(known) - 1)
    return np.where(known[order][position] == keys, order[position], -1)


def ordered_patient_rows(frame: pd.DataFrame, patients: pd.DataFrame) -> np.ndarray | None:
    """`patient_rows` by one walk over both tables when both are in (replicate, strategy,
    patient) order, as the engines write them (patients without repeats); None otherwise."""
    numbers = [table[column].to_numpy() for table in (frame, patients) for column in ("replicate", "patient")]
    if not len(frame) or not len(patients) or any(values.dtype.kind not in "iu" for values in numbers):
        return None
    names = pd.Index(_labels(patients["strategy"]))
    known = label_codes(patients["strategy"], names)
    from analysis import row_passes  # compiled: imported when first needed (Numba loads slowly)

    rows, ordered = row_passes.merged_rows(
        numbers[0], label_codes(frame["strategy"], names), numbers[1], numbers[2], known, numbers[3], len(names) + 1)
    return rows if ordered else None


def _patient_keys(frame: pd.DataFrame, names: pd.Index) -> np.ndarray:
    """One integer per (replicate, strategy, patient); strategies not in `names` give -1."""
    strategy = label_codes(frame["strategy"], names)
    replicate = frame["replicate"].to_numpy(np.int64)
    patient = frame["patient"].to_numpy(np.int64)
    key = (replicate * (len(names) + 1) + strategy + 1) * (1 << 32) + patient
    return np.where(strategy >= 0, key, -1)


def _labels(column: pd.Series) -> list[str]:
    """The distinct labels of a column, as strings (a categorical's categories)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return [str(label) for label in column.cat.categories]
    return [str(label) for label in pd.unique(column)]


def label_codes(column: pd.Series, names: pd.Index) -> np.ndarray:
    """Position of each value of `column` in `names` (compared as strings; -1: absent or missing)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        mapping = np.append(names.get_indexer([str(c) for c in column.cat.categories]), -1)
        return mapping[column.cat.codes.to_numpy()]
    return names.get_indexer(column.astype(str))


def is_one_of(column: pd.Series, labels: tuple[str, ...]) -> np.ndarray:
    """Whether each value of `column` is one of `labels` (compared as strings)."""
    names = pd.Index(_labels(column))
    wanted = names.get_indexer(list(labels))
    return np.isin(label_codes(column, names), wanted[wanted >= 0])


def per_label(column: pd.Series, value_of) -> np.ndarray:
    """`value_of(label)` for each value of `column`, computed once per distinct label
    ("nan" for a missing value)."""
    if not len(column):
        return np.zeros(0)
    names = _labels(column)
    values = np.array([value_of(name) for name in names] + [value_of("nan")], dtype=float)
    return values[label_codes(column, pd.Index(names))]
