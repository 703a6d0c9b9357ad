"""Pure-function tests of the reference server: parsing, paths, dates, handlers.

No sockets here. Every parser case is fed whole, one byte at a time, and with
trailing bytes (as h11's tests do): TCP is a byte stream, and a server must give
the same answer however the request was split.
"""

from __future__ import annotations

import calendar
import os
import re
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_helpers import server as S  # noqa: E402

CONFIG = S.Config()


# -- feeding helpers ------------------------------------------------------------------------


def outcome(data: bytes):
    """The parse result, or the status of the ProtocolError it raised."""
    try:
        return S.parse_request(data, CONFIG)
    except S.ProtocolError as error:
        return error.status


def fed_in_pieces(data: bytes, size: int):
    """Feed growing prefixes as a server receives them: the first non-None outcome,
    and the length at which it came."""
    for end in list(range(size, len(data), size)) + [len(data)]:
        result = outcome(data[:end])
        if result is not None:
            return result, end
    return None, len(data)


def check_all_feeds(data: bytes, expected):
    """Whole, byte by byte (in pieces for long inputs), and with trailing bytes."""
    whole = outcome(data)
    assert _summary(whole) == expected
    piece = 1 if len(data) <= 4096 else 997
    split, at = fed_in_pieces(data, piece)
    assert _summary(split) == expected
    if isinstance(expected, dict):
        assert at == whole.head_length, "complete before (or after) its head ended"
        assert split == whole
    trailing = outcome(data + b"GARBAGE\r\n\r\nGET /other HTTP/1.0\r\n\r\n")
    assert _summary(trailing) == expected
    if isinstance(expected, dict):
        assert trailing.head_length == whole.head_length


def _summary(result):
    if result is None or isinstance(result, int):
        return result
    summary = {"method": result.method, "path": result.path, "version": result.version}
    summary.update({f"h:{name}": value for name, value in result.headers})
    if result.host is not None:
        summary["host"] = result.host
    return summary


def full(method="GET", path=b"/file.txt", version=(1, 0), **headers):
    summary = {"method": method, "path": path, "version": version}
    summary.update({f"h:{name.replace('_', '-')}": value for name, value in headers.items()})
    return summary


# -- requests that parse --------------------------------------------------------------------

