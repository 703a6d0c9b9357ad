#!/usr/bin/env python3
"""A threaded HTTP/1.0 static file server: the model answer to the lab.

    python reference/server.py PORT [--root DIR] [--bind ADDR] [--mode pool|spawn]
                                    [--max-connections N] [--timeout SECONDS]
                                    [--quiet] [--no-server-header] [--listing]

It serves the files under DIR (default: the current directory) to one client per
thread, answers each request once and closes the connection, as RFC 1945 describes.
Standard library only; Python 3.10 or newer.

How the file reads, top to bottom:

1. Configuration: every limit and timeout in one frozen ``Config``, each default
   with its unit and the reason for it. The same table feeds the command line.
2. Values: ``Request``, ``Response``, and ``ProtocolError``, which carries the
   status an error implies; one place (``Server.serve_connection``) answers it.
3. Parsing: pure functions, bytes in, a ``Request`` out. No sockets: tests feed
   them bytes, whole or one at a time.
4. Paths: percent-decoded URL path -> normalised segments (pure) -> a file opened
   inside the root one component at a time, following symlinks only while they stay
   inside (touches the file system, never a socket).
5. Dates: the three date forms of RFC 1945 section 3.3, parsed and formatted.
6. Responses: a table maps each method to a handler that returns a ``Response``.
7. Connections: the socket code, one thread per connection, and the two ways to
   give each connection its thread (``pool`` and ``spawn``), with a cap on live
   connections; past it a client gets 503. A socket that still has input coming is
   closed by the lingering close, in one linger thread, so that no reset destroys
   the end of a response.
8. The command line and signals (main thread).

Concurrency: every live connection has a thread of its own, as the lab asks. The
default, ``--mode pool``, keeps threads that each wait in accept() and serve one
client at a time, at most two of them for prompt clients at once (Config.pool_active says why);
``--mode spawn`` starts a new thread for each accepted connection, the lab's
simplest form. Starting a thread costs more than serving a small file, so pool is
the faster. Measured with ``tools/bench/bench.py`` (ab, a 1 KiB file, 2 cores;
medians of 3; all of it in docs/benchmarks.md):

    requests/s (p99 ms)     ab -c 16        ab -c 128
    pool                    19969 (3.5)     19139 (11.1)
    spawn                   3602 (7.4)      3147 (51)
    ThreadingHTTPServer     1753 (6.8)      1743 (7.6)
    nginx, one worker       18582 (1.4)     18380 (11.1)

ThreadingHTTPServer listens with a backlog of 5, so at -c 128 the kernel can drop
connection attempts, which then wait seconds for retransmission; this server listens
with a backlog of 1024 and answers 503 past its cap instead.

Choices where RFC 1945 leaves room, or where this server is stricter:

- Replies are always ``HTTP/1.0``, also to ``HTTP/1.1`` requests (the highest
  version this server implements). ``HTTP/01.00`` is 1.0 (leading zeros ignored);
  ``http/1.0`` is accepted (RFC 1945 literals are case-insensitive). A major
  version other than 1 gets 505 (an HTTP/1.1 code; RFC 1945 has none for it), so
  the client learns the version is the problem and not its syntax.
- Over a limit: 414 for a long request line, 431 for too many or too large
  header fields, 413 for a body over ``max_body``. These are later codes, sent
  with an HTTP/1.0 status line; a 1.0 client reads them as "4xx client error".
- A header line without a colon, or with whitespace before the colon, is 400
  (RFC 7230 rejects both; tolerating ``Name : value`` invites request smuggling).
- ``GET file.txt`` (no leading slash, the lab's form) is served as ``/file.txt``.
  An ``http://`` absoluteURI is served by its path; any other scheme is 400.
- If-Modified-Since applies to HEAD as to GET (304): RFC 1945 section 8.2 says a
  HEAD should ignore it, but section 8.2 also wants HEAD's headers identical to
  GET's, and RFC 7232 and every server we measured answer 304.
- Paths refused for safety get 403: ``..`` that would leave the root, a backslash,
  a dot file (``.git/``, ``.htaccess``, also when a symlink leads to one), a symlink
  that leads outside the root at any step (also one whose target comes back in).
  Paths are opened one component at a time from a descriptor of the root, so a
  folder swapped for a symlink while a request runs cannot lead outside either.
  The server's own source is served if it lies in the root (the lab serves its
  working directory); run it with ``--root`` elsewhere to avoid that.
"""

from __future__ import annotations

import argparse
import calendar
import collections
import dataclasses
import errno
import fcntl
import functools
import html
import mimetypes
import os
import re
import selectors
import signal
import socket
import stat
import struct
import sys
import threading
import time
import traceback
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import BinaryIO, Callable

__all__ = [
    "Config",
    "ProtocolError",
    "Request",
    "Response",
    "parse_request",
    "body_length",
    "split_target",
    "normalise_path",
    "open_inside",
    "resolve_path",
    "parse_http_date",
    "format_http_date",
    "handle",
    "SmallFiles",
    "Server",
    "main",
]

SERVER_NAME = "http10-reference/1.0"


# --------------------------------------------------------------------------------------
# 1. Configuration
# --------------------------------------------------------------------------------------


def _opt(default, flag: str | None, help: str, **argparse_kwargs):
    """A Config field that may also be a command-line option (flag=None: it is not)."""
    return field(default=default, metadata={"flag": flag, "help": help, **argparse_kwargs})


@dataclass(frozen=True)
class Config:
    """Everything the server can be told, with the reason for each default."""

    # Where to listen and what to serve.
    port: int = _opt(0, None, "TCP port; 0 picks a free one (the startup line says which)")
    root: str = _opt(".", "--root", "folder to serve (default: the current directory)")
    bind: str = _opt(
        "127.0.0.1", "--bind",
        "address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every host)")
    listing: bool = _opt(False, "--listing", "list folders that have no index.html (default: 403)",
                         action="store_true")
    server_header: bool = _opt(True, "--no-server-header", "send no Server header",
                               action="store_false")
    quiet: bool = _opt(False, "--quiet", "no access log on stderr", action="store_true")

    # Concurrency.
    mode: str = _opt(
        "pool", "--mode",
        "pool: up to max-connections threads that each wait in accept() and serve one "
        "client at a time; spawn: a new thread per accepted connection (the lab's form)",
        choices=("pool", "spawn"))
    # 1024: well above a class's load and `ab -c 128`; each idle thread costs little
    # memory, and the kernel's thread limit (pid_max, typically 32768) is far away.
    max_connections: int = _opt(1024, "--max-connections",
                                "live connections served at once; past it a client gets 503")
    # Python's socketserver listens with 5: a burst of 16 connects then loses SYNs and
    # waits 1 to 7 s for the retries. The kernel caps this at net.core.somaxconn.
    backlog: int = _opt(1024, None, "listen() backlog, in connections")
    # pool mode: threads in accept() or serving a prompt client (its request arrived at
    # once, its reply is small); a client that keeps its thread waiting stops counting,
    # and another thread starts. Two: one runs Python while the other is in a system
    # call; the interpreter lock lets no more run at once, and more would only queue
    # for it, where who gets it next is anybody's guess, instead of in the kernel's
    # accept queue, first come, first served. Measured with ab -c 128 (1 KiB file, 2
    # cores): 2 gave 21,000-23,000 requests/s and a p99 of 9-11 ms, 16 gave 12,000-
    # 14,000 and 24-27 ms, no limit (150 threads) 6,000-9,000 and 31-42 ms.
    pool_active: int = _opt(2, None, "threads serving prompt clients at once in pool mode")

    # Request limits, in bytes unless said otherwise.
    # 8 KiB: nginx's default buffer; any URL a browser or the lab sends is far shorter.
    max_request_line: int = _opt(8192, None, "request line, bytes (414 past it)")
    # 64 KiB and 100 fields: the limits of Python's http.client; plenty for any client.
    max_header_bytes: int = _opt(65536, None, "header block, bytes (431 past it)")
    max_header_fields: int = _opt(100, None, "header fields (431 past it)")
    # POST bodies are read only to be thrown away (a static server has nothing to post
    # to), so 1 MiB is generous; reading in 64 KiB pieces, never all at once.
    max_body: int = _opt(1 << 20, None, "request body, bytes (413 past it)")

    # Time limits, in seconds.
    # 10 s: a person typing a request by hand in telnet is slower, but a slow or stalled
    # client holds a thread, so this is also how long a slowloris client can hold one.
    timeout: float = _opt(10.0, "--timeout",
                          "seconds a client may take to send its request, and that a send "
                          "may stall, before the connection is dropped (408 if it sent part)")
    # After the response: how long to read and discard what the client still sends
    # before closing, so that our close does not become a TCP reset that destroys the
    # response still on its way (RFC 1945 section 9.4's note). At most linger_bytes.
    # 2 s: Apache's lingering close waits as long for each read.
    linger: float = _opt(2.0, None, "seconds to drain a client's input before closing")
    linger_bytes: int = _opt(16 << 20, None, "bytes drained at most before closing")
    # Sockets waiting in the lingering close at once (one descriptor each); past it a
    # socket is closed at once, which at worst resets a response its client is reading.
    max_lingering: int = _opt(4096, None, "sockets in the lingering close at once")
    # SIGINT/SIGTERM: how long the responses in flight get to finish.
    grace: float = _opt(10.0, "--grace", "seconds in-flight responses get to finish on SIGTERM")

    # Files up to this size are read and sent with the header block in one write (one
    # system call, and no wait between two small packets); larger ones are streamed
    # with sendfile, zero copy, so memory stays flat whatever the file size.
    small_file: int = _opt(65536, None, "files up to this size go out in one write, bytes")
    # Small files kept in memory (SmallFiles): a hit costs one stat instead of four
    # system calls. 16 MiB: a course's pages many times over; 0 turns it off.
    cache_bytes: int = _opt(16 << 20, None, "bytes of small files kept in memory")
    # A file changed less than this long ago is not kept: timestamps are coarse (one
    # clock tick), so two writes within a tick could look like none.
    cache_settle: float = _opt(2.0, None, "seconds a file must be unchanged to be kept")

    def __post_init__(self):
        problems = []
        if not 0 <= self.port <= 65535:
            problems.append(f"port {self.port} is out of range (0 to 65535)")
        for name in ("max_connections", "backlog", "max_request_line", "max_header_bytes",
                     "max_header_fields", "max_lingering", "pool_active"):
            if getattr(self, name) < 1:
                problems.append(f"{name.replace('_', '-')} must be at least 1")
        for name in ("timeout", "grace", "linger"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be a positive number of seconds")
        if problems:
            raise ValueError("; ".join(problems))


# --------------------------------------------------------------------------------------
# 2. Values and the error every parser raises
# --------------------------------------------------------------------------------------


class ProtocolError(Exception):
    """The request cannot be served; the client's fault unless status >= 500.

    Attributes:
        status: the HTTP status code the error implies (400, 403, 404, 413, ...).
        message: one short sentence for the error page, safe to show the client.
    """

    def __init__(self, status: int, message: str):
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Request:
    """A parsed request head.

    ``version`` is None for an HTTP/0.9 Simple-Request (``GET /path`` CRLF), which
    gets a Simple-Response: the body only. ``headers`` holds (lower-case name, value)
    pairs in order. ``path`` is the percent-decoded path of the Request-URI, as
    bytes (file names are bytes on POSIX), without query or fragment, not yet
    normalised. ``head_length`` is how many bytes of the input the head used.
    """

    method: str
    target: str
    version: tuple[int, int] | None
    headers: tuple[tuple[str, str], ...]
    path: bytes
    host: str | None
    head_length: int

    def header(self, name: str) -> str | None:
        """The last value of header ``name`` (any case), or None."""
        name = name.lower()
        for key, value in reversed(self.headers):
            if key == name:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key == name]


