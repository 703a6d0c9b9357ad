"""The student server: correct without defects, and every defect observable.

The broken variants in ``student_server.DEFECTS`` exist to prove that the runner
and the corpus catch real student mistakes. That proof is only worth something
if (1) the server without defects is right on the points the corpus checks, and
(2) each defect really shows on the wire. Part 1 asserts (1) over raw sockets.
Part 2 has one probe per defect: raw-socket code that returns evidence of the
mistake, or None; each probe must stay silent on the clean server and fire on
the defective one.

Every server is a subprocess on a free loopback port, stopped by a context
manager whatever happens; every exchange has a deadline.
"""

from __future__ import annotations

import email.utils
import os
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Optional

import pytest

from student_helpers import (
    Response,
    StudentServer,
    build_docroot,
    exchange,
    get,
    parse_response,
    student_server,
)
from student_server import DEFECTS

pytestmark = pytest.mark.network

SECRET = b"CONFORMANCE-SECRET-OUTSIDE-ROOT"
RFC1123 = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug"
                     r"|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT\Z")


@pytest.fixture(scope="session")
def docroot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_docroot(tmp_path_factory.mktemp("fixture"))


@pytest.fixture(scope="session")
def _clean_session(docroot: Path):
    with student_server(docroot) as srv:
        yield srv


@pytest.fixture
def clean(_clean_session: StudentServer) -> StudentServer:
    assert _clean_session.alive(), _clean_session.stderr()
    return _clean_session


def request(srv: StudentServer, data: bytes, **kwargs) -> Response:
    return get(srv.port, data, **kwargs)[1]


def lm_forms(root: Path) -> dict[str, str]:
    """file.txt's modification time in the three date forms of RFC 1945 section 3.3."""
    t = os.stat(root / "file.txt").st_mtime
    gm = time.gmtime(t)
    return {
        "rfc1123": email.utils.formatdate(t, usegmt=True),
        "rfc850": time.strftime("%A, %d-%b-%y %H:%M:%S GMT", gm),
        "asctime": time.asctime(gm),
    }


# --------------------------------------------------------------------------
# Part 1: without defects the server is right
# --------------------------------------------------------------------------