VALID = {
    "plain": (b"GET /file.txt HTTP/1.0\r\n\r\n", full()),
    "headers, any case": (
        b"GET /file.txt HTTP/1.0\r\nUser-Agent: x\r\nIF-MODIFIED-SINCE: d\r\n\r\n",
        full(user_agent="x", if_modified_since="d")),
    "bare LF": (b"GET /file.txt HTTP/1.0\nAccept: */*\n\n", full(accept="*/*")),
    "mixed line ends": (b"GET /file.txt HTTP/1.0\r\nA: 1\n\r\n", full(a="1")),
    "leading empty lines": (b"\r\n\n\r\nGET /file.txt HTTP/1.0\r\n\r\n", full()),
    "continuation lines": (
        b"GET /file.txt HTTP/1.0\r\nX-A: 1\r\n  continued\r\n\tmore\r\nB: 2\r\n\r\n",
        full(x_a="1 continued more", b="2")),
    "simple request": (b"GET /file.txt\r\n", full(version=None)),
    "simple request, bare LF": (b"GET /file.txt\n", full(version=None)),
    "absoluteURI": (b"GET http://example.com:8080/dir/x.txt?q=1#f HTTP/1.0\r\n\r\n",
                    dict(full(path=b"/dir/x.txt"), host="example.com:8080")),
    "absoluteURI, no path": (b"GET HTTP://example.com HTTP/1.0\r\n\r\n",
                             dict(full(path=b"/"), host="example.com")),
    "lab form, no slash": (b"GET file.txt HTTP/1.0\r\n\r\n", full()),
    "percent-decoding": (b"GET /space%20name.txt HTTP/1.0\r\n\r\n", full(path=b"/space name.txt")),
    "encoded dot": (b"GET /file%2Etxt HTTP/1.0\r\n\r\n", full()),
    "double encoding decodes once": (b"GET /%252e HTTP/1.0\r\n\r\n", full(path=b"/%2e")),
    "query ignored": (b"GET /file.txt?x=1&y=%zz HTTP/1.0\r\n\r\n", full()),
    "fragment ignored": (b"GET /file.txt#top HTTP/1.0\r\n\r\n", full()),
    "HTTP/1.1": (b"GET /file.txt HTTP/1.1\r\nHost: h:1\r\n\r\n",
                 dict(full(version=(1, 1), host="h:1"), host="h:1")),
    "leading zeros": (b"GET /file.txt HTTP/01.00\r\n\r\n", full()),
    "lower-case protocol name": (b"GET /file.txt http/1.0\r\n\r\n", full()),
    "huge minor version": (b"GET /file.txt HTTP/1." + b"9" * 40 + b"\r\n\r\n",
                           full(version=(1, 10**18))),
    "extra whitespace": (b"GET  /file.txt \tHTTP/1.0 \r\n\r\n", full()),
    "lower-case method is another method": (b"get /file.txt HTTP/1.0\r\n\r\n", full(method="get")),
    "extension method": (b"M-SEARCH /file.txt HTTP/1.0\r\n\r\n", full(method="M-SEARCH")),
    "8-bit header text": (b"GET /file.txt HTTP/1.0\r\nUser-Agent: caf\xe9\r\n\r\n",
                          full(user_agent="caf\xe9")),
    "empty header value": (b"GET /file.txt HTTP/1.0\r\nX-Empty:\r\n\r\n", full(x_empty="")),
    "8-bit path": (b"GET /caf\xe9.txt HTTP/1.0\r\n\r\n", full(path=b"/caf\xe9.txt")),
    "UTF-8 path escaped": (b"GET /caf%C3%A9.txt HTTP/1.0\r\n\r\n",
                           full(path="/café.txt".encode())),
    "POST head (body follows)": (b"POST /file.txt HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello",
                                 full(method="POST", content_length="5")),
    "100 header fields": (b"GET /file.txt HTTP/1.0\r\n"
                          + b"".join(b"X-%d: v\r\n" % i for i in range(100)) + b"\r\n",
                          full(**{f"x_{i}": "v" for i in range(100)})),
}


@pytest.mark.parametrize("data, expected", VALID.values(), ids=VALID.keys())
def test_valid_request_parses_however_fed(data, expected):
    check_all_feeds(data, expected)


# -- requests that are refused, with the status each implies -------------------------------

