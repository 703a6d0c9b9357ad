"""The matchers, connection judgement, order judgement and the level table."""

import dataclasses
import hashlib
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.match import (
    MATCHERS,
    Exchange,
    Judgement,
    describe_observation,
    describe_outcome,
    final_verdict,
    first_difference,
    judge_connection,
    judge_order,
    worst,
)
from conformance.model import (
    VERDICTS,
    BodyExpect,
    Connection,
    HeaderExpect,
    Observation,
    Order,
    Outcome,
)

MTIME = datetime(2020, 1, 2, 3, 4, 5, 678_000, tzinfo=timezone.utc)
GET = b"GET /file.txt HTTP/1.0\r\n\r\n"
HEAD = b"HEAD /file.txt HTTP/1.0\r\n\r\n"


class FakeFixtures:
    """The fixture root as the judge sees it, from a dict; counts content() reads."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.reads = 0

    def size(self, path: str) -> int:
        return len(self.files[path])

    def mtime(self, path: str) -> datetime:
        self.files[path]
        return MTIME

    def content(self, path: str) -> bytes:
        self.reads += 1
        return self.files[path]

    def sha256(self, path: str) -> str:
        return hashlib.sha256(self.files[path]).hexdigest()


BIG = bytes(range(256)) * 4096  # 1 MiB
FIXTURES = {"file.txt": b"hello\n", "empty.txt": b"", "big.bin": BIG}


def response(body: bytes = b"hello\n", status: str = "200 OK", headers: str | None = None) -> bytes:
    """A well-formed response; ``headers`` None means a right Content-Length."""
    if headers is None:
        headers = f"Content-Length: {len(body)}\r\n"
    return f"HTTP/1.0 {status}\r\n{headers}\r\n".encode("latin-1") + body


def observe(
    received: bytes = b"",
    end: str = "closed",
    sent: bytes = GET,
    elapsed: float = 0.01,
    total: int | None = None,
    **extra,
) -> Observation:
    events = {"main.connected": 1.0, "main.done": 1.0 + elapsed}
    return Observation(
        name="main",
        sent=sent,
        received=received,
        received_total=len(received) if total is None else total,
        end=end,
        events=events,
        **extra,
    )


def judge(outcomes, received=b"", fixtures=None, conn=None, **kwargs) -> Judgement:
    if isinstance(outcomes, Outcome):
        outcomes = (outcomes,)
    conn = conn or Connection(outcomes=tuple(outcomes))
    return judge_connection(conn, observe(received, **kwargs), fixtures or FakeFixtures(FIXTURES))


def run_matcher(kind, outcome, received, **kwargs):
    ex = Exchange(Connection(outcomes=(outcome,)), observe(received, **kwargs), FakeFixtures(FIXTURES))
    return MATCHERS[kind](ex, outcome)


BAD_REQUEST = (
    Outcome(note="400 Bad Request", status=(400,)),
    Outcome(note="the connection closed without a response", verdict="warn", response="none"),
    Outcome(note="another 4xx or 5xx", verdict="warn", status_class=(4, 5), framing="lenient"),
)


# --- the matcher table: every kind, a hit and a miss ---------------------------------------

H = HeaderExpect
B = BodyExpect
LM = "Thu, 02 Jan 2020 03:04:05 GMT"

# (kind, outcome, received, extra observation fields, the finding or None)
MATCHER_CASES = [
    ("response", Outcome(), response(), {}, None),
    ("response", Outcome(), b"", {}, "got no response, expected a full response (with a status line)"),
    ("response", Outcome(response="simple"), b"<html>", {}, None),
    ("response", Outcome(response="simple"), response(), {}, "got HTTP/1.0 200 OK, expected a Simple-Response (no status line)"),
    ("response", Outcome(response="none"), b"", {}, None),
    ("response", Outcome(response="none"), b"x", {}, "got 1 bytes without a status line ('x'), expected no response"),
    ("response", Outcome(response="any"), b"", {}, None),
    ("status", Outcome(status=(200,)), response(), {}, None),
    ("status", Outcome(status=(200, 304)), response(status="404 Not Found"), {}, "status 404, expected 200 or 304"),
    ("status", Outcome(status=(200,)), b"", {}, "no status code, expected 200"),
    ("status", Outcome(), response(status="999 X"), {}, None),
    ("status_class", Outcome(status_class=(4, 5)), response(status="503 Busy"), {}, None),
    ("status_class", Outcome(status_class=(4, 5)), response(), {}, "status 200, expected 4xx or 5xx"),
    ("version", Outcome(), response(), {}, None),
    ("version", Outcome(), b"HTTP/1.1 200 OK\r\n\r\n", {}, None),
    ("version", Outcome(), b"HTTP/1.10 200 OK\r\n\r\n", {}, "version HTTP/1.10, expected HTTP/1.0 or HTTP/1.1"),
    ("version", Outcome(), b"HTTP/01.0 200 OK\r\n\r\n", {}, "version HTTP/01.0, expected HTTP/1.0 or HTTP/1.1"),
    ("version", Outcome(), b"HTTP/2.0 200 OK\r\n\r\n", {}, "version HTTP/2.0, expected HTTP/1.0 or HTTP/1.1"),
    ("version", Outcome(version=("HTTP/1.0",)), b"HTTP/1.1 200 OK\r\n\r\n", {}, "version HTTP/1.1, expected HTTP/1.0"),
    ("version", Outcome(version=("HTTP/01.0",)), b"HTTP/01.0 200 OK\r\n\r\n", {}, None),
    ("version", Outcome(response="any"), b"HTTP/9.9 200 OK\r\n\r\n", {}, None),
    ("framing", Outcome(), response(), {}, None),
    ("framing", Outcome(), b"HTTP/1.0 200 OK\r\nA: b\n\r\n", {}, "header line 1 ends with a bare LF"),
    ("framing", Outcome(framing="lenient"), b"HTTP/1.0 200 OK\nA: b\n\n", {}, None),
    ("framing", Outcome(), response(headers="Content-Length: 7\r\n"), {}, "Content-Length 7 but 6 body bytes"),
    ("framing", Outcome(), response(headers="Content-Length: 6\r\nContent-Length: 7\r\n"), {}, "Content-Length has conflicting values 6, 7"),
    ("framing", Outcome(), response(headers="Content-Length: six\r\n"), {}, "Content-Length 'six' is not a number"),
    ("framing", Outcome(), response(headers="Content-Length: \u00b2\r\n"), {}, "Content-Length '\u00b2' is not a number"),
    ("framing", Outcome(), response(headers=""), {}, None),  # latitude §1.4: the close ends it
    ("framing", Outcome(), response(headers="Content-Length: 6\r\n", body=b""), {"sent": HEAD}, None),
    ("framing", Outcome(), response(status="304 Not Modified", headers="Content-Length: 6\r\n", body=b""), {}, None),
    ("framing", Outcome(), response(status="204 No Content", headers="Content-Length: 6\r\n", body=b""), {}, None),
    ("framing", Outcome(), response(status="100 Continue", headers="Content-Length: 6\r\n", body=b""), {}, None),
    ("framing", Outcome(), response(headers="Content-Length: 600\r\n"), {"end": "limit"}, None),
    ("framing", Outcome(), b"HTTP/1.0 200 OK\r\nA: b", {"end": "limit"}, None),
    ("framing", Outcome(), b"HTTP/1.0 200 OK\r\nA: b", {}, "the header block ends without an empty line (truncated head)"),
    ("framing", Outcome(), b"<html>", {}, None),
    ("headers.present", Outcome(headers=H(present=("content-type",))), response(headers="Content-Type: x\r\n"), {}, None),
    ("headers.present", Outcome(headers=H(present=("Date", "Server"))), response(), {}, "no Date, Server headers"),
    ("headers.absent", Outcome(headers=H(absent=("Date",))), response(), {}, None),
    ("headers.absent", Outcome(headers=H(absent=("content-length",))), response(), {}, "unexpected header content-length: 6"),
    ("headers.equal", Outcome(headers=H(equal=(("Content-Type", " text/plain "),))), response(headers="content-type:  text/plain\r\n"), {}, None),
    ("headers.equal", Outcome(headers=H(equal=(("X", "b"),))), response(headers="X: a\r\nX: b\r\n"), {}, None),
    ("headers.equal", Outcome(headers=H(equal=(("Content-Type", "text/plain"),))), response(headers="Content-Type: text/html\r\n"), {}, "Content-Type 'text/html', expected 'text/plain'"),
    ("headers.equal", Outcome(headers=H(equal=(("Content-Type", "text/plain"),))), response(), {}, "no Content-Type header, expected 'text/plain'"),
    ("headers.match", Outcome(headers=H(match=(("Content-Type", "^text/plain(;|$)"),))), response(headers="Content-Type: text/plain; charset=x\r\n"), {}, None),
    ("headers.match", Outcome(headers=H(match=(("Content-Type", "^text/plain$"),))), response(headers="Content-Type: text/plainer\r\n"), {}, "Content-Type 'text/plainer', expected /^text/plain$/"),
    ("headers.match", Outcome(headers=H(match=(("X", "("),))), response(headers="X: a\r\n"), {}, "the case's pattern for X is not a valid regex: '('"),
    ("headers.fixture", Outcome(headers=H(fixture=(("Content-Length", "size:file.txt"),))), response(), {}, None),
    ("headers.fixture", Outcome(headers=H(fixture=(("Content-Length", "size:file.txt"),))), response(headers="Content-Length: 06\r\n"), {}, None),
    ("headers.fixture", Outcome(headers=H(fixture=(("Content-Length", "size:file.txt"),))), response(headers="Content-Length: 7\r\n"), {}, "Content-Length '7', expected 6 (the size of file.txt)"),
    ("headers.fixture", Outcome(headers=H(fixture=(("Last-Modified", "mtime:file.txt"),))), response(headers=f"Last-Modified: {LM}\r\n"), {}, None),
    ("headers.fixture", Outcome(headers=H(fixture=(("Last-Modified", "mtime:file.txt"),))), response(headers="Last-Modified: Thursday, 02-Jan-20 03:04:05 GMT\r\n"), {}, None),
    ("headers.fixture", Outcome(headers=H(fixture=(("Last-Modified", "mtime:file.txt"),))), response(headers="Last-Modified: Thu Jan  2 03:04:05 2020\r\n"), {}, None),
    ("headers.fixture", Outcome(headers=H(fixture=(("Last-Modified", "mtime:file.txt"),))), response(headers="Last-Modified: Thu, 02 Jan 2020 03:04:06 GMT\r\n"), {}, f"Last-Modified 'Thu, 02 Jan 2020 03:04:06 GMT', expected {LM} (the modification time of file.txt)"),
    ("headers.fixture", Outcome(headers=H(fixture=(("Last-Modified", "mtime:file.txt"),))), response(headers="Last-Modified: yesterday\r\n"), {}, f"Last-Modified 'yesterday', expected {LM} (the modification time of file.txt)"),
    ("headers.fixture", Outcome(headers=H(fixture=(("X", "size:nope.txt"),))), response(), {}, "fixture nope.txt cannot be read: 'nope.txt'"),
    ("headers.fixture", Outcome(headers=H(fixture=(("X", "colour:file.txt"),))), response(), {}, "the case's fixture property 'colour:file.txt' is unknown"),
    ("body.fixture", Outcome(body=B(fixture="file.txt")), response(), {}, None),
    ("body.fixture", Outcome(body=B(fixture="empty.txt")), response(b""), {}, None),
    ("body.fixture", Outcome(body=B(fixture="file.txt")), response(b"hello\n!!"), {}, "body differs from file.txt at byte 6 (got 8 bytes, expected 6)"),
    ("body.fixture", Outcome(body=B(fixture="file.txt")), response(b"hellO\n"), {}, "body differs from file.txt at byte 4 (got 6 bytes, expected 6): got 'hellO\\n', expected 'hello\\n' from byte 0"),
    ("body.fixture", Outcome(body=B(fixture="file.txt")), response(b"hel"), {}, "body differs from file.txt at byte 3 (got 3 bytes, expected 6)"),
    ("body.fixture", Outcome(body=B(fixture="file.txt")), response(b"hel"), {"end": "limit"}, None),
    ("body.fixture", Outcome(body=B(fixture="file.txt")), response(b"heL"), {"end": "limit"}, "body differs from file.txt at byte 2 (got 3 bytes, expected 6): got 'heL', expected 'hello\\n' from byte 0"),
    ("body.fixture", Outcome(body=B(fixture="nope.txt")), response(), {}, "fixture nope.txt cannot be read: 'nope.txt'"),
    ("body.equal", Outcome(body=B(equal=b"hello\n")), response(), {}, None),
    ("body.equal", Outcome(body=B(equal=b"\x00\xff")), response(b"\x00\xfe"), {}, "body differs from the expected bytes at byte 1 (got 2 bytes, expected 2): got '\\x00\\xfe', expected '\\x00\\xff' from byte 0"),
    ("body.empty", Outcome(body=B(empty=True)), response(b""), {}, None),
    ("body.empty", Outcome(body=B(empty=True)), response(), {}, "body has 6 bytes, expected none"),
    ("body.empty", Outcome(body=B(empty=False)), response(), {}, None),
    ("body.empty", Outcome(body=B(empty=False)), response(b""), {}, "body is empty, expected bytes"),
    ("body.contains", Outcome(body=B(contains=(b"ell", b"lo"))), response(), {}, None),
    ("body.contains", Outcome(body=B(contains=(b"ell", b"404", b"\r\n"))), response(), {}, "body lacks '404', '\\r\\n'"),
    ("body.contains", Outcome(body=B(contains=(b"OK",))), response(), {}, "body lacks 'OK'"),  # the head is not the body
    ("body.excludes", Outcome(body=B(excludes=(b"secret",))), response(), {}, None),
    ("body.excludes", Outcome(body=B(excludes=(b"OK",))), response(), {}, "the response contains 'OK' at byte 13"),  # anywhere
    ("connection", Outcome(), response(), {"end": "closed"}, None),
    ("connection", Outcome(), response(), {"end": "reset"}, None),
    ("connection", Outcome(), b"", {"end": "timeout", "elapsed": 5.0}, "the connection was still open after 5.0 s, expected a close"),
    ("connection", Outcome(), b"", {"end": "refused"}, "the connection was refused, expected a close"),
    ("connection", Outcome(), b"", {"end": "error", "error": "EHOSTUNREACH"}, "the connection failed: EHOSTUNREACH, expected a close"),
    ("connection", Outcome(), response(), {"end": "limit"}, None),  # we stopped reading
    ("connection", Outcome(connection="open"), b"", {"end": "timeout"}, None),
    ("connection", Outcome(connection="open"), b"", {"end": "closed", "elapsed": 0.5}, "closed by the server after 0.50 s, expected it to stay open"),
    ("connection", Outcome(connection="open"), b"", {"end": "limit"}, None),
    ("connection", Outcome(connection="any"), b"", {"end": "timeout"}, None),
    ("connection", Outcome(connection="any"), b"", {"end": "reset"}, None),
]


@pytest.mark.parametrize(
    ("kind", "outcome", "received", "extra", "finding"),
    MATCHER_CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(MATCHER_CASES)],
)
def test_matcher(kind, outcome, received, extra, finding):
    assert run_matcher(kind, outcome, received, **extra) == finding


def test_every_matcher_has_a_hit_and_a_miss():
    hits = {c[0] for c in MATCHER_CASES if c[4] is None}
    misses = {c[0] for c in MATCHER_CASES if c[4] is not None}
    assert hits == misses == set(MATCHERS)


def test_the_table_covers_every_expectation_kind():
    """Each field of Outcome, HeaderExpect and BodyExpect has its matcher."""
    kinds = set()
    for f in dataclasses.fields(Outcome):
        if f.name == "headers":
            kinds |= {f"headers.{g.name}" for g in dataclasses.fields(HeaderExpect)}
        elif f.name == "body":
            kinds |= {f"body.{g.name}" for g in dataclasses.fields(BodyExpect)}
        elif f.name not in ("verdict", "note"):
            kinds.add(f.name)
    assert kinds == set(MATCHERS)


def test_matchers_never_raise_on_odd_responses():
    outcome = Outcome(
        status=(200,),
        status_class=(2,),
        headers=H(
            present=("A",),
            absent=("B",),
            equal=(("A", "x"),),
            match=(("A", "x"),),
            fixture=(("A", "size:file.txt"), ("B", "mtime:file.txt")),
        ),
        body=B(fixture="file.txt", equal=b"x", empty=True, contains=(b"x",), excludes=(b"", b"x")),
    )
    for received in (b"", b"\x00", b"HTTP/1.0 200", b"HTTP/1.0 200 OK\r\nA\r\n B\n\r\n\xff"):
        for end in ("closed", "reset", "timeout", "limit", "refused", "error"):
            for kind in MATCHERS:
                finding = run_matcher(kind, outcome, received, end=end)
                assert finding is None or isinstance(finding, str)


@settings(deadline=None)
@given(
    received=st.one_of(
        st.binary(max_size=200),
        st.builds(lambda tail: b"HTTP/1.0 200 OK\r\n" + tail, st.binary(max_size=200)),
    ),
    end=st.sampled_from(["closed", "reset", "timeout", "limit", "refused", "error"]),
    sent=st.sampled_from([GET, HEAD, b""]),
)
def test_judge_never_raises(received, end, sent):
    outcomes = BAD_REQUEST + (
        Outcome(
            status=(200,),
            headers=H(fixture=(("Content-Length", "size:file.txt"), ("Last-Modified", "mtime:file.txt"))),
            body=B(fixture="file.txt", excludes=(b"secret",)),
        ),
    )
    result = judge(outcomes, received, end=end, sent=sent)
    assert result.verdict in ("pass", "warn", "fail")
    assert len(result.expected) == len(outcomes) and result.actual
    assert (result.index is None) == (result.verdict == "fail") == bool(result.findings)


# --- huge bodies ----------------------------------------------------------------------------


def test_big_body_equal_by_digest_without_reading_the_file():
    fixtures = FakeFixtures(FIXTURES)
    result = judge(Outcome(body=B(fixture="big.bin")), response(BIG), fixtures=fixtures)
    assert result.verdict == "pass" and fixtures.reads == 0


def test_big_body_difference_is_located():
    broken = bytearray(BIG)
    broken[700_001] ^= 0xFF
    result = judge(Outcome(body=B(fixture="big.bin")), response(bytes(broken)))
    got, want = bytes(broken[699997:700009]), BIG[699997:700009]
    assert result.findings == (
        f"body differs from big.bin at byte 700001 (got {len(BIG)} bytes, expected {len(BIG)}): "
        f"got {repr(got)[1:]}, expected {repr(want)[1:]} from byte 699997",
    )


def test_big_body_cut_short():
    result = judge(Outcome(body=B(fixture="big.bin")), response(BIG[:65536], headers=""))
    assert result.findings == (
        f"body differs from big.bin at byte 65536 (got 65536 bytes, expected {len(BIG)})",
    )


@pytest.mark.parametrize(
    ("a", "b", "at"),
    [
        (b"", b"", None),
        (b"abc", b"abc", None),
        (b"abc", b"abd", 2),
        (b"abc", b"ab", 2),
        (b"", b"x", 0),
        (b"x" * 200_000 + b"y", b"x" * 200_001, 200_000),
    ],
)
def test_first_difference(a, b, at):
    assert first_difference(a, b) == at
    assert first_difference(b, a) == at
    assert first_difference(a, b, block=3) == at


# --- judging a connection -------------------------------------------------------------------

@pytest.mark.parametrize(
    ("received", "end", "verdict", "index"),
    [
        (response(b"bad", status="400 Bad Request"), "closed", "pass", 0),
        (b"", "closed", "warn", 1),
        (b"", "reset", "warn", 1),
        (b"HTTP/1.1 505 Nope\n\n", "closed", "warn", 2),
        (response(), "closed", "fail", None),
        (b"", "timeout", "fail", None),
    ],
)
def test_first_matching_outcome_wins(received, end, verdict, index):
    result = judge(BAD_REQUEST, received, end=end)
    assert (result.verdict, result.index) == (verdict, index)
    assert (result.findings == ()) == (index is not None)


def test_near_miss_prefers_the_right_kind_then_fewest_findings():
    result = judge(BAD_REQUEST, response())
    assert result.findings == ("status 200, expected 400",)
    result = judge(BAD_REQUEST, b"", end="timeout", elapsed=5.0)
    assert result.findings == (
        "the connection was still open after 5.0 s, expected a close",
    )


def test_wrong_kind_reports_only_the_kind_and_the_close():
    outcome = Outcome(status=(200,), body=B(fixture="file.txt"))
    result = judge(outcome, b"", end="timeout", elapsed=5.0)
    assert result.findings == (
        "got no response, expected a full response (with a status line)",
        "the connection was still open after 5.0 s, expected a close",
    )
    assert result.actual == "no bytes; the connection was still open after 5.0 s"


def test_findings_of_a_broken_file_response():
    outcome = Outcome(
        status=(200,),
        headers=H(fixture=(("Content-Length", "size:file.txt"),)),
        body=B(fixture="file.txt"),
    )
    result = judge(outcome, response(b"hello\n!!", headers="Content-Length: 7\r\n"))
    assert result.verdict == "fail" and result.index is None
    assert result.findings == (
        "Content-Length 7 but 8 body bytes",
        "Content-Length '7', expected 6 (the size of file.txt)",
        "body differs from file.txt at byte 6 (got 8 bytes, expected 6)",
    )
    assert result.expected == ("200 with body = file.txt, Content-Length = size of file.txt",)
    assert result.actual == "HTTP/1.0 200 OK, 8 body bytes, closed by the server after 0.01 s"


def test_head_body_is_caught_by_body_empty_not_by_framing():
    outcome = Outcome(status=(200,), body=B(empty=True))
    result = judge(outcome, response(), sent=HEAD)
    assert result.findings == ("body has 6 bytes, expected none",)


def test_no_outcome_fails():
    assert judge((), response()).findings == ("the case lists no outcome",)


def test_matched_outcome_verdict_is_returned():
    assert judge(Outcome(verdict="info"), response()).verdict == "info"


# --- descriptions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "text"),
    [
        (Outcome(status=(400,)), "400"),
        (BAD_REQUEST[0], "400 Bad Request"),
        (BAD_REQUEST[1], "the connection closed without a response [warn]"),
        (BAD_REQUEST[2], "4xx or 5xx (another 4xx or 5xx) [warn]"),
        (
            Outcome(status=(200,), headers=H(fixture=(("Content-Length", "size:file.txt"),)), body=B(fixture="file.txt")),
            "200 with body = file.txt, Content-Length = size of file.txt",
        ),
        (Outcome(), "a full response"),
        (Outcome(response="simple"), "a Simple-Response (no status line)"),
        (Outcome(response="any", connection="any"), "any response or none"),
        (Outcome(response="none", connection="open"), "no response with the connection left open"),
        (
            Outcome(status=(200, 304), version=("HTTP/1.0",), body=B(empty=True), headers=H(absent=("Date",))),
            "200 or 304 with version HTTP/1.0, an empty body, no Date header",
        ),
        (
            Outcome(status=(200,), headers=H(match=(("Server", "^x"),), present=("Date",), equal=(("A", "b"),))),
            "200 with A: b, Server matching /^x/, a Date header",
        ),
        (
            Outcome(
                body=B(contains=(b"a",), excludes=(b"\x00",), equal=b"z"),
                headers=H(fixture=(("Last-Modified", "mtime:f"),)),
                connection="open",
            ),
            "a full response with body = 'z', body containing 'a', no '\\x00' anywhere, "
            "Last-Modified = mtime of f, the connection left open",
        ),
    ],
)
def test_describe_outcome(outcome, text):
    assert describe_outcome(outcome) == text


@pytest.mark.parametrize(
    ("received", "extra", "text"),
    [
        (response(b"x" * 153, status="404 Not Found"), {}, "HTTP/1.0 404 Not Found, 153 body bytes, closed by the server after 0.01 s"),
        (b"", {"end": "timeout", "elapsed": 5.0}, "no bytes; the connection was still open after 5.0 s"),
        (b"", {"end": "reset"}, "reset by the server after 0.01 s"),
        (b"", {"end": "refused"}, "the connection was refused"),
        (b"", {"end": "error", "error": "boom"}, "the connection failed: boom"),
        (b"", {"end": "closed"}, "no bytes; closed by the server after 0.01 s"),
        (b"<html>", {}, "6 bytes without a status line (a Simple-Response), closed by the server after 0.01 s"),
        (b"HTTP/1.0 200 OK\r\nA: b", {}, "HTTP/1.0 200 OK, the header block unterminated after 21 bytes, closed by the server after 0.01 s"),
        (response(b"x" * 10), {"end": "limit", "total": 9000}, "HTTP/1.0 200 OK, 10 body bytes (of 9000 received), we stopped reading after 9000 bytes"),
        (b"HTTP/1.0 200 O\x01K\r\n\r\n", {"elapsed": 2.25}, "HTTP/1.0 200 O\\x01K, 0 body bytes, closed by the server after 2.2 s"),
    ],
)
def test_describe_observation(received, extra, text):
    assert describe_observation(Connection(), observe(received, **extra)) == text


def test_describe_observation_without_events_uses_the_deadline():
    obs = Observation(name="main", end="timeout")
    assert describe_observation(Connection(timeout=3), obs) == (
        "no bytes; the connection was still open after 3.0 s"
    )


# --- order ----------------------------------------------------------------------------------

EVENTS = {
    "stalled.connected": 0.0,
    "stalled.part-1": 0.01,
    "fast.connected": 0.02,
    "fast.sent": 0.03,
    "fast.first_byte": 0.04,
    "fast.complete": 0.05,
    "fast.done": 0.05,
    "stalled.part-2": 0.06,
    "stalled.done": 0.08,
}


@pytest.mark.parametrize(
    ("first", "then", "events", "finding"),
    [
        ("fast.complete", "stalled.part-2", EVENTS, None),
        ("fast.complete", "stalled.part-3", EVENTS, None),  # "then" never happened: later than all
        (
            "stalled.part-2",
            "fast.complete",
            EVENTS,
            "stalled.part-2 came after fast.complete: stalled.part-2 at 0.060 s, fast.complete at 0.050 s",
        ),
        (
            "fast.complete",
            "stalled.part-2",
            {k: v for k, v in EVENTS.items() if k != "fast.complete"},
            "fast.complete never happened (expected before stalled.part-2)",
        ),
        ("fast.complete", "fast.done", EVENTS, None),  # equal times pass
        ("nobody.complete", "fast.done", EVENTS, "nobody.complete never happened (expected before fast.done)"),
        ("x-*.complete", "fast.done", EVENTS, "no event matches x-*.complete"),
    ],
)
def test_judge_order(first, then, events, finding):
    assert judge_order(Order(first=first, then=then), events) == finding


def test_order_glob_names_connections_that_never_completed():
    events = {f"dl-{i}.connected": 0.0 for i in range(1, 5)}
    events.update({"dl-1.complete": 1.0, "dl-2.complete": 1.1, "gate.sent": 2.0})
    order = Order(first="dl-*.complete", then="gate.sent")
    assert judge_order(order, events) == (
        "dl-3.complete, dl-4.complete never happened (expected before gate.sent)"
    )
    events.update({"dl-3.complete": 1.2, "dl-4.complete": 2.5})
    assert judge_order(order, events) == (
        "dl-4.complete came after gate.sent: dl-4.complete at 2.500 s, gate.sent at 2.000 s"
    )


def test_order_then_glob_takes_the_earliest():
    events = {"a.complete": 1.0, "b-1.sent": 0.5, "b-2.sent": 3.0}
    assert judge_order(Order(first="a.complete", then="b-*.sent"), events) == (
        "a.complete came after b-1.sent: a.complete at 1.000 s, b-1.sent at 0.500 s"
    )


# --- verdicts: the level table straight from the spec ----------------------------------------


def _spec_level_table() -> list[tuple[str, str, bool, str]]:
    """(raw, level, strict, final) rows read from cases/README.md, section Verdicts."""
    readme = Path(__file__).resolve().parents[1] / "cases" / "README.md"
    section = readme.read_text(encoding="utf-8").split("## Verdicts", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert header == ["raw", "MUST", "SHOULD", "MAY"]
    table = []
    for row in rows[2:]:
        raw, *cells = [cell.strip() for cell in row.strip("|").split("|")]
        for level, cell in zip(header[1:], cells):
            normal = re.sub(r"[*`]", "", cell).split()[0]
            strict = re.search(r"--strict`?: (\w+)", cell)
            table.append((raw, level, False, normal))
            table.append((raw, level, True, strict[1] if strict else normal))
    return table


SPEC_TABLE = _spec_level_table()


def test_spec_table_is_complete():
    assert len(SPEC_TABLE) == 4 * 3 * 2


@pytest.mark.parametrize(("raw", "level", "strict", "final"), SPEC_TABLE)
def test_final_verdict(raw, level, strict, final):
    assert final_verdict(raw, level, strict) == final


@pytest.mark.parametrize("raw", ["error", "skip"])
@pytest.mark.parametrize("strict", [False, True])
def test_error_and_skip_pass_through(raw, strict):
    assert final_verdict(raw, "MAY", strict) == raw


@pytest.mark.parametrize(("raw", "level"), [("bogus", "MUST"), ("pass", "must"), ("fail", "")])
def test_final_verdict_rejects_unknown(raw, level):
    with pytest.raises(ValueError):
        final_verdict(raw, level, False)


@pytest.mark.parametrize(
    ("verdicts", "result"),
    [
        ([], "pass"),
        (["pass"], "pass"),
        (["pass", "info", "warn"], "warn"),
        (["info", "fail", "warn"], "fail"),
        (["pass", "error", "fail"], "error"),
        (["skip"], "pass"),
        (iter(["info", "pass"]), "info"),
    ],
)
def test_worst(verdicts, result):
    assert worst(verdicts) == result


def test_worst_follows_model_order():
    for better, worse in zip(VERDICTS[1:], VERDICTS[:-1]):
        if better != "skip":
            assert worst([better, worse]) == worse


def test_worst_rejects_unknown():
    with pytest.raises(ValueError):
        worst(["pass", "great"])


def test_a_leading_zero_version_matches_only_itself():
    # cases/README.md: versions compare as integers, but a leading-zero form on either
    # side matches only the same text.
    assert judge(Outcome(version=("HTTP/01.0",)), response(b"hello\n")).verdict == "fail"
    assert judge(Outcome(version=("HTTP/1.0",)), response(b"hello\n")).verdict == "pass"
