#!/usr/bin/env python3
"""A student-style threaded HTTP/1.0 static file server, with switchable mistakes.

    python tests/student_server.py PORT [--root DIR] [--defect NAME ...]

Without ``--defect`` this is a small but correct answer to the classic lab: one
thread per connection, the request read until its empty line however the bytes
are split, GET/HEAD of files under the root (confined after percent-decoding and
``realpath``), 404/400/501/505, POST refused with 501 once its Content-Length is
valid, If-Modified-Since in the three date forms, Date/Content-Type/
Content-Length/Last-Modified, the HTTP/0.9 Simple-Request answered with the body
only, the lab form ``GET file.txt HTTP/1.0``, and a close after every response.

Each ``--defect NAME`` switches on ONE mistake that students really make (see
``DEFECTS``); the test suite uses them to prove that the conformance runner and
the case corpus catch those mistakes. Every entry names the requirement ids of
the catalogue (``cases/requirements.toml``: R-<section>-<letter>, ROB-<n>) it
violates, so cases can be mapped to the defects that they must catch.

This file is deliberately independent of ``reference/``: it shares no code with
the reference server, so a bug in one cannot hide the same bug in the other.
Standard library only; it binds 127.0.0.1 and prints one line
``listening on 127.0.0.1:PORT`` (the real port when PORT is 0) once it listens.
"""

from __future__ import annotations

import argparse
import calendar
import email.utils
import mimetypes
import os
import re
import signal
import socket
import sys
import threading
import time
from typing import BinaryIO, NamedTuple
from urllib.parse import unquote_to_bytes

__all__ = ["DEFECTS", "Defect", "main"]


class Defect(NamedTuple):
    """One deliberate mistake: what the student did, and what it violates."""

    summary: str
    requirements: tuple[str, ...]


