"""Summaries of a parameter sweep: the grid, the one-way analysis (tornado) and the PSA.

Everything starts from ``sweep_summary.parquet`` (one row per task and metric, written by
``adpath sweep``) and keeps to the strategy-level key metrics by default:

- ``returned_to_topical_ever`` and ``on_topical_at_horizon`` (proportions of all
  patients of the strategy),
- ``first_line_median_drug_survival_months`` (months; NaN when not reached).

Replicates of a task are averaged first. Higher is taken as better for every key
metric when asking which strategy is best (a longer first-line drug survival means the
first drug kept working for longer).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special

#: The metrics the sweep figures and tables show: name -> (label, unit).
KEY_METRICS = {
    "returned_to_topical_ever": ("Ever returned to topical therapy", "proportion"),
    "on_topical_at_horizon": ("On topical therapy at the horizon", "proportion"),
    "first_line_median_drug_survival_months": ("Median drug survival of the first line", "months"),
}
#: Short names a sweep file's `report: metrics:` may use for the economic outcomes.
ECONOMIC_METRICS = ("cost", "qalys", "nmb", "incremental_cost", "incremental_qalys", "incremental_nmb", "icer")
#: Default metrics per analysis when the sweep has an economic setting (besides KEY_METRICS).
_ECONOMIC_DEFAULTS = {"grid": ("cost", "qalys", "icer", "nmb"),
                      "one_way": ("nmb", "incremental_cost", "incremental_qalys"),
                      "psa": ()}
_ECONOMIC_PATTERN = re.compile(
    r"^(?P<kind>mean_cost_total|incremental_cost|nmb_at_(?P<w1>[0-9.]+)|incremental_nmb_at_(?P<w2>[0-9.]+)"
    r"|icer)_(?P<currency>[A-Z]{3})(?P<per>_per_qaly)?$|^(?P<qalys>mean_qalys|incremental_qalys)$")
_POINT_KEYS = ["variant", "analysis", "parameter", "bound", "sample"]
_Z95 = special.ndtri(0.975)


@dataclass(frozen=True)
class SweepResults:
    """The results of a sweep directory: manifest, summary (task x metric) and tasks."""

    directory: Path
    manifest: dict
    summary: pd.DataFrame
    tasks: pd.DataFrame

    def labels(self) -> dict[str, str]:
        """Display names of strategies and treatments (from the manifest)."""
        labels = {}
        for key in ("strategies", "treatments"):
            for name, info in (self.manifest.get(key) or {}).items():
                labels[name] = str((info or {}).get("label") or name.replace("_", " "))
        return labels

    def strategies(self) -> list[str]:
        """Strategy names in the scenario's order."""
        declared = list(self.manifest.get("strategies") or {})
        found = list(dict.fromkeys(self.summary["strategy"]))
        return [s for s in declared if s in found] + [s for s in found if s not in declared]

    def economics(self) -> dict | None:
        """The sweep's economic setting as the manifest records it (None without one)."""
        return self.manifest.get("economics") or None

    def report_settings(self) -> dict:
        """The sweep file's `report:` block (metrics, willingness_to_pay, reference), or {}."""
        return (self.manifest.get("sweep") or {}).get("report") or {}

    def reference(self) -> str:
        """The strategy increments are taken against: `report.reference`, else the first."""
        return self.report_settings().get("reference") or self.strategies()[0]

    def willingness_to_pay(self) -> float | None:
        """The WTP at which NMB is shown: `report.willingness_to_pay`, else the setting's first."""
        economics = self.economics()
        if economics is None:
            return None
        return float(self.report_settings().get("willingness_to_pay") or economics["willingness_to_pay"][0])

    def metrics(self, analysis: str) -> list[str]:
        """The metrics the report shows for `analysis` (`grid`, `one_way` or `psa`): the
        sweep file's `report.metrics`, else the key metrics plus, with an economic setting,
        costs, QALYs, ICER and NMB (grid) or NMB and incremental cost and QALYs (one-way)."""
        chosen = self.report_settings().get("metrics")
        economics = self.economics()
        if chosen is None:
            chosen = [*KEY_METRICS, *(_ECONOMIC_DEFAULTS[analysis] if economics else ())]
        if economics is None:
            return [m for m in chosen if m not in ECONOMIC_METRICS]
        return [economic_metric_name(m, economics["currency"], self.willingness_to_pay()) for m in chosen]

    def parameter_columns(self, role: str) -> list[dict]:
        """The manifest's parameter columns of one role (`vary`, `one_way`, `psa`)."""
        return [p for p in self.manifest.get("parameters", []) if p.get("role") == role]


