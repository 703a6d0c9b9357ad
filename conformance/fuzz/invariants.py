"""The invariants every fuzz example is checked against: bytes and values in, violations out.

An invariant looks at one example and what came back on its connection (an
``Observation``), at the canary probe that follows it, or at what the spawned
server printed meanwhile. None of them touches a socket: the engine plays the
bytes and hands the observations over.

``KINDS`` is the table of invariants. Each entry is also what a written case
needs: a title, the requirement ids it guesses from the invariant broken, the
level, and a hint. Tests iterate over it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model import Observation
from ..parse import Response, header_values, parse_response
from .strategies import Example, is_simple_request

__all__ = ["Kind", "KINDS", "Violation", "check_exchange", "check_canary", "check_output", "TRACEBACK"]


@dataclass(frozen=True)
class Kind:
    """One invariant: what it means, and how a finding of it becomes a case."""

    summary: str  # the invariant, stated as a fact a correct server makes true
    title: str  # case title, with {what} for the request's one-line description
    requirements: tuple[str, ...]
    level: str
    hint: str


KINDS: dict[str, Kind] = {
    "hang": Kind(
        "a complete or half-closed request gets a response or a close within the timeout",
        "answers or closes within the timeout after {what}",
        ("ROB-6",), "MUST",
        "Read the request with a deadline; on EOF or a malformed head answer 400 (or close) at once."),
    "no-close": Kind(
        "after its response to an HTTP/1.0 request (or a half-closed one) the server closes",
        "closes the connection after answering {what}",
        ("R-1.3-a",), "MUST",
        "HTTP/1.0 has one request per connection: close the socket after the response."),
    "dropped": Kind(
        "a valid HTTP/1.0 request gets a Full-Response, not a silent close",
        "answers {what} with a status line",
        ("R-6-a", "R-8.1-a"), "MUST",
        "Every well-formed request gets a status line; catch the error and answer 4xx or 5xx."),
    "garbage": Kind(
        "whatever comes back parses as an HTTP response (a Simple-Response only for a 0.9 request)",
        "answers {what} with a parsable response or a close",
        ("R-6.1-a", "R-6-a"), "MUST",
        "Send 'HTTP/1.0 NNN Reason' CRLF, the headers, an empty line, then the body."),
    "framing": Kind(
        "a valid request gets a response whose framing is right: CRLF lines, "
        "Content-Length equal to the body bytes, no body to HEAD",
        "frames the response to {what} correctly",
        ("R-7.2.2-a", "R-2.2-a", "R-8.2-a"), "MUST",
        "Content-Length is the size of the bytes that follow the empty line; HEAD gets none."),
    "secret": Kind(
        "no response carries a byte of the file outside the document root",
        "sends no byte from outside the root for {what}",
        ("R-12.5-b", "ROB-4"), "MUST",
        "Decode, normalise and resolve the path (realpath), then check it is inside the root."),
    "canary": Kind(
        "after the example the server still answers a plain GET of the canary",
        "still serves after {what}",
        ("ROB-6", "R-1.3-b"), "MUST",
        "Never let one connection's input stop the process: catch errors per connection, "
        "ignore SIGPIPE."),
    "traceback": Kind(
        "the spawned server prints no traceback",
        "answers {what} without an unhandled exception",
        ("ROB-6",), "MUST",
        "An exception in a handler is a bug: catch it and answer 400 or 500."),
}

# What a Python server prints when an exception is not caught (main or thread).
TRACEBACK = b"Traceback (most recent call last)"

# Statuses that never carry a body (RFC 1945 §7.2: 1xx, 204, 304).
_NO_BODY = (204, 304)


@dataclass(frozen=True)
class Violation:
    kind: str  # a key of KINDS
    detail: str  # what happened, one sentence


def _ends_open(obs: Observation) -> bool:
    return obs.end == "timeout"


def _must_finish(example: Example) -> bool:
    """Whether the server knows the request is over and owes an answer or a close."""
    return example.read is None and (example.half_close or example.valid)


def check_exchange(example: Example, obs: Observation, secret: bytes = b"") -> list[Violation]:
    """Check one example's own connection.

    Args:
        example: what was sent and how.
        obs: what came back (``received`` is capped by the engine).
        secret: the bytes of the file outside the root; b"" skips that check.

    Returns:
        The violations, most telling first; empty when every invariant holds.
    """
    out: list[Violation] = []
    data = obs.received
    if secret and secret in data:
        out.append(Violation("secret", f"the response holds the outside file's content ({len(secret)} bytes)"))
    response = parse_response(data)
    early = example.read is not None  # we hung up; what we saw is partial by design
    if _must_finish(example) and _ends_open(obs):
        if not data:
            out.append(Violation("hang", "no byte and no close before the deadline"))
        elif example.valid or _mentions_http10(example.data):
            out.append(Violation("no-close", f"{len(data)} bytes, then the connection stayed open"))
    full_request = example.request.version is not None  # a Simple-Response may be empty
    if example.valid and full_request and not data and obs.end in ("closed", "reset"):
        out.append(Violation("dropped", f"the connection was {obs.end} without a byte of response"))
    if data and not early:
        problem = _unparsable(example, obs, response)
        if problem:
            out.append(Violation("garbage", problem))
    if example.valid and full_request and response.kind == "full" and obs.end == "closed":
        problem = _framing(example, response)
        if problem:
            out.append(Violation("framing", problem))
    return out


def _mentions_http10(data: bytes) -> bool:
    """A request line that ends with HTTP/1.0: the server must close after answering."""
    words = data.lstrip(b"\r\n").split(b"\n", 1)[0].split()
    return bool(words) and words[-1] == b"HTTP/1.0"


def _unparsable(example: Example, obs: Observation, response: Response) -> str | None:
    if response.kind == "simple":
        if is_simple_request(example.data):
            return None
        return f"bytes without a status line: {response.body[:40]!r}"
    if response.kind == "full" and not response.complete_head and obs.end == "closed":
        return f"the header block ends without an empty line ({len(response.head)} bytes)"
    return None


def _framing(example: Example, response: Response) -> str | None:
    """Framing of a complete response to a valid request."""
    strict = [i for i in response.issues if "bare LF" in i or "status line" in i]
    if strict:
        return strict[0]
    head_request = example.request.method == b"HEAD"
    if head_request:
        if response.body:
            return f"a response to HEAD carries {len(response.body)} body bytes"
        return None
    if response.status in _NO_BODY or (response.status or 0) < 200:
        return None
    lengths = header_values(response, "content-length")
    if len(set(lengths)) > 1:
        return f"Content-Length appears with different values: {', '.join(lengths)}"
    if lengths:
        value = lengths[0]
        if not value.isdigit():
            return f"Content-Length is not a number: {value!r}"
        if int(value) != len(response.body):
            return f"Content-Length says {int(value)} but {len(response.body)} body bytes came before the close"
    return None


def check_canary(obs: Observation, canary: bytes, exit_status: int | None = None) -> Violation | None:
    """The probe after an example: the canary's content must come back.

    Args:
        obs: the last canary probe's observation.
        canary: the canary file's content.
        exit_status: the spawned server's exit status if it exited, else None.
    """
    if exit_status is not None:
        return Violation("canary", f"the server process exited with status {exit_status}")
    if canary in obs.received:
        return None
    got = f"{len(obs.received)} bytes without the canary" if obs.received else f"no answer ({obs.end})"
    return Violation("canary", f"the canary GET on a new connection got {got}")


def check_output(output: bytes) -> Violation | None:
    """What the spawned server printed while the example ran (stdout and stderr)."""
    at = output.find(TRACEBACK)
    if at < 0:
        return None
    # The exception line is the first line after the header that is not indented
    # (the frames are: "  File ...", then the source line).
    lines = output[at:].splitlines()[1:]
    message = next((line for line in lines if line and not line[:1].isspace()), b"")
    text = message.decode("utf-8", "replace").strip()[:120]
    return Violation("traceback", "the server printed a traceback" + (f": {text}" if text else ""))