# name -> the mistake, and the catalogue ids of the requirements it violates.
# This table is the documentation, the CLI's choices and the tests' parameters.
DEFECTS: dict[str, Defect] = {
    "single-recv": Defect(
        "takes one recv() as the whole request, so a request split across "
        "several TCP segments is parsed half-read",
        ("ROB-7", "R-4.1-a", "R-5.1-a")),
    "sequential": Defect(
        "serves each client inside the accept loop, one at a time: a client "
        "that stalls mid-request blocks every other client",
        ("ROB-5", "ROB-3")),
    "small-pool": Defect(
        "hands connections to a fixed pool of three worker threads: three "
        "clients that stall mid-request leave nobody to serve a fourth",
        ("ROB-5", "ROB-3")),
    "leaks-descriptors": Defect(
        "never closes a client socket (keeps it in a list), under `ulimit -n "
        "128`: the response is never ended by a close, and after about a "
        "hundred connections accept() fails and nobody gets an answer",
        ("R-1.3-a", "ROB-3")),
    "answers-once": Defect(
        "answers the first request it gets and then no other: every later "
        "connection is accepted and never answered (a handler that blocks "
        "forever on a lock it took for the first client)",
        ("R-8.1-a", "ROB-3")),
    "truncate-large": Defect(
        "reads the file with one f.read(65536) and sends it with one send() "
        "whose return value it ignores: files over 64 KiB arrive short",
        ("R-8.1-a", "R-7.2.2-a", "ROB-11")),
    "no-close": Defect(
        "never closes the connection after the response (waits for the "
        "client to hang up), so a client reading to EOF hangs",
        ("R-1.3-a",)),
    "never-answers": Defect(
        "reads the request and then never replies, holding the connection open",
        ("R-8.1-a", "R-1.3-a")),
    "crash-on-bad-request-line": Defect(
        "splits the request line with `method, path, version = line.split()` "
        "in the accept loop: a line without exactly three words (a malformed "
        "line, or an HTTP/0.9 request) raises and kills the whole process",
        ("ROB-6", "R-5.1-a", "R-3.1-h", "R-1.3-b")),
    "crash-on-empty-request": Defect(
        "takes `request.split()[0]` as the method in the accept loop: a client "
        "that connects and closes without sending a byte (a port scanner, a "
        "browser's spare connection) raises IndexError and kills the process",
        ("ROB-6", "R-1.3-b")),
    "head-sends-body": Defect(
        "answers HEAD exactly like GET, body included",
        ("R-8.2-a",)),
    "text-mode": Defect(
        "opens files in text mode (UTF-8, errors replaced): CRLF becomes LF "
        "and bytes above 0x7F are mangled",
        ("R-8.1-a", "R-3.6.1-a")),
    "lf-line-ends": Defect(
        "ends the status line and the header lines with a bare \\n",
        ("R-2.2-a", "R-6.1-a")),
    "no-status-line": Defect(
        "sends only the body: no status line, no headers",
        ("R-6.1-a", "R-3.1-d", "R-6-a")),
    "wrong-content-length": Defect(
        "sends a Content-Length one more than the file's size (off by one)",
        ("R-7.2.2-a", "R-10.4-a")),
    "no-404": Defect(
        "answers a missing file with 200 and an empty body",
        ("R-9.4-g", "R-6.1.1-c")),
    "traversal": Defect(
        "joins the decoded path to the root with no confinement: "
        "/../secret.txt is served",
        ("R-12.5-b", "ROB-4")),
    "no-percent-decoding": Defect(
        "looks up the path without decoding %HH escapes: "
        "/space%20name.txt is not found",
        ("R-5.1.2-d",)),
    "status-500-for-missing": Defect(
        "lets the FileNotFoundError of a missing file reach a generic handler "
        "that answers 500",
        ("R-9.4-g",)),
    "ignores-if-modified-since": Defect(
        "ignores If-Modified-Since: always 200 with the body",
        ("R-10.9-a", "R-9.3-e", "R-3.3-a", "R-4.2-a")),
    "http-version-echo": Defect(
        "copies the request's version into the status line and accepts any "
        "HTTP/ version: HTTP/2.0 gets `HTTP/2.0 200`",
        ("R-3.1-b", "R-3.1-d", "R-3.1-g", "R-3.1-e")),
    "no-date": Defect(
        "sends no Date header",
        ("R-10.6-a",)),
    "no-content-type": Defect(
        "sends no Content-Type header",
        ("R-7.2.1-a",)),
    "asctime-date": Defect(
        "formats Date and Last-Modified with time.asctime()",
        ("R-3.3-b", "R-3.3-c")),
    "lowercase-methods": Defect(
        "upper-cases the method before dispatch, so `get` is served",
        ("R-5.1.1-a",)),
    "dies-on-disconnect": Defect(
        "writes the file in a loop that ignores send() errors and leaves "
        "SIGPIPE at its default (as a C server that forgets "
        "signal(SIGPIPE, SIG_IGN)): a client that leaves mid-response kills "
        "the process",
        ("ROB-9", "R-1.3-b")),
    "http09-full-response": Defect(
        "answers an HTTP/0.9 Simple-Request with a status line and headers",
        ("R-5-a", "R-3.1-a", "R-3.1-d", "R-6-c")),
    "no-lab-form": Defect(
        "cuts the first character off the path assuming it is '/', so the "
        "lab form `GET file.txt HTTP/1.0` looks for `ile.txt`",
        ("R-5.1.2-a",)),
    "no-index": Defect(
        "opens a directory as if it were a file (no index.html, no redirect): "
        "the handler thread dies and / or /dir/ get no response at all",
        ("R-5.1.2-c", "R-9.3-a", "ROB-6")),
    "post-reads-to-eof": Defect(
        "reads a POST body until the client closes instead of Content-Length "
        "bytes, so a POST is never answered",
        ("R-8.3-a", "R-7.2.2-a")),
    "ims-exact-string": Defect(
        "answers 304 only when If-Modified-Since is the very string it sent "
        "as Last-Modified: the RFC 850 and asctime forms get 200",
        ("R-3.3-a",)),
    "crlf-only-terminator": Defect(
        "waits for CR LF CR LF to end every request: a request ended by bare "
        "LFs, or an HTTP/0.9 request, is never answered",
        ("R-AppB-b", "R-5-a")),
    "follows-symlinks": Defect(
        "confines the path with normpath and a prefix check but no realpath, "
        "so a symlink to a file outside the root is followed",
        ("ROB-4", "R-12.5-a")),
    "query-in-path": Defect(
        "keeps the ?query as part of the file name: /file.txt?x=1 is 404",
        ("R-5.1.2-g",)),
    "any-method-as-get": Defect(
        "serves every method but HEAD like GET: FOO and DELETE get 200",
        ("R-5.1.1-b", "R-5.1.1-c")),
    "empty-error-body": Defect(
        "sends error statuses with an empty body",
        ("R-9.4-a",)),
    "body-on-304": Defect(
        "sends the file after a 304 Not Modified status line",
        ("R-7.2-c", "R-9.3-e")),
    "nul-drops-connection": Defect(
        "passes a decoded %00 to open(); the ValueError ends the handler "
        "thread and the client gets no response",
        ("R-5.1.2-h", "ROB-6")),
    "case-sensitive-headers": Defect(
        "looks header names up case-sensitively: `if-modified-since` is "
        "ignored",
        ("R-4.2-a",)),
    "only-http10": Defect(
        "accepts only the exact version string HTTP/1.0: HTTP/1.1 and "
        "HTTP/01.00 are refused with 505",
        ("R-3.1-f", "R-3.1-e", "R-3.1-c")),
    "close-with-unread-input": Defect(
        "closes the socket right after the response (a plain close(), no "
        "lingering close): bytes the client sent after the request head, such "
        "as a stray CRLF or a pipelined request, are still unread, so the "
        "kernel resets the connection and the tail of a large file is lost",
        ("ROB-11", "ROB-8")),
}