@dataclass
class Response:
    """What to send: a status, headers, and a body held in memory or an open file.

    ``send_body`` is False for HEAD and 304: the headers still describe the body
    a GET would get. Date, Server and Connection are added when it is written.
    """

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    file: BinaryIO | None = None
    file_length: int = 0
    send_body: bool = True

    @property
    def body_length(self) -> int:
        return len(self.body) + self.file_length


REASONS = {
    200: "OK", 301: "Moved Permanently", 304: "Not Modified",
    400: "Bad Request", 403: "Forbidden", 404: "Not Found", 408: "Request Timeout",
    413: "Payload Too Large", 414: "URI Too Long", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


# --------------------------------------------------------------------------------------
# 3. Parsing requests (pure: bytes in, Request or ProtocolError out)
# --------------------------------------------------------------------------------------

# RFC 1945 section 2.2: token = 1*<any CHAR except CTLs or tspecials>.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Section 3.1: HTTP-Version = "HTTP" "/" 1*DIGIT "." 1*DIGIT; section 2.1 makes quoted
# literals case-insensitive, so "http/1.0" is valid (RFC 7230 later made it exact).
_VERSION = re.compile(rb"HTTP/([0-9]+)\.([0-9]+)", re.IGNORECASE)
# Appendix B: any amount of SP or HT between the request-line fields.
_FIELD_SEPARATOR = re.compile(rb"[ \t]+")
# Section 3.2.1: CTLs may appear in a URI only %-escaped.
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
# Appendix B: a bare LF ends a line; so the head ends at LF, optional CR, LF.
_HEAD_END = re.compile(rb"\n\r?\n")
_LEADING_EMPTY_LINES = re.compile(rb"(?:\r?\n)*")

# Why the parsers here and the code below test bytes with find() and not `in`: in
# Python 3.11, `b"\n" in data` first tries its argument as an integer (a byte value)
# and raises and clears a TypeError for every bytes argument, which is about 1,400
# machine instructions a test; some 19 tests a request made a tenth of the server's
# instructions per small request (callgrind). find() looks for a buffer first.


def _remembered(function: Callable, longest: int, entries: int = 1024) -> Callable:
    """``function(key, *rest)``, remembered for keys up to ``longest`` bytes (pure).

    Why: the parts of a request head repeat. Every client asks for a few paths, and
    each client sends the same header block with every request (a browser its Host,
    User-Agent, Accept, cookies; ab an identical head). Parsing a request line and a
    three-line header block costs about 6 µs of interpreter time, a dictionary lookup
    about 0.1 µs. Only pure functions of their arguments are remembered, and their
    results are immutable, so a remembered answer is the answer; an error is never
    remembered (it is raised again, which costs what it cost before). Memory stays
    bounded: ``entries`` keys of at most ``longest`` bytes, least recently used out.
    """
    remember = functools.lru_cache(maxsize=entries)(function)

    @functools.wraps(function)
    def call(key, *rest):
        return remember(key, *rest) if len(key) <= longest else function(key, *rest)

    return call
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def parse_request(data: bytes, config: Config = Config()) -> Request | None:
    """Parse the head of a request from the bytes received so far.

    Args:
        data: everything the client has sent, however it was split into packets.
        config: the limits to enforce.

    Returns:
        A Request once the head is complete (the empty line of a Full-Request, the
        end of the line of a Simple-Request), or None when more bytes are needed.
        Bytes after the head (a body, or garbage) are left alone.

    Raises:
        ProtocolError: 400 malformed, 414 request line too long, 431 header block
        too large, 505 unsupported major version.
    """
    # Leading empty lines are skipped (RFC 2616 section 4.1; RFC 1945 is silent).
    start = _LEADING_EMPTY_LINES.match(data).end()
    if start > config.max_header_bytes:
        raise ProtocolError(400, "Too many empty lines before the request line.")
    line_end = data.find(b"\n", start)
    if line_end < 0:
        if len(data) - start > config.max_request_line:
            raise ProtocolError(414, "The request line is too long.")
        return None
    line = data[start:line_end]
    if line.endswith(b"\r"):
        line = line[:-1]
    if len(line) > config.max_request_line:
        raise ProtocolError(414, "The request line is too long.")
    method, target, version = _parse_request_line(line)

    if version is None:  # HTTP/0.9 Simple-Request: complete at the end of its line
        return _make_request(method, target, None, (), line_end + 1)

    head_end = _HEAD_END.search(data, line_end)
    if head_end is None:
        pending = data[line_end + 1:]
        if len(pending) > config.max_header_bytes:
            raise ProtocolError(431, "The header block is too large.")
        if pending.count(b"\n") > config.max_header_fields + 1:
            raise ProtocolError(431, "There are too many header fields.")
        return None
    block = data[line_end + 1:head_end.start()]
    if len(block) > config.max_header_bytes:
        raise ProtocolError(431, "The header block is too large.")
    headers = _parse_headers(block, config.max_header_fields)
    return _make_request(method, target, version, headers, head_end.end())


def _parse_request_line(line: bytes) -> tuple[str, str, tuple[int, int] | None]:
    """Method, Request-URI and version (None for HTTP/0.9) of one request line."""
    if line.find(b"\r") >= 0 or line.find(b"\0") >= 0:
        raise ProtocolError(400, "The request line contains a CR or NUL byte.")
    words = _FIELD_SEPARATOR.split(line.strip(b" \t"))
    if len(words) not in (2, 3):
        raise ProtocolError(400, "A request line is METHOD SP URI SP HTTP/1.0 (or METHOD SP URI "
                                 "for HTTP/0.9); a space inside the URI must be sent as %20.")
    method, target = words[0], words[1]
    if not _TOKEN.fullmatch(method):
        raise ProtocolError(400, "The method is not a token.")
    if _CONTROL.search(target):
        raise ProtocolError(400, "The Request-URI contains a control character.")
    if len(words) == 2:
        # Section 4.1: a Simple-Request has no headers and only the GET method.
        if method != b"GET":
            raise ProtocolError(400, "An HTTP/0.9 request (no version) must be a GET.")
        return method.decode("ascii"), target.decode("latin-1"), None
    match = _VERSION.fullmatch(words[2])
    if not match:
        raise ProtocolError(400, "The version is not HTTP/<digits>.<digits>.")
    version = (_decimal(match[1]), _decimal(match[2]))
    if version[0] != 1:
        raise ProtocolError(505, "This server speaks HTTP/1.0 (and HTTP/0.9 Simple-Requests).")
    return method.decode("ascii"), target.decode("latin-1"), version


_parse_request_line = _remembered(_parse_request_line, longest=1024)


def _decimal(digits: bytes) -> int:
    """An integer from ASCII digits, leading zeros ignored (section 3.1).

    A number too long for int() (Python caps conversions at 4300 digits) is only
    ever a version or a length far past any limit, so it becomes a large sentinel.
    """
    digits = digits.lstrip(b"0")
    return int(digits or b"0") if len(digits) <= 18 else 10**18


def _parse_headers(block: bytes, max_fields: int) -> tuple[tuple[str, str], ...]:
    """(lower-case name, value) pairs of a header block, continuation lines joined."""
    headers: list[list[str]] = []
    for raw in block.split(b"\n") if block else ():
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if line.find(b"\r") >= 0 or line.find(b"\0") >= 0:
            raise ProtocolError(400, "A header line contains a CR or NUL byte.")
        if line[:1] in (b" ", b"\t"):
            # Section 2.2: a line that starts with SP or HT continues the previous field.
            if not headers:
                raise ProtocolError(400, "A continuation line comes before any header field.")
            headers[-1][1] = (headers[-1][1] + " " + line.strip(b" \t").decode("latin-1")).strip()
            continue
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            raise ProtocolError(400, "A header line is not Name: value.")
        headers.append([name.decode("ascii").lower(), value.strip(b" \t").decode("latin-1")])
        if len(headers) > max_fields:
            raise ProtocolError(431, "There are too many header fields.")
    return tuple((name, value) for name, value in headers)


_parse_headers = _remembered(_parse_headers, longest=2048)


def _make_request(method, target, version, headers, head_length) -> Request:
    path, authority = split_target(target)
    host = authority
    if host is None:
        for name, value in headers:
            if name == "host":
                host = value
    return Request(method, target, version, headers, path, host, head_length)


def split_target(target: str) -> tuple[bytes, str | None]:
    """The percent-decoded path and the authority (or None) of a Request-URI.

    Accepts abs_path (``/a/b``), an ``http://host[:port]/a/b`` absoluteURI, and the
    lab's form without a leading slash (``a/b`` means ``/a/b``). Query and fragment
    are dropped: they never change which static file is meant.

    Raises:
        ProtocolError: 400 for ``*``, another scheme, or a malformed %-escape.
    """
    if target == "*":
        raise ProtocolError(400, "The * Request-URI does not exist in HTTP/1.0.")
    authority = None
    scheme = _SCHEME.match(target)
    if scheme:
        rest = target[scheme.end():]
        if scheme[1].lower() != "http" or not rest.startswith("//"):
            raise ProtocolError(400, "Only http:// absolute URIs are served.")
        authority, slash, path = rest[2:].partition("/")
        for mark in "?#":
            authority = authority.partition(mark)[0]
        target = slash + path if slash else "/"
    target = target.partition("#")[0].partition("?")[0]
    if not target.startswith("/"):
        target = "/" + target
    raw = target.encode("latin-1")
    if raw.find(b"%") < 0:  # nothing to decode (most paths): skip the decoder's work
        return raw, authority
    if _BAD_ESCAPE.search(raw):
        raise ProtocolError(400, "A % in the URI is not followed by two hex digits.")
    return urllib.parse.unquote_to_bytes(raw), authority


# The same few URIs come again and again (see _remembered); 1.5 µs a split.
split_target = _remembered(split_target, longest=1024)


def body_length(request: Request, config: Config = Config()) -> int:
    """How many body bytes follow the head (Content-Length, section 7.2.2).

    Raises:
        ProtocolError: 400 for a POST without a valid Content-Length, for a
        malformed or conflicting Content-Length, and for Transfer-Encoding (HTTP/1.0
        has none: a body it frames cannot be found); 413 past config.max_body.
    """
    if request.header("transfer-encoding") is not None:
        raise ProtocolError(400, "HTTP/1.0 has no Transfer-Encoding; send Content-Length.")
    values = {value.strip() for value in request.header_values("content-length")}
    if not values:
        if request.method == "POST":
            raise ProtocolError(400, "A POST needs a valid Content-Length.")
        return 0
    if len(values) > 1:
        raise ProtocolError(400, "Conflicting Content-Length headers.")
    value = values.pop()
    if not value.isascii() or not value.isdigit():
        raise ProtocolError(400, "Content-Length is not a number of bytes.")
    length = _decimal(value.encode("ascii"))
    if length > config.max_body:
        raise ProtocolError(413, f"The body is larger than this server accepts "
                                 f"({config.max_body} bytes).")
    return length


# --------------------------------------------------------------------------------------
# 4. Paths: confine every request to the root
# --------------------------------------------------------------------------------------


def normalise_path(path: bytes) -> tuple[list[bytes], bool]:
    """The segments of a decoded URL path, with ``.`` and ``..`` applied (pure).

    Returns:
        (segments, trailing_slash): ``/dir/../a/`` gives ([b"a"], True).

    Raises:
        ProtocolError: 400 for a NUL byte; 403 for a backslash (a separator on
        Windows), a dot file or folder, and a ``..`` that would leave the root.
    """
    if path.find(b"\0") >= 0:
        raise ProtocolError(400, "The path contains a NUL byte.")
    if path.find(b"\\") >= 0:
        raise ProtocolError(403, "Backslashes are not allowed in paths.")
    segments: list[bytes] = []
    parts = path.split(b"/")
    for part in parts:
        if part in (b"", b"."):
            continue
        if part == b"..":
            if not segments:
                raise ProtocolError(403, "The path leads outside the document root.")
            segments.pop()
        elif part.startswith(b"."):
            raise ProtocolError(403, "Dot files are not served.")
        else:
            segments.append(part)
    trailing_slash = parts[-1] in (b"", b".", b"..")
    return segments, trailing_slash


@dataclass
class Found:
    """A file or folder opened inside the root (see open_inside).

    ``fd`` is its descriptor, the caller's to close; ``names`` its path below the
    root with every symlink resolved (what realpath would give); ``info`` its fstat.
    """

    fd: int
    names: list[bytes]
    info: os.stat_result

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.info.st_mode)


