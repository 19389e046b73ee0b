"""Price-threshold analysis: the price of a drug at which a strategy's ICER against a
comparator equals the willingness to pay (its incremental net monetary benefit is zero).

A drug's price changes costs only, never the trajectories, and every cost is linear in
the price (the drug over each episode, its loading dose and any combination that
contains it are dose x price). So one simulation costed at two prices gives the exact
line: with ΔC(p) = ΔC(0) + p·s the incremental cost at price p (money per patient) and
ΔQ the incremental QALYs, the incremental NMB at WTP λ is λ·ΔQ − ΔC(p), zero at
p* = (λ·ΔQ − ΔC(0)) / s. Below p* (when ΔQ > 0 and s > 0) the strategy is
cost-effective at λ. The table also costs the run at p* and reports the incremental
NMB found there, which is zero to rounding.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.costs import patient_costs
from sim.economics import economics_from_document
from sim.loader import set_path


def mean_costs_and_qalys(tables, document: dict, name: str, where: str) -> pd.DataFrame:
    """Per strategy, mean discounted cost per patient (`cost`, the setting's currency) and
    mean discounted QALYs (`qalys`) of a run's tables costed with an economics document."""
    economics = economics_from_document(document, name, where)
    costs = patient_costs(tables.episodes, tables.patients, economics, tables.adverse_events, tables.bursts)
    grouped = costs.groupby("strategy", observed=True, sort=False)
    return pd.DataFrame({"cost": grouped[f"cost_total_{economics.currency}"].mean(),
                         "qalys": grouped["qalys"].mean()})


def price_threshold(tables, document: dict, name: str, drug: str, strategy: str, comparator: str,
                    willingness_to_pay) -> pd.DataFrame:
    """The threshold price of `drug` (its `price.amount`, per `price.per` units) at which
    `strategy` against `comparator` has zero incremental NMB, for each WTP (money per QALY).

    Returns one row per WTP: `willingness_to_pay`, `list_price`, `threshold_price`,
    `threshold_to_list` (ratio), `incremental_qalys`, `incremental_cost_at_list`,
    `cost_per_price_unit` (incremental cost per patient per unit of price), and
    `incremental_nmb_at_threshold` (the check: zero to rounding). The threshold is NaN
    when the price does not change the incremental cost (the two strategies use the drug
    alike).
    """
    price = document["treatments"][drug]["price"]
    at_zero = _increments(tables, set_path(document, f"treatments.{drug}.price.amount", 0.0), name,
                          strategy, comparator)
    at_one = _increments(tables, set_path(document, f"treatments.{drug}.price.amount", 1.0), name,
                         strategy, comparator)
    slope = at_one[0] - at_zero[0]
    d_qalys = at_zero[1]
    rows = []
    for wtp in willingness_to_pay:
        wtp = float(wtp)
        threshold = (wtp * d_qalys - at_zero[0]) / slope if abs(slope) > 1e-12 else math.nan
        check = math.nan
        if math.isfinite(threshold):
            cost, qalys = _increments(tables, set_path(document, f"treatments.{drug}.price.amount",
                                                       max(threshold, 0.0)), name, strategy, comparator)
            # A negative threshold is costed at 0 (prices are >= 0); the line extends below it.
            cost += slope * min(threshold, 0.0)
            check = wtp * qalys - cost
        rows.append({"willingness_to_pay": wtp, "drug": drug, "strategy": strategy, "comparator": comparator,
                     "list_price": float(price["amount"]), "price_per": float(price.get("per", 1.0)),
                     "price_unit": price.get("unit") or "", "threshold_price": threshold,
                     "threshold_to_list": threshold / float(price["amount"]) if price["amount"] else math.nan,
                     "incremental_qalys": d_qalys,
                     "incremental_cost_at_list": at_zero[0] + slope * float(price["amount"]),
                     "cost_per_price_unit": slope, "incremental_nmb_at_threshold": check})
    return pd.DataFrame(rows)


def _increments(tables, document: dict, name: str, strategy: str, comparator: str) -> tuple[float, float]:
    means = mean_costs_and_qalys(tables, document, name, f"{name} (threshold analysis)")
    return (float(means.loc[strategy, "cost"] - means.loc[comparator, "cost"]),
            float(means.loc[strategy, "qalys"] - means.loc[comparator, "qalys"]))


def format_threshold(table: pd.DataFrame, currency: str) -> str:
    """The threshold table as text for the terminal."""
    lines = []
    for row in table.itertuples(index=False):
        per = f" per {row.price_per:g} {row.price_unit}".rstrip() if row.price_unit or row.price_per != 1 else ""
        head = (f"{row.strategy} vs {row.comparator} at {row.willingness_to_pay:,.0f} {currency}/QALY: ")
        if not np.isfinite(row.threshold_price):
            lines.append(head + f"the price of {row.drug} does not change the incremental cost; no threshold")
            continue
        verdict = ("no price >= 0 makes it cost-effective" if row.threshold_price < 0 and row.incremental_qalys >= 0
                   else f"{row.threshold_to_list:.0%} of the list price {row.list_price:,.2f}")
        lines.append(head + f"{row.drug} threshold price {row.threshold_price:,.2f} {currency}{per} ({verdict}); "
                     f"incremental QALYs {row.incremental_qalys:.4f}, incremental cost at list "
                     f"{row.incremental_cost_at_list:,.0f} (each {currency} on the price adds {row.cost_per_price_unit:,.3f}); "
                     f"incremental NMB at the threshold {row.incremental_nmb_at_threshold:.2e}")
    return "\n".join(lines)