# (id, request bytes, expected status, expected body: fixture path, bytes, or None)
SERVED = [
    ("text", b"GET /file.txt HTTP/1.0\r\n\r\n", 200, "file.txt"),
    ("binary", b"GET /bytes.bin HTTP/1.0\r\n\r\n", 200, "bytes.bin"),
    ("crlf", b"GET /crlf.txt HTTP/1.0\r\n\r\n", 200, "crlf.txt"),
    ("empty", b"GET /empty.txt HTTP/1.0\r\n\r\n", 200, "empty.txt"),
    ("medium", b"GET /medium.bin HTTP/1.0\r\n\r\n", 200, "medium.bin"),
    ("big", b"GET /big.bin HTTP/1.0\r\n\r\n", 200, "big.bin"),
    ("nested", b"GET /dir/nested/deep.txt HTTP/1.0\r\n\r\n", 200, "dir/nested/deep.txt"),
    ("space", b"GET /space%20name.txt HTTP/1.0\r\n\r\n", 200, "space name.txt"),
    ("encoded-dot", b"GET /file%2etxt HTTP/1.0\r\n\r\n", 200, "file.txt"),
    ("utf8-name", b"GET /caf%C3%A9.txt HTTP/1.0\r\n\r\n", 200, "caf\u00e9.txt"),
    ("lab-form", b"GET file.txt HTTP/1.0\r\n\r\n", 200, "file.txt"),
    ("inside-dotdot", b"GET /dir/../file.txt HTTP/1.0\r\n\r\n", 200, "file.txt"),
    ("query", b"GET /file.txt?x=1 HTTP/1.0\r\n\r\n", 200, "file.txt"),
    ("root-index", b"GET / HTTP/1.0\r\n\r\n", 200, "index.html"),
    ("dir-index", b"GET /dir/ HTTP/1.0\r\n\r\n", 200, "dir/index.html"),
    ("http11", b"GET /file.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200, "file.txt"),
    ("leading-zeros", b"GET /file.txt HTTP/01.00\r\n\r\n", 200, "file.txt"),
    ("bare-lf", b"GET /file.txt HTTP/1.0\n\n", 200, "file.txt"),
    ("extra-spaces", b"GET  /file.txt  HTTP/1.0 \r\n\r\n", 200, "file.txt"),
    ("headers", b"GET /file.txt HTTP/1.0\r\nX-Foo: bar\r\nX-Empty:\r\nUser-Agent: caf\xe9\r\n"
                b"X-Fold: a\r\n  b\r\nBadHeader\r\n\r\n", 200, "file.txt"),
    ("get-body", b"GET /file.txt HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello", 200, "file.txt"),
    ("trailing-garbage", b"GET /file.txt HTTP/1.0\r\n\r\nGARBAGE\r\n\r\n", 200, "file.txt"),
    ("ims-garbage", b"GET /file.txt HTTP/1.0\r\nIf-Modified-Since: yesterday\r\n\r\n", 200, "file.txt"),
    ("ims-older", b"GET /file.txt HTTP/1.0\r\nIf-Modified-Since: Wed, 01 Jan 2020 00:00:00 GMT\r\n\r\n",
     200, "file.txt"),
    ("ims-future", b"GET /file.txt HTTP/1.0\r\nIf-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n\r\n",
     200, "file.txt"),
    ("missing", b"GET /nope.txt HTTP/1.0\r\n\r\n", 404, None),
    ("missing-nested", b"GET /dir/nope.txt HTTP/1.0\r\n\r\n", 404, None),
    ("file-as-dir", b"GET /file.txt/ HTTP/1.0\r\n\r\n", 404, None),
    ("no-index", b"GET /noindex/ HTTP/1.0\r\n\r\n", 403, None),
    ("symlink-out", b"GET /link.txt HTTP/1.0\r\n\r\n", 404, None),
    ("no-version-garbage", b"GARBAGE\r\n\r\n", 400, None),
    ("four-words", b"GET /file.txt HTTP/1.0 extra\r\n\r\n", 400, None),
    ("raw-space", b"GET /space name.txt HTTP/1.0\r\n\r\n", 400, None),
    ("no-method", b"/file.txt HTTP/1.0\r\n\r\n", 400, None),
    ("bad-version", b"GET /file.txt FOO/1.0\r\n\r\n", 400, None),
    ("no-minor", b"GET /file.txt HTTP/1\r\n\r\n", 400, None),
    ("lower-version", b"GET /file.txt http/1.0\r\n\r\n", 400, None),
    ("cr-in-line", b"GET /fi\rle.txt HTTP/1.0\r\n\r\n", 400, None),
    ("http2", b"GET /file.txt HTTP/2.0\r\n\r\n", 505, None),
    ("star", b"GET * HTTP/1.0\r\n\r\n", 400, None),
    ("bad-escape", b"GET /file%zz.txt HTTP/1.0\r\n\r\n", 400, None),
    ("nul", b"GET /file.txt%00.html HTTP/1.0\r\n\r\n", 400, None),
    ("lowercase-get", b"get /file.txt HTTP/1.0\r\n\r\n", 501, None),
    ("unknown-method", b"FOO /file.txt HTTP/1.0\r\n\r\n", 501, None),
    ("delete", b"DELETE /file.txt HTTP/1.0\r\n\r\n", 501, None),
    ("post-no-length", b"POST /file.txt HTTP/1.0\r\n\r\n", 400, None),
    ("post-bad-length", b"POST /file.txt HTTP/1.0\r\nContent-Length: abc\r\n\r\n", 400, None),
    ("post", b"POST /file.txt HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello", 501, None),
    ("long-uri", b"GET /" + b"a" * 20000 + b" HTTP/1.0\r\n\r\n", 414, None),
]


@pytest.mark.parametrize("data, status, body", [s[1:] for s in SERVED], ids=[s[0] for s in SERVED])
def test_clean_server_answers(clean: StudentServer, docroot: Path, data: bytes, status: int,
                              body: str | None) -> None:
    result, resp = get(clean.port, data)
    assert result.ended == "closed", result
    assert resp.status == status, resp.status_line
    assert resp.version == "HTTP/1.0"
    assert b"\n" not in resp.head.replace(b"\r\n", b""), "bare LF in the header block"
    assert resp.head.endswith(b"\r\n\r\n")
    assert RFC1123.match(resp.header("Date") or ""), resp.header("Date")
    if status not in (304,):
        assert resp.header("Content-Type")
        assert int(resp.header("Content-Length")) == len(resp.body)
    if body is not None:
        assert resp.body == (docroot / body).read_bytes()
    elif status >= 400:
        assert resp.body, "an error explains itself (R-9.4-a)"
    assert SECRET not in result.data


def test_file_headers(clean: StudentServer, docroot: Path) -> None:
    resp = request(clean, b"GET /file.txt HTTP/1.0\r\n\r\n")
    assert resp.header("Content-Type") == "text/plain"
    assert resp.header("Last-Modified") == lm_forms(docroot)["rfc1123"]
    assert resp.header("Server")


def test_head_has_get_headers_and_no_body(clean: StudentServer) -> None:
    got = request(clean, b"GET /file.txt HTTP/1.0\r\n\r\n")
    head = request(clean, b"HEAD /file.txt HTTP/1.0\r\n\r\n")
    assert head.status == 200 and head.body == b""
    for name in ("Content-Type", "Content-Length", "Last-Modified"):
        assert head.header(name) == got.header(name)
    missing = request(clean, b"HEAD /nope.txt HTTP/1.0\r\n\r\n")
    assert missing.status == 404 and missing.body == b""


@pytest.mark.parametrize("form", ["rfc1123", "rfc850", "asctime"])
@pytest.mark.parametrize("name", ["If-Modified-Since", "if-modified-since", "IF-MODIFIED-SINCE"])
def test_if_modified_since_gives_304(clean: StudentServer, docroot: Path, form: str, name: str) -> None:
    value = lm_forms(docroot)[form]
    result, resp = get(clean.port, f"GET /file.txt HTTP/1.0\r\n{name}: {value}\r\n\r\n".encode())
    assert resp.status == 304 and resp.body == b"" and result.ended == "closed"


def test_ims_on_missing_file_is_404(clean: StudentServer, docroot: Path) -> None:
    value = lm_forms(docroot)["rfc1123"]
    assert request(clean, f"GET /nope.txt HTTP/1.0\r\nIf-Modified-Since: {value}\r\n\r\n".encode()).status == 404


def test_directory_without_slash_redirects(clean: StudentServer) -> None:
    resp = request(clean, b"GET /dir HTTP/1.0\r\n\r\n")
    assert resp.status == 301
    assert resp.headers["location"] == [f"http://127.0.0.1:{clean.port}/dir/"]
    assert b"/dir/" in resp.body


def test_redirect_uses_a_sane_host_header_only(clean: StudentServer) -> None:
    good = request(clean, b"GET /dir HTTP/1.0\r\nHost: example.org:8080\r\n\r\n")
    assert good.header("Location") == "http://example.org:8080/dir/"
    bad = request(clean, b"GET /dir HTTP/1.0\r\nHost: a\rSet-Cookie: x\r\n\r\n")
    assert bad.header("Location") == f"http://127.0.0.1:{clean.port}/dir/"


def test_lab_form_redirect_and_index(clean: StudentServer, docroot: Path) -> None:
    assert request(clean, b"GET dir HTTP/1.0\r\n\r\n").header("Location").endswith(":%d/dir/" % clean.port)
    assert request(clean, b"GET dir/ HTTP/1.0\r\n\r\n").body == docroot.joinpath("dir/index.html").read_bytes()


def test_http09_simple_request_gets_body_only(clean: StudentServer, docroot: Path) -> None:
    result = exchange(clean.port, b"GET /file.txt\r\n", timeout=3)
    assert result == (docroot.joinpath("file.txt").read_bytes(), "closed", False)
    missing = exchange(clean.port, b"GET /nope.txt\r\n", timeout=3)
    assert missing.ended == "closed" and not missing.data.startswith(b"HTTP/")


TRAVERSALS = [
    b"/../secret.txt", b"/dir/../../secret.txt", b"/%2e%2e/secret.txt", b"/%2E%2E/secret.txt",
    b"/..%2fsecret.txt", b"/%2e%2e%2fsecret.txt", b"/%252e%252e/secret.txt", b"/..\\secret.txt",
    b"/..%5csecret.txt", b"/./../secret.txt", b"http://127.0.0.1/../secret.txt", b"//../secret.txt",
    b"../secret.txt", b"/%c0%ae%c0%ae/secret.txt",
]


@pytest.mark.parametrize("path", TRAVERSALS, ids=[p.decode() for p in TRAVERSALS])
def test_no_escape_from_the_root(clean: StudentServer, path: bytes) -> None:
    for data in (b"GET " + path + b" HTTP/1.0\r\n\r\n", b"GET " + path + b"\r\n"):
        result, resp = get(clean.port, data, timeout=3)
        assert SECRET not in result.data
        assert resp.status is None or resp.status in (400, 403, 404)


def test_request_one_byte_at_a_time(clean: StudentServer, docroot: Path) -> None:
    data = b"GET /file.txt HTTP/1.0\r\n\r\n"
    resp = parse_response(exchange(clean.port, *[data[i:i + 1] for i in range(len(data))],
                                   pause=0.005).data)
    assert resp.status == 200 and resp.body == docroot.joinpath("file.txt").read_bytes()


def test_waits_for_the_empty_line(clean: StudentServer) -> None:
    with socket.create_connection(("127.0.0.1", clean.port), timeout=3) as sock:
        sock.sendall(b"GET /file.txt HTTP/1.0\r\n")
        sock.settimeout(0.3)
        with pytest.raises(socket.timeout):
            sock.recv(1)
        sock.settimeout(3)
        sock.sendall(b"\r\n")
        assert sock.recv(12) == b"HTTP/1.0 200"


def test_half_closed_request_is_answered(clean: StudentServer) -> None:
    result, resp = get(clean.port, b"GET /file.txt HTTP/1.0\r\n\r\n", half_close=True)
    assert resp.status == 200 and result.ended == "closed"


def test_stays_alive_after_abuse(clean: StudentServer, docroot: Path) -> None:
    exchange(clean.port, b"", timeout=0.2)                          # says nothing
    exchange(clean.port, b"GET /file.txt HTTP/1.0\r\n", half_close=True, timeout=2)
    exchange(clean.port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", half_close=True, timeout=2)
    cut = exchange(clean.port, b"GET /big.bin HTTP/1.0\r\n\r\n", read_limit=1024, rcvbuf=65536)
    assert cut.ended == "limit"
    resp = request(clean, b"GET /conformance-canary.txt HTTP/1.0\r\n\r\n")
    assert resp.status == 200 and clean.alive()


def test_port_zero_prints_the_real_port(docroot: Path) -> None:
    with student_server(docroot) as srv:
        assert srv.port > 0
        assert request(srv, b"GET /file.txt HTTP/1.0\r\n\r\n").status == 200
    assert not srv.alive()


# --------------------------------------------------------------------------
# Part 2: every defect is observable over a raw socket
# --------------------------------------------------------------------------

Probe = Callable[[StudentServer, Path], Optional[str]]
PROBES: dict[str, Probe] = {}


def probe(name: str) -> Callable[[Probe], Probe]:
    def register(fn: Probe) -> Probe:
        assert name in DEFECTS, name
        PROBES[name] = fn
        return fn
    return register


def fixture_bytes(root: Path, path: str) -> bytes:
    return (root / path).read_bytes()


def liveness(srv: StudentServer) -> Optional[str]:
    """None if a plain GET on a fresh connection succeeds, else what happened."""
    # Asked twice: on a loaded machine a connect can be reset once, as the runner's own
    # liveness probe allows; a dead server fails both.
    for attempt in range(2):
        try:
            result, resp = get(srv.port, b"GET /conformance-canary.txt HTTP/1.0\r\n\r\n", timeout=3)
            break
        except OSError as exc:  # a process dying just then can reset the connection
            if attempt:
                return f"liveness GET failed ({exc})"
            time.sleep(0.2)
    if resp.status == 200:
        return None
    try:
        code = srv.proc.wait(2.0)
    except subprocess.TimeoutExpired:
        code = None
    return f"liveness GET failed ({result.ended}, {result.data[:40]!r}); exit code {code}"


def expect_file(srv: StudentServer, root: Path, data: bytes, path: str, **kwargs) -> Optional[str]:
    """None if ``data`` is answered 200 with exactly the file's bytes."""
    result, resp = get(srv.port, data, **kwargs)
    if resp.status != 200:
        return f"status line {resp.status_line!r}, ended {result.ended}, {result.data[:60]!r}"
    if resp.body != fixture_bytes(root, path):
        return f"body of {len(resp.body)} bytes differs from {path} ({(root / path).stat().st_size} bytes)"
    return None


@probe("single-recv")
def _(srv, root):
    # The request line arrives in two TCP segments, 0.3 s apart.
    result = exchange(srv.port, b"GET /fi", b"le.txt HTTP/1.0\r\n\r\n", pause=0.3, timeout=3)
    resp = parse_response(result.data)
    if resp.status == 200 and resp.body == fixture_bytes(root, "file.txt"):
        return None
    return f"a request split in two got {result.data[:60]!r}"


@probe("sequential")
def _(srv, root):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=3) as stalled:
        stalled.sendall(b"GET /file.txt HTTP/1.0\r\n")      # and then nothing
        time.sleep(0.1)
        result = exchange(srv.port, b"GET /file.txt HTTP/1.0\r\n\r\n", timeout=1.5)
    if parse_response(result.data).status == 200:
        return None
    return f"a second client got {result.data[:40]!r} ({result.ended}) while the first stalled"


@probe("small-pool")
def _(srv, root):
    stalled = [socket.create_connection(("127.0.0.1", srv.port), timeout=3) for _ in range(4)]
    try:
        for sock in stalled:
            sock.sendall(b"GET /file.txt HTTP/1.0\r\n")      # and then nothing
        time.sleep(0.2)
        result = exchange(srv.port, b"GET /file.txt HTTP/1.0\r\n\r\n", timeout=1.5)
    finally:
        for sock in stalled:
            sock.close()
    if parse_response(result.data).status == 200:
        return None
    return f"a fifth client got {result.data[:40]!r} ({result.ended}) while four stalled"


@probe("leaks-descriptors")
def _(srv, root):
    # The response is never ended by a close; the descriptors run out later.
    result = exchange(srv.port, b"GET /file.txt HTTP/1.0\r\n\r\n", timeout=1.0)
    if result.ended != "timeout":
        return None
    fds = len(os.listdir(f"/proc/{srv.proc.pid}/fd")) if os.path.isdir("/proc") else 0
    return f"the connection stayed open after the response ({result.data[:30]!r}); the server holds {fds} descriptors"


@probe("answers-once")
def _(srv, root):
    get(srv.port, b"GET /file.txt HTTP/1.0\r\n\r\n", timeout=2)
    result = exchange(srv.port, b"GET /file.txt HTTP/1.0\r\n\r\n", timeout=1.0)
    if parse_response(result.data).status == 200:
        return None
    return f"the second request got {result.data[:30]!r} ({result.ended})"


@probe("truncate-large")
def _(srv, root):
    return expect_file(srv, root, b"GET /medium.bin HTTP/1.0\r\n\r\n", "medium.bin")


@probe("no-close")
def _(srv, root):
    result, resp = get(srv.port, b"GET /file.txt HTTP/1.0\r\n\r\n", timeout=1.5)
    assert resp.body == fixture_bytes(root, "file.txt"), result
    return None if result.ended == "closed" else f"connection still {result.ended} after the response"


@probe("never-answers")
def _(srv, root):
    result = exchange(srv.port, b"GET /file.txt HTTP/1.0\r\n\r\n", timeout=1.5)
    return None if result.data else f"no byte in 1.5 s ({result.ended})"


@probe("crash-on-bad-request-line")
def _(srv, root):
    exchange(srv.port, b"GARBAGE\r\n\r\n", timeout=2)
    return liveness(srv)


@probe("crash-on-empty-request")
def _(srv, root):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=2):
        pass
    return liveness(srv)


