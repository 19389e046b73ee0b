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

from analysis.html import escape, figure_html, html_table
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
    """The cost-effectiveness part of the report, as an HTA model description: the model
    (perspective, population, comparators, horizon, time, discounting, prices), a warning
    where follow-up truncates costs and QALYs, costs by category, the incremental analysis
    and net benefit, and every economic input with its value and source (empty without
    --economics)."""
    economics = run.manifest.get("economics")
    path, incremental_path = run.run_dir / "economics.csv", run.run_dir / "incremental.csv"
    if not economics or not path.exists() or not incremental_path.exists():
        return "", [], []
    # Imported only here: it imports seaborn (about 2 s), which a report without costs never needs.
    from analysis.economics_plots import plot_costs_and_qalys

    currency = economics["currency"]
    by_strategy = pd.read_csv(path)
    incremental = pd.read_csv(incremental_path)
    figure = render("costs_and_qalys", "Costs and QALYs by strategy",
                    f"Mean discounted cost per patient by category, and mean discounted QALYs, with 95% Monte "
                    f"Carlo intervals (the simulation error of {len(run.patients):,} simulated patient-strategies, "
                    f"not parameter uncertainty; {currency}, {economics['price_year']} prices).",
                    lambda: plot_costs_and_qalys(by_strategy, currency, context.strategies, context.labels))
    inputs = _inputs_frame(economics)
    html = (
        "<h2>Cost-effectiveness</h2>"
        + _model_description(run, context, economics)
        + _truncation_warning(run, context)
        + figure_html(figure, heading=False)
        + "<h3>Costs, QALYs and life-years per patient</h3>"
        + _category_table(by_strategy, context, currency)
        + "<h3>Incremental analysis</h3>"
        + _incremental_html(incremental, context, currency)
        + _unpriced(economics)
        + _inputs_html(inputs, economics)
    )
    tables = [_Table("economics", "Mean costs (by category), QALYs and life-years per strategy, discounted and "
                     "undiscounted, with 95% Monte Carlo intervals.", by_strategy),
              _Table("incremental", "Incremental analysis and net monetary benefit.", incremental)]
    if not inputs.empty:
        tables.append(_Table("economic_inputs", "Every input of the economic setting with its value and source.",
                             inputs))
    return html, [figure], tables


def _Table(*args):
    from analysis.report import ReportTable as Table

    return Table(*args)


def _years(months: float) -> str:
    years = months / 12.0
    return f"{years:g} years" if abs(years - round(years)) < 1e-9 else f"{years:.1f} years ({months:g} months)"


def _model_description(run, context, economics: dict) -> str:
    scenario = run.manifest.get("scenario") or {}
    patients = run.patients
    population = str(run.manifest.get("description") or "")
    if "age_years" in patients:
        ages = patients["age_years"].to_numpy(float)
        population += f" Age at entry: mean {ages.mean():.1f} years (range {ages.min():.0f}-{ages.max():.0f})."
    if "sex" in patients:
        population += f" Men: {(patients['sex'].astype(object) == 'male').mean():.0%}."
    per_strategy = run.manifest.get("patients") or int(patients.groupby("strategy", observed=True).size().max())
    population += f" {per_strategy:,} virtual patients per strategy and replicate, the same patients in every strategy."
    comparators = ", ".join(context.labels[s] for s in context.strategies)
    mortality = scenario.get("mortality") if isinstance(scenario, dict) else None
    horizon = _years(context.horizon_months)
    if mortality:
        horizon += " (background mortality from a life table: effectively lifetime)" \
            if context.horizon_months >= 600 else " (with background mortality)"
    resolved = economics.get("resolved") or {}
    adjustment = resolved.get("age_adjustment")
    children = resolved.get("children")
    utilities = "Health-state utilities by state"
    if adjustment:
        utilities += (f", adjusted for age {adjustment['method']}ly by the general-population norm "
                      f"{adjustment['norm'].replace('_', ' ')} (reference age {adjustment['reference_age'] / 12:g} years)")
    if children:
        utilities += f"; children's own utilities until {children['until_age'] / 12:g} years"
    discount = (f"costs {economics['discount_costs_per_year']:.1%} a year, QALYs "
                f"{economics['discount_qalys_per_year']:.1%} a year ({economics['discounting']}"
                + (": whole-year factors" if economics["discounting"] == "annual" else ": exp(-rt), exact") + ")")
    facts = [
        ("Economic setting", economics["name"]),
        ("Perspective", economics.get("perspective") or NOT_GIVEN),
        ("Population", population.strip()),
        ("Comparators", comparators),
        ("Time horizon", horizon),
        ("Model", "individual-patient discrete-event simulation in continuous time: no cycles (so no half-cycle "
                  "correction); every cost and QALY integrated exactly over each patient's months in each state"),
        ("Discounting", discount),
        ("Currency and price year", f"{currency_of(economics)}, {economics['price_year']} prices"),
        ("Outcomes", f"{utilities}; one-off disutilities for adverse events and corticosteroid bursts; "
                     "life-years discounted and undiscounted"),
        ("Willingness to pay", ", ".join(f"{w:,.0f} {currency_of(economics)}/QALY" for w in economics["willingness_to_pay"])),
        ("Inputs hash", economics.get("resolved_hash") or NOT_GIVEN),
    ]
    rows = [[escape(k), escape(v)] for k, v in facts]
    return "<h3>Model description</h3>" + html_table(["Item", "Value"], rows, [False, False])


