"""The clinical rules, one module per family, each rule one small scalar function.

Every rule takes plain numbers (months, probabilities, codes) and the uniforms it needs,
and is compiled with Numba through `sim.rules.compile.rule`; under `NUMBA_DISABLE_JIT=1`
the same source runs as plain Python. The engines draw the uniforms (purposes in
`sim.rules.purposes`) and call these functions; no rule draws a number itself.

One treatment episode, as the rules decide it (this text was the top docstring of the
DES's former `sim/episode.py`, which `tests/reference/` cites). An episode starts a drug,
assesses response at `assess_at`, and then:
- a non-responder stops at the assessment (`nonresponse`), unless the treatment allows
  escalation (a higher dose, another route): then the patient is reassessed later, with
  the response probability after escalation;
- under treat-to-target, a responder who does not reach the target (`target_response`)
  stops at the assessment too (`nonresponse`, recorded as below target);
- a responder stays on for the course (from the start of the drug, at least until the
  assessment), possibly capped; at its end the fate is `remission` (back to topical),
  `switch` (to the next line while controlled) or `continue` (stays on: only loss of
  response, an adverse event or the end of observation end it);
- a responder can lose response (`loss_of_response`) some time after the assessment;
- an adverse event that stops the drug ends the episode at its onset, whatever else
  was planned; adverse events that would start after the episode has ended never happen.
All times are months since the start of the episode.
"""