# Limits, in one place. Each is what a careful student would pick.
READ_TIMEOUT = 5.0          # seconds: a client that sends nothing for this long is dropped
MAX_REQUEST_LINE = 8192     # bytes: a longer request line gets 414
MAX_REQUEST_HEAD = 65536    # bytes: a longer header block gets 431
MAX_CONNECTIONS = 64        # live connections; past this a client gets 503
CHUNK = 64 * 1024           # bytes per read of a file
LINGER_SECONDS = 2.0        # after the response, drain unread input this long at most
LINGER_BYTES = 8 << 20      # ... and at most this many bytes (so no RST wipes the response)
HOLD_SECONDS = 30.0         # how long the hanging defects keep a connection open
SERVER_NAME = "student-server/1.0"

REASONS = {
    200: "OK", 301: "Moved Permanently", 304: "Not Modified",
    400: "Bad Request", 403: "Forbidden", 404: "Not Found",
    413: "Request Entity Too Large", 414: "Request-URI Too Long",
    431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}

# The three date forms of RFC 1945 section 3.3, tried in order, after the
# value's whitespace runs are squeezed (asctime pads one-digit days with a space).
DATE_FORMATS = (
    "%a, %d %b %Y %H:%M:%S GMT",   # RFC 1123
    "%A, %d-%b-%y %H:%M:%S GMT",   # RFC 850
    "%a %b %d %H:%M:%S %Y",        # asctime
)

TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
VERSION = re.compile(r"HTTP/([0-9]+)\.([0-9]+)\Z")
ESCAPE_OK = re.compile(rb"(?:[^%]|%[0-9A-Fa-f]{2})*\Z")
HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?\Z|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?\Z")
BLANK_LINES = re.compile(rb"(?:\r?\n)*")
END_OF_HEAD = re.compile(rb"\n\r?\n")
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

ACTIVE: frozenset[str] = frozenset()   # the defects switched on; set once by main()


