"""HTTP-date parsing and formatting: the three RFC 1945 §3.3 forms, and garbage."""

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.httpdate import format_http_date, parse_http_date

NOV_6 = datetime(1994, 11, 6, 8, 49, 37, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "text",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",  # RFC 1123
        "Sunday, 06-Nov-94 08:49:37 GMT",  # RFC 850
        "Sun Nov  6 08:49:37 1994",  # asctime, two spaces before a one-digit day
        "  Sun, 06 Nov 1994 08:49:37 GMT \t",  # surrounding whitespace
        "sun, 06 nov 1994 08:49:37 gmt",  # literals are case-insensitive (§2.1)
        "SUNDAY, 06-NOV-94 08:49:37 GMT",
        "Mon, 06 Nov 1994 08:49:37 GMT",  # a wrong weekday leaves the instant clear
    ],
)
def test_parses_the_three_forms(text):
    assert parse_http_date(text) == NOV_6


def test_result_is_aware_utc():
    parsed = parse_http_date("Thu, 02 Jan 2020 03:04:05 GMT")
    assert parsed.tzinfo is not None and parsed.utcoffset() == timedelta(0)


def test_asctime_two_digit_day():
    assert parse_http_date("Thu Jan 16 03:04:05 2020") == datetime(
        2020, 1, 16, 3, 4, 5, tzinfo=timezone.utc
    )


@pytest.mark.parametrize(
    ("two_digits", "year"), [("69", 2069), ("00", 2000), ("70", 1970), ("99", 1999)]
)
def test_rfc850_two_digit_years_pivot_at_70(two_digits, year):
    parsed = parse_http_date(f"Thursday, 01-Jan-{two_digits} 00:00:00 GMT")
    assert parsed.year == year


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "garbage",
        "Sun, 06 Nov 1994 08:49:37",  # no zone
        "Sun, 06 Nov 1994 08:49:37 UTC",  # only GMT is allowed
        "Sun, 06 Nov 1994 08:49:37 +0000",
        "Sun, 6 Nov 1994 08:49:37 GMT",  # one-digit day in RFC 1123
        "Sun, 06 Nov 94 08:49:37 GMT",  # two-digit year in RFC 1123
        "Sun 06 Nov 1994 08:49:37 GMT",  # no comma
        "Sun,  06 Nov 1994 08:49:37 GMT",  # two spaces
        "Sunday, 06-Nov-1994 08:49:37 GMT",  # four-digit year in RFC 850
        "Sun, 06-Nov-94 08:49:37 GMT",  # short weekday in RFC 850
        "Sun Nov 6 08:49:37 1994",  # asctime with a single space
        "Sun Nov 06 08:49:37 1994 GMT",  # asctime has no zone
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Xyz, 06 Nov 1994 08:49:37 GMT",
        "Sun, 31 Feb 1994 08:49:37 GMT",  # impossible day
        "Sun, 06 Nov 1994 24:00:00 GMT",  # impossible hour
        "Sun, 06 Nov 1994 08:60:00 GMT",
        "Sun, 06 Nov 1994 08:49:3 GMT",
        "Sun, \u0660\u0666 Nov 1994 08:49:37 GMT",  # Arabic-Indic digits are not DIGIT
        "Sun, 06 Nov 1994 08:49:37 GMT trailing",
    ],
)
def test_garbage_gives_none(text):
    assert parse_http_date(text) is None


def test_non_string_gives_none():
    assert parse_http_date(None) is None  # type: ignore[arg-type]


def test_format_rfc1123():
    assert format_http_date(NOV_6) == "Sun, 06 Nov 1994 08:49:37 GMT"


def test_format_converts_to_utc_and_drops_fractions():
    east = timezone(timedelta(hours=2))
    moment = datetime(1994, 11, 6, 10, 49, 37, 999_999, tzinfo=east)
    assert format_http_date(moment) == "Sun, 06 Nov 1994 08:49:37 GMT"


def test_format_takes_naive_as_utc():
    assert format_http_date(NOV_6.replace(tzinfo=None)) == "Sun, 06 Nov 1994 08:49:37 GMT"


@settings(deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(timezone.utc)
    )
)
def test_format_then_parse_round_trips(moment):
    assert parse_http_date(format_http_date(moment)) == moment.replace(microsecond=0)


@settings(deadline=None)
@given(st.text())
def test_parse_never_raises(text):
    result = parse_http_date(text)
    assert result is None or result.tzinfo is timezone.utc
