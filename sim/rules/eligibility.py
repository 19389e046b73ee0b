"""Who may start a treatment: covariate conditions, the line of therapy, earlier failures.

A condition compares one number with a threshold: a numeric covariate (`at_least`,
`below`), a yes/no covariate coded 0/1 (`is`), a categorical covariate coded by its
level's number (`in`, `not_in`: `levels[k]` says whether level k is in the list), or
the line number of an episode (the same comparisons).
"""

from __future__ import annotations

import numpy as np

from sim.rules.compile import rule

AT_LEAST, BELOW, IS, IN, NOT_IN = range(5)
OPERATORS = ("at_least", "below", "is", "in", "not_in")


@rule(inline=True)
def condition_holds(operator, x, value, levels, c):
    """Whether `x` (a covariate's number or a line number) satisfies condition `c`
    (`levels[c, k]`: level k is in its list)."""
    inside = operator >= IN and levels[c, int(x)]
    return compares(operator, x, value, inside)


@rule
def compares(operator, x, value, inside):
    """`condition_holds` with the level lookup done: `inside` says whether level `x` is in the
    condition's list (read only by `in` and `not_in`)."""
    if operator == AT_LEAST:
        return x >= value
    if operator == BELOW:
        return x < value
    if operator == IS:
        return (x != 0.0) == (value != 0.0)
    return inside if operator == IN else not inside


@rule(inline=True)
def may_start(treatment, failed, allowed, requires_failure):
    """Whether a patient may start `treatment` now: allowed by their age group and covariates
    (`allowed[t]`), not failed before (`failed[t]`), and every treatment it must come after
    (`requires_failure[treatment, j]`) failed."""
    if failed[treatment] or not allowed[treatment]:
        return False
    for j in range(requires_failure.shape[1]):
        if requires_failure[treatment, j] and not failed[j]:
            return False
    return True


@rule
def may_start_coded(treatment, failed_bits, allowed_bits, required_bits):
    """`may_start` on bit sets (bit t for treatment t, so at most 63 treatments): `failed_bits`
    the treatments failed, `allowed_bits` those allowed, `required_bits` those `treatment` must
    come after."""
    bit = np.int64(1) << np.int64(treatment)
    if failed_bits & bit or not allowed_bits & bit:
        return False
    return required_bits & ~failed_bits == 0


@rule
def first_line_choice(u, cumulative, s, count):
    """The position (0-based) in strategy `s`'s line list of its first line, drawn by `u` from its
    cumulative first-line weights `cumulative[s, :count]` (not necessarily normalised)."""
    target = u * cumulative[s, count - 1]
    k = 0
    while k < count - 1 and cumulative[s, k] <= target:
        k += 1
    return k


def levels_mask(levels: tuple, chosen) -> np.ndarray:
    """One row of the `levels` argument of `condition_holds` for a list of chosen level names."""
    return np.array([level in set(chosen) for level in levels], dtype=np.bool_)