def has(defect: str) -> bool:
    """Is this defect switched on? (A typo in a name is a bug, not a no-op.)"""
    assert defect in DEFECTS, defect
    return defect in ACTIVE


class HttpError(Exception):
    """A request the server refuses; ``status`` is the answer it implies."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class Request(NamedTuple):
    method: str
    target: str                 # the Request-URI as sent (Latin-1 text)
    version: str | None         # "HTTP/1.0" as sent, or None for an HTTP/0.9 Simple-Request
    headers: dict[str, str]     # names lower-cased (unless case-sensitive-headers)


class Reply(NamedTuple):
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    file: BinaryIO | None = None    # streamed after the headers, instead of body
    length: int = 0                 # bytes of body or file


# --------------------------------------------------------------------------
# Pure functions: bytes in, values out. No sockets.
# --------------------------------------------------------------------------

def http_date(t: float) -> str:
    if has("asctime-date"):
        return time.asctime(time.gmtime(t))
    return email.utils.formatdate(t, usegmt=True)


def parse_http_date(value: str) -> int | None:
    """Seconds since the epoch for any of the three HTTP date forms, else None."""
    value = " ".join(value.split(";")[0].split())
    for fmt in DATE_FORMATS:
        try:
            return calendar.timegm(time.strptime(value, fmt))
        except ValueError:
            continue
    return None


def _strip_blank_lines(buf: bytes) -> bytes:
    # RFC 2616 section 4.1: ignore empty lines before the request line.
    return buf[BLANK_LINES.match(buf).end():]


def request_end(buf: bytes) -> int | None:
    """Where the request in ``buf`` ends, or None while more bytes are needed.

    A request line with three words is a Full-Request and ends at the empty
    line (CRLF or bare LF, Appendix B). Any other first line (an HTTP/0.9
    Simple-Request, or garbage that will get 400) ends with that line.
    """
    skipped = len(buf) - len(_strip_blank_lines(buf))
    buf = buf[skipped:]
    if has("crlf-only-terminator"):
        end = buf.find(b"\r\n\r\n")
        return None if end < 0 else skipped + end + 4
    eol = buf.find(b"\n")
    if eol < 0:
        return None
    if len(buf[:eol].split()) != 3:
        return skipped + eol + 1
    match = END_OF_HEAD.search(buf, eol)
    return None if match is None else skipped + match.end()


def parse_request(head: bytes) -> Request:
    """Parse a request head (as delimited by ``request_end``).

    Raises:
        HttpError: with the status the malformed request implies.
    """
    text = _strip_blank_lines(head).decode("latin-1")
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    line = lines[0]
    if CONTROL.search(line):
        raise HttpError(400, "control character in the request line")
    words = re.split(r"[ \t]+", line.strip(" \t"))
    if len(words) == 2 and words[0] == "GET":
        return Request("GET", words[1], None, {})
    if len(words) != 3:
        raise HttpError(400, "a request line is: METHOD SP URI SP HTTP/1.0")
    method, target, version = words
    if not TOKEN.match(method):
        raise HttpError(400, "the method is not a token")
    check_version(version)
    return Request(method, target, version, parse_headers(lines[1:]))


def check_version(version: str) -> None:
    if has("http-version-echo"):
        if not version.startswith("HTTP/"):
            raise HttpError(400, "bad version")
        return
    if has("only-http10"):
        if version != "HTTP/1.0":
            raise HttpError(505, "only HTTP/1.0 is supported")
        return
    match = VERSION.match(version)
    if match is None:
        raise HttpError(400, "the version must be HTTP/<digits>.<digits>")
    if int(match.group(1)) != 1:
        raise HttpError(505, "only HTTP/1.x is supported")


def parse_headers(lines: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    last = None
    for line in lines:
        if line == "":
            break
        if line[0] in " \t" and last is not None:      # folded continuation line
            headers[last] += " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        if not colon or not TOKEN.match(name):
            continue                                    # not a header: ignored (R-4.2-e)
        last = name if has("case-sensitive-headers") else name.lower()
        value = value.strip(" \t")
        headers[last] = headers[last] + ", " + value if last in headers else value
    return headers


def request_path(target: str) -> tuple[str, str]:
    """The (still encoded) path of a Request-URI, and its decoded file system form.

    Raises:
        HttpError: for ``*``, bad escapes, and NUL or control bytes after decoding.
    """
    if target == "*":
        raise HttpError(400, "* is not a Request-URI in HTTP/1.0")
    match = re.match(r"[A-Za-z][A-Za-z0-9+.-]*://[^/]*", target)
    if match:                                   # absoluteURI: keep only its path
        target = target[match.end():] or "/"
    path = target.split("#")[0]
    if not has("query-in-path"):
        path = path.split("?")[0]
    lookup = path[1:] if has("no-lab-form") else path   # the student's path[1:]
    if not path.startswith("/"):                # the lab form: GET file.txt HTTP/1.0
        path = "/" + path
    raw = lookup.encode("latin-1")
    if not has("no-percent-decoding"):
        if not ESCAPE_OK.match(raw):
            raise HttpError(400, "malformed %-escape")
        raw = unquote_to_bytes(raw)
    if not has("nul-drops-connection") and re.search(rb"[\x00-\x1f\x7f]", raw):
        raise HttpError(400, "control byte in the path")
    return path, os.fsdecode(raw)


def confine(root: str, decoded: str) -> str:
    """The file system path for a decoded URL path, or HttpError(404) if it escapes."""
    relative = decoded.lstrip("/")
    if has("traversal"):
        return os.path.join(root, relative)
    if has("follows-symlinks"):
        full = os.path.normpath(os.path.join(root, relative))
    else:
        full = os.path.realpath(os.path.join(root, relative))
    if full != root and not full.startswith(root + os.sep):
        raise HttpError(404, "outside the document root")
    return full


def format_head(version: str, status: int, headers: list[tuple[str, str]]) -> bytes:
    eol = "\n" if has("lf-line-ends") else "\r\n"
    lines = [f"{version} {status} {REASONS.get(status, 'Unknown')}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return (eol.join(lines) + eol + eol).encode("latin-1")


def base_headers() -> list[tuple[str, str]]:
    headers = [("Server", SERVER_NAME)]
    if not has("no-date"):
        headers.insert(0, ("Date", http_date(time.time())))
    return headers


def error_reply(status: int, detail: str) -> Reply:
    title = f"{status} {REASONS.get(status, 'Error')}"
    body = b"" if has("empty-error-body") else (
        f"<html><head><title>{title}</title></head>\n"
        f"<body><h1>{title}</h1>\n<p>{detail}</p></body></html>\n").encode()
    headers = base_headers()
    if not has("no-content-type"):
        headers.append(("Content-Type", "text/html"))
    headers.append(("Content-Length", str(len(body))))
    return Reply(status, headers, body, length=len(body))


def redirect_reply(location: str) -> Reply:
    body = (f'<html><body><p>Moved to <a href="{location}">{location}</a>.</p>'
            f"</body></html>\n").encode("latin-1")
    headers = base_headers() + [("Location", location)]
    if not has("no-content-type"):
        headers.append(("Content-Type", "text/html"))
    headers.append(("Content-Length", str(len(body))))
    return Reply(301, headers, body, length=len(body))


# --------------------------------------------------------------------------
# Routing: a parsed request to a Reply. Touches the file system, not sockets.
# --------------------------------------------------------------------------

class Context(NamedTuple):
    root: str          # realpath of the document root
    port: int


def route(request: Request, ctx: Context) -> Reply:
    method = request.method.upper() if has("lowercase-methods") else request.method
    handler = METHODS.get(method)
    if handler is None and has("any-method-as-get"):
        handler = get_file
    if handler is None:
        return error_reply(501, f"the method {method} is not implemented")
    try:
        return handler(request, ctx)
    except HttpError as err:
        return error_reply(err.status, err.detail)


def get_file(request: Request, ctx: Context) -> Reply:
    path, decoded = request_path(request.target)
    full = confine(ctx.root, decoded)
    if has("no-index"):
        return file_reply(request, full)        # a directory raises IsADirectoryError
    if os.path.isdir(full):
        if not path.endswith("/"):
            host = request.headers.get("host", "")
            if not HOST.match(host):            # never reflect arbitrary bytes into Location
                host = f"127.0.0.1:{ctx.port}"
            return redirect_reply(f"http://{host}{path}/")
        index = os.path.join(full, "index.html")
        if not os.path.isfile(index):
            raise HttpError(403, "directory listing is not allowed")
        return file_reply(request, index)
    if path.endswith("/") or not os.path.isfile(full):
        if has("no-404"):
            return Reply(200, base_headers() + [("Content-Length", "0")])
        if has("status-500-for-missing"):
            raise HttpError(500, "[Errno 2] No such file or directory")
        raise HttpError(404, "no such file")
    return file_reply(request, full)


def file_reply(request: Request, full: str) -> Reply:
    try:
        f = open(full, "rb")
    except PermissionError:
        raise HttpError(403, "the file is not readable") from None
    except FileNotFoundError:
        raise HttpError(404, "no such file") from None
    st = os.fstat(f.fileno())
    now = time.time()
    modified = min(st.st_mtime, now)            # never later than Date (R-10.10-a)
    last_modified = http_date(modified)
    headers = base_headers() + [("Last-Modified", last_modified)]
    if request.method == "GET" and not_modified(request, int(modified), last_modified, now):
        if not has("body-on-304"):
            f.close()
            return Reply(304, headers)
        return Reply(304, headers, file=f, length=st.st_size)
    body = b""
    length = st.st_size
    if has("text-mode"):
        f.close()
        with open(full, encoding="utf-8", errors="replace") as text:
            body = text.read().encode("utf-8")
        f, length = None, len(body)
    if not has("no-content-type"):
        headers.append(("Content-Type", mimetypes.guess_type(full)[0] or "application/octet-stream"))
    declared = length + 1 if has("wrong-content-length") else length
    headers.append(("Content-Length", str(declared)))
    return Reply(200, headers, body, file=f, length=length)


def not_modified(request: Request, mtime: int, last_modified: str, now: float) -> bool:
    name = "If-Modified-Since" if has("case-sensitive-headers") else "if-modified-since"
    value = request.headers.get(name)
    if value is None or has("ignores-if-modified-since"):
        return False
    if has("ims-exact-string"):
        return value.strip() == last_modified
    since = parse_http_date(value)
    # An unparseable date, or one in the future, is invalid: a normal GET (R-10.9-b).
    return since is not None and since <= now + 1 and mtime <= since


def post(request: Request, ctx: Context) -> Reply:
    if "content-length" not in request.headers and not has("post-reads-to-eof"):
        raise HttpError(400, "a POST needs a Content-Length")
    if not request.headers.get("content-length", "0").strip().isdigit():
        raise HttpError(400, "Content-Length must be a number")
    # The body, if any, is drained by the lingering close.
    raise HttpError(501, "this server only serves files")


METHODS = {"GET": get_file, "HEAD": get_file, "POST": post}


# --------------------------------------------------------------------------
# Socket code. Runs in the connection's own thread (or, with the
# sequential defect, in the main thread).
# --------------------------------------------------------------------------

def read_request(conn: socket.socket, buf: bytes = b"") -> bytes | None:
    """Read until the request ends; None when the client sent nothing at all.

    Raises:
        HttpError: 414/431 for an oversized request, 400 for one cut by EOF.
        socket.timeout: when the client stalls for READ_TIMEOUT.
    """
    if has("single-recv"):
        return buf + conn.recv(4096) or None
    while True:
        end = request_end(buf)
        if end is not None:
            return buf[:end]
        if b"\n" not in buf and len(buf) > MAX_REQUEST_LINE:
            raise HttpError(414, "the request line is too long")
        if len(buf) > MAX_REQUEST_HEAD:
            raise HttpError(431, "the request header block is too long")
        chunk = conn.recv(4096)
        if not chunk:
            break
        buf += chunk
    if not buf.strip():
        return None
    if len(buf.split(b"\n")[0].split()) == 3:   # a Full-Request cut short by EOF
        raise HttpError(400, "the request ended before its empty line")
    return buf                                  # a Simple-Request ended by a half-close


def read_until_eof(conn: socket.socket, seconds: float) -> None:
    """Swallow input until the client closes or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    conn.settimeout(1.0)
    while time.monotonic() < deadline:
        try:
            if not conn.recv(65536):
                return
        except socket.timeout:
            continue


