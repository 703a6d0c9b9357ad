"""The reference client: its pure functions, then the command line end to end.

End-to-end runs use the reference server, or a one-connection stub server for
replies a correct server never sends (short bodies, no status line, silence).
"""

from __future__ import annotations

import hashlib
import socket
import struct
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_helpers import CLIENT_PY, client as C, docroot, running_server  # noqa: E402,F401

# -- pure functions ---------------------------------------------------------------------------


@pytest.mark.parametrize("typed, wire", [
    ("", "/"),
    ("/", "/"),
    ("file.txt", "/file.txt"),
    ("/space name.txt", "/space%20name.txt"),
    ("/space%20name.txt", "/space%20name.txt"),
    ("/100%", "/100%25"),
    ("/50%zz", "/50%25zz"),
    ("/café.txt", "/caf%C3%A9.txt"),
    ("/a#fragment", "/a"),
    ('/a"b<c>d', "/a%22b%3Cc%3Ed"),
    ("/tab\there", "/tab%09here"),
    ("/q?x=1&y=2", "/q?x=1&y=2"),
    ("http://127.0.0.1:8080", "/"),
    ("http://127.0.0.1:8080/dir/x.txt?y", "/dir/x.txt?y"),
    ("/dir/../file.txt", "/dir/../file.txt"),
])
def test_encode_target(typed, wire):
    assert C.encode_target(typed) == wire


def test_build_request():
    assert C.build_request("/x") == (b"GET /x HTTP/1.0\r\nUser-Agent: "
                                     + C.USER_AGENT.encode() + b"\r\n\r\n")
    assert C.build_request("/x", "HEAD").startswith(b"HEAD /x HTTP/1.0\r\n")


def head_outcome(data: bytes, at_eof: bool):
    try:
        return C.parse_response_head(data, at_eof)
    except C.ResponseError:
        return "error"


FULL = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"


@pytest.mark.parametrize("data", [
    FULL,
    b"HTTP/1.0  200  OK\nContent-Length: 5\n\nhello",           # Appendix B tolerance
    b"HTTP/1.0 200\r\nContent-Length: 5\r\n\r\nhello",             # no reason phrase
    b"http/1.1 200 Fine\r\nContent-Length:5\r\nX: a\r\n b\r\n\r\nhello",
])
def test_response_head_whole_byte_by_byte_and_with_trailing_bytes(data):
    whole = C.parse_response_head(data)
    assert whole.status == 200 and C.content_length(whole, "GET") == 5
    assert data[whole.head_length:] == b"hello"
    for end in range(1, whole.head_length):
        assert C.parse_response_head(data[:end]) is None
    assert C.parse_response_head(data[:whole.head_length]) == whole
    assert C.parse_response_head(data + b"MORE\r\n\r\n") == whole


def test_response_head_tolerances_and_failures():
    assert C.parse_response_head(b"hello\n").status is None          # a Simple-Response
    assert C.parse_response_head(b"hel", at_eof=True).status is None
    assert C.parse_response_head(b"HTT") is None                     # cannot tell yet
    assert head_outcome(b"HTT", at_eof=True) == "error"
    assert head_outcome(b"", at_eof=True) == "error"
    assert C.parse_response_head(b"") is None
    assert head_outcome(b"HTTP/1.0 200 OK\r\nX: y\r\n", at_eof=True) == "error"
    assert head_outcome(b"HTTP/x 200 OK\r\n\r\n", at_eof=False) == "error"
    folded = C.parse_response_head(b"HTTP/1.0 302 Found\r\nLocation:\r\n http://h/x\r\n\r\n")
    assert folded.header("location") == "http://h/x"


@pytest.mark.parametrize("head, method, expected", [
    (b"HTTP/1.0 200 OK\r\nContent-Length: 7\r\n\r\n", "GET", 7),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 7\r\n\r\n", "HEAD", 0),
    (b"HTTP/1.0 304 Not Modified\r\n\r\n", "GET", 0),
    (b"HTTP/1.0 200 OK\r\n\r\n", "GET", None),
    (b"HTTP/1.0 200 OK\r\nContent-Length: x\r\n\r\n", "GET", None),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "GET", None),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 007\r\n\r\n", "GET", 7),
    (b"HTTP/1.0 200 OK\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n", "GET", None),
])
def test_content_length(head, method, expected):
    assert C.content_length(C.parse_response_head(head), method) == expected


