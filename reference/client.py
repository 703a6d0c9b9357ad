#!/usr/bin/env python3
"""Fetch one file over HTTP/1.0 from a given local port: the lab's client.

    python reference/client.py HOST SERVER_PORT CLIENT_PORT [PATH] [-o FILE]
                               [--head] [--timeout SECONDS]

Binds CLIENT_PORT on this machine (SO_REUSEADDR; 0 lets the system choose),
connects to HOST:SERVER_PORT, sends ``GET PATH HTTP/1.0`` (PATH defaults to ``/``
and is percent-encoded where it must be), reads the body up to its Content-Length
(without one, until the server closes), writes the body to stdout byte for byte
(or to FILE), and the status line and headers to stderr. A redirect is reported,
not followed.

Exit status: 0 for a 2xx response with its whole body, whether or not the server
then closes; 1 for any other status, a body shorter than its Content-Length, or a
server that closed or reset the connection before the header block ended; 2 for a
usage error or a connection that failed (refused, timed out).
Standard library only; Python 3.10 or newer.
"""

from __future__ import annotations

import argparse
import errno
import re
import socket
import sys
from dataclasses import dataclass
from typing import BinaryIO

__all__ = ["encode_target", "build_request", "ResponseHead", "ResponseError",
           "parse_response_head", "content_length", "main"]

USER_AGENT = "http10-reference-client/1.0"
MAX_HEAD = 1 << 20  # bytes of header block we wait for before calling the reply broken


# --------------------------------------------------------------------------------------
# Pure functions: the request out, the response head in
# --------------------------------------------------------------------------------------

# RFC 1945 section 3.2.1: unreserved and reserved characters may stand as they are in
# a path; everything else (CTLs, SP, " # % < > and non-ASCII bytes) is sent as %HH.
_PATH_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                       b"-_.!~*'();/?:@&=+$,")
_ESCAPE = re.compile(rb"%[0-9A-Fa-f]{2}")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*")


def encode_target(path: str) -> str:
    """The Request-URI to send for what the user typed.

    ``/a b.txt`` becomes ``/a%20b.txt``; an escape already there (``%20``) is kept;
    a lone ``%`` becomes ``%25``; non-ASCII is sent as its UTF-8 bytes, escaped. A
    fragment (``#...``) is never sent (section 3.2.1). A full ``http://host:port/p``
    URL gives ``/p``, and an empty or relative path is made absolute: ``/`` at least
    (section 5.1.2).
    """
    path = path.partition("#")[0]
    url = _URL.match(path)
    if url:
        path = path[url.end():]
    if not path.startswith("/"):
        path = "/" + path
    raw = path.encode("utf-8", "surrogateescape")
    out = []
    i = 0
    while i < len(raw):
        if _ESCAPE.match(raw, i):
            out.append(raw[i:i + 3].decode("ascii"))
            i += 3
            continue
        byte = raw[i]
        out.append(chr(byte) if byte in _PATH_SAFE else f"%{byte:02X}")
        i += 1
    return "".join(out)


def build_request(target: str, method: str = "GET") -> bytes:
    """The request bytes: request line and header block, CRLF line ends."""
    return (f"{method} {target} HTTP/1.0\r\n"
            f"User-Agent: {USER_AGENT}\r\n"
            f"\r\n").encode("ascii")


class ResponseError(Exception):
    """The reply is not an HTTP response we can read; the message says why.

    ``cut_short`` is True when the reply ended too early (the message then says
    what was missing, and the caller says how it ended: closed or reset).
    """

    def __init__(self, message: str, cut_short: bool = False):
        super().__init__(message)
        self.cut_short = cut_short


@dataclass(frozen=True)
class ResponseHead:
    """Status line and headers; ``status`` is None for an HTTP/0.9 Simple-Response
    (no status line: everything received is the body)."""

    version: tuple[int, int] | None
    status: int | None
    reason: str
    headers: tuple[tuple[str, str], ...]
    head_length: int
    text: str  # the head as received, for showing

    def header(self, name: str) -> str | None:
        name = name.lower()
        values = [value for key, value in self.headers if key.lower() == name]
        return values[-1] if values else None


# Appendix B: be tolerant of the status line (any SP/HT between fields, no reason).
_STATUS_LINE = re.compile(rb"HTTP/([0-9]+)\.([0-9]+)[ \t]+([0-9]{3})(?:[ \t]+(.*))?",
                          re.IGNORECASE)
_HEAD_END = re.compile(rb"\n\r?\n")