INVALID = {
    "one word": (b"GET\r\n\r\n", 400),
    "no method": (b"/file.txt HTTP/1.0\r\n\r\n", 400),
    "four words": (b"GET /file.txt HTTP/1.0 extra\r\n\r\n", 400),
    "raw space in URI": (b"GET /space name.txt HTTP/1.0\r\n\r\n", 400),
    "CR inside the line": (b"GET /fi\rle.txt HTTP/1.0\r\n\r\n", 400),
    "NUL in the line": (b"GET /file.txt\0 HTTP/1.0\r\n\r\n", 400),
    "control byte in URI": (b"GET /fi\x01le.txt HTTP/1.0\r\n\r\n", 400),
    "method not a token": (b"G(T /file.txt HTTP/1.0\r\n\r\n", 400),
    "version FOO": (b"GET /file.txt FOO/1.0\r\n\r\n", 400),
    "version without minor": (b"GET /file.txt HTTP/1\r\n\r\n", 400),
    "version with letters": (b"GET /file.txt HTTP/1.x\r\n\r\n", 400),
    "version 2.0": (b"GET /file.txt HTTP/2.0\r\n\r\n", 505),
    "version 3.0": (b"GET /file.txt HTTP/3.0\r\n\r\n", 505),
    "version 0.9 spelled out": (b"GET /file.txt HTTP/0.9\r\n\r\n", 505),
    "huge major version": (b"GET /file.txt HTTP/" + b"9" * 5000 + b".0\r\n\r\n", 505),
    "simple request other than GET": (b"HEAD /file.txt\r\n", 400),
    "star": (b"GET * HTTP/1.0\r\n\r\n", 400),
    "OPTIONS star": (b"OPTIONS * HTTP/1.0\r\n\r\n", 400),
    "other scheme": (b"GET ftp://example.com/file.txt HTTP/1.0\r\n\r\n", 400),
    "bad escape": (b"GET /file%zz.txt HTTP/1.0\r\n\r\n", 400),
    "escape cut short": (b"GET /file% HTTP/1.0\r\n\r\n", 400),
    "header without colon": (b"GET /file.txt HTTP/1.0\r\nBadHeader\r\n\r\n", 400),
    "space before colon": (b"GET /file.txt HTTP/1.0\r\nX-A : 1\r\n\r\n", 400),
    "continuation first": (b"GET /file.txt HTTP/1.0\r\n  folded\r\n\r\n", 400),
    "CR inside a header": (b"GET /file.txt HTTP/1.0\r\nX-A: 1\r2\r\n\r\n", 400),
    "NUL inside a header": (b"GET /file.txt HTTP/1.0\r\nX-A: 1\x002\r\n\r\n", 400),
    "TLS client hello": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32))
                         + b"\r\n\r\n", 400),
    "request line too long": (b"GET /" + b"a" * 9000 + b" HTTP/1.0\r\n\r\n", 414),
    "request line too long, no LF yet": (b"GET /" + b"a" * 9000, 414),
    "too many header fields": (b"GET /file.txt HTTP/1.0\r\n"
                               + b"".join(b"X-%d: v\r\n" % i for i in range(101)) + b"\r\n", 431),
    "header block too large": (b"GET /file.txt HTTP/1.0\r\nX-Big: " + b"v" * 70000 + b"\r\n\r\n",
                               431),
}


@pytest.mark.parametrize("data, status", INVALID.values(), ids=INVALID.keys())
def test_invalid_request_is_refused_however_fed(data, status):
    check_all_feeds(data, status)


def test_incomplete_request_needs_more_bytes():
    for data in (b"", b"\r\n", b"GET /file.txt", b"GET /file.txt HTTP/1.0\r\n",
                 b"GET /file.txt HTTP/1.0\r\nHost: x\r\n", b"GET /file.txt HTTP/1.0\r\n\r"):
        assert S.parse_request(data) is None, data


def test_request_header_lookup_is_case_insensitive_and_takes_the_last():
    request = S.parse_request(b"GET / HTTP/1.0\r\nX-A: 1\r\nx-a: 2\r\n\r\n")
    assert request.header("X-A") == "2"
    assert request.header_values("x-A") == ["1", "2"]
    assert request.header("missing") is None


def test_protocol_error_carries_status_and_message():
    with pytest.raises(S.ProtocolError) as caught:
        S.parse_request(b"GET * HTTP/1.0\r\n\r\n")
    assert caught.value.status == 400
    assert "HTTP/1.0" in caught.value.message


# -- bodies ---------------------------------------------------------------------------------


def _request(head: bytes):
    return S.parse_request(head + b"\r\n")


@pytest.mark.parametrize("head, expected", [
    (b"GET / HTTP/1.0\r\n", 0),
    (b"POST / HTTP/1.0\r\nContent-Length: 5\r\n", 5),
    (b"POST / HTTP/1.0\r\nContent-Length: 0005\r\n", 5),
    (b"POST / HTTP/1.0\r\nContent-Length: 5\r\ncontent-length: 5\r\n", 5),
    (b"PUT / HTTP/1.0\r\nContent-Length: 1\r\n", 1),
    (b"GET / HTTP/1.0\r\nContent-Length: 5\r\n", 5),
    (b"POST / HTTP/1.0\r\n", 400),
    (b"POST / HTTP/1.0\r\nContent-Length: abc\r\n", 400),
    (b"POST / HTTP/1.0\r\nContent-Length: -1\r\n", 400),
    (b"POST / HTTP/1.0\r\nContent-Length: +5\r\n", 400),
    (b"POST / HTTP/1.0\r\nContent-Length: 5\r\nContent-Length: 6\r\n", 400),
    (b"POST / HTTP/1.0\r\nContent-Length: \xb2\r\n", 400),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n", 400),
    (b"POST / HTTP/1.0\r\nContent-Length: 10000000000\r\n", 413),
    (b"POST / HTTP/1.0\r\nContent-Length: " + b"9" * 6000 + b"\r\n", 413),
])
def test_body_length(head, expected):
    request = _request(head)
    try:
        result = S.body_length(request, CONFIG)
    except S.ProtocolError as error:
        result = error.status
    assert result == expected