@probe("head-sends-body")
def _(srv, root):
    resp = request(srv, b"HEAD /file.txt HTTP/1.0\r\n\r\n")
    assert resp.status == 200
    return f"HEAD got a body {resp.body!r}" if resp.body else None


@probe("text-mode")
def _(srv, root):
    return (expect_file(srv, root, b"GET /crlf.txt HTTP/1.0\r\n\r\n", "crlf.txt")
            or expect_file(srv, root, b"GET /bytes.bin HTTP/1.0\r\n\r\n", "bytes.bin"))


@probe("lf-line-ends")
def _(srv, root):
    data = exchange(srv.port, b"GET /file.txt HTTP/1.0\r\n\r\n").data
    head = data[:data.index(b"\n\n") + 2] if b"\r\n\r\n" not in data else data[:data.index(b"\r\n\r\n")]
    return f"bare LF in {head[:60]!r}" if re.search(rb"(?<!\r)\n", head) else None


@probe("no-status-line")
def _(srv, root):
    data = exchange(srv.port, b"GET /file.txt HTTP/1.0\r\n\r\n").data
    return None if data.startswith(b"HTTP/1.") else f"response begins {data[:20]!r}"


@probe("wrong-content-length")
def _(srv, root):
    resp = request(srv, b"GET /file.txt HTTP/1.0\r\n\r\n")
    length = resp.header("Content-Length")
    return None if length == str(len(resp.body)) else f"Content-Length {length} for {len(resp.body)} bytes"


