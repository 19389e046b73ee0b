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
    keyed = outcomes.assign(strategy=outcomes["strategy"].astype(object))
    keyed = keyed.set_index(["replicate", "patient", "strategy"])
    # One reshape for every metric: each reshape sorts all the patients' keys.
    wide = keyed[list(metrics)].astype(float).unstack("strategy")
    rows = []
    for metric in metrics:
        for strategy in strategies:
            if strategy == reference:
                continue
            pairs = (wide[(metric, strategy)] - wide[(metric, reference)]).dropna()
            rows.append((strategy, reference, metric, *_paired_estimate(pairs, confidence)))
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


def _paired_estimate(pairs: pd.Series, confidence: float) -> tuple:
    replicates = pairs.index.get_level_values("replicate")
    n_replicates = len(np.unique(replicates))
    if n_replicates >= 2:
        means = pairs.groupby(replicates).mean().to_numpy()
        mean, low, high = t_interval(means, confidence)
    else:
        mean, low, high = t_interval(pairs.to_numpy(), confidence)
    return mean, low, high, len(pairs), n_replicates


def _strategies(column: pd.Series) -> list[str]:
    if isinstance(column.dtype, pd.CategoricalDtype):
        used = set(column.astype(object).unique())
        return [c for c in column.cat.categories if c in used]
    return list(dict.fromkeys(column))