@given(st.binary(max_size=300), st.booleans())
@settings(deadline=None, max_examples=300)
def test_any_reply_parses_or_fails_cleanly(data, at_eof):
    result = head_outcome(data, at_eof)
    assert result is None or result == "error" or isinstance(result, C.ResponseHead)


# -- the command line -------------------------------------------------------------------------


def run_client(*args, timeout=30):
    return subprocess.run([sys.executable, str(CLIENT_PY), *map(str, args)],
                          capture_output=True, timeout=timeout)


@pytest.fixture(scope="module")
def srv(docroot):
    with running_server(docroot, "--quiet") as handle:
        yield handle


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_binary_body_to_stdout_byte_exact(srv, docroot):
    result = run_client("127.0.0.1", srv.port, 0, "/bytes.bin")
    assert result.returncode == 0
    assert result.stdout == (docroot / "bytes.bin").read_bytes()
    assert result.stderr.startswith(b"HTTP/1.0 200 OK\n")


def test_large_body_to_a_file(srv, docroot, tmp_path):
    out = tmp_path / "big.bin"
    result = run_client("127.0.0.1", srv.port, 0, "/big.bin", "-o", out)
    assert result.returncode == 0 and result.stdout == b""
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert digest == hashlib.sha256((docroot / "big.bin").read_bytes()).hexdigest()


def test_fixed_client_port_can_be_used_twice_in_a_row(srv):
    port = free_port()
    for _ in range(2):
        result = run_client("127.0.0.1", srv.port, port, "/file.txt")
        assert (result.returncode, result.stdout) == (0, b"hello\n"), result.stderr


def test_encoded_path_and_default_path(srv, docroot):
    assert run_client("127.0.0.1", srv.port, 0, "/space name.txt").stdout == (
        docroot / "space name.txt").read_bytes()
    assert run_client("127.0.0.1", srv.port, 0).stdout == (docroot / "index.html").read_bytes()


def test_head(srv):
    result = run_client("127.0.0.1", srv.port, 0, "/file.txt", "--head")
    assert result.returncode == 0 and result.stdout == b""
    assert b"Content-Length: 6" in result.stderr


def test_404_exits_1(srv):
    result = run_client("127.0.0.1", srv.port, 0, "/nope.txt")
    assert result.returncode == 1
    assert result.stdout.startswith(b"<!DOCTYPE html>")
    assert result.stderr.startswith(b"HTTP/1.0 404 Not Found\n")


def test_redirect_is_reported_not_followed(srv):
    result = run_client("127.0.0.1", srv.port, 0, "/dir")
    assert result.returncode == 1
    assert f"redirected to http://127.0.0.1:{srv.port}/dir/ (not followed)".encode() in result.stderr


def test_refused_connection_exits_2():
    with socket.socket() as sock:  # bound, not listening: connecting is refused
        sock.bind(("127.0.0.1", 0))
        result = run_client("127.0.0.1", sock.getsockname()[1], 0, "/")
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "connection refused" in lines[0]


@pytest.mark.parametrize("args", [
    (), ("127.0.0.1",), ("127.0.0.1", "80"), ("127.0.0.1", "0", "0"), ("127.0.0.1", "x", "0"),
    ("127.0.0.1", "80", "70000"), ("127.0.0.1", "80", "0", "/", "--bogus"),
    ("127.0.0.1", "80", "0", "/", "--timeout", "0"),
    ("no-such-host.invalid", "80", "0"),
])
def test_usage_errors_exit_2_with_one_line(args):
    result = run_client(*args)
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("client.py: error: "), lines
    assert b"Traceback" not in result.stderr


