"""Figures of a run: drug survival, why treatments stop, return to topical therapy and
where patients are over time.

Every function takes the tidy tables of ``analysis.survival``, ``analysis.outcomes`` and
``analysis.states`` and returns a matplotlib ``Figure`` drawn on the Agg canvas (no
display, no pyplot state), in seaborn's whitegrid style. Labels map names to the words the
report shows (``{"cyclosporine": "Cyclosporine A"}``); colours come from
``analysis.colours`` so a treatment has one colour in every figure.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MultipleLocator, PercentFormatter

from analysis.colours import (
    REASON_COLOURS,
    STILL_ON_TREATMENT_COLOUR,
    state_colours,
    strategy_colours,
    treatment_colours,
)
from analysis.survival import curve_groups, incidence_at, survival_at

#: Curves with more rows than this are drawn from a fine grid instead of every step.
_MAX_STEPS = 2000
#: Censoring ticks are drawn automatically when a curve has at most this many.
_MAX_TICKS = 150
_DPI = 110
_PANEL_WIDTH_IN = 5.6
_MAX_COLUMNS = 2


#: seaborn's ``axes_style("whitegrid", {"grid.color": "#e6e6e6"})`` and
#: ``plotting_context("notebook", font_scale=0.85)`` (seaborn 0.13), written out: importing
#: seaborn for these rcParams alone took about 3 s of every report. (``image.cmap`` left
#: out: no figure draws an image, and "rocket" exists only once seaborn is imported.)
_SEABORN_WHITEGRID = {
    "figure.facecolor": "white", "axes.labelcolor": ".15", "xtick.direction": "out", "ytick.direction": "out",
    "xtick.color": ".15", "ytick.color": ".15", "axes.axisbelow": True, "grid.linestyle": "-", "text.color": ".15",
    "font.family": ["sans-serif"],
    "font.sans-serif": ["Arial", "DejaVu Sans", "Liberation Sans", "Bitstream Vera Sans", "sans-serif"],
    "lines.solid_capstyle": "round", "patch.edgecolor": "w", "patch.force_edgecolor": True,
    "xtick.top": False, "ytick.right": False, "axes.grid": True, "axes.facecolor": "white", "axes.edgecolor": ".8",
    "grid.color": "#e6e6e6", "axes.spines.left": True, "axes.spines.bottom": True, "axes.spines.right": True,
    "axes.spines.top": True, "xtick.bottom": False, "ytick.left": False,
}
_SEABORN_NOTEBOOK_085 = {
    "axes.linewidth": 1.25, "grid.linewidth": 1, "lines.linewidth": 1.5, "lines.markersize": 6,
    "patch.linewidth": 1, "xtick.major.width": 1.25, "ytick.major.width": 1.25, "xtick.minor.width": 1,
    "ytick.minor.width": 1, "xtick.major.size": 6, "ytick.major.size": 6, "xtick.minor.size": 4,
    "ytick.minor.size": 4, "font.size": 10.2, "axes.labelsize": 10.2, "axes.titlesize": 10.2,
    "xtick.labelsize": 9.35, "ytick.labelsize": 9.35, "legend.fontsize": 9.35, "legend.title_fontsize": 10.2,
}


def figure_style():
    """Seaborn's whitegrid style (notebook context, font scale 0.85) for every figure,
    applied only while a figure is drawn."""
    return {
        **_SEABORN_WHITEGRID,
        **_SEABORN_NOTEBOOK_085,
        "axes.titleweight": "bold",
        "figure.titleweight": "bold",
        "figure.titlesize": 13,
        "legend.frameon": True,
        "legend.framealpha": 0.9,
        # Titles at the top of their axes (no figure has ticks or labels there): placing them
        # automatically measured every tick label of the y axis at each draw.
        "axes.titley": 1.0,
    }


def new_figure(width_in: float, height_in: float) -> Figure:
    """An empty figure of the given size in inches on the Agg canvas, constrained layout."""
    fig = Figure(figsize=(width_in, height_in), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


_NO_EPISODES = "No treatment episodes: no patient started a systemic drug."


def _nothing_to_draw(title: str, message: str) -> Figure:
    """A small figure that says why it has no data (e.g. no patient ever started a drug)."""
    with matplotlib.rc_context(figure_style()):
        fig = new_figure(_PANEL_WIDTH_IN, 1.6)
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
        fig.suptitle(title)
    return fig


def display_label(labels: Mapping[str, str] | None, name) -> str:
    """The display name of a strategy or treatment: its label, else the name with spaces."""
    if labels and name in labels:
        return labels[name]
    return str(name).replace("_", " ")


def _levels(column: pd.Series) -> list:
    if isinstance(column.dtype, pd.CategoricalDtype):
        # Counted by code: turning millions of rows into objects to find the few used took seconds.
        codes = column.cat.codes.to_numpy()
        used = np.bincount(codes[codes >= 0], minlength=len(column.cat.categories)) > 0
        return [c for c, present in zip(column.cat.categories, used) if present]
    return list(dict.fromkeys(column.astype(object)))


def _blocks(curve: pd.DataFrame, by: list[str]) -> dict[tuple, tuple[int, int]]:
    """(start, stop) of the rows of each group of a curve sorted by group, by key tuple
    (found from where a key changes, without a mask of every row per group)."""
    if curve.empty:
        return {}
    first = np.zeros(len(curve), dtype=bool)
    first[0] = True
    for column in by:
        values = curve[column]
        codes = values.cat.codes.to_numpy() if isinstance(values.dtype, pd.CategoricalDtype) else pd.factorize(values)[0]
        first[1:] |= codes[1:] != codes[:-1]
    starts = np.flatnonzero(first)
    stops = np.append(starts[1:], len(curve))
    keys = curve[by].iloc[starts].itertuples(index=False, name=None)
    return {key: (int(a), int(b)) for key, a, b in zip(keys, starts, stops)}


def _all_levels(column: pd.Series) -> list:
    if isinstance(column.dtype, pd.CategoricalDtype):
        return list(column.cat.categories)
    return list(dict.fromkeys(column.astype(object)))


#: Above this many months a time axis is labelled in years.
YEARS_FROM_MONTHS = 72


def _month_ticks(ax, max_months: float) -> None:
    ax.xaxis.set_major_locator(MultipleLocator(month_step(max_months)))
    if max_months > YEARS_FROM_MONTHS:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _=None: f"{x / 12:g}"))
    ax.set_xlim(0, max_months)


def _time_label(text: str, max_months: float) -> str:
    """The axis label of a time axis: `Months since ...` becomes `Years since ...` on long axes."""
    return text.replace("Months", "Years", 1) if max_months > YEARS_FROM_MONTHS else text


def month_step(max_months: float) -> int:
    """Months between ticks (and at-risk counts) of a time axis up to `max_months`: half a
    year, one, two, five, ten or twenty years, whichever gives at most ten intervals."""
    return next((step for step in (6, 12, 24, 60, 120) if max_months <= 10 * step), 240)


def _percent_axis(ax, top: float = 1.0) -> None:
    ax.set_ylim(0, top)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))


def save_figure(fig: Figure, path: str | os.PathLike, svg: bool = False) -> list[Path]:
    """Write a figure as PNG (and SVG on request), atomically.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : path-like
        Target path; the suffix is replaced by ``.png`` / ``.svg``.
    svg : bool
        Also write an SVG.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _fix_layout(fig)
    written = []
    for fmt in ("png", "svg") if svg else ("png",):
        target = path.with_suffix(f".{fmt}")
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            fig.savefig(
                tmp,
                format=fmt,
                dpi=_DPI,
                facecolor="white",
                metadata={"Software": None} if fmt == "png" else {"Date": None},
            )
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        written.append(target)
    return written


