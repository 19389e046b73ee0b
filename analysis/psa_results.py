"""Probabilistic results of a costed PSA: the table a submission reports, its convergence,
and the value of learning each uncertain parameter (EVPPI).

`samples` is the table of `analysis.sweep_economics.economic_samples` for one variant:
one row per PSA sample and strategy with mean discounted `cost` (money per patient) and
`effect` (QALYs per patient). Intervals over samples are 95% credible intervals (the
2.5th and 97.5th percentiles of the PSA distribution); they include the Monte Carlo
noise of each sample's finite cohort.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.economics import expected_value_of_perfect_information, incremental_analysis
from analysis.evppi import evppi_curve

#: Shortest group of parameters EVPPI is reported for besides single parameters.
_GROUP_MEMBERS = 2
#: PSA samples needed per member of a group: a Gaussian process in more dimensions than
#: the samples can inform follows their noise (SAVI's guidance is similar).
SAMPLES_PER_MEMBER = 10


def probabilistic_table(samples: pd.DataFrame, strategies: list[str], willingness_to_pay,
                        deterministic: pd.DataFrame | None = None) -> pd.DataFrame:
    """Mean (95% CrI) cost and QALYs per strategy, increments over the least costly
    strategy, the probabilistic ICER (of the mean increments, along the frontier), and
    the NMB at each willingness to pay; the deterministic base case beside it.

    `deterministic` (optional) has one row per strategy with `cost` and `effect` of the
    base-case run. Columns: `strategy, cost_mean, cost_low, cost_high, qalys_mean, ...,
    incremental_cost_mean/low/high, incremental_qalys_mean/low/high, status, icer,
    deterministic_cost, deterministic_qalys, deterministic_icer`, and `nmb_at_<w>_mean/low/high`.
    """
    cost = samples.pivot(index="sample", columns="strategy", values="cost")[strategies]
    effect = samples.pivot(index="sample", columns="strategy", values="effect")[strategies]
    frontier = incremental_analysis(cost.mean(), effect.mean()).set_index("strategy")
    cheapest = frontier.index[0]
    rows = []
    for strategy in strategies:
        row = {"strategy": strategy, **_band("cost", cost[strategy]), **_band("qalys", effect[strategy]),
               **_band("incremental_cost", cost[strategy] - cost[cheapest]),
               **_band("incremental_qalys", effect[strategy] - effect[cheapest]),
               "compared_with": cheapest, "status": frontier.at[strategy, "status"],
               "icer": frontier.at[strategy, "icer"], "icer_compared_with": frontier.at[strategy, "compared_with"]}
        for w in willingness_to_pay:
            row |= _band(f"nmb_at_{w:g}", w * effect[strategy] - cost[strategy])
        rows.append(row)
    table = pd.DataFrame(rows)
    if deterministic is not None:
        base = deterministic.set_index("strategy").reindex(strategies)
        base_frontier = incremental_analysis(base["cost"], base["effect"]).set_index("strategy")
        table["deterministic_cost"] = base["cost"].to_numpy()
        table["deterministic_qalys"] = base["effect"].to_numpy()
        table["deterministic_status"] = base_frontier["status"].reindex(strategies).to_numpy()
        table["deterministic_icer"] = base_frontier["icer"].reindex(strategies).to_numpy()
    return table


def _band(name: str, values: pd.Series) -> dict:
    values = values.to_numpy(float)
    return {f"{name}_mean": values.mean(), f"{name}_low": np.quantile(values, 0.025),
            f"{name}_high": np.quantile(values, 0.975)}


def running_means(samples: pd.DataFrame, strategies: list[str], reference: str, willingness_to_pay: float) -> pd.DataFrame:
    """The running mean of each strategy's incremental NMB over `reference` (money per
    patient) and of its ICER, as samples accumulate in sample order, with the Monte Carlo
    95% interval of the running mean NMB (mean ± 1.96 SE over the samples so far).

    Columns: `strategy, samples, incremental_nmb, low, high, icer`.
    """
    cost = samples.pivot(index="sample", columns="strategy", values="cost").sort_index()
    effect = samples.pivot(index="sample", columns="strategy", values="effect").sort_index()
    frames = []
    count = np.arange(1, len(cost) + 1)
    for strategy in [s for s in strategies if s != reference]:
        d_cost = (cost[strategy] - cost[reference]).to_numpy()
        d_effect = (effect[strategy] - effect[reference]).to_numpy()
        nmb = willingness_to_pay * d_effect - d_cost
        mean = np.cumsum(nmb) / count
        square = np.cumsum(nmb**2) / count
        sd = np.sqrt(np.maximum(square - mean**2, 0.0) * count / np.maximum(count - 1, 1))
        half = 1.96 * sd / np.sqrt(count)
        with np.errstate(divide="ignore", invalid="ignore"):
            icer = np.cumsum(d_cost) / np.cumsum(d_effect)
        frames.append(pd.DataFrame({"strategy": strategy, "samples": count, "incremental_nmb": mean,
                                    "low": mean - half, "high": mean + half, "icer": icer}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["strategy", "samples", "incremental_nmb", "low", "high", "icer"])


def drawn_parameters(summary: pd.DataFrame, parameters: list[dict], variant) -> pd.DataFrame:
    """The numeric parameters drawn for each PSA sample of `variant`, one row per sample.

    `parameters` are the manifest's PSA parameter columns. Columns that do not vary, or
    that repeat another column exactly, are left out.
    """
    rows = summary[(summary["analysis"] == "psa") & (summary["variant"] == variant)]
    names = [p["name"] for p in parameters if p.get("numeric") and p["name"] in rows.columns]
    table = rows.drop_duplicates("sample").set_index("sample")[names].astype(float).sort_index()
    table = table.loc[:, table.nunique() > 1]
    return table.T.drop_duplicates().T


def parameter_groups(names: list[str]) -> dict[str, list[str]]:
    """Groups of parameters learnt together: those of one treatment, one economic input
    block or one top-level block (e.g. `treatments.dupilumab`, `economics.utilities`,
    `rescue`), where the group has at least two members."""
    groups: dict[str, list[str]] = {}
    for name in names:
        parts = name.split(".")
        key = ".".join(parts[:2]) if parts[0] in ("treatments", "economics") and len(parts) > 2 else parts[0]
        groups.setdefault(key, []).append(name)
    return {key: members for key, members in groups.items() if len(members) >= _GROUP_MEMBERS}


def evppi_table(samples: pd.DataFrame, parameters: pd.DataFrame, strategies: list[str], willingness_to_pay,
                population: float | None = None) -> pd.DataFrame:
    """EVPPI per patient (money) of each drawn parameter and each group, at each willingness
    to pay, beside the EVPI of the same samples; times `population` when given.

    Columns: `willingness_to_pay, parameters` (a name, or a group's name), `kind`
    (`single` or `group`; a group only with at least `SAMPLES_PER_MEMBER` samples per
    member), `members`, `evppi_per_patient`, `evpi_per_patient`, `share_of_evpi`,
    and `evppi_population` with a population.
    """
    cost = samples.pivot(index="sample", columns="strategy", values="cost")[strategies].sort_index()
    effect = samples.pivot(index="sample", columns="strategy", values="effect")[strategies].sort_index()
    parameters = parameters.reindex(cost.index)
    sets = [(name, "single", [name]) for name in parameters.columns]
    sets += [(group, "group", members) for group, members in parameter_groups(list(parameters.columns)).items()
             if len(cost) >= SAMPLES_PER_MEMBER * len(members)]
    thresholds = [float(w) for w in willingness_to_pay]
    evpis = expected_value_of_perfect_information(samples, thresholds)["evpi_per_patient"].to_numpy()
    if np.all(evpis <= 0):
        # 0 <= EVPPI <= EVPI: with one strategy best in every sample there is nothing to
        # learn, and the regressions (minutes for 50 parameters) are skipped.
        curves = {name: np.zeros(len(thresholds)) for name, _, _ in sets}
    else:
        curves = {name: evppi_curve(cost.to_numpy(), effect.to_numpy(), parameters[members].to_numpy(), thresholds)
                  for name, _, members in sets}
    rows = []
    for i, w in enumerate(thresholds):
        evpi = float(evpis[i])
        for name, kind, members in sets:
            value = float(curves[name][i])
            row = {"willingness_to_pay": w, "parameters": name, "kind": kind, "members": len(members),
                   "evppi_per_patient": value, "evpi_per_patient": evpi,
                   "share_of_evpi": value / evpi if evpi > 0 else np.nan}
            if population:
                row["evppi_population"] = value * population
            rows.append(row)
    return pd.DataFrame(rows)
