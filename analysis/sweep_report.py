"""The sweep report: one self-contained HTML page for a parameter sweep, with its figures
(PNG, embedded as base64) and tables (CSV).

``build_sweep_report(sweep_dir)`` writes ``report.html``, ``figures/*.png`` and
``tables/*.csv`` into the sweep directory: what was run, the grid (each key metric
against each varied parameter), the one-way analysis
(tornado diagrams), the PSA (distributions, probability each strategy is best,
incremental scatter), the per-variant table, and the parameters with their sources.
Plain HTML and CSS: no JavaScript, nothing loaded from the network.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.colours import strategy_colours
from analysis.io import write_atomic
from analysis.plots import save_figure
from analysis.html import Figure as _Figure
from analysis.html import escape as _e
from analysis.html import figure_html as _figure_html
from analysis.html import html_table as _html_table
from analysis.html import is_missing as _missing
from analysis.sweep_economics import economics_psa_section
from analysis.sweep_plots import (
    metric_label,
    plot_grid,
    plot_psa_distributions,
    plot_psa_increments,
    plot_tornado,
)
from analysis.sweep_summary import (
    SweepResults,
    grid_table,
    increment_table,
    is_incremental,
    load_sweep_results,
    metric_description,
    one_way_table,
    probability_best,
    psa_increments,
    psa_samples,
    psa_table,
)

#: Variants shown in the one-way and PSA figures (all are in the tables).
MAX_VARIANTS_IN_FIGURES = 4


@dataclass(frozen=True)
class _Context:
    results: SweepResults
    strategies: list[str]
    labels: dict[str, str]
    colours: dict
    horizon_months: float | None
    variants: dict[int, str]
    parameter_labels: dict[str, str]
    parameter_units: dict[str, str]


def build_sweep_report(sweep_dir: str | os.PathLike, svg: bool = False) -> Path:
    """Write the HTML report of a sweep directory, with its figures and tables.

    Parameters
    ----------
    sweep_dir : path-like
        A directory written by ``adpath sweep`` (``sweep.json``, ``sweep_summary.parquet``).
    svg : bool
        Also write every figure as SVG in ``figures/``.

    Returns
    -------
    pathlib.Path
        Path of ``report.html``.
    """
    results = load_sweep_results(sweep_dir)
    context = _context(results)
    tables = _tables(context)
    economics_html, economics_tables = economics_psa_section(
        results, context, lambda *args: _render(context, *args, svg), _figure_html, _html_table)
    tables.update(economics_tables)
    for name, (_, frame) in tables.items():
        write_atomic(results.directory / "tables" / f"{name}.csv", frame.to_csv(index=False))
    sections = [
        _header(context),
        _run_section(context),
        _grid_section(context, tables, svg),
        _one_way_section(context, tables, svg),
        _psa_section(context, tables, svg),
        economics_html,
        _variant_section(context),
        _parameter_section(context),
        _table_links(tables),
    ]
    name = results.manifest.get("sweep_name") or results.directory.name
    return write_atomic(results.directory / "report.html", _page(name, "\n".join(s for s in sections if s)))


# ------------------------------------------------------------------ context


def _context(results: SweepResults) -> _Context:
    strategies = results.strategies()
    labels = results.labels()
    variants = {v["variant"]: ", ".join(f"{k} = {val}" for k, val in v.get("grid", {}).items()) or "base case"
                for v in results.manifest.get("variants", [])}
    horizons = [v.get("horizon_months") for v in results.manifest.get("variants", [])]
    horizon = horizons[0] if horizons and len(set(horizons)) == 1 else None
    parameters = results.manifest.get("parameters", [])
    names = {p["path"]: parameter_label(p["path"], labels) for p in parameters}
    units = {p["path"]: p.get("unit", "") for p in parameters}
    return _Context(results, strategies, labels, strategy_colours(strategies), horizon, variants, names, units)


def parameter_label(path: str, labels: dict[str, str]) -> str:
    """Readable name of a parameter path: `treatments.methotrexate.response` -> `Methotrexate: response`."""
    parts = path.split(".")
    if parts[0] == "economics" and len(parts) > 1:
        # economics.treatments.dupilumab.price.amount -> Dupilumab: price amount (economic setting)
        return f"{parameter_label('.'.join(parts[1:]), labels)} (economic setting)"
    if len(parts) > 2 and parts[0] in ("treatments", "strategies"):
        owner, rest = labels.get(parts[1], parts[1].replace("_", " ")), parts[2:]
        return f"{owner}: {' '.join(rest).replace('_', ' ')}"
    text = " ".join(parts).replace("_", " ")
    return text[:1].upper() + text[1:]


def _tables(context: _Context) -> dict[str, tuple[str, pd.DataFrame]]:
    results = context.results
    tables = {"grid": ("Key metrics of every variant's base case (point task), with the grid's values.",
                       grid_table(results))}
    if (results.summary["analysis"] == "one_way").any():
        tables["one_way"] = ("One-way analysis: each metric at each parameter's low and high value, and the swing.",
                             one_way_table(results))
    if (results.summary["analysis"] == "psa").any():
        increments = psa_increments(results)
        tables["psa_summary"] = ("PSA: mean, sd and 2.5/50/97.5% points of each metric over samples.",
                                 psa_table(results))
        tables["psa_probability_best"] = ("PSA: share of samples in which each strategy has the highest value.",
                                          probability_best(results))
        tables["psa_increments"] = ("PSA: paired differences from the reference strategy (mean, 95% interval, "
                                    "probability higher).", increment_table(increments))
        tables["psa_samples"] = ("PSA: the key metrics of every sample.", psa_samples(results))
    tables["parameters"] = ("Every parameter the sweep sets or draws, with its values and source.",
                            pd.DataFrame(results.manifest.get("parameters", [])))
    return tables


# ------------------------------------------------------------------ figures


def _render(context: _Context, name: str, title: str, caption: str, draw: Callable, svg: bool) -> _Figure:
    figure = draw()
    path = save_figure(figure, context.results.directory / "figures" / f"{name}.png", svg=svg)[0]
    return _Figure(name, title, caption, path.read_bytes())


def _shown_variants(frame: pd.DataFrame) -> tuple[list[int], str]:
    variants = sorted(frame["variant"].unique())
    note = ""
    if len(variants) > MAX_VARIANTS_IN_FIGURES:
        note = (f'<p class="muted">Figures show the first {MAX_VARIANTS_IN_FIGURES} of {len(variants)} variants; '
                "the tables hold them all.</p>")
    return variants[:MAX_VARIANTS_IN_FIGURES], note


# ----------------------------------------------------------------- sections


def _header(context: _Context) -> str:
    m = context.results.manifest
    return (f"<h1>adpath sweep report: {_e(m.get('sweep_name', ''))}</h1>"
            f'<p class="lead">{_e(m.get("description") or "")}</p>')


def _run_section(context: _Context) -> str:
    m = context.results.manifest
    sessions = m.get("sessions", [])
    wall = sum(s.get("wall_time_seconds") or 0 for s in sessions)
    by_analysis = ", ".join(f"{v} {k.replace('_', '-')}" for k, v in (m.get("tasks_by_analysis") or {}).items())
    facts = [
        ("Sweep file", m.get("sweep_file")), ("Base scenario", f"{m.get('base_scenario')} ({m.get('base_file')})"),
        ("Sweep hash", m.get("sweep_hash")), ("Seed", m.get("seed")), ("Replicates per task", m.get("replicates")),
        ("Variants (grid points)", len(m.get("variants", []))),
        ("Tasks", f"{m.get('tasks')} ({by_analysis})"),
        ("Finished", f"{m.get('tasks_finished')} of {m.get('tasks')} ({m.get('status')})"),
        ("Sessions (runs and resumes)", len(sessions)), ("Wall time, all sessions", f"{wall:.1f} s"),
        ("Last executor", sessions[-1].get("executor") if sessions else None),
        ("Patients per task", ", ".join(sorted({f"{v.get('patients'):,}" for v in m.get("variants", [])}))),
        ("Horizon", _horizon(context.horizon_months) if context.horizon_months else "varies"),
    ]
    rows = [[_e(k), _e("not recorded" if v in (None, "") else v)] for k, v in facts]
    failed = m.get("failed") or []
    failures = ""
    if failed:
        items = "".join(f"<li><code>{_e(f['task'])}</code> ({_e(f['what'])}): {_e(f['error'])}</li>"
                        for f in failed[:50])
        failures = (f'<p class="warn">{len(failed)} task(s) failed twice and are missing from the results; '
                    f"run the same command again to retry them.</p><ul>{items}</ul>")
    return ("<h2>What was run</h2>" + _html_table(["Item", "Value"], rows, [False, False]) + failures
            + '<p class="muted">Every task of replicate r uses the same virtual patients (common random numbers), '
            "so differences between variants, one-way bounds and PSA samples come from the parameters, not "
            "from Monte Carlo noise.</p>")


def _horizon(months: float) -> str:
    """A horizon in years (and months) when it is whole years: `60 years (720 months)`."""
    years = months / 12
    if months >= 24 and abs(years - round(years)) < 1e-9:
        return f"{round(years)} years ({months:g} months)"
    return f"{months:g} months"


def _parameter_section(context: _Context) -> str:
    parameters = context.results.manifest.get("parameters", [])
    roles = {"vary": "grid", "one_way": "one-way", "psa": "PSA"}
    rows = [[_e(p["path"]), _e(roles.get(p["role"], p["role"])), _e(p.get("distribution", "")),
             _e(p.get("unit") or ""), _e(p.get("source") or "not given")] for p in parameters]
    return ("<h2>Parameters</h2><p>What the sweep sets or draws, with the values or distribution and the "
            "source.</p>" + _html_table(["Parameter", "Role", "Values or distribution", "Unit", "Source"], rows,
                                        [False] * 5, "params"))


def _grid_section(context: _Context, tables: dict, svg: bool) -> str:
    grid = tables["grid"][1]
    columns = context.results.parameter_columns("vary")
    varied = [c for c in columns if grid[c["name"]].nunique() > 1]
    if not varied:
        return ""
    parts = ["<h2>Grid</h2>"]
    for column in varied:
        others = [c["name"] for c in varied if c is not column]
        order = list(dict.fromkeys(context.results.summary.sort_values("variant")[column["name"]]))
        label = context.parameter_labels.get(column["path"], column["path"])
        unit = f" ({column['unit']})" if column.get("unit") else ""
        name = "grid_" + column["path"].replace(".", "_")
        parts.append(_figure_html(_render(
            context, name, f"Outcomes by {label}",
            "Each key metric at every value of the parameter (base case of each grid variant), one line per "
            "strategy, with 95% intervals; other varied parameters in rows.",
            lambda c=column, o=others, order=order, label=label + unit: plot_grid(
                grid, c["name"], o, context.strategies, context.labels, context.colours, label, order,
                context.horizon_months, context.results.metrics("grid")),
            svg)))
    return "\n".join(parts)


def _one_way_section(context: _Context, tables: dict, svg: bool) -> str:
    if "one_way" not in tables:
        return ""
    one_way = tables["one_way"][1]
    variants, note = _shown_variants(one_way)
    parts = ["<h2>One-way sensitivity analysis</h2>",
             '<p>Each parameter set to its low and then its high value, all others at their base values. '
             "Parameters are ordered by swing (the absolute difference between the two; the largest over the "
             "strategies), largest on top.</p>", note]
    for variant in variants:
        rows = one_way[one_way["variant"] == variant]
        suffix = f" ({context.variants.get(variant, '')})" if len(context.variants) > 1 else ""
        unmoved = []
        for metric in [m for m in context.results.metrics("one_way") if m in set(rows["metric"])]:
            swings = rows.loc[rows["metric"] == metric, "swing"]
            if swings.notna().any() and (swings.fillna(0).abs() <= 1e-12).all():
                unmoved.append(metric_label(metric, context.horizon_months))
                continue  # an empty tornado: e.g. prices vary, clinical outcomes cannot move
            reference = context.results.reference()
            strategies = ([s for s in context.strategies if s != reference] if is_incremental(metric)
                          else context.strategies)
            against = (f" Increments are against {_e(context.labels.get(reference, reference))}, on the same "
                       "patients." if is_incremental(metric) else "")
            if not strategies:
                continue
            parts.append(_figure_html(_render(
                context, f"tornado_{metric}_v{variant}", f"Tornado: {metric_label(metric)}{suffix}",
                "Blue: the metric with the parameter at its low value; orange: at its high value; the vertical "
                "line is the base case. Values in brackets are the parameter's low and high values. Parameters "
                "are ordered by their largest swing over the strategies." + against,
                lambda r=rows, m=metric, st=strategies: plot_tornado(r, m, st, context.labels,
                                                                     context.parameter_labels, context.horizon_months,
                                                                     context.parameter_units),
                svg)))
        if unmoved:
            parts.append(f'<p class="muted">No parameter moves {_e(", ".join(unmoved))}{_e(suffix)} (same patients, '
                         "and the parameters only change costs or utilities): no tornado drawn.</p>")
    parts.append(_one_way_html(context, one_way))
    return "\n".join(parts)


def _one_way_html(context: _Context, one_way: pd.DataFrame) -> str:
    rows = []
    for r in one_way.itertuples(index=False):
        rows.append([_e(context.variants.get(r.variant, r.variant)), _e(context.labels.get(r.strategy, r.strategy)),
                     _e(metric_label(r.metric)), _e(context.parameter_labels.get(r.parameter, r.parameter)),
                     _e(f"{_num(r.low_setting)} / {_num(r.base_setting)} / {_num(r.high_setting)}"),
                     _value(r.metric, r.at_low), _value(r.metric, r.base), _value(r.metric, r.at_high),
                     _value(r.metric, r.swing, difference=True)])
    header = ["Variant", "Strategy", "Metric", "Parameter", "Low / base / high value", "At low", "Base", "At high",
              "Swing"]
    return "<h3>One-way results</h3>" + _variant_table(context, header, rows, [False] * 5 + [True] * 4)


def _psa_section(context: _Context, tables: dict, svg: bool) -> str:
    if "psa_summary" not in tables:
        return ""
    results = context.results
    samples, summary = psa_samples(results), tables["psa_summary"][1]
    increments = psa_increments(results)
    variants, note = _shown_variants(samples)
    parts = ["<h2>Probabilistic sensitivity analysis</h2>",
             f"<p>{samples['sample'].nunique()} samples of every uncertain parameter (see Parameters). Counts are "
             "drawn from Beta(events + ½, n − events + ½), shares that sum to 1 from a Dirichlet.</p>", note]
    for variant in variants:
        suffix = f" ({context.variants.get(variant, '')})" if len(context.variants) > 1 else ""
        parts.append(_figure_html(_render(
            context, f"psa_distributions_v{variant}", f"PSA distributions{suffix}",
            "Distribution of each key metric across PSA samples, per strategy; dashed lines mark the "
            "deterministic base case.",
            lambda v=variant: plot_psa_distributions(samples[samples["variant"] == v],
                                                     summary[summary["variant"] == v], context.strategies,
                                                     context.labels, context.colours, context.horizon_months,
                                                     context.results.metrics("psa")),
            svg)))
        shown = set(samples["metric"])
        if len(context.strategies) > 1 and {"returned_to_topical_ever",
                                            "first_line_median_drug_survival_months"} <= shown:
            parts.append(_figure_html(_render(
                context, f"psa_increments_v{variant}", f"Incremental outcomes{suffix}",
                "Each point is one PSA sample: the difference from the reference strategy in returning to "
                "topical therapy (horizontal) and in median first-line drug survival (vertical).",
                lambda v=variant: plot_psa_increments(increments[increments["variant"] == v],
                                                      "returned_to_topical_ever",
                                                      "first_line_median_drug_survival_months", context.labels,
                                                      context.colours, context.horizon_months),
                svg)))
    parts.append(_psa_summary_html(context, summary))
    parts.append(_probability_best_html(context, tables["psa_probability_best"][1]))
    parts.append(_increment_html(context, tables["psa_increments"][1]))
    return "\n".join(parts)


def _psa_summary_html(context: _Context, summary: pd.DataFrame) -> str:
    rows = [[_e(context.variants.get(r.variant, r.variant)), _e(context.labels.get(r.strategy, r.strategy)),
             _e(metric_label(r.metric)), _value(r.metric, r.point), _value(r.metric, r.mean),
             f"{_value(r.metric, r.p2_5)} to {_value(r.metric, r.p97_5)}",
             f"{int(r.not_reached)}" if r.not_reached else ""] for r in summary.itertuples(index=False)]
    header = ["Variant", "Strategy", "Metric", "Base case", "Mean over samples", "95% interval (2.5–97.5%)",
              "Samples not reached"]
    return "<h3>Uncertainty in each outcome</h3>" + _variant_table(context, header, rows, [False] * 3 + [True] * 4)


def _probability_best_html(context: _Context, best: pd.DataFrame) -> str:
    if best.empty:
        return ""
    header = ["Variant", "Metric"] + [context.labels.get(s, s) for s in context.strategies]
    rows = []
    for (variant, metric), group in best.groupby(["variant", "metric"], sort=False):
        shares = dict(zip(group["strategy"], group["probability"]))
        rows.append([_e(context.variants.get(variant, variant)), _e(metric_label(metric))]
                    + [f"{shares[s]:.0%}" if s in shares else "—" for s in context.strategies])
    return ("<h3>Probability each strategy is best</h3>"
            + _variant_table(context, header, rows, [False, False] + [True] * len(context.strategies))
            + '<p class="muted">Share of PSA samples in which the strategy has the highest value of the metric '
            "(ties shared). For drug survival, higher means the first drug kept working for longer.</p>")


def _increment_html(context: _Context, increments: pd.DataFrame) -> str:
    if increments.empty:
        return ""
    rows = [[_e(context.variants.get(r.variant, r.variant)),
             _e(f"{context.labels.get(r.strategy, r.strategy)} − {context.labels.get(r.reference, r.reference)}"),
             _e(metric_label(r.metric)), _value(r.metric, r.mean, difference=True),
             f"{_value(r.metric, r.p2_5, difference=True)} to {_value(r.metric, r.p97_5, difference=True)}",
             f"{r.probability_higher:.0%}"] for r in increments.itertuples(index=False)]
    header = ["Variant", "Comparison", "Metric", "Mean difference", "95% interval", "Probability higher"]
    return ("<h3>Differences between strategies</h3>" + _variant_table(context, header, rows, [False] * 3 + [True] * 3)
            + '<p class="muted">Paired differences sample by sample (same patients, same parameters); '
            "pp = percentage points.</p>")


def _variant_section(context: _Context) -> str:
    grid = grid_table(context.results)
    metrics = [m for m in context.results.metrics("grid") if m in set(grid["metric"])]
    economic = [m for m in metrics if metric_description(m)[1] in ("money", "qalys", "money_per_qaly")]
    clinical = [m for m in metrics if m not in economic]
    parts = ["<h2>Per-variant results</h2><p>The base case of each variant (no parameter drawn or moved).</p>"]
    if clinical:
        parts.append(_results_table(context, grid, clinical, intervals=True)
                     + '<p class="muted">95% intervals in brackets. A dash: not estimable (median not reached).</p>')
    if economic:
        reference = context.results.reference()
        parts.append("<h3>Costs and QALYs</h3>" + _results_table(context, grid, economic, intervals=False)
                     + f'<p class="muted">Per patient, discounted. Increments and the ICER are against '
                     f"{_e(context.labels.get(reference, reference))} on the same patients; a strategy that costs "
                     "more for fewer QALYs is dominated, one that costs less for more is dominant.</p>")
    return "\n".join(parts)


def _results_table(context: _Context, grid: pd.DataFrame, metrics: list[str], intervals: bool) -> str:
    rows = []
    for (variant, strategy), group in grid.groupby(["variant", "strategy"], sort=False):
        cells = [_e(context.variants.get(variant, variant)), _e(context.labels.get(strategy, strategy))]
        values = dict(zip(group["metric"], group["value"]))
        for metric in metrics:
            row = group[group["metric"] == metric]
            if row.empty:
                cells.append("—")
            elif metric.startswith("icer_"):
                cells.append(_icer_text(grid, variant, strategy, context.results.reference(), values[metric]))
            elif intervals:
                cells.append(_value(metric, row["value"].iloc[0], row["ci_low"].iloc[0], row["ci_high"].iloc[0]))
            else:
                cells.append(_value(metric, row["value"].iloc[0]))
        rows.append(cells)
    labels = [metric_label(m, context.horizon_months) for m in metrics]
    return _variant_table(context, ["Variant", "Strategy", *labels], rows, [False, False, *[True] * len(metrics)])


def _icer_text(grid: pd.DataFrame, variant, strategy: str, reference: str, icer: float) -> str:
    """An ICER as text: the reference, dominated, dominant, or the ratio."""
    if strategy == reference:
        return "reference"
    mine = grid[(grid["variant"] == variant) & (grid["strategy"] == strategy)].set_index("metric")["value"]
    base = grid[(grid["variant"] == variant) & (grid["strategy"] == reference)].set_index("metric")["value"]
    cost = next((m for m in mine.index if m.startswith("mean_cost_total_")), None)
    if cost is not None and "mean_qalys" in mine.index and cost in base.index and "mean_qalys" in base.index:
        d_cost, d_qalys = mine[cost] - base[cost], mine["mean_qalys"] - base["mean_qalys"]
        if d_cost >= 0 and d_qalys <= 0:
            return "dominated"
        if d_cost <= 0 and d_qalys >= 0:
            return "dominant"
        if d_cost < 0:
            return f"{icer:,.0f} saved per QALY lost"
    return "—" if _missing(icer) else f"{icer:,.0f}"


def _table_links(tables: dict) -> str:
    items = "".join(f'<li><a href="tables/{_e(name)}.csv">{_e(name)}.csv</a>: {_e(text)}</li>'
                    for name, (text, _) in tables.items())
    return (f"<h2>Tables (CSV)</h2><ul>{items}<li><a href=\"sweep_summary.csv\">sweep_summary.csv</a>: every "
            "metric of every task with its parameters (PSA draws in sweep_tasks.csv; all in "
            "sweep_summary.parquet).</li></ul>")


# ------------------------------------------------------------------- format


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
 color:#222;background:#fff;margin:0;line-height:1.45}
main{max-width:1240px;margin:0 auto;padding:1.5rem 2rem 3rem}
h1{font-size:1.7rem;margin:0 0 .3rem}h2{font-size:1.3rem;margin:2.2rem 0 .6rem;
 border-bottom:2px solid #e3e3e3;padding-bottom:.2rem}h3{font-size:1.05rem;margin:1.4rem 0 .4rem}
p.lead{color:#555;margin-top:0}p.warn{color:#a33;font-weight:600}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.92rem}
th,td{border:1px solid #d9d9d9;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}tbody tr:nth-child(even){background:#fafafa}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
figure{margin:1rem 0 2rem}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#444;font-size:.92rem;margin-top:.3rem;max-width:60rem}.muted{color:#777}
table.params{table-layout:fixed;width:100%}table.params td{overflow-wrap:anywhere}
table.params td:first-child{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85rem}
table.params th:nth-child(1){width:30%}table.params th:nth-child(2){width:6%}
table.params th:nth-child(3){width:16%}table.params th:nth-child(4){width:7%}
.table-wrap{overflow-x:auto;max-width:100%}
"""


def _page(name: str, body: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>adpath sweep report: {_e(name)}</title>\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<style>{_CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n")


def _num(value) -> str:
    if isinstance(value, (int, float)) and not _missing(value):
        return f"{value:.3g}"
    return "—" if _missing(value) else str(value)


def _value(metric: str, value, low=None, high=None, difference: bool = False) -> str:
    """A metric's value as text: percentages (pp for differences) or months."""
    if _missing(value):
        return "—"
    unit = metric_description(metric)[1]

    def one(v):
        sign = "+" if difference else ""
        if unit == "proportion":
            return f"{100 * v:+.1f} pp" if difference else f"{v:.1%}"
        if unit in ("money", "money_per_qaly"):
            return f"{v:{sign},.0f}"
        if unit == "qalys":
            return f"{v:{sign}.3f}"
        return f"{v:{sign}.1f}"

    interval = "" if _missing(low) or _missing(high) else f" ({one(low)}–{one(high)})"
    return one(value) + interval


def _variant_table(context: _Context, header, rows, numeric) -> str:
    """A table whose first column names the variant; without it when there is one variant."""
    if len(context.variants) <= 1:
        header, rows, numeric = header[1:], [row[1:] for row in rows], numeric[1:]
    return _html_table(header, rows, numeric)



