"""Judge what happened on a connection against the outcomes a case lists.

Pure: values in, values out. ``wire`` hands over an ``Observation`` (the bytes sent
and received, how the connection ended, event times); this module parses the bytes,
tries each ``Outcome`` in order with the matchers in ``MATCHERS`` and returns a
``Judgement``: the raw verdict, which outcome matched, and for a miss the findings
of the nearest outcome, ready for a report ("status 404, expected 200").

The rules follow cases/README.md (Outcome, Order, Verdicts) and the harness-wide
latitude of the requirements research (§1): the reason phrase is never compared,
header names compare without regard to case, versions compare as integers, dates
compare after parsing. Strict framing counts every issue the parser records (bare
LF, malformed status line or header line, folding, a head cut short) plus a
Content-Length that disagrees with the body: no mainstream server departs from the
grammar there, and a case that tolerates it says ``framing = "lenient"``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from fnmatch import fnmatchcase
from functools import cached_property, lru_cache
from typing import Callable, Iterable, Protocol

from .httpdate import format_http_date, parse_http_date
from .model import EVENTS, LEVELS, VERDICTS, Connection, Observation, Order, Outcome
from .parse import BODYLESS_STATUS, TRUNCATED_HEAD, Response, header_values, parse_response, request_method

__all__ = [
    "Fixtures",
    "Judgement",
    "MATCHERS",
    "DEFAULT_VERSIONS",
    "judge_connection",
    "judge_order",
    "final_verdict",
    "worst",
    "describe_outcome",
    "describe_observation",
    "first_difference",
]

# Harness latitude §1.1: a server may answer an HTTP/1.0 request in HTTP/1.1.
DEFAULT_VERSIONS = ("HTTP/1.0", "HTTP/1.1")

# 1*DIGIT in ASCII; str.isdigit() would also take "²" and "٣".
_DIGITS = re.compile(r"[0-9]+")

# How much of a byte string a finding quotes.
_SHOW_LIMIT = 60

# A matcher looks at one expectation kind of an outcome and returns a finding, or
# None when it holds (or the outcome does not set it).
Matcher = Callable[["Exchange", Outcome], "str | None"]


class Fixtures(Protocol):
    """What the judge needs to know about the fixture document root."""

    def size(self, path: str) -> int: ...

    def mtime(self, path: str) -> datetime: ...

    def content(self, path: str) -> bytes: ...

    def sha256(self, path: str) -> str: ...  # hex digest (raw digest bytes also work)


@dataclass(frozen=True)
class Judgement:
    """The judgement of one connection.

    ``verdict`` is the raw verdict (pass, warn, info or fail) before the case's level
    applies; ``index`` the matched outcome (None: no outcome matched, so "fail");
    ``findings`` what did not match in the nearest outcome; ``expected`` one
    description per outcome; ``actual`` one line on what came back.
    """

    verdict: str
    index: int | None
    findings: tuple[str, ...]
    expected: tuple[str, ...]
    actual: str


class Exchange:
    """One connection's observation with the values derived from it, each computed once."""

    def __init__(self, conn: Connection, obs: Observation, fixtures: Fixtures) -> None:
        self.conn = conn
        self.obs = obs
        self.fixtures = fixtures
        self.response: Response = parse_response(obs.received)
        self.method = request_method(obs.sent)
        # We stopped reading ourselves ("read" bytes): the tail is unknown, so lengths
        # and the head's end cannot be judged.
        self.stopped = obs.end == "limit"
        # We read to the end but kept only the first bytes (wire's keep limit): the
        # body's length is still known from the count.
        self.clipped = obs.received_total > len(obs.received)

    @cached_property
    def body_sha256(self) -> str:
        return hashlib.sha256(self.response.body).hexdigest()

    @property
    def elapsed(self) -> float | None:
        """Seconds from connect to the end of the connection, when both are known."""
        start = self.obs.events.get(f"{self.obs.name}.connected")
        end = self.obs.events.get(f"{self.obs.name}.done")
        return None if start is None or end is None else max(0.0, end - start)


# --- the matchers, one per expectation kind -----------------------------------------


