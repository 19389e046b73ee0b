"""Fixed colours: the same treatment, strategy, reason or state has the same colour in
every figure of a report.

Treatments and strategies take colours by their position in the scenario's declared
order (the manifest, or the category order of the tables), so a treatment keeps its
colour across panels, figures and strategies. Reasons and states have colours fixed by
name, chosen so that good outcomes read green and exhausted options read warm.
"""

from __future__ import annotations

from collections.abc import Sequence

import seaborn as sns

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
    palette = sns.color_palette("tab10", 10)[: max(len(treatments), 1)]
    if len(treatments) > 10:
        palette = sns.color_palette("husl", len(treatments))
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
    palette = sns.color_palette("Dark2", max(len(strategies), 1))
    if len(strategies) > 8:
        palette = sns.color_palette("husl", len(strategies))
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
    blues = sns.color_palette("Blues_r", len(lines) + 2)[: len(lines)]
    colours = dict(zip(lines, blues))
    colours.update({s: c for s, c in _OTHER_STATE_COLOURS.items() if s in states})
    return colours
