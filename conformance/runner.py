"""Runs cases against a target: one case at a time or ``--jobs`` at once.

The scheduler lives here with the preflight and the liveness probe; playing bytes
is ``wire``'s job and judging is ``match``'s. Scenarios (several connections) run
alone, after the single-connection cases, so that their order-of-events judgements
never compete with other cases for the target's threads.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol

from . import causes, escape, match
from .model import Case, Connection, Part, Result
from .parse import parse_response
from .wire import HEAD_KEEP, CloseGrace, EventBoard, Tally, Target, play

__all__ = [
    "Options", "Server", "Attempt", "Control", "Run", "NOT_RUN",
    "run_case", "attempt_case", "run_all", "preflight", "fixture_drift", "canary_request", "keep_limit",
]

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
    budget: float | None = None  # seconds for the whole run; None: no limit


class Server(Protocol):
    """A target the runner started itself (``--spawn``) and can restart."""

    def exit_status(self) -> int | None: ...

    def wait_exit(self, timeout: float) -> int | None: ...

    def restart(self, force: bool = False) -> None: ...


def canary_request(fixtures, timeout: float = 5.0) -> Connection:
    """A plain GET of the canary file; any response that carries its bytes will do."""
    request = f"GET /{fixtures.canary_path} HTTP/1.0\r\n\r\n".encode("latin-1")
    return Connection(name="canary", parts=(Part(data=request),), timeout=timeout)


# The canary needs its bytes, not the close: it stops reading once its response is
# complete by its framing, and teaches the run's close grace nothing.
_NO_GRACE = 0.0


def _ask_canary(target: Target, fixtures, scale: float, timeout: float = 5.0):
    conn = canary_request(fixtures, timeout=timeout)
    obs = play(conn, target, EventBoard([conn.name]), scale, CloseGrace(_NO_GRACE))
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
    if obs.end == "error" and "does not resolve" in obs.error:
        return (
            f"The host {target.host!r} does not resolve ({obs.error}).\n"
            "Check its spelling, or use an address such as 127.0.0.1."
        )
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
    if obs.received.startswith((b"HTTP/1.0 403", b"HTTP/1.1 403")):
        return (
            f"The server at {target} answers '{request}' with 403 Forbidden. A server started as "
            "root often drops to another user (www-data, nobody) that cannot read the fixture "
            "folder: make it readable to that user (the runner's --spawn root is), or start the "
            "server as yourself."
        )
    return (
        f"The server at {target} answers, but not with the fixture document root: '{request}' "
        f"did not return the canary file's content ({fixtures.canary_data!r}); it sent:\n"
        f"  {escape.show(obs.received[:300], 300)}\n"
        "Build the root with 'python -m conformance docroot DIR', then serve the folder it "
        "prints (for the lab's server: cd into it and start the server there), or use --spawn."
    )


# Fixture files the start-up check compares besides the canary: a text file and
# every byte value, small enough to cost milliseconds.
CHECKED_FIXTURES = ("file.txt", "bytes.bin")


def fixture_drift(target: Target, fixtures, scale: float = 1.0) -> list[str]:
    """Fixture files the target serves with other bytes than the corpus describes.

    A served tree that someone edited would show up as server failures with hints
    that do not fit; this says so once. A server that answers something else than
    200 is the cases' business, not this check's.
    """
    drift = []
    for path in CHECKED_FIXTURES:
        request = f"GET /{path} HTTP/1.0\r\n\r\n".encode("latin-1")
        conn = Connection(name="fixture", parts=(Part(data=request),), timeout=5.0)
        obs = play(conn, target, EventBoard([conn.name]), scale)
        response = parse_response(obs.received)
        if response.status != 200 or not response.complete_head:
            continue
        want = fixtures.content(path)
        if response.body != want:
            drift.append(f"{path}: {len(response.body)} bytes served, the fixture has {len(want)}"
                         + ("" if len(response.body) != len(want) else " with other content"))
    return drift


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


@dataclass
class Attempt:
    """One play of a case: its result and the evidence the supervisor weighs."""

    result: Result
    observations: list
    silent: bool = False  # no connection got a byte, and one waited or was refused
    alive_after: str | None = None  # the liveness finding, when the case asks for one
    log_lines: list[str] = field(default_factory=list)
    log_mark: int = 0  # where the server's log stood when the case began


def keep_limit(conn: Connection, fixtures) -> int:
    """Bytes of a response worth keeping: the head, plus what the body expectations compare."""
    want = 0
    for outcome in conn.outcomes:
        body = outcome.body
        if body.fixture:
            try:
                want = max(want, fixtures.size(body.fixture))
            except (OSError, LookupError, ValueError):
                pass
        if body.equal is not None:
            want = max(want, len(body.equal))
    # The margin shows how a too-long body goes on, and keeps the bytes past its end.
    return HEAD_KEEP + want + (64 * 1024 if want else 0)


def _play_all(case: Case, target: Target, scale: float, grace: CloseGrace, fixtures,
              stall: StallWatch) -> tuple[list, EventBoard]:
    board = EventBoard([c.name for c in case.connections])
    observations: list = [None] * len(case.connections)
    left = [len(case.connections)]
    finished = threading.Event()
    lock = threading.Lock()

    def run(index: int, conn: Connection) -> None:
        try:
            observations[index] = play(conn, target, board, scale, grace, keep_limit(conn, fixtures))
        finally:
            with lock:
                left[0] -= 1
                if not left[0]:
                    finished.set()

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
    _watch(case, board, finished, target, fixtures, scale, stop, stall)
    for thread in threads:
        thread.join(max(0.0, stop - time.monotonic()))
    return observations, board


# A connection that has sent its whole request and got no byte for this long makes
# the runner ask the server on a new connection; if that gets no answer either, the
# server answers nobody (it is stuck, or blocked by a client that stalls), and the
# case ends there instead of at every deadline.
STALL_LIMIT = 2.0
WATCH_EVERY = 0.1


class StallWatch:
    """How long the watchdog lets a connection wait for its first byte, and its probe's deadline.

    A server that serves one client at a time makes every concurrency case wait for
    the watchdog: ``FULL`` seconds of silence, then a probe of ``PROBE_TIMEOUT``.
    Once the probe has found the server answering nobody ``LEARN_AFTER`` times, and
    more often than it found it answering, the server has shown what it does, and
    the watchdog waits only ``LEARNED`` seconds (and the probe as long). A correct
    server never teaches it: it answers the probe, or is never silent that long.
    Only a server that answers between the two limits could be judged differently
    by the order cases ran in. Shared by the threads of a run.
    """

    FULL = STALL_LIMIT
    LEARNED = 0.5
    LEARN_AFTER = 2

    def __init__(self, scale: float = 1.0):
        self.scale = scale
        self._tally = Tally()

    def learned(self) -> bool:
        """Whether this server has shown that it answers nobody while one client stalls."""
        return self._tally.shows(self.LEARN_AFTER, ratio=1)

    def limit(self) -> float:
        return (self.LEARNED if self.learned() else self.FULL) * self.scale

    def probe_timeout(self) -> float:
        """Unscaled, as ``_probe`` scales it."""
        return self.LEARNED if self.learned() else PROBE_TIMEOUT

    def record(self, answered: bool) -> None:
        self._tally.record(against=not answered)


def _watch(case: Case, board: EventBoard, finished: threading.Event, target: Target, fixtures,
           scale: float, stop: float, stall: StallWatch) -> None:
    """The watchdog of a case: end it early when the server answers nobody at all."""
    # Who holds: a client that keeps back part of its request, or one that stops
    # reading at its read gate after the first byte.
    senders = {c.name for c in case.connections if any(p.wait_for for p in c.parts)}
    readers = {c.name for c in case.connections if c.read_gate}

    def base(name: str) -> str:
        return name if name in senders or name in readers else name.rsplit("-", 1)[0]

    while not finished.wait(WATCH_EVERY) and time.monotonic() < stop:
        events = board.snapshot()
        now = board.now()
        limit = stall.limit()
        waiting = [
            n for n in board.names
            if f"{n}.sent" in events and f"{n}.first_byte" not in events and f"{n}.done" not in events
            and now - events[f"{n}.sent"] > limit
        ]
        if not waiting:
            continue
        holding = any(
            f"{n}.done" not in events and (
                (base(n) in senders and f"{n}.connected" in events and f"{n}.sent" not in events)
                or (base(n) in readers and f"{n}.first_byte" in events))
            for n in board.names
        )
        answered = _probe(target, fixtures, scale, timeout=stall.probe_timeout())
        stall.record(answered)
        if not answered:
            while_ = "while a client held its request back, " if holding else ""
            board.abort(
                f"stopped after {now:.1f} s: {while_}{waiting[0]} got no byte for "
                f"{limit:.1f} s and a new connection got no answer either: the server "
                + ("answers nobody while one client stalls" if holding else "answers nobody")
            )
        return


def _describe(name: str, text: str, scenario: bool) -> str:
    return f"{name}: {text}" if scenario else text


def attempt_case(case: Case, target: Target, fixtures, options: Options,
                 grace: CloseGrace | None = None, reproduce_at: Target | None = None,
                 stall: StallWatch | None = None) -> Attempt:
    """Play one case and judge it, with no thought of the server's health; never raises.

    Args:
        grace: the run's close grace (shared so that it learns); a fresh one if None.
        reproduce_at: the address reproducers name (the port a person will use).
        stall: the run's watchdog limits (shared so that they learn); fresh if None.
    """
    started = time.monotonic()
    grace = grace or CloseGrace(options.timeout_scale)
    stall = stall or StallWatch(options.timeout_scale)
    observations, board = _play_all(case, target, options.timeout_scale, grace, fixtures, stall)
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
    if board.aborted:
        raws.append("fail")
        findings.insert(0, f"the runner {board.aborted}")
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
        # The watchdog has just seen the server answer nobody: whether it recovers
        # once those clients are gone needs no more than a probe's deadline.
        timeout = stall.probe_timeout() if board.aborted else LIVENESS_TIMEOUT
        alive = _liveness(target, fixtures, options.timeout_scale, timeout)
        if alive:
            verdict = "fail"
            findings.insert(0, alive)
    seen = [o for o in observations if o is not None]
    silent = bool(seen) and not any(o.received for o in seen) and any(
        o.end in ("timeout", "refused", "error") for o in seen)
    # Only what the report shows: joining whole bodies would copy sixteen 8 MiB
    # downloads to quote 2,000 bytes of them.
    sent = b"".join(o.sent[:SHOW_LIMIT + 1] for o in seen)
    received = b"".join(o.received[:SHOW_LIMIT + 1] for o in seen)
    result = Result(
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
        reproducer=_reproducer(case, reproduce_at or target),
        hint=case.hint,
    )
    if verdict not in ("pass", "skip"):
        result.cause = causes.classify(case, observations, findings, aborted=bool(board.aborted))
    return Attempt(result, observations, silent=silent and verdict != "pass", alive_after=alive)


def run_case(case: Case, target: Target, fixtures, options: Options, server: Server | None = None) -> Result:
    """Play one case and judge it; a spawned server that died is blamed and restarted.

    This is the one-case-at-a-time path (the pytest plugin's); ``run_all`` weighs
    deaths and silences across cases and replays suspects alone.
    """
    attempt = attempt_case(case, target, fixtures, options)
    result = attempt.result
    died = _death(server, suspect=attempt.alive_after is not None or result.verdict == "error" or attempt.silent)
    if died is not None:
        _blame_death(result, died, alone=True)
        server.restart()
    return result


def _blame_death(result: Result, status: int, alone: bool) -> None:
    where = "while this case ran alone" if alone else "during this case"
    result.verdict = "fail"
    result.cause = "crash"
    result.findings.insert(0, f"the server process exited ({_status_words(status)}) {where}; it was restarted")
    result.reason = result.findings[0]


def _blame_silence(result: Result, seconds: float) -> None:
    result.verdict = "fail"
    result.cause = "stuck"
    result.findings.insert(0, (
        f"the server stopped answering anyone during this case, also when it ran alone: "
        f"no byte came back, and a new connection got no answer within {seconds:.1f} s"
    ))
    result.reason = result.findings[0]


def _status_words(status: int) -> str:
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"killed by {name}"
    return f"status {status}"


# After a client vanished mid-exchange, how long the server gets to hit the broken
# connection (a write that fails a millisecond later) before the liveness probe.
SETTLE = 0.3

# How long a server that stopped answering may take to be seen as exited.
EXIT_GRACE = 2.0

# How long a dead server's output may take to be read to its end (see ServerLog.drained).
LOG_DRAIN = 1.0

# How long a connection closed without a byte waits for the server's exit to show.
DEATH_WAIT = 0.3


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
# A correct server answers the canary in milliseconds. A slow answer that misses this
# costs a restart and a replay alone, not a wrong verdict; waiting longer would cost
# every case that starves a server of descriptors as much.
LIVENESS_TIMEOUT = 2.0

# The quick question "does anyone get an answer?" after a silent case: one canary
# with this deadline (a correct server answers it in milliseconds).
PROBE_TIMEOUT = 1.0


def _liveness(target: Target, fixtures, scale: float, timeout: float = LIVENESS_TIMEOUT) -> str | None:
    for attempt in range(LIVENESS_TRIES):
        if attempt:
            time.sleep(LIVENESS_PAUSE * scale)
        obs, served = _ask_canary(target, fixtures, scale, timeout=timeout)
        if served:
            return None
        if obs.end in ("timeout", "refused") and not obs.received:
            # It waited the whole deadline, or nothing listens any more (a busy
            # server still accepts): asking again would only wait again.
            break
    got = f"{len(obs.received)} bytes without the canary's content" if obs.received else "no answer"
    return (
        f"after this case the server no longer answered a plain GET /{fixtures.canary_path} on a "
        f"new connection ({got}; {obs.error or _ending(obs)}): bad input must never stop a server"
    )


def _probe(target: Target, fixtures, scale: float, timeout: float = PROBE_TIMEOUT) -> bool:
    return _ask_canary(target, fixtures, scale, timeout=timeout)[1]


def _is_must_failure(result: Result) -> bool:
    return result.verdict in ("fail", "error")


class Control:
    """Ends a run from outside: a signal, or the run budget running out.

    Thread-safe: a signal handler calls ``stop`` while the supervisor polls
    ``stopped``; the event carries the first reason given.
    """

    def __init__(self, budget: float | None = None):
        self.budget = budget
        self.deadline = None if budget is None else time.monotonic() + budget
        self.reason = ""
        self.interrupted = False
        self._event = threading.Event()

    def stop(self, reason: str, interrupted: bool = True) -> None:
        if not self._event.is_set():
            self.reason = reason
            self.interrupted = interrupted
            self._event.set()

    def stopped(self) -> bool:
        if not self._event.is_set() and self.deadline is not None and time.monotonic() >= self.deadline:
            self.stop(f"the run budget of {self.budget:g} s ran out", interrupted=False)
        return self._event.is_set()


@dataclass
class Run:
    """What ``run_all`` learnt: the results in case order, and what stopped it early."""

    results: list[Result]
    incomplete: str = ""  # why some cases were not run, or "" when every case ran
    notes: list[str] = field(default_factory=list)  # what a reader should know about the run
    restarts: int = 0


# How often a spawned server may be restarted in one run before the runner stops
# trying: a server that crashes on every case costs the run a bounded time.
MAX_RESTARTS = 60

# A server that stops answering this many times in a row right after a fresh start
# will not be helped by another.
STUCK_STREAK = 2

# How often the supervisor looks at the stop signal while it waits for a case.
POLL = 0.1


def run_all(
    cases: Iterable[Case],
    target: Target,
    fixtures,
    options: Options,
    server: Server | None = None,
    progress: Callable[[Result, int, int], None] | None = None,
    control: Control | None = None,
    reproduce_at: Target | None = None,
    server_log=None,
) -> Run:
    """Run every case and return the results in the order of ``cases``.

    With ``options.jobs`` 1 the single-connection cases run first, then the
    scenarios; above 1, the cases run ``jobs`` at a time, never two scenarios at
    once, each scenario as soon as the one before it ends, the other cases in the
    serial order beside them. When the server dies or stops answering,
    the cases in flight are suspects: the server is restarted (``server``) and each
    suspect is replayed alone, so the one that does it gets the blame whatever
    ``jobs`` is. Under ``jobs`` > 1 every case that did not pass is replayed alone
    too, so serial and parallel runs give the same verdicts. A target that cannot
    be brought back ends the run: the cases not run are errors with the reason.

    Args:
        control: stops the run early (a signal, the budget); cases not reached are
            skipped with its reason and the run is marked incomplete.
        reproduce_at: the address the reproducers name, when it is not ``target``.
        server_log: the spawned server's ``ServerLog``; each result that did not
            pass quotes the lines written while it ran.
    """
    cases = list(cases)
    supervisor = _Supervisor(cases, target, fixtures, options, server, progress,
                             control or Control(options.budget), reproduce_at, server_log)
    return supervisor.run()


def _next_case(pending: list[Case], active: dict[str, Case], scenarios_first: bool = False) -> Case | None:
    """The next case to start: the first pending one, but never two scenarios at once.

    scenarios_first: start the next scenario as soon as none is running. Why: run one
    after another, the scenarios are the longest chain of a parallel run (4.4 s of
    the reference's 13 s of cases, against 3 s for the slowest single case); in the
    serial order each waited until the cases before it had started.
    """
    busy = any(c.scenario for c in active.values())
    if scenarios_first and not busy:
        for index, case in enumerate(pending):
            if case.scenario:
                return pending.pop(index)
    for index, case in enumerate(pending):
        if not (busy and case.scenario):
            return pending.pop(index)
    return None


class _Supervisor:
    """Schedules the cases, watches the server's health and settles the blame.

    Runs in the caller's thread; each play of a case runs in a worker thread of its
    own so that a stop request is seen within ``POLL`` seconds. Only this thread
    touches ``results``, ``notes`` and the counters.
    """

    def __init__(self, cases, target, fixtures, options, server, progress, control, reproduce_at, log):
        self.cases = cases
        # The serial run's order, singles before scenarios: suspects replay in it, so
        # that a server that stops answering for good stops the same cases whatever
        # order --jobs started them in.
        serial = [c for c in cases if not c.scenario] + [c for c in cases if c.scenario]
        self.order = {c.id: i for i, c in enumerate(serial)}
        self.target = target
        self.fixtures = fixtures
        self.options = options
        self.server = server
        self.progress = progress
        self.control = control
        self.reproduce_at = reproduce_at
        self.log = log
        self.grace = CloseGrace(options.timeout_scale)
        self.stall = StallWatch(options.timeout_scale)
        self.results: dict[str, Result] = {}
        self.notes: list[str] = []
        self.fatal = ""  # why the remaining cases cannot run
        self.failed_fast = False
        self.stuck_streak = 0
        self.fresh = False  # the server was just brought back: nothing ran on it yet
        self.said_serial = False  # the note that the run went one case at a time
        self.said_busy = False

    # --- the schedule ---------------------------------------------------------------

    def run(self) -> Run:
        singles = [c for c in self.cases if not c.scenario]
        scenarios = [c for c in self.cases if c.scenario]
        jobs = max(1, self.options.jobs)
        if jobs == 1:
            self._phase(singles, 1)
            self._phase(scenarios, 1)
        else:
            # One scenario at a time, beside the single cases: a scenario's clients
            # wait more than they work. Suspects replay in the serial order (_rank),
            # so that a server that stops answering for good stops the same cases as
            # a serial run; any case that did not pass is replayed alone at the end.
            self._phase(singles + scenarios, jobs)
        for case in self.cases:
            if case.id not in self.results:
                self._record(self._not_run(case))
        incomplete = ""
        if self.control.stopped():
            done = sum(1 for r in self.results.values() if not r.reason.startswith(NOT_RUN))
            incomplete = f"{self.control.reason}: {done} of {len(self.cases)} cases were run"
        restarts = getattr(self.server, "restarts", 0)
        if restarts:
            self.notes.append(f"the server was restarted {restarts} time{'s' if restarts != 1 else ''} during the run")
        results = [self.results[c.id] for c in self.cases]
        if self.options.fail_fast and self.failed_fast:
            results = [r for r in results if not r.reason.startswith(NOT_RUN + ": --fail-fast")]
        return Run(results, incomplete, self.notes, restarts)

    def _rank(self, case: Case) -> int:
        return self.order[case.id]

    def _halted(self) -> bool:
        return bool(self.fatal) or self.failed_fast or self.control.stopped()

    def _phase(self, cases: list[Case], jobs: int) -> None:
        pending = list(cases)
        active: dict[str, Case] = {}
        done: queue.Queue = queue.Queue()
        suspects: list[Case] = []  # cases to replay alone once nothing is in flight
        deferred: list[Case] = []  # under --jobs, cases that did not pass, replayed at the end
        trouble = ""
        probed_alone = False
        untouched = ""  # the case running alone on a server nothing else has touched since its start
        crowded: set[str] = set()  # cases that had another in flight beside them at some moment
        while pending or active:
            if self._halted() and (self.control.interrupted or not active):
                return
            while len(active) < self._width(jobs) and not trouble and not self._halted():
                case = _next_case(pending, active, scenarios_first=jobs > 1)
                if case is None:
                    break
                untouched = case.id if self.fresh and not active else ""
                self.fresh = False
                if active:
                    crowded.update(active)
                    crowded.add(case.id)
                active[case.id] = case
                self._start(case, done)
            try:
                case, attempt = done.get(timeout=POLL)
            except queue.Empty:
                continue
            del active[case.id]
            result = attempt.result
            if not trouble:
                trouble = self._trouble(attempt)
                # A probe that failed with nothing else in flight has already shown
                # that the server is not merely busy with another case.
                probed_alone = not active
            if trouble and case.id == untouched and not suspects and not active:
                # Replaying it alone on a fresh server would play it again exactly so.
                self._settle_alone(case, attempt, trouble, fresh=True)
                trouble = ""
            elif trouble and (result.verdict != "pass" or not suspects):
                suspects.append(case)  # in flight when the server went wrong
            elif result.verdict != "pass" and case.id in crowded and not self._own_doing(result):
                deferred.append(case)  # may have been disturbed by its neighbours
            else:
                self._record(self._finish(attempt))
            if trouble and not active:
                self._recover(trouble, suspects, probed_alone)
                suspects, trouble = [], ""
        if deferred and not self._halted():
            self._replay(sorted(deferred, key=self._rank), why="")

    def _width(self, jobs: int) -> int:
        """How many cases may be in flight: ``jobs``, or one once the server has shown
        that it serves one client at a time.

        Why: beside a case whose client stalls, such a server answers none of the
        others, so each of them waited for the watchdog and was replayed alone at the
        end; the sequential variant took 36 s at --jobs 8 against 26 s at --jobs 1.
        """
        if jobs == 1 or not self.stall.learned():
            return jobs
        if not self.said_serial:
            self.said_serial = True
            self.notes.append("the server answered nobody while one client stalled, more than once: "
                              "the rest of the run went one case at a time, as --jobs gains nothing on it")
        return 1

    def _own_doing(self, result: Result) -> bool:
        """A failure no neighbouring case can have caused, so a replay alone would repeat it.

        A response left open by a server that has shown it leaves responses open
        (the close grace learned it) is such a failure: no neighbour makes a server
        forget to close. Replaying those alone made a run against a server that never
        closes slower at --jobs 8 than at --jobs 1.
        """
        return result.cause == "not-closed" and self.grace.learned()

    def _start(self, case: Case, done: queue.Queue) -> None:
        def work() -> None:
            done.put((case, self._attempt(case)))

        threading.Thread(target=work, name=f"case-{case.id}", daemon=True).start()

    def _attempt(self, case: Case) -> Attempt:
        mark = self.log.mark() if self.log else 0
        try:
            attempt = attempt_case(case, self.target, self.fixtures, self.options, self.grace,
                                   self.reproduce_at, self.stall)
        except Exception as exc:  # a bug of ours must cost one case, not the run
            result = self._not_run(case, f"the runner failed on this case: {type(exc).__name__}: {exc}")
            attempt = Attempt(result, [])
        if self.log:
            attempt.log_mark = mark
            attempt.log_lines = self.log.lines(mark)
        return attempt

    def _wait(self, case: Case) -> Attempt | None:
        """Play one case alone in a worker thread; None if the run is stopped meanwhile."""
        box: queue.Queue = queue.Queue()
        self._start(case, box)
        while True:
            try:
                return box.get(timeout=POLL)[1]
            except queue.Empty:
                if self.control.stopped() and self.control.interrupted:
                    return None

    def _record(self, result: Result) -> None:
        self.results[result.id] = result
        if self.progress:
            self.progress(result, len(self.results), len(self.cases))
        if self.options.fail_fast and _is_must_failure(result) and not result.reason.startswith(NOT_RUN):
            self.failed_fast = True

    def _finish(self, attempt: Attempt) -> Result:
        result = attempt.result
        if result.verdict != "pass" and attempt.log_lines:
            result.server_log = attempt.log_lines
        return result

    def _not_run(self, case: Case, why: str = "") -> Result:
        why = why or self.fatal or (
            "--fail-fast stopped the run" if self.failed_fast else self.control.reason or "the run ended"
        )
        verdict = "error" if self.fatal else "skip"
        text = why if why.startswith(NOT_RUN) else f"{NOT_RUN}: {why}"
        return Result(id=case.id, title=case.title, area=case.area, level=case.level,
                      requirements=list(case.requirements), verdict=verdict, reason=text,
                      findings=[text], hint=case.hint, cause="not-run" if self.fatal else "")

    # --- health -----------------------------------------------------------------------

    def _exited(self, attempt: Attempt) -> bool:
        """Whether the spawned server has exited, waiting a moment when the case looks like a death.

        A process that dies on a request closes the connection a moment before it is
        reaped: a connection that ended closed or reset without a byte gets
        ``DEATH_WAIT`` seconds for the exit to show, so that the blame does not
        depend on how fast the kernel was.
        """
        if self.server is None:
            return False
        if self.server.exit_status() is not None:
            return True
        looks_dead = any(o is not None and not o.received and o.end in ("closed", "reset")
                         for o in attempt.observations)
        return looks_dead and self.server.wait_exit(DEATH_WAIT * self.options.timeout_scale) is not None

    def _trouble(self, attempt: Attempt) -> str:
        """'died', 'stuck' or '' after a case: is the server still there for the next one?"""
        if self._exited(attempt):
            return "died"
        if attempt.alive_after is not None:
            return "stuck"
        if attempt.silent or attempt.result.verdict == "error":
            if self.server is not None and self.server.wait_exit(0.2) is not None:
                return "died"
            if not self._quick_probe():
                return "stuck"
        return ""

    def _quick_probe(self) -> bool:
        # The full deadline even when the watchdog has learned a shorter one: a
        # server still busy with the clients a case left behind must not cost a
        # restart and a replay.
        return _probe(self.target, self.fixtures, self.options.timeout_scale)

    def _recover(self, trouble: str, suspects: list[Case], probed_alone: bool = False) -> None:
        """Bring the server back, then replay each suspect alone to see which one does it."""
        first = min(suspects, key=self._rank).id if suspects else "?"
        if not self._bring_back(trouble, first, busy_checked=probed_alone):
            for case in suspects:
                self._record(self._not_run(case))
            return
        self._replay(sorted(suspects, key=self._rank), why=trouble)

    def _replay(self, cases: list[Case], why: str) -> None:
        for index, case in enumerate(cases):
            if self._halted():
                if self.fatal:
                    for rest in cases[index:]:
                        self._record(self._not_run(rest))
                return
            replayed = self._replay_one(case)
            if replayed is not None and replayed[1] and not replayed[2]:
                # The trouble may have begun before this case: a server that leaks a
                # descriptor per connection runs out during whichever case comes when
                # it does, and that depends on --jobs. Only a server started for the
                # case can tell, as in the serial run, where suspects replay on one.
                if not self._bring_back(replayed[1], case.id, busy_checked=True):
                    self._record(self._not_run(case))
                    continue
                replayed = self._replay_one(case)
            if replayed is None:
                return
            self._settle_alone(case, *replayed)

    def _replay_one(self, case: Case) -> tuple[Attempt, str, bool] | None:
        """Play a case alone: the attempt, its trouble, and whether the server was fresh for it
        (the arguments of _settle_alone after the case); None if the run was stopped."""
        if self.log:
            self.log.add(f"[conformance: replaying {case.id} alone]\n".encode())
        fresh, self.fresh = self.fresh, False
        attempt = self._wait(case)
        if attempt is None:
            return None
        return attempt, self._trouble_after_replay(case, attempt), fresh

    def _settle_alone(self, case: Case, attempt: Attempt, trouble: str, fresh: bool) -> None:
        """Record a case that ran alone, blamed for the trouble it made, and bring the server back."""
        if trouble == "died" and self.log:
            # The dying server's last words (its traceback) may still be in the pipe.
            self.log.drained(LOG_DRAIN * self.options.timeout_scale)
            attempt.log_lines = self.log.lines(attempt.log_mark)
        result = self._finish(attempt)
        if trouble == "died":
            _blame_death(result, self.server.exit_status(), alone=True)
        elif trouble == "stuck":
            _blame_silence(result, PROBE_TIMEOUT * self.options.timeout_scale)
        self._record(result)
        if not trouble:
            self.stuck_streak = 0
            return
        self.stuck_streak = self.stuck_streak + 1 if fresh and trouble == "stuck" else 0
        if self.stuck_streak >= STUCK_STREAK:
            self.fatal = (
                f"{NOT_RUN}: the server stops answering after a request or two, even right "
                f"after a restart (the last time during {case.id})"
            )
        else:
            self._bring_back(trouble, case.id, busy_checked=True)

    def _trouble_after_replay(self, case: Case, attempt: Attempt) -> str:
        if self.server is not None:
            if any(c.read is not None for c in case.connections):
                time.sleep(SETTLE * self.options.timeout_scale)
            if self._exited(attempt):
                return "died"
        if attempt.alive_after is not None or attempt.silent:
            if self.server is not None and self.server.wait_exit(0.2) is not None:
                return "died"
            if not self._quick_probe():
                return "stuck"
        return ""

    def _bring_back(self, trouble: str, after: str, busy_checked: bool = False) -> bool:
        """Restart the server, or find it merely busy; False (and ``fatal`` set) if neither.

        Args:
            busy_checked: a probe already failed with nothing else in flight, so
                the server is not just busy with a neighbour: do not ask again.
        """
        if trouble == "stuck" and not busy_checked and _probe(
                self.target, self.fixtures, self.options.timeout_scale):
            if not self.said_busy:
                self.said_busy = True
                self.notes.append(
                    f"while cases ran beside {after}, the server answered none of them for a while; "
                    "one at a time it answered again (does it serve one client at a time?)"
                )
            return True
        if self.server is None:
            what = "stopped answering" if trouble == "stuck" else "went away"
            self.fatal = (
                f"{NOT_RUN}: the server {what} after {after}. The runner cannot restart a --target; "
                "with --spawn \"CMD {port}\" it restarts the server and goes on"
            )
            return False
        if self.server.restarts >= MAX_RESTARTS:
            self.fatal = f"{NOT_RUN}: the server was restarted {MAX_RESTARTS} times; the runner gave up"
            return False
        from .spawn import SpawnError

        try:
            self.server.restart(force=trouble == "stuck")
        except SpawnError as exc:
            self.fatal = f"{NOT_RUN}: the server could not be started again after {after}: {exc}"
            return False
        if not _probe(self.target, self.fixtures, self.options.timeout_scale):
            self.fatal = (
                f"{NOT_RUN}: restarted after {after}, the server did not answer "
                f"GET /{self.fixtures.canary_path}"
            )
            return False
        self.fresh = True
        return True


# The reason of every result for a case the runner did not run starts with this.
NOT_RUN = "not run"
