"""Analysis of adpath runs: drug survival, reasons for stopping, return to topical
therapy, state occupancy, strategy comparisons, figures and the HTML report.

>>> from analysis import load_run, drug_survival, topical_return
>>> run = load_run("results/adult")
>>> km = drug_survival(run.episodes, by=["strategy", "treatment"])

Names are imported on first use, so that ``adpath run`` (which only needs
``summarize_run``) does not pay for matplotlib.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "analysis.io": ("Run", "load_run"),
    "analysis.survival": (
        "EVENT_DEFINITIONS",
        "cumulative_incidence",
        "drug_survival",
        "event_reasons",
        "incidence_at",
        "kaplan_meier",
        "median_survival",
        "survival_at",
        "with_patient_columns",
    ),
    "analysis.outcomes": (
        "adverse_event_rates",
        "adverse_event_rates_on_treatment",
        "first_response",
        "lines_used",
        "mean_outcomes",
        "patient_outcomes",
        "time_to_first_response",
        "topical_return",
        "topical_return_at_horizon",
    ),
    "analysis.states": ("state_counts", "state_occupancy", "state_segments"),
    "analysis.differences": ("strategy_differences",),
    "analysis.summary": ("summarize_run",),
    "analysis.plots": (
        "discontinuation_plot_times",
        "plot_discontinuation_reasons",
        "plot_drug_survival",
        "plot_state_occupancy",
        "plot_topical_return_at_horizon",
        "plot_topical_return_over_time",
        "save_figure",
    ),
    "analysis.report": ("build_report",),
}

_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
