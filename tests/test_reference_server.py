"""The reference server over real loopback sockets, as a child process.

Each server listens on port 0 and is learned from its startup line; each is
stopped at the end. Timing is judged by order and bounded deadlines, never by
tight durations.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_helpers import (  # noqa: E402,F401  (docroot is a fixture)
    SERVER_PY, connect, docroot, exchange, get, parse_reply, read_all, running_server,
    server as S,
)

pytestmark = pytest.mark.network

SECRET = b"CONFORMANCE-SECRET-OUTSIDE-ROOT"
CANARY = "/conformance-canary.txt"


@pytest.fixture(scope="module", params=["pool", "spawn"])
def any_mode(request, docroot):
    """A server in each accept mode, for the tests that are about concurrency."""
    with running_server(docroot, "--mode", request.param, "--quiet") as handle:
        yield handle


@pytest.fixture(scope="module")
def srv(docroot):
    """The default server, shared by the tests that only send it requests."""
    with running_server(docroot) as handle:
        yield handle


def assert_alive(port: int):
    reply = get(port, CANARY)
    assert reply.status == 200 and reply.body == b"http10-conformance canary v1\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- serving files ----------------------------------------------------------------------------


@pytest.mark.parametrize("url, name", [
    ("/file.txt", "file.txt"),
    ("/bytes.bin", "bytes.bin"),
    ("/empty.txt", "empty.txt"),
    ("/crlf.txt", "crlf.txt"),
    ("/space%20name.txt", "space name.txt"),
    ("/caf%C3%A9.txt", "café.txt"),
    ("/dir/nested/deep.txt", "dir/nested/deep.txt"),
    ("/dir/", "dir/index.html"),
    ("/", "index.html"),
    ("/dir/../file.txt", "file.txt"),
    ("file.txt", "file.txt"),
    ("/medium.bin", "medium.bin"),
])
def test_files_are_served_byte_exact(srv, docroot, url, name):
    reply = get(srv.port, url)
    expected = (docroot / name).read_bytes()
    assert reply.status == 200 and reply.ended == "closed"
    assert reply.body == expected
    assert reply.header("content-length") == str(len(expected))
    head = reply.raw[:reply.raw.index(b"\r\n\r\n") + 4]
    assert head.startswith(b"HTTP/1.0 200 OK\r\n")
    assert b"\n" not in head.replace(b"\r\n", b"")
    assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", reply.header("date"))


def test_head_and_conditional_get_over_the_wire(srv):
    head = exchange(srv.port, b"HEAD /file.txt HTTP/1.0\r\n\r\n")
    assert head.status == 200 and head.body == b"" and head.header("content-length") == "6"
    lm = head.header("last-modified")
    assert lm == "Thu, 02 Jan 2020 03:04:05 GMT"
    conditional = exchange(srv.port, f"GET /file.txt HTTP/1.0\r\nIf-Modified-Since: {lm}\r\n\r\n"
                           .encode())
    assert conditional.status == 304 and conditional.body == b""


def test_simple_request_gets_the_body_only(srv, docroot):
    # No half-close: the server must answer at the end of the line.
    reply = exchange(srv.port, b"GET /file.txt\r\n")
    assert reply.status is None and reply.raw == (docroot / "file.txt").read_bytes()
    assert exchange(srv.port, b"GET /nope.txt\r\n").raw.startswith(b"<!DOCTYPE html>")


def test_request_one_byte_per_packet(srv):
    data = b"\r\nGET /file.txt HTTP/1.0\r\nUser-Agent: x\r\nX-A: 1\r\n  2\n\r\n"
    reply = exchange(srv.port, data, split=1)
    assert reply.status == 200 and reply.body == b"hello\n"


def test_bytes_after_the_request_get_no_second_answer(srv):
    reply = exchange(srv.port, b"GET /file.txt HTTP/1.0\r\n\r\nGARBAGE\r\n\r\n")
    assert reply.status == 200 and reply.body == b"hello\n" and reply.ended == "closed"


def test_half_closed_request_is_answered(srv):
    reply = exchange(srv.port, b"GET /file.txt HTTP/1.0\r\n\r\n", half_close=True)
    assert reply.status == 200 and reply.body == b"hello\n"


def test_folder_redirect_over_the_wire(srv):
    reply = exchange(srv.port, b"GET /dir HTTP/1.0\r\n\r\n")
    assert reply.status == 301
    assert reply.header("location") == f"http://127.0.0.1:{srv.port}/dir/"
    assert b"/dir/" in reply.body


def test_access_log_is_common_log_format(srv):
    get(srv.port, "/file.txt?log-check")
    pattern = re.compile(r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
                         r'"GET /file\.txt\?log-check HTTP/1\.0" 200 6$', re.MULTILINE)
    deadline = time.monotonic() + 5  # the line is written when the connection is closed
    while not pattern.search(srv.stderr()):
        assert time.monotonic() < deadline, srv.stderr()[-2000:]
        time.sleep(0.02)


# -- confinement ------------------------------------------------------------------------------

TRAVERSALS = [
    "/../secret.txt", "/dir/../../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/secret.txt",
    "/..%2fsecret.txt", "/%2e%2e%2fsecret.txt", "/%252e%252e/secret.txt", "/..\\secret.txt",
    "/..%5csecret.txt", "/./../secret.txt", "/.%2e/secret.txt", "/%c0%ae%c0%ae/secret.txt",
    "/%c0%ae%c0%ae%c0%afsecret.txt", "/..%c0%afsecret.txt", "/secret.txt%00", "/%00../secret.txt",
    "//secret.txt", "/link.txt", "/link.txt/", "/dir/../link.txt", "../secret.txt",
    "..\\secret.txt", "/%2e%2e%5csecret.txt", "/dir/%2e%2e/%2e%2e/secret.txt",
    "http://127.0.0.1/../secret.txt", "http://127.0.0.1/%2e%2e/secret.txt",
    "http://127.0.0.1/link.txt", "/" + "../" * 50 + "etc/passwd", "//etc/passwd", "/etc/passwd",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_never_leaves_the_root(srv, path):
    for data in (f"GET {path} HTTP/1.0\r\n\r\n", f"GET {path}\r\n", f"HEAD {path} HTTP/1.0\r\n\r\n"):
        reply = exchange(srv.port, data.encode("latin-1"))
        assert SECRET not in reply.raw and b"root:" not in reply.raw
        if reply.status is not None:
            assert reply.status in (400, 403, 404), (data, reply.status)


def test_dotdot_that_stays_inside_is_served(srv):
    assert get(srv.port, "/dir/nested/../../file.txt").body == b"hello\n"
    assert get(srv.port, "/%2e%2e/file.txt").status == 403  # would climb above the root


# -- malformed input: a bounded answer each time, and the server still serves ----------------

MALFORMED = [
    (b"GET /file.txt FOO/1.0\r\n\r\n", {400}),
    (b"GET /file.txt HTTP/1\r\n\r\n", {400}),
    (b"GET /file.txt HTTP/2.0\r\n\r\n", {505}),
    (b"GET /file.txt HTTP/1.0 extra\r\n\r\n", {400}),
    (b"GET\r\n\r\n", {400}),
    (b"FOO /file.txt HTTP/1.0\r\n\r\n", {501}),
    (b"get /file.txt HTTP/1.0\r\n\r\n", {501}),
    (b"DELETE /file.txt HTTP/1.0\r\n\r\n", {501}),
    (b"PUT /new.txt HTTP/1.0\r\nContent-Length: 1\r\n\r\nx", {501}),
    (b"POST /file.txt HTTP/1.0\r\n\r\n", {400}),
    (b"POST /file.txt HTTP/1.0\r\nContent-Length: abc\r\n\r\n", {400}),
    (b"POST /file.txt HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello", {501}),
    (b"POST /file.txt HTTP/1.0\r\nContent-Length: 10000000000\r\n\r\n", {413}),
    (b"POST /file.txt HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc", {501}),
    (b"GET * HTTP/1.0\r\n\r\n", {400}),
    (b"HEAD /file.txt\r\n", {400}),
    (b"HEAD\t/ HTTP/2.0\r\n\r\n", {505}),
    (b"HEAD  /nope.txt HTTP/1.0\r\n\r\n", {404}),
    (b"GET /file.txt%00.html HTTP/1.0\r\n\r\n", {400}),
    (b"GET /fi\x01le HTTP/1.0\r\n\r\n", {400}),
    (b"GET /file%zz.txt HTTP/1.0\r\n\r\n", {400}),
    (b"GET /" + b"a" * 20000 + b" HTTP/1.0\r\n\r\n", {414}),
    (b"GET /" + b"a" * 100000 + b" HTTP/1.0\r\n\r\n", {414}),
    (b"GET /file.txt HTTP/1.0\r\n" + b"X: y\r\n" * 300 + b"\r\n", {431}),
    (b"GET /file.txt HTTP/1.0\r\nX-Big: " + b"v" * 100000 + b"\r\n\r\n", {431}),
    (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(200)), {400}),
    (b"\xff" * 300 + b"\r\n\r\n", {400}),
    (b"\r\n" * 10, None),          # half-closed below: nothing to answer
    (b"", None),
    (b"GET /file.txt HTTP/1.0\r\n", {400}),  # half-closed mid-request
    (b"GET /file.txt HTTP/1.0\r\nContent-Length: 10\r\n\r\nshort", {400}),
]


@pytest.mark.parametrize("data, statuses", MALFORMED, ids=[repr(d[:30]) for d, _ in MALFORMED])
def test_malformed_input_is_answered_and_the_server_lives(srv, data, statuses):
    reply = exchange(srv.port, data, half_close=True, timeout=10)
    assert reply.ended in ("closed", "reset")
    if statuses is None:
        assert reply.raw == b""
    else:
        assert reply.status in statuses, reply.raw[:200]
        if re.match(rb"HEAD[ \t]", data):  # section 8.2: never a body to HEAD, error or not
            assert reply.body == b"", reply.raw[:200]
        else:
            assert reply.body.startswith(b"<!DOCTYPE html>")
    assert_alive(srv.port)


def test_early_error_is_not_lost_to_a_reset(srv):
    """A 413 arrives while the client is still sending 2 MB (RFC 1945 section 9.4)."""
    with connect(srv.port) as sock:
        sock.sendall(b"POST /nope.txt HTTP/1.0\r\nContent-Length: 2000000\r\n\r\n")
        replies = []
        reader = threading.Thread(target=lambda: replies.append(read_all(sock)))
        reader.start()
        try:
            for _ in range(2000000 // 65536 + 1):
                sock.sendall(b"x" * 65536)
        except OSError:
            pass  # the server may stop reading after its bounded drain; the reply is what counts
        reader.join(timeout=15)
        assert not reader.is_alive()
    raw, ended = replies[0]
    assert parse_reply(raw).status == 413


def test_client_vanishing_mid_response_costs_nothing(srv):
    for _ in range(5):
        with connect(srv.port) as sock:
            sock.sendall(b"GET /big.bin HTTP/1.0\r\n\r\n")
            assert len(sock.recv(1024)) > 0
    assert_alive(srv.port)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")
def test_no_descriptor_leaks(docroot):
    with running_server(docroot, "--quiet") as handle:
        fds = Path(f"/proc/{handle.process.pid}/fd")
        assert_alive(handle.port)
        baseline = len(list(fds.iterdir()))
        for data, _ in MALFORMED[:12]:
            exchange(handle.port, data, half_close=True)
        for _ in range(3):
            with connect(handle.port) as sock:
                sock.sendall(b"GET /big.bin HTTP/1.0\r\n\r\n")
                sock.recv(1024)
        with connect(handle.port) as sock:
            sock.sendall(b"GET /file.txt HTTP/1.0\r\n")  # and vanish mid-request
        deadline = time.monotonic() + 10  # closes happen in the connection threads
        while len(list(fds.iterdir())) > baseline:
            assert time.monotonic() < deadline, sorted(os.readlink(f) for f in fds.iterdir())
            time.sleep(0.02)


# -- concurrency ------------------------------------------------------------------------------


def test_stalled_client_does_not_delay_another(any_mode):
    with connect(any_mode.port) as stalled:
        stalled.sendall(b"GET /file.txt HTTP/1.0\r\n")  # half a request, then nothing
        fast = get(any_mode.port, "/file.txt", timeout=5)
        assert fast.status == 200 and fast.body == b"hello\n"
        stalled.settimeout(0.2)
        with pytest.raises(socket.timeout):  # still waiting for the rest of its request
            stalled.recv(1)
        stalled.settimeout(10)
        stalled.sendall(b"\r\n")
        raw, _ = read_all(stalled)
    assert parse_reply(raw).status == 200


def test_fifty_parallel_downloads_are_byte_exact(any_mode, docroot):
    expected = sha256((docroot / "big.bin").read_bytes())

    def download(_):
        reply = get(any_mode.port, "/big.bin", timeout=30)
        return reply.status, sha256(reply.body)

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(download, range(50)))
    assert results == [(200, expected)] * 50


@pytest.mark.parametrize("mode", ["pool", "spawn"])
def test_connection_cap_answers_503(docroot, mode):
    with running_server(docroot, "--mode", mode, "--max-connections", "2", "--quiet") as handle:
        holders = []
        try:
            for _ in range(2):  # two downloads that are served, but read no further
                sock = connect(handle.port, rcvbuf=4096)
                sock.sendall(b"GET /big.bin HTTP/1.0\r\n\r\n")
                assert sock.recv(16).startswith(b"HTTP/1.0 200")  # proof it is being served
                holders.append(sock)
            refused = get(handle.port, "/file.txt", timeout=5)
            assert refused.status == 503
            assert refused.body.startswith(b"<!DOCTYPE html>")
        finally:
            for sock in holders:
                sock.close()
        # the two slots free up as soon as their threads notice the closes
        deadline = time.monotonic() + 10
        while (reply := get(handle.port, "/file.txt")).status == 503:
            assert time.monotonic() < deadline
        assert reply.status == 200 and reply.body == b"hello\n"


def test_clients_that_keep_their_threads_waiting_do_not_hold_up_a_prompt_one(tmp_path):
    """Pool mode lets only pool_active (2) threads serve prompt clients at once; each
    way a client can keep its thread waiting must free the place for another thread:
    sending nothing, sending half a request, not reading a small file (one write)
    and not reading a large one (sendfile). Two of each, more than the places."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "small.bin").write_bytes(os.urandom(60_000))
    (root / "large.bin").write_bytes(os.urandom(4 << 20))
    (root / "file.txt").write_bytes(b"hello\n")
    with running_server(root, "--quiet", tmp_dir=tmp_path) as handle:
        holders = []
        try:
            for request in (b"", b"GET /file.txt HTTP/1.0\r\n",
                            b"GET /small.bin HTTP/1.0\r\n\r\n", b"GET /large.bin HTTP/1.0\r\n\r\n"):
                for _ in range(2):
                    sock = connect(handle.port, rcvbuf=4096)
                    sock.sendall(request)
                    holders.append(sock)
            reply = get(handle.port, "/file.txt", timeout=5)
            assert reply.status == 200 and reply.body == b"hello\n"
        finally:
            for sock in holders:
                sock.close()


