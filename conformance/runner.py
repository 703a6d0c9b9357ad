"""Runs cases against a target: one case at a time or ``--jobs`` at once.

The scheduler lives here with the preflight and the liveness probe; playing bytes
is ``wire``'s job and judging is ``match``'s. Scenarios (several connections) run
alone, after the single-connection cases, so that their order-of-events judgements
never compete with other cases for the target's threads.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

from . import escape, match
from .model import Case, Connection, Part, Result
from .wire import EventBoard, Target, play

__all__ = ["Options", "Server", "run_case", "run_all", "preflight", "canary_request"]

# Escaped bytes shown in reports are cut here; --verbose shows them.
SHOW_LIMIT = 2000

# A request longer than this, or sent in pieces, is reproduced with the runner
# itself rather than a printf one-liner nobody could read.
PRINTF_LIMIT = 400


@dataclass(frozen=True)
class Options:
    jobs: int = 1
    strict: bool = False
    timeout_scale: float = 1.0
    fail_fast: bool = False


class Server(Protocol):
    """A target the runner started itself (``--spawn``) and can restart."""

    def exit_status(self) -> int | None: ...

    def wait_exit(self, timeout: float) -> int | None: ...

    def restart(self) -> None: ...


def canary_request(fixtures) -> Connection:
    """A plain GET of the canary file; any response that carries its bytes will do."""
    request = f"GET /{fixtures.canary_path} HTTP/1.0\r\n\r\n".encode("latin-1")
    return Connection(name="canary", parts=(Part(data=request),), timeout=5.0)


def _ask_canary(target: Target, fixtures, scale: float):
    conn = canary_request(fixtures)
    obs = play(conn, target, EventBoard([conn.name]), scale)
    return obs, fixtures.canary_data in obs.received


def preflight(target: Target, fixtures, scale: float = 1.0) -> str | None:
    """Check the target answers and serves the fixture root; None when it does.

    Only reachability and the canary's bytes count here: a response that is
    otherwise wrong (no status line, no close) is for the cases to judge, with
    messages that say what is wrong.

    Returns:
        A paragraph saying what is wrong and how to fix it, or None.
    """
    obs, served = _ask_canary(target, fixtures, scale)
    if served:
        return None
    if obs.end in ("refused", "error") and not obs.received:
        return (
            f"Nothing is answering at {target}: {obs.error}.\n"
            "Start your server first (serving the fixture document root, see "
            "'python -m conformance docroot --help'), check the host and port, or let the "
            "runner start it: --spawn \"python3 server.py {port}\"."
        )
    request = f"GET /{fixtures.canary_path} HTTP/1.0"
    if not obs.received:
        return (
            f"The server at {target} accepted a connection but sent nothing in answer to "
            f"'{request}' ({_ending(obs)}).\n"
            "Read the request up to its empty line (CRLF CRLF), then send the response and close."
        )
    return (
        f"The server at {target} answers, but not with the fixture document root: '{request}' "
        f"did not return the canary file's content ({fixtures.canary_data!r}); it sent:\n"
        f"  {escape.show(obs.received[:300], 300)}\n"
        "Build the root with 'python -m conformance docroot DIR', then serve the folder it "
        "prints (for the lab's server: cd into it and start the server there), or use --spawn."
    )


def _ending(obs) -> str:
    return {
        "timeout": "the connection was still open at the deadline",
        "closed": "it closed the connection",
        "reset": "it reset the connection",
    }.get(obs.end, obs.error or obs.end)


def _reproducer(case: Case, target: Target) -> str:
    conn = case.connections[0]
    rerun = f"python -m conformance --target {target} --id {case.id} --verbose"
    simple = (
        not case.scenario
        and len(conn.parts) == 1
        and not conn.parts[0].chunk
        and not conn.parts[0].pause_ms
        and len(conn.parts[0].payload) <= PRINTF_LIMIT
    )
    if not simple:
        return rerun
    quoted = escape.shell_quote_bytes(conn.parts[0].payload)
    return f"printf {quoted} | nc {target.host} {target.port}"


def _play_all(case: Case, target: Target, scale: float) -> tuple[list, EventBoard]:
    board = EventBoard([c.name for c in case.connections])
    if not case.scenario:
        return [play(case.connections[0], target, board, scale)], board
    observations: list = [None] * len(case.connections)

    def run(index: int, conn: Connection) -> None:
        observations[index] = play(conn, target, board, scale)

    threads = [
        threading.Thread(target=run, args=(i, c), name=f"conn-{c.name}", daemon=True)
        for i, c in enumerate(case.connections)
    ]
    for thread in threads:
        thread.start()
    # Each connection ends by its own deadline (start wait + timeout); the slack covers
    # scheduling on a loaded machine.
    limit = max(c.timeout for c in case.connections) * scale * 2 + 5
    stop = time.monotonic() + limit
    for thread in threads:
        thread.join(max(0.0, stop - time.monotonic()))
    return observations, board


def _describe(name: str, text: str, scenario: bool) -> str:
    return f"{name}: {text}" if scenario else text


def run_case(case: Case, target: Target, fixtures, options: Options, server: Server | None = None) -> Result:
    """Play one case and judge it; never raises on what the target does."""
    started = time.monotonic()
    observations, board = _play_all(case, target, options.timeout_scale)
    raws, findings, expected, actual = [], [], [], []
    for conn, obs in zip(case.connections, observations):
        if obs is None:
            raws.append("error")
            findings.append(_describe(conn.name, "the connection did not finish in time", case.scenario))
            continue
        if obs.end == "refused" or (obs.end == "error" and not obs.received):
            raws.append("error")
            findings.append(_describe(conn.name, obs.error, case.scenario))
            continue
        if not conn.outcomes:
            continue
        judgement = match.judge_connection(conn, obs, fixtures)
        raws.append(judgement.verdict)
        if judgement.verdict != "pass":
            own = list(judgement.findings)
            if not own and judgement.index is not None:
                # The answer matched an outcome the case itself judges badly.
                own = [f"the response matches an outcome judged {judgement.verdict}: {judgement.expected[judgement.index]}"]
            findings += [_describe(conn.name, f, case.scenario) for f in own]
        expected += [_describe(conn.name, e, case.scenario) for e in judgement.expected]
        actual.append(_describe(conn.name, judgement.actual, case.scenario))
    for order in case.order:
        finding = match.judge_order(order, board.snapshot())
        if finding:
            raws.append("fail")
            findings.append(finding)
    if "error" in raws:
        verdict = "error"
    else:
        verdict = match.final_verdict(match.worst(raws or ["pass"]), case.level, options.strict)
    alive = None
    if case.liveness and verdict != "error":
        if any(c.read is not None for c in case.connections):
            # The client hung up early: give the server the moment it needs to run
            # into the broken connection before asking whether it survived.
            time.sleep(SETTLE * options.timeout_scale)
        alive = _liveness(target, fixtures, options.timeout_scale)
    died = _death(server, suspect=alive is not None or verdict == "error")
    if died is not None:
        verdict = "fail"
        findings.insert(0, f"the server process exited (status {died}) during this case; it was restarted")
        server.restart()
    elif alive:
        verdict = "fail"
        findings.insert(0, alive)
    sent = b"".join(o.sent for o in observations if o is not None)
    received = b"".join(o.received for o in observations if o is not None)
    return Result(
        id=case.id,
        title=case.title,
        area=case.area,
        level=case.level,
        requirements=list(case.requirements),
        verdict=verdict,
        reason=findings[0] if findings else "",
        expected=expected,
        actual="; ".join(actual),
        findings=findings,
        duration=round(time.monotonic() - started, 3),
        sent=escape.show(sent, SHOW_LIMIT),
        received=escape.show(received, SHOW_LIMIT),
        reproducer=_reproducer(case, target),
        hint=case.hint,
    )


# After a client vanished mid-exchange, how long the server gets to hit the broken
# connection (a write that fails a millisecond later) before the liveness probe.
SETTLE = 0.3

# How long a server that stopped answering may take to be seen as exited.
EXIT_GRACE = 2.0


def _death(server: Server | None, suspect: bool) -> int | None:
    """The exit status of a spawned server that died, waiting a little when in doubt."""
    if server is None:
        return None
    status = server.exit_status()
    if status is None and suspect:
        status = server.wait_exit(EXIT_GRACE)
    return status


# A liveness probe that fails is asked again after a pause: under --jobs another
# case may hold a one-at-a-time server for a moment, which is that case's doing.
LIVENESS_TRIES = 3
LIVENESS_PAUSE = 0.5


def _liveness(target: Target, fixtures, scale: float) -> str | None:
    for attempt in range(LIVENESS_TRIES):
        if attempt:
            time.sleep(LIVENESS_PAUSE * scale)
        obs, served = _ask_canary(target, fixtures, scale)
        if served:
            return None
    got = f"{len(obs.received)} bytes without the canary's content" if obs.received else "no answer"
    return (
        f"after this case the server no longer answered a plain GET /{fixtures.canary_path} on a "
        f"new connection ({got}; {obs.error or _ending(obs)}), {LIVENESS_TRIES} times: bad input "
        "must never stop a server"
    )


def _is_must_failure(result: Result) -> bool:
    return result.verdict in ("fail", "error")


def run_all(
    cases: Iterable[Case],
    target: Target,
    fixtures,
    options: Options,
    server: Server | None = None,
    progress: Callable[[Result, int, int], None] | None = None,
) -> list[Result]:
    """Run every case and return the results in the order of ``cases``.

    Single-connection cases run ``options.jobs`` at a time; scenarios run one by one
    afterwards with nothing beside them. With ``fail_fast`` no new case starts after
    the first failure; the ones not run are left out of the results.
    """
    cases = list(cases)
    total = len(cases)
    results: dict[str, Result] = {}
    stop = threading.Event()

    def record(result: Result) -> None:
        results[result.id] = result
        if progress:
            progress(result, len(results), total)
        if options.fail_fast and _is_must_failure(result):
            stop.set()

    singles = [c for c in cases if not c.scenario]
    scenarios = [c for c in cases if c.scenario]
    jobs = max(1, options.jobs)
    if jobs == 1:
        for case in singles:
            if stop.is_set():
                break
            record(run_case(case, target, fixtures, options, server))
    else:
        _run_parallel(singles, jobs, stop, record, lambda c: run_case(c, target, fixtures, options, server))
    for case in scenarios:
        if stop.is_set():
            break
        record(run_case(case, target, fixtures, options, server))
    return [results[c.id] for c in cases if c.id in results]


def _run_parallel(cases: list[Case], jobs: int, stop: threading.Event, record, work) -> None:
    # At most `jobs` cases are in flight; new ones are submitted as old ones finish
    # so that --fail-fast stops promptly.
    pending: set[Future] = set()
    queue = list(reversed(cases))
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="case") as pool:
        while queue or pending:
            while queue and len(pending) < jobs and not stop.is_set():
                pending.add(pool.submit(work, queue.pop()))
            if not pending:
                break
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                record(future.result())
