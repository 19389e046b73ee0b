"""Synthetic run tables with known truth, for the analysis tests and benchmark.

Two generators:

- `exponential_episodes`: single episodes with constant cause-specific hazards and
  independent exponential censoring, so drug survival and the cumulative incidence of
  every reason have closed forms (`true_survival`, `true_incidence`).
- `synthetic_run`: a small pathway model written in NumPy (vectorised over patients)
  that produces episodes, patients and adverse-event tables obeying the contract of
  ``sim/tables.py``, with common random numbers across strategies: every strategy sees
  the same uniform draws for the same ``(replicate, patient)``.

It is a stand-in for the engine, not a model of atopic dermatitis: the hazards below are
round numbers chosen to exercise every reason and state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sim.tables import FINAL_STATES, REASONS

CAUSES = ("nonresponse", "adverse_event", "loss_of_response", "remission", "switch")

#: Cause-specific hazards per month of each synthetic treatment (same order as CAUSES).
TREATMENT_HAZARDS = {
    "cyclosporine": (0.030, 0.020, 0.010, 0.060, 0.010),
    "methotrexate": (0.040, 0.015, 0.010, 0.030, 0.005),
    "azathioprine": (0.050, 0.025, 0.010, 0.020, 0.005),
    "dupilumab": (0.015, 0.005, 0.008, 0.010, 0.002),
}

TREATMENT_LABELS = {
    "cyclosporine": "Cyclosporine A",
    "methotrexate": "Methotrexate",
    "azathioprine": "Azathioprine",
    "dupilumab": "Dupilumab",
}

STRATEGIES = {
    "csa_first": ["cyclosporine", "methotrexate", "azathioprine"],
    "mtx_first": ["methotrexate", "cyclosporine", "dupilumab"],
}

ADVERSE_EVENTS = ("infection", "hypertension", "nausea", "renal_impairment")


def exponential_episodes(
    n: int,
    hazards: dict[str, float],
    censoring_rate: float,
    horizon_months: float,
    seed: int,
    strategy: str = "s",
    treatment: str = "t",
) -> pd.DataFrame:
    """Episodes starting at 0 with constant cause hazards (per month) and exponential censoring."""
    rng = np.random.default_rng(seed)
    causes = list(hazards)
    rates = np.array([hazards[c] for c in causes])
    total = rates.sum()
    event_time = rng.exponential(1 / total, n)
    cause = rng.choice(len(causes), size=n, p=rates / total)
    censor_time = (
        rng.exponential(1 / censoring_rate, n) if censoring_rate > 0 else np.full(n, np.inf)
    )
    stop = np.minimum.reduce([event_time, censor_time, np.full(n, horizon_months)])
    reason = np.where(
        stop == event_time,
        np.array(causes, dtype=object)[cause],
        np.where(stop == censor_time, "lost_to_followup", "horizon"),
    )
    return _episode_frame(
        replicate=np.zeros(n, dtype=np.int32),
        strategy=np.full(n, strategy, dtype=object),
        patient=np.arange(n, dtype=np.int32),
        episode=np.ones(n, dtype=np.int16),
        line=np.ones(n, dtype=np.int16),
        treatment=np.full(n, treatment, dtype=object),
        start=np.zeros(n),
        stop=stop,
        reason=reason,
        responded=np.full(n, None, dtype=object),
        assessed=np.full(n, np.nan),
        retreatment=np.zeros(n, dtype=bool),
        adverse_events=(reason == "adverse_event").astype(np.int16),
        stopping_adverse_event=np.where(reason == "adverse_event", "infection", None),
        strategies=[strategy],
        treatments=[treatment],
    )


def true_survival(hazards: dict[str, float], t):
    """Drug survival (any reason in ``hazards`` is an event) at months ``t``."""
    return np.exp(-sum(hazards.values()) * np.asarray(t, dtype=float))


def true_incidence(hazards: dict[str, float], reason: str, t):
    """Cumulative incidence of ``reason`` at months ``t`` under constant competing hazards."""
    total = sum(hazards.values())
    return hazards[reason] / total * (1 - np.exp(-total * np.asarray(t, dtype=float)))


def _episode_frame(strategies, treatments, **columns) -> pd.DataFrame:
    frame = pd.DataFrame(columns)
    frame["strategy"] = pd.Categorical(frame["strategy"], categories=strategies)
    frame["treatment"] = pd.Categorical(frame["treatment"], categories=treatments)
    frame["reason"] = pd.Categorical(frame["reason"], categories=REASONS)
    frame["responded"] = pd.array(frame["responded"], dtype="boolean")
    frame["stopping_adverse_event"] = pd.Categorical(
        frame["stopping_adverse_event"], categories=ADVERSE_EVENTS
    )
    return frame


@dataclass
class SyntheticRun:
    """Tables and manifest of a synthetic run."""

    episodes: pd.DataFrame
    patients: pd.DataFrame
    adverse_events: pd.DataFrame
    manifest: dict = field(default_factory=dict)


def synthetic_run(
    patients: int = 200,
    replicates: int = 1,
    seed: int = 1,
    horizon_months: float = 60.0,
    strategies: dict[str, list[str]] | None = None,
    loss_rate: float = 0.004,
    relapse_rate: float = 1 / 12,
    max_episodes: int = 12,
) -> SyntheticRun:
    """Simulate a pathway run with common random numbers across strategies.

    Rates are per month. Responders who reach remission go back to topical therapy and
    relapse at ``relapse_rate``; a relapse starts the next line, or re-treats the last
    line when none is left. Any other stop moves to the next line, or to supportive care
    when the strategy is exhausted.
    """
    strategies = strategies or STRATEGIES
    episodes, people, events = [], [], []
    for replicate in range(replicates):
        draws = _replicate_draws(seed, replicate, patients, max_episodes)
        for name, lines in strategies.items():
            ep, pt, ae = _simulate_strategy(
                draws, replicate, name, lines, horizon_months, loss_rate, relapse_rate
            )
            episodes.append(ep)
            people.append(pt)
            events.append(ae)
    names, treatments = list(strategies), list(TREATMENT_HAZARDS)
    episodes = pd.concat(episodes, ignore_index=True)
    episodes = _episode_frame(names, treatments, **{c: episodes[c].to_numpy() for c in episodes})
    people = pd.concat(people, ignore_index=True)
    for column, categories in (
        ("strategy", names),
        ("age_group", ["adult", "child"]),
        ("sex", ["female", "male"]),
        ("final_state", FINAL_STATES),
    ):
        people[column] = pd.Categorical(people[column], categories=categories)
    events = pd.concat(events, ignore_index=True)
    events["strategy"] = pd.Categorical(events["strategy"], categories=names)
    events["treatment"] = pd.Categorical(events["treatment"], categories=treatments)
    events["adverse_event"] = pd.Categorical(events["adverse_event"], categories=ADVERSE_EVENTS)
    manifest = synthetic_manifest(strategies, patients, replicates, horizon_months, seed)
    return SyntheticRun(episodes, people, events, manifest)


def _replicate_draws(seed, replicate, patients, max_episodes) -> dict:
    rng = np.random.default_rng(np.random.SeedSequence([seed, replicate]))
    age = rng.uniform(18, 80, patients)
    return {
        "duration": rng.random((patients, max_episodes)),
        "cause": rng.random((patients, max_episodes)),
        "relapse": rng.random((patients, max_episodes)),
        "ae_count": rng.random((patients, max_episodes)),
        "ae_type": rng.integers(0, len(ADVERSE_EVENTS), (patients, max_episodes, 4)),
        "ae_time": rng.random((patients, max_episodes, 4)),
        "loss": rng.exponential(1.0, patients),
        "covariates": {
            "age_years": np.round(age, 1),
            "age_group": np.where(age < 18, "child", "adult"),
            "sex": np.where(rng.random(patients) < 0.5, "female", "male"),
            "ige_kU_per_l": np.round(rng.lognormal(6, 1, patients), 1),
        },
    }


def _simulate_strategy(draws, replicate, strategy, lines, horizon, loss_rate, relapse_rate):
    n, k_max = draws["duration"].shape
    hazards = np.array([TREATMENT_HAZARDS[t] for t in lines])
    end = np.minimum(draws["loss"] / loss_rate, horizon)
    t = np.zeros(n)
    line = np.zeros(n, dtype=int)
    active = np.ones(n, dtype=bool)
    state = _PatientTally(n)
    rows = []
    for k in range(k_max):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        rates = hazards[line[idx]]
        total = rates.sum(axis=1)
        duration = -np.log1p(-draws["duration"][idx, k]) / total
        if k == k_max - 1:
            duration = np.full(idx.size, np.inf)
        cause = (draws["cause"][idx, k, None] * total[:, None] > np.cumsum(rates, axis=1)).sum(
            axis=1
        )
        start = t[idx]
        stop = np.minimum(start + duration, end[idx])
        censored = start + duration >= end[idx]
        reason = np.where(
            censored,
            np.where(end[idx] < horizon, "lost_to_followup", "horizon"),
            np.array(CAUSES, dtype=object)[np.minimum(cause, len(CAUSES) - 1)],
        )
        retreatment = (state.remissions[idx] > 0) & (line[idx] == state.last_line[idx])
        rows.append(
            _episode_rows(
                draws,
                idx,
                k,
                replicate,
                strategy,
                lines,
                line[idx],
                start,
                stop,
                reason,
                retreatment,
            )
        )
        state.record_episode(idx, line[idx], start, stop, reason)
        # What happens next.
        remission = reason == "remission"
        failure = ~censored & ~remission
        gap = -np.log1p(-draws["relapse"][idx, k]) / relapse_rate
        relapse_at = stop + gap
        relapsing = remission & (relapse_at < end[idx])
        state.record_topical(idx, remission, stop, np.minimum(relapse_at, end[idx]), relapsing)
        exhausted = failure & (line[idx] + 1 >= len(lines))
        state.record_supportive(idx[exhausted], stop[exhausted], end[idx][exhausted])
        line[idx] = np.where(
            failure | (relapsing & (line[idx] + 1 < len(lines))), line[idx] + 1, line[idx]
        )
        t[idx] = np.where(relapsing, relapse_at, stop)
        active[idx] = relapsing | (failure & ~exhausted)
    return (
        _episodes_from_rows(rows),
        state.patients(draws, replicate, strategy, end, horizon),
        _adverse_events_from_rows(rows),
    )


def _episode_rows(
    draws, idx, k, replicate, strategy, lines, line, start, stop, reason, retreatment
):
    duration = stop - start
    count = np.minimum(
        (draws["ae_count"][idx, k] * 4 * np.minimum(duration, 24) / 24).astype(int), 3
    )
    stopping = reason == "adverse_event"
    responded = np.where(reason == "nonresponse", False, np.where(duration < 3, None, True)).astype(
        object
    )
    return {
        "replicate": np.full(idx.size, replicate, dtype=np.int32),
        "strategy": np.full(idx.size, strategy, dtype=object),
        "patient": idx.astype(np.int32),
        "episode": np.full(idx.size, k + 1, dtype=np.int16),
        "line": (line + 1).astype(np.int16),
        "treatment": np.array(lines, dtype=object)[line],
        "start": start,
        "stop": stop,
        "reason": reason,
        "responded": responded,
        # Assessed at 3 months; a non-response is found at the assessment that ends it.
        "assessed": np.where(
            reason == "nonresponse", stop, np.where(duration < 3, np.nan, start + 3)
        ),
        "retreatment": retreatment,
        "adverse_events": (count + stopping).astype(np.int16),
        "stopping_adverse_event": np.where(
            stopping, np.array(ADVERSE_EVENTS, dtype=object)[draws["ae_type"][idx, k, 3]], None
        ),
        "_count": count,
        "_ae_type": draws["ae_type"][idx, k, :3],
        "_ae_time": draws["ae_time"][idx, k, :3],
    }


def _episodes_from_rows(rows) -> pd.DataFrame:
    columns = [c for c in rows[0] if not c.startswith("_")]
    return pd.DataFrame({c: np.concatenate([r[c] for r in rows]) for c in columns})


def _adverse_events_from_rows(rows) -> pd.DataFrame:
    frames = []
    for r in rows:
        for j in range(3):
            has = r["_count"] > j
            frames.append(
                pd.DataFrame(
                    {
                        "replicate": r["replicate"][has],
                        "strategy": r["strategy"][has],
                        "patient": r["patient"][has],
                        "episode": r["episode"][has],
                        "treatment": r["treatment"][has],
                        "adverse_event": np.array(ADVERSE_EVENTS, dtype=object)[
                            r["_ae_type"][has, j]
                        ],
                        "time": r["start"][has]
                        + r["_ae_time"][has, j] * (r["stop"] - r["start"])[has],
                        "stopped_treatment": False,
                    }
                )
            )
        stops = r["stopping_adverse_event"] != None  # noqa: E711 (object array)
        frames.append(
            pd.DataFrame(
                {
                    "replicate": r["replicate"][stops],
                    "strategy": r["strategy"][stops],
                    "patient": r["patient"][stops],
                    "episode": r["episode"][stops],
                    "treatment": r["treatment"][stops],
                    "adverse_event": r["stopping_adverse_event"][stops],
                    "time": r["stop"][stops],
                    "stopped_treatment": True,
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(
        ["replicate", "strategy", "patient", "episode", "time"], kind="stable", ignore_index=True
    )


class _PatientTally:
    """Running per-patient totals while the strategy is simulated."""

    def __init__(self, n):
        self.months_systemic = np.zeros(n)
        self.months_topical = np.zeros(n)
        self.months_supportive = np.zeros(n)
        self.first_topical = np.full(n, np.nan)
        self.lines_used = np.zeros(n, dtype=np.int16)
        self.episodes = np.zeros(n, dtype=np.int16)
        self.relapses = np.zeros(n, dtype=np.int16)
        self.remissions = np.zeros(n, dtype=np.int16)
        self.last_line = np.full(n, -1)
        self.final = np.full(n, "systemic", dtype=object)

    def record_episode(self, idx, line, start, stop, reason):
        self.months_systemic[idx] += stop - start
        self.lines_used[idx] = np.maximum(self.lines_used[idx], line + 1)
        self.episodes[idx] += 1
        self.last_line[idx] = line
        self.final[idx] = np.where(reason == "lost_to_followup", "lost_to_followup", "systemic")

    def record_topical(self, idx, remission, start, stop, relapsing):
        i = idx[remission]
        self.months_topical[i] += (stop - start)[remission]
        self.remissions[i] += 1
        self.first_topical[i] = np.where(
            np.isnan(self.first_topical[i]), start[remission], self.first_topical[i]
        )
        self.relapses[idx[relapsing]] += 1
        self.final[idx[remission & ~relapsing]] = "topical"

    def record_supportive(self, idx, start, stop):
        self.months_supportive[idx] += stop - start
        self.final[idx] = "supportive_care"

    def patients(self, draws, replicate, strategy, end, horizon) -> pd.DataFrame:
        n = len(end)
        final = np.where(end < horizon, "lost_to_followup", self.final)
        frame = pd.DataFrame(
            {
                "replicate": np.full(n, replicate, dtype=np.int32),
                "strategy": strategy,
                "patient": np.arange(n, dtype=np.int32),
                "age_group": draws["covariates"]["age_group"],
                "age_years": draws["covariates"]["age_years"],
                "sex": draws["covariates"]["sex"],
                "ige_kU_per_l": draws["covariates"]["ige_kU_per_l"],
                "final_state": final,
                "follow_up_months": end,
                "months_to_first_topical": self.first_topical,
                "lines_used": self.lines_used,
                "episodes": self.episodes,
                "relapses": self.relapses,
                "months_systemic": self.months_systemic,
                "months_topical": self.months_topical,
                "months_supportive_care": self.months_supportive,
            }
        )
        return frame


def synthetic_manifest(strategies, patients, replicates, horizon_months, seed) -> dict:
    """A run.json like the runner writes, for the synthetic tables."""
    return {
        "adpath_version": "0.1.0",
        "scenario_name": "synthetic_test",
        "scenario_file": "tests/analysis_fixtures.py",
        "description": "Synthetic pathway tables with known hazards (test fixture).",
        "scenario_hash": "0" * 16,
        "scenario": {"name": "synthetic_test"},
        "seed": seed,
        "engine": "synthetic",
        "patients": patients,
        "replicates": replicates,
        "horizon_months": horizon_months,
        "strategies": {
            name: {
                "label": name.replace("_", " ").capitalize(),
                "description": f"Synthetic strategy {name}",
                "lines": list(lines),
            }
            for name, lines in strategies.items()
        },
        "treatments": {name: {"label": label} for name, label in TREATMENT_LABELS.items()},
        "parameters": [
            {
                "path": f"treatments.{name}.hazard_per_month.{cause}",
                "value": rate,
                "source": "assumption: synthetic test value",
            }
            for name, rates in TREATMENT_HAZARDS.items()
            for cause, rate in zip(CAUSES, rates)
        ],
        "versions": {"numpy": np.__version__, "pandas": pd.__version__},
        "wall_time_seconds": 0.1,
        "started_at": "2024-01-01T00:00:00+00:00",
    }


def write_run_dir(path: Path, run: SyntheticRun, omit: tuple[str, ...] = ()) -> Path:
    """Write a run directory; ``omit`` names files or manifest keys to leave out."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    run.episodes.to_parquet(path / "episodes.parquet", index=False)
    run.patients.to_parquet(path / "patients.parquet", index=False)
    if "adverse_events.parquet" not in omit:
        run.adverse_events.to_parquet(path / "adverse_events.parquet", index=False)
    if "run.json" not in omit:
        manifest = {k: v for k, v in run.manifest.items() if k not in omit}
        (path / "run.json").write_text(json.dumps(manifest, indent=2))
    return path