def _fix_layout(fig: Figure) -> None:
    """Lay the figure out once with its layout engine and keep that layout: saving a figure
    that has an engine draws it twice and lays it out at each draw (the same pixels, at
    about twice the cost)."""
    engine = fig.get_layout_engine()
    if engine is None:
        return
    engine.execute(fig)
    with matplotlib.rc_context({"figure.autolayout": False, "figure.constrained_layout.use": False}):
        fig.set_layout_engine(None)


# ----------------------------------------------------------------- drug survival


def _panel_grid(n_panels: int) -> tuple[int, int]:
    columns = min(n_panels, _MAX_COLUMNS)
    return math.ceil(n_panels / columns), columns


def _step_points(block: pd.DataFrame, max_months: float) -> pd.DataFrame:
    """The rows to draw: every step, or a fine grid when there are too many."""
    if len(block) <= _MAX_STEPS:
        return block
    grid = np.linspace(0.0, min(max_months, block["time_months"].iloc[-1]), _MAX_STEPS)
    return survival_at(block, grid)


def plot_drug_survival(
    curve: pd.DataFrame,
    labels: Mapping[str, str] | None = None,
    colours: Mapping[str, tuple] | None = None,
    censoring_ticks: bool | None = None,
    risk_times_months: Sequence[float] | None = None,
    max_months: float | None = None,
    pathways: Mapping[str, Sequence[str]] | None = None,
    title: str = "Drug survival by treatment",
) -> Figure:
    """Kaplan–Meier drug survival: one panel per strategy, one line per treatment.

    Each line has its 95% band; censored episodes are marked with ticks; a table of the
    number of episodes still at risk sits under each panel.

    Parameters
    ----------
    curve : pandas.DataFrame
        Output of ``drug_survival(episodes, by=["strategy", "treatment"])``.
    labels : mapping, optional
        Display names of strategies and treatments.
    colours : mapping, optional
        Treatment colours (default: ``treatment_colours`` over the treatment categories).
    censoring_ticks : bool, optional
        Mark censored episodes; default: only for curves with at most 150 censored times.
    risk_times_months : sequence of float, optional
        Times of the at-risk table; default: the x-axis ticks.
    max_months : float, optional
        Right end of the x axis in months; default: the longest episode.
    pathways : mapping, optional
        Treatments of each strategy in line order; lines, legend and table follow it
        (default: the treatment category order).
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if curve.empty:
        return _nothing_to_draw(title, _NO_EPISODES)
    strategies = _levels(curve["strategy"])
    treatments_all = _all_levels(curve["treatment"])
    colours = colours or treatment_colours(treatments_all)
    max_months = max_months or float(curve["time_months"].max()) or 1.0
    risk_times = (
        np.arange(0, max_months + 1e-9, month_step(max_months))
        if risk_times_months is None
        else np.asarray(risk_times_months, dtype=float)
    )
    n_rows, n_cols = _panel_grid(len(strategies))
    blocks = _blocks(curve, ["strategy", "treatment"])
    per_strategy = {
        s: _in_pathway_order(_present(curve["treatment"], [t for (s_, t) in blocks if s_ == s]),
                             (pathways or {}).get(s, ()))
        for s in strategies
    }
    table_rows = max(len(t) for t in per_strategy.values())
    table_in = 0.5 + 0.24 * table_rows
    with matplotlib.rc_context(figure_style()):
        # At least 8 in wide: the at-risk rows are named on the left, which a single panel can ill spare.
        fig = new_figure(max(_PANEL_WIDTH_IN * n_cols, 8.0), (3.6 + table_in) * n_rows + 0.5)
        grid = fig.add_gridspec(2 * n_rows, n_cols, height_ratios=[3.6, table_in] * n_rows)
        for i, strategy in enumerate(strategies):
            row, col = divmod(i, n_cols)
            ax = fig.add_subplot(grid[2 * row, col])
            table = fig.add_subplot(grid[2 * row + 1, col], sharex=ax)
            # Each treatment's rows without their key columns: one curve, read without grouping.
            steps = {t: _one_curve(curve, *blocks[(strategy, t)]) for t in per_strategy[strategy]}
            for treatment in per_strategy[strategy]:
                _draw_survival(
                    ax,
                    steps[treatment],
                    colours[treatment],
                    display_label(labels, treatment),
                    censoring_ticks,
                    max_months,
                )
            _at_risk_table(table, steps, per_strategy[strategy], risk_times, colours, labels)
            ax.set_title(display_label(labels, strategy))
            ax.set_xlabel("")
            ax.tick_params(labelbottom=False)
            ax.set_ylabel("Still on treatment (% of episodes)")
            _percent_axis(ax, 1.02)
            _month_ticks(ax, max_months)
            table.set_xlabel(_time_label("Months since start of treatment", max_months))
        # One legend for the figure, below the panels: inside a panel it hid the curves
        # of a pathway of six or seven drugs.
        handles = _unique_handles(fig.axes)
        legend_below(fig, list(handles.values()), list(handles.keys()), "Treatment", most=4)
        fig.suptitle(title)
    return fig


def legend_below(fig: Figure, handles: list, labels: list[str], title: str | None = None, most: int = 4):
    """Put one legend under the panels of `fig`, in as many columns (up to `most`) as fit
    its width; return the legend."""
    renderer = fig.canvas.get_renderer()
    for columns in range(max(min(len(labels), most), 1), 0, -1):
        legend = fig.legend(handles, labels, loc="outside lower center", ncols=columns, title=title)
        if columns == 1 or legend.get_window_extent(renderer).width <= fig.bbox.width:
            return legend
        legend.remove()  # wider than the figure: its ends would be cut off
    return legend


def _unique_handles(axes) -> dict:
    """Each labelled line of `axes` once, by label, in the order first drawn."""
    handles = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    return handles


_CURVE_COLUMNS = ("time_months", "at_risk", "censored", "survival", "ci_low", "ci_high")


def _one_curve(curve: pd.DataFrame, start: int, stop: int) -> pd.DataFrame:
    """Rows `start:stop` of a drug-survival curve (one group) without its grouping columns."""
    return pd.DataFrame({name: curve[name].to_numpy()[start:stop] for name in _CURVE_COLUMNS}, copy=False)


def _present(column: pd.Series, found: list) -> list:
    """The values `found` in a column in `_levels` order (category order for a categorical)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return [c for c in column.cat.categories if c in set(found)]
    return list(dict.fromkeys(found))


