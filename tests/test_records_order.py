"""The order the tables' rows are put in (`sim.engine.records._order`) is np.lexsort's."""

from __future__ import annotations

import numpy as np
import pytest

from sim.engine.records import _order


@pytest.mark.parametrize("seed", range(5))
def test_order_is_the_stable_lexicographic_order(seed):
    rng = np.random.default_rng(seed)
    for _ in range(60):
        n = int(rng.integers(1, 300))
        strategy = rng.integers(0, 3, n).astype(np.int16)
        patient = rng.integers(0, int(rng.integers(1, 40)), n).astype(np.int32)
        time = np.round(rng.random(n) * rng.choice([1, 10, 100]), int(rng.choice([0, 1, 4])))  # many ties
        if rng.random() < 0.2:
            time[rng.integers(0, n)] = np.nan
        keys = [strategy, patient, time]
        np.testing.assert_array_equal(_order(keys), np.lexsort(keys[::-1]))
        np.testing.assert_array_equal(_order([strategy, patient]), np.lexsort([patient, strategy]))


@pytest.mark.parametrize("seed", range(3))
def test_order_of_rows_sorted_but_for_the_times_within_a_group(seed):
    # The engine's adverse events: in patient and episode order, times out of order within an episode.
    rng = np.random.default_rng(seed)
    n = 500
    strategy = np.sort(rng.integers(0, 3, n)).astype(np.int16)
    patient = np.concatenate([np.sort(rng.integers(0, 50, int((strategy == s).sum()))) for s in range(3)])
    time = np.round(rng.random(n) * 10, 1)
    keys = [strategy, patient.astype(np.int32), time]
    np.testing.assert_array_equal(_order(keys), np.lexsort(keys[::-1]))


def test_a_chunks_integer_columns_hold_no_block_of_the_engine():
    from sim.engine.compiled import simulate_chunk
    from sim.engine.records import adverse_events_columns, episodes_columns, patients_columns
    from sim.loader import load_scenario
    from sim.model import compile_model

    loaded = load_scenario("adult_conventional", {"settings.patients": 300, "settings.replicates": 1})
    model = compile_model(loaded.scenario, loaded.name)
    records, covariates = simulate_chunk(model, 0, 0, 300)
    tables = [episodes_columns(records, model, 0), adverse_events_columns(records, model, 0),
              patients_columns(records, model, 0, 0, covariates)]
    for columns in tables:
        for name, column in columns.items():
            array = column.codes if hasattr(column, "codes") else getattr(column, "_data", column)
            if array.dtype == np.float64:
                continue  # a float block's fields are all float64 columns: a view holds no more
            assert array.base is None or array.base.nbytes <= array.nbytes, name