def send_reply(conn: socket.socket, reply: Reply, request: Request | None) -> None:
    simple = request is not None and request.version is None and not has("http09-full-response")
    if not simple and not has("no-status-line"):
        version = request.version if has("http-version-echo") and request and request.version else "HTTP/1.0"
        conn.sendall(format_head(version, reply.status, reply.headers))
    head_only = request is not None and request.method == "HEAD" and not has("head-sends-body")
    if head_only:
        if reply.file:
            reply.file.close()
        return
    if reply.body:
        conn.sendall(reply.body)
    if reply.file:
        with reply.file:
            send_file(conn, reply.file)


def send_file(conn: socket.socket, f: BinaryIO) -> None:
    if has("truncate-large"):
        conn.send(f.read(CHUNK))
        return
    while True:
        data = f.read(CHUNK)
        if not data:
            return
        if has("dies-on-disconnect"):
            try:
                conn.send(data)
            except OSError:
                pass        # "the client will notice"; the next send raises SIGPIPE
            continue
        conn.sendall(data)


def linger_close(conn: socket.socket) -> None:
    """Close after the response without a RST wiping it out (R-9.4-c).

    Closing a socket with unread input makes the kernel send RST, which can
    destroy response bytes the client has not read yet. So: send FIN first,
    then drain what the client still sends, for a bounded time.
    """
    try:
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(0.5)
        deadline = time.monotonic() + LINGER_SECONDS
        drained = 0
        while time.monotonic() < deadline and drained < LINGER_BYTES:
            data = conn.recv(65536)
            if not data:
                break
            drained += len(data)
    except OSError:
        pass
    finally:
        conn.close()


