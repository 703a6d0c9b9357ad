"""The values that flow through the runner: cases, observations and results.

Everything here is a frozen dataclass or a plain record that serialises to JSON.
The loader builds ``Case`` values from TOML files, ``wire`` turns a ``Connection``
script into an ``Observation``, ``match`` judges an observation against the
``Outcome`` list, and reporters consume ``Result`` records only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "LEVELS",
    "VERDICTS",
    "EVENTS",
    "Part",
    "HeaderExpect",
    "BodyExpect",
    "Outcome",
    "Connection",
    "Order",
    "Case",
    "Requirement",
    "Profile",
    "Observation",
    "Result",
]

# Requirement levels, strongest first.
LEVELS = ("MUST", "SHOULD", "MAY")

# Verdicts a case can earn, worst first; "error" means the case could not be run.
VERDICTS = ("error", "fail", "warn", "info", "pass", "skip")

# Events each connection of a case publishes, as "<connection>.<event>".
# "part-N" (1-based) is emitted after part N has been sent, timed when its last write began.
EVENTS = ("connected", "sent", "first_byte", "complete", "done", "wait_timeout", "interrupted")


@dataclass(frozen=True)
class Part:
    """One piece of the bytes a connection sends.

    ``data * repeat`` is sent after ``pause_ms``, and after every event glob in
    ``wait_for`` has happened. With ``chunk`` > 0 the bytes go out in writes of
    ``chunk`` bytes with ``chunk_pause_ms`` between them (one byte per packet is
    ``chunk = 1``).
    """

    data: bytes = b""
    repeat: int = 1
    pause_ms: int = 0
    chunk: int = 0
    chunk_pause_ms: int = 0
    wait_for: tuple[str, ...] = ()

    @property
    def payload(self) -> bytes:
        return self.data * self.repeat


@dataclass(frozen=True)
class HeaderExpect:
    """Expectations on response headers; names compare without regard to case."""

    present: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    equal: tuple[tuple[str, str], ...] = ()
    match: tuple[tuple[str, str], ...] = ()  # (name, regular expression)
    fixture: tuple[tuple[str, str], ...] = ()  # (name, "size:PATH" | "mtime:PATH")


@dataclass(frozen=True)
class BodyExpect:
    """Expectations on the response body (the bytes after the header block)."""

    fixture: str | None = None  # path under the document root, compared byte for byte
    equal: bytes | None = None
    empty: bool | None = None  # True: no byte after the header block
    contains: tuple[bytes, ...] = ()
    excludes: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """One acceptable (or explicitly judged) outcome of a connection.

    ``response`` is the kind of answer: "full" (a status line), "simple" (bytes
    without a status line, as in HTTP/0.9), "none" (no byte at all) or "any".
    ``status`` holds codes; ``status_class`` a first digit ("4xx" -> 4).
    ``connection`` is "closed" (the server closed before the deadline), "open"
    (still open at the deadline) or "any".
    """

    verdict: str = "pass"
    note: str = ""
    response: str = "full"
    status: tuple[int, ...] = ()
    status_class: tuple[int, ...] = ()
    version: tuple[str, ...] = ()
    headers: HeaderExpect = field(default_factory=HeaderExpect)
    body: BodyExpect = field(default_factory=BodyExpect)
    framing: str = "strict"  # "strict" | "lenient"
    connection: str = "closed"


@dataclass(frozen=True)
class Connection:
    """A scripted client connection and what may come back on it."""

    name: str = "main"
    parts: tuple[Part, ...] = ()
    start_after: tuple[str, ...] = ()  # event globs to wait for before connecting
    half_close: bool = False  # shutdown(SHUT_WR) after the last part
    read: int | None = None  # None: read to EOF; 0: read nothing; N: read N bytes then close
    read_gate: tuple[str, ...] = ()  # after the first byte, wait for these before reading on
    timeout: float = 5.0  # seconds from connect to the end of the response
    outcomes: tuple[Outcome, ...] = ()


@dataclass(frozen=True)
class Order:
    """Every event matching ``first`` happens before any event matching ``then``."""

    first: str
    then: str
    note: str = ""


@dataclass(frozen=True)
class Case:
    id: str  # path under cases/ without ".toml", e.g. "lab/get-binary-file"
    path: str
    title: str
    requirements: tuple[str, ...]
    level: str
    connections: tuple[Connection, ...]
    order: tuple[Order, ...] = ()
    tags: tuple[str, ...] = ()
    hint: str = ""
    liveness: bool = False  # after the case a plain GET must still be answered

    @property
    def area(self) -> str:
        return self.id.split("/", 1)[0]

    @property
    def scenario(self) -> bool:
        return len(self.connections) > 1


@dataclass(frozen=True)
class Requirement:
    id: str
    section: str
    level: str
    text: str
    party: str = "origin server"
    testable: bool = True
    reason: str = ""  # why it is not turned into a case, when it is not


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    areas: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()  # globs
    tags: tuple[str, ...] = ()
    exclude_tags: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()


@dataclass
class Observation:
    """What happened on one connection, as seen from the client side.

    ``end`` is "closed" (EOF), "reset" (ECONNRESET), "timeout" (deadline with the
    connection open), "open" (the response was complete by its own framing and the
    server had not closed when the close grace ran out), "limit" (we stopped reading
    at ``read`` bytes), "refused" or "error". Times are seconds since the case started.
    """

    name: str
    sent: bytes = b""
    received: bytes = b""
    received_total: int = 0  # may exceed len(received) when the size cap was hit
    end: str = "closed"
    error: str = ""
    events: dict[str, float] = field(default_factory=dict)


@dataclass
class Result:
    """The verdict on one case; plain values only, so reporters can serialise it."""

    id: str
    title: str
    area: str
    level: str
    requirements: list[str]
    verdict: str
    reason: str = ""
    expected: list[str] = field(default_factory=list)
    actual: str = ""
    findings: list[str] = field(default_factory=list)
    duration: float = 0.0
    sent: str = ""  # escaped, cut at a limit
    received: str = ""  # escaped, cut at a limit
    reproducer: str = ""
    hint: str = ""
    cause: str = ""  # the likely root cause of a non-pass, a key of causes.CAUSES
    server_log: list[str] = field(default_factory=list)  # the spawned server's lines while it ran
