"""Background mortality: years until death of other causes from a life table.

Within a whole year of age the hazard is constant (`hazards[k]` per year for age
`knots[k]` .. `knots[k+1]`); past the table's last age it stays at the last year's.
Death comes where the cumulative hazard from the age at entry reaches -ln(1 - u).
"""

from __future__ import annotations

import math

from sim.rules.compile import rule


@rule
def years_to_death(age_years, u, knots, cumulative, hazards):
    """Years from `age_years` until death (inf if the hazard runs out)."""
    n = hazards.shape[0]
    age = max(age_years, knots[0])
    k = 0
    while k < n - 1 and knots[k + 1] <= age:
        k += 1
    target = cumulative[k] + (age - knots[k]) * hazards[k] - math.log1p(-u)
    j = 0
    while j < n - 1 and cumulative[j + 1] <= target:
        j += 1
    if hazards[j] == 0.0:
        return math.inf
    return knots[j] + (target - cumulative[j]) / hazards[j] - age