def serve_connection(conn: socket.socket, ctx: Context, prefix: bytes = b"") -> None:
    """Read one request, answer it, close. Never raises for a client's fault."""
    conn.settimeout(READ_TIMEOUT)
    request = None
    try:
        try:
            head = read_request(conn, prefix)
            if head is None:
                return
            if has("never-answers"):
                read_until_eof(conn, HOLD_SECONDS)
                return
            if has("answers-once") and not FIRST_ONLY.acquire(blocking=False):
                read_until_eof(conn, HOLD_SECONDS)
                return
            request = parse_request(head)
            if has("post-reads-to-eof") and request.method == "POST":
                while conn.recv(65536):     # "the body ends when the client is done"
                    pass
            reply = route(request, ctx)
        except HttpError as err:
            reply = error_reply(err.status, err.detail)
        send_reply(conn, reply, request)
        if has("no-close"):
            read_until_eof(conn, HOLD_SECONDS)
    except (OSError, ValueError):
        # A stalled client (socket.timeout), a client gone mid-response, or,
        # with the no-index and nul-drops-connection defects, the error that
        # would end the student's thread: nothing more can be said to it.
        pass
    finally:
        if has("leaks-descriptors"):
            pass                        # the mistake: the socket is kept and never closed
        elif has("close-with-unread-input"):
            conn.close()
        else:
            linger_close(conn)


