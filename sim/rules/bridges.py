"""A corticosteroid bridge: a burst covering the onset of a slow drug."""

from __future__ import annotations

from sim.rules.compile import rule


@rule
def bridge_burst(u_response, u_rebound, response_probability, rebound_probability):
    """Return (effective, rebound) of a bridging burst."""
    return u_response < response_probability, u_rebound < rebound_probability


@rule
def controlled_by_bridge(effective, start_months, onset_months, end_months):
    """Months since entry at which an effective bridge controls the disease, or -1 if it does not
    (ineffective, or after the end of observation)."""
    control = start_months + onset_months
    if effective and control < end_months:
        return control
    return -1.0