def load_sweep_results(directory: str | os.PathLike) -> SweepResults:
    """Load a sweep directory written by ``adpath sweep``.

    Raises
    ------
    FileNotFoundError
        When the directory has no ``sweep.json`` or no ``sweep_summary.parquet`` (no task
        finished yet).
    """
    directory = Path(directory)
    manifest_path, summary_path = directory / "sweep.json", directory / "sweep_summary.parquet"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{directory} is not a sweep directory (no sweep.json); run `adpath sweep` first")
    if not summary_path.is_file():
        raise FileNotFoundError(f"{directory} has no sweep_summary.parquet yet: no task has finished")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    tasks_path = directory / "sweep_tasks.parquet"
    tasks = pd.read_parquet(tasks_path) if tasks_path.is_file() else pd.DataFrame()
    results = SweepResults(directory, manifest, pd.read_parquet(summary_path), tasks)
    if results.economics() is None:
        return results
    derived = economic_metric_rows(results.summary, results.economics()["currency"],
                                   results.willingness_to_pay(), results.reference())
    return SweepResults(directory, manifest, pd.concat([results.summary, derived], ignore_index=True), tasks)


def economic_metric_name(short: str, currency: str, willingness_to_pay: float) -> str:
    """The summary's metric name of an economic outcome named in a sweep file (`nmb` ->
    `nmb_at_20000_GBP`); other names are returned as they are."""
    wtp = f"{willingness_to_pay:g}"
    return {"cost": f"mean_cost_total_{currency}", "qalys": "mean_qalys",
            "nmb": f"nmb_at_{wtp}_{currency}", "incremental_cost": f"incremental_cost_{currency}",
            "incremental_qalys": "incremental_qalys", "incremental_nmb": f"incremental_nmb_at_{wtp}_{currency}",
            "icer": f"icer_{currency}_per_qaly"}.get(short, short)


def economic_metric_rows(summary: pd.DataFrame, currency: str, willingness_to_pay: float,
                         reference: str) -> pd.DataFrame:
    """Per task and strategy, the economic outcomes derived from its mean cost and QALYs.

    Rows as the summary's (treatment empty, intervals empty): `nmb_at_<wtp>_<CUR>` (mean
    QALYs x WTP − mean cost, money per patient), `incremental_cost_<CUR>`,
    `incremental_qalys`, `incremental_nmb_at_<wtp>_<CUR>` (against `reference` on the same
    patients) and `icer_<CUR>_per_qaly` (incremental cost / incremental QALYs; empty for
    the reference and when the QALYs are equal). Costs and QALYs are discounted.
    """
    cost, qalys = f"mean_cost_total_{currency}", "mean_qalys"
    rows = summary[summary["treatment"].isna() & summary["metric"].isin([cost, qalys])]
    if rows.empty:
        return summary.iloc[0:0]
    context = rows.drop_duplicates(["task", "strategy"]).drop(columns=["metric", "value", "ci_low", "ci_high"])
    wide = rows.pivot_table(index=["task", "strategy"], columns="metric", values="value", observed=True)
    wtp = f"{willingness_to_pay:g}"
    nmb = wide[qalys] * willingness_to_pay - wide[cost]
    base = wide.xs(reference, level="strategy") if reference in wide.index.get_level_values("strategy") else None
    derived = {f"nmb_at_{wtp}_{currency}": nmb}
    if base is not None:
        tasks = wide.index.get_level_values("task")
        d_cost = wide[cost] - base[cost].reindex(tasks).to_numpy()
        d_qalys = wide[qalys] - base[qalys].reindex(tasks).to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            icer = (d_cost / d_qalys).where(d_qalys.abs() > 1e-12)
        icer[wide.index.get_level_values("strategy") == reference] = np.nan
        derived.update({f"incremental_cost_{currency}": d_cost, "incremental_qalys": d_qalys,
                        f"incremental_nmb_at_{wtp}_{currency}": d_qalys * willingness_to_pay - d_cost,
                        f"icer_{currency}_per_qaly": icer})
    frames = []
    for metric, values in derived.items():
        frame = values.rename("value").reset_index().assign(metric=metric, ci_low=np.nan, ci_high=np.nan)
        frames.append(frame.merge(context, on=["task", "strategy"], how="left"))
    return pd.concat(frames, ignore_index=True)[list(summary.columns)]