# --------------------------------------------------------------------------
# Main thread: the accept loop.
# --------------------------------------------------------------------------

def read_first_line(conn: socket.socket) -> bytes:
    """Byte by byte up to the first LF (only the crash defect reads here)."""
    line = b""
    while not line.endswith(b"\n") and len(line) < MAX_REQUEST_LINE:
        byte = conn.recv(1)
        if not byte:
            break
        line += byte
    return line


# With the leaks-descriptors defect: every client socket ever accepted, so that
# the garbage collector cannot close them either (as a C server that forgets close()).
LEAKED: list[socket.socket] = []

# With the answers-once defect: taken by the first handler and never given back.
FIRST_ONLY = threading.Lock()

SMALL_POOL = 3                  # worker threads of the small-pool defect


def pool_worker(jobs, ctx: Context) -> None:
    while True:
        serve_connection(jobs.get(), ctx)


def accept_loop(listener: socket.socket, ctx: Context) -> None:
    slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
    jobs = None
    if has("small-pool"):
        import queue
        jobs = queue.Queue()
        for _ in range(SMALL_POOL):
            threading.Thread(target=pool_worker, args=(jobs, ctx), daemon=True).start()
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:                 # EMFILE and friends: back off, keep serving
            time.sleep(0.05)
            continue
        if has("leaks-descriptors"):
            LEAKED.append(conn)
        if has("sequential"):
            serve_connection(conn, ctx)
            continue
        if jobs is not None:
            jobs.put(conn)
            continue
        prefix = b""
        if has("crash-on-bad-request-line") or has("crash-on-empty-request"):
            conn.settimeout(READ_TIMEOUT)
            try:
                prefix = read_first_line(conn)
            except OSError:
                conn.close()
                continue
            if not prefix and has("crash-on-empty-request"):
                method = prefix.split()[0]      # noqa: F841 (the mistake: IndexError)
            if not prefix:              # the client left without a word
                conn.close()
                continue
            if has("crash-on-bad-request-line"):
                method, path, version = prefix.decode().split()   # noqa: F841 (the mistake)
        if not slots.acquire(blocking=False):
            threading.Thread(target=refuse, args=(conn,), daemon=True).start()
            continue
        threading.Thread(target=run_connection, args=(conn, ctx, prefix, slots),
                         daemon=True).start()