class _Turn:
    slow = False

    def waiting(self):
        self.slow = True


def test_a_reply_the_client_does_not_take_marks_its_thread_as_waiting():
    """The one-write path for small files (_send_all): with a socket buffer too small
    for the reply (loopback TCP's never is, so a Unix socket pair with 8 KiB), the
    turn is told before the thread blocks, and every byte still arrives."""
    data = os.urandom(200_000)
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        turn = _Turn()
        sender = threading.Thread(target=S._send_all, args=(ours, data, turn), daemon=True)
        sender.start()
        theirs.settimeout(10)
        got = bytearray()
        while len(got) < len(data):
            chunk = theirs.recv(65536)
            assert chunk
            got += chunk
        sender.join(10)
        assert turn.slow and bytes(got) == data


# -- timeouts, signals, options ---------------------------------------------------------------


def test_read_timeout(docroot):
    with running_server(docroot, "--timeout", "0.5", "--quiet") as handle:
        with connect(handle.port) as sock:
            sock.sendall(b"GET /file.txt HTTP/1.0\r\n")
            raw, ended = read_all(sock)
        assert parse_reply(raw).status == 408 and ended == "closed"
        with connect(handle.port) as sock:  # silent: closed without a word
            assert read_all(sock) == (b"", "closed")
        assert_alive(handle.port)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_lets_the_download_in_flight_finish(docroot, sig):
    expected = sha256((docroot / "big.bin").read_bytes())
    with running_server(docroot, "--quiet") as handle:
        with connect(handle.port, rcvbuf=65536) as sock:
            sock.sendall(b"GET /big.bin HTTP/1.0\r\n\r\n")
            first = sock.recv(65536)
            assert first.startswith(b"HTTP/1.0 200")
            handle.process.send_signal(sig)
            handle.wait_line(r"^Stopping")
            with pytest.raises(ConnectionRefusedError):
                connect(handle.port, timeout=2).close()
            rest, ended = read_all(sock)
        reply = parse_reply(first + rest, ended)
        assert sha256(reply.body) == expected
        assert handle.process.wait(timeout=15) == 0
        handle.wait_line(r"^Stopped$")


