"""The figure of a calibration: each target's published proportion beside the calibrated
model's, with their 95% intervals."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from analysis.plots import figure_style, new_figure

OBSERVED_COLOUR = "#222222"
MODEL_COLOUR = "#0072b2"


def target_label(row) -> str:
    """A target in words: its name and what it measures (`bioday_12m: dupilumab, 12 months`)."""
    what = row.treatment if isinstance(row.treatment, str) else row.state
    detail = [str(what)] if isinstance(what, str) else []
    if isinstance(row.reason, str):
        detail.append(row.reason)
    if row.at_months is not None and not pd.isna(row.at_months):
        detail.append(f"{row.at_months:g} months")
    return f"{row.target}: {', '.join(detail)}" if detail else str(row.target)


def _zoomed(targets: pd.DataFrame, margin: float = 0.05) -> tuple[float, float]:
    """The proportions' range with a margin, within [0, 1]: differences of a few points show."""
    columns = ["observed_ci_low", "observed_ci_high", "model_ci_low", "model_ci_high", "observed_proportion",
               "model_proportion"]
    values = targets[columns].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    return max(0.0, float(values.min()) - margin), min(1.0, float(values.max()) + margin)


def plot_calibration_targets(targets: pd.DataFrame, title: str) -> Figure:
    """Published (black) and calibrated-model (blue) proportions of every target, one row
    each, with 95% intervals; `targets` is a calibration's targets.csv table."""
    with matplotlib.rc_context(figure_style()):
        fig = new_figure(7.5, 1.2 + 0.45 * len(targets))
        ax = fig.add_subplot()
        y = np.arange(len(targets))[::-1]
        for offset, prefix, colour, label in ((0.12, "observed", OBSERVED_COLOUR, "published (95% interval)"),
                                              (-0.12, "model", MODEL_COLOUR, "calibrated model (95% interval)")):
            value = targets[f"{prefix}_proportion"].to_numpy(dtype=float)
            low = targets[f"{prefix}_ci_low"].to_numpy(dtype=float)
            high = targets[f"{prefix}_ci_high"].to_numpy(dtype=float)
            error = np.vstack([np.clip(value - low, 0, None), np.clip(high - value, 0, None)])
            ax.errorbar(value, y + offset, xerr=np.nan_to_num(error), fmt="o", color=colour, capsize=3,
                        markersize=5, label=label)
        ax.set_yticks(y, [target_label(row) for row in targets.itertuples()])
        ax.set_xlim(*_zoomed(targets))
        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_xlabel("proportion")
        ax.set_title(title, loc="right")  # long target labels: a centred title would run off the right edge
        ax.legend(loc="best", fontsize="small")
    return fig
