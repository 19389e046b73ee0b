import pytest

from sim.units import DAYS_PER_MONTH, DurationError, format_months, parse_duration


@pytest.mark.parametrize(
    ("text", "months"),
    [
        ("6 weeks", 6 * 7 / DAYS_PER_MONTH),
        ("3 months", 3.0),
        ("1.5 years", 18.0),
        ("10 days", 10 / DAYS_PER_MONTH),
        ("1 year", 12.0),
        ("2 wk", 14 / DAYS_PER_MONTH),
        (4, 4.0),
        (2.5, 2.5),
        ("7", 7.0),
    ],
)
def test_durations_are_read_in_months(text, months):
    assert parse_duration(text) == pytest.approx(months)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("6 fortnights", "unknown time unit 'fortnights'"),
        ("six weeks", "cannot read duration"),
        ("-3 months", "negative"),
        (-1, "negative"),
        (True, "expected a duration"),
        ("inf", "not finite"),
    ],
)
def test_bad_durations_say_what_is_wrong(text, fragment):
    with pytest.raises(DurationError, match=fragment):
        parse_duration(text)


def test_durations_print_readably():
    assert format_months(120.0) == "10 years"
    assert format_months(parse_duration("6 weeks")) == "6 weeks"
    assert format_months(3.0) == "3 months"