@probe("no-404")
def _(srv, root):
    status = request(srv, b"GET /nope.txt HTTP/1.0\r\n\r\n").status
    return None if status == 404 else f"missing file answered {status}"


@probe("traversal")
def _(srv, root):
    data = exchange(srv.port, b"GET /../secret.txt HTTP/1.0\r\n\r\n").data
    return f"served the outside file: {data[-40:]!r}" if SECRET in data else None


@probe("no-percent-decoding")
def _(srv, root):
    return expect_file(srv, root, b"GET /space%20name.txt HTTP/1.0\r\n\r\n", "space name.txt")


@probe("status-500-for-missing")
def _(srv, root):
    status = request(srv, b"GET /nope.txt HTTP/1.0\r\n\r\n").status
    return None if status == 404 else f"missing file answered {status}"


@probe("ignores-if-modified-since")
def _(srv, root):
    lm = request(srv, b"GET /file.txt HTTP/1.0\r\n\r\n").header("Last-Modified")
    resp = request(srv, f"GET /file.txt HTTP/1.0\r\nIf-Modified-Since: {lm}\r\n\r\n".encode())
    return None if resp.status == 304 else f"IMS = Last-Modified answered {resp.status}"


@probe("http-version-echo")
def _(srv, root):
    resp = request(srv, b"GET /file.txt HTTP/2.0\r\n\r\n")
    if resp.version in ("HTTP/1.0", "HTTP/1.1") and resp.status != 200:
        return None
    return f"an HTTP/2.0 request got {resp.status_line!r}"


