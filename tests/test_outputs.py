"""Writing a run directory: the simulated tables written while the summary is computed."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
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
from sim.tables import MAY_BE_MISSING, always_present


def _finished(tables) -> dict:
    return {name: getattr(tables, name) for name in FINISHED_TABLES}


@pytest.fixture(scope="module")
def tables():
    loaded = load_scenario("modern_adult", {"settings.patients": 300, "settings.replicates": 1})
    return simulate(compile_model(loaded.scenario, loaded.name), progress=False)


def test_tables_written_in_the_background_are_those_pandas_writes(tables, tmp_path):
    """What `DataFrame.to_parquet(index=False, compression="zstd")` writes (columns, dtypes, pandas
    metadata), with dictionary encoding on the categorical columns only."""
    with writing_finished_tables(tmp_path, _finished(tables)):
        write_parquet(tmp_path / "patients.parquet", tables.patients)
    for name in (*FINISHED_TABLES, "patients"):
        frame, path = getattr(tables, name), tmp_path / f"{name}.parquet"
        expected = tmp_path / f"expected_{name}.parquet"
        frame.to_parquet(expected, index=False, compression="zstd")
        schema, pandas_schema = pq.read_schema(path), pq.read_schema(expected)
        assert schema.names == pandas_schema.names and schema.metadata == pandas_schema.metadata, name
        for field, pandas_field in zip(schema, pandas_schema):
            assert field.type == pandas_field.type, (name, field.name)
            assert field.nullable == (field.name not in always_present(name)), (name, field.name)
        pd.testing.assert_frame_equal(pd.read_parquet(path), frame)
        metadata = pq.ParquetFile(path).metadata
        for row_group in range(metadata.num_row_groups):
            for column in range(metadata.num_columns):
                chunk = metadata.row_group(row_group).column(column)
                categorical = isinstance(frame[chunk.path_in_schema].dtype, pd.CategoricalDtype)
                assert (chunk.dictionary_page_offset is not None) == categorical, (name, chunk.path_in_schema)
                assert chunk.is_stats_set == (chunk.path_in_schema in sim.app.outputs.STATISTICS_COLUMNS)
                assert chunk.compression == ("LZ4" if frame[chunk.path_in_schema].dtype.kind == "f" else "ZSTD")


def test_the_writing_overlaps_the_block(tables, tmp_path, monkeypatch):
    """The block runs while a table is being written: it is not written first, then the block."""
    writing, block_ran = threading.Event(), threading.Event()
    write = pq.ParquetWriter.write_table

    def slow_write(*args, **kwargs):
        writing.set()
        assert block_ran.wait(10), "the block did not run while the tables were being written"
        write(*args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", slow_write)
    with writing_finished_tables(tmp_path, _finished(tables)):
        assert writing.wait(10)
        block_ran.set()
    assert all((tmp_path / f"{name}.parquet").exists() for name in FINISHED_TABLES)


def test_an_error_in_the_block_stops_the_writing_and_leaves_no_directory(tables, tmp_path, monkeypatch):
    """A failed summary (or Ctrl-C) cancels the tables not yet begun and leaves nothing behind."""
    started = []
    write = pq.ParquetWriter.write_table

    def slow_write(file, table, **kwargs):
        started.append(file.where)
        time.sleep(0.2)  # long enough for the block to fail while the first table is written
        write(file, table, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", slow_write)
    out = tmp_path / "run"
    with (pytest.raises(KeyboardInterrupt), staged_directory(out) as staging,
          writing_finished_tables(staging, _finished(tables))):
        raise KeyboardInterrupt
    assert len(started) < len(FINISHED_TABLES)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_background_write_is_raised_and_leaves_no_directory(tables, tmp_path, monkeypatch):
    write = pq.ParquetWriter.write_table

    def full_disk(file, table, **kwargs):
        if Path(file.where).name == "episodes.parquet":
            raise OSError(28, "No space left on device")
        write(file, table, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full_disk)
    loaded = load_scenario("adult_conventional", {"settings.patients": 50, "settings.replicates": 1})
    with pytest.raises(OSError, match="No space left"):
        run_scenario(loaded, tmp_path / "run", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_table_written_row_group_by_row_group_is_the_file_written_whole(tmp_path, monkeypatch):
    """Converting to Arrow one row group at a time leaves the file as pyarrow writes the whole
    table at once: the same bytes, NaNs (missing in Arrow) and empty categories included."""
    monkeypatch.setattr(sim.app.outputs, "ROW_GROUP_ROWS", 1000)
    rows = np.random.default_rng(17)
    values = rows.random(2500)
    frame = pd.DataFrame({
        "patient": np.arange(2500, dtype=np.int32),
        "start": np.where(values < 0.1, np.nan, values),
        "reason": pd.Categorical.from_codes(rows.integers(-1, 3, 2500), categories=["a", "b", "c", "unused"]),
        "responded": pd.array(np.where(values < 0.2, None, values < 0.6), dtype="boolean"),
        "bridged": values > 0.5,
    })
    for name, part in (("whole", frame), ("empty", frame.iloc[:0])):
        sim.app.outputs.write_parquet(tmp_path / f"{name}.parquet", part)
        table = pa.Table.from_pandas(part, preserve_index=False)
        codecs = {column: "lz4" if frame[column].dtype.kind == "f" else "zstd" for column in frame.columns}
        pq.write_table(table, tmp_path / f"expected_{name}.parquet", compression=codecs,
                       use_dictionary=["reason"], row_group_size=1000, write_statistics=["patient"],
                       write_batch_size=sim.app.outputs.WRITE_BATCH_ROWS)
        assert (tmp_path / f"{name}.parquet").read_bytes() == (tmp_path / f"expected_{name}.parquet").read_bytes()
    assert pq.ParquetFile(tmp_path / "whole.parquet").metadata.num_row_groups == 3
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "whole.parquet"), frame)


def test_a_stopped_run_gives_up_its_tables_between_row_groups(tables, tmp_path, monkeypatch):
    """After an error in the block, a table being written stops at its next row group."""
    monkeypatch.setattr(sim.app.outputs, "ROW_GROUP_ROWS", 50)
    groups = []
    write = pq.ParquetWriter.write_table

    def counted(file, table, **kwargs):
        groups.append(file.where)
        time.sleep(0.05)
        write(file, table, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", counted)
    with pytest.raises(RuntimeError, match="summary failed"), writing_finished_tables(tmp_path, _finished(tables)):
        while not groups:
            time.sleep(0.001)
        raise RuntimeError("summary failed")
    assert len(tables.episodes) > 50 * 5
    assert len(groups) <= 4  # each writer at most its group under way and the next began before the stop


def test_a_missing_value_where_the_contract_has_one_always_is_refused(tables, tmp_path):
    """A run table's columns that always have a value are required in its file; a NaN in one
    (an engine breaking the contract) fails the write instead of being written as missing."""
    assert always_present("episodes") and "assessed" in MAY_BE_MISSING["episodes"]
    sim.app.outputs.write_parquet(tmp_path / "episodes.parquet", tables.episodes)
    assert not pq.read_schema(tmp_path / "episodes.parquet").field("stop").nullable
    broken = tables.episodes.copy()
    broken.loc[broken.index[-1], "stop"] = np.nan
    (tmp_path / "broken").mkdir()
    with pytest.raises(ValueError, match="stop"):
        sim.app.outputs.write_parquet(tmp_path / "broken" / "episodes.parquet", broken)


def test_an_empty_table_read_back_is_written_again(tables, tmp_path):
    """An empty table read back from its file (categoricals without categories: Arrow's null
    type, always nullable) can be written again under its own name."""
    empty = tables.episodes.iloc[:0]
    sim.app.outputs.write_parquet(tmp_path / "episodes.parquet", empty)
    again = pd.read_parquet(tmp_path / "episodes.parquet").astype({"strategy": pd.CategoricalDtype([])})
    (tmp_path / "again").mkdir()
    sim.app.outputs.write_parquet(tmp_path / "again" / "episodes.parquet", again)
    assert pd.read_parquet(tmp_path / "again" / "episodes.parquet").empty


def test_a_table_nothing_else_holds_leaves_memory_once_written(tables, tmp_path):
    """The writers take the frames out of the dict they are given: a table the caller let go
    of is freed while the block still runs (the summary), not at its end."""
    import gc
    import weakref

    frames = {name: frame.copy() for name, frame in _finished(tables).items()}
    gone = weakref.ref(frames["adverse_events"])
    with writing_finished_tables(tmp_path, frames):
        assert frames == {}
        for _ in range(1000):
            gc.collect()
            if gone() is None:
                break
            time.sleep(0.01)
        assert gone() is None, "the written table was still held while the block ran"
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "adverse_events.parquet"), tables.adverse_events)