def parse_response_head(data: bytes, at_eof: bool = False) -> ResponseHead | None:
    """Read the response head from the bytes received so far.

    Args:
        data: every byte received, however it was split.
        at_eof: True once the server has closed: no more bytes will come.

    Returns:
        The head once it is complete (a Simple-Response as soon as the first bytes
        are clearly not ``HTTP/``), or None if more bytes are needed.

    Raises:
        ResponseError: nothing received, the header block never ended, or the
        status line is malformed.
    """
    if not data and at_eof:
        raise ResponseError("without a response", cut_short=True)
    if len(data) < 5 and b"HTTP/".startswith(data.upper()):
        if at_eof:
            raise ResponseError("before the header block ended", cut_short=True)
        return None  # too few bytes to tell a status line from a Simple-Response
    if data[:5].upper() != b"HTTP/":
        # Section 6: no status line, so this is a Simple-Response; all of it is body.
        return ResponseHead(None, None, "", (), 0, "")
    end = _HEAD_END.search(data)
    if end is None:
        if at_eof:
            raise ResponseError("before the header block ended", cut_short=True)
        if len(data) > MAX_HEAD:
            raise ResponseError(f"no end of the header block in the first {MAX_HEAD} bytes")
        return None
    lines = [line.rstrip(b"\r") for line in data[:end.start()].split(b"\n")]
    status = _STATUS_LINE.fullmatch(lines[0].strip(b" \t"))
    if not status:
        raise ResponseError(f"malformed status line {lines[0][:80]!r}")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t") and headers:  # a continuation line
            name, value = headers.pop()
            headers.append((name, (value + " " + line.strip(b" \t").decode("latin-1")).strip()))
            continue
        name, colon, value = line.partition(b":")
        if colon:  # tolerant: a line without a colon is ignored
            headers.append((name.strip().decode("latin-1"),
                            value.strip(b" \t").decode("latin-1")))
    return ResponseHead(
        version=(int(status[1]), int(status[2])),
        status=int(status[3]),
        reason=(status[4] or b"").decode("latin-1"),
        headers=tuple(headers),
        head_length=end.end(),
        # The CR of the last header line is before end.start(): not part of the text.
        text=data[:end.start()].decode("latin-1").replace("\r\n", "\n").rstrip("\r"),
    )


def content_length(head: ResponseHead, method: str) -> int | None:
    """The body length the response announces, 0 where it can have none, else None
    (the body ends when the server closes). Several different values: None."""
    if method == "HEAD" or head.status in (204, 304) or (head.status or 0) // 100 == 1:
        return 0
    values = {value.strip() for key, value in head.headers if key.lower() == "content-length"}
    if len(values) != 1:
        return None
    value = values.pop().lstrip("0") or "0"
    # At most 18 digits: int() refuses very long numbers, and no body is that long.
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 18 else None


# --------------------------------------------------------------------------------------
# The socket and the command line
# --------------------------------------------------------------------------------------


class _Failure(Exception):
    """A connection problem, reported in one line with exit status 2."""