# -- property: any bytes give a request, "need more", or a clean protocol error -------------

STATUSES = {400, 414, 431, 505}

_fragments = st.sampled_from([
    b"GET", b"HEAD", b"POST", b"get", b" ", b"  ", b"\t", b"/", b"/file.txt", b"..", b"%",
    b"%2e", b"%zz", b"%00", b"*", b"http://", b"h:1", b"?", b"#", b"HTTP/1.0", b"HTTP/",
    b"1", b".", b"0", b"99999999999999999999", b"\r\n", b"\n", b"\r", b":", b"Host", b"X-A",
    b"Content-Length", b"\0", b"\xff", b"\xc0\xae", b"\\",
])
request_like = st.lists(_fragments, max_size=40).map(b"".join)


@given(st.one_of(st.binary(max_size=600), request_like))
@settings(deadline=None, max_examples=300)
def test_any_bytes_parse_or_fail_cleanly(data):
    try:
        request = S.parse_request(data, CONFIG)
    except S.ProtocolError as error:
        assert error.status in STATUSES
        return
    if request is None:
        return
    assert 0 < request.head_length <= len(data)
    assert request.path.startswith(b"/")
    assert re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", request.method)
    assert request.version is None or request.version[0] == 1
    try:  # what the server does next must be clean too
        S.body_length(request, CONFIG)
        S.normalise_path(request.path)
    except S.ProtocolError as error:
        assert error.status in {400, 403, 413}


@given(request_like, st.integers(min_value=1, max_value=7))
@settings(deadline=None, max_examples=200)
def test_splitting_never_changes_the_answer(data, piece):
    data += b"\r\n\r\n"
    whole = _summary(outcome(data))
    split, _ = fed_in_pieces(data, piece)
    assert _summary(split) == whole


# -- paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path, expected", [
    (b"/", ([], True)),
    (b"/file.txt", ([b"file.txt"], False)),
    (b"/dir/", ([b"dir"], True)),
    (b"//dir//x", ([b"dir", b"x"], False)),
    (b"/dir/../file.txt", ([b"file.txt"], False)),
    (b"/./dir/./", ([b"dir"], True)),
    (b"/dir/sub/..", ([b"dir"], True)),
    (b"/a/b/../../c", ([b"c"], False)),
    (b"/\xc0\xae\xc0\xae/x", ([b"\xc0\xae\xc0\xae", b"x"], False)),  # overlong: just a name
    (b"/..", 403),
    (b"/../secret.txt", 403),
    (b"/dir/../../secret.txt", 403),
    (b"/a/../../b", 403),
    (b"/..\\secret.txt", 403),
    (b"/dir\\..\\x", 403),
    (b"/file.txt\0.html", 400),
    (b"/.htaccess", 403),
    (b"/.git/config", 403),
    (b"/dir/.hidden/x", 403),
])
def test_normalise_path(path, expected):
    try:
        result = S.normalise_path(path)
    except S.ProtocolError as error:
        result = error.status
    assert result == expected


@pytest.fixture
def jail(tmp_path):
    """root/ with a file, a folder, and symlinks in and out; secret.txt beside root/."""
    root = tmp_path / "root"
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "file.txt").write_bytes(b"hello\n")
    (root / "dir" / "index.html").write_bytes(b"<p>dir</p>\n")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x").write_bytes(b"x")
    (tmp_path / "secret.txt").write_bytes(b"SECRET\n")
    (root / "in.txt").symlink_to("file.txt")
    (root / "out.txt").symlink_to("../secret.txt")
    (root / "outdir").symlink_to(str(tmp_path))
    (root / "abs.txt").symlink_to(str(tmp_path / "secret.txt"))
    (root / "tohidden").symlink_to(".hidden/x")
    (root / "loop").symlink_to("loop")
    return root