# O_NOFOLLOW: a symlink is never followed by the kernel, only by open_inside, which
# checks where it leads. O_NONBLOCK: opening a FIFO must not hang the thread (it
# changes nothing for files and folders).
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
               | getattr(os, "O_BINARY", 0))
# What open(O_NOFOLLOW) says when it meets a symlink: ELOOP (Linux, macOS), EMLINK
# (FreeBSD), EFTYPE (NetBSD).
_IS_SYMLINK = {errno.ELOOP, errno.EMLINK, getattr(errno, "EFTYPE", errno.ELOOP)}
_MAX_SYMLINKS = 40  # as the kernel's own path lookup: more is taken for a loop


def open_inside(root_fd: int, root: bytes, segments: list[bytes]) -> Found:
    """Open what ``segments`` name below the root, race-free, following a symlink
    only while it stays inside the root.

    Resolving a path and then opening it leaves a window in which a local user who
    can write inside the root swaps a folder for a symlink to outside. So there is
    no path to swap: each component is opened relative to its parent's descriptor
    with O_NOFOLLOW (openat), and a symlink met on the way is read (readlinkat) and
    its target walked the same way, from its folder or, if absolute, from the root.
    Whatever is swapped in, at any moment, is either checked or refused.

    Args:
        root_fd: a descriptor of the root folder.
        root: the root's real path (an absolute symlink target must lie under it).
        segments: the normalised URL path (normalise_path), no ``.`` or ``..``.

    Returns:
        The opened file or folder: a regular file or a folder, nothing else.

    Raises:
        ProtocolError: 403 for a symlink that leads outside the root (even if a later
        step would come back), for a dot file or folder reached through a symlink,
        for an unreadable file and for anything but a file or folder; 404 if nothing
        is there or the symlinks loop.
        OSError: any other error of the file system (the server's failure: 500).
    """
    todo = list(reversed(segments))  # components still to walk, the next one last
    names: list[bytes] = []          # where the walk is, below the root
    fds: list[int] = []              # fds[i] is the folder or file names[:i + 1]
    links = 0
    try:
        while todo:
            name = todo.pop()
            if name in (b"", b"."):
                continue
            if name == b"..":  # only from a symlink's target: URL dots were applied already
                if not names:
                    raise ProtocolError(403, "The path leads outside the document root.")
                names.pop()
                os.close(fds.pop())
                continue
            if name.startswith(b"."):
                raise ProtocolError(403, "Dot files are not served.")
            parent = fds[-1] if fds else root_fd
            try:
                fds.append(os.open(name, _OPEN_FLAGS, dir_fd=parent))
                names.append(name)
                continue
            except OSError as error:
                if error.errno not in _IS_SYMLINK:
                    raise _refusal(error) from None
            links += 1
            if links > _MAX_SYMLINKS:
                raise ProtocolError(404, "Nothing matches the Request-URI (a symlink loop).")
            try:
                target = os.readlink(name, dir_fd=parent)
            except OSError as error:
                if error.errno == errno.EINVAL:  # no longer a symlink: swapped back, retry
                    todo.append(name)
                    continue
                raise _refusal(error) from None
            if target.startswith(b"/"):  # absolute: it must lead below the root
                todo.extend(reversed(_below_root(root, target)))
                names.clear()
                while fds:
                    os.close(fds.pop())
            else:
                todo.extend(reversed(target.split(b"/")))
        if not fds:  # the root itself
            fds.append(os.open(b".", _OPEN_FLAGS, dir_fd=root_fd))
        info = os.fstat(fds[-1])
        if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
            raise ProtocolError(403, "Only regular files are served.")
        found = Found(fds.pop(), names, info)
    finally:
        for fd in fds:  # the folders on the way, or everything after an error
            os.close(fd)
    return found


def _below_root(root: bytes, target: bytes) -> list[bytes]:
    """The components of an absolute symlink target below the root; 403 if outside."""
    prefix = root.rstrip(b"/") + b"/"
    if not (target + b"/").startswith(prefix):
        raise ProtocolError(403, "A symlink leads outside the document root.")
    return target[len(prefix):].split(b"/")


# errno -> what the client is told. Any other error is the server's: 500, and logged.
_NOT_THERE = {errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG}
_NOT_ALLOWED = {errno.EACCES, errno.EPERM}


def _refusal(error: OSError) -> Exception:
    if error.errno in _NOT_THERE:
        return ProtocolError(404, "Nothing matches the Request-URI.")
    if error.errno in _NOT_ALLOWED:
        return ProtocolError(403, "The file is not readable.")
    return error


