"""Simulated drug survival beside the real-world figures the bundled scenarios cite.

The figures live in `drug_survival_evidence.csv` next to this module: one row per
published point (drug, bundled scenario and strategy it is compared in, months since the
start of the drug, survival as a proportion, cohort size n), with its publication, where
in it the number stands, the cohort, and its `kind`:

- `input_reproduction`: the number (or the figure it belongs to) was used to derive the
  scenario's parameters, so meeting it shows the derivation, not the model;
- `validation`: the number was not used, so the model predicts it.

`enforced` says whether tests/test_drug_survival_evidence.py requires the simulated
value within `TOLERANCE` of it; `why_not_enforced` says why not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.intervals import z_value
from analysis.survival import cause_codes, episode_durations, estimates_at, event_reasons

EVIDENCE_FILE = Path(__file__).with_name("drug_survival_evidence.csv")
TOLERANCE = 0.10
"""Largest accepted |simulated - published| drug survival (proportion, i.e. 10 percentage points)."""
KEYS = ["replicate", "strategy", "patient"]


def evidence_table() -> pd.DataFrame:
    """The published drug-survival points, one row each (`months` since the start of the drug,
    `survival` as a proportion, `n` patients; `enforced` a bool)."""
    table = pd.read_csv(EVIDENCE_FILE, dtype={"why_not_enforced": str}, keep_default_na=False)
    table["enforced"] = table["enforced"].astype(str).str.lower() == "true"
    return table


def simulated_episodes(episodes: pd.DataFrame, strategy: str, drug: str, which: str) -> pd.DataFrame:
    """The episodes a published figure counts: `first_line` (the drug started as line 1 of
    `strategy`) or `first_episode` (each patient's first episode of the drug, at any line); their keys,
    episode, line, treatment, start, stop and reason."""
    if which not in ("first_line", "first_episode"):
        raise ValueError(f"unknown episode selection {which!r}: use first_line or first_episode")
    # Compared as categories (their codes), not as strings: on a million-patient run the
    # strings of every episode cost minutes over a report's evidence rows.
    chosen = (_equals(episodes["strategy"], strategy) & _equals(episodes["treatment"], drug)).to_numpy()
    if which == "first_line":
        chosen &= episodes["line"].to_numpy() == 1
    on = episodes.loc[chosen, [c for c in episodes.columns if c in _DRUG_SURVIVAL_COLUMNS]]
    if which == "first_line":
        return on
    return on.drop_duplicates(KEYS, keep="first")


#: The episode columns a selection keeps: its keys and what drug survival reads.
_DRUG_SURVIVAL_COLUMNS = (*KEYS, "episode", "line", "treatment", "start", "stop", "reason")


def _equals(column: pd.Series, value: str) -> pd.Series:
    """Whether each value of `column` is `value` (a categorical compared by its codes)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        categories = list(column.cat.categories)
        code = categories.index(value) if value in categories else -2
        return pd.Series(column.cat.codes.to_numpy() == code, index=column.index)
    return column.astype(str) == value


def compare(episodes: pd.DataFrame, scenario: str) -> pd.DataFrame:
    """The evidence rows of `scenario` with the simulated Kaplan-Meier drug survival at the
    same time (`simulated`, `ci_low`, `ci_high`, proportions; `episodes_n`), the difference
    `simulated - survival` and `within` (|difference| <= TOLERANCE)."""
    rows = evidence_table()
    rows = rows[rows["scenario"] == scenario].copy()
    simulated, low, high, counts = [], [], [], []
    # Several published points share a selection of episodes (one cohort at 12, 24 and 36
    # months): one walk per selection, read at each of its points' times (no curve table).
    selections = list(zip(rows["strategy"], rows["drug"], rows["episodes"]))
    read: dict[tuple, tuple[int, dict | None]] = {}
    for selection in dict.fromkeys(selections):
        chosen = simulated_episodes(episodes, *selection)
        times = sorted({float(m) for m, s in zip(rows["months"], selections) if s == selection})
        read[selection] = (len(chosen), None if chosen.empty else _survival_at(chosen, times))
    for selection, months in zip(selections, rows["months"]):
        n, at = read[selection]
        counts.append(n)
        if at is None:
            simulated.append(float("nan")), low.append(float("nan")), high.append(float("nan"))
            continue
        simulated.append(at[float(months)][0]), low.append(at[float(months)][1]), high.append(at[float(months)][2])
    rows["simulated"], rows["ci_low"], rows["ci_high"], rows["episodes_n"] = simulated, low, high, counts
    rows["difference"] = rows["simulated"] - rows["survival"]
    rows["within"] = rows["difference"].abs() <= TOLERANCE
    return rows.reset_index(drop=True)


def _survival_at(episodes: pd.DataFrame, times: list[float]) -> dict[float, tuple[float, float, float]]:
    """Kaplan-Meier drug survival (any discontinuation) of all `episodes` together and its
    95% interval at each of `times` (months), as `survival_at` reads the curve."""
    cause = np.where(cause_codes(episodes["reason"], event_reasons("any_discontinuation")) >= 0, 0, -1)
    at = estimates_at(episode_durations(episodes), cause, np.zeros(len(episodes), dtype=np.int64), 1, times,
                      z_value(0.95), incidence=False)
    return {t: (float(at["survival"][0, j]), float(at["ci_low"][0, j]), float(at["ci_high"][0, j]))
            for j, t in enumerate(times)}


def format_comparison(table: pd.DataFrame) -> str:
    """The comparison as aligned text: input reproductions and validations apart, with counts."""
    lines = []
    for kind, title in (("input_reproduction", "Input reproduction (the figure was used to derive the parameters)"),
                        ("validation", "Validation (the model predicts the figure)")):
        part = table[table["kind"] == kind]
        lines.append(f"{title}: {len(part)} points")
        for row in part.itertuples():
            verdict = "within 10 points" if row.within else "outside 10 points"
            if not row.enforced:
                verdict += f" (not enforced: {row.why_not_enforced})"
            lines.append(f"  {row.drug:<13} {row.months:>5g} months  published {row.survival:.3f} (n={row.n})  "
                         f"simulated {row.simulated:.3f}  {verdict}  [{row.publication}]")
    return "\n".join(lines)
