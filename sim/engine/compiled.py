"""The compiled engine: chunks of patients (or a PSA's samples) through the Numba kernel of
`sim.engine.compiled_kernel`, and its columns as the records `sim.engine.records` reads.

Each chunk's patients are simulated under every strategy in one kernel call, into
preallocated columns, one region per strategy, grown by doubling when a chunk needs more
(the kernel then resumes at the patient that did not fit). A run keeps these blocks from
chunk to chunk (`simulate_into`, `Blocks`) and copies each chunk's rows from them straight
into the run's tables (`sim.engine.records.RunColumns`); `simulate_chunk` gives one chunk's
records on their own. A PSA's samples go through it
together too (`simulate_samples`), a group of `CHUNK_PATIENTS` patient-samples per call into
blocks reused from group to group: each sample's tables are those of its own run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.engine.compiled_kernel import (
    A_EPISODE,
    A_EVENT,
    A_PATIENT,
    A_STOPPED,
    A_TREATMENT,
    B_EFFECTIVE,
    B_PATIENT,
    B_REASON,
    B_REBOUND,
    B_STATE,
    BURSTS,
    CACHED_OCCURRENCES,
    DONE,
    E_ASSESSED,
    E_BELOW_TARGET,
    E_BRIDGED,
    E_EPISODE,
    E_ESCALATED,
    E_EVENTS,
    E_LINE,
    E_PATIENT,
    E_REASON,
    E_RESPONDED,
    E_RETREATMENT,
    E_START,
    E_STOP,
    E_STOPPER,
    E_TREATMENT,
    EPISODES,
    EVENTS,
    FULL,
    P_BURSTS,
    P_ENTRY,
    P_EPISODES,
    P_FINAL,
    P_FIRST_CONTROL,
    P_FIRST_TOPICAL,
    P_FOLLOW_UP,
    P_LINES,
    P_REBOUNDS,
    P_RELAPSES,
    P_SUPPORTIVE,
    P_SYSTEMIC,
    P_TOPICAL,
    S_CODE,
    S_PATIENT,
    S_SAMPLE,
    S_STRATEGY,
    TOO_MANY_EPISODES,
    patient_levels,
    patient_uniforms,
    simulate_samples as _kernel,
)
from sim.engine.compiled_model import Packed, UnsupportedFeature, covariate_levels, pack, stack
from sim.engine.records import category_dtype
from sim.guard import runaway_refusal
from sim.loader import Problem, ScenarioError
from sim.model import Model
from sim.rules import purposes as P

CHUNK_PATIENTS = 65_536



# -- the Python side: a chunk's covariates, the columns, the records ----------------------


class ColumnRecords:
    """A chunk's rows as columns (NumPy arrays), one dict per table, as `sim.engine.records` reads them."""

    def __init__(self, episodes: dict, events: dict, patients: dict, bursts: dict):
        self.episodes, self.events, self.patients, self.bursts = episodes, events, patients, bursts


_PACKED: dict[int, tuple[Model, Packed]] = {}


def packed_model(model: Model) -> Packed:
    """`pack(model)`, kept for the model last packed (a run packs once, not once per chunk)."""
    key = id(model)
    if key not in _PACKED or _PACKED[key][0] is not model:
        _PACKED.clear()
        _PACKED[key] = (model, pack(model))
    return _PACKED[key][1]


def check_supported(model: Model) -> None:
    """Raise `ScenarioError` if the compiled engine cannot simulate `model` (naming what it lacks)."""
    try:
        packed_model(model)
    except UnsupportedFeature as exc:
        raise ScenarioError([Problem(model.name, "settings.engine", str(exc))]) from None


def supports(model: Model) -> bool:
    """Whether the compiled engine can simulate `model`."""
    try:
        packed_model(model)
    except UnsupportedFeature:
        return False
    return True


