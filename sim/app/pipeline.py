"""From a loaded scenario to a finished run directory: simulate, summarise, cost, write.

This is what `adpath run` and `adpath check` do; a notebook can call `run_scenario`
directly. Each stage takes the previous stage's output: the model, the tables, the
summaries. The simulated tables are written while the summaries are computed, into a
staging directory that becomes the run directory only when everything has succeeded.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from sim.guard import estimate_run, too_large
from sim.loader import LoadedScenario, Problem, ScenarioError
from sim.model import compile_model


def run_scenario(loaded: LoadedScenario, out: Path, workers: int = 1, progress: bool = True,
                 economics: str | None = None, engine: str | None = None, report: bool = False,
                 force: bool = False, chunk_size: int | None = None) -> Path:
    """Run a loaded scenario and write its run directory; return the directory.

    With `economics` (a bundled setting such as `uk_nhs`, or a path), each patient's
    costs and QALYs are added to patients.parquet and per-strategy results written to
    economics.csv and incremental.csv. With `report`, the HTML report is built from the
    tables in memory (`analysis.report.build_report`), reusing the run's summary, before the
    run directory is put in place: a killed run leaves the whole new run or the old one.
    """
    from analysis.summary import summarize_run
    from sim.app.outputs import (
        FINISHED_TABLES,
        build_manifest,
        check_out_directory,
        staged_directory,
        write_json,
        write_parquet,
        writing_finished_tables,
    )
    from sim.runner import simulate

    check_out_directory(out, force=force)
    model = compile_model(loaded.scenario, loaded.name)
    _guard_resources(model, loaded, progress)
    setting = _economics(loaded, economics)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    clock = time.perf_counter()
    tables = simulate(model, workers=workers, progress=progress, engine=engine, chunk_size=chunk_size)
    # Without economics the patients table is finished too: it is written in the background.
    background = FINISHED_TABLES if setting is not None else (*FINISHED_TABLES, "patients")
    finished = {name: getattr(tables, name) for name in background}
    episodes, patients = tables.episodes, tables.patients
    if setting is None and not report:
        # Nothing after the summary reads the tables: each leaves memory once written (the
        # adverse events, about 0.1 GB at a million patients, before the summary's peak).
        tables = None
    with staged_directory(out, replace_run=True) as staging:
        with writing_finished_tables(staging, finished):
            summary = clinical = summarize_run(episodes, patients)
            del episodes, patients
            extra = {}
            if setting is not None:
                tables, summary, extra = _with_economics(tables, summary, setting)
                write_parquet(staging / "patients.parquet", tables.patients)
            summary.to_csv(staging / "summary.csv", index=False)
        for name, frame in extra.items():
            frame.to_csv(staging / name, index=False)
        manifest = build_manifest(loaded, model, time.perf_counter() - clock, started, engine)
        if setting is not None:
            manifest["economics"] = _economics_manifest(setting, loaded)
            manifest["economics"]["truncated"] = _warn_truncation(tables.patients, model, progress)
        write_json(staging / "run.json", manifest)
        if report:
            # Built in the staging directory, so that a run killed while its report is drawn
            # leaves the earlier run whole, not new tables beside an old report. It is drawn
            # from the tables in memory and the summary already computed: reading them back
            # from disk held every table twice and took about 10 s at a million patients.
            from analysis.io import run_in_memory
            from analysis.report import build_report
            from sim.memory import hand_back_freed_memory

            run = run_in_memory(staging, tables.episodes, tables.patients, tables.adverse_events, tables.bursts,
                                summary)
            del tables, extra, summary
            hand_back_freed_memory(keep_mib=0)
            build_report(staging, summary=clinical, run=run)
    return out


def _economics(loaded: LoadedScenario, name: str | None):
    if name is None:
        return None
    from sim.economics import economics_path, load_economics

    setting = load_economics(name, _adverse_events_by_treatment(loaded))
    weighed = sorted(t for t in loaded.scenario.treatments
                     if setting.drug_per_month.get(t, (0, 0))[1] or setting.loading.get(t, (0, 0))[1])
    if weighed and "weight_kg" not in loaded.scenario.population.covariates:
        raise ScenarioError([Problem(str(economics_path(name)), f"treatments.{weighed[0]}",
                                     f"{', '.join(weighed)} is dosed per kg, but scenario {loaded.name} has no "
                                     "weight_kg covariate; add population.covariates.weight_kg to the scenario "
                                     "or dose in mg")])
    return setting


def _adverse_events_by_treatment(loaded: LoadedScenario) -> dict[str, list[str]]:
    return {name: list(t.adverse_events) for name, t in loaded.scenario.treatments.items()}


def _with_economics(tables, summary: pd.DataFrame, setting):
    from analysis.costs import patient_costs
    from analysis.economics import economics_summary, incremental_table, strategy_costs
    from sim.runner import RunTables

    costs = patient_costs(tables.episodes, tables.patients, setting, tables.adverse_events, tables.bursts)
    patients = tables.patients.merge(costs, on=["replicate", "strategy", "patient"], how="left", sort=False)
    by_strategy = strategy_costs(costs, setting.currency)
    summary = pd.concat([summary, economics_summary(by_strategy)], ignore_index=True)
    extra = {"economics.csv": by_strategy, "incremental.csv": incremental_table(by_strategy, setting)}
    return RunTables(tables.episodes, patients, tables.adverse_events, tables.bursts), summary, extra


def _economics_manifest(setting, loaded: LoadedScenario) -> dict:
    from sim.economics import unpriced_adverse_events

    return {
        "name": setting.name,
        "currency": setting.currency,
        "price_year": setting.price_year,
        "discount_costs_per_year": setting.cost_discount_per_year,
        "discount_qalys_per_year": setting.qaly_discount_per_year,
        "discounting": setting.method,
        "willingness_to_pay": list(setting.willingness_to_pay),
        "perspective": setting.perspective,
        "unpriced_adverse_events": unpriced_adverse_events(setting, _adverse_events_by_treatment(loaded)),
        "resolved": setting.resolved,
        "resolved_hash": setting.resolved_hash,
    }


def _warn_truncation(patients: pd.DataFrame, model, progress: bool) -> dict:
    """Shares of patients whose costs and QALYs stop before the horizon for a reason other
    than death (loss to follow-up, an end of observation); a warning on stderr if any."""
    from analysis.costs import truncation_shares

    shares = truncation_shares(patients, float(model.horizon_months))
    if shares["censored_share"] > 0:
        print(f"warning: costs and QALYs are truncated before the horizon for {shares['censored_share']:.1%} of "
              f"patients (lost to follow-up {shares['lost_to_followup_share']:.1%}, observation ended "
              f"{shares['observation_ended_share']:.1%}); for lifetime value set loss_to_followup: null",
              file=sys.stderr)
    return shares


def _guard_resources(model, loaded: LoadedScenario, progress: bool) -> None:
    """Refuse a run that cannot fit in memory (`ScenarioError`); warn on stderr above a minute."""
    estimate = estimate_run(model.patients, len(model.strategies), model.replicates)
    reason = too_large(estimate)
    if reason is not None:
        raise ScenarioError([Problem(str(loaded.file), "settings.patients", reason)])
    if progress and estimate.seconds > 60:
        print(f"note: {estimate.describe()} expected", file=sys.stderr)
