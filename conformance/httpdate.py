"""HTTP-date parsing and formatting (RFC 1945 §3.3), with no I/O and no clock.

RFC 1945 §3.3 lets a date take three forms, and says readers should accept all three
(R-3.3-a) while writers send only the first (R-3.3-b, R-3.3-c)::

    rfc1123-date = wkday "," SP date1 SP time SP "GMT"     Sun, 06 Nov 1994 08:49:37 GMT
    rfc850-date  = weekday "," SP date2 SP time SP "GMT"   Sunday, 06-Nov-94 08:49:37 GMT
    asctime-date = wkday SP date3 SP time SP 4DIGIT        Sun Nov  6 08:49:37 1994

    date1 = 2DIGIT SP month SP 4DIGIT
    date2 = 2DIGIT "-" month "-" 2DIGIT
    date3 = month SP ( 2DIGIT | ( SP 1DIGIT ))
    time  = 2DIGIT ":" 2DIGIT ":" 2DIGIT

The parser follows that grammar closely so that garbage gives ``None``. It accepts
more than the RFC in three places, each because a real peer does it and the meaning
stays unambiguous:

- names compare without regard to case (RFC 1945 §2.1: literals are case-insensitive);
- surrounding whitespace is ignored (header values arrive trimmed anyway);
- the weekday is checked to be a weekday name but not against the date, since a
  wrong weekday does not make the instant ambiguous.

Every value is read as UTC (GMT), as §3.3 requires, asctime included.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

__all__ = ["parse_http_date", "format_http_date"]

_WKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_MONTH = "(?P<month>" + "|".join(_MONTHS) + ")"
# [0-9] rather than \d: in str patterns \d also matches non-ASCII digits such as "٣".
_TIME = "(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})"

_RFC1123 = re.compile(
    "(?:" + "|".join(_WKDAYS) + "), "
    r"(?P<day>[0-9]{2}) " + _MONTH + r" (?P<year>[0-9]{4}) " + _TIME + " GMT",
    re.IGNORECASE | re.ASCII,
)
_RFC850 = re.compile(
    "(?:" + "|".join(_WEEKDAYS) + "), "
    r"(?P<day>[0-9]{2})-" + _MONTH + r"-(?P<year>[0-9]{2}) " + _TIME + " GMT",
    re.IGNORECASE | re.ASCII,
)
_ASCTIME = re.compile(
    "(?:" + "|".join(_WKDAYS) + ") "
    + _MONTH + r" (?P<day>[0-9]{2}| [0-9]) " + _TIME + r" (?P<year>[0-9]{4})",
    re.IGNORECASE | re.ASCII,
)

# Two-digit RFC 850 years: 70-99 are 19xx and 00-69 are 20xx, the POSIX strptime rule
# (also Python's email.utils). RFC 7231's "more than 50 years in the future" rule
# needs the current date, and this module has no clock.
_PIVOT = 70


def parse_http_date(text: str) -> datetime | None:
    """Parse an HTTP-date in any of the three RFC 1945 §3.3 forms.

    Args:
        text: the date, such as a ``Last-Modified`` value; surrounding whitespace
            is ignored.

    Returns:
        A timezone-aware ``datetime`` in UTC, or ``None`` when ``text`` is not an
        HTTP-date or names an impossible instant (31 Feb, 25:00:00).
    """
    if not isinstance(text, str):
        return None
    text = text.strip()
    for pattern in (_RFC1123, _RFC850, _ASCTIME):
        found = pattern.fullmatch(text)
        if found:
            return _to_datetime(found, two_digit_year=pattern is _RFC850)
    return None


def _to_datetime(found: re.Match[str], two_digit_year: bool) -> datetime | None:
    """Build the UTC datetime from a grammar match; None for an impossible date."""
    year = int(found["year"])
    if two_digit_year:
        year += 1900 if year >= _PIVOT else 2000
    month = _MONTHS.index(found["month"].capitalize()) + 1
    try:
        return datetime(
            year,
            month,
            int(found["day"]),
            int(found["hour"]),
            int(found["minute"]),
            int(found["second"]),
            tzinfo=timezone.utc,
        )
    except ValueError:  # day 31 of a 30-day month, hour 24, second 60 and the like
        return None


def format_http_date(dt: datetime) -> str:
    """Format an instant as an RFC 1123 HTTP-date, the form RFC 1945 §3.3 prefers.

    Args:
        dt: the instant; a naive datetime is taken to be UTC already, an aware one is
            converted to UTC. Fractions of a second are dropped.

    Returns:
        The date, such as ``"Sun, 06 Nov 1994 08:49:37 GMT"``; English names whatever
        the locale (``strftime`` would follow the locale).
    """
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc)
    return "%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        _WKDAYS[dt.weekday()],
        dt.day,
        _MONTHS[dt.month - 1],
        dt.year,
        dt.hour,
        dt.minute,
        dt.second,
    )