def chunk_covariates(model: Model, replicate: int, first_patient: int, count: int) -> tuple[dict, np.ndarray]:
    """The covariates of a chunk's patients: by name (for the patients table) and as a
    patients x covariates matrix of numbers (yes/no as 0/1, a level as its number) for the kernel."""
    named, matrix = {}, np.zeros((count, max(1, len(model.population.covariates))))
    levels = covariate_levels(model)
    for k, covariate in enumerate(model.population.covariates):
        if covariate.kind == "categorical":
            codes = patient_levels(model.seed, replicate, first_patient, count, P.COVARIATE, k, 0,
                                   np.cumsum(covariate.level_weights))
            matrix[:, k] = codes
            named[covariate.name] = pd.Categorical.from_codes(codes,
                                                              dtype=category_dtype(tuple(levels[covariate.name])),
                                                              validate=False)
            continue
        u = patient_uniforms(model.seed, replicate, first_patient, count, P.COVARIATE, k, 0)
        if covariate.kind == "numeric":
            value = covariate.distribution.ppf(u)
            named[covariate.name] = matrix[:, k] = value
        else:
            value = u < covariate.probability
            named[covariate.name], matrix[:, k] = value, value
    return named, matrix


def simulate_chunk(model: Model, replicate: int, first_patient: int, count: int) -> tuple[ColumnRecords, dict]:
    """Simulate every strategy for patients `first_patient .. first_patient+count-1` of
    `replicate`; return their records (columns) and their covariates by name."""
    return simulate_samples([model], replicate, first_patient, count)[0]


class Blocks:
    """The kernel's blocks kept from chunk to chunk of a run (`simulate_into`): made once, grown
    when a chunk needs more rows, never freed and remade (each chunk would touch fresh pages)."""

    def __init__(self):
        self.blocks: list[np.ndarray] | None = None
        self.capacity: list[int] = []


def simulate_into(model: Model, replicate: int, first_patient: int, count: int,
                  kept: Blocks) -> tuple[list[np.ndarray], np.ndarray, dict]:
    """Simulate every strategy for patients `first_patient .. first_patient+count-1` of
    `replicate` into the blocks `kept` (made or grown to fit); return the blocks, the rows written
    per strategy and table (`sim.engine.records.RunColumns.add_compiled` reads them) and the
    patients' covariates by name. The blocks are overwritten by the next call."""
    m = _stacked(model)
    named, matrix = chunk_covariates(model, replicate, first_patient, count)
    seeds = np.array([model.seed], dtype=np.int64)
    if kept.blocks is None or kept.blocks[6].shape[1] < count:
        bursting = bool(m.lays_flares.any() or m.bridged.any())
        # Pages of the blocks never written cost nothing: room enough that a run rarely grows them.
        kept.capacity = [max(16, 4 * count), max(16, 3 * count), max(16, 4 * count if bursting else 1)]
        kept.blocks = None
    classes = drug_classes(m, seeds)
    kept.blocks, counts = _simulated(m, [model], seeds, matrix[None], replicate, first_patient, count, kept.blocks,
                                     kept.capacity, len(model.strategies), classes, shared_plans(m, classes, count))
    return kept.blocks, counts, named