def test_resolve_path_confines_symlinks(jail):
    root = os.fsencode(os.path.realpath(jail))
    assert S.resolve_path(root, b"/in.txt") == (root + b"/file.txt", False)
    assert S.resolve_path(root, b"/dir/../file.txt") == (root + b"/file.txt", False)
    # out and back in again: refused, as openat2's RESOLVE_BENEATH does, since the step
    # outside is a path a local user could change under us
    for path in (b"/out.txt", b"/outdir/secret.txt", b"/abs.txt", b"/tohidden",
                 b"/outdir/root/file.txt"):
        with pytest.raises(S.ProtocolError) as caught:
            S.resolve_path(root, path)
        assert caught.value.status == 403, path


_segments = st.sampled_from([b"..", b".", b"", b"dir", b"sub", b"file.txt", b"in.txt", b"out.txt",
                             b"outdir", b"abs.txt", b"loop", b"root", b"secret.txt", b"\\",
                             b"%2e", b"\xc0\xae", b".hidden", b"nope"])


@given(st.lists(_segments, max_size=10), st.booleans())
@settings(deadline=None, max_examples=300)
def test_resolved_path_is_always_inside_the_root(jail_root, segments, slash):
    root = jail_root
    path = b"/" + b"/".join(segments) + (b"/" if slash else b"")
    try:
        real, _ = S.resolve_path(root, path)
    except S.ProtocolError as error:
        assert error.status in (400, 403, 404)
        return
    assert real == root or real.startswith(root + b"/")
    assert os.path.realpath(real) == real  # no symlink left to follow


@pytest.fixture(scope="module")
def jail_root(tmp_path_factory):
    base = tmp_path_factory.mktemp("jail")
    root = base / "root"
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "file.txt").write_bytes(b"hello\n")
    (base / "secret.txt").write_bytes(b"SECRET\n")
    (root / "in.txt").symlink_to("file.txt")
    (root / "out.txt").symlink_to("../secret.txt")
    (root / "outdir").symlink_to(str(base))
    (root / "abs.txt").symlink_to(str(base / "secret.txt"))
    (root / "loop").symlink_to("loop")
    return os.fsencode(os.path.realpath(root))


@pytest.mark.parametrize("target, expected", [
    ("/a%2Fb", (b"/a/b", None)),
    ("a/b", (b"/a/b", None)),
    ("http://h:1", (b"/", "h:1")),
    ("http://h:1?x", (b"/", "h:1")),
    ("http://h/a?x#y", (b"/a", "h")),
    ("/%41%42", (b"/AB", None)),
])
def test_split_target(target, expected):
    assert S.split_target(target) == expected


# -- dates ----------------------------------------------------------------------------------

LM = calendar.timegm((2020, 1, 2, 3, 4, 5))


@pytest.mark.parametrize("text", [
    "Thu, 02 Jan 2020 03:04:05 GMT",
    "Thursday, 02-Jan-20 03:04:05 GMT",
    "Thu Jan  2 03:04:05 2020",
    "  Thu, 02 Jan 2020 03:04:05 GMT  ",
    "thu, 02 jan 2020 03:04:05 gmt",
    "Thu, 02 Jan 2020 03:04:05 GMT; length=6",
    "Thu, 2 Jan 2020 03:04:05 GMT",
])
def test_three_date_forms(text):
    assert S.parse_http_date(text) == LM


@pytest.mark.parametrize("text", ["yesterday", "", "Thu, 31 Feb 2020 03:04:05 GMT",
                                  "Thu, 02 Foo 2020 03:04:05 GMT", "Thu, 02 Jan 2020 25:04:05 GMT",
                                  "Thu, 02 Jan 2020 03:04:05 PST", "1577934245"])