def resolve_path(root: bytes, path: bytes) -> tuple[bytes, bool]:
    """The real path a URL path names, found as open_inside finds it.

    Args:
        root: the real (symlink-free, absolute) path of the document root.
        path: the percent-decoded URL path.

    Returns:
        (real path, trailing slash); the path exists, is inside the root, and every
        symlink in it has been followed.

    Raises:
        ProtocolError: as normalise_path and open_inside.
    """
    segments, trailing_slash = normalise_path(path)
    root_fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        found = open_inside(root_fd, root, segments)
    finally:
        os.close(root_fd)
    os.close(found.fd)
    return os.path.join(root, *found.names) if found.names else root, trailing_slash


# --------------------------------------------------------------------------------------
# 5. Dates (RFC 1945 section 3.3)
# --------------------------------------------------------------------------------------

_MONTHS = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_TIME = r"(?P<hour>\d\d):(?P<minute>\d\d):(?P<second>\d\d)"
_DATE_FORMS = (
    # RFC 1123, the preferred form: Sun, 06 Nov 1994 08:49:37 GMT
    re.compile(r"[a-z]{3}, (?P<day>\d\d?) (?P<month>[a-z]{3}) (?P<year>\d{4}) " + _TIME
               + " gmt", re.IGNORECASE),
    # RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
    re.compile(r"[a-z]{6,9}, (?P<day>\d\d)-(?P<month>[a-z]{3})-(?P<year>\d\d(?:\d\d)?) "
               + _TIME + " gmt", re.IGNORECASE),
    # asctime, read as GMT: Sun Nov  6 08:49:37 1994
    re.compile(r"[a-z]{3} (?P<month>[a-z]{3}) (?P<day>[ \d]\d) " + _TIME + r" (?P<year>\d{4})",
               re.IGNORECASE),
)


def parse_http_date(text: str) -> int | None:
    """Seconds since the epoch of an HTTP-date in any of the three forms, or None.

    A two-digit RFC 850 year is 19yy from 70 up, else 20yy. Whitespace around the
    value is ignored, and so is an old Netscape ``; length=N`` suffix. An impossible
    date (31 Feb) is None, like any other text that is not a date.
    """
    text = text.partition(";")[0].strip()
    for form in _DATE_FORMS:
        match = form.fullmatch(text)
        if not match:
            continue
        year = int(match["year"])
        if len(match["year"]) == 2:
            year += 1900 if year >= 70 else 2000
        month = _MONTHS.get(match["month"].lower())
        try:
            moment = datetime(year, month or 0, int(match["day"]), int(match["hour"]),
                              int(match["minute"]), int(match["second"]), tzinfo=timezone.utc)
        except ValueError:
            return None
        return calendar.timegm(moment.utctimetuple())
    return None


class _PerSecond:
    """A function of the current second, computed once per second (any thread).

    Every response has a Date and every request a log line with the time; both only
    change once a second, and formatting them costs more than the rest of a small
    response's header. The (second, text) pair is one tuple, so a thread reads the
    old pair or the new one, never half of each.
    """

    def __init__(self, format_second: Callable[[int], str]):
        self._format = format_second
        self._cached = (-1, "")

    def __call__(self, now: float) -> str:
        second = int(now)
        cached = self._cached
        if cached[0] != second:
            cached = self._cached = (second, self._format(second))
        return cached[1]


def format_http_date(seconds: float) -> str:
    """RFC 1123 form, the one RFC 1945 prefers: ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    moment = time.gmtime(seconds)
    weekday = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[moment.tm_wday]
    month = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")[moment.tm_mon - 1]
    return (f"{weekday}, {moment.tm_mday:02d} {month} {moment.tm_year:04d} "
            f"{moment.tm_hour:02d}:{moment.tm_min:02d}:{moment.tm_sec:02d} GMT")


_date_header = _PerSecond(format_http_date)
# Last-Modified: the same few files are asked for again and again, each with its own
# modification time, and formatting a date costs about 1.4 µs (a quarter of serving
# a file kept in memory); a bounded table of the last ones formatted costs 0.1 µs.
_last_modified = functools.lru_cache(maxsize=1024)(format_http_date)
_log_time = _PerSecond(lambda second: time.strftime("%d/%b/%Y:%H:%M:%S %z",
                                                    time.localtime(second)))


# --------------------------------------------------------------------------------------
# 6. Responses: method table and handlers (file system, no sockets)
# --------------------------------------------------------------------------------------

# Only the built-in table, never /etc/mime.types, so every machine answers alike.
_MIME = mimetypes.MimeTypes()
_VALID_HOST = re.compile(r"(?:[A-Za-z0-9\-._~]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


@dataclass(frozen=True)
class Context:
    """What a handler needs besides the request: the root (its real path, and a
    descriptor every path is opened from), the settings, the time (one clock
    reading per response, so Last-Modified never passes Date), and the origin to
    build absolute URLs with when the client sent no usable Host."""

    root: bytes
    root_fd: int
    config: Config
    now: float
    origin: str
    files: SmallFiles | None = None


def handle(request: Request, context: Context) -> Response:
    """Dispatch on the method (case-sensitive, section 5.1.1); 501 if unknown."""
    handler = METHODS.get(request.method, _not_implemented)
    return handler(request, context)


def _get(request: Request, context: Context) -> Response:
    return _serve_resource(request, context, send_body=True)


def _head(request: Request, context: Context) -> Response:
    # Section 8.2: the same headers as GET, and never a body.
    return _serve_resource(request, context, send_body=False)


def _post(request: Request, context: Context) -> Response:
    # The body was read (and thrown away) by the connection code before this.
    return error_response(501, "POST is not implemented: this server only serves files.")


def _not_implemented(request: Request, context: Context) -> Response:
    return error_response(501, "This server implements GET, HEAD and POST (methods are "
                               "case-sensitive).")


METHODS: dict[str, Callable[[Request, Context], Response]] = {
    "GET": _get,
    "HEAD": _head,
    "POST": _post,
}


def _serve_resource(request: Request, context: Context, send_body: bool) -> Response:
    segments, trailing_slash = normalise_path(request.path)
    if context.files is not None and not trailing_slash:
        kept = context.files.get(context.root_fd, segments)
        if kept is not None:
            return _file_reply(kept.kind, len(kept.body), kept.modified, request, context,
                               send_body, body=kept.body)
    found = open_inside(context.root_fd, context.root, segments)
    if not found.is_dir:
        if trailing_slash:  # /file.txt/ names a folder that is not there
            os.close(found.fd)
            raise ProtocolError(404, "Nothing matches the Request-URI (not a folder).")
        # Kept in memory only if no symlink was on the way: see SmallFiles.
        keep = context.files is not None and found.names == segments
        return _file_response(found, request, context, send_body, keep)
    folder = found
    try:
        if not trailing_slash:
            return _redirect_to_folder(request, context, send_body)
        try:  # its index.html, walked as any path is (symlinks and dot files included)
            index = open_inside(context.root_fd, context.root, folder.names + [b"index.html"])
        except ProtocolError as error:
            if error.status != 404:
                raise
            if context.config.listing:
                return _listing(request, folder.fd, send_body)
            raise ProtocolError(403, "This folder has no index.html, and listing is off.") from None
    finally:
        os.close(folder.fd)
    if index.is_dir:
        os.close(index.fd)
        raise ProtocolError(403, "This folder's index.html is not a file.")
    return _file_response(index, request, context, send_body)


def _file_response(found: Found, request: Request, context: Context,
                   send_body: bool, keep: bool = False) -> Response:
    """200 (or 304) for an open regular file; takes over the descriptor.

    keep: a small file may be kept in context.files for the requests after this one.
    """
    fd, info = found.fd, found.info
    small = info.st_size <= context.config.small_file
    kind = _content_type(found.names[-1])
    try:
        # A small file is read now (it goes out in one write); of a large text file,
        # its start, to tell its character set.
        start = os.read(fd, context.config.small_file) if small or kind.startswith("text/") else b""
    except OSError:
        os.close(fd)
        raise
    if kind.startswith("text/"):
        kind += _charset(start, complete=small)
    if small:
        os.close(fd)  # all of it has been read
        if keep:
            context.files.put(found.names, info, kind, start, context.now)
        return _file_reply(kind, len(start), int(info.st_mtime), request, context, send_body,
                           body=start)
    return _file_reply(kind, info.st_size, int(info.st_mtime), request, context, send_body,
                       file=fd)


def _file_reply(kind: str, length: int, mtime: int, request: Request, context: Context,
                send_body: bool, body: bytes = b"", file: int | None = None) -> Response:
    """The 200 or 304 for a file's bytes (body) or its open descriptor (file)."""
    # Section 10.10: Last-Modified never later than the Date of the response.
    modified = min(mtime, int(context.now))
    headers = [("Content-Type", kind),
               ("Content-Length", str(length)),
               ("Last-Modified", _last_modified(modified))]
    not_modified = _not_modified_since(request, modified, context.now)
    if file is not None and (not send_body or not_modified):
        os.close(file)
        file = None
    if not_modified:
        return Response(304, [headers[2]], send_body=False)
    if not send_body:
        return Response(200, headers, file_length=length, send_body=False)
    if file is None:
        return Response(200, headers, body=body)
    return Response(200, headers, file=open(file, "rb", buffering=0), file_length=length)


@dataclass(frozen=True)
class _Kept:
    """A small file in memory, and the identity of the file it was read from."""

    identity: tuple[int, int, int, int, int]  # device, inode, size, mtime_ns, ctime_ns
    kind: str
    body: bytes
    modified: int


def _identity(info: os.stat_result) -> tuple[int, int, int, int, int]:
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns


