"""Calibration targets: does a simulated cohort reproduce the published figures?

Each replicate of a cohort scenario is one simulated cohort of the published size. For
each target the figure is computed in every replicate the way the publication counted
it; the published value is met when it lies within the middle 95% of the simulated
cohorts (the spread a cohort of that size shows by chance alone).

Each target is also labelled: an *input reproduction* when the figure is (a product of)
the scenario's own inputs, so meeting it checks the bookkeeping rather than the model,
or a *validation* when the model predicts it. A target whose simulated 95% range covers
most of [0, 1] (`CANNOT_JUDGE_WIDTH`, e.g. a share in a cohort of 5) cannot tell a right
model from a wrong one: it is reported as "cannot judge" and does not decide the check.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.intervals import wilson_interval
from sim.schema import Scenario, TargetSpec

_STOPPED_FOR_ANOTHER_SYSTEMIC = ("switch", "adverse_event", "loss_of_response")
# Censored while on the drug, death included (the data lock, the last visit or death ended follow-up).
_STILL_ON = ("horizon", "lost_to_followup", "death")
# Metrics whose figure a scenario declares directly (response probabilities, fates of
# responders, adverse-event probabilities and the stops they cause): reproducing them is
# input reproduction. Final states and the return to topical therapy are predictions.
_INPUT_METRICS = frozenset({"response_rate", "responder_fate", "adverse_event_rate", "any_adverse_event_rate",
                            "adverse_event_discontinuation"})
CANNOT_JUDGE_WIDTH = 0.75
"""A simulated 95% range at least this wide (a proportion) leaves a target unable to discriminate."""


def target_kind(target: TargetSpec) -> str:
    """`input_reproduction` or `validation`: the target's own `kind`, else derived from its metric."""
    if target.kind is not None:
        return target.kind
    return "input_reproduction" if target.metric in _INPUT_METRICS else "validation"


def check_targets(scenario: Scenario, episodes: pd.DataFrame, patients: pd.DataFrame,
                  adverse_events: pd.DataFrame) -> pd.DataFrame:
    """Return one row per target: its kind, observed value and 95% CI, simulated mean and 95% range,
    whether the range can discriminate, within, and the judgement (met, not met, cannot judge)."""
    rows = []
    replicates = np.sort(patients["replicate"].unique())
    for name, target in scenario.targets.items():
        values = _per_replicate(target, episodes, patients, adverse_events).reindex(replicates)
        rows.append(_row(name, target, values.dropna().to_numpy()))
    return pd.DataFrame(rows)


def _row(name: str, target: TargetSpec, simulated: np.ndarray) -> dict:
    observed = target.observed.value
    low, high = ((float(v) for v in wilson_interval(target.observed.events, target.observed.n))
                 if target.observed.n else (math.nan, math.nan))
    sim_low, sim_high = (np.quantile(simulated, [0.025, 0.975]) if simulated.size else (math.nan, math.nan))
    within = bool(simulated.size and sim_low <= observed <= sim_high)
    discriminates = bool(simulated.size) and float(sim_high - sim_low) < CANNOT_JUDGE_WIDTH
    return {
        "target": name,
        "kind": target_kind(target),
        "metric": target.metric,
        "detail": _detail(target),
        "observed": round(observed, 4),
        "observed_ci_low": round(low, 4),
        "observed_ci_high": round(high, 4),
        "simulated_mean": round(float(simulated.mean()), 4) if simulated.size else math.nan,
        "simulated_low_95": round(float(sim_low), 4),
        "simulated_high_95": round(float(sim_high), 4),
        "replicates": int(simulated.size),
        "within": within,
        "discriminates": discriminates,
        "judgement": ("met" if within else "not met") if discriminates else "cannot judge",
        "enforced": target.enforce,
        "why_not_enforced": target.why or "",
        "source": target.source or "",
    }


def _detail(target: TargetSpec) -> str:
    parts = [target.treatment, target.fate, target.adverse_event, target.state, target.strategy]
    return " ".join(part for part in parts if part)


def _per_replicate(target, episodes, patients, adverse_events) -> pd.Series:
    if target.strategy is not None:
        episodes = episodes[episodes["strategy"] == target.strategy]
        patients = patients[patients["strategy"] == target.strategy]
        adverse_events = adverse_events[adverse_events["strategy"] == target.strategy]
    metric = target.metric
    if metric == "response_rate":
        first = _first_episodes(episodes, target.treatment)
        first = first[first["responded"].notna()]
        return first.groupby("replicate", observed=True)["responded"].mean().astype(float)
    if metric == "responder_fate":
        return _responder_fate(episodes, target)
    if metric == "adverse_event_rate":
        return _adverse_event_rate(episodes, adverse_events, target)
    if metric == "any_adverse_event_rate":
        treated = _treated(episodes, target.treatment)
        events = adverse_events[adverse_events["treatment"] == target.treatment]
        return _share(treated, events[["replicate", "strategy", "patient"]].drop_duplicates())
    if metric == "adverse_event_discontinuation":
        treated = _treated(episodes, target.treatment)
        stopped = episodes[(episodes["treatment"] == target.treatment) & (episodes["reason"] == "adverse_event")]
        return _share(treated, stopped[["replicate", "strategy", "patient"]].drop_duplicates())
    if metric == "final_state":
        return patients.assign(hit=patients["final_state"] == target.state).groupby("replicate", observed=True)["hit"].mean()
    if metric != "returned_to_topical_ever":
        raise ValueError(f"no computation for target metric {metric!r}")
    return patients.assign(hit=patients["months_to_first_topical"].notna()).groupby("replicate", observed=True)["hit"].mean()


