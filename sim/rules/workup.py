"""The work-up at entry: exclude treatable exacerbating factors before a systemic drug.

Before escalating to systemic therapy the clinic looks for non-adherence to topical
therapy, a secondary infection and contact allergy to the topical treatments (source
document 004). In a share of referred patients a factor is found and treated: they go
back to topical therapy without a systemic drug (diverted) and leave the pathway. The
others start the strategy's first line when the work-up ends. The work-up is common to
every strategy (it happens before any strategy differs).
"""

from __future__ import annotations

from sim.rules.compile import rule

GOES_ON, DIVERTED, STILL_IN_WORKUP = 0, 1, 2


@rule
def workup_outcome(u_finds, probability, duration_months, end_months):
    """What the work-up decides: DIVERTED (a factor found and treated, back to topical
    therapy at `duration_months`), GOES_ON (systemic therapy starts at `duration_months`),
    or STILL_IN_WORKUP when observation ends (`end_months` after entry) first."""
    if duration_months >= end_months:
        return STILL_IN_WORKUP
    if u_finds < probability:
        return DIVERTED
    return GOES_ON


@rule
def workup_months(duration_months, end_months):
    """Months observed in the work-up: its duration, cut at the end of observation."""
    return min(duration_months, end_months)