def metric_description(metric: str) -> tuple[str, str]:
    """A metric's label and unit (`proportion`, `months`, `money`, `qalys`, `money_per_qaly`
    or empty); economic labels carry the currency and the willingness to pay."""
    if metric in KEY_METRICS:
        return KEY_METRICS[metric]
    match = _ECONOMIC_PATTERN.match(metric)
    if match is None:
        return metric.replace("_", " "), ""
    if match["qalys"]:
        return ("QALYs" if match["qalys"] == "mean_qalys" else "Incremental QALYs"), "qalys"
    currency, kind = match["currency"], match["kind"]
    if kind == "mean_cost_total":
        return f"Cost ({currency})", "money"
    if kind == "incremental_cost":
        return f"Incremental cost ({currency})", "money"
    if kind == "icer":
        return f"ICER ({currency}/QALY)", "money_per_qaly"
    incremental = "Incremental net" if kind.startswith("incremental") else "Net"
    wtp = float(match["w1"] or match["w2"])
    return f"{incremental} monetary benefit ({currency}) at {wtp:,.0f}/QALY", "money"


def is_incremental(metric: str) -> bool:
    """Whether a metric is taken against the reference strategy (zero for it)."""
    return metric.startswith(("incremental_", "icer_"))


def key_metrics(summary: pd.DataFrame, metrics=tuple(KEY_METRICS)) -> pd.DataFrame:
    """Strategy-level rows of `metrics`, averaged over replicates.

    Returns
    -------
    pandas.DataFrame
        ``variant, analysis, parameter, bound, sample, strategy, metric, value, ci_low,
        ci_high, replicates``. With one replicate the 95% interval is the task's own
        (Wilson, or Kaplan–Meier for drug survival); with several, the mean's interval
        from the replicates' standard errors (each read off its own interval), as the
        replicates' patients are independent. Proportions' intervals stay within [0, 1].
        A median not reached in any replicate leaves the mean NaN.
    """
    rows = summary[summary["treatment"].isna() & summary["metric"].isin(list(metrics))]
    rows = rows.assign(variance=((rows["ci_high"] - rows["ci_low"]) / (2 * _Z95)) ** 2)
    keys = [*_POINT_KEYS, "strategy", "metric"]
    grouped = rows.groupby(keys, dropna=False, sort=False)
    out = grouped.agg(value=("value", lambda v: v.mean(skipna=False)), ci_low=("ci_low", "first"),
                      ci_high=("ci_high", "first"), variance=("variance", "sum"), replicates=("value", "size"))
    out = out.reset_index()
    several = out["replicates"] > 1
    half = _Z95 * np.sqrt(out["variance"]) / out["replicates"]
    out.loc[several, "ci_low"] = (out["value"] - half)[several]
    out.loc[several, "ci_high"] = (out["value"] + half)[several]
    proportion = out["metric"].map(lambda m: KEY_METRICS.get(m, ("", ""))[1] == "proportion")
    out.loc[proportion, ["ci_low", "ci_high"]] = out.loc[proportion, ["ci_low", "ci_high"]].clip(0.0, 1.0)
    return out.drop(columns="variance")


