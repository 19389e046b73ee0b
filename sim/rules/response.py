"""Response at the assessment: the probability after covariate and line modifiers.

One odds adjustment serves every modifier. An odds ratio of 0 or of infinity is a
certainty that overrides the base probability (0 -> never, inf -> always, even from a
base of 1 or 0); otherwise a certain base stays certain (p = 1 stays 1, p = 0 stays 0).
"""

from __future__ import annotations

import math

from sim.rules.compile import rule


@rule
def adjusted_odds(probability, odds_ratio):
    """`probability` with its odds multiplied by `odds_ratio` (a probability in [0, 1])."""
    if odds_ratio == 0.0:
        return 0.0
    if math.isinf(odds_ratio):
        return 1.0
    if probability >= 1.0:
        return 1.0
    if probability <= 0.0:
        return 0.0
    odds = probability / (1.0 - probability) * odds_ratio
    return odds / (1.0 + odds)


@rule
def modified_response(probability, replacement, odds_ratio):
    """The response probability where a modifier's condition holds: its `replacement`
    probability if it has one (not NaN), else `probability` adjusted by `odds_ratio`."""
    if not math.isnan(replacement):
        return replacement
    return adjusted_odds(probability, odds_ratio)


@rule
def responds(u, probability):
    """Whether the patient responds (uniform `u` below the response probability)."""
    return u < probability