def test_invalid_dates(text):
    assert S.parse_http_date(text) is None


def test_two_digit_years():
    assert S.parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == calendar.timegm(
        (1994, 11, 6, 8, 49, 37))


@given(st.integers(min_value=0, max_value=253402300799))
@settings(deadline=None)
def test_format_then_parse_round_trips(seconds):
    text = S.format_http_date(seconds)
    assert re.fullmatch(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|"
                        r"Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT", text)
    assert S.parse_http_date(text) == seconds


@given(st.text(max_size=60))
@settings(deadline=None)
def test_any_text_is_a_date_or_none(text):
    result = S.parse_http_date(text)
    assert result is None or isinstance(result, int)


# -- handlers: what each request is answered (file system, no socket) -----------------------


_ROOT_FDS: dict[bytes, int] = {}


def _root_fd(real: bytes) -> int:
    """A descriptor of the root, opened once per test (closed by _close_root_fds)."""
    if real not in _ROOT_FDS:
        _ROOT_FDS[real] = os.open(real, os.O_RDONLY)
    return _ROOT_FDS[real]


@pytest.fixture(autouse=True)
def _close_root_fds():
    yield
    while _ROOT_FDS:
        os.close(_ROOT_FDS.popitem()[1])


def context(root: Path, now: float | None = None, **config):
    real = os.fsencode(os.path.realpath(root))
    return S.Context(real, _root_fd(real), S.Config(**config),
                     time.time() if now is None else now, "http://127.0.0.1:8080")


def answer(root: Path, data: bytes, now: float | None = None, **config):
    request = S.parse_request(data)
    try:
        response = S.handle(request, context(root, now, **config))
    except S.ProtocolError as error:
        return error.status, {}, b"", None
    body = response.body
    if response.file is not None:
        body += response.file.read()
        response.file.close()
    headers = dict(response.headers)
    return response.status, headers, body if response.send_body else None, response


def test_get_file(jail):
    os.utime(jail / "file.txt", (LM, LM))
    status, headers, body, _ = answer(jail, b"GET /file.txt HTTP/1.0\r\n\r\n")
    assert (status, body) == (200, b"hello\n")
    assert headers["Content-Type"] == "text/plain"
    assert headers["Content-Length"] == "6"
    assert headers["Last-Modified"] == "Thu, 02 Jan 2020 03:04:05 GMT"


def test_head_has_the_headers_of_get_and_no_body(jail):
    _, get_headers, _, _ = answer(jail, b"GET /file.txt HTTP/1.0\r\n\r\n")
    status, head_headers, body, _ = answer(jail, b"HEAD /file.txt HTTP/1.0\r\n\r\n")
    assert (status, body, head_headers) == (200, None, get_headers)


def test_large_file_is_streamed_not_read(jail):
    (jail / "big.bin").write_bytes(os.urandom(200_000))
    status, headers, body, response = answer(jail, b"GET /big.bin HTTP/1.0\r\n\r\n")
    assert status == 200 and response.body == b"" and response.file_length == 200_000
    assert body == (jail / "big.bin").read_bytes()
    assert headers["Content-Type"] == "application/octet-stream"


@pytest.mark.parametrize("ims, expected", [
    ("Thu, 02 Jan 2020 03:04:05 GMT", 304),
    ("Thursday, 02-Jan-20 03:04:05 GMT", 304),
    ("Thu Jan  2 03:04:05 2020", 304),
    ("Fri, 03 Jan 2020 03:04:05 GMT", 304),   # later than LM, still in the past
    ("Wed, 01 Jan 2020 00:00:00 GMT", 200),   # older: modified since
    ("yesterday", 200),                       # invalid: ignored
    ("Fri, 01 Jan 2100 00:00:00 GMT", 200),   # in the future: invalid, ignored
])
def test_if_modified_since(jail, ims, expected):
    os.utime(jail / "file.txt", (LM, LM))
    for method in (b"GET", b"HEAD"):
        data = method + b" /file.txt HTTP/1.0\r\nIf-Modified-Since: " + ims.encode() + b"\r\n\r\n"
        status, headers, body, _ = answer(jail, data)
        assert status == expected
        if status == 304:
            assert body is None and "Content-Length" not in headers
            assert headers["Last-Modified"] == "Thu, 02 Jan 2020 03:04:05 GMT"