class SmallFiles:
    """Small files kept in memory, so that a request for one costs a single stat.

    Why: opening, fstat-ing, reading and closing a file are four system calls, and
    each one hands the interpreter lock to another thread and then waits to get it
    back; under load those waits are most of a small response's time. A hit costs
    one stat, relative to the root's descriptor, without following a symlink.

    Why it is safe: an entry is made only from a file that open_inside reached with
    no symlink on the way (its URL path is its real path below the root), and it is
    used only while the stat of that path finds the same file: the same device and
    inode, size, mtime and ctime. A file replaced (by another file or by a symlink
    to outside), rewritten, or a folder on the way swapped for a symlink, all give
    another identity or an error, and the request takes the slow, race-free way. So
    whatever the path leads to at the moment of the check, a hit only sends bytes
    that were read from inside the root.

    A file changed less than config.cache_settle seconds ago is not kept: file
    system timestamps are coarse (a clock tick), so a file written twice within one
    tick to the same size would look unchanged (git calls such an entry "racy").
    Past config.cache_bytes, every entry is dropped and the cache fills again. Any
    thread; the dict's single operations are atomic, _lock guards the byte count.
    """

    def __init__(self, config: Config):
        self._max_bytes = config.cache_bytes
        self._settle = config.cache_settle
        self._entries: dict[bytes, _Kept] = {}
        self._bytes = 0
        self._lock = threading.Lock()  # guards _bytes and a clear of _entries
        self.hits = 0  # for tests and curiosity; a lost increment under a race costs nothing

    def get(self, root_fd: int, segments: list[bytes]) -> _Kept | None:
        key = b"/".join(segments)
        kept = self._entries.get(key)
        if kept is None:
            return None
        try:
            info = os.stat(key, dir_fd=root_fd, follow_symlinks=False)
        except (OSError, ValueError):
            info = None
        if info is None or not stat.S_ISREG(info.st_mode) or _identity(info) != kept.identity:
            self._entries.pop(key, None)
            return None
        self.hits += 1
        return kept

    def put(self, names: list[bytes], info: os.stat_result, kind: str, body: bytes,
            now: float) -> None:
        if (len(body) != info.st_size or len(body) > self._max_bytes
                or now - max(info.st_mtime, info.st_ctime) < self._settle):
            return
        with self._lock:
            if self._bytes + len(body) > self._max_bytes:
                self._entries.clear()
                self._bytes = 0
            self._entries[b"/".join(names)] = _Kept(_identity(info), kind, body,
                                                    int(info.st_mtime))
            self._bytes += len(body)


def _charset(start: bytes, complete: bool) -> str:
    """``; charset=utf-8`` for text that is UTF-8 beyond ASCII, else nothing.

    Section 3.6.1: text without a charset is read as ISO-8859-1, so text in any
    other character set must say which. ASCII is ISO-8859-1 too; text that is not
    UTF-8 is left unlabelled, since a file does not say what it is.

    Args:
        start: the file, or its first bytes (complete=False: a character may be cut).
    """
    if start.isascii():
        return ""
    try:
        start.decode("utf-8")
    except UnicodeDecodeError as error:
        cut_short = not complete and error.reason == "unexpected end of data"
        if not cut_short:
            return ""
    return "; charset=utf-8"


def _not_modified_since(request: Request, modified: int, now: float) -> bool:
    """Section 10.9: 304 if the file has not changed since a valid, past date."""
    value = request.header("if-modified-since")
    if value is None:
        return False
    since = parse_http_date(value)
    # An unparseable date, or one later than now, is invalid: a normal GET.
    return since is not None and since <= now and modified <= since


def _content_type(name: bytes) -> str:
    kind, encoding = _MIME.guess_type(os.fsdecode(name), strict=False)
    # x.tar.gz guesses (tar, gzip): we do not send Content-Encoding, so say bytes.
    return kind if kind and not encoding else "application/octet-stream"


def _redirect_to_folder(request: Request, context: Context, send_body: bool) -> Response:
    # Section 9.3 and 10.11: 301 with the absolute URL in Location, and a short note
    # with a link in the body. The Host the client sent if it is a plain host[:port],
    # else the address the client connected to.
    host = request.host if request.host and _VALID_HOST.fullmatch(request.host) else None
    origin = f"http://{host}" if host else context.origin
    segments, _ = normalise_path(request.path)
    location = origin + urllib.parse.quote(b"/" + b"/".join(segments) + b"/")
    link = html.escape(location, quote=True)
    response = error_response(301, f'This folder is at <a href="{link}">{link}</a>.',
                              escape=False)
    response.headers.append(("Location", location))
    response.send_body = send_body
    return response


def _listing(request: Request, fd: int, send_body: bool) -> Response:
    """The folder open at ``fd``, listed (dot files left out); does not close fd."""
    with os.scandir(fd) as entries:  # names come as str from a descriptor
        found = sorted((os.fsencode(entry.name), _is_folder(entry)) for entry in entries
                       if not entry.name.startswith("."))
    items = []
    for name, is_dir in found:
        slash = b"/" if is_dir else b""
        text = html.escape(os.fsdecode(name + slash))
        items.append(f'<li><a href="{urllib.parse.quote(name + slash)}">{text}</a></li>')
    title = html.escape(os.fsdecode(request.path))
    body = (f"<!DOCTYPE html>\n<html><head><title>Index of {title}</title></head><body>\n"
            f"<h1>Index of {title}</h1>\n<ul>\n" + "\n".join(items) + "\n</ul>\n</body></html>\n")
    body_bytes = body.encode("utf-8", "surrogateescape")
    return Response(200, [("Content-Type", "text/html; charset=utf-8"),
                          ("Content-Length", str(len(body_bytes)))],
                    body=body_bytes, send_body=send_body)


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows a symlink
    except OSError:  # a symlink loop, say: not a folder one can open
        return False


def error_response(status: int, message: str, escape: bool = True) -> Response:
    """A response with a short HTML page that says what went wrong (section 9.4)."""
    title = f"{status} {REASONS.get(status, 'Error')}"
    text = html.escape(message) if escape else message
    body = (f"<!DOCTYPE html>\n<html><head><title>{title}</title></head>"
            f"<body><h1>{title}</h1><p>{text}</p></body></html>\n").encode("utf-8")
    return Response(status, [("Content-Type", "text/html"),
                             ("Content-Length", str(len(body)))], body=body)


def format_head(response: Response, now: float, server_header: bool) -> bytes:
    """Status line and header block, every line ending in CRLF (section 2.2)."""
    lines = [f"HTTP/1.0 {response.status} {REASONS.get(response.status, 'Unknown')}",
             f"Date: {_date_header(now)}"]
    if server_header:
        lines.append(f"Server: {SERVER_NAME}")
    lines += [f"{name}: {value}" for name, value in response.headers]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# --------------------------------------------------------------------------------------
# 7. Connections (socket code; runs in the thread that owns the connection)
# --------------------------------------------------------------------------------------


class _Silent(Exception):
    """The client closed, or timed out, without sending a byte: nothing to answer."""


