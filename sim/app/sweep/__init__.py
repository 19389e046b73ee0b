"""Parameter sweeps: grids, one-way and probabilistic sensitivity analyses of a scenario.

A sweep file (`scenarios/sweeps/*.yaml`) names a base scenario and what to change in
it. `load_sweep` turns it into a checked plan of tasks (`plan`), each task a variant of
the scenario for one replicate; `run_sweep` runs the unfinished ones on an executor
(`executors`: this process, local processes, Dask) and streams their summaries to a
resumable output directory (`store`).

>>> from sim.app.sweep import load_sweep, make_executor, run_sweep
>>> plan = load_sweep("csa_cap")
>>> run_sweep(plan, "results/csa_cap", make_executor(workers=2))
"""

from sim.app.sweep.executors import DaskExecutor, LocalPool, SerialExecutor, make_executor, start_fork_server
from sim.app.sweep.plan import SweepPlan, SweepTask, load_sweep
from sim.app.sweep.runner import SweepOutcome, run_sweep

__all__ = ["DaskExecutor", "LocalPool", "SerialExecutor", "SweepOutcome", "SweepPlan", "SweepTask",
           "load_sweep", "make_executor", "run_sweep", "start_fork_server"]