def test_if_modified_since_on_a_missing_file_is_404(jail):
    data = b"GET /nope.txt HTTP/1.0\r\nIf-Modified-Since: Thu, 02 Jan 2020 03:04:05 GMT\r\n\r\n"
    assert answer(jail, data)[0] == 404


def test_last_modified_never_after_date(jail):
    future = calendar.timegm((2100, 1, 1, 0, 0, 0))
    os.utime(jail / "file.txt", (future, future))
    now = calendar.timegm((2021, 6, 1, 12, 0, 0))
    _, headers, _, _ = answer(jail, b"GET /file.txt HTTP/1.0\r\n\r\n", now=now)
    assert headers["Last-Modified"] == S.format_http_date(now)


def test_folder_without_slash_redirects_to_an_absolute_url(jail):
    status, headers, body, _ = answer(jail, b"GET /dir HTTP/1.0\r\nHost: example.org:81\r\n\r\n")
    assert status == 301
    assert headers["Location"] == "http://example.org:81/dir/"
    assert b'<a href="http://example.org:81/dir/">' in body
    # no Host, or one that is not a plain host[:port]: the address the client reached
    for data in (b"GET /dir HTTP/1.0\r\n\r\n", b"GET /dir HTTP/1.0\r\nHost: a b<\r\n\r\n"):
        assert answer(jail, data)[1]["Location"] == "http://127.0.0.1:8080/dir/"
    assert answer(jail, b"GET /dir/sub HTTP/1.0\r\n\r\n")[1]["Location"].endswith("/dir/sub/")
    assert answer(jail, b"HEAD /dir HTTP/1.0\r\n\r\n")[2] is None


def test_folder_with_slash(jail):
    assert answer(jail, b"GET /dir/ HTTP/1.0\r\n\r\n")[:3:2] == (200, b"<p>dir</p>\n")
    assert answer(jail, b"GET /dir/sub/ HTTP/1.0\r\n\r\n")[0] == 403
    status, headers, body, _ = answer(jail, b"GET /dir/ HTTP/1.0\r\n\r\n", listing=True)
    assert status == 200  # the index wins over a listing
    status, headers, body, _ = answer(jail, b"GET / HTTP/1.0\r\n\r\n", listing=True)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'href="file.txt"' in body and b'href="dir/"' in body and b".hidden" not in body


@pytest.mark.parametrize("data, expected", [
    (b"GET /nope.txt HTTP/1.0\r\n\r\n", 404),
    (b"GET /file.txt/ HTTP/1.0\r\n\r\n", 404),
    (b"GET /file.txt/x HTTP/1.0\r\n\r\n", 404),
    (b"GET /out.txt HTTP/1.0\r\n\r\n", 403),
    (b"GET /.hidden/x HTTP/1.0\r\n\r\n", 403),
    (b"GET /loop HTTP/1.0\r\n\r\n", 404),
    (b"GET /" + b"x" * 5000 + b" HTTP/1.0\r\n\r\n", 404),
    (b"POST /file.txt HTTP/1.0\r\nContent-Length: 1\r\n\r\n", 501),
    (b"DELETE /file.txt HTTP/1.0\r\n\r\n", 501),
    (b"get /file.txt HTTP/1.0\r\n\r\n", 501),
])
def test_errors(jail, data, expected):
    assert answer(jail, data)[0] == expected


def test_special_files_are_refused(jail):
    os.mkfifo(jail / "fifo")
    assert answer(jail, b"GET /fifo HTTP/1.0\r\n\r\n")[0] == 403


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root reads every file, so an unreadable file cannot be made")
def test_unreadable_file_is_403(jail):
    (jail / "file.txt").chmod(0)
    assert answer(jail, b"GET /file.txt HTTP/1.0\r\n\r\n")[0] == 403


