"""Purpose codes of the random numbers: one code per kind of draw. APPEND ONLY.

A uniform is `sim.random_numbers.uniform(seed, replicate, patient, purpose, occurrence,
offset)`. A new rule takes the next free code and moves nothing else: every other
number of every scenario stays what it was. Never renumber or reuse a code.

Occurrence and offset, by kind of draw:
- patient draws (covariates, follow-up, loss, first line, arrival, death, work-up): occurrence
  is the covariate number (0 for the others), offset 0;
- episode draws (assessment ... adverse events): occurrence is the episode's occurrence
  of its drug (0 for the first course of that drug, 1 for the second ...), offset is
  `episode_offset(treatment, k)` with k the adverse event's number (0 otherwise);
- relapse draws: occurrence is the spell on topical therapy (0, 1, ...), offset 0;
- flare draws: occurrence is the flare's number in the patient's operational time.
Every strategy reads the same number for the same (purpose, occurrence, offset):
common random numbers.
"""

from sim.rules.compile import rule

COVARIATE = 1
FOLLOW_UP = 2
LOSS_TO_FOLLOWUP = 3
FIRST_LINE = 4
ARRIVAL = 5
DEATH = 6
RELAPSE_OCCURS = 7
RELAPSE_TIME = 8
ASSESSMENT = 9
RESPONSE = 10
COURSE = 11
CAP = 12
FATE = 13
LOSS_OF_RESPONSE = 14
ESCALATION = 15
ESCALATED_RESPONSE = 16
REASSESSMENT = 17
TARGET = 18
BRIDGE_RESPONSE = 19
BRIDGE_REBOUND = 20
BRIDGE_ONSET = 21
ADVERSE_EVENT_OCCURS = 22
ADVERSE_EVENT_ONSET = 23
ADVERSE_EVENT_STOPS = 24
FLARE_GAP = 25
FLARE_RESPONSE = 26
FLARE_REBOUND = 27
WORKUP_FINDS = 28
WORKUP_TIME = 29
# Next free code: 30.

ADVERSE_EVENTS_PER_TREATMENT = 256  # offsets reserved per treatment in episode draws


@rule
def episode_offset(treatment: int, k: int = 0) -> int:
    """The offset of an episode draw of `treatment` (its index); `k` the adverse event's number."""
    return treatment * ADVERSE_EVENTS_PER_TREATMENT + k