class Server:
    """The listening socket, the accept threads and the count of live connections.

    Create it with ``Server.listen(config)``, then ``start()``; ``stop()`` stops
    accepting and waits (at most ``config.grace`` seconds) for the connections in
    flight. ``address`` is the (host, port) actually bound.
    """

    def __init__(self, config: Config, listener: socket.socket, root: bytes, log=sys.stderr):
        self.config = config
        self.listener = listener
        self.root = root
        # Every path is opened relative to this descriptor (open_inside), never by name.
        self.root_fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        self.address = listener.getsockname()[:2]
        self._kind = (int(listener.family), int(listener.type))  # for _fast_accept
        self._timeouts_inherited = _listener_timeouts(listener, config.timeout)
        # http://host:port for absolute URLs, once (None: depends on the connection)
        self._origin = None if self.address[0] in ("0.0.0.0", "::") else _origin(self.address)
        self._log_writer = _LogWriter(log)   # errors always; the access log unless quiet
        self.small_files = SmallFiles(config) if config.cache_bytes > 0 else None
        self._lingerer = _Lingerer(config)
        self._count_lock = threading.Lock()    # guards _live, _idle, _threads, _stopping
        self._quiet = threading.Condition(self._count_lock)  # notified when _live hits 0
        self._live = 0        # connections being served
        self._idle = 0        # pool mode: threads waiting in accept()
        self._threads = 0     # pool mode: accept threads alive
        self._slow = 0        # pool mode: threads whose client kept them waiting
        self._stopping = False

    @classmethod
    def listen(cls, config: Config, log=sys.stderr) -> Server:
        """Bind and listen as config says. Raises OSError (port in use, bad address)."""
        root = os.path.realpath(os.fsencode(config.root))
        if not os.path.isdir(root):
            raise NotADirectoryError(f"the root {config.root!r} is not a folder")
        family, kind, proto, _, address = socket.getaddrinfo(
            config.bind, config.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        listener = socket.socket(family, kind, proto)
        try:
            # Restart at once after a stop, though old connections linger in TIME_WAIT.
            # Not on Windows, where SO_REUSEADDR lets another process steal the port.
            if os.name != "nt":
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(address)
            listener.listen(config.backlog)
            return cls(config, listener, root, log)
        except BaseException:
            listener.close()
            raise

    # -- one connection, start to end (connection thread) --------------------------------

    def serve_connection(self, conn: socket.socket, peer, turn: _Turn | None = None) -> None:
        """Read one request, answer it, close; never raises.

        turn: pool mode's note of whether this client has kept the thread waiting.
        """
        config = self.config
        deadline = time.monotonic() + config.timeout
        if not self._timeouts_inherited:
            _timeouts(conn, config.timeout)
        received = bytearray()
        request = None
        response = None
        sent = 0
        try:
            try:
                request, rest = self._read_request(conn, deadline, received, turn)
                self._read_body(conn, request, rest, deadline, turn)
                response = self._respond(request, conn)
            except ProtocolError as error:
                response = error_response(error.status, error.message)
            head = request.method == "HEAD" if request is not None else _is_head(received)
            if head:
                response.send_body = False  # section 8.2: never a body to HEAD, error or not
            simple = request is not None and request.version is None
            sent = self._write(conn, response, simple, turn)
        except _Silent:
            pass
        except OSError:
            pass  # the client went away (reset, broken pipe, send timeout): only its loss
        except Exception:
            # A bug, never the client's doing: say so on stderr, answer 500 if we can.
            self._log_writer.write(traceback.format_exc())
            if response is None:
                response = error_response(500, "The server failed; see its log.")
                try:
                    sent = self._write(conn, response, simple=False)
                except OSError:
                    pass
        finally:
            if response is not None and response.file is not None:
                response.file.close()
            self._close(conn)
            if response is not None:
                self._log(peer, received, response.status, sent)

    def _respond(self, request: Request, conn: socket.socket) -> Response:
        """handle(), with the file system's errors turned into 500 (connection thread).

        No socket is touched in here, so an OSError is the file system's (EIO, EMFILE,
        a folder swapped mid-request), the server's failure: the client gets 500, and
        the error log says what happened. Taking it for "the client went away" would
        leave the client with nothing and the log silent.
        """
        context = self._context(conn)
        try:
            return handle(request, context)
        except OSError as error:
            self._log_writer.write(f"server.py: error: {request.method} {request.target}: "
                                   f"{error.strerror or error}\n")
            return error_response(500, "The server could not read the file; see its log.")

    def _context(self, conn: socket.socket) -> Context:
        origin = self._origin
        if origin is None:  # listening on every address: the one this client reached
            origin = _origin(conn.getsockname())
        return Context(self.root, self.root_fd, self.config, time.time(), origin,
                       self.small_files)

    def _read_request(self, conn, deadline, received: bytearray,
                      turn: _Turn | None = None) -> tuple[Request, bytes]:
        """Receive until the head is complete (however it was split); the rest is body."""
        config = self.config
        first = True
        while True:
            chunk = _recv(conn, deadline, 4096, received, rearm=not first, turn=turn)
            first = False
            if not chunk:
                if not received.strip():
                    raise _Silent()
                raise ProtocolError(400, "The connection was closed before the request "
                                         "was complete.")
            received += chunk
            # Parse only when a line may have ended (or a limit passed): with one byte
            # per packet, re-parsing after every byte would cost time squared.
            if chunk.find(b"\n") >= 0 or len(received) > config.max_request_line + config.max_header_bytes:
                data = bytes(received)
                request = parse_request(data, config)
                if request is not None:
                    return request, data[request.head_length:]

    def _read_body(self, conn, request: Request, rest: bytes, deadline: float,
                   turn: _Turn | None = None) -> None:
        """Read and discard the body that Content-Length announces (section 7.2.2)."""
        if request.version is None:
            return
        remaining = body_length(request, self.config) - len(rest)
        while remaining > 0:
            chunk = _recv(conn, deadline, min(remaining, 65536), None, turn=turn)
            if not chunk:
                raise ProtocolError(400, "The body is shorter than its Content-Length.")
            remaining -= len(chunk)

    def _write(self, conn: socket.socket, response: Response, simple: bool,
               turn: _Turn | None = None) -> int:
        """Send the response; returns the body bytes sent (for the log)."""
        if conn.gettimeout() is not None:  # Python's timeouts: reset the last recv's
            conn.settimeout(self.config.timeout)
        head = b"" if simple else format_head(response, time.time(), self.config.server_header)
        if not response.send_body:
            _send_all(conn, head, turn)
            return 0
        _send_all(conn, head + response.body, turn)
        sent = len(response.body)
        if response.file is not None:
            if turn is not None:  # a large file goes at the client's pace
                turn.waiting()
            sent += _sendfile(conn, response.file, response.file_length, self.config.timeout)
        return sent

    def _close(self, conn: socket.socket) -> None:
        """Close at once when nothing can be lost, else through the lingering close."""
        if _nothing_to_lose(conn):
            conn.close()
        else:
            self._lingerer.close(conn)

    def _log(self, peer, received: bytearray, status: int, sent: int) -> None:
        """One line per request in Common Log Format: host - - [time] "line" status bytes."""
        if self.config.quiet:
            return
        line = _request_line_for_log(received)
        when = _log_time(time.time())
        self._log_writer.write(f'{peer[0]} - - [{when}] "{line}" {status} {sent or "-"}\n')

    # -- refusing past the cap (accept threads) ---------------------------------------------

    def _reject(self, conn: socket.socket, peer) -> None:
        """503 at once, without a thread: the reply fits in the empty socket buffer
        of a new connection, so a send that cannot block writes all of it. Then the
        lingering close reads the request the client sends meanwhile, so our close
        does not reset the 503 away."""
        response = _busy()
        received = bytearray()
        sent = 0
        try:
            conn.setblocking(False)
            try:  # what has arrived already tells whether this is a HEAD
                received += conn.recv(4096, socket.MSG_PEEK)
            except BlockingIOError:
                pass
            if _is_head(received):
                response.send_body = False
            head = format_head(response, time.time(), self.config.server_header)
            body = response.body if response.send_body else b""
            sent = max(0, conn.send(head + body) - len(head))
        except OSError:
            pass
        self._lingerer.close(conn)
        self._log(peer, received, 503, sent)

    # -- accepting (accept threads) ----------------------------------------------------------

    def start(self) -> None:
        """Start the accept thread(s), the log writer and the linger thread; returns at once."""
        self._log_writer.start()
        self._lingerer.start()
        if self.config.mode == "spawn":
            threading.Thread(target=self._accept_and_spawn, daemon=True, name="accept").start()
            return
        spares = min(self.config.pool_active, self.config.max_connections + 1)
        with self._count_lock:
            self._threads = self._idle = spares
        for _ in range(spares):
            if not self._start_pool_thread():
                raise RuntimeError("cannot start the accept threads")

    def _accept(self):
        """accept(), or None when stopping; a transient error (EMFILE) is retried."""
        while True:
            try:
                return _fast_accept(self.listener, self._kind)
            except OSError as error:
                with self._count_lock:
                    if self._stopping:
                        return None
                # Out of descriptors or memory: wait a moment rather than spin. Anything
                # else (a connection reset while queued) concerns one client only; EAGAIN
                # is the listener's receive timeout running out (_listener_timeouts).
                if error.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    time.sleep(0.05)

    def _accept_and_spawn(self) -> None:
        """spawn mode: the lab's form, a new thread for each accepted connection."""
        while (accepted := self._accept()) is not None:
            conn, peer = accepted
            with self._count_lock:
                admitted = self._live < self.config.max_connections
                if admitted:
                    self._live += 1
            if not admitted:
                self._reject(conn, peer)
                continue
            try:
                threading.Thread(target=self._serve_and_release, args=(conn, peer),
                                 daemon=True, name="connection").start()
            except RuntimeError:  # cannot start a thread (resource limit): drop this one
                conn.close()
                self._release()

    def _serve_and_release(self, conn, peer) -> None:
        try:
            self.serve_connection(conn, peer)
        finally:
            self._release()

    def _release(self) -> None:
        with self._count_lock:
            self._live -= 1
            if self._live == 0:
                self._quiet.notify_all()

    def _start_pool_thread(self) -> bool:
        try:
            threading.Thread(target=self._accept_and_serve, daemon=True, name="pool").start()
            return True
        except RuntimeError:  # "can't start new thread": a system limit, not our cap
            return False

    def _accept_and_serve(self) -> None:
        """pool mode: wait in accept(), serve that one client, repeat.

        Every live client still has its own thread, but no thread is started per
        connection. A new one starts when the last idle one takes a client, as long
        as fewer than pool_active threads serve prompt clients; past that, new
        clients wait in the accept queue for one to finish. A client that keeps its
        thread waiting (_Turn.waiting) stops counting, so slow and idle clients each
        still get a thread, up to max_connections serving plus one in accept() to
        answer 503 past it.
        """
        cap = self.config.max_connections
        while True:
            accepted = self._accept()
            with self._count_lock:
                self._idle -= 1
                if accepted is None:
                    self._threads -= 1
                    return
                admitted = self._live < cap
                if admitted:
                    self._live += 1
                grow = (self._idle == 0 and self._threads <= cap
                        and self._threads - self._slow < self.config.pool_active)
                if grow:
                    self._threads += 1
                    self._idle += 1
            if grow:
                self._grow()
            conn, peer = accepted
            turn = _Turn(self)
            if admitted:
                self.serve_connection(conn, peer, turn)
            else:
                self._reject(conn, peer)
            with self._count_lock:
                if admitted:
                    self._live -= 1
                    if self._live == 0:
                        self._quiet.notify_all()
                if turn.slow:
                    self._slow -= 1
                if self._threads - self._slow > self.config.pool_active:  # one too many
                    self._threads -= 1
                    return
                self._idle += 1

    def _client_is_slow(self) -> None:
        """A thread waits on its client: it stops counting as prompt (_Turn.waiting)."""
        with self._count_lock:
            self._slow += 1
            grow = self._idle == 0 and self._threads <= self.config.max_connections
            if grow:
                self._threads += 1
                self._idle += 1
        if grow:
            self._grow()

    def _grow(self) -> None:
        """Start the accept thread already counted in _threads and _idle."""
        if not self._start_pool_thread():
            with self._count_lock:  # at the thread limit: carry on with those we have
                self._threads -= 1
                self._idle -= 1

    # -- stopping (main thread) --------------------------------------------------------------

    def stop(self) -> int:
        """stop_accepting(), then wait_for_connections()."""
        self.stop_accepting()
        return self.wait_for_connections()

    def stop_accepting(self) -> None:
        """Close the listening socket: new connections are refused from now on."""
        with self._count_lock:
            self._stopping = True
        try:
            # On Linux this wakes every thread blocked in accept(); close alone does not.
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()

    def wait_for_connections(self) -> int:
        """Wait for the connections in flight; returns how many were still live when
        config.grace ran out (0 if all finished)."""
        with self._count_lock:
            self._quiet.wait_for(lambda: self._live == 0, timeout=self.config.grace)
            left = self._live
        self._lingerer.stop()
        self._log_writer.close()
        os.close(self.root_fd)
        return left


class _LogWriter:
    """The access log and the error log (one stream), written by a thread of its own.

    A connection thread appends its line to a deque (atomic under the interpreter
    lock: no lock of ours, no wake-up) and goes on; the log thread wakes every
    `interval` seconds and writes whatever gathered, in one write. Why not a
    queue.Queue: its put() notifies a Condition, which woke the log thread once per
    request and under load took about 30% of the interpreter's time (py-spy --gil,
    ab -c 16). Why not a lock around write(): the writer blocks in write() holding
    it, and hundreds of threads pile up behind it. A slow terminal or a full pipe
    delays no request either: past `capacity` waiting lines, lines are dropped (and
    counted).
    """

    def __init__(self, file, capacity: int = 10000, interval: float = 0.1):
        self._file = file
        self._capacity = capacity
        self._interval = interval
        self._lines: collections.deque[str] = collections.deque()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._write_lines, daemon=True, name="log")
        self.dropped = 0  # only a count: a lost increment under a race costs nothing

    def start(self) -> None:
        self._thread.start()

    def write(self, line: str) -> None:  # any thread
        if len(self._lines) < self._capacity:
            self._lines.append(line)
        else:
            self.dropped += 1

    def close(self, timeout: float = 5.0) -> None:
        """Write what is waiting (within timeout seconds), then stop."""
        self._closing.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _write_lines(self) -> None:  # the log thread
        while True:
            closing = self._closing.wait(self._interval)
            batch = []
            while self._lines:
                batch.append(self._lines.popleft())
            if self.dropped:
                batch.append(f"({self.dropped} log lines dropped: the log could not keep up)\n")
                self.dropped = 0
            if batch:
                try:
                    self._file.write("".join(batch))
                    self._file.flush()
                except (OSError, ValueError):
                    pass
            if closing:
                return