def grid_table(results: SweepResults) -> pd.DataFrame:
    """The key metrics of every grid variant's point task, with the grid's parameter values.

    Returns
    -------
    pandas.DataFrame
        ``variant, <grid parameter columns>, strategy, metric, value, ci_low, ci_high``.
    """
    points = key_metrics(results.summary, results.metrics("grid"))
    points = points[points["analysis"] == "point"]
    columns = [p["name"] for p in results.parameter_columns("vary")]
    values = results.summary.drop_duplicates("variant")[["variant", *columns]]
    table = points.merge(values, on="variant", how="left")
    return table[["variant", *columns, "strategy", "metric", "value", "ci_low", "ci_high"]]


def one_way_table(results: SweepResults) -> pd.DataFrame:
    """The one-way analysis: per variant, strategy, metric and parameter, the metric at the
    parameter's low and high values and at the base case, and the swing |high − low|.

    Returns
    -------
    pandas.DataFrame
        ``variant, strategy, metric, parameter, low_setting, base_setting, high_setting,
        at_low, base, at_high, swing``, ordered by swing (largest first) within each
        variant, strategy and metric. Settings are in the parameter's unit (see its column).
    """
    metrics = key_metrics(results.summary, results.metrics("one_way"))
    base = metrics[metrics["analysis"] == "point"][["variant", "strategy", "metric", "value"]]
    bounds = metrics[metrics["analysis"] == "one_way"]
    if bounds.empty:
        return pd.DataFrame(columns=["variant", "strategy", "metric", "parameter", "low_setting", "base_setting",
                                     "high_setting", "at_low", "base", "at_high", "swing"])
    wide = bounds.pivot_table(index=["variant", "strategy", "metric", "parameter"], columns="bound",
                              values="value", dropna=False).reset_index()
    wide = wide.rename(columns={"low": "at_low", "high": "at_high"})
    wide = wide.merge(base.rename(columns={"value": "base"}), on=["variant", "strategy", "metric"], how="left")
    wide = wide.merge(_settings(results), on=["variant", "parameter"], how="left")
    wide["swing"] = (wide["at_high"] - wide["at_low"]).abs()
    wide = wide.sort_values(["variant", "strategy", "metric", "swing"], ascending=[True, True, True, False],
                            kind="stable", na_position="last", ignore_index=True)
    return wide[["variant", "strategy", "metric", "parameter", "low_setting", "base_setting", "high_setting",
                 "at_low", "base", "at_high", "swing"]]


def _settings(results: SweepResults) -> pd.DataFrame:
    """The low, base and high value of each one-way parameter, per variant."""
    tasks = results.summary.drop_duplicates("task")
    rows = []
    for column in results.parameter_columns("one_way"):
        name, path = column["name"], column["path"]
        for variant, group in tasks.groupby("variant", sort=True):
            value = {bound: group.loc[(group["parameter"] == path) & (group["bound"] == bound), name]
                     for bound in ("low", "high")}
            point = group.loc[group["analysis"] == "point", name]
            rows.append({"variant": variant, "parameter": path,
                         "low_setting": _first(value["low"]), "high_setting": _first(value["high"]),
                         "base_setting": _first(point)})
    return pd.DataFrame(rows, columns=["variant", "parameter", "low_setting", "high_setting", "base_setting"])


def _first(series: pd.Series):
    return series.iloc[0] if len(series) else np.nan


def psa_samples(results: SweepResults) -> pd.DataFrame:
    """The key metrics of every PSA sample (averaged over replicates).

    Returns
    -------
    pandas.DataFrame
        ``variant, sample, strategy, metric, value``.
    """
    metrics = key_metrics(results.summary, results.metrics("psa"))
    samples = metrics[metrics["analysis"] == "psa"]
    return samples[["variant", "sample", "strategy", "metric", "value"]].reset_index(drop=True)


