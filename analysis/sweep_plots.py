"""Figures of a parameter sweep: tornado diagrams, PSA distributions and incremental
scatters, and the grid's metric-versus-parameter lines.

Every function takes the tidy tables of ``analysis.sweep_summary`` and returns a
matplotlib ``Figure`` on the Agg canvas (no display, no pyplot state), styled like the
run figures of ``analysis.plots``. Strategy colours come from ``analysis.colours``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

from analysis.sweep_summary import KEY_METRICS, metric_description

_DPI = 110
_LOW_COLOUR = "#0072b2"
_HIGH_COLOUR = "#e69f00"
_MAX_TORNADO_BARS = 15
_PANELS_PER_ROW = 4


def _style() -> dict:
    style = sns.axes_style("whitegrid", {"grid.color": "#e6e6e6"})
    context = sns.plotting_context("notebook", font_scale=0.85)
    return {**style, **context, "axes.titleweight": "bold", "figure.titleweight": "bold",
            "figure.titlesize": 13, "legend.frameon": True, "legend.framealpha": 0.9}


def _figure(width_in: float, height_in: float) -> Figure:
    figure = Figure(figsize=(width_in, height_in), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def metric_label(metric: str, horizon_months: float | None = None) -> str:
    """The words a figure shows for a metric, with its unit."""
    label, unit = metric_description(metric)
    if metric == "on_topical_at_horizon" and horizon_months:
        label = f"On topical therapy at {horizon_months:g} months"
    return f"{label} (months)" if unit == "months" else label


def _format_axis(axis, metric: str, which: str = "x", difference: bool = False) -> None:
    scale = getattr(axis, f"{which}axis")
    scale.set_major_locator(MaxNLocator(nbins=6))
    unit = metric_description(metric)[1]
    if unit == "proportion":
        scale.set_major_formatter(PercentFormatter(1.0, decimals=None, symbol=" pp" if difference else "%"))
    elif unit in ("money", "money_per_qaly"):
        scale.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))


def shown_metrics(table: pd.DataFrame, metrics: Sequence[str] | None = None) -> list[str]:
    """The metrics a figure draws: `metrics` (in that order) or the key metrics, those in `table`."""
    present = set(table["metric"])
    return [m for m in (metrics if metrics is not None else KEY_METRICS) if m in present]


def plot_tornado(one_way: pd.DataFrame, metric: str, strategies: Sequence[str], labels: Mapping[str, str],
                 parameter_labels: Mapping[str, str], horizon_months: float | None = None,
                 parameter_units: Mapping[str, str] | None = None) -> Figure:
    """Tornado diagram of one metric: a panel per strategy, a bar per one-way parameter.

    Parameters
    ----------
    one_way : DataFrame
        ``analysis.sweep_summary.one_way_table`` for one variant.
    metric : str
        The metric shown.
    strategies : sequence of str
        Strategies in panel order.
    labels, parameter_labels, parameter_units : mapping
        Display names of strategies, and names and units of parameters (by their path).

    Notes
    -----
    Each bar spans the metric at the parameter's low value (blue) and at its high value
    (orange) around the base case (the vertical line). Parameters are in one order for
    every panel, by their largest swing over the strategies, the largest on top; at most
    15 are shown.
    """
    rows = one_way[one_way["metric"] == metric]
    order = (rows.groupby("parameter")["swing"].max().sort_values(ascending=False, kind="stable")
             .index[:_MAX_TORNADO_BARS].tolist())
    names = [_tornado_label(rows, p, parameter_labels, parameter_units or {}) for p in order]
    with matplotlib.rc_context(_style()):
        figure = _figure(2.9 + 3.9 * len(strategies), 0.5 * max(len(order), 1) + 1.6)
        axes = np.atleast_1d(figure.subplots(1, len(strategies), sharey=True, squeeze=False)).ravel()
        for axis, strategy in zip(axes, strategies):
            mine = rows[rows["strategy"] == strategy].set_index("parameter").reindex(order)
            _tornado_panel(axis, mine, metric)
            axis.set_title(labels.get(strategy, strategy))
        axes[0].set_yticks(np.arange(len(order)), names, fontsize=8)
        axes[0].invert_yaxis()  # the largest swing on top
        handles = [_patch(_LOW_COLOUR, "parameter at its low value"),
                   _patch(_HIGH_COLOUR, "parameter at its high value")]
        figure.legend(handles=handles, loc="outside lower center", ncols=2)
        figure.suptitle(f"One-way sensitivity: {metric_label(metric, horizon_months)}")
    return figure


def _tornado_label(rows: pd.DataFrame, parameter: str, names: Mapping[str, str], units: Mapping[str, str]) -> str:
    first = rows[rows["parameter"] == parameter].iloc[0]
    unit = {"months": " months", "per_year": " a year"}.get(units.get(parameter, ""), "")
    name = textwrap.fill(names.get(parameter, parameter), 34)
    return f"{name}\n({_setting(first['low_setting'])} to {_setting(first['high_setting'])}{unit})"


def _tornado_panel(axis, rows: pd.DataFrame, metric: str) -> None:
    base = rows["base"].dropna().iloc[0] if rows["base"].notna().any() else np.nan
    for position, (low, high) in enumerate(zip(rows["at_low"], rows["at_high"])):
        for value, colour in ((low, _LOW_COLOUR), (high, _HIGH_COLOUR)):
            if not (np.isnan(value) or np.isnan(base)):
                axis.barh(position, value - base, left=base, color=colour, height=0.62, alpha=0.9)
    if not np.isnan(base):
        axis.axvline(base, color="#333333", linewidth=1)
    axis.grid(axis="y", visible=False)
    axis.set_xlabel(metric_label(metric))
    _format_axis(axis, metric)
    if rows.empty or rows[["at_low", "at_high"]].isna().all().all():
        axis.text(0.5, 0.5, "not estimable\n(median not reached)", ha="center", va="center",
                  transform=axis.transAxes, color="#777777")


def _setting(value) -> str:
    if isinstance(value, (int, float, np.floating)) and not np.isnan(value):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return str(value)


def _patch(colour: str, label: str):
    from matplotlib.patches import Patch

    return Patch(facecolor=colour, label=label)


def plot_psa_distributions(samples: pd.DataFrame, table: pd.DataFrame, strategies: Sequence[str],
                           labels: Mapping[str, str], colours: Mapping[str, tuple],
                           horizon_months: float | None = None, metrics: Sequence[str] | None = None) -> Figure:
    """Distribution over PSA samples of each key metric (or of `metrics`), per strategy (one variant).

    Parameters
    ----------
    samples : DataFrame
        ``analysis.sweep_summary.psa_samples`` for one variant.
    table : DataFrame
        ``analysis.sweep_summary.psa_table`` for the same variant (its ``point`` column
        marks the deterministic base case).

    Notes
    -----
    Histograms (density) of each strategy's values across samples; the dashed line is
    the deterministic base case, the solid tick under the axis the 95% interval.
    """
    metrics = shown_metrics(samples, metrics)
    with matplotlib.rc_context(_style()):
        figure = _figure(4.3 * len(metrics) + 0.6, 3.6)
        axes = np.atleast_1d(figure.subplots(1, len(metrics), squeeze=False)).ravel()
        for axis, metric in zip(axes, metrics):
            values = samples[samples["metric"] == metric]
            finite = values["value"].dropna()
            count = min(40, max(8, int(np.sqrt(len(finite)))))
            bins = np.histogram_bin_edges(finite, bins=count) if len(finite) else 10
            for strategy in strategies:
                mine = values.loc[values["strategy"] == strategy, "value"].dropna()
                if mine.empty:
                    continue
                colour = colours.get(strategy)
                axis.hist(mine, bins=bins, density=True, histtype="stepfilled", alpha=0.35, color=colour)
                axis.hist(mine, bins=bins, density=True, histtype="step", linewidth=1.2, color=colour,
                          label=labels.get(strategy, strategy))
                point = table.loc[(table["strategy"] == strategy) & (table["metric"] == metric), "point"]
                if len(point) and not np.isnan(point.iloc[0]):
                    axis.axvline(point.iloc[0], color=colour, linestyle="--", linewidth=1)
            axis.set_xlabel(metric_label(metric, horizon_months))
            axis.set_ylabel("density")
            axis.set_yticks([])
            _format_axis(axis, metric)
        handles, names = axes[0].get_legend_handles_labels()
        figure.legend(handles, names, loc="outside lower center", ncols=len(strategies))
        figure.suptitle("Probabilistic sensitivity analysis: outcomes across parameter draws")
    return figure


def plot_psa_increments(increments: pd.DataFrame, x_metric: str, y_metric: str, labels: Mapping[str, str],
                        colours: Mapping[str, tuple], horizon_months: float | None = None) -> Figure:
    """Scatter of paired PSA differences from the reference strategy: one panel per strategy.

    Parameters
    ----------
    increments : DataFrame
        ``analysis.sweep_summary.psa_increments`` for one variant.
    x_metric, y_metric : str
        The metrics on the horizontal and vertical axes.

    Notes
    -----
    Each point is one PSA sample; the cross is the mean. The share of samples in each
    quadrant is written in its corner.
    """
    comparisons = list(dict.fromkeys(increments["strategy"]))
    reference = increments["reference"].iloc[0] if len(increments) else ""
    wide = increments.pivot_table(index=["sample", "strategy"], columns="metric", values="difference",
                                  dropna=False).reset_index()
    with matplotlib.rc_context(_style()):
        figure = _figure(4.4 * max(len(comparisons), 1) + 0.6, 4.2)
        axes = np.atleast_1d(figure.subplots(1, max(len(comparisons), 1), squeeze=False)).ravel()
        for axis, strategy in zip(axes, comparisons):
            mine = wide[wide["strategy"] == strategy].dropna(subset=[x_metric, y_metric])
            axis.scatter(mine[x_metric], mine[y_metric], s=9, alpha=0.45, color=colours.get(strategy),
                         edgecolors="none")
            if len(mine):
                axis.scatter([mine[x_metric].mean()], [mine[y_metric].mean()], marker="X", s=90, color="#222222",
                             label="mean")
                _quadrants(axis, mine[x_metric].to_numpy(), mine[y_metric].to_numpy())
            axis.axhline(0, color="#555555", linewidth=0.8)
            axis.axvline(0, color="#555555", linewidth=0.8)
            axis.set_title(f"{labels.get(strategy, strategy)} − {labels.get(reference, reference)}")
            axis.set_xlabel(f"Δ {metric_label(x_metric, horizon_months)}")
            axis.set_ylabel(f"Δ {metric_label(y_metric, horizon_months)}")
            _format_axis(axis, x_metric, "x", difference=True)
            _format_axis(axis, y_metric, "y", difference=True)
        figure.suptitle("Incremental outcomes across PSA samples (paired on the same patients and parameters)")
    return figure


def _quadrants(axis, x: np.ndarray, y: np.ndarray) -> None:
    corners = {(True, True): (0.97, 0.97, "right", "top"), (False, True): (0.03, 0.97, "left", "top"),
               (False, False): (0.03, 0.03, "left", "bottom"), (True, False): (0.97, 0.03, "right", "bottom")}
    for (right, upper), (tx, ty, ha, va) in corners.items():
        share = np.mean(((x > 0) == right) & ((y > 0) == upper))
        axis.text(tx, ty, f"{share:.0%}", transform=axis.transAxes, ha=ha, va=va, fontsize=8, color="#444444",
                  bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.5})


def plot_grid(grid: pd.DataFrame, parameter: str, others: Sequence[str], strategies: Sequence[str],
              labels: Mapping[str, str], colours: Mapping[str, tuple], parameter_label: str,
              order: Sequence, horizon_months: float | None = None, metrics: Sequence[str] | None = None) -> Figure:
    """Each key metric (or each of `metrics`) against one varied parameter, a line per strategy.

    Parameters
    ----------
    grid : DataFrame
        ``analysis.sweep_summary.grid_table``.
    parameter : str
        The grid column on the horizontal axis; `order` gives its values in sweep-file order.
    others : sequence of str
        The other varied columns: one row of panels per combination of their values.

    Notes
    -----
    Error bars are 95% intervals (within the task, or across replicates).
    """
    metrics = shown_metrics(grid, metrics)
    combos = list(grid[list(others)].drop_duplicates().itertuples(index=False, name=None)) if others else [()]
    position = {value: i for i, value in enumerate(order)}
    # One row of panels per combination of the other parameters; with none, the metrics
    # wrap at four panels a row so that many metrics stay readable.
    columns = len(metrics) if len(combos) > 1 else min(len(metrics), _PANELS_PER_ROW)
    rows_per_combo = -(-len(metrics) // columns)
    with matplotlib.rc_context(_style()):
        figure = _figure(4.2 * columns + 0.6, 3.3 * len(combos) * rows_per_combo + 0.8)
        axes = figure.subplots(len(combos) * rows_per_combo, columns, squeeze=False)
        for extra in axes.ravel()[len(combos) * len(metrics):]:
            extra.set_visible(False)
        for r, combo in enumerate(combos):
            rows = grid
            for column, value in zip(others, combo):
                rows = rows[rows[column] == value]
            for c, metric in enumerate(metrics):
                axis = axes[r * rows_per_combo + c // columns, c % columns]
                for k, strategy in enumerate(strategies):
                    mine = rows[(rows["strategy"] == strategy) & (rows["metric"] == metric)]
                    mine = mine.assign(x=mine[parameter].map(position)).sort_values("x")
                    offset = (k - (len(strategies) - 1) / 2) * 0.06
                    errors = np.vstack([mine["value"] - mine["ci_low"], mine["ci_high"] - mine["value"]])
                    axis.errorbar(mine["x"] + offset, mine["value"], yerr=np.nan_to_num(np.abs(errors)),
                                  marker="o", markersize=4, capsize=2, linewidth=1.4, color=colours.get(strategy),
                                  label=labels.get(strategy, strategy))
                axis.set_xticks(range(len(order)), [_setting(v) for v in order])
                axis.set_xlabel(parameter_label)
                axis.set_ylabel(metric_label(metric, horizon_months))
                _format_axis(axis, metric, "y")
                if others:
                    axis.set_title(", ".join(f"{o} = {_setting(v)}" for o, v in zip(others, combo)), fontsize=9)
        handles, names = axes[0, 0].get_legend_handles_labels()
        figure.legend(handles, names, loc="outside lower center", ncols=len(strategies))
        figure.suptitle(f"Outcomes by {parameter_label}")
    return figure