def _connect(host: str, server_port: int, client_port: int, timeout: float) -> socket.socket:
    try:
        addresses = socket.getaddrinfo(host, server_port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise _Failure(f"cannot resolve {host!r}: {error.strerror}") from None
    problem = "no address"
    for family, kind, proto, _, address in addresses:
        sock = socket.socket(family, kind, proto)
        sock.settimeout(timeout)
        try:
            # SO_REUSEADDR: the same client port can be used again at once, as the
            # lab runs the client from one fixed port many times in a row.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("", client_port))
            except OSError as error:
                raise _Failure(f"cannot bind local port {client_port}: {error.strerror}") from None
            try:
                sock.connect(address)
                return sock
            except socket.timeout:
                problem = f"no answer from {host} port {server_port} within {timeout:g} s"
            except ConnectionRefusedError:
                problem = (f"connection refused by {host} port {server_port} "
                           f"(is the server running?)")
            except OSError as error:
                problem = f"cannot connect to {host} port {server_port}: {error.strerror}"
                if error.errno == errno.EADDRNOTAVAIL:  # this very 4-tuple is in TIME_WAIT
                    problem += (f" (local port {client_port} was just used to reach it; "
                                f"wait a minute or use another CLIENT_PORT)")
        except BaseException:
            sock.close()
            raise
        sock.close()
    raise _Failure(problem)


def fetch(sock: socket.socket, request: bytes, method: str, body_out: BinaryIO,
          log=sys.stderr) -> int:
    """Send the request, stream the response; returns the exit status (0 or 1)."""
    sock.sendall(request)
    received = b""
    head = None
    ended = None  # how the server ended the stream: None (not yet), "closed", "reset"
    while head is None:  # the head: however the bytes were split, until it is complete
        chunk, ended = _recv(sock)
        received += chunk
        try:
            head = parse_response_head(received, at_eof=ended is not None)
        except ResponseError as error:
            reason = f"the server {ended} the connection {error}" if error.cut_short else error
            print(f"client.py: {reason}", file=log)
            return 1
    expected = None
    if head.status is not None:
        print(head.text, file=log)
        expected = content_length(head, method)
    chunk = received[head.head_length:]
    written = extra = 0
    while True:  # the body: to its Content-Length, else to the end of the stream
        if expected is not None:
            keep = max(0, expected - written)
            extra += max(0, len(chunk) - keep)  # already received with the body
            chunk = chunk[:keep]
        body_out.write(chunk)
        written += len(chunk)
        if expected is not None and written >= expected:
            break  # the whole body: done, whether the server closes or not
        if ended is not None:
            break
        chunk, ended = _recv(sock)
    body_out.flush()
    return _verdict(head, expected, written, extra, ended, log)


def _recv(sock: socket.socket) -> tuple[bytes, str | None]:
    """The next bytes, and None, or b"" and how the stream ended ("closed", "reset")."""
    try:
        chunk = sock.recv(65536)
    except socket.timeout:
        raise _Failure("timed out waiting for the server") from None
    except ConnectionResetError:
        return b"", "reset"
    return chunk, None if chunk else "closed"


def _verdict(head: ResponseHead, expected, body_bytes: int, extra: int, ended, log) -> int:
    if head.status is None:
        print("client.py: HTTP/0.9 Simple-Response (no status line); all of it is the body",
              file=log)
        return 0 if ended != "reset" else _reset_verdict(body_bytes, None, log)
    status = 0 if 200 <= head.status < 300 else 1
    if 300 <= head.status < 400 and head.header("location"):
        print(f"client.py: redirected to {head.header('location')} (not followed)", file=log)
    if expected is not None and body_bytes < expected:
        if ended == "reset":
            return _reset_verdict(body_bytes, expected, log)
        print(f"client.py: the body is shorter than its Content-Length "
              f"({body_bytes} of {expected} bytes)", file=log)
        status = 1
    elif expected is None and ended == "reset":
        return _reset_verdict(body_bytes, None, log)
    if extra:
        print(f"client.py: {extra} bytes after the body that Content-Length announced "
              f"(not written)", file=log)
        status = 1
    return status


def _reset_verdict(body_bytes: int, expected: int | None, log) -> int:
    """A reset before the body was known to be whole: the end may be lost (status 1)."""
    if expected is None:
        print(f"client.py: the server reset the connection after {body_bytes} body bytes; "
              f"without a Content-Length the body may be incomplete", file=log)
    else:
        print(f"client.py: the server reset the connection after {body_bytes} of "
              f"{expected} body bytes", file=log)
    return 1


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        raise _Failure(message)


def _port(low: int):
    def convert(text: str) -> int:
        if not text.isdigit() or not low <= int(text) <= 65535:
            raise argparse.ArgumentTypeError(f"{text!r} is not a port from {low} to 65535")
        return int(text)
    return convert


def main(argv: list[str] | None = None) -> int:
    """Run the client; returns the exit status."""
    parser = _ArgumentParser(prog="client.py", description="Fetch one file over HTTP/1.0.")
    parser.add_argument("host")
    parser.add_argument("server_port", type=_port(1), metavar="SERVER_PORT")
    parser.add_argument("client_port", type=_port(0), metavar="CLIENT_PORT",
                        help="local port to connect from (0: any)")
    parser.add_argument("path", nargs="?", default="/", metavar="PATH")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the body here, not stdout")
    parser.add_argument("--head", action="store_true", help="send HEAD instead of GET")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="give up when the server is silent this long (default 10)")
    try:
        args = parser.parse_args(argv)
        if not args.timeout > 0:
            raise _Failure("--timeout must be a positive number of seconds")
        method = "HEAD" if args.head else "GET"
        request = build_request(encode_target(args.path), method)
        sock = _connect(args.host, args.server_port, args.client_port, args.timeout)
        with sock:
            if args.output:
                try:
                    out = open(args.output, "wb")
                except OSError as error:
                    raise _Failure(f"cannot write {args.output}: {error.strerror}") from None
                with out:
                    return fetch(sock, request, method, out)
            return fetch(sock, request, method, sys.stdout.buffer)
    except _Failure as error:
        print(f"client.py: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # stdout closed early (| head): nothing more to say
        return 1
    except OSError as error:
        print(f"client.py: error: {error.strerror or error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