def psa_table(results: SweepResults) -> pd.DataFrame:
    """The PSA distribution of each key metric per variant and strategy.

    Returns
    -------
    pandas.DataFrame
        ``variant, strategy, metric, point`` (the deterministic base case), ``mean, sd,
        p2_5, median, p97_5`` (over samples; the 2.5–97.5% range is the 95% uncertainty
        interval), ``samples`` and ``not_reached`` (samples whose median was not reached).
    """
    samples = psa_samples(results)
    metrics = key_metrics(results.summary, results.metrics("psa"))
    point = metrics[metrics["analysis"] == "point"][["variant", "strategy", "metric", "value"]]
    grouped = samples.groupby(["variant", "strategy", "metric"], sort=False)["value"]
    table = grouped.agg(mean="mean", sd="std", p2_5=lambda v: v.quantile(0.025), median="median",
                        p97_5=lambda v: v.quantile(0.975), samples="size",
                        not_reached=lambda v: int(v.isna().sum())).reset_index()
    table = table.merge(point.rename(columns={"value": "point"}), on=["variant", "strategy", "metric"], how="left")
    return table[["variant", "strategy", "metric", "point", "mean", "sd", "p2_5", "median", "p97_5", "samples",
                  "not_reached"]]


def probability_best(results: SweepResults) -> pd.DataFrame:
    """Per variant and metric, the share of PSA samples in which each strategy is best.

    The best strategy has the highest value; ties share the sample equally. Samples in
    which a strategy's value is missing (a median not reached) are left out.

    Returns
    -------
    pandas.DataFrame
        ``variant, metric, strategy, probability, samples``.
    """
    samples = psa_samples(results)
    rows = []
    for (variant, metric), group in samples.groupby(["variant", "metric"], sort=False):
        wide = group.pivot_table(index="sample", columns="strategy", values="value", dropna=False)
        wide = wide.dropna()
        if wide.empty:
            continue
        best = wide.eq(wide.max(axis=1), axis=0)
        shares = best.div(best.sum(axis=1), axis=0).mean()
        for strategy in wide.columns:
            rows.append({"variant": variant, "metric": metric, "strategy": strategy,
                         "probability": float(shares[strategy]), "samples": len(wide)})
    return pd.DataFrame(rows, columns=["variant", "metric", "strategy", "probability", "samples"])


def psa_increments(results: SweepResults, reference: str | None = None) -> pd.DataFrame:
    """Differences of each strategy from `reference` (default: the first), sample by sample.

    The strategies of a sample share their virtual patients and their parameters, so the
    differences are paired.

    Returns
    -------
    pandas.DataFrame
        ``variant, sample, strategy, reference, metric, difference``.
    """
    samples = psa_samples(results)
    reference = reference or results.strategies()[0]
    wide = samples.pivot_table(index=["variant", "sample", "metric"], columns="strategy", values="value",
                               dropna=False)
    frames = []
    for strategy in [s for s in results.strategies() if s != reference and s in wide.columns]:
        difference = (wide[strategy] - wide[reference]).rename("difference").reset_index()
        frames.append(difference.assign(strategy=strategy, reference=reference))
    if not frames:
        return pd.DataFrame(columns=["variant", "sample", "strategy", "reference", "metric", "difference"])
    out = pd.concat(frames, ignore_index=True)
    return out[["variant", "sample", "strategy", "reference", "metric", "difference"]]


def increment_table(increments: pd.DataFrame) -> pd.DataFrame:
    """Summary of paired PSA differences: mean, 95% interval and the probability it is > 0.

    Returns
    -------
    pandas.DataFrame
        ``variant, strategy, reference, metric, mean, p2_5, p97_5, probability_higher``.
    """
    grouped = increments.dropna(subset=["difference"]).groupby(
        ["variant", "strategy", "reference", "metric"], sort=False)["difference"]
    table = grouped.agg(mean="mean", p2_5=lambda v: v.quantile(0.025), p97_5=lambda v: v.quantile(0.975),
                        probability_higher=lambda v: float((v > 0).mean()))
    return table.reset_index()
