"""Differential classification: the same bytes to two servers, and how the answers differ.

Like http-garden's comparison of servers (learned from, not copied), a
disagreement is put in the first class that fits, in this order:

``no-response``
    one server sent a response, the other closed (or kept the connection) without
    a byte.
``accept-reject``
    one accepted (2xx or 3xx, or a Simple-Response) and the other rejected (4xx,
    5xx).
``status-class``
    both rejected, or both accepted, with different first digits (4xx and 5xx).
``framing``
    both accepted with the same status class, but the responses are framed
    differently: one is a Simple-Response and the other a Full-Response, or one
    Content-Length disagrees with its body.
``body``
    both answered 200 and the bodies differ.

Differences that are choices RFC 1945 leaves open, and that are documented (the
list at the top of reference/server.py, and cases/KNOWN-DIVERGENCES.md), are
``KNOWN``: counted, never findings. Pure functions only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from ..model import Observation
from ..parse import Response, header_values, parse_response
from .strategies import Example, is_simple_request

__all__ = ["CLASSES", "KNOWN", "Answer", "Disagreement", "answer_of", "classify"]

CLASSES = {
    "no-response": "one server answered, the other closed or kept the connection without a byte",
    "accept-reject": "one server accepted the request (2xx, 3xx or a Simple-Response), the other rejected it (4xx, 5xx)",
    "status-class": "both answered with a status, with different first digits",
    "framing": "the same status class, framed differently (Simple- or Full-Response, Content-Length against the body)",
    "body": "both answered 200 with different bodies",
}


@dataclass(frozen=True)
class Answer:
    """What one server did with the bytes, reduced to what the classes compare."""

    kind: str  # "full", "simple", "none"
    status: int | None
    body: bytes
    framed: bool  # Content-Length absent or equal to the body, head complete
    end: str

    @property
    def accepted(self) -> bool:
        return self.kind == "simple" or (self.status is not None and self.status < 400)

    @property
    def status_class(self) -> int | None:
        return None if self.status is None else self.status // 100


def answer_of(obs: Observation) -> Answer:
    """Reduce an observation to an ``Answer``."""
    response = parse_response(obs.received)
    return Answer(response.kind, response.status, response.body, _framed(response, obs), obs.end)


def _framed(response: Response, obs: Observation) -> bool:
    if response.kind != "full":
        return response.kind == "simple"
    if not response.complete_head:
        return obs.end == "limit"
    lengths = header_values(response, "content-length")
    if not lengths or obs.end != "closed" or response.status in (204, 304):
        return True
    return lengths[0].isdigit() and int(lengths[0]) == len(response.body)


@dataclass(frozen=True)
class Disagreement:
    cls: str  # a key of CLASSES
    detail: str
    known: str = ""  # the KNOWN rule that explains it, "" for a finding


def _show(answer: Answer) -> str:
    if answer.kind == "none":
        return f"no response ({answer.end})"
    if answer.kind == "simple":
        return f"a Simple-Response of {len(answer.body)} bytes"
    return f"{answer.status}"


def classify(example: Example, a: Answer, b: Answer) -> Disagreement | None:
    """The class of the disagreement between the target (a) and the other server (b).

    Returns:
        None when they agree; else the first class that fits, with ``known`` set
        when a documented choice explains it.
    """
    if example.read is not None:
        return None  # the client left mid-response: each side's bytes stop anywhere
    cls = _class(a, b)
    if cls is None:
        return None
    detail = f"target: {_show(a)}; other: {_show(b)}"
    for name, (_, rule) in KNOWN.items():
        if rule(example, a, b, cls):
            return Disagreement(cls, detail, name)
    return Disagreement(cls, detail)


def _class(a: Answer, b: Answer) -> str | None:
    if (a.kind == "none") != (b.kind == "none"):
        return "no-response"
    if a.kind == "none":
        return None
    if a.accepted != b.accepted:
        return "accept-reject"
    if a.kind == "full" and b.kind == "full" and a.status_class != b.status_class:
        return "status-class"
    if a.kind != b.kind or a.framed != b.framed:
        return "framing"
    if a.status == 200 and b.status == 200 and a.body != b.body:
        return "body"
    return None


# -- documented choices -----------------------------------------------------------------


def _line(example: Example) -> list[bytes]:
    return example.data.lstrip(b"\r\n").split(b"\n", 1)[0].rstrip(b"\r").split()


def _target(example: Example) -> bytes:
    words = _line(example)
    return words[1] if len(words) > 1 else b""


def _version(example: Example) -> bytes:
    words = _line(example)
    return words[2] if len(words) > 2 else b""


def _one_rejects_with(statuses: tuple[int, ...]) -> Callable:
    def rule(example, a, b, cls):
        return cls in ("status-class", "accept-reject", "no-response") and (
            a.status in statuses or b.status in statuses)
    return rule


_STRICT_VERSION = re.compile(rb"HTTP/[0-9]+\.[0-9]+\Z")


def _version_spelling(example, a, b, cls):
    # reference/server.py: "HTTP/01.00 is 1.0 (leading zeros ignored); http/1.0 is
    # accepted". Others reject those spellings, or a version they do not know.
    version = _version(example)
    return cls in ("accept-reject", "status-class", "no-response") and bool(version) and (
        version != b"HTTP/1.0" and version.upper().startswith(b"HTTP/"))


def _simple_request(example, a, b, cls):
    # A request without a version is an HTTP/0.9 Simple-Request: the reference
    # answers with the body only (RFC 1945 §4.1), many servers refuse 0.9.
    return is_simple_request(example.data)


def _lab_form(example, a, b, cls):
    # cases/KNOWN-DIVERGENCES.md "Lab-only": `GET file.txt HTTP/1.0` is served by the
    # reference, refused with 400 by RFC-strict servers.
    target = _target(example)
    return cls in ("accept-reject", "status-class") and bool(target) and not target.startswith(b"/") and not target.lower().startswith(b"http://")


def _absolute_uri(example, a, b, cls):
    # reference/server.py: an http:// absoluteURI is served by its path, any other
    # scheme is 400; servers differ in whether the host must match.
    return b"://" in _target(example)


def _header_syntax(example, a, b, cls):
    # reference/server.py: a header line without a colon, with whitespace before the
    # colon, or with a name that is not a token, is 400; nginx and others ignore it.
    head = example.data.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\n")[1:]:
        line = line.rstrip(b"\r")
        name, colon, _ = line.partition(b":")
        if not line:
            continue
        if line[:1] in (b" ", b"\t") or not colon or not re.fullmatch(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", name):
            return cls in ("accept-reject", "status-class", "no-response")
    return False


def _refused_paths(example, a, b, cls):
    # reference/server.py: "..", a backslash, a dot file and a symlink out of the root
    # get 403 there; others answer 404, 400 or follow the symlink (a hardening SHOULD).
    target = _target(example).lower()
    return cls in ("accept-reject", "status-class", "body") and any(
        mark in target for mark in (b"..", b"%2e", b"\\", b"%5c", b"/.", b"link.txt", b"%c0%ae"))


def _control_bytes(example, a, b, cls):
    # cases/KNOWN-DIVERGENCES.md (encoded-nul, nul-in-header, nul-in-request-line):
    # NUL and other control bytes get 400 at the reference; servers differ between
    # 400, 404 and closing the connection.
    line = example.data.split(b"\r\n\r\n", 1)[0]
    return bool(re.search(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|%00|%0[aAdD]", line))


def _limits(example, a, b, cls):
    # reference/server.py: 414 past 8 KiB of request line, 431 past 64 KiB or 100
    # header fields, 413 past 1 MiB of body; nginx and lighttpd choose other limits.
    return len(example.data) > 4096


def _methods(example, a, b, cls):
    # reference/server.py: POST is read and refused with 501 and an unknown method is
    # 501; static servers answer 405, 400 or 403. RFC 1945 §5.1.1 allows all.
    words = _line(example)
    return bool(words) and words[0] not in (b"GET", b"HEAD") and cls in ("status-class", "accept-reject", "no-response")


def _bare_lf_or_spacing(example, a, b, cls):
    # reference/server.py parses a bare LF as a line end (RFC 1945 §B tolerance) and
    # splits the request line on runs of spaces or tabs; strict servers refuse both.
    line = example.data.lstrip(b"\r\n").split(b"\n", 1)[0]
    return not line.endswith(b"\r") or b"  " in line or b"\t" in line or line[:1] in (b" ", b"\t")


def _body_framing(example, a, b, cls):
    # cases/requirements.toml ROB-13 (SHOULD): conflicting lengths and
    # Transfer-Encoding in a 1.0 request; a body the headers do not announce is left
    # unread. Servers differ between 400, 411, 413 and answering the head.
    head, _, body = example.data.partition(b"\r\n\r\n")
    lower = head.lower()
    return b"content-length" in lower or b"transfer-encoding" in lower or bool(body)


def _folders(example, a, b, cls):
    # reference/server.py: a folder without a slash is redirected (301) and one
    # without index.html is 403; listings and redirect bodies differ by design.
    target = _target(example).split(b"?", 1)[0].split(b"#", 1)[0]
    return target.endswith(b"/") or target in (b"/dir", b"*") or b"/dir" in target and cls == "body"


def _close_on_bad_input(example, a, b, cls):
    # cases/requirements.toml ROB-6: malformed or incomplete input gets "a response or
    # a close within the timeout"; the reference answers 400, nginx and others close.
    silent = a if a.kind == "none" else b
    return cls == "no-response" and not example.valid and silent.end in ("closed", "reset")


def _error_pages(example, a, b, cls):
    # Error pages and redirect bodies are each server's own text.
    return cls == "body" and (a.status != 200 or b.status != 200)


# name -> (where it is documented, rule(example, a, b, class) -> bool). The first rule
# that holds names the choice; the report counts each.
KNOWN: dict[str, tuple[str, Callable]] = {
    "version-505": ("reference/server.py: a major version other than 1 gets 505", _one_rejects_with((505,))),
    "limits-414-431-413": ("reference/server.py: 414, 431 and 413 over the limits", _one_rejects_with((413, 414, 431))),
    "version-spelling": ("reference/server.py: HTTP/01.00 is 1.0, http/1.0 accepted", _version_spelling),
    "http09": ("RFC 1945 §4.1 Simple-Request; reference answers 0.9", _simple_request),
    "lab-form": ("cases/KNOWN-DIVERGENCES.md, Lab-only", _lab_form),
    "absolute-uri": ("reference/server.py: http:// served by its path", _absolute_uri),
    "header-syntax": ("reference/server.py: a header line without a colon is 400", _header_syntax),
    "refused-paths": ("reference/server.py: 403 for .., backslash, dot files, symlinks out", _refused_paths),
    "control-bytes": ("cases/KNOWN-DIVERGENCES.md: encoded-nul, nul-in-*", _control_bytes),
    "long-request": ("reference/server.py: limits of request line and headers", _limits),
    "methods": ("reference/server.py: 501 for POST and unknown methods", _methods),
    "line-ends-and-spacing": ("reference/server.py: bare LF ends a line; runs of SP/HT split", _bare_lf_or_spacing),
    "body-framing": ("cases/requirements.toml ROB-13 (SHOULD)", _body_framing),
    "folders": ("reference/server.py: 301 to the slash, 403 without index.html", _folders),
    "close-on-bad-input": ("cases/requirements.toml ROB-6: a response or a close", _close_on_bad_input),
    "error-pages": ("error and redirect bodies are each server's own", _error_pages),
}