@probe("no-date")
def _(srv, root):
    resp = request(srv, b"GET /file.txt HTTP/1.0\r\n\r\n")
    return None if resp.header("Date") else f"no Date in {resp.head!r}"


@probe("no-content-type")
def _(srv, root):
    resp = request(srv, b"GET /file.txt HTTP/1.0\r\n\r\n")
    return None if resp.header("Content-Type") else f"no Content-Type in {resp.head!r}"


@probe("asctime-date")
def _(srv, root):
    resp = request(srv, b"GET /file.txt HTTP/1.0\r\n\r\n")
    dates = [resp.header("Date"), resp.header("Last-Modified")]
    bad = [d for d in dates if not RFC1123.match(d or "")]
    return f"dates not in RFC 1123 form: {bad}" if bad else None


@probe("lowercase-methods")
def _(srv, root):
    status = request(srv, b"get /file.txt HTTP/1.0\r\n\r\n").status
    return f"`get` answered {status}" if status is None or status < 300 else None


@probe("dies-on-disconnect")
def _(srv, root):
    # A small receive buffer so that 8 MiB cannot all sit in socket buffers:
    # the server is still writing when this client leaves.
    cut = exchange(srv.port, b"GET /big.bin HTTP/1.0\r\n\r\n", read_limit=1024, rcvbuf=65536)
    assert cut.ended == "limit", cut.ended
    try:
        code = srv.proc.wait(1.0)
    except subprocess.TimeoutExpired:
        return liveness(srv)
    return f"the process exited with {code}"


