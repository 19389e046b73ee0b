"""The run report: one self-contained HTML page with the figures, the headline table,
the parameters and their sources, plus the figures as PNG and the tables as CSV.

``build_report(run_dir)`` writes ``report.html``, ``figures/*.png`` (and ``*.svg`` on
request) and ``tables/*.csv`` into the run directory. The page embeds every figure as
base64 PNG, uses plain HTML and CSS, and loads nothing from the network. Runs from
older versions (no adverse-events table, manifest keys missing) still give a report;
what is missing is said on the page.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.colours import strategy_colours, treatment_colours
from analysis.differences import DEFAULT_METRICS, strategy_differences
from analysis.html import Figure as _Figure
from analysis.html import escape as _e
from analysis.html import figure_html
from analysis.html import html_table as _html_table
from analysis.html import is_missing as _missing
from analysis.io import Run, load_run, write_atomic
from analysis.outcomes import (
    adverse_event_rates,
    adverse_event_rates_on_treatment,
    lines_used,
    outcome_columns,
    topical_return,
    topical_return_at_horizon,
)
from analysis.report_sections import care_section, economics_section, validation_section, workup_section
from analysis.plots import (
    discontinuation_plot_times,
    plot_discontinuation_reasons,
    plot_drug_survival,
    plot_state_occupancy,
    plot_topical_return_at_horizon,
    plot_topical_return_over_time,
    save_figure,
)
from analysis.states import follow_up_ended, horizon_of, monthly_grid, state_counts, state_occupancy
from analysis.summary import summarize_run
from analysis.intervals import z_value
from analysis.survival import (
    cause_codes,
    cumulative_incidence,
    drug_survival,
    drug_survival_in_parts,
    episode_durations,
    estimates_at,
    event_reasons,
    group_ids,
    median_survival,
    survival_at,
)
from sim.tables import REPORT_TIMES_MONTHS

NOT_RECORDED = "not recorded"


@dataclass(frozen=True)
class ReportTable:
    """A table the report links to: its file name, what it holds, and the data."""

    name: str
    description: str
    frame: pd.DataFrame


def build_report(run_dir: str | os.PathLike, svg: bool = False, summary: pd.DataFrame | None = None,
                 run: Run | None = None) -> Path:
    """Write the HTML report of a run, with its figures and tables.

    Parameters
    ----------
    run_dir : path-like
        A run directory (``episodes.parquet``, ``patients.parquet``; ``run.json`` and
        ``adverse_events.parquet`` used when present); the report is written into it.
    svg : bool
        Also write every figure as SVG in ``figures/``.
    summary : pandas.DataFrame, optional
        ``summarize_run`` of the run's tables, when the caller already has it (``adpath
        run --report``); computed from the tables otherwise.
    run : analysis.io.Run, optional
        The run's tables and manifest, when the caller holds them in memory (``adpath run
        --report``): nothing is read back from ``run_dir`` then but the economics CSVs.

    Returns
    -------
    pathlib.Path
        Path of ``report.html``.
    """
    run = load_run(run_dir) if run is None else replace(run, run_dir=Path(run_dir))
    context = _Context.of(run)
    summary = summarize_run(run.episodes, run.patients) if summary is None else summary
    # The paired differences first: the patient outcomes they need are freed before the
    # drug-survival curves are made (at a million patients each takes half a gigabyte).
    differences = _differences(run.patients, context)
    shared = _Shared.of(run, context)
    tables = _tables(run, context, summary, shared, differences)
    figures = _figures(run, context, svg, shared)
    extra_sections = []
    pathway_html = _pathway_figure(run, context, svg)
    for section in (care_section, workup_section, validation_section, economics_section):
        html_part, _, section_tables = section(run, context, _renderer(run.run_dir, svg))
        extra_sections.append(html_part)
        tables += section_tables
    for table in tables:
        write_atomic(run.run_dir / "tables" / f"{table.name}.csv", table.frame.to_csv(index=False))
    page = _page(run, context, summary, figures, tables, extra_sections, pathway_html)
    return write_atomic(run.run_dir / "report.html", page)


# ------------------------------------------------------------------ context


@dataclass(frozen=True)
class _Context:
    """Names, labels and colours of a run, from the manifest or, failing that, the tables."""

    strategies: list[str]
    treatments: list[str]
    labels: dict[str, str]
    pathways: dict[str, list[str]]
    horizon_months: float
    strategy_colours: dict
    treatment_colours: dict
    ended_early: float = 0.0  # share of patients whose follow-up ended before the horizon (not lost, not dead)

    @classmethod
    def of(cls, run: Run) -> _Context:
        manifest = run.manifest
        strategies = _ordered(manifest.get("strategies"), run.patients["strategy"])
        treatments = _ordered(manifest.get("treatments"), run.episodes["treatment"])
        labels = {name: name.replace("_", " ") for name in strategies + treatments}
        for key in ("strategies", "treatments"):
            for name, info in (manifest.get(key) or {}).items():
                if isinstance(info, Mapping) and info.get("label"):
                    labels[name] = str(info["label"])
        pathways = {s: _pathway(manifest, run.episodes, s) for s in strategies}
        horizon = manifest.get("horizon_months") or horizon_of(run.patients)
        return cls(
            strategies,
            treatments,
            labels,
            pathways,
            float(horizon),
            strategy_colours(strategies),
            treatment_colours(treatments),
            _ended_early(run.patients),
        )


def _ended_early(patients: pd.DataFrame) -> float:
    """Share of patients whose follow-up ended before the horizon, neither lost nor dead."""
    ended = follow_up_ended(patients)
    return float(ended.mean()) if len(ended) else 0.0


def _ordered(declared, column: pd.Series) -> list[str]:
    """Names in the manifest's declared order, then any others found in the table."""
    names = list(declared) if isinstance(declared, Mapping) else []
    if isinstance(column.dtype, pd.CategoricalDtype):
        found = list(column.cat.categories)
    else:
        found = sorted(column.astype(object).dropna().unique())
    return names + [n for n in found if n not in names]