def _in_pathway_order(treatments: list, pathway: Sequence[str]) -> list:
    rank = {t: i for i, t in enumerate(dict.fromkeys(pathway))}
    return sorted(treatments, key=lambda t: (rank.get(t, len(rank)), treatments.index(t)))


def _draw_survival(ax, block, colour, label, censoring_ticks, max_months) -> None:
    points = _step_points(block, max_months)
    t = points["time_months"].to_numpy()
    ax.plot(t, points["survival"], drawstyle="steps-post", color=colour, lw=1.8, label=label)
    ax.fill_between(
        t, points["ci_low"], points["ci_high"], step="post", color=colour, alpha=0.15, lw=0
    )
    is_censored = block["censored"].to_numpy() > 0
    if censoring_ticks or (censoring_ticks is None and np.count_nonzero(is_censored) <= _MAX_TICKS):
        censored = block[is_censored]
        ax.plot(
            censored["time_months"],
            censored["survival"],
            ls="none",
            marker="|",
            ms=5,
            mew=0.8,
            alpha=0.7,
            color=colour,
            label="_nolegend_",
        )


def _count(n: int) -> str:
    """Short count for the at-risk table: 950, 9.5k, 95k, 1.2M (at most four characters:
    five, as in 9,500, ran into the next column on a panel of 11 times)."""
    if n >= 999_500:  # the thresholds are where the rounded figure needs the next unit
        return f"{n / 1e6:.1f}M"
    if n >= 9_950:
        return f"{n / 1e3:.0f}k"
    if n >= 1_000:
        return f"{n / 1e3:.1f}k"
    return f"{n}"