def _match_response(ex: Exchange, outcome: Outcome) -> str | None:
    """response: the kind of answer (full, simple, none) or any."""
    if outcome.response in ("any", ex.response.kind):
        return None
    return f"{_describe_kind(ex.response)}, expected {_KIND_WORDS[outcome.response]}"


_KIND_WORDS = {
    "full": "a full response (with a status line)",
    "simple": "a Simple-Response (no status line)",
    "none": "no response",
}


def _describe_kind(resp: Response) -> str:
    if resp.kind == "full":
        return f"got {_printable(resp.status_line)}"
    if resp.kind == "simple":
        return f"got {len(resp.body)} bytes without a status line ({_show(resp.body)})"
    return "got no response"


def _match_status(ex: Exchange, outcome: Outcome) -> str | None:
    """status: the code is one of these."""
    if not outcome.status or ex.response.status in outcome.status:
        return None
    return f"{_status_words(ex.response)}, expected {_or(outcome.status)}"


def _match_status_class(ex: Exchange, outcome: Outcome) -> str | None:
    """status_class: the code's first digit is one of these."""
    status = ex.response.status
    if not outcome.status_class or (status is not None and status // 100 in outcome.status_class):
        return None
    return f"{_status_words(ex.response)}, expected {_or(_classes(outcome.status_class))}"


def _status_words(resp: Response) -> str:
    return "no status code" if resp.status is None else f"status {resp.status}"


def _match_version(ex: Exchange, outcome: Outcome) -> str | None:
    """version: the status line's version, compared as integers (HTTP/1.10 is not 1.1).

    A version written with leading zeros matches only when listed as written:
    R-3.1-e asks senders never to generate them.
    """
    allowed = outcome.version or (DEFAULT_VERSIONS if outcome.response == "full" else ())
    resp = ex.response
    if not allowed or (resp.kind != "full" and not outcome.version):
        return None
    if resp.version is None:
        return f"no version, expected {_or(allowed)}"
    if resp.version_text in allowed:
        return None
    # Integers on both sides, but a leading-zero form on either side matches only itself.
    canonical = "HTTP/%d.%d" % resp.version
    plain = {_version_pair(v) for v in allowed if _version_pair(v) and v == "HTTP/%d.%d" % _version_pair(v)}
    if canonical == resp.version_text and resp.version in plain:
        return None
    return f"version {resp.version_text}, expected {_or(allowed)}"


def _version_pair(text: str) -> tuple[int, int] | None:
    found = re.fullmatch(r"HTTP/([0-9]+)\.([0-9]+)", text)
    return (int(found[1]), int(found[2])) if found else None


def _match_headers_present(ex: Exchange, outcome: Outcome) -> str | None:
    """headers.present: each of these headers is there."""
    missing = [n for n in outcome.headers.present if not header_values(ex.response, n)]
    return f"no {', '.join(missing)} header{'s' if len(missing) > 1 else ''}" if missing else None


def _match_headers_absent(ex: Exchange, outcome: Outcome) -> str | None:
    """headers.absent: none of these headers is there."""
    found = [
        f"{name}: {_printable(values[0])}"
        for name in outcome.headers.absent
        if (values := header_values(ex.response, name))
    ]
    return f"unexpected header {'; '.join(found)}" if found else None


def _match_headers_equal(ex: Exchange, outcome: Outcome) -> str | None:
    """headers.equal: some value of the header equals this (trimmed)."""
    problems = [
        _header_problem(ex.response, name, f"{want.strip()!r}", lambda v, w=want: v == w.strip())
        for name, want in outcome.headers.equal
    ]
    return _join(problems)


def _match_headers_match(ex: Exchange, outcome: Outcome) -> str | None:
    """headers.match: some value of the header matches this regex (searched)."""
    problems = []
    for name, pattern in outcome.headers.match:
        regex = _compile(pattern)
        if regex is None:
            problems.append(f"the case's pattern for {name} is not a valid regex: {pattern!r}")
            continue
        problems.append(
            _header_problem(ex.response, name, f"/{pattern}/", lambda v, r=regex: bool(r.search(v)))
        )
    return _join(problems)


@lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:  # the loader should have refused it; judge it, never crash
        return None


def _match_headers_fixture(ex: Exchange, outcome: Outcome) -> str | None:
    """headers.fixture: the value is the fixture's size, or its mtime as an HTTP-date."""
    problems = []
    for name, spec in outcome.headers.fixture:
        prop, _, path = spec.partition(":")
        if prop not in ("size", "mtime"):
            problems.append(f"the case's fixture property {spec!r} is unknown")
            continue
        try:
            want, ok = _fixture_property(ex.fixtures, prop, path)
        except (OSError, LookupError, ValueError) as error:
            problems.append(f"fixture {path} cannot be read: {error}")
            continue
        problems.append(_header_problem(ex.response, name, want, ok))
    return _join(problems)


def _fixture_property(
    fixtures: Fixtures, prop: str, path: str
) -> tuple[str, Callable[[str], bool]]:
    """What a header must say for ``size:PATH`` or ``mtime:PATH``, and its test."""
    if prop == "size":
        size = fixtures.size(path)
        return f"{size} (the size of {path})", lambda value: _is_int(value, size)
    mtime = _utc_seconds(fixtures.mtime(path))
    # Latitude §1.10: dates compare after parsing, so any of the three forms passes.
    return (
        f"{format_http_date(mtime)} (the modification time of {path})",
        lambda value: parse_http_date(value) == mtime,
    )


def _is_int(value: str, number: int) -> bool:
    return _DIGITS.fullmatch(value) is not None and int(value) == number


def _utc_seconds(moment: datetime) -> datetime:
    """An mtime as HTTP-dates carry it: UTC, whole seconds (naive means UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).replace(microsecond=0)


def _header_problem(
    resp: Response, name: str, want: str, ok: Callable[[str], bool]
) -> str | None:
    """A finding unless some value of the header passes ``ok`` (R: repeated headers)."""
    values = header_values(resp, name)
    if not values:
        return f"no {name} header, expected {want}"
    if any(ok(value) for value in values):
        return None
    return f"{name} {_printable(values[0])!r}, expected {want}"


def _match_body_fixture(ex: Exchange, outcome: Outcome) -> str | None:
    """body.fixture: the body equals the file byte for byte.

    Length and SHA-256 first, so a multi-MiB body is compared without loading the
    file; the file is read only to locate the first differing byte.
    """
    path = outcome.body.fixture
    if path is None:
        return None
    body = ex.response.body
    try:
        if not (ex.stopped or ex.clipped) and len(body) == ex.fixtures.size(path):
            if _same_digest(ex.body_sha256, ex.fixtures.sha256(path)):
                return None
        content = ex.fixtures.content(path)
    except (OSError, LookupError, ValueError) as error:
        return f"fixture {path} cannot be read: {error}"
    return _body_difference(body, content, path, prefix_ok=ex.stopped)


def _same_digest(body_hex: str, fixture_digest: str | bytes) -> bool:
    if isinstance(fixture_digest, (bytes, bytearray)):
        return bytes.fromhex(body_hex) == bytes(fixture_digest)
    return body_hex == fixture_digest.lower()


def _match_body_equal(ex: Exchange, outcome: Outcome) -> str | None:
    """body.equal: the body equals these bytes."""
    want = outcome.body.equal
    if want is None:
        return None
    return _body_difference(ex.response.body, want, "the expected bytes", prefix_ok=ex.stopped)


def _body_difference(got: bytes, want: bytes, what: str, prefix_ok: bool) -> str | None:
    """A finding naming the first differing byte, or None when equal.

    ``prefix_ok``: we stopped reading early, so a body that is a prefix is fine.
    """
    at = first_difference(got, want)
    if at is None or (prefix_ok and at == len(got)):
        return None
    # A few bytes on each side of the difference tell a text-mode or encoding bug at a glance.
    start = max(0, at - 4)
    context = (
        f": got {_show(got[start:at + 8])}, expected {_show(want[start:at + 8])} from byte {start}"
        if at < len(got) and at < len(want) else ""
    )
    return f"body differs from {what} at byte {at} (got {len(got)} bytes, expected {len(want)}){context}"


def first_difference(a: bytes, b: bytes, block: int = 1 << 16) -> int | None:
    """The offset of the first byte where ``a`` and ``b`` differ.

    Args:
        a: one byte string.
        b: the other.
        block: compared a block at a time in C; only the differing block is walked.

    Returns:
        None when equal; the length of the shorter one when it is a prefix of the
        longer; else the 0-based offset of the first differing byte.
    """
    shorter = min(len(a), len(b))
    view_a, view_b = memoryview(a), memoryview(b)
    for start in range(0, shorter, block):
        stop = min(start + block, shorter)
        if view_a[start:stop] != view_b[start:stop]:
            return next(i for i in range(start, stop) if a[i] != b[i])
    return None if len(a) == len(b) else shorter


def _match_body_empty(ex: Exchange, outcome: Outcome) -> str | None:
    """body.empty: true, no byte after the header block; false, at least one."""
    size = len(ex.response.body)
    if outcome.body.empty is None or outcome.body.empty == (size == 0):
        return None
    return f"body has {size} bytes, expected none" if size else "body is empty, expected bytes"


def _match_body_contains(ex: Exchange, outcome: Outcome) -> str | None:
    """body.contains: each of these appears in the body."""
    missing = [_show(s) for s in outcome.body.contains if s not in ex.response.body]
    return f"body lacks {', '.join(missing)}" if missing else None


def _match_body_excludes(ex: Exchange, outcome: Outcome) -> str | None:
    """body.excludes: none of these appears anywhere in the received bytes."""
    received = ex.obs.received
    found = [
        f"{_show(s)} at byte {received.find(s)}"
        for s in outcome.body.excludes
        if s and s in received
    ]
    return f"the response contains {', '.join(found)}" if found else None


def _match_framing(ex: Exchange, outcome: Outcome) -> str | None:
    """framing: strict means the head follows the grammar and Content-Length fits."""
    resp = ex.response
    if outcome.framing != "strict" or resp.kind != "full":
        return None
    problems = [i for i in resp.issues if not ((ex.stopped or ex.clipped) and i == TRUNCATED_HEAD)]
    problems.append(_content_length_problem(ex))
    return _join(problems, limit=4)


def _content_length_problem(ex: Exchange) -> str | None:
    """A Content-Length that is present must be one number equal to the body's length."""
    resp = ex.response
    if ex.stopped or not resp.complete_head or _bodyless(ex.method, resp.status):
        return None
    values = header_values(resp, "Content-Length")
    if not values:
        return None  # latitude §1.4: without Content-Length the close ends the body
    if len(set(values)) > 1:
        return "Content-Length has conflicting values " + ", ".join(map(_printable, values))
    if not _DIGITS.fullmatch(values[0]):
        return f"Content-Length {_printable(values[0])!r} is not a number"
    length = int(values[0])
    body_length = len(resp.body) + ex.obs.received_total - len(ex.obs.received)
    if length != body_length:
        return f"Content-Length {length} but {body_length} body bytes"
    return None


def _bodyless(method: str, status: int | None) -> bool:
    """True when no body follows, whatever Content-Length says (RFC 1945 §7.2)."""
    if method == "HEAD":
        return True
    return status is not None and (100 <= status < 200 or status in BODYLESS_STATUS)


def _match_connection(ex: Exchange, outcome: Outcome) -> str | None:
    """connection: closed (EOF or reset before the deadline), open (deadline) or any.

    When we stopped reading ourselves (end "limit") the server's choice is unseen.
    """
    end = ex.obs.end
    if outcome.connection == "any" or end == "limit":
        return None
    if outcome.connection == "closed" and end in ("closed", "reset"):
        return None
    if outcome.connection == "open" and end in ("timeout", "open"):
        return None
    if outcome.connection == "closed" and end == "open":
        return NOT_CLOSED
    expected = {"closed": "a close", "open": "it to stay open"}[outcome.connection]
    return f"{_end_words(ex)}, expected {expected}"


MATCHERS: dict[str, Matcher] = {
    "response": _match_response,
    "status": _match_status,
    "status_class": _match_status_class,
    "version": _match_version,
    "framing": _match_framing,
    "headers.present": _match_headers_present,
    "headers.absent": _match_headers_absent,
    "headers.equal": _match_headers_equal,
    "headers.match": _match_headers_match,
    "headers.fixture": _match_headers_fixture,
    "body.fixture": _match_body_fixture,
    "body.equal": _match_body_equal,
    "body.empty": _match_body_empty,
    "body.contains": _match_body_contains,
    "body.excludes": _match_body_excludes,
    "connection": _match_connection,
}


# --- judging a connection -------------------------------------------------------------


def judge_connection(conn: Connection, obs: Observation, fixtures: Fixtures) -> Judgement:
    """Judge one connection: the first outcome that matches gives the raw verdict.

    Args:
        conn: the connection script, with its outcomes in order.
        obs: what happened on it.
        fixtures: the fixture document root (size, mtime, content, sha256 of a path).

    Returns:
        The ``Judgement``. When nothing matches the verdict is "fail" and the
        findings are those of the nearest outcome: one of the right kind (full,
        simple, none) if any, then the one with the fewest findings, then the first.
    """
    ex = Exchange(conn, obs, fixtures)
    expected = tuple(describe_outcome(o) for o in conn.outcomes)
    actual = _describe_exchange(ex)
    misses = []
    for index, outcome in enumerate(conn.outcomes):
        findings = _findings(ex, outcome)
        if not findings:
            return Judgement(outcome.verdict, index, (), expected, actual)
        wrong_kind = MATCHERS["response"](ex, outcome) is not None
        misses.append(((wrong_kind, len(findings), index), findings))
    if not misses:
        return Judgement("fail", None, ("the case lists no outcome",), expected, actual)
    _, findings = min(misses, key=lambda miss: miss[0])
    return Judgement("fail", None, tuple(findings), expected, actual)


def _findings(ex: Exchange, outcome: Outcome) -> list[str]:
    """Every finding of one outcome; after a wrong kind only the connection's."""
    kind = MATCHERS["response"](ex, outcome)
    if kind is not None:
        # Status, headers and body of the wrong kind of answer only add noise.
        closing = MATCHERS["connection"](ex, outcome)
        return [kind] + ([closing] if closing else [])
    return [f for name, match in MATCHERS.items() if (f := match(ex, outcome)) is not None]


# --- descriptions for reports ------------------------------------------------------------


def describe_outcome(outcome: Outcome) -> str:
    """One line on what an outcome expects, for a report's "expected" list.

    Args:
        outcome: the outcome.

    Returns:
        Such as "200 with body = file.txt, Content-Length = size of file.txt", then
        the note when it adds something, then the verdict when it is not "pass".
    """
    text = _outcome_head(outcome)
    details = _outcome_details(outcome)
    if details:
        text += " with " + ", ".join(details)
    note = outcome.note.strip()
    if note and note.lower() != text.lower():
        # A note with parentheses of its own follows a colon: no nested brackets.
        text = note if note.lower().startswith(text.lower()) else (
            f"{text}: {note}" if "(" in note else f"{text} ({note})")
    if outcome.verdict != "pass":
        text += f" [{outcome.verdict}]"
    return text


def _outcome_head(outcome: Outcome) -> str:
    if outcome.response == "none":
        return {
            "closed": "the connection closed without a response",
            "open": "no response with the connection left open",
        }.get(outcome.connection, "no response")
    if outcome.response == "simple":
        return "a Simple-Response (no status line)"
    codes = [str(s) for s in outcome.status] or list(_classes(outcome.status_class))
    if codes:
        return _or(codes)
    return "a full response" if outcome.response == "full" else "any response or none"


def _outcome_details(outcome: Outcome) -> list[str]:
    body, headers = outcome.body, outcome.headers
    details = []
    if outcome.status and outcome.status_class:
        details.append(f"status class {_or(_classes(outcome.status_class))}")
    # The default version set (latitude 1) goes without saying.
    if outcome.version and set(outcome.version) != set(DEFAULT_VERSIONS):
        details.append(f"version {_or(outcome.version)}")
    if body.fixture is not None:
        details.append(f"body = {body.fixture}")
    if body.equal is not None:
        details.append(f"body = {_show(body.equal)}")
    if body.empty is not None:
        details.append("an empty body" if body.empty else "a non-empty body")
    details += [f"body containing {_show(s)}" for s in body.contains]
    details += [f"no {_show(s)} anywhere" for s in body.excludes]
    for name, spec in headers.fixture:
        prop, _, path = spec.partition(":")
        details.append(f"{name} = {'size' if prop == 'size' else 'mtime'} of {path}")
    details += [f"{name}: {value}" for name, value in headers.equal]
    details += [f"{name} matching /{pattern}/" for name, pattern in headers.match]
    details += [f"a {name} header" for name in headers.present]
    details += [f"no {name} header" for name in headers.absent]
    if outcome.connection == "open" and outcome.response != "none":
        details.append("the connection left open")
    return details


def describe_observation(conn: Connection, obs: Observation) -> str:
    """One line on what came back on a connection, for a report's "actual".

    Args:
        conn: the connection script (for its deadline).
        obs: what happened.

    Returns:
        Such as "HTTP/1.1 404 Not Found, 153 body bytes, closed by the server after
        0.01 s", "no bytes; the connection was still open after 5.0 s" or "reset by
        the server".
    """
    return _describe_exchange(Exchange(conn, obs, fixtures=None))  # type: ignore[arg-type]


def _describe_exchange(ex: Exchange) -> str:
    obs, resp, end = ex.obs, ex.response, _end_words(ex)
    if resp.kind == "none":
        return end if obs.end in ("reset", "refused", "error") else f"no bytes; {end}"
    if resp.kind == "full":
        what = _printable(resp.status_line)
        if not resp.complete_head:
            what += f", the header block unterminated after {len(resp.head)} bytes"
        else:
            what += f", {len(resp.body)} body bytes"
    else:
        what = f"{len(resp.body)} bytes without a status line (a Simple-Response)"
    if obs.received_total > len(obs.received):
        what += f" (of {obs.received_total} received)"
    return f"{what}, {end}"


def _end_words(ex: Exchange) -> str:
    """How the connection ended, in words, with its duration where known."""
    obs, elapsed = ex.obs, ex.elapsed
    after = "" if elapsed is None else f" after {_seconds(elapsed)}"
    if obs.end == "closed":
        return f"closed by the server{after}"
    if obs.end == "reset":
        return f"reset by the server{after}"
    if obs.end == "timeout":
        waited = elapsed if elapsed is not None else ex.conn.timeout
        return f"the connection was still open after {_seconds(waited)}"
    if obs.end == "open":
        return f"complete, but the connection was still open after {_seconds(elapsed or 0.0)}"
    if obs.end == "limit":
        return f"we stopped reading after {max(obs.received_total, len(obs.received))} bytes"
    if obs.end == "refused":
        return "the connection was refused"
    return f"the connection failed: {obs.error or obs.end}"


# The finding of a complete response the server did not close (wire's close grace).
NOT_CLOSED = (
    "the response was complete but the connection stayed open: "
    "HTTP/1.0 ends a response by closing the connection"
)


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 1 else f"{value:.1f} s"


# --- order across connections ------------------------------------------------------------


def judge_order(order: Order, events: dict[str, float]) -> str | None:
    """Judge one ordering expectation of a scenario.

    Every event matching ``order.first`` must have happened, at or before the
    earliest event matching ``order.then``; an event that never happened counts as
    later than all. Equal times pass: the clock only orders, it never measures
    tight durations. Events a glob should have matched are inferred from the
    connections seen (every connection publishes events under its name), so a
    ``dl-*.complete`` names ``dl-3.complete`` when dl-3 never completed.

    Args:
        order: the expectation (event globs ``first`` and ``then``).
        events: every event that happened, name -> seconds since the case started.

    Returns:
        None when it holds, else a finding naming the event that came late or
        never happened.
    """
    firsts = _expected_events(order.first, events)
    if not firsts:
        return f"no event matches {order.first}"
    missing = [name for name in firsts if name not in events]
    if missing:
        return f"{_names(missing)} never happened (expected before {order.then})"
    thens = [name for name in _expected_events(order.then, events) if name in events]
    if not thens:
        return None
    earliest = min(thens, key=lambda name: (events[name], name))
    late = [name for name in firsts if events[name] > events[earliest]]
    if not late:
        return None
    last = max(late, key=lambda name: (events[name], name))
    return (
        f"{_names(late)} came after {earliest}: {last} at {events[last]:.3f} s, "
        f"{earliest} at {events[earliest]:.3f} s"
    )


def _expected_events(glob: str, events: dict[str, float]) -> list[str]:
    """The events a glob stands for: those that happened, and those that should have."""
    connections = {name.split(".", 1)[0] for name in events}
    candidates = set(events)
    candidates.update(f"{c}.{e}" for c in connections for e in EVENTS if e != "wait_timeout")
    if not any(ch in glob for ch in "*?["):
        candidates.add(glob)  # a literal name is expected even from an unseen connection
    return sorted(name for name in candidates if fnmatchcase(name, glob))


def _names(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# --- verdicts ------------------------------------------------------------------------------

# cases/README.md, Verdicts: (raw, level) -> (final, final with --strict).
_LEVEL_TABLE: dict[tuple[str, str], tuple[str, str]] = {
    ("pass", "MUST"): ("pass", "pass"),
    ("pass", "SHOULD"): ("pass", "pass"),
    ("pass", "MAY"): ("pass", "pass"),
    ("fail", "MUST"): ("fail", "fail"),
    ("fail", "SHOULD"): ("warn", "fail"),
    ("fail", "MAY"): ("info", "info"),
    ("warn", "MUST"): ("warn", "fail"),
    ("warn", "SHOULD"): ("warn", "fail"),
    ("warn", "MAY"): ("info", "info"),
    ("info", "MUST"): ("info", "info"),
    ("info", "SHOULD"): ("info", "info"),
    ("info", "MAY"): ("info", "info"),
}


def final_verdict(raw: str, level: str, strict: bool) -> str:
    """Turn a case's raw verdict into its final one through the level table.

    Args:
        raw: pass, warn, info or fail; "error" and "skip" pass through unchanged.
        level: MUST, SHOULD or MAY.
        strict: the ``--strict`` option (warnings at MUST and SHOULD become failures).

    Returns:
        The final verdict.

    Raises:
        ValueError: for an unknown verdict or level.
    """
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; expected one of {', '.join(LEVELS)}")
    if raw in ("error", "skip"):
        return raw
    try:
        normal, with_strict = _LEVEL_TABLE[raw, level]
    except KeyError:
        raise ValueError(f"unknown raw verdict {raw!r}") from None
    return with_strict if strict else normal


def worst(verdicts: Iterable[str]) -> str:
    """The worst of some verdicts, in the order of ``model.VERDICTS`` (error first).

    Args:
        verdicts: verdicts such as the raw ones of a case's connections and orders.

    Returns:
        The worst one; "pass" when there are none.

    Raises:
        ValueError: for an unknown verdict.
    """
    found = "pass"
    for verdict in verdicts:
        if verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r}")
        if VERDICTS.index(verdict) < VERDICTS.index(found):
            found = verdict
    return found


# --- small text helpers ---------------------------------------------------------------------


def _or(items: Iterable[object]) -> str:
    words = [str(item) for item in items]
    return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else "".join(words)


def _classes(digits: Iterable[int]) -> list[str]:
    return [f"{digit}xx" for digit in digits]


def _join(problems: Iterable[str | None], limit: int = 6) -> str | None:
    found = [p for p in problems if p]
    if len(found) > limit:
        found = found[:limit] + [f"and {len(found) - limit} more"]
    return "; ".join(found) or None


def _show(raw: bytes) -> str:
    """Bytes for a message: escaped, cut at a limit."""
    text = repr(bytes(raw[:_SHOW_LIMIT]))[1:]
    return text + ("..." if len(raw) > _SHOW_LIMIT else "")


def _printable(text: str) -> str:
    """Text from the server for a message, control characters escaped."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
