"""The fate of a responder's course when it ends: remission (back to topical therapy),
switch (to the next line while controlled) or continue (stays on the drug)."""

from __future__ import annotations

from sim.rules.compile import rule
from sim.rules.reasons import CONTINUE, REMISSION, SWITCH


@rule
def fate(u, remission, switch):
    """The fate drawn by uniform `u` from the shares (remission, switch, continue = the rest)."""
    if u < remission:
        return REMISSION
    if u < remission + switch:
        return SWITCH
    return CONTINUE


@rule
def handed_over(u, remission, switch, stay):
    """The fate of a 'continue' course stopped by its cap: remission or switch in the proportions
    of those two fates (remission when both are zero), reusing the same uniform `u` (which lies
    in the 'continue' share, from remission + switch to 1)."""
    ended = remission + switch
    if ended == 0.0:
        return REMISSION
    rescaled = (u - ended) / stay
    return REMISSION if rescaled < remission / ended else SWITCH
