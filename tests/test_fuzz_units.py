"""The fuzzer's pure parts: strategies, mutators, invariants, classes, case files.

No sockets here: observations are built by hand, as the wire module would record them.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings, strategies as st

from conformance import escape
from conformance.check import check_corpus
from conformance.fuzz import casefile, differential, invariants, strategies
from conformance.fuzz.strategies import Example, Request, examples, mutate, requests
from conformance.loader import load_case
from conformance.model import Observation
from conformance.resources import cases_dir

PATHS = ("file.txt", "bytes.bin", "café.txt", "space name.txt")
SECRET = b"CONFORMANCE-SECRET-OUTSIDE-ROOT 5b7c"
GET = b"GET /file.txt HTTP/1.0\r\n\r\n"
OK = b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\n"


def _valid(data: bytes = GET, **kw) -> Example:
    method = data.split(b" ", 1)[0]
    return Example(Request(method, b"/file.txt", b"HTTP/1.0", (), valid=True), data, **kw)


def _fuzzed(data: bytes, **kw) -> Example:
    return Example(Request(b"GET", b"/", None, ()), data, mutations=("flip at 0",), **kw)


def _obs(received: bytes = b"", end: str = "closed") -> Observation:
    return Observation(name="fuzz", received=received, received_total=len(received), end=end)


# -- strategies -------------------------------------------------------------------------

_REQUEST_LINE = re.compile(rb"(GET|HEAD|POST) /\S* HTTP/1\.0\r\n")


@settings(max_examples=200, deadline=None)
@given(requests(PATHS))
def test_a_valid_request_is_a_well_formed_http10_full_request(request):
    data = request.render()
    if not request.valid:
        return
    if request.version is None:
        assert re.fullmatch(rb"GET /\S*\r\n", data)
        return
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep and _REQUEST_LINE.match(head + b"\r\n")
    lines = head.split(b"\r\n")[1:]
    for line in lines:
        name, colon, _ = line.partition(b":")
        assert colon and re.fullmatch(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", name), line
    lengths = [int(l.split(b":")[1]) for l in lines if l.lower().startswith(b"content-length:")]
    assert lengths == ([len(body)] if body or lengths else [])


@settings(max_examples=200, deadline=None)
@given(examples(PATHS, ("big.bin",)))
def test_examples_are_bounded_and_their_segments_rebuild_the_bytes(example):
    assert len(example.data) <= 20_000
    assert b"".join(example.segments) == example.data
    assert all(0 < cut < len(example.data) for cut in example.cuts)
    if example.valid:
        assert not example.mutations and example.read is None


@pytest.mark.parametrize("name", sorted(strategies.MUTATORS))
def test_every_mutator_takes_any_position_and_empty_input(name):
    for data in (b"", b"G", GET):
        for pos in (0, 1, 7, 10_000):
            out = strategies.MUTATORS[name](data, pos, 3)
            assert isinstance(out, bytes)


def test_mutate_labels_each_step():
    data, labels = mutate(b"GET / HTTP/1.0\r\n\r\n", (("insert", 3, 2), ("truncate", 5, 0)))
    assert data == b"GET\x00 "
    assert labels == ("insert b'\\x00' at 3", "truncate at 5")


@pytest.mark.parametrize("data, simple", [
    (b"GET /file.txt\r\n", True),
    (b"\r\nGET /file.txt HTTP/1.0\r\n\r\n", False),
    (b"GET /file.txt http/1.0\r\n", False),
    (b"", True),
    (b"G% HTTP6999", True),
])
def test_is_simple_request(data, simple):
    assert strategies.is_simple_request(data) is simple


# -- invariants -------------------------------------------------------------------------

# (example, observation, kinds expected); the table is the specification.
EXCHANGES = [
    ("answered and closed", _valid(), _obs(OK), []),
    ("silent, open", _valid(), _obs(b"", "timeout"), ["hang"]),
    ("answered, open", _valid(), _obs(OK, "timeout"), ["no-close"]),
    ("closed silently", _valid(), _obs(b"", "closed"), ["dropped"]),
    ("reset silently", _valid(), _obs(b"", "reset"), ["dropped"]),
    ("no status line", _valid(), _obs(b"hello\n"), ["garbage"]),
    ("cut head", _valid(), _obs(b"HTTP/1.0 200 OK\r\nContent-Len"), ["garbage"]),
    ("content-length off by one", _valid(), _obs(OK.replace(b": 6", b": 7")), ["framing"]),
    ("bare LF", _valid(), _obs(OK.replace(b"\r\n", b"\n")), ["framing"]),
    ("HEAD with a body", _valid(b"HEAD /file.txt HTTP/1.0\r\n\r\n"), _obs(OK), ["framing"]),
    ("304 without body", _valid(), _obs(b"HTTP/1.0 304 Not Modified\r\nContent-Length: 6\r\n\r\n"), []),
    ("the secret", _valid(), _obs(b"HTTP/1.0 200 OK\r\n\r\n" + SECRET), ["secret"]),
    ("fuzzed, open, not half-closed", _fuzzed(b"GET /fi"), _obs(b"", "timeout"), []),
    ("fuzzed, open, half-closed", _fuzzed(b"GET /fi", half_close=True), _obs(b"", "timeout"), ["hang"]),
    ("fuzzed, closed silently", _fuzzed(b"XX", half_close=True), _obs(b"", "closed"), []),
    ("fuzzed 0.9, simple answer", _fuzzed(b"GET /file.txt\r\n", half_close=True), _obs(b"hello\n"), []),
    ("fuzzed 1.0, simple answer", _fuzzed(b"GET / HTTP/1.0\r\n\r\n"), _obs(b"hello\n"), ["garbage"]),
    ("0.9 request, empty Simple-Response", Example(Request(b"GET", b"/empty.txt", None, (), valid=True),
                                                   b"GET /empty.txt\r\n"), _obs(b""), []),
    ("0.9 request, never answered", Example(Request(b"GET", b"/", None, (), valid=True), b"GET /\r\n"),
     _obs(b"", "timeout"), ["hang"]),
    ("client left early", _fuzzed(b"GET / HTTP/1.0\r\n\r\n", read=10), _obs(b"HTTP/1.0 2", "limit"), []),
]


@pytest.mark.parametrize("example, obs, kinds", [e[1:] for e in EXCHANGES], ids=[e[0] for e in EXCHANGES])
def test_check_exchange(example, obs, kinds):
    got = [v.kind for v in invariants.check_exchange(example, obs, SECRET)]
    assert got == kinds


def test_every_kind_has_a_level_and_known_requirements():
    from conformance.loader import load_requirements

    known = load_requirements(cases_dir())
    for kind in invariants.KINDS.values():
        assert kind.level in ("MUST", "SHOULD", "MAY")
        assert set(kind.requirements) <= set(known)


def test_canary_and_output_checks():
    canary = b"http10-conformance canary v1\n"
    assert invariants.check_canary(_obs(OK + canary), canary) is None
    assert invariants.check_canary(_obs(b"", "refused"), canary).kind == "canary"
    assert "status 1" in invariants.check_canary(_obs(), canary, exit_status=1).detail
    out = b"x\nTraceback (most recent call last):\n  File \"s.py\", line 1\n    a()\nValueError: bad\n"
    assert invariants.check_output(out).detail.endswith("ValueError: bad")
    assert invariants.check_output(b"GET / 200\n") is None


# -- differential ---------------------------------------------------------------------------

A200 = _obs(OK)
A404 = _obs(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")
A500 = _obs(b"HTTP/1.0 500 Oops\r\nContent-Length: 0\r\n\r\n")
A505 = _obs(b"HTTP/1.0 505 Version\r\nContent-Length: 0\r\n\r\n")
NONE = _obs(b"", "closed")


@pytest.mark.parametrize("a, b, cls", [
    (A200, A200, None),
    (A200, NONE, "no-response"),
    (A200, A404, "accept-reject"),
    (A404, A500, "status-class"),
    (A200, _obs(b"hello\n"), "framing"),
    (A200, _obs(OK.replace(b": 6", b": 9")), "framing"),
    (A200, _obs(OK.replace(b"hello", b"HELLO")), "body"),
])
def test_classify(a, b, cls):
    got = differential.classify(_valid(), differential.answer_of(a), differential.answer_of(b))
    assert (got.cls if got else None) == cls
    if got:
        assert got.known == ""


def test_documented_choices_are_known_not_findings():
    version = _fuzzed(b"GET /file.txt HTTP/2.0\r\n\r\n")
    got = differential.classify(version, differential.answer_of(A404), differential.answer_of(A505))
    assert got.cls == "status-class" and got.known == "version-505"
    lab = _fuzzed(b"GET file.txt HTTP/1.0\r\n\r\n")
    got = differential.classify(lab, differential.answer_of(A404), differential.answer_of(A200))
    assert got.known in differential.KNOWN


# -- case files -----------------------------------------------------------------------------

CASES = [
    ("framing", _valid()),
    ("framing", _valid(b"HEAD /file.txt HTTP/1.0\r\n\r\n")),
    ("secret", _valid(b"GET /../secret.txt HTTP/1.0\r\n\r\n")),
    ("secret", _valid(b"GET /link.txt HTTP/1.0\r\n\r\n")),
    ("canary", _fuzzed(b"G\x00\xff\"\\ x", half_close=True)),
    ("canary", _fuzzed(b"", half_close=True)),
    ("hang", _fuzzed(b"GET / HTTP/1.0\r\n", cuts=(3, 9), pause_ms=5, half_close=True)),
    ("no-close", _valid()),
    ("dropped", _valid(b"GET /%00 HTTP/1.0\r\n\r\n")),
    ("garbage", _fuzzed(b"GET /file.txt\r\n", half_close=True)),
    ("traceback", _valid()),
    ("traceback", _fuzzed(b"XYZ", read=0)),
]


def test_written_cases_pass_check_and_keep_the_bytes(tmp_path):
    folder = casefile.prepare_corpus(tmp_path, cases_dir())
    names = []
    for kind, example in CASES:
        name = casefile.case_name(kind, example)
        names.append(name)
        (folder / f"{name}.toml").write_text(casefile.case_text(kind, example, "seen", SECRET, 1, 2))
    assert len(set(names)) == len(names)
    assert check_corpus(tmp_path) == []
    for (kind, example), name in zip(CASES, names):
        case = load_case(folder / f"{name}.toml", tmp_path)
        conn = case.connections[0]
        assert b"".join(p.payload for p in conn.parts) == example.data
        assert conn.half_close == example.half_close and conn.read == example.read
        assert case.id == f"fuzz/{name}"
        if kind == "secret" and b"link.txt" in example.data:
            assert case.level == "SHOULD"


def test_reproducer_is_printf_for_plain_bytes_and_the_runner_otherwise(tmp_path):
    plain = casefile.reproducer(_valid(), "127.0.0.1:8080", tmp_path, "x")
    assert plain == f"printf {escape.shell_quote_bytes(GET)} | nc 127.0.0.1 8080"
    pieces = casefile.reproducer(_fuzzed(GET, cuts=(3,)), "127.0.0.1:8080", tmp_path, "x")
    assert pieces.startswith("python -m conformance --cases") and "--id fuzz/x" in pieces


def test_a_client_that_left_early_is_not_compared():
    early = _valid(read=100)
    assert differential.classify(early, differential.answer_of(A200), differential.answer_of(NONE)) is None


def test_a_close_on_bad_input_is_a_known_choice():
    bad = _fuzzed(b"GET /file.txt HTTP/1.0\r\n", half_close=True)
    got = differential.classify(bad, differential.answer_of(NONE), differential.answer_of(A404))
    assert got.cls == "no-response" and got.known == "close-on-bad-input"
    silent = differential.classify(_valid(), differential.answer_of(NONE), differential.answer_of(A404))
    assert silent.known == ""
