"""Writing a run directory: the simulated tables written while the summary is computed."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pyarrow.parquet as pq
import pytest

import sim.app.outputs
from sim.loader import load_scenario
from sim.model import compile_model
from sim.app.outputs import (
    FINISHED_TABLES,
    staged_directory,
    write_parquet,
    writing_finished_tables,
)
from sim.app.pipeline import run_scenario
from sim.runner import simulate


@pytest.fixture(scope="module")
def tables():
    loaded = load_scenario("modern_adult", {"settings.patients": 300, "settings.replicates": 1})
    return simulate(compile_model(loaded.scenario, loaded.name), progress=False)


def test_tables_written_in_the_background_are_those_pandas_writes(tables, tmp_path):
    """What `DataFrame.to_parquet(index=False, compression="zstd")` writes (columns, dtypes, pandas
    metadata), with dictionary encoding on the categorical columns only."""
    with writing_finished_tables(tmp_path, tables):
        write_parquet(tmp_path / "patients.parquet", tables.patients)
    for name in (*FINISHED_TABLES, "patients"):
        frame, path = getattr(tables, name), tmp_path / f"{name}.parquet"
        expected = tmp_path / f"expected_{name}.parquet"
        frame.to_parquet(expected, index=False, compression="zstd")
        assert pq.read_schema(path) == pq.read_schema(expected), name
        pd.testing.assert_frame_equal(pd.read_parquet(path), frame)
        metadata = pq.ParquetFile(path).metadata
        for row_group in range(metadata.num_row_groups):
            for column in range(metadata.num_columns):
                chunk = metadata.row_group(row_group).column(column)
                categorical = isinstance(frame[chunk.path_in_schema].dtype, pd.CategoricalDtype)
                assert (chunk.dictionary_page_offset is not None) == categorical, (name, chunk.path_in_schema)


def test_the_writing_overlaps_the_block(tables, tmp_path, monkeypatch):
    """The block runs while a table is being written: it is not written first, then the block."""
    writing, block_ran = threading.Event(), threading.Event()
    write = sim.app.outputs.pq.write_table

    def slow_write(*args, **kwargs):
        writing.set()
        assert block_ran.wait(10), "the block did not run while the tables were being written"
        write(*args, **kwargs)

    monkeypatch.setattr(sim.app.outputs.pq, "write_table", slow_write)
    with writing_finished_tables(tmp_path, tables):
        assert writing.wait(10)
        block_ran.set()
    assert all((tmp_path / f"{name}.parquet").exists() for name in FINISHED_TABLES)


def test_an_error_in_the_block_stops_the_writing_and_leaves_no_directory(tables, tmp_path, monkeypatch):
    """A failed summary (or Ctrl-C) cancels the tables not yet begun and leaves nothing behind."""
    started = []
    write = sim.app.outputs.pq.write_table

    def slow_write(table, path, **kwargs):
        started.append(path)
        time.sleep(0.2)  # long enough for the block to fail while the first table is written
        write(table, path, **kwargs)

    monkeypatch.setattr(sim.app.outputs.pq, "write_table", slow_write)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt), staged_directory(out) as staging, writing_finished_tables(staging, tables):
        raise KeyboardInterrupt
    assert len(started) < len(FINISHED_TABLES)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_background_write_is_raised_and_leaves_no_directory(tables, tmp_path, monkeypatch):
    write = sim.app.outputs.pq.write_table

    def full_disk(table, path, **kwargs):
        if path.name == "episodes.parquet":
            raise OSError(28, "No space left on device")
        write(table, path, **kwargs)

    monkeypatch.setattr(sim.app.outputs.pq, "write_table", full_disk)
    loaded = load_scenario("adult_conventional", {"settings.patients": 50, "settings.replicates": 1})
    with pytest.raises(OSError, match="No space left"):
        run_scenario(loaded, tmp_path / "run", progress=False)
    assert list(tmp_path.iterdir()) == []
