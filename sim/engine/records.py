"""Collecting what happens in a simulation, and turning it into the tidy tables.

Records are kept as codes in plain lists while the simulation runs and become columns
(NumPy arrays and pandas extension arrays) once per chunk; the runner copies each chunk's
columns into the run's (`RunColumns`: preallocated in table order, the compiled kernel's
rows copied there straight from its blocks) and builds each DataFrame once (building a
frame from arrays is fast; from tuples it is not).
Rows are sorted by strategy, patient and episode so that the tables do not depend on
the order in which the engine happened to process patients.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from sim.memory import hand_back_freed_memory
from sim.model import Model
from sim.tables import BURST_REASONS, FINAL_STATES, FLARE_STATES, REASONS


_EPISODE_FIELDS = ("strategy", "patient", "episode", "line", "treatment", "start", "stop",
                   "reason", "responded", "assessed", "retreatment", "adverse_events", "stopping_adverse_event",
                   "escalated", "below_target", "bridged", "months_waited")
_EVENT_FIELDS = ("strategy", "patient", "episode", "treatment", "adverse_event", "time", "stopped_treatment")
_PATIENT_FIELDS = ("strategy", "patient", "final_state", "follow_up_months", "months_to_first_topical",
                   "lines_used", "episodes", "relapses", "months_systemic", "months_topical",
                   "months_supportive_care", "months_waiting", "entry_month", "months_to_first_control",
                   "bursts", "rebounds")
_TRIM_FROM_ROWS = 100_000  # rows of a joined table worth handing memory back for (a trim costs about 1 ms)
_BURST_FIELDS = ("strategy", "patient", "time", "reason", "state", "effective", "rebound")


class Records:
    """Episode, adverse-event and patient records of one chunk of one replicate.

    One tuple per record while the engine runs (one append each), kept in one list per
    strategy so that the rows come out in table order (strategy, then patient) whatever
    order the engine ran the trajectories in. A row holds the fields of its table but the
    first (the strategy: the list it is in says it). The engine appends episodes to
    `episode_rows[strategy]` and patient summaries to `patient_rows[strategy]` itself, in
    the order of `_EPISODE_FIELDS` (responded coded -1/0/1, the stopping adverse event -1
    when none) and `_PATIENT_FIELDS` (months, NaN for a time that never came). `close`
    turns the rows into one column per field when the chunk is done. Reasons, states and
    treatments are recorded as their codes (indices into `sim.tables.REASONS`,
    `FINAL_STATES`, `BURST_REASONS`, `FLARE_STATES`, the model's treatments).
    """

    def __init__(self, strategies: int = 1):
        self.episode_rows: list[list[tuple]] = [[] for _ in range(strategies)]
        self.event_rows: list[list[tuple]] = [[] for _ in range(strategies)]
        self.patient_rows: list[list[tuple]] = [[] for _ in range(strategies)]
        self.burst_rows: list[list[tuple]] = [[] for _ in range(strategies)]
        self._columns: dict[str, dict[str, Sequence]] | None = None

    def adverse_events(self, strategy, patient, episode, treatment, start, events, stopper) -> None:
        """Record the adverse events (index, onset months after `start`, stops the drug) of an
        episode that started at `start` (months since entry); `stopper` the one that stopped it."""
        rows = self.event_rows[strategy]
        for a, onset, stopped in events:
            rows.append((patient, episode, treatment, a, start + onset, stopped and a == stopper))

    def bursts_of(self, strategy, patient, bursts) -> int:
        """Record a trajectory's corticosteroid bursts, (time in months since entry, reason,
        state, effective, rebound) each; return how many were followed by a rebound."""
        rows = self.burst_rows[strategy]
        rebounds = 0
        for time, reason, state, effective, rebound in bursts:
            rows.append((patient, time, reason, state, effective, rebound))
            rebounds += rebound
        return rebounds

    def close(self) -> None:
        """Turn the rows into columns, once the chunk has been simulated.

        The engine calls it while the cyclic garbage collector is paused: freed there,
        the row tuples are never scanned by it (scanning them cost more than building them).
        Rows recorded after it are not taken (it is the chunk's last step).
        """
        if self._columns is not None:
            return
        self._columns = {name: _columns(rows, fields) for name, rows, fields in (
            ("episodes", self.episode_rows, _EPISODE_FIELDS), ("events", self.event_rows, _EVENT_FIELDS),
            ("patients", self.patient_rows, _PATIENT_FIELDS), ("bursts", self.burst_rows, _BURST_FIELDS))}
        self.episode_rows, self.event_rows, self.patient_rows, self.burst_rows = [], [], [], []

    @property
    def episodes(self) -> dict[str, Sequence]:
        """The episodes, one column (a sequence) per field."""
        return self._closed()["episodes"]

    @property
    def events(self) -> dict[str, Sequence]:
        """The adverse events, one column (a sequence) per field."""
        return self._closed()["events"]

    @property
    def patients(self) -> dict[str, Sequence]:
        """The patient summaries, one column (a sequence) per field."""
        return self._closed()["patients"]

    @property
    def bursts(self) -> dict[str, Sequence]:
        """The corticosteroid bursts, one column (a sequence) per field."""
        return self._closed()["bursts"]

    def _closed(self) -> dict[str, dict[str, Sequence]]:
        if self._columns is None:
            self.close()
        return self._columns


def _columns(rows: list[list[tuple]], fields: tuple[str, ...]) -> dict:
    """One column per field from each strategy's rows (without the strategy), strategy after strategy:
    the strategy an array of codes, the others tuples."""
    if not any(rows):
        return {field: [] for field in fields}
    strategy = np.repeat(np.arange(len(rows), dtype=np.int16), [len(strategy_rows) for strategy_rows in rows])
    table = list(itertools.chain.from_iterable(rows))  # a list unpacks into zip faster than a chain
    return {fields[0]: strategy, **dict(zip(fields[1:], zip(*table)))}


def _array(column, dtype) -> np.ndarray:
    """A column (a sequence of Python numbers, or an array) as an array of `dtype` of its own.

    A view into the engine's integer blocks (a field of its rows) is copied once, into a
    compact array: kept as it is, it would hold the whole block in memory until the run's
    tables are joined (at a million patients, a third of a gigabyte more than the tables),
    as the tables keep most of its fields in narrower types. A float64 view is kept: every
    field of the engine's float blocks is a float64 column of a table, so the block holds
    nothing more, and the join reads it once instead of a copy.
    """
    if isinstance(column, np.ndarray):
        if column.dtype == dtype and (dtype == np.float64 or column.base is None and column.flags.c_contiguous):
            return column
        return np.array(column, dtype=dtype)
    return np.fromiter(column, dtype=dtype, count=len(column))  # faster than np.asarray on a sequence


def _code_dtype(categories: int) -> type:
    """The integer type pandas keeps a Categorical's codes in for `categories` categories
    (handing it codes of another type costs a conversion of the whole column)."""
    if categories < np.iinfo(np.int8).max:
        return np.int8
    return np.int16 if categories < np.iinfo(np.int16).max else np.int32


def _categorical(codes, categories) -> pd.Categorical:
    """A Categorical from integer codes (-1: missing) over `categories`."""
    dtype = category_dtype(tuple(categories))
    return pd.Categorical.from_codes(_array(codes, _code_dtype(len(dtype.categories))), dtype=dtype)


@functools.lru_cache(maxsize=256)
def category_dtype(categories: tuple[str, ...]) -> pd.CategoricalDtype:
    """The categorical dtype of these categories, made once (a table column's, a covariate's)."""
    # Checking the categories costs more than building a small chunk's column.
    return pd.CategoricalDtype(list(categories))


def episodes_columns(records: Records, model: Model, replicate: int) -> dict:
    """Return the chunk's episodes as the columns of the `episodes.parquet` table.

    `records` is a `Records` or any object with the same columns as arrays (the compiled engine's).
    """
    c = records.episodes
    treatments = [t.name for t in model.treatments]
    stoppers = _event_codes(model, c["treatment"], c["stopping_adverse_event"])
    responded = _array(c["responded"], np.int8)
    return _in_order({
        "replicate": np.full(len(responded), replicate, dtype=np.int32),
        "strategy": _categorical(c["strategy"], [s.name for s in model.strategies]),
        "patient": _array(c["patient"], np.int32),
        "episode": _array(c["episode"], np.int16),
        "line": _array(c["line"], np.int16),
        "treatment": _categorical(c["treatment"], treatments),
        "start": _array(c["start"], np.float64),
        "stop": _array(c["stop"], np.float64),
        "reason": _categorical(c["reason"], REASONS),
        "responded": pd.arrays.BooleanArray(responded == 1, responded < 0),
        "assessed": _array(c["assessed"], np.float64),
        "retreatment": _array(c["retreatment"], bool),
        "adverse_events": _array(c["adverse_events"], np.int16),
        "stopping_adverse_event": _categorical(stoppers, _event_names(model)),
        "escalated": _array(c["escalated"], bool),
        "below_target": _array(c["below_target"], bool),
        "bridged": _array(c["bridged"], bool),
        "months_waited": _array(c["months_waited"], np.float64),
    }, ["strategy", "patient", "episode"])


def bursts_columns(records: Records, model: Model, replicate: int) -> dict:
    """Return the chunk's corticosteroid bursts as the columns of the `bursts.parquet` table."""
    c = records.bursts
    return _in_order({
        "replicate": np.full(len(c["patient"]), replicate, dtype=np.int32),
        "strategy": _categorical(c["strategy"], [s.name for s in model.strategies]),
        "patient": _array(c["patient"], np.int32),
        "time": _array(c["time"], np.float64),
        "reason": _categorical(c["reason"], BURST_REASONS),
        "state": _categorical(c["state"], FLARE_STATES),
        "effective": _array(c["effective"], bool),
        "rebound": _array(c["rebound"], bool),
    }, ["strategy", "patient", "time"])


def adverse_events_columns(records: Records, model: Model, replicate: int) -> dict:
    """Return the chunk's adverse events as the columns of the `adverse_events.parquet` table."""
    c = records.events
    names = _event_codes(model, c["treatment"], c["adverse_event"])
    return _in_order({
        "replicate": np.full(len(names), replicate, dtype=np.int32),
        "strategy": _categorical(c["strategy"], [s.name for s in model.strategies]),
        "patient": _array(c["patient"], np.int32),
        "episode": _array(c["episode"], np.int16),
        "treatment": _categorical(c["treatment"], [t.name for t in model.treatments]),
        "adverse_event": _categorical(names, _event_names(model)),
        "time": _array(c["time"], np.float64),
        "stopped_treatment": _array(c["stopped_treatment"], bool),
    }, ["strategy", "patient", "episode", "time"])


def patients_columns(records: Records, model: Model, replicate: int, first_patient: int, covariates: dict) -> dict:
    """Return the chunk's patient summaries, with covariates, as the columns of the `patients.parquet` table."""
    c = records.patients
    patient = _array(c["patient"], np.int32)
    columns = {
        "replicate": np.full(len(patient), replicate, dtype=np.int32),
        "strategy": _categorical(c["strategy"], [s.name for s in model.strategies]),
        "patient": patient,
        "age_group": _categorical(np.full(len(patient), ["adult", "child"].index(model.population.age_group)),
                                  ["adult", "child"]),
    }
    for covariate in model.population.covariates:
        values = covariates[covariate.name]
        if covariate.kind == "categorical":  # coded once per patient, not once per row
            values = pd.Categorical(values, dtype=category_dtype(tuple(covariate.levels)))
        columns[covariate.name] = values.take(patient - first_patient)
    columns["final_state"] = _categorical(c["final_state"], FINAL_STATES)
    columns["follow_up_months"] = _array(c["follow_up_months"], np.float64)
    columns["months_to_first_topical"] = _array(c["months_to_first_topical"], np.float64)
    for name in ("lines_used", "episodes", "relapses"):
        columns[name] = _array(c[name], np.int16)
    for name in ("months_systemic", "months_topical", "months_supportive_care", "months_waiting", "entry_month",
                 "months_to_first_control"):
        columns[name] = _array(c[name], np.float64)
    for name in ("bursts", "rebounds"):
        columns[name] = _array(c[name], np.int16)
    return _in_order(columns, ["strategy", "patient"])


def _event_names(model: Model) -> list[str]:
    return sorted({event.name for treatment in model.treatments for event in treatment.adverse_events})


def _event_codes(model: Model, treatments, events) -> np.ndarray:
    """Category codes (in `_event_names`) of each treatment's adverse event number (-1: none)."""
    table = _event_table(model)
    width = table.shape[1]
    events = _array(events, np.int32)
    # One flat index in 32 bits: indexing by two columns would first widen both to 64.
    index = _array(treatments, np.int32) * np.int32(width) + np.where(events < 0, np.int32(width - 1), events)
    return table.ravel().take(index)


def _in_order(columns: dict, keys: list[str]) -> dict:
    """Return the columns sorted by `keys` (stable: ties keep the engine's order)."""
    key_columns = [_codes(columns[key]) for key in keys]
    if _sorted(key_columns):
        return columns
    order = _order(key_columns)
    return {name: column.take(order) for name, column in columns.items()}


def _order(keys: list[np.ndarray]) -> np.ndarray:
    """The stable order of rows by `keys`: one sort of a combined integer key where the keys
    are integers of small range (a few times faster than `np.lexsort`), floats ranked; a last
    float key (a time) is sorted only among the rows the other keys leave tied; else lexsort."""
    *whole, last = keys
    if whole and last.dtype.kind == "f" and not np.isnan(last).any():
        combined = _combined(whole)
        if combined is not None:
            return _then_by(combined, last)
    keys = [_rank(key) if key.dtype.kind == "f" else key for key in keys]
    combined = _combined(keys)
    if combined is not None:
        return np.argsort(combined, kind="stable")
    return np.lexsort(keys[::-1])


def _combined(keys: list[np.ndarray]) -> np.ndarray | None:
    """One int64 key ordering rows as `keys` do, lexicographically; None if they are not
    all integers or their ranges do not fit."""
    if not all(key.dtype.kind in "iub" for key in keys):
        return None
    low = [int(key.min()) for key in keys]
    spans = [int(key.max()) - lo + 1 for key, lo in zip(keys, low)]
    if float(np.prod(spans, dtype=float)) >= 2.0**62:
        return None
    combined = np.zeros(len(keys[0]), dtype=np.int64)
    for key, lo, span in zip(keys, low, spans):
        combined = combined * span + (key.astype(np.int64) - lo)
    return combined


def _then_by(combined: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The stable order by `combined`, then by `values` (no NaN) among rows of equal `combined`.

    Most groups (an episode's adverse events, a trajectory's bursts) hold one row or come
    in time order already, so only the rows of groups out of order are sorted again.
    """
    if (combined[1:] >= combined[:-1]).all():  # the engine's order already: only ties to sort
        order = np.arange(len(combined))
        key, value = combined, values
    else:
        order = np.argsort(combined, kind="stable")
        key, value = combined[order], values[order]
    tied = key[1:] == key[:-1]
    unsorted = tied & (value[1:] < value[:-1])
    if not unsorted.any():
        return order
    group = np.cumsum(np.concatenate([[True], ~tied]))  # group number of each sorted row
    rows = np.flatnonzero(np.isin(group, group[1:][unsorted]))
    order[rows] = order[rows][np.lexsort((value[rows], key[rows]))]
    return order


def _rank(values: np.ndarray) -> np.ndarray:
    """Each value's rank among the distinct values (equal values share it), or the values
    themselves if any is NaN. A stable sort of floats costs several times one of integers."""
    order = np.argsort(values)
    ordered = values[order]
    if len(ordered) and np.isnan(ordered[-1]):  # NaN sorts last
        return values
    new_value = np.zeros(len(values), dtype=bool)
    new_value[1:] = ordered[1:] != ordered[:-1]
    rank = np.empty(len(values), dtype=np.int64)
    rank[order] = np.cumsum(new_value)
    return rank


def _sorted(keys: list[np.ndarray]) -> bool:
    """Whether rows are already in lexicographic order of `keys` (cheaper than sorting them)."""
    if not len(keys[0]):
        return True
    tied = np.ones(len(keys[0]) - 1, dtype=bool)
    for key in keys:
        before, after = key[:-1], key[1:]
        if (tied & (after < before)).any():
            return False
        tied &= after == before
    return True


def _codes(column):
    return column.codes if isinstance(column, pd.Categorical) else np.asarray(column)


def join_columns(chunks: list[dict], strategies: int) -> pd.DataFrame:
    """Join the chunks' columns of one table into a DataFrame sorted by replicate, strategy, then
    as within a chunk.

    Each chunk's columns are sorted by strategy, patient, ...; chunks come in replicate then
    patient order. So taking, for each replicate and strategy, that strategy's rows of each
    chunk in turn gives the sorted table without sorting it again. The chunks' dicts are
    emptied as their columns are joined (the caller hands them over).
    """
    if len(chunks) == 1:
        return table_frame(chunks[0])
    pieces = []
    replicates = [int(chunk["replicate"][0]) if len(chunk["replicate"]) else -1 for chunk in chunks]
    bounds = [np.searchsorted(chunk["strategy"].codes, np.arange(strategies + 1)) for chunk in chunks]
    for replicate in dict.fromkeys(r for r in replicates if r >= 0):
        for s in range(strategies):
            pieces += [(chunk, b[s], b[s + 1]) for chunk, b, r in zip(chunks, bounds, replicates) if r == replicate]
    pieces = pieces or [(chunks[0], 0, 0)]
    # Column by column, each chunk's column dropped once joined: the peak is the chunks plus
    # one joined column, not the chunks plus the whole joined table (half a gigabyte at 1M).
    # The joined column is a fresh mapping, while the chunks' columns were freed into the heap:
    # handed back column by column, they are not kept beside the whole joined table.
    trim = sum(b - a for _, a, b in pieces) >= _TRIM_FROM_ROWS
    joined = {}
    for name in list(chunks[0]):
        joined[name] = _concatenated([chunk[name][a:b] for chunk, a, b in pieces])
        for chunk in chunks:
            del chunk[name]
        if trim:
            hand_back_freed_memory(keep_mib=0)
    return table_frame(joined)


def table_frame(columns: dict) -> pd.DataFrame:
    """A table's DataFrame over its columns as they are (no copy)."""
    # Without a copy pandas keeps one block per column instead of stacking the columns of
    # a dtype into one 2-D block: stacking eight million rows took about a second.
    return pd.DataFrame(columns, copy=False)


def _concatenated(parts: list):
    first = parts[0]
    if isinstance(first, np.ndarray):
        return np.concatenate(parts)
    if isinstance(first, pd.Categorical):  # the same categories in every part: join the codes
        return pd.Categorical.from_codes(np.concatenate([part.codes for part in parts]), dtype=first.dtype,
                                         validate=False)
    return type(first)._concat_same_type(parts)  # pandas extension arrays (boolean)


# -- the run's columns, preallocated in table order and filled chunk by chunk ---------------

#: A region's rows are estimated from the rows per patient seen so far, with this much more, and
#: `_SPREAD` standard errors of that rate more (as if the rows were counts of a Poisson process),
#: and `_SPARE_ROWS`: room never written costs no memory, while a region that fills up is grown,
#: which costs one copy of the table.
_MARGIN = 0.02
_SPREAD = 4.0
_SPARE_ROWS = 1024
_REGROWN_MARGIN = 0.05


class TableColumns:
    """One table's stored columns for a whole run, one region per (replicate, strategy) in table
    order, preallocated from an estimate of its rows ("count, then fill") and filled chunk by chunk.

    `fields` maps each stored column to its NumPy type. A region's capacity is the rows per
    patient seen so far times the patients of a replicate (plus a margin); when a chunk needs more,
    every region is laid out again with the rows per patient then known (one copy of what was
    placed). `finished` moves the regions together in place. Pages never written cost no memory.
    """

    def __init__(self, fields: dict[str, type], replicates: int, strategies: int, patients: int,
                 margin: float | None = None, spare_rows: int | None = None):
        self.fields, self.strategies, self.patients = fields, strategies, patients
        self.margin = _MARGIN if margin is None else margin
        self.spare_rows = _SPARE_ROWS if spare_rows is None else spare_rows
        regions = replicates * strategies
        self.columns: dict[str, np.ndarray] | None = None
        self.start = np.zeros(regions, dtype=np.int64)
        self.capacity = np.zeros(regions, dtype=np.int64)
        self.filled = np.zeros(regions, dtype=np.int64)
        self.placed_patients = np.zeros(replicates, dtype=np.int64)  # per replicate
        self.rows_seen = np.zeros(strategies, dtype=np.int64)  # per strategy, over the replicates
        self.patients_seen = 0

    def place(self, replicate: int, rows: np.ndarray, patients: int) -> np.ndarray:
        """Reserve `rows[s]` rows of each strategy's region of `replicate` for a chunk of `patients`
        patients (the next of that replicate); return the first row of each (into `columns`)."""
        self.rows_seen += rows
        self.patients_seen += patients
        regions = slice(replicate * self.strategies, (replicate + 1) * self.strategies)
        self.placed_patients[replicate] += patients
        if self.columns is None or (self.filled[regions] + rows > self.capacity[regions]).any():
            self._lay_out(replicate, rows, regrown=self.columns is not None)
        at = self.start[regions] + self.filled[regions]
        self.filled[regions] += rows
        return at

    def _lay_out(self, replicate: int, rows: np.ndarray, regrown: bool) -> None:
        """Capacities from the rows per patient seen so far, and the columns made (or moved) to fit."""
        margin = _REGROWN_MARGIN if regrown else self.margin
        if self.margin:  # not exact: the rate's own uncertainty too
            margin = margin + _SPREAD / np.sqrt(self.rows_seen + 1)  # per strategy
        rate = self.rows_seen / max(self.patients_seen, 1)  # per strategy
        remaining = self.patients - self.placed_patients  # per replicate, after this chunk
        expected = np.ceil(np.outer(remaining, rate) * (1 + margin)).astype(np.int64).ravel() + self.spare_rows
        filled = self.filled.copy()
        filled[replicate * self.strategies:(replicate + 1) * self.strategies] += rows
        capacity = np.where(np.repeat(remaining, self.strategies) > 0, np.maximum(self.capacity, filled + expected),
                            filled)  # a finished replicate's regions keep their rows only
        start = np.concatenate([[0], np.cumsum(capacity)[:-1]])
        columns = {name: np.empty(int(capacity.sum()), dtype=dtype) for name, dtype in self.fields.items()}
        if self.columns is not None:
            for name, column in columns.items():
                old = self.columns[name]
                for k in np.flatnonzero(self.filled):
                    column[start[k]:start[k] + self.filled[k]] = old[self.start[k]:self.start[k] + self.filled[k]]
        self.columns, self.start, self.capacity = columns, start, capacity

    def add_field(self, name: str, dtype: type) -> None:
        """A stored column more, zero in the rows placed so far."""
        self.fields[name] = dtype
        if self.columns is not None:
            self.columns[name] = np.zeros(int(self.capacity.sum()), dtype=dtype)

    def finished(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The columns with the regions moved together (in place), and the rows of each region."""
        total = int(self.filled.sum())
        columns = self.columns or {name: np.empty(0, dtype=dtype) for name, dtype in self.fields.items()}
        ends = np.cumsum(self.filled)
        for name, column in columns.items():
            for k in range(len(self.filled)):
                source, target = int(self.start[k]), int(ends[k] - self.filled[k])
                if source != target and self.filled[k]:  # C's memmove: overlapping, at memory speed
                    ctypes.memmove(column.ctypes.data + target * column.itemsize,
                                   column.ctypes.data + source * column.itemsize, int(self.filled[k]) * column.itemsize)
            columns[name] = _shrunk(column, total)
        self.columns = None
        return columns, self.filled


def _shrunk(column: np.ndarray, rows: int) -> np.ndarray:
    """The first `rows` of `column`, the rest of its memory handed back where it can be (no copy)."""
    if len(column) == rows:
        return column
    try:
        column.resize(rows, refcheck=False)  # in place: a large array's pages beyond are unmapped
        return column
    except ValueError:  # not its own memory
        return column[:rows]


def _categories(model: Model) -> dict[str, list[str]]:
    return {"strategy": [s.name for s in model.strategies], "treatment": [t.name for t in model.treatments],
            "reason": list(REASONS), "adverse_event": _event_names(model), "final_state": list(FINAL_STATES),
            "burst_reason": list(BURST_REASONS), "state": list(FLARE_STATES), "age_group": ["adult", "child"]}


#: The table's column of months waited for a limited resource, stored only once a chunk has a wait.
_WAITS = {"episodes": "months_waited", "patients": "months_waiting"}


class RunColumns:
    """A run's four tables, built in place: each chunk's rows copied once, into the row where the
    finished table holds them (`TableColumns`), from the compiled kernel's blocks (`add_compiled`)
    or from a chunk's columns (`add_columns`, as `sim.runner.chunk_columns` returns them).

    Equal to joining the chunks' columns (`join_columns`) in replicate and patient order.
    """

    def __init__(self, model: Model, replicates: int | None = None, patients: int | None = None,
                 exact: bool = False, first_replicate: int = 0):
        self.model, self.first_replicate = model, first_replicate
        self.replicates = model.replicates if replicates is None else replicates
        self.patients = model.patients if patients is None else patients
        c = self.categories = _categories(model)
        code = {name: _code_dtype(len(values)) for name, values in c.items()}
        self.event_codes = _event_table(model)
        covariates = {cov.name: _covariate_dtype(cov) for cov in model.population.covariates}
        self.covariates = list(covariates)
        fields = {
            "episodes": {"patient": np.int32, "episode": np.int16, "line": np.int16, "treatment": code["treatment"],
                         "start": np.float64, "stop": np.float64, "reason": code["reason"], "responded": bool,
                         "responded/unknown": bool, "assessed": np.float64, "retreatment": bool,
                         "adverse_events": np.int16, "stopping_adverse_event": code["adverse_event"],
                         "escalated": bool, "below_target": bool, "bridged": bool},
            "patients": {"patient": np.int32, **covariates, "final_state": code["final_state"],
                         "follow_up_months": np.float64, "months_to_first_topical": np.float64,
                         "lines_used": np.int16, "episodes": np.int16, "relapses": np.int16,
                         "months_systemic": np.float64, "months_topical": np.float64,
                         "months_supportive_care": np.float64, "entry_month": np.float64,
                         "months_to_first_control": np.float64, "bursts": np.int16, "rebounds": np.int16},
            "adverse_events": {"patient": np.int32, "episode": np.int16, "treatment": code["treatment"],
                               "adverse_event": code["adverse_event"], "time": np.float64,
                               "stopped_treatment": bool},
            "bursts": {"patient": np.int32, "time": np.float64, "reason": code["burst_reason"],
                       "state": code["state"], "effective": bool, "rebound": bool},
        }
        strategies = len(model.strategies)
        self.tables = {
            name: TableColumns(f, self.replicates, strategies, self.patients,
                               *((0.0, 0) if exact or name == "patients" else ()))
            for name, f in fields.items()}

    def add_compiled(self, replicate: int, first_patient: int, count: int, blocks: list[np.ndarray],
                     counts: np.ndarray, covariates: dict) -> None:
        """Copy a chunk's rows from the compiled kernel's blocks (one model, regions = strategies)
        and its patients' covariates by name. Raises RuntimeError if the kernel's rows are out of order."""
        from sim.engine import compiled_columns as place

        ep_i, ep_f, ae_i, ae_f, b_i, b_f, pat_i, pat_f = blocks
        strategies = len(self.model.strategies)
        counts = counts[:strategies]
        ordered = True
        t = self.tables["episodes"]
        at = t.place(replicate, counts[:, 0], count)
        c = t.columns
        for s in range(strategies):
            ordered &= place.place_episodes(
                ep_i, ep_f, s, counts[s, 0], at[s], self.event_codes, c["patient"], c["episode"], c["line"],
                c["treatment"], c["start"], c["stop"], c["reason"], c["responded"], c["responded/unknown"],
                c["assessed"], c["retreatment"], c["adverse_events"], c["stopping_adverse_event"], c["escalated"],
                c["below_target"], c["bridged"])
        t = self.tables["adverse_events"]
        at = t.place(replicate, counts[:, 1], count)
        c = t.columns
        for s in range(strategies):
            ordered &= place.place_events(ae_i, ae_f, s, counts[s, 1], at[s], self.event_codes, c["patient"],
                                          c["episode"], c["treatment"], c["adverse_event"], c["time"],
                                          c["stopped_treatment"])
        t = self.tables["bursts"]
        at = t.place(replicate, counts[:, 2], count)
        c = t.columns
        for s in range(strategies):
            ordered &= place.place_bursts(b_i, b_f, s, counts[s, 2], at[s], c["patient"], c["time"], c["reason"],
                                          c["state"], c["effective"], c["rebound"])
        t = self.tables["patients"]
        at = t.place(replicate, np.full(strategies, count), count)
        c = t.columns
        for s in range(strategies):
            place.place_patients(
                pat_i, pat_f, s, count, at[s], first_patient, c["patient"], c["final_state"], c["follow_up_months"],
                c["months_to_first_topical"], c["lines_used"], c["episodes"], c["relapses"], c["months_systemic"],
                c["months_topical"], c["months_supportive_care"], c["entry_month"], c["months_to_first_control"],
                c["bursts"], c["rebounds"])
            for name in self.covariates:
                c[name][at[s]:at[s] + count] = _stored(covariates[name])
        if not ordered:
            raise RuntimeError("the compiled kernel's rows are out of patient order")

    def add_columns(self, replicate: int, count: int, tables: dict[str, dict]) -> None:
        """Copy a chunk's columns (each table's, sorted by strategy; `sim.runner.chunk_columns`)."""
        strategies = len(self.model.strategies)
        for name, table in self.tables.items():
            columns = tables[name]
            bounds = np.searchsorted(_codes(columns["strategy"]), np.arange(strategies + 1))
            wait = _WAITS.get(name)
            if wait not in table.fields and wait in columns and np.any(columns[wait]):
                table.add_field(wait, np.float64)
            at = table.place(replicate, np.diff(bounds), count)
            for field in table.fields:
                source = _stored(columns[field.split("/")[0]], mask=field.endswith("/unknown"))
                target = table.columns[field]
                for s in range(strategies):
                    target[at[s]:at[s] + bounds[s + 1] - bounds[s]] = source[bounds[s]:bounds[s + 1]]

    def finished(self) -> dict[str, dict]:
        """Each table's columns (as `sim.runner.chunk_columns` gives a chunk's), the stored columns
        handed over (the object is spent)."""
        return {name: self.finished_table(name) for name in list(self.tables)}

    def finished_table(self, name: str) -> dict:
        """Table `name`'s columns, its regions moved together (in place) and handed over."""
        stored, rows = self.tables.pop(name).finished()
        c = self.categories
        strategies = len(self.model.strategies)
        regions = np.arange(len(rows))
        out = {"replicate": np.repeat((regions // strategies + self.first_replicate).astype(np.int32), rows),
               "strategy": _from_codes(np.repeat((regions % strategies).astype(_code_dtype(strategies)), rows),
                                       c["strategy"]),
               "patient": stored.pop("patient")}
        total = len(out["patient"])
        if name == "patients":
            group = ["adult", "child"].index(self.model.population.age_group)
            out["age_group"] = _from_codes(np.full(total, group, dtype=np.int8), c["age_group"])
        coded = {"treatment": "treatment", "reason": "burst_reason" if name == "bursts" else "reason",
                 "stopping_adverse_event": "adverse_event", "adverse_event": "adverse_event",
                 "final_state": "final_state", "state": "state"}
        levels = {cov.name: list(cov.levels) for cov in self.model.population.covariates if cov.kind == "categorical"}
        for field in list(stored):
            if field.endswith("/unknown") or field not in stored:
                continue
            values = stored.pop(field)
            if field in levels:
                values = _from_codes(values, levels[field])
            elif field in coded and field not in self.covariates:
                values = _from_codes(values, c[coded[field]])
            elif field + "/unknown" in stored:
                values = pd.arrays.BooleanArray(values, stored.pop(field + "/unknown"))
            out[field] = values
            if (name, field) in (("episodes", "bridged"), ("patients", "months_supportive_care")):
                wait = _WAITS[name]  # zero without limited resources: pages never written
                out[wait] = stored.pop(wait) if wait in stored else np.zeros(total)
        return out


def _from_codes(codes: np.ndarray, categories: list[str]) -> pd.Categorical:
    return pd.Categorical.from_codes(codes, dtype=category_dtype(tuple(categories)), validate=False)


def _stored(column, mask: bool = False) -> np.ndarray:
    """The array a column is stored as: a Categorical's codes, a BooleanArray's values (or `mask`)."""
    if isinstance(column, pd.Categorical):
        return column.codes
    if isinstance(column, pd.arrays.BooleanArray):
        return column._mask if mask else column._data
    return np.asarray(column)


def _covariate_dtype(covariate) -> type:
    if covariate.kind == "categorical":
        return _code_dtype(len(covariate.levels))
    return bool if covariate.kind == "boolean" else np.float64


def _event_table(model: Model) -> np.ndarray:
    """Treatments x (adverse events + 1): the category code (in `_event_names`) of each
    treatment's adverse event number; the last column, -1, stands for none."""
    names = _event_names(model)
    width = max((len(t.adverse_events) for t in model.treatments), default=0) + 1
    table = np.full((len(model.treatments), width), -1, dtype=_code_dtype(len(names)))
    for t in model.treatments:
        table[t.index, :len(t.adverse_events)] = [names.index(event.name) for event in t.adverse_events]
    return table