@probe("http09-full-response")
def _(srv, root):
    result = exchange(srv.port, b"GET /file.txt\r\n", timeout=3)
    expected = fixture_bytes(root, "file.txt")
    return None if result.data == expected else f"a Simple-Request got {result.data[:40]!r}"


@probe("no-lab-form")
def _(srv, root):
    return expect_file(srv, root, b"GET file.txt HTTP/1.0\r\n\r\n", "file.txt")


@probe("no-index")
def _(srv, root):
    return (expect_file(srv, root, b"GET / HTTP/1.0\r\n\r\n", "index.html")
            or expect_file(srv, root, b"GET /dir/ HTTP/1.0\r\n\r\n", "dir/index.html"))


@probe("post-reads-to-eof")
def _(srv, root):
    result = exchange(srv.port, b"POST /file.txt HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello", timeout=1.5)
    return None if result.data.startswith(b"HTTP/1.0 ") else f"a POST got {result.data[:40]!r} ({result.ended})"


@probe("ims-exact-string")
def _(srv, root):
    for form, value in lm_forms(root).items():
        status = request(srv, f"GET /file.txt HTTP/1.0\r\nIf-Modified-Since: {value}\r\n\r\n".encode()).status
        if status != 304:
            return f"IMS in {form} form answered {status}"
    return None


