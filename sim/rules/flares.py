"""Flares needing a corticosteroid burst, in operational time.

Each state (topical, uncontrolled, controlled, supportive care) has a flare rate per
month. The k-th flare comes when the flare hazard accumulated over the patient's
intervals reaches the k-th point of a unit-rate Poisson process, whose gaps are unit
exponentials from the patient's own numbers: the same flare numbers in every strategy.
"""

from __future__ import annotations

import math

from sim.rules.compile import rule


@rule
def unit_exponential(u):
    """The unit exponential at uniform `u` (a gap of the unit-rate Poisson process)."""
    return -math.log1p(-u)


@rule
def next_flare(position_months, target, rate_per_month, stop_months):
    """Return (time, remaining): the time of the next flare in an interval running at
    `rate_per_month` from `position_months` to `stop_months` when `target` units of hazard
    remain until it, and inf with the hazard still remaining after the interval if it
    does not come in it."""
    time = position_months + target / rate_per_month
    if time >= stop_months:
        return math.inf, target - (stop_months - position_months) * rate_per_month
    return time, 0.0


@rule
def burst_outcome(u_response, u_rebound, response_probability, rebound_probability):
    """Return (effective, rebound) of a flare's rescue burst."""
    return u_response < response_probability, u_rebound < rebound_probability
