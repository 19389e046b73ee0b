"""Episodes with known truth for the survival estimators: constant cause-specific hazards
and independent exponential censoring, so drug survival and the cumulative incidence of
every reason have closed forms (`true_survival`, `true_incidence`).

Whole pathways for the analysis tests come from real runs of a tiny scenario
(`tests/tiny_runs.py`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.tables import REASONS

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
