"""Durations with units: `6 weeks`, `3 months`, `1.5 years`, `10 days`, or a number of months.

The model's clock runs in months. A month is a twelfth of a Julian year (30.4375 days),
so a week is 7/30.4375 month and a year is exactly 12 months.
"""

from __future__ import annotations

import math
import re

DAYS_PER_MONTH = 30.4375

MONTHS_PER_UNIT = {
    "day": 1.0 / DAYS_PER_MONTH,
    "week": 7.0 / DAYS_PER_MONTH,
    "month": 1.0,
    "year": 12.0,
}

_ALIASES = {
    "d": "day", "day": "day", "days": "day",
    "w": "week", "wk": "week", "wks": "week", "week": "week", "weeks": "week",
    "m": "month", "mo": "month", "month": "month", "months": "month",
    "y": "year", "yr": "year", "yrs": "year", "year": "year", "years": "year",
}

_DURATION = re.compile(r"^\s*([-+]?\d+(?:\.\d*)?|[-+]?\.\d+)\s*([A-Za-z]+)\s*$")


class DurationError(ValueError):
    """A duration that cannot be read; the message says how to write it."""


def parse_duration(value) -> float:
    """Return `value` in months.

    Accepts a number (already in months) or a string `<number> <unit>` with unit one of
    days, weeks, months, years (singular, plural or short forms such as `wk`, `mo`, `yr`).
    Negative, infinite and unreadable durations raise `DurationError`.
    """
    if isinstance(value, bool):
        raise DurationError(f"expected a duration such as '6 weeks', got {value!r}")
    if isinstance(value, (int, float)):
        months = float(value)
    elif isinstance(value, str):
        months = _parse_text(value)
    else:
        raise DurationError(f"expected a duration such as '6 weeks', got {value!r}")
    if not math.isfinite(months):
        raise DurationError(f"duration {value!r} is not finite")
    if months < 0:
        raise DurationError(f"duration {value!r} is negative; durations are >= 0")
    return months


def _parse_text(text: str) -> float:
    match = _DURATION.match(text)
    if match is None:
        try:
            return float(text)
        except ValueError:
            raise DurationError(
                f"cannot read duration {text!r}: write a number and a unit, "
                "e.g. '6 weeks', '3 months', '1.5 years'"
            ) from None
    number, unit = match.groups()
    canonical = _ALIASES.get(unit.lower())
    if canonical is None:
        raise DurationError(
            f"unknown time unit {unit!r} in {text!r}: use days, weeks, months or years"
        )
    return float(number) * MONTHS_PER_UNIT[canonical]


def format_months(months: float) -> str:
    """Return a short human reading of a duration in months, e.g. `18 months`, `6 weeks`."""
    if months == math.inf:
        return "unlimited"
    weeks = months / MONTHS_PER_UNIT["week"]
    if months < 2 and abs(weeks - round(weeks)) < 1e-6:
        return f"{round(weeks)} weeks"
    if months >= 24 and abs(months / 12 - round(months / 12)) < 1e-9:
        return f"{round(months / 12)} years"
    return f"{months:g} months"