def _busy() -> Response:
    response = error_response(503, "Too many connections; try again in a moment.")
    response.headers.append(("Retry-After", "1"))
    return response


def _recv(conn: socket.socket, deadline: float, size: int, received: bytearray | None,
          rearm: bool = True, turn: _Turn | None = None) -> bytes:
    """recv() that gives up at the deadline: 408 if the client sent part of a request.

    rearm=False: the socket's timeout was set to the whole deadline just before (the
    first read of a connection), so the system call that sets it again is skipped.
    turn: pool mode; told before this thread waits on the client (_already_here).
    """
    if turn is not None and not turn.slow:
        chunk = _already_here(conn, size)
        if chunk is not None:
            return chunk
        turn.waiting()
    remaining = deadline - time.monotonic()
    if remaining > 0:
        if rearm:
            _receive_timeout(conn, remaining)
        try:
            return conn.recv(size)
        except (BlockingIOError, socket.timeout):  # the kernel's or Python's timeout
            pass
    if received is not None and not received.strip():
        raise _Silent()
    raise ProtocolError(408, "The request did not arrive in time.")


# Python's own socket timeouts poll() before every recv and send: two system calls,
# and two hand-overs of the interpreter lock between threads, where one would do.
# So connections stay in blocking mode, and the kernel enforces the timeouts
# (SO_RCVTIMEO, SO_SNDTIMEO: the call fails with EAGAIN). The struct timeval layout
# is known on Linux; elsewhere, or if the kernel refuses it, Python's timeouts.
_KERNEL_TIMEOUTS = sys.platform.startswith("linux")


def _origin(address) -> str:
    host, port = address[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _fast_accept(listener: socket.socket, kind: tuple[int, int]) -> tuple[socket.socket, tuple]:
    """listener.accept(), without its per-call cost in Python.

    socket.accept() reads the listener's family and type through properties that
    convert them to enums, and builds the new socket from those: about a tenth of
    the interpreter's time per small request (py-spy). The C method it wraps,
    _accept(), gives the descriptor; the socket is built from plain integers,
    kind = (family, type) of the listener. A blocking listener gives blocking
    sockets, as accept() would.
    """
    fd, address = listener._accept()
    return socket.socket(kind[0], kind[1], 0, fd), address


def _listener_timeouts(listener: socket.socket, seconds: float) -> bool:
    """Give the listener the connections' kernel timeouts; True if they will inherit them.

    Why: Linux copies a listening socket's options into each socket accept() makes
    (SO_RCVTIMEO and SO_SNDTIMEO among them), so setting them once here saves the two
    setsockopt calls _timeouts would make for every connection. The listener's own
    accept() then gives up every ``seconds`` with EAGAIN, and Server._accept simply
    calls it again: one wake-up per idle accept thread per timeout. Other systems do
    not promise the copy, so they keep setting the timeouts per connection.
    """
    if not _KERNEL_TIMEOUTS:
        return False
    try:
        value = _fixed_timeval(seconds)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
        return True
    except OSError:
        return False


def _timeouts(conn: socket.socket, seconds: float) -> None:
    """Make every recv and send on conn give up after this many idle seconds."""
    if _KERNEL_TIMEOUTS:
        try:
            value = _fixed_timeval(seconds)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
            return
        except OSError:
            pass
    conn.settimeout(seconds)


def _receive_timeout(conn: socket.socket, seconds: float) -> None:
    if conn.gettimeout() is None:  # kernel timeouts (see _timeouts)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(seconds))
    else:
        conn.settimeout(seconds)


def _timeval(seconds: float) -> bytes:
    seconds = max(seconds, 0.001)  # 0 would mean "wait forever"
    return struct.pack("@ll", int(seconds), int(seconds % 1 * 1_000_000))


# The connection timeout is the same for every connection: pack it once, not twice
# per connection.
_fixed_timeval = functools.lru_cache(maxsize=8)(_timeval)


def _request_line_for_log(received: bytearray) -> str:
    """The first line of what the client sent, safe in a log line: non-ASCII bytes
    and controls escaped, quotes backslashed, 1 KiB at most, "-" for nothing (pure)."""
    first = bytes(received).lstrip(b"\r\n").split(b"\n", 1)[0].rstrip(b"\r")[:1024]
    if not first:
        return "-"
    if _LOG_SAFE.fullmatch(first):  # the usual request line: printable ASCII, no quote
        return first.decode("ascii")
    line = first.decode("latin-1").encode("ascii", "backslashreplace").decode("ascii")
    return line.replace('"', '\\"')


_LOG_SAFE = re.compile(rb'[ !#-~]+')


def _is_head(received: bytes) -> bool:
    """Whether the bytes of a request that could not be parsed start a HEAD (pure).

    An error found before the request line is parsed (a bad version, a timeout)
    still gets no body if the method is HEAD: section 8.2 allows none, ever.
    """
    return _HEAD_METHOD.match(received) is not None


_HEAD_METHOD = re.compile(rb"(?:\r?\n)*HEAD[ \t]")

# Linux's SIOCOUTQ (TIOCOUTQ): bytes sent on a socket that the peer has not yet
# acknowledged. Elsewhere unknown, so every connection takes the lingering close.
_SIOCOUTQ = 0x5411 if sys.platform.startswith("linux") else None
# Both arguments as the C functions take them, because the conversion of any other
# form costs more than the system call: MSG_PEEK | MSG_DONTWAIT is an enum operation
# in Python (two enum constructions a call), and fcntl.ioctl given bytes first tries
# them as a writable buffer, raising and clearing a TypeError, before it copies them.
_PEEK_NOW = int(socket.MSG_PEEK | socket.MSG_DONTWAIT)


def _nothing_to_lose(conn: socket.socket) -> bool:
    """True if closing conn now cannot destroy any of the response (connection thread).

    The kernel answers a close with a TCP reset when unread input waits, and later
    when input arrives after the close; a reset discards what the client has not
    received yet, so a large response loses its tail. Nothing is lost if no input
    waits and the client has acknowledged every byte we sent: then the whole
    response is in its hands. Two system calls, cheaper than handing the socket to
    the linger thread, which most connections therefore skip.
    """
    if _SIOCOUTQ is None or conn.gettimeout() is not None:
        return False  # (Python's timeouts would make the peek below wait)
    try:
        if conn.recv(1, _PEEK_NOW):
            return False  # unread input: a pipelined request, a stray CRLF, a body
        return True  # the client closed its side: no input can come, no reset either
    except BlockingIOError:
        pass  # no input yet
    except OSError:
        return True  # already reset: nothing left to save
    unacknowledged = bytearray(4)  # writable: see _PEEK_NOW
    try:
        fcntl.ioctl(conn.fileno(), _SIOCOUTQ, unacknowledged)
    except OSError:
        return False
    return unacknowledged == b"\0\0\0\0"


class _Turn:
    """One pool thread's connection: whether its client has kept the thread waiting.

    The pool counts only threads serving prompt clients against pool_active; the
    first time a thread would wait on its client (no request bytes yet, a full
    window, a large file to stream), it says so once, and another thread may start
    in its place.
    """

    __slots__ = ("_server", "slow")

    def __init__(self, server: Server):
        self._server = server
        self.slow = False

    def waiting(self) -> None:
        if not self.slow:
            self.slow = True
            self._server._client_is_slow()


def _sendfile(conn: socket.socket, file: BinaryIO, length: int, timeout: float) -> int:
    """Send the first ``length`` bytes of ``file``, zero copy; returns the bytes sent.

    On a blocking socket with the kernel's send timeout (_timeouts), one sendfile()
    call sends the whole file, the kernel waiting for the client's window as it
    goes, and fails with EAGAIN only when the client took nothing for the timeout.
    socket.sendfile() cannot be given that socket: on EAGAIN it waits with no time
    limit. Given Python's timeout instead, it polls before every call and each call
    sends one socket buffer's worth: a 100 MiB download ran at 0.7x nginx's rate.
    So socket.sendfile (which falls back to read and send where the OS has no
    sendfile) only where the kernel's timeouts are not in use.
    """
    if conn.gettimeout() is not None or not hasattr(os, "sendfile"):
        conn.settimeout(timeout)
        return conn.sendfile(file, 0, length)
    out, source = conn.fileno(), file.fileno()
    sent = 0
    while sent < length:
        try:
            done = os.sendfile(out, source, sent, length - sent)
        except BlockingIOError:
            raise TimeoutError(f"the client read nothing for {timeout:g} s") from None
        if done == 0:  # the file is shorter than it was when opened
            break
        sent += done
    return sent


_NOW = int(socket.MSG_DONTWAIT)  # see _PEEK_NOW


def _send_all(conn: socket.socket, data: bytes, turn: _Turn | None) -> None:
    """sendall(); in pool mode, tell the turn first if the client's window is full."""
    if turn is not None and not turn.slow and conn.gettimeout() is None:
        try:
            done = conn.send(data, _NOW)
        except BlockingIOError:
            done = 0
        if done == len(data):
            return
        data = data[done:]
        turn.waiting()
    conn.sendall(data)


def _already_here(conn: socket.socket, size: int) -> bytes | None:
    """recv() if the client's bytes are already here, else None at once (pool mode).

    Not even a few milliseconds' wait: a wait of 2 ms capped how fast
    a crowd of idle clients got their threads at about 400 a second, and under ab
    -c 128 it bought nothing. Only with kernel timeouts (a blocking socket): Python's
    own timeouts would wait in this recv.
    """
    if conn.gettimeout() is not None:
        return None
    try:
        return conn.recv(size, _NOW)
    except BlockingIOError:
        return None


class _Lingerer:
    """The lingering close, for every socket handed over, in one thread (linger thread).

    Apache's cure for the reset that destroys a response: shut down our side (a FIN
    after the last byte), then read and throw away what the client still sends
    until it closes too, for at most config.linger seconds and config.linger_bytes
    bytes, and only then close. Done here, one selector for every such socket, so
    no connection thread waits for a client to hang up.
    """

    def __init__(self, config: Config):
        self._seconds = config.linger
        self._max_bytes = config.linger_bytes
        self._capacity = config.max_lingering
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()  # guards the selector's sockets and _deadlines
        # socket -> when to close it regardless; insertion order is deadline order,
        # since every socket gets the same time.
        self._deadlines: dict[socket.socket, float] = {}
        self._stopping = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="linger")

    def start(self) -> None:
        self._thread.start()

    def close(self, conn: socket.socket) -> None:
        """Shut conn down for writing and close it once the client is done (any thread)."""
        try:
            conn.shutdown(socket.SHUT_WR)
            conn.setblocking(False)
            with self._lock:
                if len(self._deadlines) < self._capacity and not self._stopping:
                    # Registering while the linger thread waits in select() is safe:
                    # epoll and kqueue watch the new socket at once, and poll/select
                    # see it at the next wake, at most self._seconds later.
                    self._selector.register(conn, selectors.EVENT_READ, [0])
                    self._deadlines[conn] = time.monotonic() + self._seconds
                    return
        except (OSError, ValueError):
            pass
        conn.close()  # broken already, or too many lingering: close at once

    def stop(self) -> None:
        """Close every lingering socket now and end the linger thread."""
        with self._lock:
            self._stopping = True
            for conn in list(self._deadlines):
                self._forget(conn)

    def _run(self) -> None:  # the linger thread
        while not self._stopping:
            with self._lock:
                oldest = next(iter(self._deadlines.values()), None)
            timeout = self._seconds if oldest is None else max(0.0, oldest - time.monotonic())
            for key, _ in self._selector.select(timeout):
                self._drain(key.fileobj, key.data)
            now = time.monotonic()
            with self._lock:
                expired = [conn for conn, deadline in self._deadlines.items() if deadline <= now]
                for conn in expired:  # the client never closed: give up on it
                    self._forget(conn)

    def _drain(self, conn: socket.socket, drained: list[int]) -> None:
        try:
            chunk = conn.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        drained[0] += len(chunk)
        if not chunk or drained[0] >= self._max_bytes:
            with self._lock:
                self._forget(conn)

    def _forget(self, conn: socket.socket) -> None:  # holding self._lock
        if self._deadlines.pop(conn, None) is not None:
            self._selector.unregister(conn)
            conn.close()