def _short(label: str) -> str:
    """A treatment's label without its parenthesis (`Azathioprine (low dose, ...)` -> `Azathioprine`):
    the at-risk table's row names take width from the panel; the legend keeps the whole label."""
    return label.split(" (", 1)[0]


def _at_risk_table(ax, curves, treatments, times, colours, labels) -> None:
    for row, treatment in enumerate(treatments):
        counts = survival_at(curves[treatment], times)["at_risk"].to_numpy()
        for t, n in zip(times, counts):
            ax.text(
                t,
                row,
                _count(n),
                ha="center",
                va="center",
                fontsize="small",
                color=colours[treatment],
                # Out of the layout: the row names' padding already holds the counts that reach
                # left of the axis, and measuring 100-odd counts at each layout pass took seconds.
                in_layout=False,
            )
    ax.set_ylim(len(treatments) - 0.5, -0.5)
    ax.set_yticks(range(len(treatments)))
    ax.set_yticklabels([_short(display_label(labels, t)) for t in treatments], fontsize="small")
    # Room for the counts centred on t = 0, which reach left of the axis.
    ax.tick_params(axis="y", pad=18)
    for tick, treatment in zip(ax.get_yticklabels(), treatments):
        tick.set_color(colours[treatment])
    ax.grid(False)
    ax.set_title("Number at risk", fontsize="small", loc="left", fontweight="normal")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="y", length=0)


