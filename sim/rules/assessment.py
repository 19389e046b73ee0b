"""The assessment of response: escalation of non-responders and treat-to-target.

A non-responder whose treatment allows escalation (dose or route) is escalated with
its probability and reassessed `reassess_after` months later with the response
probability after escalation. Under treat-to-target, a responder who does not reach
the target (`target_response`) moves on at the assessment as a non-responder.
"""

from __future__ import annotations

import math

from sim.rules.compile import rule


@rule
def is_escalated(responded, u, escalation_probability):
    """Whether a patient is escalated: a non-responder, the treatment escalates (probability not
    NaN) and the uniform `u` falls below its probability."""
    return (not responded) and not math.isnan(escalation_probability) and u < escalation_probability


@rule
def is_below_target(responded, to_target, u, target_probability):
    """Whether a responder falls below target under treat-to-target (the treatment has a target:
    probability not NaN; `u` at or above it)."""
    return responded and to_target and not math.isnan(target_probability) and u >= target_probability
