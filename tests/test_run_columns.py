"""A run's tables built in place (`sim.engine.records.RunColumns`): each chunk's rows copied once
into their row of the finished table. The tables equal those of joining every chunk's columns
(`join_columns`), whatever the chunk size (1, odd sizes, a last short chunk), when a region must
grow because a chunk needs more rows than estimated, and from either engine."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from every_rule import scenario_file

from sim.engine import compiled, compiled_columns, des, records
from sim.engine.records import TableColumns, join_columns
from sim.loader import load_scenario
from sim.model import compile_model
from sim.runner import TABLES, RunTables, chunk_columns, simulate, simulate_task, tasks_for


def _model(name: str, directory, patients: int = 120, replicates: int = 2):
    path = scenario_file(name, str(directory))
    loaded = load_scenario(path, {"settings.patients": patients, "settings.replicates": replicates})
    return compile_model(loaded.scenario, loaded.name)


def _chunk(model, task, engine: str) -> dict:
    """A chunk's columns built from its records (`simulate_chunk`, `chunk_columns`), not in place."""
    simulate_chunk = compiled.simulate_chunk if engine == "compiled" else des.simulate_chunk
    records, covariates = simulate_chunk(model, task.replicate, task.first_patient, task.count)
    return chunk_columns(records, covariates, model, task.replicate, task.first_patient)


def _joined(model, engine: str, chunk_size: int) -> RunTables:
    """The tables as chunks' columns joined (how runs built them before `RunColumns`)."""
    chunks = [_chunk(model, task, engine) for task in tasks_for(model, chunk_size, engine)]
    return RunTables(*(join_columns([chunk[name] for chunk in chunks], len(model.strategies)) for name in TABLES))


def _assert_same(a: RunTables, b: RunTables) -> None:
    for table in TABLES:
        pd.testing.assert_frame_equal(getattr(a, table), getattr(b, table), check_exact=True)


@pytest.fixture(scope="module")
def directory(tmp_path_factory):
    return tmp_path_factory.mktemp("run_columns")


@pytest.mark.parametrize("name", ["every_rule", "modern_adult", "adult_conventional"])
@pytest.mark.parametrize("chunk_size", [1, 7, 64, 119])
def test_tables_built_in_place_equal_the_chunks_joined(name, chunk_size, directory):
    model = _model(name, directory)
    reference = _joined(model, "compiled", 50)
    _assert_same(simulate(model, engine="compiled", progress=False, chunk_size=chunk_size), reference)


def test_a_workers_chunk_built_in_place_equals_its_columns_from_records(directory):
    model = _model("every_rule", directory, patients=90)
    task = tasks_for(model, 40, "compiled")[-1]  # replicate 1, the short last chunk
    built, reference = simulate_task(model, task, "compiled"), _chunk(model, task, "compiled")
    for table in TABLES:
        pd.testing.assert_frame_equal(pd.DataFrame(built[table]), pd.DataFrame(reference[table]), check_exact=True)


@pytest.mark.parametrize("engine", ["des", "compiled"])
def test_regions_that_fill_up_are_grown(engine, directory, monkeypatch):
    # No margin: a region holds exactly the rows per patient seen so far times the patients
    # left, so any chunk with more rows per patient than those before it needs the region grown.
    monkeypatch.setattr(records, "_MARGIN", 0.0)
    monkeypatch.setattr(records, "_SPREAD", 0.0)
    monkeypatch.setattr(records, "_SPARE_ROWS", 0)
    laid_out = []
    lay_out = TableColumns._lay_out

    def counted(self, *args, **kwargs):
        laid_out.append(kwargs.get("regrown", args[-1] if args else None))
        return lay_out(self, *args, **kwargs)

    monkeypatch.setattr(TableColumns, "_lay_out", counted)
    model = _model("every_rule", directory, patients=150)
    tables = simulate(model, engine=engine, progress=False, chunk_size=13)
    assert sum(bool(regrown) for regrown in laid_out) >= 3  # grown, not only laid out once per table
    _assert_same(tables, _joined(model, engine, 150))


def test_regions_estimated_from_a_first_chunk_of_seven_patients_need_no_growing(directory, monkeypatch):
    # The estimate's margin follows the uncertainty of the rows per patient seen so far.
    laid_out = []
    lay_out = TableColumns._lay_out

    def counted(self, replicate, rows, regrown):
        laid_out.append(regrown)
        return lay_out(self, replicate, rows, regrown=regrown)

    monkeypatch.setattr(TableColumns, "_lay_out", counted)
    model = _model("modern_adult", directory, patients=5000)
    simulate(model, engine="compiled", progress=False, chunk_size=7)
    assert laid_out == [False] * 4