# ------------------------------------------------------ reasons for stopping


def discontinuation_plot_times(max_months: float) -> np.ndarray:
    """The times (months) at which `plot_discontinuation_reasons` draws the incidence up to
    `max_months`: estimated there only (``cumulative_incidence(..., times_months=...)``),
    they draw the same figure without the full-resolution table of a large run."""
    return np.linspace(0.0, max_months, 481)


def plot_discontinuation_reasons(
    incidence: pd.DataFrame,
    labels: Mapping[str, str] | None = None,
    max_months: float | None = None,
    title: str = "Why treatment stopped (cumulative incidence, competing risks)",
) -> Figure:
    """Stacked cumulative incidence of each discontinuation reason, one panel per group.

    The reasons stack from the bottom; the grey remainder up to 100% is the proportion
    still on treatment, so each panel shows where every episode stands over time.

    Parameters
    ----------
    incidence : pandas.DataFrame
        Output of ``cumulative_incidence`` grouped by one or more columns (e.g.
        ``by="treatment"``); each group is a panel.
    labels : mapping, optional
        Display names of the group values.
    max_months : float, optional
        Right end of the x axis; default: the longest time in the table.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if incidence.empty:
        return _nothing_to_draw(title, _NO_EPISODES)
    by = curve_groups(incidence)
    max_months = max_months or float(incidence["time_months"].max()) or 1.0
    at = incidence_at(incidence, discontinuation_plot_times(max_months))
    panels = list(at.groupby(by, observed=True, sort=True)) if by else [((), at)]
    n_rows, n_cols = _panel_grid(len(panels))
    reasons = [r for r in REASON_COLOURS if r in set(at["reason"].astype(object))]
    with matplotlib.rc_context(figure_style()):
        fig = new_figure(_PANEL_WIDTH_IN * n_cols, 3.4 * n_rows + 1.2)
        axes = fig.subplots(n_rows, n_cols, squeeze=False, sharey=True)
        for ax, (key, part) in zip(axes.flat, panels):
            wide = part.pivot_table(
                index="time_months",
                columns="reason",
                values="cumulative_incidence",
                observed=True,
                dropna=False,
            )
            wide = wide.dropna()
            t = wide.index.to_numpy()
            layers = [wide[r].to_numpy() for r in reasons]
            still_on = np.clip(1.0 - np.sum(layers, axis=0), 0.0, 1.0)
            ax.stackplot(
                t,
                *layers,
                still_on,
                colors=[REASON_COLOURS[r] for r in reasons] + [STILL_ON_TREATMENT_COLOUR],
                labels=[display_label(None, r).capitalize() for r in reasons] + ["Still on treatment"],
                lw=0,
            )
            key = key if isinstance(key, tuple) else (key,)
            ax.set_title(" · ".join(display_label(labels, k) for k in key) or "All episodes")
            _percent_axis(ax)
            _month_ticks(ax, max_months)
            ax.set_xlabel(_time_label("Months since start of treatment", max_months))
            ax.set_ylabel("Episodes (%)")
        for ax in list(axes.flat)[len(panels) :]:
            ax.set_visible(False)
        handles, names = axes.flat[0].get_legend_handles_labels()
        legend_below(fig, handles[::-1], names[::-1], "Reason the treatment stopped", most=len(names))
        fig.suptitle(title)
    return fig


# ------------------------------------------------------ topical therapy


def plot_topical_return_at_horizon(
    at_horizon: pd.DataFrame,
    labels: Mapping[str, str] | None = None,
    colours: Mapping[str, tuple] | None = None,
    horizon_months: float | None = None,
    title: str = "Return to topical therapy by the end of follow-up",
) -> Figure:
    """Bars with 95% intervals: ever returned to topical therapy, and on it at the horizon.

    Parameters
    ----------
    at_horizon : pandas.DataFrame
        Output of ``topical_return_at_horizon``.
    labels : mapping, optional
        Display names of strategies.
    colours : mapping, optional
        Strategy colours (default: ``strategy_colours`` over the strategy categories).
    horizon_months : float, optional
        Horizon, shown in the axis label.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    strategies = _levels(at_horizon["strategy"])
    colours = colours or strategy_colours(_all_levels(at_horizon["strategy"]))
    measures = list(dict.fromkeys(at_horizon["measure"].astype(object)))
    names = {
        "returned_to_topical_ever": "Ever returned to topical therapy",
        "on_topical_at_horizon": "On topical therapy at the end of follow-up",
    }
    width = min(0.8 / len(strategies), 0.3)
    with matplotlib.rc_context(figure_style()):
        fig = new_figure(max(6.5, 1.4 * len(strategies) * len(measures) + 2.5), 4.6)
        ax = fig.subplots()
        for i, strategy in enumerate(strategies):
            rows = at_horizon[at_horizon["strategy"] == strategy].set_index("measure")
            rows = rows.loc[measures]
            x = np.arange(len(measures)) + (i - (len(strategies) - 1) / 2) * width
            value = rows["proportion"].to_numpy()
            error = np.vstack(
                [value - rows["ci_low"].to_numpy(), rows["ci_high"].to_numpy() - value]
            )
            ax.bar(
                x,
                value,
                width * 0.92,
                color=colours[strategy],
                label=display_label(labels, strategy),
                yerr=error,
                capsize=3,
                error_kw={"elinewidth": 1, "ecolor": "#333333"},
            )
            above = np.where(
                np.isnan(rows["ci_high"].to_numpy()), value, rows["ci_high"].to_numpy()
            )
            for xi, yi, v in zip(x, above, value):
                ax.text(
                    xi,
                    yi + 0.015,
                    f"{v:.0%}",
                    ha="center",
                    va="bottom",
                    fontsize="small",
                    fontweight="bold",
                    color=colours[strategy],
                )
        ax.set_xticks(range(len(measures)))
        ax.set_xticklabels([names.get(m, display_label(None, m)) for m in measures])
        top = float(np.nanmax(at_horizon["ci_high"])) if len(at_horizon) else 1.0
        # Headroom above 100% for the value labels; ticks stop at 100%.
        _percent_axis(ax, min(1.12, top * 1.15 + 0.08))
        ax.set_yticks([t for t in np.arange(0, 1.0001, 0.2) if t <= ax.get_ylim()[1]])
        horizon = f" (horizon {horizon_months:g} months)" if horizon_months else ""
        ax.set_ylabel("Patients (%)")
        ax.set_xlabel(f"Outcome at the end of follow-up{horizon}")
        ax.legend(title="Strategy", loc="upper right")
        ax.grid(axis="x", visible=False)
        fig.suptitle(title)
    return fig