# --------------------------------------------------------------------------------------
# 8. Command line and signals (main thread)
# --------------------------------------------------------------------------------------


class _Stop(Exception):
    """Raised in the main thread by SIGINT or SIGTERM."""


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        raise ValueError(message)


def parse_args(argv: list[str] | None) -> Config:
    """The Config the command line asks for. Raises ValueError with a one-line reason."""
    parser = _ArgumentParser(prog="server.py", description="A threaded HTTP/1.0 file server.")
    parser.add_argument("port", type=_port, help="TCP port to listen on (0: any free port)")
    for item in dataclasses.fields(Config):
        meta = dict(item.metadata)
        flag = meta.pop("flag", None)
        if flag is None:
            continue
        if "action" not in meta:
            meta["type"] = item.type if callable(item.type) else _CONVERTERS[item.type]
            meta["metavar"] = item.name.upper().replace("_", "-")
        parser.add_argument(flag, dest=item.name, default=item.default, **meta)
    arguments = parser.parse_args(argv)
    return Config(**vars(arguments))


_CONVERTERS = {"int": int, "float": float, "str": str, "bool": bool}


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"port {text!r} is not a number from 0 to 65535")
    return int(text)


def _startup_line(server: Server) -> str:
    host, port = server.address
    shown = f"[{host}]" if ":" in host else host
    reach = ("only this machine can connect; --bind 0.0.0.0 accepts other hosts"
             if host.startswith("127.") or host == "::1" else "other hosts can connect")
    return (f"Serving {os.fsdecode(server.root)} at http://{shown}:{port}/ "
            f"({server.config.mode} mode, up to {server.config.max_connections} connections; "
            f"{reach}; Ctrl-C stops)")


def _raise_descriptor_limit(config: Config) -> str:
    """Raise the soft limit on open descriptors to what the caps need, if the hard
    limit allows; returns a line saying what was done ("" if nothing was needed).

    Each live connection holds a socket and perhaps a file, each lingering close a
    socket. Out of descriptors, accept() fails and new clients wait in the backlog
    instead of getting a 503 at once; many systems start processes with a soft limit
    of 1024 and a far higher hard limit, which any process may raise itself to.
    """
    try:
        import resource
    except ImportError:  # not POSIX
        return ""
    need = 2 * config.max_connections + config.max_lingering + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return ""
    target = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            target = soft
    note = f"Descriptor limit: {soft} raised to {target}" if target > soft else \
        f"Descriptor limit: {soft}"
    if target < need:
        note += (f", below the {need} that --max-connections {config.max_connections} may "
                 f"need (the hard limit is {hard}); past it new clients wait instead of a 503")
    return note


def main(argv: list[str] | None = None) -> int:
    """Run the server until SIGINT or SIGTERM. Returns the exit status."""
    def fail(message: str) -> int:
        print(f"server.py: error: {message}", file=sys.stderr)
        return 2

    try:
        config = parse_args(argv)
    except ValueError as error:
        return fail(str(error))
    if not os.path.isdir(config.root):
        return fail(f"the root {config.root!r} is not a folder")
    try:
        server = Server.listen(config)
    except OSError as error:
        return fail(f"cannot listen on {config.bind} port {config.port}: "
                    f"{error.strerror or error}")

    stops = {signal.SIGINT, signal.SIGTERM}
    # Where it can, the main thread waits for the signals with sigwait(), with them
    # blocked from before the first thread starts (threads inherit the mask), so
    # none is lost. A handler with time.sleep() loses one that arrives between
    # Python's check for signals and the sleep's system call: the server then ran
    # on after a SIGTERM, in about one run in five of a test that signals just as
    # the server has started. Elsewhere (Windows), that handler all the same.
    waits = hasattr(signal, "sigwait")
    if waits:
        signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    else:
        def stop_signal(signum, frame):
            raise _Stop(signum)

        for signum in stops:
            signal.signal(signum, stop_signal)
    try:
        server.start()
        print(_startup_line(server), flush=True)
        note = _raise_descriptor_limit(config)
        if note:
            print(note, flush=True)
        if waits:
            signal.sigwait(stops)
        while not waits:
            time.sleep(3600)  # the main thread only waits for a signal
    except _Stop:
        pass
    # A second signal while we wait for the responses in flight: the user means it.
    for signum in stops:
        signal.signal(signum, lambda *_: os._exit(1))
    if waits:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
    server.stop_accepting()
    print(f"Stopping: no new connections; waiting up to {config.grace:g} s for those in flight",
          flush=True)
    left = server.wait_for_connections()
    print("Stopped" + (f" ({left} connections cut short)" if left else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