NOT_GIVEN = "not given"


def currency_of(economics: dict) -> str:
    """The currency code of a run's economic setting."""
    return str(economics["currency"])


def _truncation_warning(run, context) -> str:
    from analysis.costs import truncation_shares

    shares = (run.manifest.get("economics") or {}).get("truncated") or truncation_shares(
        run.patients, context.horizon_months)
    if not shares["censored_share"]:
        return ""
    return (f'<p class="warn"><b>Warning:</b> costs and QALYs stop before the {escape(_years(context.horizon_months))} '
            f"horizon for {shares['censored_share']:.1%} of patients: {shares['lost_to_followup_share']:.1%} lost to "
            f"follow-up and {shares['observation_ended_share']:.1%} whose observation ended (a personal follow-up "
            "or an age limit). Their later costs and QALYs are missing, not zero by choice; for lifetime value "
            "set <code>loss_to_followup: null</code> and follow everyone to the horizon.</p>")


_CATEGORY_NAMES = {"drugs": "Drugs", "administration": "Administration", "monitoring": "Monitoring",
                   "health_states": "Health states", "events": "Events", "total": "Total"}


def _category_table(by_strategy: pd.DataFrame, context, currency: str) -> str:
    from analysis.report import number_text as _number

    means = by_strategy.set_index(["strategy", "outcome"])
    outcomes = [(f"Cost: {name.lower()} ({currency})", f"cost_{key}_{currency}")
                for key, name in _CATEGORY_NAMES.items()]
    outcomes += [(f"Cost: total undiscounted ({currency})", f"cost_total_undiscounted_{currency}"),
                 ("QALYs", "qalys"), ("QALYs undiscounted", "qalys_undiscounted"),
                 ("Life-years", "life_years_discounted"), ("Life-years undiscounted", "life_years")]
    strategies = [s for s in context.strategies if s in set(by_strategy["strategy"])]
    rows = []
    for label, outcome in outcomes:
        if (strategies[0], outcome) not in means.index:
            continue
        cells = [escape(label)]
        for s in strategies:
            r = means.loc[(s, outcome)]
            cells.append(_money(r["mean"], r["ci_low"], r["ci_high"]) if outcome.startswith("cost")
                         else _years_value(r["mean"], r["ci_low"], r["ci_high"]))
        rows.append(cells)
    return (html_table(["Per patient (discounted unless said)"] + [context.labels[s] for s in strategies], rows,
                       [False] + [True] * len(strategies))
            + '<p class="muted">Means with 95% Monte Carlo intervals in brackets: the simulation error from the '
              "finite number of virtual patients (t interval over patients, or over replicates), not the "
              "uncertainty of the inputs (for that, a PSA: <code>adpath sweep</code>).</p>")


def _years_value(value, low, high) -> str:
    """QALYs or life-years with three decimals (differences between strategies are often below 0.1)."""
    if _missing(value):
        return "—"
    return f"{value:.3f} ({low:.3f} to {high:.3f})".replace("-", "\u2212")


def _money(value, low, high) -> str:
    if _missing(value):
        return "—"
    return f"{value:,.0f} ({low:,.0f} to {high:,.0f})".replace("-", "\u2212")


