"""`adpath fit`: survival families fitted to a published drug-survival curve.

Input, a CSV with a header row (lines starting with `#` are comments, e.g. provenance):

- curve points: `time_months,survival,n_at_risk` - digitised Kaplan–Meier points
  (survival a proportion 0-1) and, on the rows where the publication gives it, the
  number at risk (a row may carry only one of the two; one at time 0, the cohort size,
  is required). Individual data are rebuilt by the Guyot 2012 algorithm.
- individual data: `time_months,event` - one row per patient, event 1 (stopped) or 0
  (censored).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.fitting import fit_all, yaml_block
from analysis.reconstruction import guyot, km_at, km_steps


class FitInputError(ValueError):
    """A CSV `adpath fit` cannot use; the message says where and how to fix it."""


def read_survival_csv(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """Individual data (months, event) from a curve-points or individual-data CSV, and what was read."""
    try:
        frame = pd.read_csv(path, comment="#", skipinitialspace=True)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise FitInputError(f"{path}: cannot read it as CSV ({exc})") from None
    columns = set(frame.columns)
    if "time_months" not in columns or not ({"survival", "event"} & columns):
        raise FitInputError(f"{path}: the header must name time_months and survival (curve points, optional "
                            f"n_at_risk) or time_months and event (one row per patient); got {', '.join(frame.columns)}")
    time = _numeric(frame, "time_months", path)
    if (time.dropna() < 0).any():
        raise FitInputError(f"{path}: time_months must not be negative (row {_first(time < 0)})")
    if "event" in columns:
        return _individual(frame, time, path)
    return _curve(frame, time, path)


def _numeric(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() & frame[column].notna()
    if bad.any():
        raise FitInputError(f"{path}: column {column}, row {_first(bad)}: {frame[column][bad].iloc[0]!r} is not a number")
    return values


def _first(mask: pd.Series) -> int:
    return int(np.flatnonzero(mask.to_numpy())[0]) + 2  # the file's line, after the header


def _individual(frame, time, path):
    event = _numeric(frame, "event", path)
    if time.isna().any() or event.isna().any() or not event.isin([0, 1]).all():
        raise FitInputError(f"{path}: every row needs time_months and event 0 (censored) or 1 (stopped)")
    if event.sum() == 0:
        raise FitInputError(f"{path}: no events (event = 1): nothing to fit")
    return time.to_numpy(float), event.to_numpy(bool), {"kind": "individual", "patients": len(frame)}


def _curve(frame, time, path):
    survival = _numeric(frame, "survival", path)
    at_risk = _numeric(frame, "n_at_risk", path) if "n_at_risk" in frame.columns else pd.Series(np.nan, frame.index)
    points = survival.notna() & time.notna()
    if ((survival[points] < 0) | (survival[points] > 1)).any():
        raise FitInputError(f"{path}: survival, row {_first(points & ((survival < 0) | (survival > 1)))}: give survival "
                            "as a proportion between 0 and 1 (divide percentages by 100)")
    risk = at_risk.notna() & time.notna()
    if not ((time[risk] == 0).any()):
        raise FitInputError(f"{path}: n_at_risk at time_months 0 (the number of patients at the start) is required")
    if (at_risk[risk] < 0).any() or (at_risk[risk] % 1 != 0).any():
        raise FitInputError(f"{path}: n_at_risk must be whole numbers >= 0")
    if points.sum() < 2:
        raise FitInputError(f"{path}: at least two curve points (time_months with survival) are needed")
    risk_t, risk_n = time[risk].to_numpy(float), at_risk[risk].to_numpy(float)
    order = np.argsort(risk_t)
    if np.any(np.diff(risk_n[order]) > 0):
        raise FitInputError(f"{path}: n_at_risk must not increase with time")
    rebuilt = guyot(time[points].to_numpy(float), survival[points].to_numpy(float), risk_t[order],
                    risk_n[order].astype(int))
    read = {"kind": "curve", "points": int(points.sum()), "risk_times": risk_t[order],
            "curve": (time[points].to_numpy(float), survival[points].to_numpy(float))}
    return rebuilt.months, rebuilt.event, read


def fit_report(path: Path, key: str = "course", at_months: list[float] | None = None) -> tuple[str, str]:
    """The printed tables and the YAML block for the CSV at `path`."""
    months, event, read = read_survival_csv(path)
    fits = fit_all(months, event)
    best, runner_up = fits[0], fits[1]
    if at_months is None:
        at_months = [t for t in read.get("risk_times", [6, 12, 24, 36]) if 0 < t <= months.max()]
    km_t, km_s = km_steps(months, event)
    table = pd.DataFrame({"family": [f.family for f in fits],
                          "parameters (SE)": [", ".join(f"{k} {v:.4g} ({f.standard_errors[k]:.2g})"
                                                         for k, v in f.estimates.items()) for f in fits],
                          "log_likelihood": [round(f.log_likelihood, 2) for f in fits],
                          "AIC": [round(f.aic, 2) for f in fits], "BIC": [round(f.bic, 2) for f in fits],
                          "delta_AIC": [round(f.aic - best.aic, 2) for f in fits]})
    points = pd.DataFrame({"time_months": at_months})
    if read["kind"] == "curve":
        curve_t, curve_s = read["curve"]
        order = np.argsort(curve_t)
        points["published"] = km_at(curve_t[order], curve_s[order], at_months)
    points["km_of_data"] = km_at(km_t, km_s, at_months)
    for f in fits:
        points[f.family] = f.survival(at_months)
    what = (f"{len(months)} patients rebuilt by the Guyot et al. 2012 algorithm (BMC Med Res Methodol 12:9) from "
            f"{read['points']} curve points and {len(read['risk_times'])} numbers at risk"
            if read["kind"] == "curve" else f"{len(months)} patients' individual data")
    source = (f"adpath fit of {path} ({what}, {int(event.sum())} events); maximum likelihood with right censoring; "
              f"{best.family} best of {len(fits)} families by AIC ({best.aic:.1f}; next {runner_up.family} "
              f"{runner_up.aic:.1f})")
    notes = "".join(f"note: {f.family} reached |Q| = 10, the search's bound; ties or few points leave its shape "
                    "undetermined, prefer a simpler family of similar AIC\n"
                    for f in fits if f.family == "gengamma" and abs(f.estimates["Q"]) > 9.99)
    printed = (f"Fits to {path} ({what}), best AIC first:\n{table.to_string(index=False)}\n{notes}\n"
               f"Survival at the published times:\n{points.round(3).to_string(index=False)}\n")
    return printed, yaml_block(best, key, source)


def parse_times(text: str | None) -> list[float] | None:
    """Months from a comma-separated option value (None when not given)."""
    if text is None:
        return None
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise FitInputError(f"--at {text!r}: give months separated by commas, e.g. --at 6,12,24") from None
    if not values or any(not math.isfinite(v) or v <= 0 for v in values):
        raise FitInputError(f"--at {text!r}: give months above zero separated by commas, e.g. --at 6,12,24")
    return values
