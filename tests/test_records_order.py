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