def _incremental_html(incremental: pd.DataFrame, context, currency: str) -> str:
    def label(name) -> str:
        if not isinstance(name, str) or not name:
            return ""
        return " and ".join(context.labels.get(n, n) for n in name.split(" and "))

    rows = []
    for r in incremental.to_dict("records"):
        status = r["status"]
        if status in ("dominated", "extendedly dominated"):
            beaten = label(r.get("dominated_by"))
            said = ("Dominated by " if status == "dominated" else "Extendedly dominated by ") + beaten
            increments = [f"{r[f'incremental_cost_{currency}']:,.0f}", f"{r['incremental_qalys']:.3f}", escape(said)]
        elif status == "reference":
            increments = ["reference"] * 2 + ["—"]
        else:
            increments = [f"{r[f'incremental_cost_{currency}']:,.0f}", f"{r['incremental_qalys']:.3f}",
                          f"{r[f'icer_{currency}_per_qaly']:,.0f}"]
        rows.append([escape(context.labels.get(r["strategy"], r["strategy"])), f"{r[f'cost_{currency}']:,.0f}",
                     f"{r['qalys']:.3f}", escape(status), *increments, escape(label(r.get("compared_with")))])
    header = ["Strategy", f"Cost ({currency})", "QALYs", "Status", f"Incremental cost ({currency})",
              "Incremental QALYs", f"ICER ({currency} per QALY)", "Compared with"]
    nmb_columns = [c for c in incremental.columns if c.startswith(f"nmb_{currency}_at_")]
    nmb_rows = [[escape(context.labels.get(r["strategy"], r["strategy"]))] + [f"{r[c]:,.0f}" for c in nmb_columns]
                for _, r in incremental.iterrows()]
    return (html_table(header, rows, [False, True, True, False, True, True, True, False])
            + '<p class="muted">Discounted means; strategies ordered by cost. Dominated: another strategy costs '
              "less and gains more QALYs (named; the increments are over it); extendedly dominated: a mix of the "
              "two named strategies would do better (increments over the cheaper). ICERs compare each strategy "
              "on the frontier with the previous one.</p>"
            + "<h3>Net monetary benefit</h3>"
            + html_table(["Strategy"] + [f"NMB at {float(c.rsplit('_', 1)[1]):,.0f} {currency}/QALY"
                                         for c in nmb_columns], nmb_rows, [False] + [True] * len(nmb_columns)))


def _inputs_frame(economics: dict) -> pd.DataFrame:
    from sim.economics import input_rows

    resolved = economics.get("resolved")
    return pd.DataFrame(input_rows(resolved) if resolved else [], columns=["path", "value", "source"])


def _inputs_html(inputs: pd.DataFrame, economics: dict) -> str:
    if inputs.empty:
        return ""
    rows = [[escape(r.path), escape(r.value), escape(r.source or "not recorded")] for r in inputs.itertuples()]
    return ("<h3>Economic inputs</h3><p>Every value of the setting "
            f"<b>{escape(economics['name'])}</b> as the run used it (durations in days, months or years), with "
            "its source; <code>assumption:</code> marks a value no source gives.</p>"
            + html_table(["Input", "Value", "Source"], rows, [False, False, False], "params"))


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


def diverted_by_workup(patients: pd.DataFrame) -> np.ndarray:
    """Which patients the work-up at entry diverted: back on topical therapy (a first return
    to topical) without a single systemic episode, whatever happened after (loss, death)."""
    return (patients["episodes"].to_numpy() == 0) & patients["months_to_first_topical"].notna().to_numpy()


def workup_section(run, context, render) -> tuple[str, list, list]:
    """How many patients the work-up at entry diverted per strategy (empty without a work-up)."""
    from analysis.report import ReportTable
    from analysis.report import percent_text as _percent

    workup = (run.manifest.get("scenario") or {}).get("workup")
    patients = run.patients
    diverted = diverted_by_workup(patients)
    if not workup and not diverted.any():
        return "", [], []
    rows, records = [], []
    strategy = patients["strategy"].astype(object).to_numpy()
    for s in context.strategies:
        mine = strategy == s
        n, k = int(mine.sum()), int((diverted & mine).sum())
        low, high = (float(v) for v in wilson_interval(k, n)) if n else (math.nan, math.nan)
        share = k / n if n else math.nan
        records.append({"strategy": s, "patients": n, "diverted": k, "diverted_share": share,
                        "diverted_low": low, "diverted_high": high})
        rows.append([escape(context.labels[s]), f"{k:,} of {n:,}", _percent(share, low, high)])
    found = (workup or {}).get("found")
    found_text = ""
    if isinstance(found, dict) and "p" in found:
        found_text = f" The scenario's share in whom a factor is found is {float(found['p']):.0%}."
    html = ("<h2>Work-up at entry</h2>"
            + html_table(["Strategy", "Diverted by the work-up", "Share (95% CI)"], rows, [False, True, True])
            + '<p class="muted">Before a systemic drug, treatable exacerbating factors are excluded '
              "(non-adherence to topical therapy, secondary infection, contact allergy to topical "
              "treatments). Diverted: a factor was found and treated, and the patient went back to "
              "topical therapy without a systemic drug (counted whatever happened after: loss to "
              "follow-up or death). The work-up comes before any strategy differs, so the same patients "
              "are diverted under every strategy; patients whose observation ended during the work-up "
              f"are not counted (Wilson 95% intervals).{escape(found_text)}</p>")
    return html, [], [ReportTable("workup_diverted", "Patients diverted by the work-up at entry, by strategy.",
                                  pd.DataFrame(records))]
