"""Real runs of a tiny scenario (`tests/scenario_files/tiny_pathway.yaml`) for the analysis tests.

The tables come from `sim.runner.simulate`, the engine every run uses, so the analysis is
tested on what it will read; each distinct run is simulated once per test session (a
few hundred patients: tenths of a second) and checked against the table contract of
`sim/tables.py` (`check_contract`). Two strategies, four drugs:

- ``csa_first``: cyclosporine → methotrexate → azathioprine, re-treatment after a relapse;
- ``mtx_first``: methotrexate → cyclosporine → dupilumab, the next line after a relapse.

Closed forms for the estimators themselves (constant competing hazards) are in
`tests/closed_form_episodes.py`.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sim import tables as contract
from sim.app.outputs import build_manifest
from sim.loader import load_scenario
from sim.model import compile_model
from sim.runner import simulate

SCENARIO = Path(__file__).parent / "scenario_files" / "tiny_pathway.yaml"

#: The strategies' lines, as in the scenario file.
STRATEGIES = {
    "csa_first": ["cyclosporine", "methotrexate", "azathioprine"],
    "mtx_first": ["methotrexate", "cyclosporine", "dupilumab"],
}

TREATMENT_LABELS = {
    "cyclosporine": "Cyclosporine A",
    "methotrexate": "Methotrexate",
    "azathioprine": "Azathioprine",
    "dupilumab": "Dupilumab",
}

#: Covariates of the tiny population, after the contract's fixed patient columns.
COVARIATES = {"age_years": "float64", "sex": "category"}


@dataclass
class TinyRun:
    """The tables and run.json manifest of one run of the tiny scenario."""

    episodes: pd.DataFrame
    patients: pd.DataFrame
    adverse_events: pd.DataFrame
    bursts: pd.DataFrame
    manifest: dict = field(default_factory=dict)


def tiny_run(patients: int = 200, replicates: int = 1, seed: int = 1, horizon_months: float | None = None,
             strategies: dict[str, list[str]] | None = None) -> TinyRun:
    """The tiny scenario run with these settings (`strategies`: name -> lines, replacing the
    scenario's); simulated once per session and checked against the table contract.
    Each call returns fresh copies of the tables, which a test may change."""
    lines = None if strategies is None else tuple((name, tuple(ls)) for name, ls in strategies.items())
    run = _run(patients, replicates, seed, horizon_months, lines)
    return TinyRun(run.episodes.copy(), run.patients.copy(), run.adverse_events.copy(), run.bursts.copy(),
                   json.loads(json.dumps(run.manifest)))


@functools.lru_cache(maxsize=None)
def _run(patients, replicates, seed, horizon_months, lines) -> TinyRun:
    overrides = {"settings.patients": patients, "settings.replicates": replicates, "settings.seed": seed}
    if horizon_months is not None:
        overrides["settings.horizon"] = f"{horizon_months} months"
    if lines is not None:
        overrides["strategies"] = {name: {"lines": list(ls), "on_relapse": "next_line"} for name, ls in lines}
    loaded = load_scenario(SCENARIO, overrides)
    model = compile_model(loaded.scenario, loaded.name)
    tables = simulate(model, progress=False)
    manifest = json.loads(json.dumps(build_manifest(loaded, model, 0.0, "2026-01-01T00:00:00+00:00"), default=str))
    run = TinyRun(tables.episodes, tables.patients, tables.adverse_events, tables.bursts, manifest)
    check_contract(run, [name for name, _ in lines] if lines else list(STRATEGIES))
    return run


def check_contract(run: TinyRun, strategies: list[str]) -> None:
    """Assert that the tables follow `sim/tables.py`: column names in order, dtypes,
    categories and allowed values, keys and times consistent."""
    _check_columns(run.episodes, contract.EPISODE_COLUMNS)
    _check_columns(run.adverse_events, contract.ADVERSE_EVENT_COLUMNS)
    _check_columns(run.bursts, contract.BURST_COLUMNS)
    fixed = dict(contract.PATIENT_COLUMNS)
    before = {name: fixed.pop(name) for name in ("replicate", "strategy", "patient", "age_group")}
    _check_columns(run.patients, {**before, **COVARIATES, **fixed})
    for frame in (run.episodes, run.patients, run.adverse_events, run.bursts):
        assert list(frame["strategy"].cat.categories) == strategies
    episodes = run.episodes
    assert list(episodes["treatment"].cat.categories) == list(TREATMENT_LABELS)
    assert list(episodes["reason"].cat.categories) == list(contract.REASONS)
    assert not episodes["reason"].isna().any()
    assert list(run.patients["final_state"].cat.categories) == list(contract.FINAL_STATES)
    assert list(run.bursts["reason"].cat.categories) == list(contract.BURST_REASONS)
    assert list(run.bursts["state"].cat.categories) == list(contract.FLARE_STATES)
    assert (episodes["stop"] >= episodes["start"]).all() and (episodes["start"] >= 0).all()
    assessed = episodes["assessed"].notna()
    assert (episodes["responded"].notna() == assessed).all()
    assert ((episodes["assessed"][assessed] >= episodes["start"][assessed])
            & (episodes["assessed"][assessed] <= episodes["stop"][assessed])).all()
    stopped_by_event = episodes["reason"] == "adverse_event"
    assert (episodes["stopping_adverse_event"].notna() == stopped_by_event).all()
    keys = ["replicate", "strategy", "patient"]
    per_patient = episodes.groupby(keys, observed=True).size()
    counted = run.patients.set_index(keys)["episodes"]
    assert (counted.reindex(per_patient.index) == per_patient).all()
    assert not run.patients.duplicated(keys).any()
    assert (run.patients["follow_up_months"] >= episodes.groupby(keys, observed=True)["stop"].max()
            .reindex(run.patients.set_index(keys).index).fillna(0).to_numpy() - 1e-9).all()


def _check_columns(frame: pd.DataFrame, columns: dict[str, str]) -> None:
    assert list(frame.columns) == list(columns), (list(frame.columns), list(columns))
    for name, meaning in columns.items():
        kind = meaning.split(":")[0].split(" ")[0]
        dtype = frame[name].dtype
        expected = {"category": "category", "boolean": "boolean"}.get(kind, kind)
        assert str(dtype) == expected, (name, str(dtype), meaning)


def write_run_dir(path: Path, run: TinyRun, omit: tuple[str, ...] = ()) -> Path:
    """Write a run directory of `run`; `omit` names files or manifest keys to leave out."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for name in ("episodes", "patients", "adverse_events", "bursts"):
        if f"{name}.parquet" not in omit:
            getattr(run, name).to_parquet(path / f"{name}.parquet", index=False)
    if "run.json" not in omit:
        manifest = {key: value for key, value in run.manifest.items() if key not in omit}
        (path / "run.json").write_text(json.dumps(manifest, indent=2))
    return path