def plot_topical_return_over_time(
    curve: pd.DataFrame,
    labels: Mapping[str, str] | None = None,
    colours: Mapping[str, tuple] | None = None,
    title: str = "Return to topical therapy over time",
) -> Figure:
    """Two panels: ever returned to topical therapy by month t, and on it at month t.

    Parameters
    ----------
    curve : pandas.DataFrame
        Output of ``topical_return``.
    labels : mapping, optional
        Display names of strategies.
    colours : mapping, optional
        Strategy colours.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    strategies = _levels(curve["strategy"])
    colours = colours or strategy_colours(_all_levels(curve["strategy"]))
    panels = {
        "returned_to_topical_ever": "Ever returned to topical therapy by month t",
        "on_topical": "On topical therapy at month t",
    }
    max_months = float(curve["time_months"].max()) or 1.0
    with matplotlib.rc_context(figure_style()):
        fig = new_figure(2 * _PANEL_WIDTH_IN, 4.4)
        axes = fig.subplots(1, 2, sharey=True)
        for ax, (measure, name) in zip(axes, panels.items()):
            part = curve[curve["measure"] == measure]
            for strategy in strategies:
                line = part[part["strategy"] == strategy]
                ax.plot(
                    line["time_months"],
                    line["proportion"],
                    color=colours[strategy],
                    lw=1.8,
                    label=display_label(labels, strategy),
                )
                ax.fill_between(
                    line["time_months"],
                    line["ci_low"],
                    line["ci_high"],
                    color=colours[strategy],
                    alpha=0.15,
                    lw=0,
                )
            ax.set_title(name)
            ax.set_xlabel(_time_label("Months since entering the pathway (t)", max_months))
            _month_ticks(ax, max_months)
        top = float(np.nanmax(curve["ci_high"])) if len(curve) else 1.0
        _percent_axis(axes[0], min(1.0, top * 1.1 + 0.02))
        axes[0].set_ylabel("Patients (%)")
        axes[1].legend(title="Strategy", loc="best")
        fig.suptitle(title)
    return fig


# ------------------------------------------------------ state occupancy


def plot_state_occupancy(
    occupancy: pd.DataFrame,
    labels: Mapping[str, str] | None = None,
    title: str = "Where patients are over time",
) -> Figure:
    """Stacked areas of the proportion of patients in each state, one panel per strategy.

    Parameters
    ----------
    occupancy : pandas.DataFrame
        Output of ``state_occupancy``.
    labels : mapping, optional
        Display names of strategies.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    strategies = _levels(occupancy["strategy"])
    states = _all_levels(occupancy["state"])
    colours = state_colours(states)
    n_rows, n_cols = _panel_grid(len(strategies))
    max_months = float(occupancy["time_months"].max()) or 1.0
    with matplotlib.rc_context(figure_style()):
        fig = new_figure(_PANEL_WIDTH_IN * n_cols, 3.4 * n_rows + 1.3)
        axes = fig.subplots(n_rows, n_cols, squeeze=False, sharey=True)
        for ax, strategy in zip(axes.flat, strategies):
            part = occupancy[occupancy["strategy"] == strategy]
            wide = (
                part.pivot_table(
                    index="time_months",
                    columns="state",
                    values="proportion",
                    observed=False,
                    dropna=False,
                )
                .reindex(columns=states)
                .fillna(0.0)
            )
            ax.stackplot(
                wide.index.to_numpy(),
                *[wide[s].to_numpy() for s in states],
                colors=[colours[s] for s in states],
                labels=[state_label(s) for s in states],
                lw=0,
            )
            ax.set_title(display_label(labels, strategy))
            _percent_axis(ax)
            _month_ticks(ax, max_months)
            ax.set_xlabel(_time_label("Months since entering the pathway", max_months))
            ax.set_ylabel("Patients (%)")
        for ax in list(axes.flat)[len(strategies) :]:
            ax.set_visible(False)
        handles, names = axes.flat[0].get_legend_handles_labels()
        legend_below(fig, handles, names, "State", most=4)
        fig.suptitle(title)
    return fig


def state_label(state: str) -> str:
    """Readable name of a state (``systemic_line_2`` → ``Systemic, line 2``).

    Parameters
    ----------
    state : str
        State name from ``analysis.states``.

    Returns
    -------
    str
    """
    if state.startswith("systemic_line_"):
        return f"Systemic, line {state.rsplit('_', 1)[1]}"
    return {
        "awaiting_treatment": "Awaiting treatment",
        "topical": "Topical therapy",
        "supportive_care": "Supportive care",
        "follow_up_ended": "Follow-up ended",
        "lost_to_followup": "Lost to follow-up",
        "dead": "Died (other causes)",
    }.get(state, state.replace("_", " ").capitalize())