def _pathway(manifest: dict, episodes: pd.DataFrame, strategy: str) -> list[str]:
    info = (manifest.get("strategies") or {}).get(strategy)
    if isinstance(info, Mapping) and info.get("lines"):
        return [str(t) for t in info["lines"]]
    # Older manifests: the most frequent treatment of each line in the episodes.
    mine = episodes[episodes["strategy"].astype(object) == strategy]
    if mine.empty:
        return []
    counts = mine.groupby(["line", mine["treatment"].astype(object)], observed=True).size()
    return [counts.loc[line].idxmax() for line in sorted(counts.index.get_level_values(0).unique())]


# ------------------------------------------------------------------ figures


@dataclass(frozen=True)
class _Shared:
    """The estimates shown both as a figure and as a table, computed once (each is a pass
    over every episode or patient: about 0.3-0.6 s at 100,000 patients)."""

    drug_survival: pd.DataFrame
    topical_return: pd.DataFrame
    state_occupancy: pd.DataFrame
    topical_return_at_horizon: pd.DataFrame
    incidence_monthly: pd.DataFrame  # reasons for stopping at every month (the table)
    incidence_plotted: pd.DataFrame  # the same at the figure's times

    @classmethod
    def of(cls, run: Run, context: _Context) -> _Shared:
        grid = monthly_grid(context.horizon_months)
        # One count of every state at every month serves both the topical-return curve and
        # the state occupancy (each a pass over every episode).
        counts = state_counts(run.episodes, run.patients, grid)
        monthly, plotted = _incidence_at(run.episodes, grid, discontinuation_plot_times(
            _episode_axis_months(run.episodes, context.horizon_months)))
        topical = topical_return(run.episodes, run.patients, grid, counts=counts)
        occupancy = state_occupancy(run.episodes, run.patients, grid, counts=counts)
        del counts
        at_horizon = topical_return_at_horizon(run.patients)
        # The curves last: what came before is freed by then, and they are the largest.
        return cls(_drug_survival_curves(run.episodes), topical, occupancy, at_horizon, monthly, plotted)


#: The columns of the drug-survival curves the report reads (tables and figure).
_CURVE_COLUMNS = ["strategy", "treatment", "time_months", "at_risk", "censored", "survival", "ci_low", "ci_high"]