def test_a_table_of_regions_grown_again_and_again_keeps_every_row_in_table_order():
    rng = np.random.default_rng(5)
    replicates, strategies, patients, chunk = 3, 2, 100, 9
    table = TableColumns({"value": np.int64, "half": np.float32}, replicates, strategies, patients,
                         margin=0.0, spare_rows=0)
    expected = [[[] for _ in range(strategies)] for _ in range(replicates)]
    for r in range(replicates):
        for first in range(0, patients, chunk):
            count = min(chunk, patients - first)
            rows = rng.integers(0, 4 * (first + 1), strategies)  # ever more rows per patient
            at = table.place(r, rows, count)
            for s in range(strategies):
                values = rng.integers(0, 10**9, rows[s])
                table.columns["value"][at[s]:at[s] + rows[s]] = values
                table.columns["half"][at[s]:at[s] + rows[s]] = values / 2
                expected[r][s].append(values)
    columns, filled = table.finished()
    whole = np.concatenate([np.concatenate(expected[r][s]) for r in range(replicates) for s in range(strategies)])
    np.testing.assert_array_equal(columns["value"], whole)
    np.testing.assert_array_equal(columns["half"], (whole / 2).astype(np.float32))
    assert filled.sum() == len(whole) and len(columns["value"]) == len(whole)


def test_an_episodes_adverse_events_are_put_in_time_order_as_a_stable_sort_would():
    rng = np.random.default_rng(3)
    rows = 400
    episode_of = np.sort(rng.integers(0, 60, rows))
    ae_i = np.zeros((1, rows, 5), dtype=np.int32)
    ae_i[0, :, 0], ae_i[0, :, 1] = episode_of // 6, episode_of % 6  # patient, episode
    ae_i[0, :, 2], ae_i[0, :, 3] = rng.integers(0, 2, rows), rng.integers(0, 3, rows)
    ae_f = np.round(rng.random((1, rows)) * 4, 0)  # many equal times
    ae_f[0, 7] = np.nan
    codes = np.array([[0, 1, 2, -1], [2, 1, 0, -1]], dtype=np.int8)
    out = [np.zeros(rows + 5, dtype=dtype) for dtype in (np.int32, np.int16, np.int8, np.int8, np.float64, bool)]
    assert compiled_columns.place_events(ae_i, ae_f, 0, rows, 5, codes, *out)
    order = np.lexsort((ae_f[0], episode_of))
    np.testing.assert_array_equal(out[0][5:], ae_i[0, order, 0])
    np.testing.assert_array_equal(out[3][5:], codes[ae_i[0, order, 2], ae_i[0, order, 3]])
    np.testing.assert_array_equal(out[4][5:], ae_f[0, order])
    ae_i[0, 200:210, 0] = 0  # patients out of order: said, not hidden
    assert not compiled_columns.place_events(ae_i, ae_f, 0, rows, 0, codes, *out)


def test_chunks_without_adverse_events_or_bursts_keep_the_tables_types(directory):
    model = _model("adult_conventional", directory, patients=3, replicates=1)
    empty = _model("adult_conventional", directory, patients=1, replicates=1)
    for engine in ("des", "compiled"):
        tables = simulate(model, engine=engine, progress=False, chunk_size=1)
        for table in ("adverse_events", "bursts"):
            chunk = _chunk(empty, tasks_for(empty, 1, engine)[0], engine)[table]
            chunk = {name: column[:0] for name, column in chunk.items()}  # a chunk with no rows
            alone = join_columns([chunk], len(model.strategies))
            assert dict(alone.dtypes) == dict(getattr(tables, table).dtypes), (engine, table)
        run = records.RunColumns(empty)
        run.add_columns(0, 1, {name: {c: column[:0] for c, column in columns.items()}
                               for name, columns in simulate_task(empty, tasks_for(empty, 1, engine)[0], engine).items()})
        for table in TABLES:
            built = pd.DataFrame(run.finished_table(table))
            assert len(built) == 0 and dict(built.dtypes) == dict(getattr(tables, table).dtypes), (engine, table)


@pytest.mark.parametrize("weights", [(0.5, 0.3, 0.2), (0.2, 0.0, 0.5, 0.3), (0.1, 0.1), (1.0,), (0.0, 1.0)])
def test_a_categorical_covariates_levels_are_those_of_searchsorted(weights):
    from sim.engine.compiled_kernel import patient_levels, patient_uniforms
    from sim.rules import purposes as P

    cumulative = np.cumsum(weights)
    u = patient_uniforms(7, 1, 100, 5000, P.COVARIATE, 2, 0)
    expected = np.minimum(np.searchsorted(cumulative, u, side="right"), len(weights) - 1)
    np.testing.assert_array_equal(patient_levels(7, 1, 100, 5000, P.COVARIATE, 2, 0, cumulative), expected)
