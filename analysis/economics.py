"""Cost-effectiveness: per-strategy costs and QALYs, incremental analysis, net benefit,
and from a probabilistic sensitivity analysis the CE plane, acceptability curves (CEAC),
the acceptability frontier (CEAF) and the expected value of perfect information (EVPI).

Money is in the economic setting's currency; effects are QALYs (years).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.intervals import t_interval


def strategy_costs(costs: pd.DataFrame, currency: str) -> pd.DataFrame:
    """Mean costs and QALYs per strategy with 95% CIs (t interval over patients, or replicates).

    `costs` is the table of `analysis.costs.patient_costs`. One row per strategy and
    outcome: `strategy, outcome, mean, ci_low, ci_high`.
    """
    from analysis.costs import COST_CATEGORIES

    outcomes = [f"cost_total_{currency}", "qalys", f"cost_total_undiscounted_{currency}", "qalys_undiscounted",
                *(f"cost_{c}_{currency}" for c in COST_CATEGORIES),
                *(f"cost_{c}_undiscounted_{currency}" for c in COST_CATEGORIES),
                "life_years_discounted", "life_years"]
    outcomes = [o for o in outcomes if o in costs.columns]
    rows = []
    several = costs["replicate"].nunique() > 1
    for strategy, block in costs.groupby("strategy", observed=True, sort=False):
        for outcome in outcomes:
            values = block.groupby("replicate")[outcome].mean() if several else block[outcome]
            mean, low, high = t_interval(values.to_numpy(float))
            rows.append({"strategy": strategy, "outcome": outcome, "mean": mean, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


def incremental_analysis(costs: pd.Series, effects: pd.Series) -> pd.DataFrame:
    """Rank strategies by cost, flag dominated and extendedly dominated ones, compute ICERs.

    `costs` and `effects` are indexed by strategy (mean cost, mean QALYs). Returns one row
    per strategy: `strategy, cost, effect, status` (`reference`, `non-dominated`,
    `dominated`, `extendedly dominated`), for non-dominated strategies the increments
    over the previous one on the frontier and the ICER (cost per QALY); for the others
    `dominated_by` (the strategy that dominates it, or extendedly the two that do) and
    the increments over it (over the cheaper of the two), with no ICER.
    """
    table = pd.DataFrame({"cost": costs, "effect": effects}).sort_values(["cost", "effect"], ascending=[True, False])
    status = {name: "" for name in table.index}
    beaten_by = {name: "" for name in table.index}
    frontier = [name for name in table.index]
    frontier = _drop_dominated(table, frontier, status, beaten_by)
    frontier = _drop_extendedly_dominated(table, frontier, status, beaten_by)
    rows = []
    for name in table.index:
        row = {"strategy": name, "cost": table.at[name, "cost"], "effect": table.at[name, "effect"],
               "status": status[name] or "non-dominated", "incremental_cost": math.nan,
               "incremental_effect": math.nan, "icer": math.nan, "compared_with": "", "dominated_by": beaten_by[name]}
        if beaten_by[name]:
            # Increments over the strategy that dominates it (the cheaper neighbour, extendedly):
            # a dominated strategy is said to be dominated, not left blank. No ICER.
            other = beaten_by[name].split(" and ")[0]
            row["incremental_cost"] = table.at[name, "cost"] - table.at[other, "cost"]
            row["incremental_effect"] = table.at[name, "effect"] - table.at[other, "effect"]
            row["compared_with"] = other
        if name in frontier:
            position = frontier.index(name)
            if position == 0:
                row["status"] = "reference"
            else:
                previous = frontier[position - 1]
                row["incremental_cost"] = table.at[name, "cost"] - table.at[previous, "cost"]
                row["incremental_effect"] = table.at[name, "effect"] - table.at[previous, "effect"]
                row["icer"] = row["incremental_cost"] / row["incremental_effect"]
                row["compared_with"] = previous
        rows.append(row)
    return pd.DataFrame(rows)


def _drop_dominated(table, frontier, status, beaten_by):
    # Strong dominance: another strategy costs no more and is at least as effective.
    kept = []
    for name in frontier:
        cost, effect = table.at[name, "cost"], table.at[name, "effect"]
        beaten = [
            other for other in frontier
            if other != name and table.at[other, "cost"] <= cost and table.at[other, "effect"] >= effect
            and (table.at[other, "cost"] < cost or table.at[other, "effect"] > effect)]
        if beaten:
            status[name] = "dominated"
            beaten_by[name] = beaten[0]  # the cheapest of those that dominate it
        else:
            kept.append(name)
    return kept


def _drop_extendedly_dominated(table, frontier, status, beaten_by):
    # Extended dominance: the ICERs along the frontier must increase; drop any strategy
    # whose ICER exceeds the next one's, and look again.
    changed = True
    while changed and len(frontier) > 2:
        changed = False
        icers = [_icer(table, frontier[i - 1], frontier[i]) for i in range(1, len(frontier))]
        for i in range(len(icers) - 1):
            if icers[i] > icers[i + 1]:
                status[frontier[i + 1]] = "extendedly dominated"
                beaten_by[frontier[i + 1]] = f"{frontier[i]} and {frontier[i + 2]}"
                frontier = frontier[: i + 1] + frontier[i + 2:]
                changed = True
                break
    return frontier


def _icer(table, reference, candidate) -> float:
    d_cost = table.at[candidate, "cost"] - table.at[reference, "cost"]
    d_effect = table.at[candidate, "effect"] - table.at[reference, "effect"]
    return d_cost / d_effect if d_effect else math.inf


def net_monetary_benefit(costs: pd.Series, effects: pd.Series, willingness_to_pay) -> pd.DataFrame:
    """NMB = WTP x QALYs - cost, per strategy and willingness to pay (money per QALY)."""
    rows = [{"strategy": s, "willingness_to_pay": w, "net_monetary_benefit": w * effects[s] - costs[s]}
            for w in willingness_to_pay for s in costs.index]
    return pd.DataFrame(rows)


def acceptability(samples: pd.DataFrame, willingness_to_pay) -> pd.DataFrame:
    """CEAC and CEAF from PSA samples.

    `samples` has one row per PSA sample and strategy with columns `sample, strategy,
    cost, effect`. Returns per WTP and strategy the probability that the strategy has the
    highest net benefit (`probability_cost_effective`), and `on_frontier`: True for the
    strategy with the highest expected net benefit at that WTP (the CEAF).
    """
    cost = samples.pivot(index="sample", columns="strategy", values="cost")
    effect = samples.pivot(index="sample", columns="strategy", values="effect")
    rows = []
    for w in willingness_to_pay:
        nmb = w * effect - cost
        best = nmb.to_numpy().argmax(axis=1)
        expected_best = nmb.mean().to_numpy().argmax()
        for j, strategy in enumerate(nmb.columns):
            rows.append({"willingness_to_pay": w, "strategy": strategy,
                         "probability_cost_effective": float(np.mean(best == j)),
                         "on_frontier": j == expected_best})
    return pd.DataFrame(rows)


def expected_value_of_perfect_information(samples: pd.DataFrame, willingness_to_pay,
                                          population: float = 1.0) -> pd.DataFrame:
    """EVPI per patient (and for `population` patients) at each willingness to pay.

    EVPI = E[max over strategies of NMB] - max over strategies of E[NMB], in money; it is
    zero when the same strategy is best in every sample.
    """
    cost = samples.pivot(index="sample", columns="strategy", values="cost")
    effect = samples.pivot(index="sample", columns="strategy", values="effect")
    rows = []
    for w in willingness_to_pay:
        nmb = (w * effect - cost).to_numpy()
        # Regret of the strategy best on average, sample by sample: exactly zero when it
        # wins every sample (a difference of means would leave rounding noise).
        chosen = nmb.mean(axis=0).argmax()
        evpi = float((nmb.max(axis=1) - nmb[:, chosen]).mean())
        rows.append({"willingness_to_pay": w, "evpi_per_patient": evpi, "evpi_population": evpi * population})
    return pd.DataFrame(rows)


def psa_export(samples: pd.DataFrame) -> pd.DataFrame:
    """PSA results as other health-economics tools read them (BCEA, dampack).

    One row per sample; columns `cost_<strategy>` and `effect_<strategy>`.
    """
    cost = samples.pivot(index="sample", columns="strategy", values="cost").add_prefix("cost_")
    effect = samples.pivot(index="sample", columns="strategy", values="effect").add_prefix("effect_")
    return pd.concat([cost, effect], axis=1).reset_index()


def economics_summary(by_strategy: pd.DataFrame) -> pd.DataFrame:
    """The per-strategy means of `strategy_costs` in summary.csv's long form.

    Metrics are `mean_<outcome>` (e.g. `mean_cost_total_GBP`, `mean_qalys`), treatment empty.
    """
    return pd.DataFrame({
        "strategy": by_strategy["strategy"],
        "treatment": pd.NA,
        "metric": "mean_" + by_strategy["outcome"],
        "value": by_strategy["mean"],
        "ci_low": by_strategy["ci_low"],
        "ci_high": by_strategy["ci_high"],
    })


def incremental_table(by_strategy: pd.DataFrame, setting) -> pd.DataFrame:
    """Incremental analysis of discounted mean costs and QALYs, with NMB at each willingness to pay."""
    means = by_strategy.pivot(index="strategy", columns="outcome", values="mean")
    cost = means[f"cost_total_{setting.currency}"]
    table = incremental_analysis(cost, means["qalys"])
    table = table.rename(columns={"cost": f"cost_{setting.currency}", "effect": "qalys",
                                  "incremental_cost": f"incremental_cost_{setting.currency}",
                                  "incremental_effect": "incremental_qalys",
                                  "icer": f"icer_{setting.currency}_per_qaly"})
    for w in setting.willingness_to_pay:
        table[f"nmb_{setting.currency}_at_{w:g}"] = w * table["qalys"] - table[f"cost_{setting.currency}"]
    return table
