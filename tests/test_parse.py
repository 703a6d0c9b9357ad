"""The response parser on crafted bytes: whole, every prefix, trailing bytes, garbage."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.parse import (
    MAX_HEADER_LINES,
    TRUNCATED_HEAD,
    Response,
    header_values,
    parse_response,
    request_method,
)

GOOD = (
    b"HTTP/1.0 200 OK\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: 6\r\n"
    b"\r\n"
    b"hello\n"
)

# Crafted responses for the whole-and-prefix tests, from correct to broken.
SAMPLES = [
    GOOD,
    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.0 200 OK\n\nbare LF everywhere",
    b"HTTP/1.0 200 OK\r\nX: a\r\n  folded\r\n\r\nbody\r\n\r\nmore",
    b"HTTP/01.00 200 OK\r\nA : b\r\nno colon\r\n\r\n",
    b"HTTP/1.0 2000 OK\r\n\r\n",
    b"HTTP/1.0 200\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\n",  # truncated head
    b"<html>a Simple-Response</html>",
    b"HTTP/1.0 200 OK\r\n\r\n\x00\xff\r\n\r\n",
]


def test_full_response():
    resp = parse_response(GOOD)
    assert resp == Response(
        kind="full",
        version_text="HTTP/1.0",
        version=(1, 0),
        status=200,
        reason="OK",
        headers=(("Content-Type", "text/plain"), ("Content-Length", "6")),
        head=GOOD[:-6],
        body=b"hello\n",
        complete_head=True,
        issues=(),
    )
    assert resp.status_line == "HTTP/1.0 200 OK"


def test_empty_is_none():
    assert parse_response(b"") == Response(kind="none")


@pytest.mark.parametrize(
    "data",
    [
        b"hello",
        b"<html>",
        b"HTTP/1.0",
        b"HTTP/1.0 20",  # too short to tell: not (yet) a status line
        b"HTTP/1.0  200 OK\r\n\r\n",  # two spaces
        b"HTTP/1 200 OK\r\n\r\n",  # no minor version
        b"http/1.0 200 OK\r\n\r\n",  # "HTTP" is case-sensitive in the prefix
        b" HTTP/1.0 200 OK\r\n\r\n",
        b"HTTP/\xd9\xa1.0 200 OK\r\n\r\n",
    ],
)
def test_without_the_prefix_is_simple(data):
    resp = parse_response(data)
    assert (resp.kind, resp.body, resp.head, resp.status) == ("simple", data, b"", None)
    assert not resp.complete_head


def test_version_and_status_are_integers():
    resp = parse_response(b"HTTP/12.345 599 Odd\r\n\r\n")
    assert (resp.version, resp.status, resp.version_text) == ((12, 345), 599, "HTTP/12.345")
    assert resp.issues == ()


def test_leading_zeros_are_read_and_reported():
    resp = parse_response(b"HTTP/01.00 200 OK\r\n\r\n")
    assert resp.version == (1, 0) and resp.version_text == "HTTP/01.00"
    assert resp.issues == ("leading zeros in the version HTTP/01.00",)


def test_bare_lf_lines_are_reported_by_line():
    resp = parse_response(b"HTTP/1.0 200 OK\r\nA: 1\nB: 2\r\n\n")
    assert resp.complete_head and resp.headers == (("A", "1"), ("B", "2"))
    assert resp.issues == (
        "header line 1 ends with a bare LF",
        "the empty line after the headers is a bare LF",
    )


def test_bare_lf_status_line():
    resp = parse_response(b"HTTP/1.0 200 OK\n\r\nbody")
    assert resp.body == b"body"
    assert resp.issues == ("the status line ends with a bare LF",)


def test_head_ends_at_first_empty_line():
    resp = parse_response(b"HTTP/1.0 200 OK\r\n\r\nA: b\r\n\r\n")
    assert resp.headers == () and resp.body == b"A: b\r\n\r\n"


@pytest.mark.parametrize(
    ("line", "issue"),
    [
        (b"HTTP/1.0 200\r\n", "does not match"),  # no SP before the reason
        (b"HTTP/1.0 2000 OK\r\n", "does not match"),
        (b"HTTP/1.0 200 O\x01K\r\n", "does not match"),  # CTL in the reason
        (b"HTTP/1.0 200 OK\rX\r\n", "does not match"),  # a stray CR
    ],
)
def test_malformed_status_lines(line, issue):
    resp = parse_response(line + b"\r\n")
    assert resp.kind == "full" and resp.status == 200
    assert any(issue in i for i in resp.issues), resp.issues


def test_empty_reason_is_fine():
    resp = parse_response(b"HTTP/1.0 200 \r\n\r\n")
    assert resp.reason == "" and resp.issues == ()
    assert resp.status_line == "HTTP/1.0 200"


def test_reason_is_never_required_to_be_standard():
    resp = parse_response(b"HTTP/1.0 501 Unsupported method ('POST')\r\n\r\n")
    assert resp.reason == "Unsupported method ('POST')" and resp.issues == ()


def test_header_problems():
    resp = parse_response(
        b"HTTP/1.0 200 OK\r\n"
        b"Good: yes\r\n"
        b"Spaced : before colon\r\n"
        b"no colon at all\r\n"
        b"Bad Name: x\r\n"
        b": empty name\r\n"
        b"\r\n"
    )
    assert resp.headers == (
        ("Good", "yes"),
        ("Spaced", "before colon"),
        ("Bad Name", "x"),
        ("", "empty name"),
    )
    assert resp.issues == (
        "header line 2 has whitespace before the colon",
        "header line 3 has no colon: 'no colon at all'",
        "header line 4 has a name that is not a token: 'Bad Name'",
        "header line 5 has a name that is not a token: ''",
    )


def test_folding_joins_the_previous_value():
    resp = parse_response(b"HTTP/1.0 200 OK\r\nX: a\r\n  b\r\n\tc\r\nY: d\r\n\r\n")
    assert resp.headers == (("X", "a b c"), ("Y", "d"))
    assert resp.issues == (
        "header line 2 starts with whitespace (folding)",
        "header line 3 starts with whitespace (folding)",
    )


def test_folding_before_any_header_is_reported_and_dropped():
    resp = parse_response(b"HTTP/1.0 200 OK\r\n lost\r\n\r\n")
    assert resp.headers == () and resp.issues == ("header line 1 starts with whitespace (folding)",)


def test_values_are_latin1_and_trimmed():
    resp = parse_response(b"HTTP/1.0 200 OK\r\nServer: \t caf\xe9 \t\r\n\r\n")
    assert resp.headers == (("Server", "caf\u00e9"),)


def test_truncated_head():
    resp = parse_response(b"HTTP/1.0 200 OK\r\nA: b\r\nContent-Le")
    assert resp.kind == "full" and not resp.complete_head
    assert resp.headers == (("A", "b"),)  # the cut line is unfinished, not malformed
    assert resp.issues == (TRUNCATED_HEAD,)
    assert resp.body == b"" and resp.head == b"HTTP/1.0 200 OK\r\nA: b\r\nContent-Le"


@pytest.mark.parametrize("data", [b"HTTP/1.0 200", b"HTTP/1.0 200 O", b"HTTP/1.0 200 OK\r"])
def test_cut_status_line_is_only_truncated(data):
    resp = parse_response(data)
    assert (resp.status, resp.issues) == (200, (TRUNCATED_HEAD,))


def test_cut_line_is_not_a_bare_lf():
    resp = parse_response(b"HTTP/1.0 200 OK\r\nA: b")
    assert resp.issues == (TRUNCATED_HEAD,)
    assert resp.headers == ()


def test_header_lines_are_bounded():
    data = b"HTTP/1.0 200 OK\r\n" + b"A: b\r\n" * (MAX_HEADER_LINES + 5) + b"\r\nbody"
    resp = parse_response(data)
    assert len(resp.headers) == MAX_HEADER_LINES
    assert any("more than" in i for i in resp.issues)
    assert resp.head + resp.body == data


def test_header_lines_are_bounded_in_a_truncated_head():
    data = b"HTTP/1.0 200 OK\r\n" + b"A: b\r\n" * (MAX_HEADER_LINES + 5)
    resp = parse_response(data)
    assert len(resp.headers) == MAX_HEADER_LINES and not resp.complete_head
    assert resp.issues[-2:] == (
        f"more than {MAX_HEADER_LINES} header lines; the rest not parsed",
        TRUNCATED_HEAD,
    )


def test_header_values_any_case_in_order():
    resp = parse_response(b"HTTP/1.0 200 OK\r\nX-A: 1\r\nx-a: 2\r\nX-B: 3\r\n\r\n")
    assert header_values(resp, "X-A") == ["1", "2"]
    assert header_values(resp, "x-b") == ["3"]
    assert header_values(resp, "missing") == []
    assert header_values(parse_response(b"simple"), "X-A") == []


@pytest.mark.parametrize(
    ("sent", "method"),
    [
        (b"GET /file.txt HTTP/1.0\r\n\r\n", "GET"),
        (b"HEAD /file.txt HTTP/1.0\r\n\r\n", "HEAD"),
        (b"HEAD\t/ HTTP/1.0\r\n", "HEAD"),
        (b"\r\nHEAD / HTTP/1.0\r\n\r\n", "HEAD"),
        (b"head / HTTP/1.0\r\n\r\n", "head"),  # methods are case-sensitive (§5.1.1)
        (b"GET", "GET"),
        (b"", ""),
        (b"\r\n\r\n", ""),
        (b"\xff\xfe /", "\u00ff\u00fe"),
    ],
)
def test_request_method(sent, method):
    assert request_method(sent) == method


# --- whole, every prefix, trailing bytes -------------------------------------------------


@pytest.mark.parametrize("data", SAMPLES)
def test_whole_input_reassembles(data):
    resp = parse_response(data)
    if resp.kind == "full":
        assert resp.head + resp.body == data
    else:
        assert resp.body == data and resp.head == b""


@pytest.mark.parametrize("data", SAMPLES)
def test_every_prefix_is_consistent(data):
    """Feeding the bytes one more at a time never raises and never contradicts the whole."""
    whole = parse_response(data)
    prefix_len = _full_prefix_length(data)
    for cut in range(len(data) + 1):
        part = parse_response(data[:cut])
        _check_invariants(data[:cut], part)
        if cut == 0:
            assert part.kind == "none"
        elif prefix_len is not None and cut >= prefix_len:
            assert part.kind == "full" == whole.kind
            assert (part.version, part.status) == (whole.version, whole.status)
        elif whole.kind == "simple":
            assert part.kind == "simple"
        if part.complete_head:
            assert (part.head, part.headers) == (whole.head, whole.headers)
            assert whole.body.startswith(part.body)
        elif part.kind == "full":
            # Until the head is complete the issues found so far stay found, and
            # only a cut-off line is left out of the headers.
            assert set(part.issues) - {TRUNCATED_HEAD} <= set(whole.issues)
            names = [name for name, _ in part.headers]
            assert names == [name for name, _ in whole.headers][: len(names)]


@pytest.mark.parametrize("data", SAMPLES)
@pytest.mark.parametrize("trailing", [b"X", b"\r\n", b"\r\n\r\ntrailing bytes"])
def test_trailing_bytes_after_a_complete_head_only_grow_the_body(data, trailing):
    whole = parse_response(data)
    more = parse_response(data + trailing)
    assert more.kind == whole.kind
    if whole.complete_head:
        assert (more.head, more.headers) == (whole.head, whole.headers)
        assert more.body == whole.body + trailing


def _full_prefix_length(data: bytes) -> int | None:
    found = re.match(rb"HTTP/\d+\.\d+ \d{3}", data)
    return found.end() if found else None


def _check_invariants(data: bytes, resp: Response) -> None:
    assert resp.kind in ("full", "simple", "none")
    assert (resp.kind == "none") == (data == b"")
    if resp.kind == "full":
        assert resp.head + resp.body == data
        assert isinstance(resp.status, int) and 0 <= resp.status <= 999
        assert resp.version is not None and resp.version_text.startswith("HTTP/")
        assert resp.complete_head or resp.issues[-1] == TRUNCATED_HEAD or any(
            "more than" in i for i in resp.issues
        )
    else:
        assert (resp.head, resp.headers, resp.status, resp.version) == (b"", (), None, None)
        assert resp.body == data and not resp.complete_head
    for name, value in resp.headers:
        assert isinstance(name, str) and isinstance(value, str)
        assert value == value.strip(" \t\r\n")
    assert all(isinstance(issue, str) and issue for issue in resp.issues)


# --- property: never raises ----------------------------------------------------------------

# Bytes that look like responses more often than uniform noise does.
_PIECES = st.sampled_from(
    [b"HTTP/", b"1", b"0", b".", b" ", b"200", b"OK", b"\r", b"\n", b"\r\n", b":", b"\t", b"A", b"\xff"]
)
_RESPONSEISH = st.lists(_PIECES, max_size=40).map(b"".join)


@settings(deadline=None)
@given(st.binary(max_size=512))
def test_never_raises_on_arbitrary_bytes(data):
    _check_invariants(data, parse_response(data))


@settings(deadline=None)
@given(_RESPONSEISH)
def test_never_raises_on_response_like_bytes(data):
    _check_invariants(data, parse_response(data))


@settings(deadline=None)
@given(st.binary(max_size=64))
def test_prefixed_garbage_is_full(data):
    resp = parse_response(b"HTTP/1.0 200 " + data)
    assert resp.kind == "full" and resp.status == 200
    _check_invariants(b"HTTP/1.0 200 " + data, resp)


@settings(deadline=None)
@given(st.binary(max_size=64))
def test_request_method_never_raises(data):
    assert isinstance(request_method(data), str)


# --- framed_length: when a response is complete by its own framing -------------------

from conformance.parse import framed_length, is_simple_response  # noqa: E402

FRAMED = [
    (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", "GET", 40),
    (b"HTTP/1.0 200 OK\r\ncontent-length:  2 \r\n\r\n", "GET", 42),
    (b"HTTP/1.0 200 OK\nContent-Length: 3\n\n", "GET", 38),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\n", "HEAD", 38),
    (b"HTTP/1.0 304 Not Modified\r\nContent-Length: 9\r\n\r\n", "GET", 48),
    (b"HTTP/1.0 200 OK\r\n\r\nbody", "GET", None),  # ends by the close
    (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n", "GET", None),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n", "GET", None),  # head not over
    (b"just a body", "GET", None),
    (b"", "GET", None),
]


@pytest.mark.parametrize("data, method, length", FRAMED)
def test_framed_length(data, method, length):
    assert framed_length(data, method) == length


@pytest.mark.parametrize("data, method, length", FRAMED)
def test_framed_length_never_claims_completeness_early(data, method, length):
    # Fed one byte at a time, no prefix claims more bytes than the whole says, and a
    # prefix shorter than the head never claims anything.
    for end in range(len(data)):
        got = framed_length(data[:end], method)
        assert got is None or got == length


@pytest.mark.parametrize("data, simple", [
    (b"hello\n", True),        # an HTTP/0.9 answer: no status line can follow
    (b"<html>", True),
    (b"x", True),
    (b"HTT", False),           # could still become a status line
    (b"HTTP/1.0 200 OK", False),
    (b"", False),              # nothing yet
])
def test_is_simple_response(data, simple):
    assert is_simple_response(data) == simple
