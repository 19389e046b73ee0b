"""An independent reference simulator of adpath's clinical model, for double programming.

Written from the rule text (README.md "Writing a scenario", /work/shared/DESIGN.md "The
clinical model", the docstrings of `sim/episode.py` and `sim/schema.py` that state the
rules), not from the engines: it imports no rule code from `sim/`. It reads a scenario
only through `sim.loader.load_scenario` (the validated, resolved `Scenario`: durations in
months, `extends` merged) and turns every number into its own plain objects
(`reference.scenario`); it draws its own random numbers from its own NumPy Generator
(`reference.sampling`) and walks one patient at a time through one strategy at a time,
event after event in time order (`reference.simulator`). It is slow on purpose: plain
Python loops that a reader can check against the rule text line by line.
"""
