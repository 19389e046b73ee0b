"""The `adpath sweep` command's work: load and check the sweep, pick the executor, run
the unfinished tasks, say how it went, and build the report on request.
"""

from __future__ import annotations

from pathlib import Path

import click

from sim.app.sweep.executors import make_executor, start_fork_server, worker_count
from sim.app.sweep.plan import load_sweep
from sim.app.sweep.runner import SweepOutcome, run_sweep

EXIT_FAILED_TASKS = 1
EXIT_INTERRUPTED = 130


def sweep_command(sweep_file: str, out: Path | None, workers: int | None, scheduler: str | None,
                  dask_local: bool, keep_episodes: bool, report: bool, quiet: bool,
                  tls: dict[str, str | None] | None = None, samples: int | None = None,
                  seed: int | None = None) -> int:
    """Run a sweep from the command line; return the exit code (0 done, 1 tasks failed, 130 interrupted).

    Errors in the sweep file raise `ScenarioError` before anything is written.
    """
    try:
        return _sweep(sweep_file, out, workers, scheduler, dask_local, keep_episodes, report, quiet, tls,
                      samples, seed)
    except KeyboardInterrupt:
        # Ctrl-C while planning, starting the workers or closing them: what finished is on disk.
        click.echo("interrupted: the tasks finished so far are kept; run the same command again to resume",
                   err=True)
        return EXIT_INTERRUPTED


def _sweep(sweep_file, out, workers, scheduler, dask_local, keep_episodes, report, quiet, tls,
           samples=None, seed=None) -> int:
    start_fork_server(workers, scheduler, dask_local)  # its imports overlap the planning
    plan = load_sweep(sweep_file, workers=worker_count(workers),
                      warn=None if quiet else (lambda text: click.echo(text, err=True)), samples=samples, seed=seed)
    out = out or Path("results") / plan.name
    executor = make_executor(workers, scheduler, dask_local, tls)
    try:
        outcome = run_sweep(plan, out, executor, keep_episodes=keep_episodes, progress=not quiet)
    finally:
        executor.close()
    click.echo(_account(outcome, len(plan.tasks)))
    if outcome.status == "interrupted":
        click.echo(f"interrupted: {outcome.finished} of {outcome.tasks} tasks are finished and kept; "
                   "run the same command again to resume", err=True)
        return EXIT_INTERRUPTED
    if report and outcome.finished:
        from sim.app.sweep.store import write_sweep_report

        click.echo(f"report: {write_sweep_report(out)}")
    if outcome.failed:
        click.echo(f"error: {len(outcome.failed)} of {outcome.tasks} tasks failed twice (listed with their "
                   f"parameters in {out / 'sweep.json'}); run the same command again to retry them:", err=True)
        for error, tasks in _by_error(outcome.failed).items():
            shown = ", ".join(tasks[:_LISTED]) + (f" and {len(tasks) - _LISTED} more" if len(tasks) > _LISTED else "")
            click.echo(f"  {error}\n    in {shown}", err=True)
        return EXIT_FAILED_TASKS
    return 0


_LISTED = 8


def _by_error(failures: list[dict]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for failure in failures:
        grouped.setdefault(failure["error"], []).append(f"{failure['task']} ({failure['what']})")
    return grouped


def _account(outcome: SweepOutcome, tasks: int) -> str:
    before = outcome.finished - outcome.ran
    resumed = f", {before} finished before" if before else ""
    return (f"{outcome.finished} of {tasks} tasks finished ({outcome.ran} now{resumed}) in "
            f"{outcome.seconds:.1f} s on {outcome.executor}; wrote {outcome.directory}")

