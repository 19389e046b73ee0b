"""Adverse events: each happens in an episode with its probability at its onset, and may
stop the drug; one that stops it ends the episode at its onset, whatever else was planned.
Adverse events whose onset comes after the episode has ended never happen."""

from __future__ import annotations

from sim.rules.compile import rule
from sim.rules.reasons import ADVERSE_EVENT


@rule
def occurs(u, probability):
    """Whether the adverse event happens in this episode."""
    return u < probability


@rule
def stops_treatment(u, stop_probability):
    """Whether an adverse event that happens stops the drug."""
    return u < stop_probability


@rule
def with_adverse_event(end_months, reason, stop_at_months):
    """Return (end, reason, stopped) once the first stopping adverse event (at `stop_at_months`,
    inf when none) is taken into account."""
    if stop_at_months < end_months:
        return stop_at_months, ADVERSE_EVENT, True
    return end_months, reason, False


@rule
def happened(onset_months, end_months):
    """Whether an adverse event with this onset is part of an episode ending at `end_months`."""
    return onset_months <= end_months
