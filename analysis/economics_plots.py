"""Figures of the cost-effectiveness results: costs and QALYs per strategy, the
cost-effectiveness plane, acceptability curves with their frontier, and EVPI.

Each function returns a matplotlib Figure on the Agg canvas (see `analysis.plots`);
strategies keep their colours from `analysis.colours`. Money is in the setting's
currency, effects in QALYs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

from analysis.colours import strategy_colours
from analysis.plots import new_figure, display_label, figure_style


def money_formatter(currency: str):
    """A tick formatter of amounts in `currency` (£1,234; $-56; 7.50 CHF)."""
    symbol = {"GBP": "£", "USD": "$", "EUR": "€"}.get(currency, "")

    def text(value, _=None) -> str:
        sign = "-" if value < 0 else ""
        digits = 2 if 0 < abs(value) < 10 else 0
        return f"{sign}{symbol}{abs(value):,.{digits}f}" if symbol else f"{value:,.{digits}f} {currency}"

    return FuncFormatter(text)


def plot_costs_and_qalys(by_strategy: pd.DataFrame, currency: str, strategies: Sequence[str],
                         labels: Mapping[str, str] | None = None):
    """Bars of mean discounted cost (by component) and mean discounted QALYs per strategy, with 95% CIs."""
    means = by_strategy.pivot(index="strategy", columns="outcome", values="mean").reindex(strategies)
    low = by_strategy.pivot(index="strategy", columns="outcome", values="ci_low").reindex(strategies)
    high = by_strategy.pivot(index="strategy", columns="outcome", values="ci_high").reindex(strategies)
    names = [display_label(labels, s) for s in strategies]
    with sns.axes_style(figure_style()):
        fig = new_figure(11.0, 4.2)
        cost_ax, qaly_ax = fig.subplots(1, 2)
        bottom = np.zeros(len(strategies))
        parts = [("drugs", "#4477aa"), ("administration", "#aa3377"), ("monitoring", "#66ccee"),
                 ("health_states", "#228833"), ("events", "#ccbb44")]
        for part, colour in parts:
            if f"cost_{part}_{currency}" not in means or not means[f"cost_{part}_{currency}"].any():
                continue  # runs costed before the category existed, or nothing in it
            values = means[f"cost_{part}_{currency}"].to_numpy()
            cost_ax.barh(names, values, left=bottom, color=colour, label=part.replace("_", " "))
            bottom += values
        total = f"cost_total_{currency}"
        cost_ax.errorbar(means[total], names, xerr=[means[total] - low[total], high[total] - means[total]],
                         fmt="none", ecolor="black", capsize=4, label="total, 95% Monte Carlo interval")
        cost_ax.xaxis.set_major_locator(MaxNLocator(5))
        cost_ax.xaxis.set_major_formatter(money_formatter(currency))
        cost_ax.set(title="Mean discounted cost per patient", xlabel=f"cost ({currency})")
        cost_ax.legend(loc="lower right", fontsize="small")
        colours = strategy_colours(list(strategies))
        qaly_ax.barh(names, means["qalys"], color=[colours[s] for s in strategies])
        qaly_ax.errorbar(means["qalys"], names, xerr=[means["qalys"] - low["qalys"], high["qalys"] - means["qalys"]],
                         fmt="none", ecolor="black", capsize=4)
        qaly_ax.set(title="Mean discounted QALYs per patient", xlabel="QALYs (years)")
        qaly_ax.set_yticklabels([])
        fig.suptitle("Costs and QALYs by strategy")
    return fig


def plot_ce_plane(samples: pd.DataFrame, reference: str, currency: str, willingness_to_pay: Sequence[float],
                  strategies: Sequence[str], labels: Mapping[str, str] | None = None):
    """Incremental costs against incremental QALYs of each strategy vs `reference`, one dot per PSA sample.

    `strategies` is the declared order (it fixes the colours).
    """
    cost = samples.pivot(index="sample", columns="strategy", values="cost")[list(strategies)]
    effect = samples.pivot(index="sample", columns="strategy", values="effect")[list(strategies)]
    colours = strategy_colours(list(strategies))
    with sns.axes_style(figure_style()):
        fig = new_figure(7.5, 5.5)
        ax = fig.subplots()
        for strategy in cost.columns:
            if strategy == reference:
                continue
            d_effect = effect[strategy] - effect[reference]
            d_cost = cost[strategy] - cost[reference]
            ax.scatter(d_effect, d_cost, s=10, alpha=0.45, color=colours[strategy], label=display_label(labels, strategy))
            ax.scatter([d_effect.mean()], [d_cost.mean()], s=90, marker="X", color=colours[strategy],
                       edgecolor="black", zorder=3)
        ax.axhline(0, color="grey", lw=0.8)
        ax.axvline(0, color="grey", lw=0.8)
        x = np.array(ax.get_xlim())
        for w in willingness_to_pay:
            ax.plot(x, w * x, ls="--", lw=1, color="black", alpha=0.6)
            ax.annotate(f"{money_formatter(currency)(w)}/QALY", (x[0], w * x[0]), fontsize="small",
                        ha="left", va="bottom")
        ax.set_xlim(*x)
        ax.yaxis.set_major_formatter(money_formatter(currency))
        ax.set(title=f"Cost-effectiveness plane vs {display_label(labels, reference)}",
               xlabel="incremental QALYs (years)", ylabel=f"incremental cost ({currency})")
        ax.legend(title="strategy (X = mean)", fontsize="small")
    return fig


def plot_acceptability(ceac: pd.DataFrame, currency: str, strategies: Sequence[str],
                       labels: Mapping[str, str] | None = None):
    """Cost-effectiveness acceptability curves; the frontier (CEAF) drawn thick over them.

    `strategies` is the declared order (it fixes the colours).
    """
    colours = strategy_colours(list(strategies))
    with sns.axes_style(figure_style()):
        fig = new_figure(7.5, 4.8)
        ax = fig.subplots()
        for strategy in strategies:
            block = ceac[ceac["strategy"] == strategy]
            ax.plot(block["willingness_to_pay"], block["probability_cost_effective"], color=colours[strategy],
                    label=display_label(labels, strategy), zorder=3)
        frontier = ceac[ceac["on_frontier"]].sort_values("willingness_to_pay")
        ax.plot(frontier["willingness_to_pay"], frontier["probability_cost_effective"], color="black", lw=7,
                alpha=0.18, label="frontier (CEAF)", zorder=2, solid_capstyle="butt")
        ax.set_ylim(-0.02, 1.02)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.xaxis.set_major_formatter(money_formatter(currency))
        ax.set(title="Cost-effectiveness acceptability", xlabel=f"willingness to pay ({currency} per QALY)",
               ylabel="probability cost-effective")
        ax.legend(fontsize="small")
    return fig


def plot_evpi(evpi: pd.DataFrame, currency: str):
    """Expected value of perfect information per patient against willingness to pay."""
    with sns.axes_style(figure_style()):
        fig = new_figure(7.5, 4.2)
        ax = fig.subplots()
        ax.plot(evpi["willingness_to_pay"], evpi["evpi_per_patient"], color="#4477aa")
        ax.xaxis.set_major_formatter(money_formatter(currency))
        ax.yaxis.set_major_formatter(money_formatter(currency))
        ax.set_ylim(bottom=0)
        ax.set(title="Expected value of perfect information", xlabel=f"willingness to pay ({currency} per QALY)",
               ylabel=f"EVPI per patient ({currency})")
    return fig
