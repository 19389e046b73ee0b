"""Cost-effectiveness of a probabilistic sensitivity analysis: per PSA sample, each
strategy's mean discounted cost and QALYs; from them the CE plane, the acceptability
curves and frontier, the EVPI, and the export other health-economics tools read.

Needs a sweep run with `economics:` (its summaries then hold `mean_cost_total_<CUR>` and
`mean_qalys` per strategy). Money is in the setting's currency.
"""

from __future__ import annotations

from html import escape

import numpy as np
import pandas as pd

from analysis.economics import acceptability, expected_value_of_perfect_information, psa_export
from analysis.psa_results import drawn_parameters, evppi_table, probabilistic_table, running_means


def economic_samples(summary: pd.DataFrame, currency: str) -> pd.DataFrame:
    """One row per variant, PSA sample and strategy: mean `cost` and `effect` (QALYs).

    Replicates of the same sample are averaged.
    """
    psa = summary[(summary["analysis"] == "psa") & summary["metric"].isin([f"mean_cost_total_{currency}", "mean_qalys"])]
    if psa.empty:
        return pd.DataFrame(columns=["variant", "sample", "strategy", "cost", "effect"])
    table = psa.pivot_table(index=["variant", "sample", "strategy"], columns="metric", values="value",
                            aggfunc="mean", observed=True).reset_index()
    table = table.rename(columns={f"mean_cost_total_{currency}": "cost", "mean_qalys": "effect"})
    table["sample"] = table["sample"].astype(int)
    return table[["variant", "sample", "strategy", "cost", "effect"]]


def willingness_to_pay_grid(declared) -> np.ndarray:
    """WTP values for curves: 0 to three times the largest declared threshold, 61 points."""
    top = 3 * max(declared) if len(declared) else 100_000
    return np.unique(np.concatenate([np.linspace(0, top, 61), np.asarray(declared, dtype=float)]))


def economic_tables(samples: pd.DataFrame, willingness_to_pay, population: float = 1.0) -> dict[str, pd.DataFrame]:
    """CEAC/CEAF, EVPI (per patient and for `population` patients) and the wide export
    (`psa_for_bcea`), per variant (a `variant` column)."""
    ceac, evpi, export = [], [], []
    for variant, block in samples.groupby("variant", sort=True):
        block = block.drop(columns="variant")
        ceac.append(acceptability(block, willingness_to_pay).assign(variant=variant))
        evpi.append(expected_value_of_perfect_information(block, willingness_to_pay, population)
                    .assign(variant=variant))
        export.append(psa_export(block).assign(variant=variant))
    def first(frames):
        frame = pd.concat(frames, ignore_index=True)
        return frame[["variant", *[c for c in frame.columns if c != "variant"]]]
    return {"ceac": first(ceac), "evpi": first(evpi), "psa_for_bcea": first(export)}


#: Columns of the tasks table that describe a task rather than a drawn parameter.
_TASK_COLUMNS = ("task", "order", "variant", "analysis", "parameter", "bound", "sample", "replicate", "seed")


