"""Same scenario and seed: identical tables, whatever the chunk size or number of workers."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from sim.loader import load_scenario
from sim.model import compile_model
from sim.runner import simulate


def model(patients=600, seed=20240611, replicates=2):
    loaded = load_scenario("adult_conventional", {"settings.patients": patients, "settings.seed": seed,
                                                   "settings.replicates": replicates})
    return compile_model(loaded.scenario, loaded.name)


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, compression="zstd")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def reference():
    return simulate(model(), chunk_size=600, progress=False)


@pytest.mark.parametrize(("chunk_size", "workers"), [(7, 1), (250, 1), (100, 2)])
def test_chunking_and_workers_do_not_change_the_tables(reference, chunk_size, workers):
    other = simulate(model(), chunk_size=chunk_size, workers=workers, progress=False)
    for name in ("episodes", "patients", "adverse_events"):
        assert parquet_bytes(getattr(other, name)) == parquet_bytes(getattr(reference, name)), name


def test_another_seed_gives_another_run(reference):
    other = simulate(model(seed=1), chunk_size=600, progress=False)
    assert not other.episodes["stop"].equals(reference.episodes["stop"])


def test_a_patient_does_not_depend_on_how_many_patients_there_are(reference):
    small = simulate(model(patients=50, replicates=1), progress=False)
    head = reference.episodes[(reference.episodes["replicate"] == 0) & (reference.episodes["patient"] < 50)]
    pd.testing.assert_frame_equal(small.episodes, head.reset_index(drop=True))


def test_replicates_differ(reference):
    e = reference.episodes
    first = e[e["replicate"] == 0]["stop"].to_numpy()[:100]
    second = e[e["replicate"] == 1]["stop"].to_numpy()[:100]
    assert (first != second).any()


def test_rows_are_ordered_as_lexsort_would_order_them():
    """The combined-key sort of the tables equals a stable lexicographic sort."""
    import numpy as np

    from sim.engine.records import _order

    rng = np.random.default_rng(3)
    keys = [rng.integers(2, 5, 5000).astype(np.int16), rng.integers(100, 900, 5000).astype(np.int32),
            rng.integers(1, 4, 5000).astype(np.int16)]
    assert np.array_equal(_order(keys), np.lexsort(keys[::-1]))
    with_time = [keys[0], rng.random(5000)]
    assert np.array_equal(_order(with_time), np.lexsort(with_time[::-1]))
