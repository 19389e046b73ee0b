"""Figures of a PSA's probabilistic results: convergence of the running means, and the
value of learning each parameter (EVPPI). Money is in the setting's currency per patient."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import seaborn as sns

from analysis.colours import strategy_colours
from analysis.economics_plots import money_formatter
from analysis.plots import new_figure, display_label, figure_style

_SHOWN_PARAMETERS = 15


def plot_convergence(running: pd.DataFrame, strategies: Sequence[str], reference: str, currency: str,
                     willingness_to_pay: float, labels: Mapping[str, str] | None = None):
    """Running mean incremental NMB over `reference` against the number of samples, with
    its Monte Carlo 95% interval, and the running ICER below."""
    colours = strategy_colours(list(strategies))
    with sns.axes_style(figure_style()):
        fig = new_figure(7.5, 6.4)
        top, bottom = fig.subplots(2, 1, sharex=True)
        for strategy, block in running.groupby("strategy", sort=False):
            colour = colours[strategy]
            top.plot(block["samples"], block["incremental_nmb"], color=colour, label=display_label(labels, strategy))
            top.fill_between(block["samples"], block["low"], block["high"], color=colour, alpha=0.15, lw=0)
            bottom.plot(block["samples"], block["icer"], color=colour)
        top.axhline(0, color="grey", lw=0.8)
        top.yaxis.set_major_formatter(money_formatter(currency))
        top.set(title=f"Convergence: incremental net monetary benefit at {willingness_to_pay:,.0f} {currency}/QALY",
                ylabel=f"vs {display_label(labels, reference)} ({currency} per patient)")
        top.legend(fontsize="small", title="running mean and Monte Carlo 95% interval", title_fontsize="small")
        bottom.axhline(willingness_to_pay, color="grey", lw=0.8, ls="--")
        bottom.yaxis.set_major_formatter(money_formatter(currency))
        bottom.set(title="Running ICER (ratio of mean increments)", xlabel="PSA samples",
                   ylabel=f"{currency} per QALY")
    return fig


def plot_evppi(table: pd.DataFrame, currency: str, willingness_to_pay: float):
    """Horizontal bars of EVPPI per patient of the most valuable parameters and groups at
    one willingness to pay, with the EVPI as a dashed line."""
    shown = table.sort_values("evppi_per_patient", ascending=False).head(_SHOWN_PARAMETERS).iloc[::-1]
    with sns.axes_style(figure_style()):
        fig = new_figure(8.5, 1.2 + 0.32 * len(shown))
        ax = fig.subplots()
        colours = ["#cc6677" if kind == "group" else "#4477aa" for kind in shown["kind"]]
        names = [f"{name} (group of {members})" if kind == "group" else name
                 for name, kind, members in zip(shown["parameters"], shown["kind"], shown["members"])]
        ax.barh(names, shown["evppi_per_patient"], color=colours)
        if len(shown):
            ax.axvline(shown["evpi_per_patient"].iloc[0], color="black", ls="--", lw=1, label="EVPI")
            ax.legend(fontsize="small", loc="lower right")
        ax.xaxis.set_major_formatter(money_formatter(currency))
        ax.tick_params(axis="y", labelsize="small")
        ax.set(title=f"EVPPI per patient at {willingness_to_pay:,.0f} {currency}/QALY",
               xlabel=f"{currency} per patient")
    return fig
