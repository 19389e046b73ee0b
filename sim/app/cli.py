"""The `adpath` command: run, validate, list, check and report on scenarios.

Errors a user can cause (a bad scenario, a bad option) print one clear message per
problem and exit with code 2, without a traceback and without leaving output behind.
"""

from __future__ import annotations

import sys
from functools import wraps
from pathlib import Path

import click

from sim.loader import LoadedScenario, Problem, ScenarioError, bundled_scenarios, load_scenario, read_yaml
from sim.units import DurationError, format_months, parse_duration

EXIT_USAGE = 2


def _friendly_errors(command):
    @wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except ScenarioError as exc:
            for problem in exc.problems:
                click.echo(f"error: {problem}", err=True)
            sys.exit(EXIT_USAGE)
        except KeyboardInterrupt:
            click.echo("interrupted: nothing was written for the unfinished run", err=True)
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="adpath")
def main():
    """adpath: simulate treatment pathways of moderate-to-severe atopic dermatitis."""


def _overrides(patients, seed, horizon, replicates) -> dict:
    overrides = {}
    if patients is not None:
        overrides["settings.patients"] = patients
    if seed is not None:
        overrides["settings.seed"] = seed
    if horizon is not None:
        try:
            parse_duration(horizon)
        except DurationError as exc:
            raise ScenarioError([Problem("command line", "--horizon", str(exc))]) from None
        overrides["settings.horizon"] = horizon
    if replicates is not None:
        overrides["settings.replicates"] = replicates
    return overrides


_scenario_argument = click.argument("scenario")
_run_options = [
    click.option("--patients", type=click.IntRange(min=1), help="Number of virtual patients (overrides settings.patients)."),
    click.option("--seed", type=click.IntRange(min=0), help="Random seed (overrides settings.seed)."),
    click.option("--horizon", help="Time horizon, e.g. '10 years' (overrides settings.horizon)."),
    click.option("--replicates", type=click.IntRange(min=1), help="Replicates (overrides settings.replicates)."),
    click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Worker processes; results do not depend on it."),
    click.option("--engine", type=click.Choice(["auto", "compiled", "des"]),
                 help="Simulation engine [default: auto, or the deprecated settings.engine]: auto picks compiled, or des when resources are limited."),
    click.option("--chunk-size", type=click.IntRange(min=1),
                 help="Patients per chunk [default: the engine's]; results do not depend on it."),
]


def _with_run_options(command):
    for option in reversed(_run_options):
        command = option(command)
    return command


