"""Parse the bytes a server sent back into a ``Response``: bytes in, a value out.

No sockets and no exceptions: the runner reads until EOF (or a limit) and hands the
bytes over whole, so "need more data" never arises here; a response cut short is
parsed as far as it goes and says so in ``complete_head`` and ``issues``. Whatever
the bytes, ``parse_response`` returns a value, because a broken server is exactly
what the runner exists to describe.

The grammar, from RFC 1945 §4.1, §4.2 and §6.1::

    Full-Response   = Status-Line *( General-Header | Response-Header
                      | Entity-Header ) CRLF [ Entity-Body ]
    Simple-Response = [ Entity-Body ]
    Status-Line     = HTTP-Version SP Status-Code SP Reason-Phrase CRLF
    HTTP-Version    = "HTTP" "/" 1*DIGIT "." 1*DIGIT
    Status-Code     = 3DIGIT
    Reason-Phrase   = *<TEXT, excluding CR, LF>
    HTTP-header     = field-name ":" [ field-value ] CRLF
    field-name      = token

Where this parser accepts more than that grammar it still records an issue, so the
``framing`` matcher can be strict while the other matchers still see the values:

- a bare LF ends a line (RFC 1945 §B tolerant applications; every client does it);
- a header line that starts with SP or HT continues the previous value (§2.2 folding
  is legal in HTTP/1.0, but R-2.2-c asks senders not to generate it);
- whitespace before the colon is dropped from the name;
- the version's digits are read as integers, leading zeros included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Response", "parse_response", "header_values", "request_method", "framed_length"]

# R-6.1-b: a Full-Response begins with "HTTP/" 1*DIGIT "." 1*DIGIT SP 3DIGIT; anything
# else with at least one byte is a Simple-Response. Bytes, so \d is ASCII digits only.
_FULL_PREFIX = re.compile(rb"HTTP/(\d+)\.(\d+) (\d{3})")

# The whole Status-Line; TEXT excludes control characters other than HT (§2.2).
_STATUS_LINE = re.compile(rb"HTTP/\d+\.\d+ \d{3} [^\x00-\x08\x0a-\x1f\x7f]*")

# field-name = token: any CHAR except CTLs and tspecials (§2.2).
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

# The first empty line: LF followed by LF or CR LF. The status line starts with
# "HTTP/", so the search can never stop at it.
_HEAD_END = re.compile(rb"\n\r?\n")

# The issue a head without its empty line gets; the matcher forgives it when the
# runner itself stopped reading early.
TRUNCATED_HEAD = "the header block ends without an empty line (truncated head)"

# Bounds the per-line Python work on a hostile head; a real server sends dozens.
MAX_HEADER_LINES = 10_000


@dataclass(frozen=True)
class Response:
    """A server's answer as parsed from the bytes received.

    ``kind`` is "full" (it begins with a status line prefix, R-6.1-b), "simple" (at
    least one byte and no such prefix: an HTTP/0.9 Simple-Response) or "none" (no
    byte). For "full", ``head`` is everything up to and including the empty line
    that ends the header block (or all the bytes when there is none) and ``body``
    the rest, so ``head + body`` is the input; for "simple" the body is every byte.
    ``complete_head`` is True only when that empty line was seen, so always False
    for "simple" and "none". ``issues`` lists departures from the grammar, in the
    order found, each a short phrase for a report.
    """

    kind: str
    version_text: str = ""  # "HTTP/1.1" as sent, leading zeros kept
    version: tuple[int, int] | None = None
    status: int | None = None
    reason: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    head: bytes = b""
    body: bytes = b""
    complete_head: bool = False
    issues: tuple[str, ...] = ()

    @property
    def status_line(self) -> str:
        """The status line as parsed ("HTTP/1.1 404 Not Found"); "" if not full."""
        if self.kind != "full":
            return ""
        return f"{self.version_text} {self.status:03d} {self.reason}".rstrip()


def parse_response(data: bytes) -> Response:
    """Parse the bytes received on a connection.

    Args:
        data: every byte the server sent, possibly cut short.

    Returns:
        The ``Response``; never raises, whatever the bytes.
    """
    data = bytes(data)
    if not data:
        return Response(kind="none")
    prefix = _FULL_PREFIX.match(data)
    if prefix is None:
        return Response(kind="simple", body=data)
    return _parse_full(data, prefix)


def _parse_full(data: bytes, prefix: re.Match[bytes]) -> Response:
    """Split a Full-Response into status line, headers and body."""
    issues: list[str] = []
    end = _HEAD_END.search(data)
    if end is None:
        head, body, complete = data, b"", False
    else:
        head, body, complete = data[: end.end()], data[end.end() :], True
    lines, cut = _split_lines(head, complete, issues)
    # A line cut off by the end of the bytes is unfinished, not malformed: the status
    # line still gives its reason, a header line is left out (its value may go on).
    reason = _check_status_line(lines[0], prefix, issues, checked=len(lines) > 1 or not cut)
    headers = _parse_headers(lines[1:-1] if cut else lines[1:], issues)
    if not complete:
        issues.append(TRUNCATED_HEAD)
    major, minor, status = prefix.groups()
    return Response(
        kind="full",
        version_text="HTTP/%s.%s" % (major.decode("ascii"), minor.decode("ascii")),
        version=(int(major), int(minor)),
        status=int(status),
        reason=reason,
        headers=headers,
        head=head,
        body=body,
        complete_head=complete,
        issues=tuple(issues),
    )


def _split_lines(head: bytes, complete: bool, issues: list[str]) -> tuple[list[bytes], bool]:
    """Cut the head into lines without their ends, noting each bare LF.

    The final empty line is dropped when ``complete``; a last line without any end
    (a truncated head) is kept, and the second value tells whether there is one.
    There is always a line: the status line. At most ``MAX_HEADER_LINES`` lines are
    cut, so a hostile head costs bounded work.
    """
    raw = head.split(b"\n", MAX_HEADER_LINES + 1)
    too_many = len(raw) > MAX_HEADER_LINES + 1
    if too_many:
        # Every kept line had its LF; the remainder (with the empty line) is dropped.
        raw = raw[: MAX_HEADER_LINES + 1]
        complete, cut = False, False
    else:
        cut = raw[-1] != b""
        if not cut:
            raw.pop()  # split() leaves "" after a final LF
    blank = raw.pop() if complete else b"\r"  # the empty line that ends the head
    lines: list[bytes] = []
    for number, line in enumerate(raw):
        if line.endswith(b"\r"):
            line = line[:-1]
        elif not (cut and number == len(raw) - 1):  # a cut line has no end at all
            issues.append(f"{_line_name(number)} ends with a bare LF")
        lines.append(line)
    if blank != b"\r":
        issues.append("the empty line after the headers is a bare LF")
    if too_many:
        issues.append(f"more than {MAX_HEADER_LINES} header lines; the rest not parsed")
    return lines, cut


def _line_name(number: int) -> str:
    """Name a line of the head for a report: 0 is the status line, then headers."""
    return "the status line" if number == 0 else f"header line {number}"


def _check_status_line(
    line: bytes, prefix: re.Match[bytes], issues: list[str], checked: bool
) -> str:
    """Check the Status-Line against its grammar; return the Reason-Phrase.

    ``checked`` is False for a status line cut short, whose grammar is unknown.
    """
    if checked and not _STATUS_LINE.fullmatch(line):
        issues.append(
            "the status line %s does not match HTTP/<digits>.<digits> SP 3DIGIT SP reason"
            % _show(line)
        )
    major, minor = prefix.group(1), prefix.group(2)
    if (len(major) > 1 and major.startswith(b"0")) or (
        len(minor) > 1 and minor.startswith(b"0")
    ):
        # R-3.1-e: senders should never generate leading zeros.
        issues.append(
            "leading zeros in the version HTTP/%s.%s"
            % (major.decode("ascii"), minor.decode("ascii"))
        )
    # Reason-Phrase: after "HTTP/x.y NNN" and one SP; a missing SP leaves it empty.
    rest = line[prefix.end() :]
    reason = rest[1:] if rest.startswith(b" ") else b""
    return reason.decode("latin-1").strip()


def _parse_headers(lines: list[bytes], issues: list[str]) -> tuple[tuple[str, str], ...]:
    """Parse header lines into (name, value) pairs, unfolding continuation lines."""
    headers: list[list[str]] = []
    for number, line in enumerate(lines, start=1):
        if line[:1] in (b" ", b"\t"):
            issues.append(f"header line {number} starts with whitespace (folding)")
            if headers:  # §2.2: a fold is a single space inside the previous value
                headers[-1][1] = (headers[-1][1] + " " + _text(line)).strip()
            continue
        name, colon, value = line.partition(b":")
        if not colon:
            issues.append(f"header line {number} has no colon: {_show(line)}")
            continue
        if name != name.rstrip(b" \t"):
            issues.append(f"header line {number} has whitespace before the colon")
            name = name.rstrip(b" \t")
        if not _TOKEN.fullmatch(name):
            issues.append(f"header line {number} has a name that is not a token: {_show(name)}")
        headers.append([_text(name), _text(value)])
    return tuple((name, value) for name, value in headers)


def _text(raw: bytes) -> str:
    """Decode header text as ISO-8859-1 (R-2.2-d) and trim LWS around it."""
    return raw.decode("latin-1").strip(" \t\r\n")


def _show(raw: bytes, limit: int = 60) -> str:
    """Quote bytes safely for a message: escaped, and cut at ``limit`` bytes."""
    shown = repr(raw[:limit])[1:]
    return shown + ("..." if len(raw) > limit else "")


def header_values(response: Response, name: str) -> list[str]:
    """Every value of a header, in order; names compare without regard to case.

    Args:
        response: a parsed response (any kind; only "full" has headers).
        name: the header name, such as "content-length".

    Returns:
        The trimmed values, empty when the header is absent.
    """
    wanted = name.lower()
    return [value for key, value in response.headers if key.lower() == wanted]


def request_method(data: bytes) -> str:
    """The method of the request a connection sent: its first token.

    Leading CR and LF are skipped, as lenient servers skip them (RFC 7230 §3.5), so
    the runner judges HEAD the way such a server saw it.

    Args:
        data: the bytes the connection sent.

    Returns:
        The first token decoded as ISO-8859-1 ("GET", "HEAD", ...), "" if none.
    """
    first = bytes(data).lstrip(b"\r\n").split(None, 1)
    return first[0].decode("latin-1") if first else ""



# Statuses that never carry a body, whatever Content-Length says (RFC 1945 §7.2; 204
# and 304 by §9.2 and §9.3, 1xx by §9.1).
BODYLESS_STATUS = frozenset({204, 304})

_CONTENT_LENGTH = re.compile(rb"(?im)^content-length[ \t]*:[ \t]*([0-9]{1,18})[ \t]*\r?$")


def is_simple_response(data: bytes) -> bool:
    """Whether the first bytes of a response already rule out a status line (HTTP/0.9)."""
    return bool(data) and not b"HTTP/".startswith(bytes(data[:5]))


def framed_length(data: bytes, method: str) -> int | None:
    """How many bytes make the whole response, when its own framing says so.

    The runner reads until the server closes; this tells it when a response is
    already complete, so that a server which never closes costs a short grace
    instead of a whole timeout. Only framing that leaves no doubt counts: the head
    is complete, and either no body may follow (HEAD, 1xx, 204, 304) or there is
    exactly one Content-Length.

    Args:
        data: the bytes received so far.
        method: the request's method, as ``request_method`` gives it.

    Returns:
        The total length of head plus body, or None while it cannot be known (head
        not complete, no or conflicting Content-Length, a Simple-Response).
    """
    prefix = _FULL_PREFIX.match(data)
    if prefix is None:
        return None
    end = _HEAD_END.search(data)
    if end is None:
        return None
    head_length = end.end()
    status = int(prefix.group(3))
    if method == "HEAD" or 100 <= status < 200 or status in BODYLESS_STATUS:
        return head_length
    lengths = set(_CONTENT_LENGTH.findall(data[:head_length]))
    if len(lengths) != 1:
        return None
    return head_length + int(lengths.pop())
