"""Fixed colours: the same treatment, strategy, reason or state has the same colour in
every figure of a report.

Treatments and strategies take colours by their position in the scenario's declared
order (the manifest, or the category order of the tables), so a treatment keeps its
colour across panels, figures and strategies. Reasons and states have colours fixed by
name, chosen so that good outcomes read green and exhausted options read warm.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np

#: Discontinuation reasons, in stacking order (bottom first), with their colours.
REASON_COLOURS = {
    "adverse_event": "#d55e00",
    "nonresponse": "#e69f00",
    "loss_of_response": "#cc79a7",
    "switch": "#56b4e9",
    "remission": "#009e73",
}
STILL_ON_TREATMENT_COLOUR = "#e5e5e5"

_OTHER_STATE_COLOURS = {
    "awaiting_treatment": "#f0e442",
    "topical": "#009e73",
    "supportive_care": "#d55e00",
    "follow_up_ended": "#e0e0e0",
    "lost_to_followup": "#bdbdbd",
    "dead": "#4d4d4d",
}


def treatment_colours(treatments: Sequence[str]) -> dict[str, tuple]:
    """Colour of every treatment, by its position in the declared order.

    Parameters
    ----------
    treatments : sequence of str
        All treatment names of the scenario, in declared order.

    Returns
    -------
    dict
        Treatment name to RGB tuple.
    """
    # tab10: ten clearly different hues, so a scenario's nine or ten treatments never
    # share a colour family (the colour-blind palette has two oranges and two blues).
    palette = color_palette("tab10", 10)[: max(len(treatments), 1)]
    if len(treatments) > 10:
        palette = _husl(len(treatments))
    return dict(zip(treatments, palette))


def strategy_colours(strategies: Sequence[str]) -> dict[str, tuple]:
    """Colour of every strategy, by its position in the declared order.

    Parameters
    ----------
    strategies : sequence of str
        Strategy names, in declared order.

    Returns
    -------
    dict
        Strategy name to RGB tuple.
    """
    palette = color_palette("Dark2", max(len(strategies), 1))
    if len(strategies) > 8:
        palette = _husl(len(strategies))
    return dict(zip(strategies, palette))


def state_colours(states: Sequence[str]) -> dict[str, tuple | str]:
    """Colour of every state: blues darkening with the line of systemic therapy.

    Parameters
    ----------
    states : sequence of str
        State names (``systemic_line_<k>`` and the others of ``analysis.states``).

    Returns
    -------
    dict
        State name to colour.
    """
    lines = [s for s in states if s.startswith("systemic_line_")]
    blues = color_palette("Blues_r", len(lines) + 2)[: len(lines)]
    colours = dict(zip(lines, blues))
    colours.update({s: c for s, c in _OTHER_STATE_COLOURS.items() if s in states})
    return colours


#: Colormaps whose colours are a list (taken as they are, not sampled), and how many.
_QUALITATIVE = {"tab10": 10, "Dark2": 8}


def color_palette(name: str, n_colors: int) -> list[tuple]:
    """`n_colors` RGB tuples (0-1) of a matplotlib colormap, as ``seaborn.color_palette``
    gives them: a qualitative map's colours in order (repeated if too few), a continuous
    map sampled evenly without its two ends."""
    cmap = matplotlib.colormaps[name]
    if name in _QUALITATIVE:
        bins = np.linspace(0, 1, _QUALITATIVE[name])[:n_colors]
    else:
        bins = np.linspace(0, 1, int(n_colors) + 2)[1:-1]
    colours = [tuple(float(c) for c in rgba[:3]) for rgba in cmap(bins)]
    return [colours[i % len(colours)] for i in range(n_colors)] if colours else []


def _husl(n_colors: int) -> list[tuple]:
    """Evenly spaced hues (seaborn's husl palette), for more names than a qualitative map has."""
    import seaborn as sns  # only for scenarios with more than 10 treatments or 8 strategies

    return list(sns.color_palette("husl", n_colors))