def _drug_survival_curves(episodes: pd.DataFrame) -> pd.DataFrame:
    """`drug_survival(episodes)` (by strategy and treatment) with the columns the report reads,
    made one strategy at a time (`drug_survival_in_parts`): the intermediate tables of every
    episode at once were the report's peak memory (about 1.5 GB at a million patients)."""
    return drug_survival_in_parts(episodes, columns=_CURVE_COLUMNS[2:])


def _incidence_at(episodes: pd.DataFrame, *times: np.ndarray) -> list[pd.DataFrame]:
    """`cumulative_incidence` by treatment at each of the sets of `times` (months), from one
    Aalen–Johansen pass at all of them (a pass over every episode: about a second at a
    million patients); an estimate at a time does not depend on the other times asked."""
    every = np.unique(np.concatenate(times))
    incidence = cumulative_incidence(episodes, by="treatment", times_months=every)
    at = incidence["time_months"].to_numpy()
    return [incidence[np.isin(at, wanted)].reset_index(drop=True) for wanted in times]


def _as_categories(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """The `by` columns of `frame`, integer ones as categoricals of their values: grouped by
    codes as pandas' grouper would group them (sorted, observed only), several times faster."""
    columns = {}
    for name in by:
        column = frame[name]
        if pd.api.types.is_integer_dtype(column.dtype) and len(column):
            values = column.to_numpy()
            low = int(values.min())
            categories = pd.Index(np.arange(low, int(values.max()) + 1, dtype=values.dtype))
            column = pd.Categorical.from_codes((values - low).astype(np.int64), categories=categories)
        columns[name] = column
    return pd.DataFrame(columns, index=frame.index, copy=False)


def _medians_by(episodes: pd.DataFrame, by: list[str], confidence: float = 0.95) -> pd.DataFrame:
    """`median_survival(drug_survival(episodes, by=by))` with ``subjects`` named ``episodes``,
    from one walk over the sorted durations instead of the table of every time."""
    group, keys = group_ids(_as_categories(episodes, by), by)
    cause = np.where(cause_codes(episodes["reason"], event_reasons()) >= 0, 0, -1)
    at = estimates_at(episode_durations(episodes), cause, group, 1, [], z_value(confidence), incidence=False)
    frame = keys.take(at["group"]).reset_index(drop=True)
    for name, column in (("episodes", "subjects"), ("median_months", "median_months"),
                         ("ci_low_months", "median_ci_low"), ("ci_high_months", "median_ci_high")):
        frame[name] = at[column]
    return frame


def _figures(run: Run, context: _Context, svg: bool, shared: _Shared) -> list[_Figure]:
    episodes, patients, labels = run.episodes, run.patients, context.labels
    specs = [
        (
            "drug_survival",
            "Drug survival by treatment",
            "Kaplan–Meier estimate of the proportion of treatment episodes still running, by "
            "strategy and treatment, with 95% log–log bands; ticks mark censored episodes "
            "(still on treatment at the end of observation, or lost to follow-up). Any discontinuation "
            "(non-response, adverse event, loss of response, remission, switch) is an event.",
            lambda: plot_drug_survival(
                shared.drug_survival,
                labels=labels,
                colours=context.treatment_colours,
                max_months=_episode_axis_months(episodes, context.horizon_months),
                pathways=context.pathways,
            ),
        ),
        (
            "discontinuation_reasons",
            "Why treatment stopped",
            "Cumulative incidence of each reason for stopping, as competing risks "
            "(Aalen–Johansen), all strategies pooled; the grey remainder is still on treatment.",
            lambda: plot_discontinuation_reasons(
                shared.incidence_plotted,
                labels=labels,
                max_months=_episode_axis_months(episodes, context.horizon_months),
            ),
        ),
        (
            "topical_return_at_horizon",
            "Return to topical therapy at the horizon",
            "Proportion of all patients of each strategy who ever returned to topical therapy, "
            "and who were on topical therapy at the horizon, with 95% intervals.",
            lambda: plot_topical_return_at_horizon(
                shared.topical_return_at_horizon,
                labels=labels,
                colours=context.strategy_colours,
                horizon_months=context.horizon_months,
            ),
        ),
        (
            "topical_return_over_time",
            "Return to topical therapy over time",
            "Left: proportion who had returned to topical therapy at least once by month t. "
            "Right: proportion on topical therapy at month t. Bands are 95% intervals.",
            lambda: plot_topical_return_over_time(
                shared.topical_return,
                labels=labels,
                colours=context.strategy_colours,
            ),
        ),
        (
            "state_occupancy",
            "Where patients are over time",
            "Proportion of patients on each line of systemic therapy, back on topical therapy, "
            "in supportive care (strategy exhausted) or lost to follow-up, month by month. A patient "
            "whose observation ended before the horizon (a personal follow-up, or an age limit such "
            "as a child's 18th birthday) is shown under \"Follow-up ended\" from then on.",
            lambda: plot_state_occupancy(shared.state_occupancy, labels=labels),
        ),
    ]
    return [
        _render(run.run_dir, name, title, caption, draw, svg)
        for name, title, caption, draw in specs
    ]


def _pathway_figure(run: Run, context: _Context, svg: bool) -> str:
    """The pathway diagram drawn from the manifest's strategies (empty for older runs)."""
    from analysis.pathway_diagram import plot_pathways

    declared = (run.manifest.get("scenario") or {}).get("strategies") or run.manifest.get("strategies") or {}
    strategies = {s: declared[s] for s in context.strategies if isinstance(declared.get(s), Mapping)
                  and declared[s].get("lines")}
    if not strategies:
        return ""
    figure = _render(run.run_dir, "pathways", "Treatment pathways",
                     "Each strategy's lines of systemic therapy in order, with its rules, as simulated.",
                     lambda: plot_pathways(strategies, context.labels), svg)
    return figure_html(figure)


def _episode_axis_months(episodes: pd.DataFrame, horizon_months: float) -> float:
    """Right end of a time-on-treatment axis: the horizon, or on long horizons the time by
    which 99% of episodes had ended, rounded up to whole years (lifetime axes were empty
    past the first few years)."""
    if horizon_months <= 120 or episodes.empty:
        return horizon_months
    lengths = (episodes["stop"] - episodes["start"]).to_numpy(float)
    return float(min(horizon_months, max(12.0, 12.0 * math.ceil(float(np.quantile(lengths, 0.99)) / 12.0))))


def _renderer(run_dir: Path, svg: bool) -> Callable:
    """A function that draws, saves and returns one figure of this run."""

    def render(name: str, title: str, caption: str, draw: Callable) -> _Figure:
        return _render(run_dir, name, title, caption, draw, svg)

    return render


def _render(
    run_dir: Path, name: str, title: str, caption: str, draw: Callable, svg: bool
) -> _Figure:
    figure = draw()
    png_path = save_figure(figure, run_dir / "figures" / f"{name}.png", svg=svg)[0]
    return _Figure(name, title, caption, png_path.read_bytes())


# ------------------------------------------------------------------- tables


def _differences(patients: pd.DataFrame, context: _Context) -> pd.DataFrame:
    """`strategy_differences` of the patients' outcomes against the first strategy, from the
    keys and compared columns alone (the outcomes of first response are not compared)."""
    columns = outcome_columns(patients)
    outcomes = patients[["replicate", "strategy", "patient"]].assign(**{m: columns[m] for m in DEFAULT_METRICS})
    del columns
    return strategy_differences(outcomes, reference=context.strategies[0] if context.strategies else None)


def _tables(run: Run, context: _Context, summary: pd.DataFrame, shared: _Shared,
            differences: pd.DataFrame) -> list[ReportTable]:
    episodes, patients = run.episodes, run.patients
    grid = monthly_grid(context.horizon_months)
    curve = shared.drug_survival
    months = {"ci_low": "ci_low_months", "ci_high": "ci_high_months"}
    rates = {"ci_low": "ci_low_per_100_patient_years", "ci_high": "ci_high_per_100_patient_years"}
    tables = [
        ReportTable("summary", "Headline metrics in long form (as summary.csv).", summary),
        ReportTable(
            "drug_survival_monthly",
            "Drug survival by strategy and treatment at every month (any discontinuation).",
            survival_at(curve, grid).rename(columns={"at_risk": "at_risk_episodes"}),
        ),
        ReportTable(
            "median_drug_survival",
            "Median drug survival by strategy and treatment, months (NaN: not reached).",
            median_survival(curve).rename(columns={"subjects": "episodes", **months}),
        ),
        ReportTable(
            "median_drug_survival_by_line",
            "Median drug survival by strategy and line of therapy, months.",
            _medians_by(episodes, ["strategy", "line"]),
        ),
        ReportTable(
            "discontinuation_reasons_monthly",
            "Cumulative incidence of each reason for stopping, by treatment (all strategies).",
            shared.incidence_monthly,
        ),
        ReportTable(
            "topical_return_monthly",
            "Ever returned to topical therapy by month t, and on topical therapy at month t.",
            shared.topical_return,
        ),
        ReportTable(
            "topical_return_at_horizon",
            "Ever returned to topical therapy, and on topical therapy at the horizon.",
            shared.topical_return_at_horizon,
        ),
        ReportTable(
            "state_occupancy_monthly",
            "Proportion of patients in each state at every month.",
            shared.state_occupancy,
        ),
        ReportTable("lines_used", "Number of lines of therapy used per patient.", lines_used(patients)),
        ReportTable(
            "adverse_event_rates",
            "Adverse events per 100 patient-years of follow-up, by strategy and type.",
            adverse_event_rates(patients, run.adverse_events, episodes).rename(columns=rates),
        ),
        ReportTable(
            "adverse_event_rates_by_treatment",
            "Adverse events per 100 patient-years on treatment, by treatment and type.",
            adverse_event_rates_on_treatment(run.adverse_events, episodes).rename(columns=rates),
        ),
        ReportTable(
            "strategy_differences",
            "Differences from the first strategy, paired on the same virtual patients.",
            differences,
        ),
    ]
    parameters = run.manifest.get("parameters")
    if isinstance(parameters, list) and parameters:
        tables.append(
            ReportTable(
                "parameters",
                "Every parameter of the scenario with its source.",
                _parameter_frame(parameters),
            )
        )
    return tables


def _parameter_frame(parameters: list) -> pd.DataFrame:
    rows = []
    for item in parameters:
        item = item if isinstance(item, Mapping) else {"path": str(item)}
        value = item.get("value")
        rows.append(
            {
                "path": str(item.get("path", "")),
                "value": value
                if isinstance(value, (int, float, str)) or value is None
                else json.dumps(value, sort_keys=True),
                "source": str(item.get("source", "")) or NOT_RECORDED,
            }
        )
    return pd.DataFrame(rows, columns=["path", "value", "source"])


# --------------------------------------------------------------------- page


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
 color:#222;background:#fff;margin:0;line-height:1.45}
main{max-width:1240px;margin:0 auto;padding:1.5rem 2rem 3rem}
h1{font-size:1.7rem;margin:0 0 .3rem}h2{font-size:1.3rem;margin:2.2rem 0 .6rem;
 border-bottom:2px solid #e3e3e3;padding-bottom:.2rem}h3{font-size:1.05rem;margin:1.4rem 0 .4rem}
p.lead{color:#555;margin-top:0}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.92rem}
th,td{border:1px solid #d9d9d9;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}tbody tr:nth-child(even){background:#fafafa}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
figure{margin:1rem 0 2rem}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#444;font-size:.92rem;margin-top:.3rem;max-width:60rem}
.pathway{font-weight:600}.muted{color:#777}.swatch{display:inline-block;width:.8em;height:.8em;
 border-radius:2px;margin-right:.35em;vertical-align:-.05em}
table.params{width:100%}table.params td:nth-child(1){width:30%;word-break:break-word}
table.params td:nth-child(2){width:22%;font-family:ui-monospace,Menlo,Consolas,monospace;
 font-size:.85rem}
.table-wrap{overflow-x:auto;max-width:100%}
p.warn{background:#fff4e5;border-left:4px solid #e69500;padding:.5rem .8rem}
"""


def percent_text(value, low, high) -> str:
    """A proportion as a percentage with its interval in brackets ("—" when missing)."""
    if _missing(value):
        return "—"
    interval = "" if _missing(low) else f" ({low:.1%}–{high:.1%})"
    return f"{value:.1%}{interval}"


def number_text(value, low, high, unit: str = "", missing: str = "—") -> str:
    """A number in `unit` with its interval in brackets; `missing` when there is none."""
    if _missing(value):
        return missing
    present = [v for v in (value, low, high) if not _missing(v)]
    # Two decimals where one would round a small mean or difference to 0.0.
    digits = 2 if max(abs(v) for v in present) < 10 else 1

    def fmt(v):
        # + 0.0 turns the -0.0 that rounding a tiny negative gives into 0.0 ("−0.00" read as a sign).
        return f"{round(v, digits) + 0.0:.{digits}f}".replace("-", "\u2212")

    # "to" rather than a dash, which would read as a minus next to negative numbers.
    if _missing(low):
        interval = ""
    elif _missing(high):
        interval = f" ({fmt(low)} to not reached)"
    else:
        interval = f" ({fmt(low)} to {fmt(high)})"
    return f"{fmt(value)}{unit}{interval}"


def _page(
    run: Run,
    context: _Context,
    summary: pd.DataFrame,
    figures: list[_Figure],
    tables: list[ReportTable],
    extra_sections: Sequence[str] = (),
    pathway_html: str = "",
) -> str:
    manifest = run.manifest
    name = manifest.get("scenario_name") or run.run_dir.name
    sections = [
        f"<h1>adpath report: {_e(name)}</h1>",
        f'<p class="lead">{_e(manifest.get("description") or "")}</p>',
        _run_section(run, context),
        pathway_html,
        _headline_section(context, summary),
        _differences_section(context, tables),
        _figure_section(figures),
        _drug_survival_section(context, summary),
        _adverse_event_section(context, tables, run.adverse_events is None),
        *extra_sections,
        _parameter_section(manifest),
        _table_links(tables),
    ]
    body = "\n".join(s for s in sections if s)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>adpath report: {_e(name)}</title>\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<style>{_CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def _age_limit(manifest: Mapping) -> list[tuple[str, str]]:
    """The row saying at which age observation ends, when the scenario sets one."""
    population = (manifest.get("scenario") or {}).get("population") or {}
    limit = population.get("observed_until_age") if isinstance(population, Mapping) else None
    if not isinstance(limit, Mapping) or limit.get("age") is None:
        return []
    covariate = limit.get("age_covariate", "age_years")
    return [("Observation ends at age", f"{limit['age']} (covariate {covariate}), if before the horizon")]


def _run_section(run: Run, context: _Context) -> str:
    m = run.manifest
    patients = run.patients
    per_replicate = m.get("patients") or int(
        patients.groupby(["strategy", "replicate"], observed=True).size().max()
    )
    replicates = m.get("replicates") or int(patients["replicate"].nunique())
    wall = m.get("wall_time_seconds")
    facts = [
        ("Scenario", m.get("scenario_name")),
        ("Scenario file", m.get("scenario_file")),
        ("Scenario hash", m.get("scenario_hash")),
        ("Patients per strategy and replicate", f"{per_replicate:,}"),
        ("Replicates", replicates),
        ("Horizon", _horizon_text(context.horizon_months)),
        *_age_limit(m),
        ("Seed", m.get("seed")),
        ("Engine", m.get("engine")),
        ("adpath version", m.get("adpath_version")),
        ("Started at", m.get("started_at")),
        ("Wall time", None if wall is None else f"{float(wall):.1f} s"),
        ("Run directory", run.run_dir.name),
    ]
    rows = [[_e(k), _e(NOT_RECORDED) if v is None or v == "" else _e(v)] for k, v in facts]
    strategies = []
    for s in context.strategies:
        info = (m.get("strategies") or {}).get(s) or {}
        description = info.get("description", "") if isinstance(info, Mapping) else ""
        pathway = " → ".join(context.labels.get(t, t) for t in context.pathways[s])
        colour = _css_colour(context.strategy_colours[s])
        strategies.append(
            [
                f'<span class="swatch" style="background:{colour}"></span>{_e(context.labels[s])}',
                f'<span class="pathway">{_e(pathway) or _e(NOT_RECORDED)}</span>',
                _e(description),
            ]
        )
    versions = m.get("versions") or {}
    version_text = (
        ", ".join(f"{_e(k)} {_e(v)}" for k, v in sorted(versions.items())) or NOT_RECORDED
    )
    return (
        "<h2>What was run</h2>"
        + _html_table(["Item", "Value"], rows, [False, False])
        + "<h3>Strategies</h3>"
        + _html_table(
            ["Strategy", "Pathway (lines in order)", "Description"],
            strategies,
            [False, False, False],
        )
        + f'<p class="muted">Package versions: {version_text}.</p>'
    )


def _horizon_text(months: float) -> str:
    """`60 years (720 months)` for whole years, `18 months` otherwise."""
    if months >= 12 and abs(months / 12 - round(months / 12)) < 1e-9:
        return f"{months / 12:g} years ({months:g} months)"
    return f"{months:g} months"


def _css_colour(rgb) -> str:
    return "#" + "".join(f"{int(round(c * 255)):02x}" for c in rgb[:3])


def _metric(summary: pd.DataFrame, strategy: str, metric: str, treatment=None) -> tuple:
    rows = summary[(summary["strategy"] == strategy) & (summary["metric"] == metric)]
    rows = (
        rows[rows["treatment"].isna()]
        if treatment is None
        else rows[rows["treatment"] == treatment]
    )
    if rows.empty:
        return (math.nan, math.nan, math.nan)
    row = rows.iloc[0]
    return (row["value"], row["ci_low"], row["ci_high"])


def _headline_section(context: _Context, summary: pd.DataFrame) -> str:
    rows = []
    for s in context.strategies:
        n = _metric(summary, s, "patients_n")[0]
        if _missing(n):
            continue
        rows.append(
            [
                _e(context.labels[s]),
                f"{int(n):,}",
                percent_text(*_metric(summary, s, "returned_to_topical_ever")),
                percent_text(*_metric(summary, s, "on_topical_at_horizon")),
                number_text(
                    *_metric(summary, s, "first_line_median_drug_survival_months"),
                    missing="not reached",
                ),
                number_text(*_metric(summary, s, "lines_used_mean")),
            ]
        )
    header = [
        "Strategy",
        "Patients",
        "Ever returned to topical therapy",
        "On topical therapy at the end of observation" if context.ended_early
        else f"On topical therapy at {context.horizon_months:g} months",
        "Median drug survival of the first line (months)",
        "Mean lines of therapy used",
    ]
    ended = (
        f" The follow-up of {context.ended_early:.0%} of the patients ended before the horizon "
        f"({context.horizon_months:g} months; an age limit or a personal follow-up): their state is "
        "the one at the end of their follow-up."
        if context.ended_early else ""
    )
    return (
        "<h2>Headline results</h2>"
        + _html_table(header, rows, [False, True, True, True, True, True])
        + '<p class="muted">95% intervals in brackets: Wilson intervals within one replicate, '
        "mean ± t·SE across replicates when there are several; drug survival from "
        f"Kaplan–Meier with log–log bands. Denominators are all patients of the strategy.{_e(ended)}</p>"
    )


def _differences_section(context: _Context, tables: list[ReportTable]) -> str:
    frame = next((t.frame for t in tables if t.name == "strategy_differences"), None)
    if frame is None or frame.empty:
        return ""
    names = {
        "returned_to_topical_ever": ("Ever returned to topical therapy", "pp"),
        "on_topical_at_horizon": ("On topical therapy at the end of follow-up", "pp"),
        "lines_used": ("Lines of therapy used", ""),
        "months_systemic": ("Months on systemic therapy", " mo"),
        "months_topical": ("Months on topical therapy", " mo"),
        "months_supportive_care": ("Months in supportive care", " mo"),
    }
    rows = []
    for r in frame.itertuples(index=False):
        label, unit = names.get(r.metric, (r.metric, ""))
        scale = 100.0 if unit == "pp" else 1.0
        value = number_text(r.difference * scale, r.ci_low * scale, r.ci_high * scale, unit)
        rows.append(
            [
                _e(context.labels.get(r.strategy, r.strategy)),
                _e(context.labels.get(r.reference, r.reference)),
                _e(label),
                value,
            ]
        )
    return (
        "<h3>Differences between strategies</h3>"
        + _html_table(
            ["Strategy", "Compared with", "Outcome", "Difference (95% CI)"],
            rows,
            [False, False, False, True],
        )
        + '<p class="muted">Paired on the same virtual patients (common random numbers), '
        "so the interval is that of the difference itself; pp = percentage points.</p>"
    )


def _figure_section(figures: list[_Figure]) -> str:
    parts = ["<h2>Figures</h2>"]
    for f in figures:
        parts.append(figure_html(f))
    return "\n".join(parts)


def _drug_survival_section(context: _Context, summary: pd.DataFrame) -> str:
    rows = []
    for s in context.strategies:
        treatments = summary[(summary["strategy"] == s) & summary["treatment"].notna()]
        for t in dict.fromkeys(treatments["treatment"]):
            rows.append(
                [
                    _e(context.labels[s]),
                    _e(context.labels.get(t, t)),
                    f"{int(_metric(summary, s, 'episodes_n', t)[0]):,}",
                    *(
                        percent_text(*_metric(summary, s, f"drug_survival_{m}m", t))
                        for m in map(int, REPORT_TIMES_MONTHS)
                    ),
                    number_text(
                        *_metric(summary, s, "median_drug_survival_months", t),
                        missing="not reached",
                    ),
                    percent_text(*_metric(summary, s, "discontinued_adverse_event_12m", t)),
                ]
            )
    header = [
        "Strategy",
        "Treatment",
        "Episodes",
        "On treatment at 12 months",
        "at 24 months",
        "at 36 months",
        "Median (months)",
        "Stopped for an adverse event by 12 months",
    ]
    return (
        "<h2>Drug survival by treatment</h2>"
        + _html_table(header, rows, [False, False] + [True] * 6)
        + '<p class="muted">"Stopped for an adverse event" is a cumulative incidence with the '
        "other reasons as competing risks (not 1 − Kaplan–Meier). A dash: not estimable "
        "(no episode followed that long).</p>"
    )


def _adverse_event_section(context: _Context, tables: list[ReportTable], no_table: bool) -> str:
    frame = next(t.frame for t in tables if t.name == "adverse_event_rates")
    types = list(dict.fromkeys(frame["adverse_event"].astype(object)))
    rows = []
    for ae in types:
        cells = [_e(ae.replace("_", " ").capitalize() if ae != "any_adverse_event" else "Any")]
        for s in context.strategies:
            r = frame[
                (frame["strategy"].astype(object) == s)
                & (frame["adverse_event"].astype(object) == ae)
            ]
            cells.append(
                "—"
                if r.empty
                else number_text(
                    r["rate_per_100_patient_years"].iloc[0],
                    r["ci_low_per_100_patient_years"].iloc[0],
                    r["ci_high_per_100_patient_years"].iloc[0],
                )
            )
        rows.append(cells)
    note = (
        (
            " This run has no adverse-events table (an older run), so only the total count "
            "per episode is shown."
        )
        if no_table
        else ""
    )
    return (
        "<h2>Adverse events</h2>"
        + _html_table(
            ["Adverse event"] + [context.labels[s] for s in context.strategies],
            rows,
            [False] + [True] * len(context.strategies),
        )
        + f'<p class="muted">Events per 100 patient-years of follow-up, exact Poisson 95% '
        f"intervals.{note}</p>"
    )


def _parameter_section(manifest: dict) -> str:
    parameters = manifest.get("parameters")
    if not isinstance(parameters, list) or not parameters:
        return (
            "<h2>Parameters</h2><p>The manifest of this run has no parameter table "
            f"({NOT_RECORDED}).</p>"
        )
    frame = _parameter_frame(parameters)
    rows = [[_e(r.path), _e(r.value), _e(r.source)] for r in frame.itertuples(index=False)]
    return (
        "<h2>Parameters</h2><p>Every value the scenario used, with its source.</p>"
        + _html_table(["Parameter", "Value", "Source"], rows, [False, False, False], "params")
    )


def _table_links(tables: list[ReportTable]) -> str:
    items = "".join(
        f'<li><a href="tables/{_e(t.name)}.csv">{_e(t.name)}.csv</a>: {_e(t.description)}</li>'
        for t in tables
    )
    return f"<h2>Tables (CSV)</h2><ul>{items}</ul>"
