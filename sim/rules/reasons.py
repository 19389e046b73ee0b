"""Codes of what the rules decide: why an episode ends, the fate of a course, the state
a patient is in (for flares) and why a burst was given. Indices into the vocabulary of
`sim.tables`, so that the tables turn them into names."""

from sim.tables import BURST_REASONS, FINAL_STATES, FLARE_STATES, REASONS

NO_REASON = -1  # the episode does not end by itself (a responder who stays on for good)
NONRESPONSE, ADVERSE_EVENT, LOSS_OF_RESPONSE, REMISSION, SWITCH, LOST_TO_FOLLOWUP, HORIZON, DEATH = (
    REASONS.index(reason) for reason in (
        "nonresponse", "adverse_event", "loss_of_response", "remission", "switch", "lost_to_followup",
        "horizon", "death"))
CONTINUE = -2  # the fate of a course that stays on (not a reason: the episode goes on)

TOPICAL, UNCONTROLLED, CONTROLLED, SUPPORTIVE_CARE = (
    FLARE_STATES.index(state) for state in ("topical", "uncontrolled", "controlled", "supportive_care"))
BRIDGE, FLARE = BURST_REASONS.index("bridge"), BURST_REASONS.index("flare")

ON_SYSTEMIC, ON_TOPICAL, ON_SUPPORTIVE_CARE, WAS_LOST, WAITING, DEAD, DIVERTED = (
    FINAL_STATES.index(state) for state in (
        "systemic", "topical", "supportive_care", "lost_to_followup", "waiting", "dead", "diverted"))
