"""The one decorator every rule is compiled with."""

from __future__ import annotations

import numba


def rule(function=None, *, inline: bool = False):
    """Compile `function` with Numba in nopython mode, cached on disk (`cache=True`).

    `@rule(inline=True)` inlines it into its callers at Numba's level: for helpers that take
    the packed model (a tuple of many arrays), whose every call would otherwise count a
    reference to each array. Under `NUMBA_DISABLE_JIT=1` Numba returns the function
    unchanged, so the same source runs as plain Python (slow, but the same numbers).
    """
    options = {"cache": True, "inline": "always"} if inline else {"cache": True}
    if function is None:
        return numba.njit(**options)
    return numba.njit(**options)(function)
