"""Whether the tables of two releases agree in distribution: for a change that moves the
random numbers on purpose (issue 17: Philox numbers, the compiled engine), where tables
cannot be identical but every statistic must agree within Monte Carlo error.

    git worktree add /tmp/old OLD_COMMIT
    PYTHONPATH=/tmp/old python benchmarks/release_agreement.py save old.csv   # the old code
    PYTHONPATH=. python benchmarks/release_agreement.py save new.csv          # this checkout
    python benchmarks/release_agreement.py compare old.csv new.csv            # exit 1 if any differs

`save` runs every bundled scenario of the checkout on `sys.path` with its default engine
(10,000 patients; `capacity_biologics` 2,000, its patients compete for limited resources)
and writes, with a standard error each: the share of each stop reason per strategy,
treatment and line; first-line drug survival (Kaplan-Meier, Greenwood) at 12, 24 and 36
months per strategy and first-line drug; the share of patients who ever return to topical
therapy; the mean number of lines used. `compare` flags every statistic whose two values
differ by more than 4 standard errors of the difference. Only the public API both releases
share is used (`load_scenario`, `compile_model`, `simulate`).
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np
import pandas as pd

CENSORING = ("lost_to_followup", "horizon", "death")
MONTHS = (12, 24, 36)
TOLERANCE_SE = 4.0


def reason_shares(name: str, episodes: pd.DataFrame) -> list[dict]:
    """Share of episodes ending for each reason, per strategy, treatment and line (binomial SE)."""
    rows = []
    for (strategy, treatment, line), group in episodes.groupby(["strategy", "treatment", "line"], observed=True):
        n = len(group)
        for reason, count in group["reason"].astype(str).value_counts().items():
            p = count / n
            rows.append(dict(scenario=name, statistic=f"share {reason}", strategy=strategy, treatment=treatment,
                             line=int(line), value=p, se=math.sqrt(p * (1 - p) / n), n=n))
    return rows


def kaplan_meier_at(durations: np.ndarray, events: np.ndarray, months: float) -> tuple[float, float]:
    """Kaplan-Meier survival at `months` and its Greenwood standard error."""
    order = np.argsort(durations, kind="stable")
    d, e = durations[order], events[order]
    at_risk = len(d) - np.arange(len(d))
    survival, greenwood = 1.0, 0.0
    for time in np.unique(d[e & (d <= months)]):
        first = np.searchsorted(d, time, side="left")
        deaths = int(np.sum(e[first:np.searchsorted(d, time, side="right")]))
        n = at_risk[first]
        survival *= 1 - deaths / n
        if n > deaths:
            greenwood += deaths / (n * (n - deaths))
    return survival, survival * math.sqrt(greenwood)


def first_line_survival(name: str, episodes: pd.DataFrame) -> list[dict]:
    """First-line drug survival at `MONTHS` per strategy and first-line drug."""
    first = episodes[(episodes["line"] == 1) & (episodes["episode"] == 1)]
    rows = []
    for (strategy, treatment), group in first.groupby(["strategy", "treatment"], observed=True):
        durations = (group["stop"] - group["start"]).to_numpy(dtype=float)
        events = ~group["reason"].astype(str).isin(CENSORING).to_numpy()
        for months in MONTHS:
            value, se = kaplan_meier_at(durations, events, months)
            rows.append(dict(scenario=name, statistic=f"drug survival {months} months", strategy=strategy,
                             treatment=treatment, line=1, value=value, se=se, n=len(group)))
    return rows


def patient_statistics(name: str, patients: pd.DataFrame) -> list[dict]:
    """Share ever returning to topical therapy and mean lines used, per strategy."""
    rows = []
    for strategy, group in patients.groupby("strategy", observed=True):
        n = len(group)
        p = float(group["months_to_first_topical"].notna().mean())
        lines = group["lines_used"].to_numpy(dtype=float)
        rows.append(dict(scenario=name, statistic="share returned to topical", strategy=strategy, treatment="",
                         line=0, value=p, se=math.sqrt(p * (1 - p) / n), n=n))
        rows.append(dict(scenario=name, statistic="mean lines used", strategy=strategy, treatment="", line=0,
                         value=lines.mean(), se=lines.std(ddof=1) / math.sqrt(n), n=n))
    return rows


def save(path: str) -> None:
    """Run every bundled scenario of the checkout on `sys.path` and write its statistics to `path`."""
    from sim.loader import bundled_scenarios, load_scenario
    from sim.model import compile_model
    from sim.runner import simulate

    rows = []
    for name in bundled_scenarios():
        patients = 2_000 if name == "capacity_biologics" else 10_000
        loaded = load_scenario(name, {"settings.patients": patients})
        tables = simulate(compile_model(loaded.scenario, loaded.name), progress=False)
        rows += reason_shares(name, tables.episodes) + first_line_survival(name, tables.episodes)
        rows += patient_statistics(name, tables.patients)
        print(f"{name}: {len(tables.episodes):,} episodes", file=sys.stderr)
    pd.DataFrame(rows).to_csv(path, index=False)


def compare(old_path: str, new_path: str) -> int:
    """Print the statistics of two saves that differ by more than 4 SE; return 1 if any does."""
    keys = ["scenario", "statistic", "strategy", "treatment", "line"]
    old, new = pd.read_csv(old_path, keep_default_na=False), pd.read_csv(new_path, keep_default_na=False)
    both = old.merge(new, on=keys, how="outer", suffixes=("_old", "_new"), indicator=True)
    one_sided = both[both["_merge"] != "both"]
    both = both[both["_merge"] == "both"].copy()
    # A share of 0 in both (or a survival of 1) has no spread: agreement is equality.
    se = np.sqrt(both["se_old"] ** 2 + both["se_new"] ** 2)
    both["difference_in_se"] = np.where(se > 0, (both["value_new"] - both["value_old"]) / se.where(se > 0, 1),
                                        np.where(both["value_new"] == both["value_old"], 0.0, np.inf))
    outside = both[both["difference_in_se"].abs() > TOLERANCE_SE]
    print(f"{len(both)} statistics compared, {len(outside)} outside {TOLERANCE_SE:g} SE; "
          f"{len(one_sided)} present in one release only (a reason never seen in one run)")
    print(f"largest |difference|: {both['difference_in_se'].abs().max():.2f} SE")
    if len(outside):
        print(outside[keys + ["value_old", "value_new", "difference_in_se"]].to_string(index=False))
    for _, row in one_sided.iterrows():
        side = "old" if row["_merge"] == "left_only" else "new"
        print(f"only in {side}: {row['scenario']} {row['statistic']} {row['strategy']} {row['treatment']} "
              f"line {row['line']} (n {row['n_' + side]:.0f}, value {row['value_' + side]:.4f})")
    return 1 if len(outside) else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("save").add_argument("path")
    compared = sub.add_parser("compare")
    compared.add_argument("old")
    compared.add_argument("new")
    args = parser.parse_args()
    if args.command == "save":
        save(args.path)
        return 0
    return compare(args.old, args.new)


if __name__ == "__main__":
    sys.exit(main())