def test_options_server_header_and_listing(srv, docroot):
    assert get(srv.port, "/noindex/").status == 403  # no listing by default
    assert get(srv.port, "/file.txt").header("server") == "http10-reference/1.0"
    with running_server(docroot, "--no-server-header", "--listing", "--quiet") as handle:
        reply = get(handle.port, "/noindex/")
        assert reply.status == 200 and b'href="plain.txt"' in reply.body
        assert reply.header("server") is None


def _run_bad(*args, cwd=None):
    return subprocess.run([sys.executable, str(SERVER_PY), *args], capture_output=True,
                          text=True, timeout=20, cwd=cwd)


def test_bad_arguments_give_one_line_and_status_2(tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        cases = [
            ("x",), ("70000",), ("-1",), (), ("0", "--root", str(tmp_path / "missing")),
            ("0", "--max-connections", "0"), ("0", "--timeout", "soon"), ("0", "--bogus"),
            (str(busy.getsockname()[1]),), ("0", "--bind", "no-such-host.invalid"),
        ]
        for args in cases:
            result = _run_bad(*args)
            assert result.returncode == 2, (args, result.stderr)
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("server.py: error: "), (args, lines)
            assert "Traceback" not in result.stderr
    finally:
        busy.close()


def test_startup_line(docroot):
    process = subprocess.Popen([sys.executable, str(SERVER_PY), "0", "--root", str(docroot)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = process.stdout.readline()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
        process.stdout.close()
    assert re.match(r"Serving .+ at http://127\.0\.0\.1:\d+/ \(pool mode", line)
    assert "--bind 0.0.0.0" in line
    assert process.returncode == 0


# -- issue 12: lingering close, race-free open, errors that are the server's ------------------


@pytest.mark.parametrize("tail", [b"\r\n", b"X", b"GET /file.txt HTTP/1.0\r\n\r\n"],
                         ids=["stray-crlf", "one-byte", "pipelined-request"])
def test_bytes_after_the_head_do_not_cost_the_tail(srv, docroot, tail):
    """A byte in a later packet must not turn the close into a reset that eats the
    end of a large response (lingering close)."""
    expected = sha256((docroot / "big.bin").read_bytes())
    with connect(srv.port, rcvbuf=65536) as sock:
        sock.sendall(b"GET /big.bin HTTP/1.0\r\n\r\n")
        first = sock.recv(16)  # the server is sending: the stray bytes come in mid-response
        assert first.startswith(b"HTTP/1.0 200")
        sock.sendall(tail)
        rest, ended = read_all(sock)
    reply = parse_reply(first + rest, ended)
    assert ended == "closed"
    assert sha256(reply.body) == expected


def _swap_loop(root: Path, outside: Path, stop: threading.Event, deadline: float) -> int:
    """Swap root/dir for a symlink to ``outside`` and back, until stopped; swaps made."""
    swaps = 0
    while not stop.is_set() and time.monotonic() < deadline:
        os.rename(root / "dir", root / "dir.real")
        os.symlink(outside, root / "dir")
        os.unlink(root / "dir")
        os.rename(root / "dir.real", root / "dir")
        swaps += 1
    return swaps


def test_folder_swapped_for_a_symlink_never_serves_outside(tmp_path):
    """A local user swaps a folder for a symlink to outside the root while requests
    run; no response may carry a byte from outside (race-free open)."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "dir").mkdir(parents=True)
    outside.mkdir()
    (root / "dir" / "f.txt").write_bytes(b"inside\n")
    (outside / "f.txt").write_bytes(SECRET + b"\n")
    (root / "conformance-canary.txt").write_bytes(b"http10-conformance canary v1\n")
    seen: dict[int | None, int] = {}
    leaked = 0
    with running_server(root, "--quiet") as handle:
        stop = threading.Event()
        end = time.monotonic() + 2.0  # a bounded race: two seconds of swapping
        with ThreadPoolExecutor(max_workers=1) as swapper:
            swaps = swapper.submit(_swap_loop, root, outside, stop, end)
            try:
                for _ in range(20000):
                    if time.monotonic() > end:
                        break
                    reply = get(handle.port, "/dir/f.txt")
                    seen[reply.status] = seen.get(reply.status, 0) + 1
                    leaked += SECRET in reply.raw
            finally:
                stop.set()
            assert swaps.result(timeout=10) > 0
        assert_alive(handle.port)
    assert leaked == 0, seen
    assert seen.get(200, 0) > 0 and set(seen) <= {200, 403, 404}, seen


def test_file_replaced_by_symlink_to_outside_is_refused(tmp_path):
    """What was served a moment ago is not served once it is a symlink out of the root."""
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.txt").write_bytes(SECRET + b"\n")
    (root / "conformance-canary.txt").write_bytes(b"http10-conformance canary v1\n")
    (root / "a.txt").write_bytes(b"inside\n")
    (root / "d").mkdir()
    (root / "d" / "b.txt").write_bytes(b"inside too\n")
    with running_server(root, "--quiet") as handle:
        for _ in range(3):  # served, and so in any cache a server may keep
            assert get(handle.port, "/a.txt").body == b"inside\n"
            assert get(handle.port, "/d/b.txt").body == b"inside too\n"
        (root / "a.txt").unlink()
        (root / "a.txt").symlink_to(tmp_path / "secret.txt")
        (root / "d" / "b.txt").rename(root / "b.txt")
        (root / "d").rmdir()
        (root / "d").symlink_to(tmp_path)
        (tmp_path / "b.txt").write_bytes(SECRET + b"\n")
        for path in ("/a.txt", "/d/b.txt", "/d/secret.txt"):
            reply = get(handle.port, path)
            assert reply.status == 403 and SECRET not in reply.raw, (path, reply.raw[:200])


def test_file_system_error_is_answered_500_and_logged(docroot, monkeypatch):
    """An OSError from the file system is the server's failure, not the client's
    departure: the client gets 500 and the log says what happened."""
    def failing(request, context):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setitem(S.METHODS, "GET", failing)
    log = io.StringIO()
    instance = S.Server.listen(S.Config(root=str(docroot)), log=log)
    instance.start()
    try:
        reply = get(instance.address[1], "/file.txt")
        head = exchange(instance.address[1], b"HEAD /file.txt HTTP/1.0\r\n\r\n")
    finally:
        instance.stop()
    assert reply.status == 500 and reply.body.startswith(b"<!DOCTYPE html>")
    assert head.status == 200  # HEAD is not affected
    text = log.getvalue()
    assert "Input/output error" in text
    assert re.search(r'"GET /file\.txt HTTP/1\.0" 500 \d+', text), text


def test_every_503_is_logged_and_arrives_whole(docroot, tmp_path):
    """Past the cap, every client gets a whole 503 (no reset), and each is logged,
    however many arrive at once."""
    with running_server(docroot, "--max-connections", "1", tmp_dir=tmp_path) as handle:
        holder = connect(handle.port, rcvbuf=4096)
        try:
            holder.sendall(b"GET /big.bin HTTP/1.0\r\n\r\n")
            assert holder.recv(16).startswith(b"HTTP/1.0 200")
            refused = []
            for _ in range(100):  # each reads its 503 but keeps its end open
                sock = connect(handle.port)
                sock.sendall(b"GET /file.txt HTTP/1.0\r\nX-Pad: " + b"p" * 200 + b"\r\n\r\n")
                refused.append(sock)
            replies = []
            for sock in refused:
                raw, ended = read_all(sock)
                replies.append(parse_reply(raw, ended))
            for sock in refused:
                sock.close()
        finally:
            holder.close()
        assert [(r.status, r.ended) for r in replies] == [(503, "closed")] * 100
        assert all(r.body.startswith(b"<!DOCTYPE html>") for r in replies)
        # Each 503 is logged once its lingering close ends; on a loaded 2-core CI
        # machine the 100 of them took more than 10 s. The wait is bounded, the
        # count is exact. The request line may be "-": the 503 goes out at accept,
        # and a request that had not arrived by then is not waited for.
        deadline = time.monotonic() + 30
        while handle.stderr().count('" 503 ') < 100:
            assert time.monotonic() < deadline, handle.stderr()[-2000:]
            time.sleep(0.05)


# -- issue 13: small files kept in memory are never served once they change ------------------


@pytest.fixture
def keeping_server(tmp_path):
    """An in-process server that keeps every small file at once (cache_settle 0)."""
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.txt").write_bytes(SECRET + b"\n")
    (root / "a.txt").write_bytes(b"inside\n")
    (root / "d").mkdir()
    (root / "d" / "b.txt").write_bytes(b"inside too\n")
    instance = S.Server.listen(S.Config(root=str(root), quiet=True, cache_settle=0))
    instance.start()
    try:
        yield instance, root, tmp_path
    finally:
        instance.stop()


def test_kept_file_replaced_by_symlink_to_outside_is_refused(keeping_server):
    instance, root, base = keeping_server
    port = instance.address[1]
    for _ in range(3):
        assert get(port, "/a.txt").body == b"inside\n"
        assert get(port, "/d/b.txt").body == b"inside too\n"
    assert instance.small_files.hits >= 4  # served from memory: the cache is in play
    (root / "a.txt").unlink()
    (root / "a.txt").symlink_to(base / "secret.txt")
    (root / "d" / "b.txt").rename(root / "b.txt")
    (root / "d").rmdir()
    (root / "d").symlink_to(base)
    (base / "b.txt").write_bytes(SECRET + b"\n")
    for path in ("/a.txt", "/d/b.txt"):
        reply = get(port, path)
        assert reply.status == 403 and SECRET not in reply.raw, (path, reply.raw[:200])


def test_kept_file_rewritten_or_removed_is_served_as_it_is_now(keeping_server):
    instance, root, _ = keeping_server
    port = instance.address[1]
    for _ in range(2):
        assert get(port, "/a.txt").body == b"inside\n"
    (root / "a.txt").write_bytes(b"changed, and longer\n")
    assert get(port, "/a.txt").body == b"changed, and longer\n"
    (root / "a.txt").unlink()
    assert get(port, "/a.txt").status == 404


# -- issue 13: parts of a request head that are remembered parse as if new -------------------


def test_remembered_request_parts_parse_as_if_new():
    """The request line, header block and URI are remembered (pure, bounded); a repeat
    gives the same answer, an error is raised every time, and a part too long to be
    remembered is still parsed."""
    head = b"GET /a%20b.txt?q=1 HTTP/1.0\r\nHost: h\r\nAccept: */*\r\n\r\n"
    first, again = S.parse_request(head), S.parse_request(head)
    assert first == again and first.path == b"/a b.txt" and first.host == "h"
    for bad, status in ((b"GET /x HTTP/1.0\r\nBad Name: v\r\n\r\n", 400),
                        (b"GET /x HTTP/2.0\r\n\r\n", 505),
                        (b"GET /%zz HTTP/1.0\r\n\r\n", 400)):
        for _ in range(2):
            with pytest.raises(S.ProtocolError) as caught:
                S.parse_request(bad)
            assert caught.value.status == status, bad
    long_value = "v" * 3000  # past the 2 KiB of a remembered header block
    request = S.parse_request(b"GET / HTTP/1.0\r\nX-Long: " + long_value.encode() + b"\r\n\r\n")
    assert request.header("x-long") == long_value