@contextmanager
def stub(reply: bytes | None):
    """A server for one connection: records the request, sends ``reply`` and closes
    (None: says nothing until the test ends)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(20)
    seen = {}
    done = threading.Event()

    def serve():
        try:
            conn, peer = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(20)
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            seen["request"], seen["peer"] = data, peer
            if reply is None:
                done.wait(20)
            else:
                conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], seen
    finally:
        done.set()
        listener.close()
        thread.join(timeout=20)


def test_request_bytes_on_the_wire_and_client_port():
    port = free_port()
    with stub(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok") as (server_port, seen):
        result = run_client("127.0.0.1", server_port, port, "/a b#frag")
    assert result.returncode == 0 and result.stdout == b"ok"
    assert seen["request"].startswith(b"GET /a%20b HTTP/1.0\r\n")
    assert seen["request"].endswith(b"\r\n\r\n")
    assert seen["peer"][1] == port


@pytest.mark.parametrize("reply, code, stdout, message", [
    (b"HTTP/1.0 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", 1, b"0123456789",
     b"shorter than its Content-Length (10 of 100 bytes)"),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", 1, b"ok", b"5 bytes after"),
    (b"HTTP/1.0 200 OK\r\n\r\nno length, ends at close", 0, b"no length, ends at close", b""),
    (b"hello\n", 0, b"hello\n", b"HTTP/0.9 Simple-Response"),
    (b"HTTP/1.0 200 OK\r\nContent-", 1, b"", b"before the header block ended"),
    (b"", 1, b"", b"without a response"),
    (b"HTTP/1.0 299 Whatever\r\n\r\nx", 0, b"x", b""),
    (b"HTTP/1.0 599 Whatever\r\n\r\nx", 1, b"x", b""),
    (b"HTTP/1.0  200\nContent-Length: 1\n\nx", 0, b"x", b""),
])
def test_replies_a_correct_server_never_sends(reply, code, stdout, message):
    with stub(reply) as (port, _):
        result = run_client("127.0.0.1", port, 0, "/")
    assert (result.returncode, result.stdout) == (code, stdout), result.stderr
    assert message in result.stderr


def test_silent_server_times_out_with_status_2():
    with stub(None) as (port, _):
        result = run_client("127.0.0.1", port, 0, "/", "--timeout", "0.5")
    assert result.returncode == 2 and b"timed out" in result.stderr


# -- issue 12: stop at Content-Length, success on an open connection, resets named ---------


@contextmanager
def scripted(steps):
    """A server for one connection that runs ``steps(conn)`` after reading the request;
    yields (port, record), record["client_closed"] set if a send failed because the
    client had gone."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(20)
    record = {}

    def serve():
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(20)
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            try:
                steps(conn)
            except OSError:
                record["client_closed"] = True

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], record
    finally:
        listener.close()
        thread.join(timeout=30)


def test_client_stops_at_content_length_while_the_server_keeps_sending():
    def endless(conn):
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
        time.sleep(0.2)  # the rest comes in later packets, not with the body
        for _ in range(1000):  # at most 64 MiB over at most ~10 s, then give up
            conn.sendall(b"x" * 65536)
            time.sleep(0.01)

    with scripted(endless) as (port, record):
        result = run_client("127.0.0.1", port, 0, "/")
    assert (result.returncode, result.stdout) == (0, b"ok"), result.stderr
    assert record.get("client_closed"), "the client read on past its Content-Length"


def test_complete_body_on_a_connection_left_open_is_success():
    def keep_open(conn):
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        conn.settimeout(10)
        conn.recv(1)  # until the client closes (or 10 s)

    with scripted(keep_open) as (port, _):
        result = run_client("127.0.0.1", port, 0, "/", "--timeout", "5")
    assert (result.returncode, result.stdout) == (0, b"hello"), result.stderr
    assert b"timed out" not in result.stderr


def test_header_block_on_stderr_has_no_carriage_return(srv):
    result = run_client("127.0.0.1", srv.port, 0, "/file.txt")
    assert result.returncode == 0
    head = result.stderr.decode()
    assert "\r" not in head and head.startswith("HTTP/1.0 200 OK\n")
    assert head.splitlines()[-1].startswith("Connection:")


def _reset(conn):
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@pytest.mark.parametrize("reply, message", [
    (b"HTTP/1.0 200 OK\r\nContent-Length: 100\r\n\r\n0123456789",
     b"reset the connection after 10 of 100 body bytes"),
    (b"HTTP/1.0 200 OK\r\nContent-", b"reset the connection before the header block ended"),
    (b"HTTP/1.0 200 OK\r\n\r\nno length", b"reset the connection"),
])
def test_reset_is_reported_as_a_reset(reply, message):
    def send_then_reset(conn):
        conn.sendall(reply)
        time.sleep(0.3)  # let the bytes arrive before the reset
        _reset(conn)

    with scripted(send_then_reset) as (port, _):
        result = run_client("127.0.0.1", port, 0, "/")
    assert result.returncode == 1, result.stderr
    assert message in result.stderr
    assert b"closed" not in result.stderr
