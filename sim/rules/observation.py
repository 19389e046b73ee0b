"""The end of a patient's observation: the horizon, the end of their follow-up or the age
at which observation ends, whichever comes first, unless a death or a loss to
follow-up comes before."""

from __future__ import annotations

from sim.rules.compile import rule
from sim.rules.reasons import DEATH, HORIZON, LOST_TO_FOLLOWUP


@rule
def observation_end(horizon_months, follow_up_months, months_to_age_limit, death_months, loss_months):
    """Return (months after entry, censoring reason code) of the end of observation.

    Absent limits are inf; a negative `months_to_age_limit` (older than the limit at entry)
    counts as zero. The reason is horizon for the horizon, the end of follow-up and the age
    limit, death or lost_to_followup otherwise (a loss before a death wins).
    """
    observed = min(horizon_months, follow_up_months, max(months_to_age_limit, 0.0))
    reason = HORIZON
    if death_months < observed:
        observed, reason = death_months, DEATH
    if loss_months < observed:
        observed, reason = loss_months, LOST_TO_FOLLOWUP
    return observed, reason