def _first_episodes(episodes: pd.DataFrame, treatment: str) -> pd.DataFrame:
    """The first episode of `treatment` of every patient who received it (the cohort's unit)."""
    on = episodes[episodes["treatment"] == treatment]
    return on.drop_duplicates(["replicate", "strategy", "patient"], keep="first")


def _treated(episodes: pd.DataFrame, treatment: str) -> pd.DataFrame:
    return _first_episodes(episodes, treatment)[["replicate", "strategy", "patient"]]


def _responder_fate(episodes: pd.DataFrame, target: TargetSpec) -> pd.Series:
    # Table III's three columns hold every responder: still on at data lock, switched to
    # another systemic agent (for whatever reason), or back on topical therapy.
    first = _first_episodes(episodes, target.treatment)
    responders = first[first["responded"].fillna(False).astype(bool)]
    reasons = responders["reason"].astype(str)
    if target.fate == "remission":
        hit = reasons == "remission"
    elif target.fate == "still_on":
        hit = reasons.isin(_STILL_ON)
    else:
        hit = reasons.isin(_STOPPED_FOR_ANOTHER_SYSTEMIC)
    return responders.assign(hit=hit).groupby("replicate", observed=True)["hit"].mean().astype(float)


def _adverse_event_rate(episodes, adverse_events, target) -> pd.Series:
    treated = _treated(episodes, target.treatment)
    events = adverse_events[(adverse_events["treatment"] == target.treatment)
                            & (adverse_events["adverse_event"] == target.adverse_event)]
    return _share(treated, events[["replicate", "strategy", "patient"]].drop_duplicates())


def _share(population: pd.DataFrame, with_event: pd.DataFrame) -> pd.Series:
    keys = ["replicate", "strategy", "patient"]
    marked = population.merge(with_event, on=keys, how="left", indicator=True)
    marked["hit"] = marked["_merge"] == "both"
    return marked.groupby("replicate", observed=True)["hit"].mean().astype(float)


def format_targets(table: pd.DataFrame) -> str:
    """Return the target table as aligned text: input reproductions and validations apart,
    each target's judgement, why a target is not enforced, and the counts that decide the check."""
    header = f"{'target':<40} {'observed (95% CI)':<24} {'simulated (95% of cohorts)':<28} judgement"
    lines = []
    for kind, title in (("input_reproduction", "Input reproduction: the figure is an input of the scenario"),
                        ("validation", "Validation: the model predicts the figure")):
        part = table[table["kind"] == kind]
        lines += [f"{title} ({len(part)} targets)", header, "-" * len(header)]
        lines += [line for row in part.itertuples() for line in _target_lines(row)]
        lines.append("")
    decisive = table[table["enforced"] & table["discriminates"]]
    validations = decisive[decisive["kind"] == "validation"]
    lines.append(f"{len(table[table['kind'] == 'validation'])} validation targets, "
                 f"{len(table[table['kind'] == 'input_reproduction'])} input reproductions; "
                 f"{int((~table['discriminates']).sum())} cannot be judged")
    lines.append(f"{int(decisive['within'].sum())} of {len(decisive)} enforced targets that can be judged met "
                 f"({int(validations['within'].sum())} of {len(validations)} validations)")
    return "\n".join(lines)


def _target_lines(row) -> list[str]:
    observed = f"{row.observed:.3f} ({row.observed_ci_low:.3f}-{row.observed_ci_high:.3f})"
    simulated = f"{row.simulated_mean:.3f} ({row.simulated_low_95:.3f}-{row.simulated_high_95:.3f})"
    lines = [f"{row.target:<40} {observed:<24} {simulated:<28} {row.judgement}"]
    if row.judgement == "cannot judge":
        lines.append(f"{'':<4}cannot judge: the simulated 95% range covers "
                     f"{row.simulated_high_95 - row.simulated_low_95:.0%} of [0, 1] at this cohort size")
    if not row.enforced:
        lines.append(f"{'':<4}not enforced: {' '.join(str(row.why_not_enforced).split())}")
    return lines
