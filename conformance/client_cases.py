"""Client cases: the runner plays the server and judges the client under test.

A client case (``cases/client/<name>.toml``, format in cases/README.md, "Client
cases") says what path the client is asked to fetch, what the scripted server sends
back (bytes with the same escape rule as requests, in parts with pauses), and which
checks the client must meet. Loading and judging are pure; ``fakeserver`` and
``client_runner`` do the I/O.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes
from dataclasses import dataclass, field
from pathlib import Path

from . import escape
from .loader import CaseError, read_toml
from .model import LEVELS, Part

__all__ = [
    "ClientCase",
    "ServerScript",
    "ClientObservation",
    "CHECKS",
    "load_client_case",
    "load_client_cases",
    "judge_client",
]

CLIENT_AREA = "client"

# How the scripted server ends: close after the parts, keep the connection open and
# send nothing more (a stalled server), or reset it.
ENDINGS = ("close", "stall", "reset")


@dataclass(frozen=True)
class ServerScript:
    parts: tuple[Part, ...] = ()
    ending: str = "close"
    wait_for_head: bool = True  # read the request up to its empty line before answering
    listen: bool = True  # False: nothing listens on the port (connection refused)


@dataclass(frozen=True)
class ClientCase:
    id: str
    path: str  # file path, relative to cases/
    title: str
    requirements: tuple[str, ...]
    level: str
    request_path: str  # the PATH the client is asked to fetch
    server: ServerScript
    checks: tuple[str, ...]  # names from CHECKS, all of which must hold
    body: bytes = b""  # what the client must write out, for the "body" check
    timeout: float = 10.0  # the client must have ended by itself within this
    hint: str = ""
    tags: tuple[str, ...] = ()

    @property
    def area(self) -> str:
        return CLIENT_AREA


@dataclass
class ClientObservation:
    """What the client did, as seen by the scripted server and the process runner."""

    request: bytes = b""  # bytes the client sent before the server answered or gave up
    peer_port: int | None = None
    connected: bool = False
    exit_status: int | None = None  # None: it had to be killed at the deadline
    stdout: bytes = b""
    output: bytes | None = None  # the file given as {output}, when the command names one
    stderr: bytes = b""
    duration: float = 0.0
    client_port: int = 0


# A bad client case file is reported like any other corpus file.
ClientCaseError = CaseError


_KEYS = {"title", "requirements", "level", "path", "hint", "tags", "timeout", "response", "expect"}
_RESPONSE_KEYS = {"data", "parts", "ending", "wait_for_head", "listen", "fixture"}
_PART_KEYS = {"data", "repeat", "pause_ms", "chunk", "chunk_pause_ms", "fixture"}


def _part(raw: dict, key: str, file: str, fixtures) -> Part:
    unknown = set(raw) - _PART_KEYS
    if unknown:
        raise ClientCaseError(file, f"{key}.{sorted(unknown)[0]}", "unknown key")
    try:
        data = escape.to_bytes(raw.get("data", ""))
    except ValueError as exc:
        raise ClientCaseError(file, f"{key}.data", str(exc)) from None
    if "fixture" in raw:
        if fixtures is None or not fixtures.exists(raw["fixture"]):
            raise ClientCaseError(file, f"{key}.fixture", f"no fixture file {raw['fixture']!r}")
        data += fixtures.content(raw["fixture"])
    ints = {k: raw.get(k, d) for k, d in (("repeat", 1), ("pause_ms", 0), ("chunk", 0), ("chunk_pause_ms", 0))}
    for name, value in ints.items():
        if not isinstance(value, int) or value < 0:
            raise ClientCaseError(file, f"{key}.{name}", "must be a whole number, 0 or more")
    return Part(data=data, **ints)


def load_client_case(path: Path, cases_dir: Path, fixtures=None) -> ClientCase:
    """Load one client case file.

    Raises:
        ClientCaseError: naming the file and the key that is wrong.
    """
    file = str(path)
    raw = read_toml(path, file)
    unknown = set(raw) - _KEYS
    if unknown:
        raise ClientCaseError(file, sorted(unknown)[0], "unknown key")
    for key in ("title", "requirements", "level", "expect"):
        if key not in raw:
            raise ClientCaseError(file, key, "missing")
    if raw["level"] not in LEVELS:
        raise ClientCaseError(file, "level", f"must be one of {', '.join(LEVELS)}")
    response = raw.get("response", {})
    unknown = set(response) - _RESPONSE_KEYS
    if unknown:
        raise ClientCaseError(file, f"response.{sorted(unknown)[0]}", "unknown key")
    parts = [_part(p, f"response.parts[{i}]", file, fixtures) for i, p in enumerate(response.get("parts", []))]
    if "data" in response or "fixture" in response:
        parts.insert(0, _part({k: response[k] for k in ("data", "fixture") if k in response}, "response", file, fixtures))
    ending = response.get("ending", "close")
    if ending not in ENDINGS:
        raise ClientCaseError(file, "response.ending", f"must be one of {', '.join(ENDINGS)}")
    expect = raw["expect"]
    checks = expect.get("checks", [])
    for i, name in enumerate(checks):
        if name not in CHECKS:
            raise ClientCaseError(file, f"expect.checks[{i}]", f"unknown check {name!r}; known: {', '.join(CHECKS)}")
    body = b""
    if "body" in expect:
        body = escape.to_bytes(expect["body"])
    if "body_fixture" in expect:
        body = fixtures.content(expect["body_fixture"]) if fixtures else b""
    case_id = path.relative_to(cases_dir).with_suffix("").as_posix()
    return ClientCase(
        id=case_id,
        path=file,
        title=raw["title"],
        requirements=tuple(raw["requirements"]),
        level=raw["level"],
        request_path=raw.get("path", "/file.txt"),
        server=ServerScript(
            parts=tuple(parts),
            ending=ending,
            wait_for_head=response.get("wait_for_head", True),
            listen=response.get("listen", True),
        ),
        checks=tuple(checks),
        body=body,
        timeout=float(raw.get("timeout", 10.0)),
        hint=raw.get("hint", ""),
        tags=tuple(raw.get("tags", ())),
    )


def load_client_cases(cases_dir: Path, fixtures=None) -> list[ClientCase]:
    folder = cases_dir / CLIENT_AREA
    return [load_client_case(p, cases_dir, fixtures) for p in sorted(folder.glob("*.toml"))]


# --- judging: each check is a pure function of the case and the observation ------------

_REQUEST_LINE = re.compile(rb"^GET (\S+) HTTP/1\.0\r\n")
# RFC 1945 §3.2.1: these never appear raw in a Request-URI.
_UNSAFE = re.compile(rb"[\x00-\x20\x7f-\xff\"#<>]")


def _head(obs: ClientObservation) -> bytes:
    end = obs.request.find(b"\r\n\r\n")
    return obs.request if end < 0 else obs.request[: end + 4]


def check_client_port(case, obs):
    if not obs.connected:
        return "the client never connected"
    if obs.peer_port != obs.client_port:
        return f"the client connected from port {obs.peer_port}, not from the port it was given ({obs.client_port})"


def check_request_line(case, obs):
    match = _REQUEST_LINE.match(obs.request)
    if not match:
        first = obs.request.split(b"\n", 1)[0][:200]
        return f"the request line is {escape.show(first, 200)!r}, not 'GET <path> HTTP/1.0' ending in CRLF"


def check_path(case, obs):
    match = _REQUEST_LINE.match(obs.request)
    if not match:
        return "no request line to read the path from"
    sent = match.group(1)
    if _UNSAFE.search(sent):
        return f"the path {escape.show(sent, 200)!r} holds a byte that must be percent-encoded"
    # Any percent-encoding that decodes to the path asked for is right: clients may
    # encode more than they must, in either hex case.
    wanted = case.request_path.encode("utf-8")
    if unquote_to_bytes(sent) != wanted:
        return f"the path sent is {escape.show(sent, 200)!r}, which does not decode to {case.request_path!r}"


def check_crlf(case, obs):
    head = _head(obs)
    if not head.endswith(b"\r\n\r\n"):
        return "the request head does not end with an empty line (CRLF CRLF)"
    for number, line in enumerate(head[:-2].split(b"\r\n")[:-1], 1):
        if b"\n" in line or b"\r" in line:
            return f"line {number} of the request ends with a bare LF or CR"


def check_no_body(case, obs):
    head = _head(obs)
    extra = obs.request[len(head):]
    if extra:
        return f"{len(extra)} bytes followed the request head of a GET"


def check_body(case, obs):
    written = obs.output if obs.output is not None else obs.stdout
    if written == case.body:
        return None
    where = "the output file" if obs.output is not None else "standard output"
    for index, (a, b) in enumerate(zip(written, case.body)):
        if a != b:
            return f"{where} differs from the body at byte {index} ({len(written)} bytes written, {len(case.body)} expected)"
    return f"{where} holds {len(written)} bytes, the body has {len(case.body)}"


def check_exit_zero(case, obs):
    if obs.exit_status is None:
        return "the client did not end by itself"
    if obs.exit_status != 0:
        return f"the client exited with status {obs.exit_status} after a successful response"


def check_exit_nonzero(case, obs):
    if obs.exit_status is None:
        return "the client did not end by itself"
    if obs.exit_status == 0:
        return "the client exited with status 0: an error response or a broken transfer must be reported as a failure"


def check_ends(case, obs):
    if obs.exit_status is None:
        return f"the client was still running after {case.timeout:g} s and was stopped"


def check_message(case, obs):
    if not obs.stderr.strip():
        return "the client said nothing on standard error"


def check_no_traceback(case, obs):
    if b"Traceback (most recent call last)" in obs.stderr:
        return "the client crashed with a Python traceback instead of a clear message"


# The table of checks: the names are what client case files list.
CHECKS = {
    "client-port": check_client_port,
    "request-line": check_request_line,
    "path": check_path,
    "crlf": check_crlf,
    "no-body": check_no_body,
    "body": check_body,
    "exit-zero": check_exit_zero,
    "exit-nonzero": check_exit_nonzero,
    "ends": check_ends,
    "message": check_message,
    "no-traceback": check_no_traceback,
}


@dataclass
class ClientJudgement:
    verdict: str
    findings: list[str] = field(default_factory=list)


def judge_client(case: ClientCase, obs: ClientObservation) -> ClientJudgement:
    """Run every check the case lists; the raw verdict is pass or fail."""
    findings = [f for f in (CHECKS[name](case, obs) for name in case.checks) if f]
    return ClientJudgement("fail" if findings else "pass", findings)