@probe("crlf-only-terminator")
def _(srv, root):
    return expect_file(srv, root, b"GET /file.txt HTTP/1.0\n\n", "file.txt", timeout=1.5)


@probe("follows-symlinks")
def _(srv, root):
    data = exchange(srv.port, b"GET /link.txt HTTP/1.0\r\n\r\n").data
    return f"followed the symlink out: {data[-40:]!r}" if SECRET in data else None


@probe("query-in-path")
def _(srv, root):
    return expect_file(srv, root, b"GET /file.txt?x=1 HTTP/1.0\r\n\r\n", "file.txt")


@probe("any-method-as-get")
def _(srv, root):
    status = request(srv, b"FOO /file.txt HTTP/1.0\r\n\r\n").status
    return f"FOO answered {status}" if status is None or status < 300 else None


@probe("empty-error-body")
def _(srv, root):
    resp = request(srv, b"GET /nope.txt HTTP/1.0\r\n\r\n")
    assert resp.status == 404
    return None if resp.body else "404 with an empty body"


@probe("body-on-304")
def _(srv, root):
    value = lm_forms(root)["rfc1123"]
    resp = request(srv, f"GET /file.txt HTTP/1.0\r\nIf-Modified-Since: {value}\r\n\r\n".encode())
    assert resp.status == 304
    return f"304 with a body {resp.body!r}" if resp.body else None


@probe("nul-drops-connection")
def _(srv, root):
    result = exchange(srv.port, b"GET /file.txt%00.html HTTP/1.0\r\n\r\n", timeout=3)
    return None if result.data.startswith(b"HTTP/1.0 4") else f"an encoded NUL got {result.data[:30]!r} ({result.ended})"


@probe("case-sensitive-headers")
def _(srv, root):
    value = lm_forms(root)["rfc1123"]
    status = request(srv, f"GET /file.txt HTTP/1.0\r\nif-modified-since: {value}\r\n\r\n".encode()).status
    return None if status == 304 else f"a lower-case IMS answered {status}"


@probe("only-http10")
def _(srv, root):
    return expect_file(srv, root, b"GET /file.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "file.txt")


@probe("close-with-unread-input")
def _(srv, root):
    # A stray CRLF arrives mid-download; a small receive buffer keeps the server from
    # finishing into socket buffers, so a reset at its close always costs bytes.
    result = exchange(srv.port, b"GET /big.bin HTTP/1.0\r\n\r\n", b"\r\n", pause=0.3,
                      rcvbuf=65536, timeout=10)
    resp = parse_response(result.data)
    if resp.status == 200 and resp.body == fixture_bytes(root, "big.bin") and result.ended != "reset":
        return None
    return f"{len(resp.body)} body bytes of big.bin, then the connection was {result.ended}"


def test_every_defect_has_a_probe() -> None:
    assert sorted(PROBES) == sorted(DEFECTS)
    assert len(DEFECTS) >= 20


def test_every_defect_names_catalogue_ids() -> None:
    for name, defect in DEFECTS.items():
        assert defect.summary and defect.requirements, name
        for req in defect.requirements:
            assert re.fullmatch(r"R-[0-9A-Za-z.]+-[a-z]|ROB-\d+", req), (name, req)


@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_defect_is_observable(name: str, clean: StudentServer, docroot: Path) -> None:
    check = PROBES[name]
    assert check(clean, docroot) is None, "the probe fires on the clean server"
    assert clean.alive()
    with student_server(docroot, name) as srv:
        evidence = check(srv, docroot)
    assert evidence, f"--defect {name} was not observed; server stderr: {srv.stderr()}"
