"""Report sections that appear only when a run has them: waiting for limited places and
corticosteroid bursts (`bursts.parquet`, `months_waiting`), and cost-effectiveness
(`economics.csv`, `incremental.csv` from `adpath run --economics`).

Each section builder returns its HTML, its figures and its tables, in the report's own
types, so `analysis.report` places them like any other.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.html import escape, figure_html
from analysis.html import is_missing as _missing
from analysis.intervals import poisson_rate_interval, t_interval, wilson_interval


def care_section(run, context, render) -> tuple[str, list, list]:
    """Waiting for limited places and corticosteroid bursts, per strategy (empty if neither)."""
    from analysis.html import escape as _e
    from analysis.html import html_table as _html_table
    from analysis.report import ReportTable as _Table
    from analysis.report import number_text as _number
    from analysis.report import percent_text as _percent

    patients = run.patients
    waits = "months_waiting" in patients and (patients["months_waiting"] > 0).any()
    bursts = run.bursts is not None and len(run.bursts) > 0
    if not waits and not bursts:
        return "", [], []
    rows, records = [], []
    for s in context.strategies:
        mine = patients[patients["strategy"].astype(object) == s]
        record = _care_record(s, mine, run.bursts)
        records.append(record)
        rows.append([
            _e(context.labels[s]),
            _percent(record["waited_share"], record["waited_low"], record["waited_high"]),
            _number(record["months_waiting_mean"], record["months_waiting_low"], record["months_waiting_high"]),
            _number(record["bursts_per_patient_year"], record["bursts_low"], record["bursts_high"]),
            _number(record["bridge_bursts_per_patient_year"], math.nan, math.nan),
            _percent(record["rebound_share"], math.nan, math.nan),
        ])
    header = ["Strategy", "Waited for a place", "Months waited, among those who waited",
              "Corticosteroid bursts per patient-year", "of which bridges", "Bursts followed by a rebound"]
    html = ("<h2>Waiting and corticosteroid bursts</h2>"
            + _html_table(header, rows, [False] + [True] * 5)
            + '<p class="muted">Waiting: patients who waited for a limited place (biologic slots, '
              "phototherapy places) before a treatment could start, with Wilson 95% intervals; "
              "months waited is the mean over those who waited (t interval). Bursts: short systemic "
              "corticosteroid courses for flares and as bridges over a slow drug's onset, per "
              "patient-year of follow-up (exact Poisson interval).</p>")
    return html, [], [_Table("waiting_and_bursts", "Waiting for places and corticosteroid bursts by strategy.",
                             pd.DataFrame(records))]


def _care_record(strategy: str, patients: pd.DataFrame, bursts: pd.DataFrame | None) -> dict:
    n = len(patients)
    waiting = patients["months_waiting"] if "months_waiting" in patients else pd.Series(0.0, index=patients.index)
    waited = int((waiting > 0).sum())
    share_low, share_high = (float(v) for v in wilson_interval(waited, n)) if n else (math.nan, math.nan)
    waits = waiting[waiting > 0].to_numpy(float)
    mean, low, high = t_interval(waits) if waits.size else (math.nan, math.nan, math.nan)
    person_years = patients["follow_up_months"].sum() / 12.0
    mine = bursts[bursts["strategy"].astype(object) == strategy] if bursts is not None else pd.DataFrame()
    count = len(mine)
    _, rate_low, rate_high = poisson_rate_interval(count, person_years) if person_years else (0, math.nan, math.nan)
    rate_low, rate_high = float(rate_low), float(rate_high)
    bridges = int((mine["reason"].astype(object) == "bridge").sum()) if count else 0
    return {
        "strategy": strategy,
        "patients": n,
        "waited_share": waited / n if n else math.nan, "waited_low": share_low, "waited_high": share_high,
        "months_waiting_mean": mean, "months_waiting_low": low, "months_waiting_high": high,
        "bursts": count, "patient_years": person_years,
        "bursts_per_patient_year": count / person_years if person_years else math.nan,
        "bursts_low": rate_low, "bursts_high": rate_high,
        "bridge_bursts_per_patient_year": bridges / person_years if person_years else math.nan,
        "rebound_share": float(mine["rebound"].mean()) if count else math.nan,
    }


def economics_section(run, context, render) -> tuple[str, list, list]:
    """Costs, QALYs, the incremental analysis and net benefit (empty without --economics)."""
    from analysis.economics_plots import plot_costs_and_qalys
    from analysis.html import escape as _e
    from analysis.html import html_table as _html_table
    from analysis.report import ReportTable as _Table
    from analysis.report import number_text as _number

    economics = run.manifest.get("economics")
    path, incremental_path = run.run_dir / "economics.csv", run.run_dir / "incremental.csv"
    if not economics or not path.exists() or not incremental_path.exists():
        return "", [], []
    currency = economics["currency"]
    by_strategy = pd.read_csv(path)
    incremental = pd.read_csv(incremental_path)
    figure = render("costs_and_qalys", "Costs and QALYs by strategy",
                    f"Mean discounted cost per patient by component, and mean discounted QALYs, with 95% "
                    f"intervals ({currency}, {economics['price_year']} prices).",
                    lambda: plot_costs_and_qalys(by_strategy, currency, context.strategies, context.labels))
    rows = []
    for r in incremental.itertuples(index=False):
        r = r._asdict()
        icer = r.get(f"icer_{currency}_per_qaly")
        rows.append([
            _e(context.labels.get(r["strategy"], r["strategy"])),
            f"{r[f'cost_{currency}']:,.0f}", f"{r['qalys']:.3f}", _e(r["status"]),
            "" if _missing(r.get(f"incremental_cost_{currency}")) else f"{r[f'incremental_cost_{currency}']:,.0f}",
            "" if _missing(r.get("incremental_qalys")) else f"{r['incremental_qalys']:.3f}",
            "" if _missing(icer) else f"{icer:,.0f}",
            _e(context.labels.get(r["compared_with"], r["compared_with"]) if isinstance(r["compared_with"], str) else ""),
        ])
    header = ["Strategy", f"Cost ({currency})", "QALYs", "Status", f"Incremental cost ({currency})",
              "Incremental QALYs", f"ICER ({currency} per QALY)", "Compared with"]
    nmb_columns = [c for c in incremental.columns if c.startswith(f"nmb_{currency}_at_")]
    nmb_rows = [[_e(context.labels.get(r["strategy"], r["strategy"]))]
                + [f"{r[c]:,.0f}" for c in nmb_columns] for _, r in incremental.iterrows()]
    undiscounted = by_strategy[by_strategy["outcome"].isin([f"cost_total_undiscounted_{currency}", "qalys_undiscounted"])]
    names = {f"cost_total_undiscounted_{currency}": f"Cost ({currency})", "qalys_undiscounted": "QALYs"}
    plain_rows = [[_e(context.labels.get(r.strategy, r.strategy)), _e(names[r.outcome]),
                   _number(r.mean, r.ci_low, r.ci_high)] for r in undiscounted.itertuples(index=False)]
    html = (
        "<h2>Cost-effectiveness</h2>"
        + figure_html(figure, heading=False)
        + f"<p>Setting <b>{_e(economics['name'])}</b>: {_e(currency)} at {_e(economics['price_year'])} prices; "
        f"costs discounted at {economics['discount_costs_per_year']:.1%} and QALYs at "
        f"{economics['discount_qalys_per_year']:.1%} a year ({_e(economics['discounting'])}).</p>"
        + _html_table(header, rows, [False, True, True, False, True, True, True, False])
        + '<p class="muted">Strategies ordered by cost; dominated: another costs less and gains more; '
          "extendedly dominated: a mix of its neighbours would do better. ICERs compare each "
          "strategy on the frontier with the previous one.</p>"
        + "<h3>Net monetary benefit</h3>"
        + _html_table(["Strategy"] + [f"NMB at {float(c.rsplit('_', 1)[1]):,.0f} {currency}/QALY" for c in nmb_columns],
                      nmb_rows, [False] + [True] * len(nmb_columns))
        + "<h3>Undiscounted</h3>"
        + _html_table(["Strategy", "Outcome", "Mean per patient (95% CI)"], plain_rows, [False, False, True])
        + _unpriced(economics)
    )
    tables = [_Table("economics", "Mean costs and QALYs per strategy (discounted and undiscounted).", by_strategy),
              _Table("incremental", "Incremental analysis and net monetary benefit.", incremental)]
    return html, [figure], tables


def _unpriced(economics: dict) -> str:
    unpriced = economics.get("unpriced_adverse_events") or []
    if not unpriced:
        return ""
    return f'<p class="muted">Adverse events with no cost in this setting: {escape(", ".join(map(str, unpriced)))}.</p>'




def validation_section(run, context, render) -> tuple[str, list, list]:
    """Simulated first-line drug survival beside the real-world figures the scenario cites
    (`analysis/drug_survival_evidence.csv`); empty for a scenario the table does not name."""
    from analysis.real_world import TOLERANCE, compare
    from analysis.html import escape as _e
    from analysis.html import html_table as _html_table
    from analysis.report import ReportTable as _Table

    name = run.manifest.get("scenario_name") or ""
    table = compare(run.episodes, name)
    if table.empty:
        return "", [], []
    figure = render("drug_survival_validation", "Simulated against published drug survival",
                    "Each point is a published drug-survival figure (x) and the simulated Kaplan-Meier "
                    "drug survival at the same time (y, with its 95% interval); the band is +/- 10 "
                    "percentage points. Filled: validation (not used to derive the parameters); open: "
                    "input reproduction.", lambda: _plot_validation(table, TOLERANCE))
    rows = [[_e(r.drug), _e(r.kind.replace("_", " ")), f"{r.months:g}", f"{r.survival:.1%} (n={r.n})",
             f"{r.simulated:.1%} ({r.ci_low:.1%}-{r.ci_high:.1%})", f"{100 * r.difference:+.1f}",
             "yes" if r.within else "no", "yes" if r.enforced else _e(f"no: {r.why_not_enforced}"),
             _e(f"{r.publication}; {r.where}; {r.cohort}")] for r in table.itertuples()]
    header = ["Drug", "Kind", "Months", "Published", "Simulated (95% CI)", "Difference (points)",
              "Within 10 points", "Enforced", "Source"]
    validations = table[table["kind"] == "validation"]
    html = ("<h2>Validation: drug survival against real-world cohorts</h2>"
            + _html_table(header, rows, [False, False, True, True, True, True, False, False, False])
            + figure_html(figure)
            + f'<p class="muted">First-line episodes of the named strategy (upadacitinib: each patient\'s first '
              f"episode, at any line), any discontinuation an event. {len(validations)} validation points, "
              f"{int(validations['within'].sum())} within 10 points; {len(table) - len(validations)} input "
              "reproductions (the figure was used to derive the parameters, so meeting it checks the "
              "derivation, not the model).</p>")
    return html, [figure], [_Table("drug_survival_validation", "Simulated drug survival against the cited "
                                   "real-world figures (proportions; difference in percentage points).", table)]


def _plot_validation(table: pd.DataFrame, tolerance: float):
    import matplotlib

    from analysis.plots import new_figure, figure_style

    drugs = list(dict.fromkeys(table["drug"]))
    colours = matplotlib.colormaps["tab10"].colors
    with matplotlib.rc_context(figure_style()):
        fig = new_figure(6.5, 5.0)
        ax = fig.add_subplot()
        ax.fill_between([0, 1], [-tolerance, 1 - tolerance], [tolerance, 1 + tolerance], color="0.9", label="+/- 10 points")
        ax.plot([0, 1], [0, 1], color="0.5", linewidth=1)
        for i, drug in enumerate(drugs):
            for kind, face in (("validation", colours[i % 10]), ("input_reproduction", "white")):
                part = table[(table["drug"] == drug) & (table["kind"] == kind)]
                if part.empty:
                    continue
                x, y = part["survival"].to_numpy(float), part["simulated"].to_numpy(float)
                low, high = part["ci_low"].to_numpy(float), part["ci_high"].to_numpy(float)
                ax.errorbar(x, y, yerr=np.vstack([y - low, high - y]),
                            fmt="o", color=colours[i % 10], markerfacecolor=face, markersize=7, linewidth=1,
                            label=f"{drug} ({kind.replace('_', ' ')})")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="Published drug survival", ylabel="Simulated drug survival")
        ax.legend(fontsize=8, loc="upper left")
    return fig
