"""Differences between strategies, paired on the virtual patient.

Strategies of a run are applied to the same virtual patients with common random
numbers, so the same ``(replicate, patient)`` appears under every strategy. A difference
is estimated on those pairs: the interval reflects how much the strategy changes the
outcome of the same patient, which is far narrower (and more honest) than comparing two
independent intervals. With one replicate the paired differences of the patients are
the independent units (t-interval); with several, the replicates' mean differences are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.intervals import t_interval

#: Patient outcomes compared between strategies by default (see
#: ``analysis.outcomes.patient_outcomes``).
DEFAULT_METRICS = (
    "returned_to_topical_ever",
    "on_topical_at_horizon",
    "lines_used",
    "months_systemic",
    "months_topical",
    "months_supportive_care",
)


def strategy_differences(
    outcomes: pd.DataFrame,
    reference: str | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Paired differences of patient outcomes between each strategy and a reference.

    Parameters
    ----------
    outcomes : pandas.DataFrame
        One row per replicate, strategy and patient, e.g. from
        ``analysis.outcomes.patient_outcomes``.
    reference : str, optional
        Strategy subtracted from the others; default: the first strategy.
    metrics : sequence of str
        Outcome columns to compare; a difference has the column's unit (proportions for
        0/1 columns, months, counts).
    confidence : float
        Level of the intervals.

    Returns
    -------
    pandas.DataFrame
        ``strategy``, ``reference``, ``metric``, ``difference`` (strategy minus
        reference), ``ci_low``, ``ci_high``, ``pairs`` (patients under both strategies),
        ``replicates``.
    """
    strategies = _strategies(outcomes["strategy"])
    reference = strategies[0] if reference is None else reference
    if reference not in strategies:
        raise ValueError(f"reference strategy {reference!r} is not in the run: {strategies}")
    rows = []
    replicate, by_strategy = _paired_rows(outcomes, strategies)
    for metric in metrics:
        values = _by_patient(outcomes[metric].astype(float).to_numpy(), by_strategy, len(replicate), len(strategies))
        reference_values = values[:, strategies.index(reference)]
        for i, strategy in enumerate(strategies):
            if strategy == reference:
                continue
            pairs = values[:, i] - reference_values
            kept = ~np.isnan(pairs)
            rows.append((strategy, reference, metric, *_paired_estimate(pairs[kept], replicate[kept], confidence)))
    columns = [
        "strategy",
        "reference",
        "metric",
        "difference",
        "ci_low",
        "ci_high",
        "pairs",
        "replicates",
    ]
    return pd.DataFrame(rows, columns=columns)


def _paired_rows(outcomes: pd.DataFrame, strategies: list[str]) -> tuple[np.ndarray, tuple]:
    """The replicate of every virtual patient, in (replicate, patient) order, and for every
    row of `outcomes` its patient's position in that order and its strategy's in `strategies`
    (rows of other strategies left out). Sorting the integer keys once replaces a reshape of
    every outcome keyed by strategy names (seconds at a million patients)."""
    replicate, patient = outcomes["replicate"].to_numpy(), outcomes["patient"].to_numpy()
    counted = _counted_positions(replicate, patient)
    if counted is not None:
        position, first_replicate = counted
    else:
        order = np.lexsort((patient, replicate))
        sorted_replicate, sorted_patient = replicate[order], patient[order]
        new = np.ones(len(order), dtype=bool)
        new[1:] = (sorted_replicate[1:] != sorted_replicate[:-1]) | (sorted_patient[1:] != sorted_patient[:-1])
        position = np.empty(len(order), dtype=np.int64)
        position[order] = np.cumsum(new) - 1
        first_replicate = sorted_replicate[new]
    strategy = _strategy_codes(outcomes["strategy"], strategies)
    kept = strategy >= 0
    cell = position[kept] * len(strategies) + strategy[kept]
    if len(cell) and np.bincount(cell).max() > 1:
        raise ValueError("outcomes hold a (replicate, patient) twice under one strategy")
    return first_replicate, (np.flatnonzero(kept), position[kept], strategy[kept])


def _counted_positions(replicate: np.ndarray, patient: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """`_paired_rows`' positions in (replicate, patient) order and the replicate of each
    position, by marking the (replicate, patient) cells present and counting them instead of
    sorting, when the numbers are small non-negative integers (as the engines write them);
    None otherwise."""
    if not len(patient) or replicate.dtype.kind not in "iu" or patient.dtype.kind not in "iu":
        return None
    low_replicate, high_replicate = int(replicate.min()), int(replicate.max())
    high_patient = int(patient.max())
    cells = (high_replicate - low_replicate + 1) * (high_patient + 1)
    if int(patient.min()) < 0 or cells > 4 * len(patient) + 1024:
        return None
    key = (replicate.astype(np.int64) - low_replicate) * (high_patient + 1) + patient
    present = np.zeros(cells, dtype=bool)
    present[key] = True
    rank = np.cumsum(present) - 1
    cell = np.flatnonzero(present)
    return rank[key], (cell // (high_patient + 1) + low_replicate).astype(replicate.dtype)


def _strategy_codes(column: pd.Series, strategies: list[str]) -> np.ndarray:
    """Position of each row's strategy in `strategies` (-1 for none of them)."""
    codes = {name: i for i, name in enumerate(strategies)}
    if isinstance(column.dtype, pd.CategoricalDtype):
        lookup = np.array([codes.get(c, -1) for c in column.cat.categories] + [-1], dtype=np.int64)
        return lookup[column.cat.codes.to_numpy()]  # code -1 (missing) picks the final -1
    return np.array([codes.get(s, -1) for s in column.astype(object)], dtype=np.int64)


def _by_patient(values: np.ndarray, by_strategy: tuple, patients: int, strategies: int) -> np.ndarray:
    """Patients x strategies matrix of one outcome; NaN where a patient lacks a strategy."""
    rows, position, strategy = by_strategy
    out = np.full((patients, strategies), np.nan)
    out[position, strategy] = values[rows]
    return out


def _paired_estimate(pairs: np.ndarray, replicates: np.ndarray, confidence: float) -> tuple:
    """Mean paired difference with its interval, number of pairs and of replicates
    (`replicates` ascending, the order of the pairs)."""
    n_replicates = int(len(replicates) > 0) + int(np.count_nonzero(replicates[1:] != replicates[:-1]))
    if n_replicates >= 2:
        means = pd.Series(pairs).groupby(replicates).mean().to_numpy()
        mean, low, high = t_interval(means, confidence)
    else:
        mean, low, high = t_interval(pairs, confidence)
    return mean, low, high, len(pairs), n_replicates


def _strategies(column: pd.Series) -> list[str]:
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy()
        used = np.bincount(codes[codes >= 0], minlength=len(column.cat.categories)) > 0
        return [c for c, present in zip(column.cat.categories, used) if present]
    return list(dict.fromkeys(column))