def run_connection(conn: socket.socket, ctx: Context, prefix: bytes,
                   slots: threading.BoundedSemaphore) -> None:
    try:
        serve_connection(conn, ctx, prefix)
    finally:
        slots.release()


def refuse(conn: socket.socket) -> None:
    """Past MAX_CONNECTIONS: a short 503 instead of another thread's worth of work."""
    conn.settimeout(READ_TIMEOUT)
    try:
        reply = error_reply(503, "too many connections")
        conn.sendall(format_head("HTTP/1.0", 503, reply.headers) + reply.body)
    except OSError:
        pass
    linger_close(conn)


def main(argv: list[str] | None = None) -> int:
    global ACTIVE
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int, help="TCP port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--root", default=".", help="document root (default: the current folder)")
    parser.add_argument("--defect", action="append", default=[], choices=sorted(DEFECTS),
                        metavar="NAME", help="switch on one mistake (repeatable): "
                        + ", ".join(sorted(DEFECTS)))
    args = parser.parse_args(argv)
    ACTIVE = frozenset(args.defect)

    time.strptime("2000", "%Y")     # import _strptime now: its first import is not thread-safe
    mimetypes.init()
    if has("dies-on-disconnect"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if has("leaks-descriptors"):
        import resource
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        # As `ulimit -n 128`; the tests set a lower limit to run out sooner.
        limit = int(os.environ.get("STUDENT_SERVER_NOFILE", "128"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    root = os.path.realpath(args.root)
    if not os.path.isdir(root):
        parser.error(f"--root {args.root!r} is not a folder")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(128)
    port = listener.getsockname()[1]
    print(f"listening on 127.0.0.1:{port}", flush=True)
    try:
        accept_loop(listener, Context(root, port))
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