def simulate_samples(models: list[Model], replicate: int, first_patient: int, count: int,
                     stacked: Packed | None = None) -> list[tuple[ColumnRecords, dict]]:
    """Simulate patients `first_patient .. first_patient+count-1` of `replicate` under every
    strategy of each model (a PSA's samples: the same scenario with other parameter values, each
    with its own seed) in as few kernel calls as `CHUNK_PATIENTS` allows; return each model's
    records and covariates, equal to `simulate_chunk` of that model alone. `stacked` is
    `stack_models(models)` if already made. Raises `ScenarioError` if the models differ in structure."""
    m = stacked if stacked is not None else stack_models(models)
    strategies = len(models[0].strategies)
    drawn = _covariates(models, replicate, first_patient, count)
    matrix = np.stack([d[1] for d in drawn])
    seeds = np.array([model.seed for model in models], dtype=np.int64)
    bursting = bool(m.lays_flares.any() or m.bridged.any())
    # Samples go through the kernel a group at a time, into blocks reused from group to group:
    # the blocks of all samples at once were about twice the size of the rows they held (peak
    # 2.4 GB for 1,000 x 1,000 x 3; 1.4 GB a group at a time, benchmarks/bench_psa.py).
    group = max(1, CHUNK_PATIENTS // max(count, 1))
    capacity = [max(16, 4 * count), max(16, 3 * count), max(16, count if bursting else 1)]
    blocks: list[np.ndarray] | None = None
    classes = drug_classes(m, seeds)
    shared = shared_plans(m, classes, count)
    out = []
    for first in range(0, len(models), group):
        last = min(first + group, len(models))
        part = m if (first, last) == (0, len(models)) else _samples_of(m, first, last)
        blocks, counts = _simulated(part, models[first:last], seeds[first:last], matrix[first:last], replicate,
                                    first_patient, count, blocks, capacity, strategies, classes[first:last], shared)
        records = _group_records(blocks, counts, strategies, first_patient, count, reused=last < len(models))
        out += [(r, drawn[first + k][0]) for k, r in enumerate(records)]
    return out


def _simulated(m: Packed, models: list[Model], seeds: np.ndarray, matrix: np.ndarray, replicate: int,
               first_patient: int, count: int, blocks: list[np.ndarray] | None, capacity: list[int],
               strategies: int, classes: np.ndarray, shared: tuple) -> tuple[list[np.ndarray], np.ndarray]:
    """The kernel over the samples of `m` into `blocks` (made, or grown, to fit); the blocks and
    the rows written per region and table. Raises `ScenarioError` for a runaway patient."""
    regions = len(models) * strategies
    if blocks is None or blocks[6].shape[0] < regions:
        blocks = _blocks(regions, capacity, count)
    counts = np.zeros((regions, 3), dtype=np.int64)
    status = np.zeros(4, dtype=np.int64)
    sample = begin = 0
    while True:
        begin = _kernel(m, seeds, replicate, first_patient, count, sample, begin, matrix, *blocks, counts, status,
                        classes, shared)
        if status[S_CODE] == DONE:
            return blocks, counts
        sample = int(status[S_SAMPLE])
        if status[S_CODE] != FULL:
            raise _runaway(models[sample], int(status[S_CODE]), int(status[S_PATIENT]), int(status[S_STRATEGY]))
        blocks = _grown(blocks, capacity, counts, blocks[6].shape[0], count)


#: Plans kept for the next samples only up to this many bytes (`shared_plans`).
SHARED_PLAN_BYTES = 64 * 2**20


def drug_classes(m: Packed, seeds: np.ndarray) -> np.ndarray:
    """Samples x treatments: equal numbers in a column where the samples of the stacked `m` have the
    same seed and the same parameters of that treatment other than its response probability
    (everything an episode plan of the kernel reads: its distributions, fates, escalation, target,
    adverse events, and the strategies' treat-to-target assessments), bit for bit."""
    samples, treatments = m.response.shape
    if samples == 1:
        return np.zeros((1, treatments), dtype=np.int64)
    every = np.arange(samples)

    def rows(index: np.ndarray) -> np.ndarray:  # the distribution rows of one index per sample
        return np.where((index >= 0)[:, None], m.distributions[every, np.maximum(index, 0)], 0.0)

    common = [seeds.astype(np.float64)[:, None]]
    common += [rows(m.target_assess[:, s]) for s in range(m.target_assess.shape[1])]
    classes = np.zeros((samples, treatments), dtype=np.int64)
    for t in range(treatments):
        own = [m.fates[:, t], m.escalation[:, t, None], m.escalated_response[:, t, None], m.target[:, t, None]]
        for field in (m.assess, m.course, m.cap, m.loss, m.reassess):
            own += [field[:, t, None].astype(np.float64), rows(field[:, t])]
        events = range(int(m.ae_first[0, t]), int(m.ae_first[0, t + 1]))
        for e in events:
            own += [m.ae_probability[:, e, None], m.ae_stop_probability[:, e, None],
                    m.ae_onset[:, e, None].astype(np.float64), rows(m.ae_onset[:, e])]
        features = np.ascontiguousarray(np.concatenate(common + own, axis=1)).view(np.int64)
        classes[:, t] = np.unique(features, axis=0, return_inverse=True)[1].reshape(-1)
    return classes


def shared_plans(m: Packed, classes: np.ndarray, count: int) -> tuple:
    """The kernel's store of episode plans for the next samples of a drug's class (`count`
    patients x treatments x kept occurrences x first response): empty arrays when no class has two
    samples or it would take more than `SHARED_PLAN_BYTES`."""
    treatments = m.response.shape[1]
    events = max(1, int(np.diff(m.ae_first[0]).max(initial=0)))
    shape = (count, treatments, CACHED_OCCURRENCES, 2)
    size = int(np.prod(shape)) * (2 * 8 + 8 * 4 + events * 9)
    repeated = any(len(np.unique(classes[:, t])) < len(classes) for t in range(treatments))
    if not repeated or size > SHARED_PLAN_BYTES:
        shape = (0, treatments, CACHED_OCCURRENCES, 2)
    return (np.zeros((*shape, 2)), np.zeros((*shape, 8), dtype=np.int32), np.zeros((*shape, events)),
            np.zeros((*shape, events), dtype=np.int32), np.zeros((*shape, events), dtype=np.bool_))


def _samples_of(m: Packed, first: int, last: int) -> Packed:
    """Samples `first .. last-1` of the stacked `m` (views; the pooled tables shared)."""
    return Packed(**{name: value if name in ("gamma_tables", "empirical") else value[first:last]
                     for name, value in zip(Packed._fields, m)})


def stack_models(models: list[Model]) -> Packed:
    """The models packed and stacked for `simulate_samples` (`sim.engine.compiled_model.stack`);
    raises `ScenarioError` if they differ in structure or one cannot be simulated."""
    try:
        return stack([packed_model(model) for model in models]) if len(models) > 1 else _stacked(models[0])
    except UnsupportedFeature as exc:
        raise ScenarioError([Problem(models[0].name, "psa", str(exc))]) from None


def _covariates(models: list[Model], replicate: int, first_patient: int, count: int) -> list[tuple[dict, np.ndarray]]:
    """`chunk_covariates` of each model, drawn once for models with the same seed and population."""
    drawn: list[tuple[dict, np.ndarray]] = []
    for k, model in enumerate(models):
        earlier = models[k - 1] if k else None
        if earlier is not None and earlier.seed == model.seed and earlier.population == model.population:
            drawn.append(drawn[-1])
        else:
            drawn.append(chunk_covariates(model, replicate, first_patient, count))
    return drawn


_STACKED: dict[int, tuple[Model, Packed]] = {}


def _stacked(model: Model) -> Packed:
    """`stack([packed_model(model)])`, kept for the model last stacked."""
    key = id(model)
    if key not in _STACKED or _STACKED[key][0] is not model:
        _STACKED.clear()
        _STACKED[key] = (model, stack([packed_model(model)]))
    return _STACKED[key][1]


def _blocks(strategies: int, capacity: list[int], count: int) -> list[np.ndarray]:
    episodes, events, bursts = capacity
    return [np.zeros((strategies, episodes, 12), dtype=np.int32), np.zeros((strategies, episodes, 3)),
            np.zeros((strategies, events, 5), dtype=np.int32), np.zeros((strategies, events)),
            np.zeros((strategies, bursts, 5), dtype=np.int32), np.zeros((strategies, bursts)),
            np.zeros((strategies, count, 6), dtype=np.int32), np.zeros((strategies, count, 7))]


def _grown(blocks: list[np.ndarray], capacity: list[int], counts: np.ndarray, strategies: int,
           count: int) -> list[np.ndarray]:
    """The blocks with twice the capacity of each table (the rows written so far kept)."""
    for k in range(3):
        capacity[k] *= 2
    new = _blocks(strategies, capacity, count)
    for k, (old, fresh) in enumerate(zip(blocks[:6], new[:6])):
        rows = counts[:, k // 2].max()
        fresh[:, :rows] = old[:, :rows]
    return [*new[:6], *blocks[6:]]  # one patient row each: never grown


def _runaway(model: Model, code: int, patient: int, strategy: int) -> ScenarioError:
    return runaway_refusal(model.name, model.strategies[strategy].name, patient, episodes=code == TOO_MANY_EPISODES)


def _group_records(blocks: list[np.ndarray], counts: np.ndarray, strategies: int, first_patient: int,
                   count: int, reused: bool) -> list[ColumnRecords]:
    """The columns of each sample whose regions `counts` holds (a group's samples, in order);
    `reused`: the blocks will take another group's rows (so nothing may point into them)."""
    regions = len(counts)
    # One copy of the group's rows per block, each sample's rows a slice of it (a sample's
    # regions are consecutive): fewer, larger copies than a sample at a time (0.8 -> 0.7 s at
    # 1,000 x 1,000 x 3).
    joined = [np.concatenate([block[g, :counts[g, k // 2]] for g in range(regions)])
              for k, block in enumerate(blocks[:6])]
    ends = np.cumsum(counts, axis=0)
    starts = ends - counts
    pat_i, pat_f = blocks[6][:regions], blocks[7][:regions]
    if reused:
        pat_i, pat_f = pat_i.copy(), pat_f.copy()
    records = []
    for k in range(0, regions, strategies):
        rows = [block[starts[k, j // 2]:ends[k + strategies - 1, j // 2]] for j, block in enumerate(joined)]
        records.append(_records(rows, counts[k:k + strategies], strategies, first_patient, count,
                                pat_i[k:k + strategies], pat_f[k:k + strategies]))
    return records


def _records(rows: list[np.ndarray], counts: np.ndarray, strategies: int, first_patient: int, count: int,
             pat_i: np.ndarray, pat_f: np.ndarray) -> ColumnRecords:
    """One sample's columns from its rows of each table (strategy by strategy) and its patient blocks."""
    ei, ef, ai, af, bi, bf = rows

    def strategy_codes(table: int) -> np.ndarray:
        return np.repeat(np.arange(strategies, dtype=np.int16), counts[:, table])

    episodes = {
        "strategy": strategy_codes(EPISODES), "patient": ei[:, E_PATIENT], "episode": ei[:, E_EPISODE],
        "line": ei[:, E_LINE], "treatment": ei[:, E_TREATMENT], "start": ef[:, E_START], "stop": ef[:, E_STOP],
        "reason": ei[:, E_REASON], "responded": ei[:, E_RESPONDED], "assessed": ef[:, E_ASSESSED],
        "retreatment": ei[:, E_RETREATMENT], "adverse_events": ei[:, E_EVENTS],
        "stopping_adverse_event": ei[:, E_STOPPER], "escalated": ei[:, E_ESCALATED],
        "below_target": ei[:, E_BELOW_TARGET], "bridged": ei[:, E_BRIDGED], "months_waited": np.zeros(len(ei)),
    }
    events = {"strategy": strategy_codes(EVENTS), "patient": ai[:, A_PATIENT], "episode": ai[:, A_EPISODE],
              "treatment": ai[:, A_TREATMENT], "adverse_event": ai[:, A_EVENT], "time": af,
              "stopped_treatment": ai[:, A_STOPPED]}
    bursts = {"strategy": strategy_codes(BURSTS), "patient": bi[:, B_PATIENT], "time": bf, "reason": bi[:, B_REASON],
              "state": bi[:, B_STATE], "effective": bi[:, B_EFFECTIVE], "rebound": bi[:, B_REBOUND]}
    pi, pf = pat_i.reshape(-1, 6), pat_f.reshape(-1, 7)
    patients = {
        "strategy": np.repeat(np.arange(strategies, dtype=np.int16), count),
        "patient": np.tile(np.arange(first_patient, first_patient + count, dtype=np.int32), strategies),
        "final_state": pi[:, P_FINAL], "follow_up_months": pf[:, P_FOLLOW_UP],
        "months_to_first_topical": pf[:, P_FIRST_TOPICAL], "lines_used": pi[:, P_LINES],
        "episodes": pi[:, P_EPISODES], "relapses": pi[:, P_RELAPSES], "months_systemic": pf[:, P_SYSTEMIC],
        "months_topical": pf[:, P_TOPICAL], "months_supportive_care": pf[:, P_SUPPORTIVE],
        "months_waiting": np.zeros(len(pi)), "entry_month": pf[:, P_ENTRY],
        "months_to_first_control": pf[:, P_FIRST_CONTROL], "bursts": pi[:, P_BURSTS], "rebounds": pi[:, P_REBOUNDS],
    }
    return ColumnRecords(episodes, events, patients, bursts)
