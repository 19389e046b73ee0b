"""Relapse after a return to topical therapy, and retreatment."""

from __future__ import annotations

from sim.rules.compile import rule


@rule
def relapse_after(u, probability, wait_months, remaining_months):
    """Months until a relapse brings the patient back into the pathway, or -1 when none comes
    before the end of observation (`remaining_months` away)."""
    if u < probability and wait_months < remaining_months:
        return wait_months
    return -1.0


@rule
def may_retreat(retreats, eligible_now, retreat_allowed):
    """Whether a relapse after this drug restarts it: the strategy retreats (`on_relapse:
    retreat`), the patient may start it now, and it is among `retreat_only` (if given)."""
    return retreats and eligible_now and retreat_allowed