@pytest.mark.parametrize("name, expected", [
    ("a.html", "text/html"), ("a.css", "text/css"), ("a.json", "application/json"),
    ("a.png", "image/png"), ("a.xyzzy", "application/octet-stream"), ("noext", "application/octet-stream"),
    ("a.tar.gz", "application/octet-stream"),
])
def test_content_type_by_extension(jail, name, expected):
    (jail / name).write_bytes(b"x")
    assert answer(jail, f"GET /{name} HTTP/1.0\r\n\r\n".encode())[1]["Content-Type"] == expected


def test_utf8_text_is_labelled_with_its_charset(jail):
    (jail / "utf8.txt").write_text("caf\u00e9 \u20ac\n", encoding="utf-8")
    (jail / "latin1.txt").write_bytes(b"caf\xe9\n")
    (jail / "big.txt").write_bytes("\u20ac".encode() * 30000)  # streamed; sampled at its start
    (jail / "utf8.bin").write_text("caf\u00e9", encoding="utf-8")
    expected = {"utf8.txt": "text/plain; charset=utf-8", "latin1.txt": "text/plain",
                "big.txt": "text/plain; charset=utf-8", "file.txt": "text/plain",
                "utf8.bin": "application/octet-stream"}
    for name, kind in expected.items():
        for method in (b"GET", b"HEAD"):
            headers = answer(jail, method + f" /{name} HTTP/1.0\r\n\r\n".encode())[1]
            assert headers["Content-Type"] == kind, (name, method)


def test_error_response_has_a_short_html_page():
    response = S.error_response(404, "No <such> file.")
    assert response.body.startswith(b"<!DOCTYPE html>")
    assert b"No &lt;such&gt; file." in response.body
    assert dict(response.headers)["Content-Length"] == str(len(response.body))


def test_format_head_uses_crlf_and_can_leave_out_server():
    response = S.Response(200, [("Content-Length", "0")])
    head = S.format_head(response, LM, server_header=True)
    assert head.startswith(b"HTTP/1.0 200 OK\r\nDate: Thu, 02 Jan 2020 03:04:05 GMT\r\n")
    assert head.endswith(b"\r\n\r\n") and b"\n" not in head.replace(b"\r\n", b"")
    assert b"Server: " in head
    assert b"Server" not in S.format_head(response, LM, server_header=False)


# -- configuration --------------------------------------------------------------------------


def test_config_rejects_nonsense():
    for bad in ({"port": 70000}, {"max_connections": 0}, {"timeout": 0}, {"grace": -1}):
        with pytest.raises(ValueError):
            S.Config(**bad)


def test_command_line_feeds_the_config():
    config = S.parse_args(["8080", "--root", "/tmp", "--mode", "spawn", "--max-connections", "3",
                           "--timeout", "1.5", "--quiet", "--no-server-header", "--listing"])
    assert (config.port, config.root, config.mode, config.max_connections, config.timeout,
            config.quiet, config.server_header, config.listing) == (
        8080, "/tmp", "spawn", 3, 1.5, True, False, True)
    assert S.parse_args(["0"]) == S.Config()
    for bad in (["x"], ["70000"], [], ["1", "--mode", "fork"], ["1", "--timeout", "soon"]):
        with pytest.raises(ValueError):
            S.parse_args(bad)


def test_folder_index_that_is_a_symlink_to_a_dot_file_is_refused(jail):
    """The dot-file rule holds after symlinks, for a folder's index.html too."""
    (jail / ".private.html").write_bytes(b"PRIVATE\n")
    (jail / "d2").mkdir()
    (jail / "d2" / "index.html").symlink_to("../.private.html")
    status, _, body, _ = answer(jail, b"GET /d2/ HTTP/1.0\r\n\r\n")
    assert status == 403 and b"PRIVATE" not in (body or b"")
    status, _, body, _ = answer(jail, b"GET /d2/index.html HTTP/1.0\r\n\r\n")
    assert status == 403 and b"PRIVATE" not in (body or b"")