def psa_matrices(samples: pd.DataFrame, strategies, tasks: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """The PSA as dampack (`make_psa_obj`) and BCEA (`bcea`) read it: `psa_cost` and
    `psa_effect` with one row per sample (in sample order) and one column per strategy,
    reference strategy (the first of `strategies`) first; `psa_parameters` the drawn
    parameters of the same samples, numeric only, without constant or duplicated columns
    and with one share of each Dirichlet group dropped (shares that sum to one make the
    regressions of EVPPI singular). `samples` holds one variant (`sample, strategy, cost, effect`)."""
    order = [s for s in strategies if s in set(samples["strategy"])]
    cost = samples.pivot(index="sample", columns="strategy", values="cost").sort_index()[order]
    effect = samples.pivot(index="sample", columns="strategy", values="effect").sort_index()[order]
    out = {"psa_cost": cost.reset_index(drop=True), "psa_effect": effect.reset_index(drop=True)}
    if tasks is not None and len(tasks) and "sample" in tasks:
        out["psa_parameters"] = _drawn_parameters(tasks, cost.index)
    return out


def _drawn_parameters(tasks: pd.DataFrame, sample_index) -> pd.DataFrame:
    mine = tasks[(tasks["analysis"] == "psa") & tasks["sample"].isin(list(sample_index))]
    mine = mine.sort_values(["sample", "replicate"]).drop_duplicates("sample").set_index("sample")
    mine = mine.reindex(sample_index)
    columns = [c for c in mine.columns if c not in _TASK_COLUMNS and pd.api.types.is_numeric_dtype(mine[c])]
    frame = mine[columns].astype(float)
    frame = frame.loc[:, frame.nunique(dropna=False) > 1]
    frame = frame.T.drop_duplicates().T
    for parent, members in _groups(frame.columns).items():
        if len(members) > 1 and np.allclose(frame[members].sum(axis=1), 1.0, atol=1e-9):
            frame = frame.drop(columns=members[-1])
    return frame.reset_index(drop=True)


def _groups(columns) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for column in columns:
        groups.setdefault(column.rsplit(".", 1)[0], []).append(column)
    return groups


def _drawn_inputs(summary: pd.DataFrame) -> str:
    """A sentence on which of the economic setting's numbers the PSA draws."""
    drawn = [column.removeprefix("economics.") for column in summary.columns if column.startswith("economics.")]
    if not drawn:
        return "Economic inputs (prices, utilities) are held at their values; the clinical parameters vary."
    return (f"Besides the clinical parameters, the PSA draws {len(drawn)} of the setting's numbers "
            f"({escape(', '.join(drawn))}); its other prices and utilities are held at their values.")


def economics_psa_section(results, context, render, figure_html, html_table) -> tuple[str, dict]:
    """The cost-effectiveness part of a sweep report: figures, tables, and the HTML."""
    from analysis.economics_plots import plot_acceptability, plot_ce_plane, plot_evpi

    economics = results.manifest.get("economics")
    if not economics:
        return "", {}
    currency = economics["currency"]
    samples = economic_samples(results.summary, currency)
    if samples.empty:
        return "", {}
    grid = willingness_to_pay_grid(economics["willingness_to_pay"])
    population = economics.get("evpi_population")
    tables = economic_tables(samples, grid, population or 1.0)
    strategies = [s for s in context.strategies if s in set(samples["strategy"])]
    parts = ["<h2>Cost-effectiveness under uncertainty</h2>",
             f"<p>{samples['sample'].nunique()} PSA samples costed with the setting <b>{escape(str(economics['name']))}</b> "
             f"({escape(str(currency))}, {escape(str(economics['price_year']))} prices). {_drawn_inputs(results.summary)}</p>"]
    for variant, block in samples.groupby("variant", sort=True):
        parts += [figure_html(render(f"ce_plane_v{variant}", "Cost-effectiveness plane",
                                     f"Incremental cost and QALYs against {context.labels.get(strategies[0], strategies[0])}, "
                                     "one dot per PSA sample (X: mean); dashed lines are the willingness-to-pay thresholds.",
                                     lambda b=block: plot_ce_plane(b, strategies[0], currency,
                                                                   economics["willingness_to_pay"], strategies,
                                                                   context.labels))),
                  figure_html(render(f"ceac_v{variant}", "Acceptability curves",
                                     "Probability that each strategy has the highest net monetary benefit; the thick "
                                     "grey line follows the strategy with the highest expected net benefit (CEAF).",
                                     lambda v=variant: plot_acceptability(
                                         tables["ceac"][tables["ceac"]["variant"] == v], currency, strategies,
                                         context.labels))),
                  figure_html(render(f"evpi_v{variant}", "Expected value of perfect information",
                                     "EVPI per patient: what removing all parameter uncertainty would be worth.",
                                     lambda v=variant: plot_evpi(tables["evpi"][tables["evpi"]["variant"] == v],
                                                                 currency)))]
    parts.append(_at_thresholds(tables, economics, context, html_table))
    probabilistic, extra = _probabilistic_parts(results, samples, strategies, economics, context, render,
                                                figure_html, html_table)
    parts.append(probabilistic)
    exports = _exports(samples, strategies, results.tasks)
    parts.append("<p>For R: <code>tables/psa_cost.csv</code>, <code>tables/psa_effect.csv</code> (one row per "
                 "sample, one column per strategy, the reference strategy first) and "
                 "<code>tables/psa_parameters.csv</code> (the drawn parameters) are read as they are by "
                 "<code>dampack::make_psa_obj</code> and <code>BCEA::bcea</code> (README).</p>")
    return "\n".join(parts), {**extra, **exports,
        "ceac": ("PSA: probability each strategy is cost-effective at each willingness to pay; on_frontier marks "
                 "the CEAF.", tables["ceac"]),
        "evpi": ("PSA: expected value of perfect information per patient at each willingness to pay.", tables["evpi"]),
        "psa_for_bcea": ("PSA results for BCEA or dampack: one row per sample, cost_<strategy> and "
                         "effect_<strategy> (QALYs).", tables["psa_for_bcea"]),
    }


def _exports(samples: pd.DataFrame, strategies, tasks) -> dict:
    """psa_cost, psa_effect, psa_parameters per variant (suffix `_v<k>` when there are several)."""
    variants = sorted(samples["variant"].unique())
    described = {"psa_cost": "PSA: mean discounted cost per patient, one row per sample, one column per strategy "
                             "(reference first), for dampack or BCEA.",
                 "psa_effect": "PSA: mean discounted QALYs per patient, one row per sample, one column per strategy "
                               "(reference first).",
                 "psa_parameters": "PSA: the drawn parameters of each sample (numeric, no constant or duplicated "
                                   "columns, one share of each Dirichlet group dropped)."}
    out = {}
    for variant in variants:
        block = samples[samples["variant"] == variant].drop(columns="variant")
        tasks_of = tasks[tasks["variant"] == variant] if tasks is not None and len(tasks) else None
        for name, frame in psa_matrices(block, strategies, tasks_of).items():
            suffix = "" if len(variants) == 1 else f"_v{variant}"
            out[name + suffix] = (described[name], frame)
    return out


def _at_thresholds(tables, economics, context, html_table) -> str:
    currency = economics["currency"]
    rows = []
    for w in economics["willingness_to_pay"]:
        ceac = tables["ceac"][np.isclose(tables["ceac"]["willingness_to_pay"], w)]
        evpi = tables["evpi"][np.isclose(tables["evpi"]["willingness_to_pay"], w)]
        for variant, block in ceac.groupby("variant", sort=True):
            best = block.loc[block["on_frontier"], "strategy"].iloc[0]
            cells = [f"{w:,.0f}", str(variant), escape(str(context.labels.get(best, best)))]  # cells are HTML
            cells += [f"{p:.0%}" for p in block.set_index("strategy").reindex(context.strategies)["probability_cost_effective"]]
            here = evpi[evpi["variant"] == variant].iloc[0]
            cells.append(f"{here['evpi_per_patient']:,.2f}")
            if economics.get("evpi_population"):
                cells.append(f"{here['evpi_population']:,.0f}")
            rows.append(cells)
    header = [f"WTP ({currency}/QALY)", "Variant", "Best expected net benefit"] \
        + [f"P(cost-effective): {context.labels.get(s, s)}" for s in context.strategies] + [f"EVPI per patient ({currency})"]
    if economics.get("evpi_population"):
        header.append(f"EVPI for {economics['evpi_population']:,.0f} patients ({currency})")
    numeric = [True, False, False] + [True] * (len(header) - 3)
    return "<h3>At the declared thresholds</h3>" + html_table(header, rows, numeric)


def deterministic_results(summary: pd.DataFrame, currency: str) -> pd.DataFrame:
    """The base case (point task) of each variant: `variant, strategy, cost, effect`."""
    point = summary[(summary["analysis"] == "point") & summary["treatment"].isna()
                    & summary["metric"].isin([f"mean_cost_total_{currency}", "mean_qalys"])]
    table = point.pivot_table(index=["variant", "strategy"], columns="metric", values="value", aggfunc="mean",
                              observed=True).reset_index()
    return table.rename(columns={f"mean_cost_total_{currency}": "cost", "mean_qalys": "effect"})


def _probabilistic_parts(results, samples, strategies, economics, context, render, figure_html, html_table):
    from analysis.psa_plots import plot_convergence, plot_evppi

    currency, thresholds = economics["currency"], [float(w) for w in economics["willingness_to_pay"]]
    population = economics.get("evpi_population")
    deterministic = deterministic_results(results.summary, currency)
    parts, frames = ["<h3>Probabilistic results</h3>"], {"psa_results": [], "psa_convergence": [], "evppi": []}
    for variant, block in samples.groupby("variant", sort=True):
        block = block.drop(columns="variant")
        base = deterministic[deterministic["variant"] == variant]
        table = probabilistic_table(block, strategies, thresholds, base if len(base) else None)
        running = running_means(block, strategies, strategies[0], thresholds[0])
        parameters = drawn_parameters(results.summary, results.parameter_columns("psa"), variant)
        value = evppi_table(block, parameters, strategies, thresholds, population)
        frames["psa_results"].append(table.assign(variant=variant))
        frames["psa_convergence"].append(running.assign(variant=variant))
        frames["evppi"].append(value.assign(variant=variant))
        parts.append(_probabilistic_html(table, thresholds, currency, context, html_table))
        parts.append(figure_html(render(
            f"psa_convergence_v{variant}", "Convergence of the PSA",
            "Running mean of each strategy's incremental net monetary benefit over the first strategy as samples "
            "accumulate, with its Monte Carlo 95% interval; below, the running ICER. Flat lines mean enough samples.",
            lambda r=running: plot_convergence(r, strategies, strategies[0], currency, thresholds[0], context.labels))))
        at_first = value[np.isclose(value["willingness_to_pay"], thresholds[0])]
        if len(at_first) and at_first["evpi_per_patient"].iloc[0] <= 0:
            parts.append(f"<p>EVPPI is zero for every parameter at {thresholds[0]:,.0f} {escape(currency)}/QALY: "
                         "the same strategy has the highest net benefit in every sample.</p>")
        elif len(at_first):
            parts.append(figure_html(render(
                f"evppi_v{variant}", "Expected value of partial perfect information",
                "What learning each parameter (blue) or group of parameters (red) exactly would be worth per "
                "patient, estimated by regression on the PSA samples (Strong et al. 2014); the dashed line is the "
                "EVPI. Values below a few per cent of the EVPI are within the method's noise.",
                lambda t=at_first: plot_evppi(t, currency, thresholds[0]))))
    def joined(frames_):
        frame = pd.concat(frames_, ignore_index=True)
        return frame[["variant", *[c for c in frame.columns if c != "variant"]]]
    return "\n".join(parts), {
        "psa_results": ("PSA: mean and 95% credible interval (2.5-97.5% of samples) of costs, QALYs, increments "
                        "over the least costly strategy and NMB; the probabilistic ICER along the frontier; the "
                        "deterministic base case beside it.", joined(frames["psa_results"])),
        "psa_convergence": ("PSA: running mean incremental NMB at the first willingness to pay and running ICER, by "
                            "number of samples.", joined(frames["psa_convergence"])),
        "evppi": ("PSA: EVPPI per patient of each drawn parameter and group (regression method), beside the EVPI.",
                  joined(frames["evppi"])),
    }


def _probabilistic_html(table: pd.DataFrame, thresholds, currency: str, context, html_table) -> str:
    def band(row, name, digits=0):
        return (f"{row[name + '_mean']:,.{digits}f} ({row[name + '_low']:,.{digits}f} to "
                f"{row[name + '_high']:,.{digits}f})")
    rows = []
    for _, row in table.iterrows():
        icer = row["icer"]
        status = row["status"]
        icer_text = (f"{icer:,.0f}" if status == "non-dominated" and np.isfinite(icer)
                     else "reference" if status == "reference" else str(status))
        cells = [escape(context.labels.get(row["strategy"], row["strategy"])), band(row, "cost"),
                 band(row, "qalys", 3), band(row, "incremental_cost"), band(row, "incremental_qalys", 3), icer_text]
        cells += [band(row, f"nmb_at_{w:g}") for w in thresholds]
        if "deterministic_cost" in row:
            d_icer = row["deterministic_icer"]
            d_status = row["deterministic_status"]
            cells += [f"{row['deterministic_cost']:,.0f}", f"{row['deterministic_qalys']:,.3f}",
                      f"{d_icer:,.0f}" if d_status == "non-dominated" and np.isfinite(d_icer)
                      else "reference" if d_status == "reference" else str(d_status)]
        rows.append(cells)
    header = ["Strategy", f"Cost ({currency}), mean (95% CrI)", "QALYs, mean (95% CrI)",
              f"Incremental cost ({currency}) vs {escape(context.labels.get(table['compared_with'].iloc[0], ''))}",
              "Incremental QALYs", f"Probabilistic ICER ({currency}/QALY)"]
    header += [f"NMB at {w:,.0f} ({currency})" for w in thresholds]
    if "deterministic_cost" in table.columns:
        header += [f"Deterministic cost ({currency})", "Deterministic QALYs", f"Deterministic ICER ({currency}/QALY)"]
    caption = ("<p>Per patient, discounted. Credible intervals are the 2.5th to 97.5th percentiles over PSA samples; "
               "they include the Monte Carlo noise of each sample's finite cohort. The probabilistic ICER is the ratio "
               "of mean increments against the previous strategy on the cost-effectiveness frontier; dominated "
               "strategies are said to be dominated.</p>")
    return caption + html_table(header, rows, [False] + [True] * (len(header) - 1))