@main.command()
@_scenario_argument
@_with_run_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Output directory [default: results/<scenario>].")
@click.option("--force", is_flag=True, help="Write into an existing --out that is not an earlier adpath run.")
@click.option("--report", is_flag=True, help="Also write report.html, figures/ and tables/.")
@click.option("--economics", help="Economic setting: a bundled name (uk_nhs, us_payer) or a YAML path.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_friendly_errors
def run(scenario, patients, seed, horizon, replicates, workers, engine, chunk_size, out, force, report, economics,
        quiet):
    """Simulate SCENARIO (a YAML path or a bundled name) and write its tables to --out."""
    loaded = load_scenario(scenario, _overrides(patients, seed, horizon, replicates))
    out = out or Path("results") / loaded.name
    directory = execute(loaded, out, workers=workers, progress=not quiet, economics=economics, report=report,
                        force=force, engine=engine, chunk_size=chunk_size)
    if report:
        click.echo(f"report: {directory / 'report.html'}")
    click.echo(f"wrote {directory}")


def execute(loaded: LoadedScenario, out: Path, workers: int = 1, progress: bool = True,
            economics: str | None = None, report: bool = False, force: bool = False, engine: str | None = None,
            chunk_size: int | None = None) -> Path:
    """Run a loaded scenario and write its run directory (see `sim.app.pipeline.run_scenario`)."""
    from sim.app.pipeline import run_scenario

    return run_scenario(loaded, out, workers=workers, progress=progress, economics=economics, report=report,
                        force=force, engine=engine, chunk_size=chunk_size)


@main.command()
@_scenario_argument
@_friendly_errors
def validate(scenario):
    """Check SCENARIO and print what it resolves to."""
    from sim.model import compile_model
    from sim.provenance import is_assumption, parameter_table

    from sim.runner import engine_for

    loaded = load_scenario(scenario)
    model = compile_model(loaded.scenario, loaded.name)
    try:
        engine_for(model)  # e.g. the compiled engine cannot run limited resources
    except ScenarioError as exc:
        raise ScenarioError([Problem(str(loaded.file), p.path, p.message) for p in exc.problems]) from None
    click.echo(describe(loaded, model))
    rows = parameter_table(loaded.document)
    missing = [row["path"] for row in rows if not row["source"]]
    assumptions = sum(is_assumption(row["source"]) for row in rows if row["source"])
    click.echo(f"sources: {len(rows) - len(missing)} of {len(rows)} parameters sourced ({assumptions} assumptions)")
    for path in missing:
        click.echo(f"  no source: {path}")
    click.echo("valid")


def describe(loaded: LoadedScenario, model) -> str:
    """Return a readable account of what a scenario resolved to."""
    s = loaded.scenario
    lines = [f"scenario: {loaded.name} ({loaded.file})"]
    if model.description:
        lines.append(f"  {model.description}")
    lines.append(
        f"settings: {model.patients} patients x {model.replicates} replicate(s), horizon "
        f"{format_months(model.horizon_months)}, seed {model.seed}, engine {model.engine}"
    )
    covariates = ", ".join(c.name for c in model.population.covariates) or "none"
    population = f"population: {model.population.age_group}; covariates: {covariates}"
    if model.population.observed_until_age is not None:
        population += f"; observed until {format_months(model.population.observed_until_age)} of age"
    lines.append(population)
    lines.append(f"treatments ({len(model.treatments)}):")
    for t in model.treatments:
        spec = s.treatments[t.name]
        lines.append(
            f"  {t.name:<16} {t.label:<28} response {t.response_probability:.3f}, "
            f"{len(t.adverse_events)} adverse events" + (", capped" if spec.cap else "")
        )
    lines.append(f"strategies ({len(model.strategies)}):")
    for strategy in model.strategies:
        path = " -> ".join(model.treatments[t].label for t in strategy.lines)
        lines.append(f"  {strategy.name:<16} {path}  (on relapse: {strategy.on_relapse})")
    lines.append(f"targets: {len(s.targets)}")
    return "\n".join(lines)


@main.command(name="list")
def list_scenarios():
    """List the bundled scenarios, sweeps and economic settings with their descriptions."""
    from sim.loader import bundled_dir

    sections = [("scenarios (adpath run NAME)", bundled_scenarios()),
                ("sweeps (adpath sweep NAME)", {p.stem: p for p in sorted((bundled_dir() / "sweeps").glob("*.yaml"))}),
                ("economic settings (--economics NAME, economics: NAME)",
                 {p.stem: p for p in sorted((bundled_dir() / "economics").glob("*.yaml"))})]
    for i, (title, files) in enumerate(sections):
        click.echo(("\n" if i else "") + title)
        for name, path in files.items():
            click.echo(f"  {name:<28} {_description(path)}")


def _description(path: Path) -> str:
    try:
        document = read_yaml(path) or {}
        return str(document.get("description", "")).strip().splitlines()[0]
    except (ScenarioError, IndexError, AttributeError):
        return ""


@main.command()
@_scenario_argument
@_with_run_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Output directory [default: results/<scenario>].")
@click.option("--force", is_flag=True, help="Write into an existing --out that is not an earlier adpath run.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_friendly_errors
def check(scenario, patients, seed, horizon, replicates, workers, engine, chunk_size, out, force, quiet):
    """Run SCENARIO and compare it with its targets; exit 0 if all are met, 1 if not."""
    import pandas as pd

    from analysis.targets import check_targets, format_targets
    from sim.app.outputs import staged_directory

    loaded = load_scenario(scenario, _overrides(patients, seed, horizon, replicates))
    if not loaded.scenario.targets:
        raise ScenarioError([Problem(str(loaded.file), "targets", "this scenario declares no targets; add a targets: block")])
    out = out or Path("results") / loaded.name
    execute(loaded, out, workers=workers, progress=not quiet, force=force, engine=engine, chunk_size=chunk_size)
    tables = {name: pd.read_parquet(out / f"{name}.parquet") for name in ("episodes", "patients", "adverse_events")}
    table = check_targets(loaded.scenario, **tables)
    with staged_directory(out) as staging:
        table.to_csv(staging / "targets.csv", index=False)
    click.echo(format_targets(table))
    met = table.loc[table["enforced"] & table["discriminates"], "within"].all()
    click.echo(f"wrote {out / 'targets.csv'}")
    sys.exit(0 if met else 1)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--svg", is_flag=True, help="Also save figures as SVG.")
@_friendly_errors
def report(run_dir, svg):
    """(Re)build report.html, figures/ and tables/ for a finished run or sweep directory."""
    from sim.app.outputs import rebuild_report, restore_abandoned
    from sim.app.sweep.store import is_sweep_directory, read_manifest, write_sweep_report

    restore_abandoned(run_dir)  # a run killed while it replaced this one left it aside
    if not run_dir.is_dir():
        raise ScenarioError([Problem(str(run_dir), "", "no such directory; give a directory written by adpath run "
                                     "or adpath sweep")])
    sweep = is_sweep_directory(run_dir)
    needed = ["sweep_summary.parquet"] if sweep else ["episodes.parquet", "patients.parquet"]
    missing = [name for name in needed if not (run_dir / name).is_file()]
    if missing:  # checked here: the report is built in a staged copy, whose path would only confuse
        raise ScenarioError([Problem(str(run_dir), "", f"{', '.join(missing)} missing: not a finished "
                                     f"{'sweep (no task has finished yet)' if sweep else 'run directory'}; write one "
                                     f"with `adpath {'sweep' if sweep else 'run'}`")])
    if sweep:
        read_manifest(run_dir)  # a damaged sweep.json: one message
        click.echo(f"report: {write_sweep_report(run_dir, svg=svg)}")
        return
    from analysis.report import build_report

    click.echo(f"report: {rebuild_report(run_dir, lambda staging: build_report(staging, svg=svg))}")


@main.command()
@click.argument("sweep_file")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Output directory [default: results/<sweep>]; the same --out again resumes.")
@click.option("--workers", type=click.IntRange(min=1), help="Local worker processes (or Dask workers with --dask local) [default: all cores].")
@click.option("--scheduler", help="Run on the Dask cluster at this address, e.g. tcp://host:8786.")
@click.option("--dask", "dask_mode", type=click.Choice(["local"]), help="'--dask local' starts a Dask LocalCluster on this machine.")
@click.option("--tls-ca-file", type=click.Path(exists=True, dir_okay=False), help="TLS: the CA certificate that signed the scheduler's.")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="TLS: this client's certificate.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="TLS: this client's private key.")
@click.option("--keep-episodes", is_flag=True, help="Also keep every task's episodes, patients and adverse-events tables.")
@click.option("--report", is_flag=True, help="Also write the sweep report (report.html, figures/, tables/).")
@click.option("--samples", type=click.IntRange(min=1), help="PSA samples (overrides psa.samples).")
@click.option("--seed", type=click.IntRange(min=0), help="Seed of the sweep (overrides seed:).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_friendly_errors
def sweep(sweep_file, out, workers, scheduler, dask_mode, tls_ca_file, tls_cert, tls_key, keep_episodes, report,
          samples, seed, quiet):
    """Run the parameter sweep SWEEP_FILE (a YAML path or a bundled sweep's name); resumable."""
    from sim.app.sweep.command import sweep_command

    tls = {"ca_file": tls_ca_file, "cert": tls_cert, "key": tls_key}
    sys.exit(sweep_command(sweep_file, out, workers, scheduler, dask_mode == "local", keep_episodes, report, quiet,
                           tls=tls, samples=samples, seed=seed))


@main.command()
@_scenario_argument
@click.option("--economics", required=True, help="Economic setting: a bundled name (uk_nhs, us_payer) or a YAML path.")
@click.option("--drug", required=True, help="The treatment whose price is sought, e.g. dupilumab.")
@click.option("--strategy", required=True, help="The strategy whose ICER is compared with the WTP.")
@click.option("--comparator", help="The strategy it is compared with [default: the scenario's first].")
@click.option("--wtp", type=click.FloatRange(min=0), multiple=True,
              help="Willingness to pay per QALY (repeatable) [default: the setting's thresholds].")
@click.option("--patients", type=click.IntRange(min=1), help="Number of virtual patients (overrides settings.patients).")
@click.option("--seed", type=click.IntRange(min=0), help="Random seed (overrides settings.seed).")
@click.option("--horizon", help="Time horizon, e.g. '10 years' (overrides settings.horizon).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Worker processes.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the table to this CSV file.")
@_friendly_errors
def threshold(scenario, economics, drug, strategy, comparator, wtp, patients, seed, horizon, workers, out):
    """The price of DRUG at which STRATEGY's ICER against COMPARATOR equals the WTP
    (one simulation: costs are linear in the price; exact, not searched)."""
    from analysis.economics_threshold import format_threshold, price_threshold
    from sim.economics import economics_document, load_economics
    from sim.model import compile_model
    from sim.runner import simulate

    loaded = load_scenario(scenario, _overrides(patients, seed, horizon, None))
    strategies = list(loaded.scenario.strategies)
    comparator = comparator or strategies[0]
    _known("--strategy", strategy, strategies, "strategy")
    _known("--comparator", comparator, strategies, "strategy")
    if strategy == comparator:
        raise ScenarioError([Problem("command line", "--comparator", "compare two different strategies")])
    adverse = {n: list(t.adverse_events) for n, t in loaded.scenario.treatments.items()}
    setting = load_economics(economics, adverse)
    document, path = economics_document(economics)
    priced = [n for n, t in (document.get("treatments") or {}).items() if isinstance(t, dict) and t.get("price")]
    _known("--drug", drug, priced, f"priced treatment in {path}")
    tables = simulate(compile_model(loaded.scenario, loaded.name), workers=workers, progress=False)
    table = price_threshold(tables, document, setting.name, drug, strategy, comparator,
                            wtp or setting.willingness_to_pay)
    click.echo(format_threshold(table, setting.currency))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out, index=False)
        click.echo(f"wrote {out}")


def _known(option: str, value: str, names: list[str], what: str) -> None:
    from sim.schema import suggest

    if value not in names:
        raise ScenarioError([Problem("command line", option, f"no {what} '{value}'{suggest(value, names)}; "
                                     f"choose one of: {', '.join(names)}")])


@main.command()
@click.argument("csv_file", type=click.Path(path_type=Path))
@click.option("--as", "key", default="course", show_default=True, help="Key of the YAML block (course, loss_of_response...).")
@click.option("--at", "at_months", help="Months at which to compare fitted and published survival, e.g. 6,12,24.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the YAML block to this file.")
def fit(csv_file, key, at_months, out):
    """Fit survival families to a published KM curve (time_months,survival,n_at_risk) or to
    individual data (time_months,event); print AIC/BIC and write the best as YAML."""
    from analysis.fit_command import FitInputError, fit_report, parse_times

    try:
        printed, block = fit_report(csv_file, key, parse_times(at_months))
    except FitInputError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(printed)
    click.echo(block)
    if out is not None:
        out.write_text(block, encoding="utf-8")


@main.command()
@click.argument("calibration")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Output directory [default: results/<calibration>].")
@click.option("--force", is_flag=True, help="Write into an existing --out that is not an earlier calibration.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes for the evaluations of method sir; results do not depend on it.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_friendly_errors
def calibrate(calibration, out, force, workers, quiet):
    """Calibrate the free parameters of a scenario to published targets (CALIBRATION: a
    calibration file or the name of a bundled one); writes the calibrated scenario."""
    from sim.app.calibrate import calibrate as run_calibration
    from sim.app.calibrate import summary_lines

    directory = run_calibration(calibration, out, force=force, progress=not quiet, workers=workers)
    click.echo("\n".join(summary_lines(directory)))
    click.echo(f"wrote {directory}")
