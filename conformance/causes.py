"""Name the likely root cause of a case that did not pass, from the evidence alone.

A student whose server fails 40 cases has two or three mistakes, not 40. Each failing
result gets one cause from ``CAUSES``, chosen by the evidence of its own connections
(how each ended, which events happened in which order, what the findings say), so the
report can say "3 failures, 2 causes" and put the cause to fix first on top. Pure
functions on values: no sockets, no clocks.
"""

from __future__ import annotations

from dataclasses import dataclass

from .match import NOT_CLOSED
from .model import Case, Observation

__all__ = ["Cause", "CAUSES", "classify", "cause_order"]


@dataclass(frozen=True)
class Cause:
    title: str  # what is wrong, as a heading
    advice: str  # what to do about it, in one or two sentences


# Root causes first: a crash explains everything after it, a server that never
# closes explains every timeout, and so on down to the single wrong answer.
CAUSES: dict[str, Cause] = {
    "crash": Cause(
        "the server process died",
        "Its own output is quoted under the case. Catch errors per connection (and ignore "
        "SIGPIPE) so that nothing a client does can end the process.",
    ),
    "stuck": Cause(
        "the server stopped answering anyone",
        "After these cases no new connection got an answer. Look for a thread that never "
        "returns, a lock never released, or sockets never closed (a descriptor leak ends "
        "in accept() failing).",
    ),
    "not-closed": Cause(
        "the response is complete but the connection stays open",
        "HTTP/1.0 ends every response by closing the connection: call close() on the "
        "client socket after the last byte, in every path (errors included).",
    ),
    "not-concurrent": Cause(
        "clients are not served at the same time",
        "While one client stalled, another got no answer. Start a thread per accepted "
        "connection and go straight back to accept(); a small fixed pool is used up by a "
        "few slow clients.",
    ),
    "one-recv": Cause(
        "a request that arrives in pieces is taken as complete too early",
        "One recv() is not a request: keep reading until the empty line (CRLF CRLF) that "
        "ends the head.",
    ),
    "dropped-slow-client": Cause(
        "a slow client is dropped before it finishes its request",
        "Give a client that sends slowly the time it needs (seconds, not milliseconds) "
        "before closing on it.",
    ),
    "no-response": Cause(
        "no answer at all",
        "The server accepted the connection and sent nothing before the deadline: every "
        "request, malformed ones included, gets a response.",
    ),
    "no-status-line": Cause(
        "responses without a status line",
        "Every response starts with a status line such as 'HTTP/1.0 200 OK' and a header "
        "block ended by an empty line, each line ended by CRLF.",
    ),
    "reset": Cause(
        "the connection is reset",
        "Closing a socket with unread input makes the kernel send a reset that can destroy "
        "the response: read the whole request head first, and shut down the write side "
        "before close().",
    ),
    "wrong-answer": Cause(
        "wrong answers",
        "The server answered, but not as the requirement asks; each case says what was "
        "expected and what came back.",
    ),
}


def cause_order(name: str) -> int:
    """Position of a cause in ``CAUSES`` (root causes first); unknown ones last."""
    names = list(CAUSES)
    return names.index(name) if name in names else len(names)


def classify(case: Case, observations: list[Observation | None], findings: list[str],
             died: bool = False, stuck: bool = False, aborted: bool = False) -> str:
    """The cause of a result that did not pass, a key of ``CAUSES``.

    Args:
        case: the case that ran.
        observations: one per connection, None where it never finished.
        findings: the result's findings.
        died: the spawned server exited during the case.
        stuck: the server stopped answering anyone during the case.
        aborted: the runner's watchdog ended the case: the server answered nobody,
            not even a new connection (the events after that are the runner's doing).
    """
    if died:
        return "crash"
    if stuck:
        return "stuck"
    seen = [o for o in observations if o is not None]
    if any(f.endswith(NOT_CLOSED) for f in findings) or any(o.end == "open" for o in seen):
        return "not-closed"
    if _answered_early(case, seen):
        return "one-recv"
    if aborted:
        return "not-concurrent" if case.scenario else "stuck"
    if case.scenario:
        if not _others_answered_in_time(case, seen) or not _dropped_slow(case, seen):
            return "not-concurrent"
        return "dropped-slow-client"
    if any(o.end == "reset" for o in seen):
        return "reset"
    if seen and all(not o.received for o in seen) and any(o.end == "timeout" for o in seen):
        return "no-response"
    if seen and all(o.received and not o.received.lstrip().startswith(b"HTTP/") for o in seen if o.received):
        if any(o.received for o in seen):
            return "no-status-line"
    return "wrong-answer"


def _answered_early(case: Case, seen: list[Observation]) -> bool:
    """A connection that sends in pieces got its first byte before it had sent them all."""
    pieces = {c.name for c in case.connections if len(c.parts) > 1 or any(p.chunk for p in c.parts)}
    for obs in seen:
        base = obs.name if obs.name in pieces else obs.name.rsplit("-", 1)[0]
        if base not in pieces:
            continue
        first, sent = obs.events.get(f"{obs.name}.first_byte"), obs.events.get(f"{obs.name}.sent")
        if first is not None and (sent is None or first < sent) and obs.received.startswith(b"HTTP/"):
            # An error status for the half it saw; a timeout answer comes seconds later
            # and is the slow client's own cause.
            if b" 408 " not in obs.received[:32] and _quick(obs):
                return True
    return False


def _quick(obs: Observation) -> bool:
    start = obs.events.get(f"{obs.name}.connected")
    first = obs.events.get(f"{obs.name}.first_byte")
    return start is not None and first is not None and first - start < 1.0


def _holding(case: Case) -> set[str]:
    return {c.name for c in case.connections if any(p.wait_for for p in c.parts)}


def _base(name: str, names: set[str]) -> str:
    return name if name in names else name.rsplit("-", 1)[0]


def _others_answered_in_time(case: Case, seen: list[Observation]) -> bool:
    """Every connection that does not hold back got its first byte before any holder ended."""
    holding = _holding(case)
    if not holding:
        return True
    ends = [o.events.get(f"{o.name}.done") for o in seen if _base(o.name, holding) in holding]
    first_end = min((e for e in ends if e is not None), default=None)
    for obs in seen:
        if _base(obs.name, holding) in holding:
            continue
        first = obs.events.get(f"{obs.name}.first_byte")
        if first is None or (first_end is not None and first > first_end):
            return False
    return True


def _dropped_slow(case: Case, seen: list[Observation]) -> bool:
    """A connection that holds back part of its request was closed before it sent it."""
    holding = {c.name for c in case.connections if any(p.wait_for for p in c.parts)}
    for obs in seen:
        base = obs.name if obs.name in holding else obs.name.rsplit("-", 1)[0]
        if base in holding and f"{obs.name}.interrupted" in obs.events and not obs.received:
            return True
    return False
