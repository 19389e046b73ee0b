"""Loss of response: a responder stops responding some time after the assessment."""

from __future__ import annotations

from sim.rules.compile import rule
from sim.rules.reasons import LOSS_OF_RESPONSE


@rule
def with_loss_of_response(end_months, reason, assessed_months, loss_after_months):
    """Return (end, reason) once a loss of response `loss_after_months` after the assessment is
    taken into account: it ends the episode if it comes first."""
    lost_at = assessed_months + loss_after_months
    if lost_at < end_months:
        return lost_at, LOSS_OF_RESPONSE
    return end_months, reason
