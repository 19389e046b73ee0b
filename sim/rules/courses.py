"""A responder's time on drug: the course, its cap and its fate.

The course runs from the start of the drug; a cap stops it at the latest then. A course
ending by itself ends in remission or switch (`sim.rules.fates`); a 'continue' course
has no end of its own unless capped, and a capped one hands over to remission or switch.
A responder stays at least until the assessment.
"""

from __future__ import annotations

import math

from sim.rules.compile import rule
from sim.rules.fates import CONTINUE, fate, handed_over
from sim.rules.reasons import NO_REASON


@rule
def course_end(u_fate, course_months, cap_months, remission, switch, stay):
    """Return (months from the start, reason code) at which a responder's course ends, before loss of
    response and adverse events; (inf, NO_REASON) when the responder stays on for good.

    `course_months` and `cap_months` are inf when the treatment has no course or no cap.
    """
    chosen = fate(u_fate, remission, switch)
    if chosen == CONTINUE:
        if math.isinf(cap_months):
            return math.inf, NO_REASON
        return cap_months, handed_over(u_fate, remission, switch, stay)
    end = min(course_months, cap_months)
    if math.isinf(end):
        return math.inf, NO_REASON
    return end, chosen


@rule
def at_least_until_assessment(end_months, assessed_months):
    """A responder's end is never before the assessment that found the response."""
    return max(end_months, assessed_months)
