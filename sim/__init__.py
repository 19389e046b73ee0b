"""adpath's simulator: scenario schema, compiled model, engines, runner and command line."""

#: The version of the simulation's results: raise it whenever a change to the engines,
#: the random streams or the summaries changes the numbers a given scenario and seed
#: give, so that a sweep resumed across versions refuses to mix old and new results.
RESULTS_VERSION = 4  # 4: the DES draws Philox numbers by purpose (as the compiled engine)

from sim.numba_cache import use_source_keyed_cache as _use_source_keyed_cache

_use_source_keyed_cache()
