"""The bounded fuzz loop: Hypothesis draws examples, the engine plays them and checks.

This is the only module of the fuzzer with sockets, threads and clocks. One run
is a sequence of Hypothesis *rounds*. In a round Hypothesis generates examples
until one breaks an invariant not found before, then shrinks it (each kind of
invariant raises its own exception type, so the shrinker keeps to one kind); the
round ends when shrinking is done or its budget is spent, and the next round
starts from a new seed with that kind set aside. The run ends at ``examples``
examples, at ``budget`` seconds, or when the target is gone.

Every bound is in ``FuzzConfig``: per-example deadlines, bytes read per
connection (``read_cap``: a 64 MiB status line costs ``read_cap`` bytes, not 64
MiB), shrink calls and seconds per finding, consecutive failed canaries.
"""

from __future__ import annotations

import socket
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from hypothesis import HealthCheck, Phase, Verbosity, given, seed as hypothesis_seed, settings

from ..model import Connection, Observation, Part
from ..wire import EventBoard, Target, play
from . import casefile, differential, invariants
from .invariants import Violation
from .strategies import Example, examples

__all__ = ["FuzzConfig", "Finding", "FuzzReport", "Side", "run", "connection_for", "TargetGone"]


@dataclass(frozen=True)
class FuzzConfig:
    """Every limit of a run, with its unit."""

    examples: int = 1000  # examples generated (shrinking calls come on top)
    seed: int = 0  # the same seed against the same server replays the same run
    budget: float = 600.0  # seconds for the whole run, shrinking included
    timeout: float = 1.0  # seconds an example that the server must finish may take
    # An example whose ending is not judged (an incomplete request, not half-closed:
    # the server may rightly wait for the rest) is watched this long for bytes only.
    short_timeout: float = 0.15
    read_cap: int = 128 * 1024  # bytes read per connection; fixtures read whole are smaller
    shrink_calls: int = 400  # calls per finding while shrinking
    shrink_seconds: float = 30.0  # seconds per finding while shrinking
    settle: float = 0.1  # seconds after a client hung up early, before the canary
    canary_tries: int = 3  # canary attempts before it counts as failed
    canary_pause: float = 0.2  # seconds between them
    max_dead_canaries: int = 3  # consecutive failed canaries (no restart) that end the run


class TargetGone(Exception):
    """The target stopped accepting connections (or answers nothing) for good."""


class _StopRun(BaseException):
    """Ends the Hypothesis run at once (BaseException: Hypothesis does not catch it)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _StopRound(BaseException):
    """Ends the current round: the shrink budget of its finding is spent."""


# One exception type per invariant (and per disagreement class): Hypothesis tells
# failures apart by type, so it shrinks each kind without drifting to another.
_FINDING_TYPES: dict[str, type] = {}


def _finding_type(kind: str) -> type:
    if kind not in _FINDING_TYPES:
        _FINDING_TYPES[kind] = type("Finding_" + kind.replace("-", "_"), (AssertionError,), {})
    return _FINDING_TYPES[kind]


def connection_for(example: Example, config: FuzzConfig) -> Connection:
    """The wire script of an example, with the engine's bounds."""
    parts = tuple(
        Part(data=segment, pause_ms=example.pause_ms if index else 0)
        for index, segment in enumerate(example.segments)
    )
    judged = example.read is None and (example.half_close or example.valid)
    return Connection(
        name="fuzz",
        parts=parts,
        half_close=example.half_close,
        read=example.read if example.read is not None else config.read_cap,
        timeout=config.timeout if judged else config.short_timeout,
    )


def ask_canary(target: Target, path: str, content: bytes, timeout: float, cap: int) -> Observation:
    """GET the canary on a new connection; stop reading as soon as its content arrived.

    ``wire.play`` reads to the end, which a server that never closes turns into a
    full deadline per example; the probe only needs the bytes. Never raises.
    """
    obs = Observation(name="canary", sent=f"GET /{path} HTTP/1.0\r\n\r\n".encode("latin-1"))
    deadline = time.monotonic() + timeout
    received = bytearray()
    try:
        with socket.create_connection((target.host, target.port), timeout=timeout) as sock:
            sock.sendall(obs.sent)
            while len(received) < cap and content not in received:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    obs.end = "timeout"
                    break
                sock.settimeout(remaining)
                chunk = sock.recv(min(65536, cap - len(received)))
                if not chunk:
                    obs.end = "closed"
                    break
                received += chunk
    except ConnectionRefusedError:
        obs.end = "refused"
    except ConnectionResetError:
        obs.end = "reset"
    except socket.timeout:
        obs.end = "timeout"
    except OSError as exc:
        obs.end, obs.error = "error", str(exc)
    obs.received = bytes(received)
    obs.received_total = len(received)
    return obs


class Side:
    """One server the engine talks to: a target address, and the process if spawned.

    ``server`` is a ``conformance.spawn.SpawnedServer`` (or anything with
    ``exit_status()``, ``restart()`` and ``log_path``) when the engine may restart
    it and read its output; None for ``--target``.
    """

    def __init__(self, target: Target, server=None, name: str = "target"):
        self.target = target
        self.server = server
        self.name = name
        self._log_offset = self._log_size()

    def _log_size(self) -> int:
        path = getattr(self.server, "log_path", None)
        try:
            return Path(path).stat().st_size if path else 0
        except OSError:
            return 0

    def play(self, conn: Connection) -> Observation:
        return play(conn, self.target, EventBoard([conn.name]))

    def exit_status(self) -> int | None:
        return None if self.server is None else self.server.exit_status()

    def restart(self) -> None:
        if self.server is not None:
            self.server.restart()
            self.target = Target(self.server.host, self.server.port)

    def new_output(self, limit: int = 1 << 20) -> bytes:
        """What the spawned server printed since the last call (at most ``limit`` bytes)."""
        path = getattr(self.server, "log_path", None)
        if not path:
            return b""
        size = self._log_size()
        if size <= self._log_offset:
            self._log_offset = size
            return b""
        start = max(self._log_offset, size - limit)
        try:
            with open(path, "rb") as fh:
                fh.seek(start)
                data = fh.read(size - start)
        except OSError:
            data = b""
        self._log_offset = size
        return data


@dataclass
class Finding:
    """The smallest example seen that broke one invariant (or one disagreement class)."""

    kind: str
    detail: str
    example: Example
    found_after: int  # examples generated when it was first seen
    count: int = 0  # generated examples that broke it
    shrunk: bool = False  # a round shrank this kind
    name: str = ""
    case_path: str = ""
    reproducer: str = ""
    problems: list[str] = field(default_factory=list)  # what `check` said of the case file
    runner_verdict: str = ""  # the runner's verdict on the case against the target


@dataclass
class FuzzReport:
    examples: int = 0
    shrink_calls: int = 0
    rounds: int = 0
    elapsed: float = 0.0
    stop_reason: str = ""
    findings: list[Finding] = field(default_factory=list)
    classes: dict[str, int] = field(default_factory=dict)  # differential: class -> examples
    known: dict[str, int] = field(default_factory=dict)  # differential: known rule -> examples
    restarts: int = 0
    error: str = ""  # an internal error of the fuzzer, with its traceback


def _size_key(example: Example) -> tuple:
    return (len(example.data), len(example.cuts), len(example.mutations), example.data)


class _Run:
    """The state one run shares between the engine and the Hypothesis test body."""

    def __init__(self, config: FuzzConfig, side: Side, other: Side | None, fixtures_info: dict,
                 progress: Callable | None):
        self.config = config
        self.side = side
        self.other = other
        self.secret: bytes = fixtures_info["secret"]
        self.canary_path: str = fixtures_info["canary_path"]
        self.canary_data: bytes = fixtures_info["canary_data"]
        self.progress = progress
        self.report = FuzzReport()
        self.best: dict[str, Finding] = {}
        self.done: set[str] = set()  # kinds a round has shrunk: no longer raised
        self.round_kind: str | None = None
        self.round_started = 0.0
        self.round_calls = 0
        self.dead_canaries = 0
        self.gone = ""
        self.start = time.monotonic()
        self.deadline = self.start + config.budget
        self.last_progress = 0.0
        self.paths: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())

    # -- the Hypothesis test body (runs in the engine's thread) ---------------------

    def body(self, example: Example) -> None:
        now = time.monotonic()
        if now > self.deadline:
            raise _StopRun(f"the time budget of {self.config.budget:g} s was spent")
        if self.gone:
            raise _StopRun(self.gone)
        shrinking = self.round_kind is not None
        if shrinking:
            if (self.round_calls >= self.config.shrink_calls
                    or now - self.round_started > self.config.shrink_seconds):
                raise _StopRound()
            self.round_calls += 1
            self.report.shrink_calls += 1
        else:
            if self.report.examples >= self.config.examples:
                raise _StopRun(f"{self.config.examples} examples were run")
            self.report.examples += 1
        try:
            violations = self.evaluate(example, count=not shrinking)
        except TargetGone as exc:
            self.gone = str(exc)
            raise _StopRun(self.gone) from None
        except Exception:
            self.report.error = traceback.format_exc()
            raise _StopRun("an internal error of the fuzzer (see below)") from None
        self._tick(now)
        for violation in violations:
            self._record(violation, example, count=not shrinking)
        fresh = [v for v in violations if v.kind not in self.done]
        if not fresh:
            return
        if self.round_kind is None:
            self.round_kind = fresh[0].kind
            self.round_started = now
        chosen = next((v for v in fresh if v.kind == self.round_kind), fresh[0])
        raise _finding_type(chosen.kind)(chosen.detail)

    def _record(self, violation: Violation, example: Example, count: bool) -> None:
        best = self.best.get(violation.kind)
        if best is None:
            best = self.best[violation.kind] = Finding(violation.kind, violation.detail, example,
                                                       self.report.examples)
        elif violation.kind not in self.done and _size_key(example) < _size_key(best.example):
            best.example, best.detail = example, violation.detail
        if count:
            best.count += 1

    def _tick(self, now: float) -> None:
        if self.progress is not None and now - self.last_progress >= 0.5:
            self.last_progress = now
            self.progress(self.report, len(self.best), now - self.start)

    # -- one example --------------------------------------------------------------------

    def evaluate(self, example: Example, count: bool) -> list[Violation]:
        conn = connection_for(example, self.config)
        obs = self.side.play(conn)
        if obs.end == "refused":
            obs = self._after_refusal(conn)
        violations = invariants.check_exchange(example, obs, self.secret)
        if example.read is not None:
            time.sleep(self.config.settle)  # let the server run into the closed socket
        canary = self._canary()
        if canary is not None:
            violations.append(canary)
        if self.side.server is not None:
            printed = invariants.check_output(self.side.new_output())
            if printed is not None:
                violations.append(printed)
        if self.other is not None:
            disagreement = self._compare(example, conn, obs, count)
            if disagreement is not None:
                violations.append(disagreement)
        return violations

    def _after_refusal(self, conn: Connection) -> Observation:
        """The target refused a new connection although the last canary was served."""
        if self.side.server is None:
            raise TargetGone(f"{self.side.target} refused a connection")
        self.side.restart()
        self.report.restarts += 1
        obs = self.side.play(conn)
        if obs.end == "refused":
            raise TargetGone(f"{self.side.target} refuses connections even after a restart")
        return obs

    def _canary(self) -> Violation | None:
        for attempt in range(self.config.canary_tries):
            if attempt:
                time.sleep(self.config.canary_pause)
            status = self.side.exit_status()
            if status is not None:
                break
            obs = ask_canary(self.side.target, self.canary_path, self.canary_data,
                             self.config.timeout, self.config.read_cap)
            if self.canary_data in obs.received:
                self.dead_canaries = 0
                return None
        status = self.side.exit_status()
        violation = invariants.check_canary(obs if status is None else Observation("canary"), self.canary_data, status)
        if self.side.server is not None:
            self.side.restart()
            self.report.restarts += 1
        else:
            self.dead_canaries += 1
            if self.dead_canaries >= self.config.max_dead_canaries:
                self.gone = (f"{self.side.target} did not serve the canary after "
                             f"{self.dead_canaries} examples in a row (it died, resets "
                             "every connection or answers garbage)")
        return violation

    def _compare(self, example: Example, conn: Connection, obs: Observation, count: bool) -> Violation | None:
        other = self.other.play(conn)
        if other.end == "refused" and self.other.server is not None:
            self.other.restart()
            other = self.other.play(conn)
        if other.end == "refused":
            raise TargetGone(f"the other server {self.other.target} refused a connection")
        got = differential.classify(example, differential.answer_of(obs), differential.answer_of(other))
        if got is None:
            return None
        if count:
            self.report.classes[got.cls] = self.report.classes.get(got.cls, 0) + 1
            if got.known:
                self.report.known[got.known] = self.report.known.get(got.known, 0) + 1
        if got.known:
            return None
        return Violation("differ-" + got.cls, got.detail)

    # -- rounds -------------------------------------------------------------------------

    def run_round(self, number: int) -> bool:
        """One Hypothesis run; True when the run as a whole should go on."""
        self.round_kind = None
        self.round_calls = 0
        remaining = max(1, self.config.examples - self.report.examples)
        paths, large = self.paths

        @hypothesis_seed(self.config.seed * 1009 + number)
        @settings(max_examples=remaining, database=None, deadline=None, derandomize=False,
                  phases=(Phase.generate, Phase.shrink), report_multiple_bugs=False,
                  suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet,
                  print_blob=False)
        @given(examples(paths, large))
        def fuzz(example):
            self.body(example)

        self.report.rounds += 1
        try:
            fuzz()
        except _StopRun as stop:
            self.report.stop_reason = stop.reason
            return False
        except _StopRound:
            pass
        except Exception:
            pass  # Hypothesis re-raised the shrunk finding (or found it flaky): recorded
        else:
            self.report.stop_reason = f"{self.report.examples} examples were run"
            return False
        finally:
            if self.round_kind is not None:
                self.done.add(self.round_kind)
                # A target that went away mid-round left the example as first seen.
                self.best[self.round_kind].shrunk = not self.gone
        return True


def run(config: FuzzConfig, side: Side, fixtures_info: dict, paths: tuple[tuple[str, ...], tuple[str, ...]],
        other: Side | None = None, progress: Callable | None = None) -> FuzzReport:
    """Fuzz one target until the examples, the budget or the target run out.

    Args:
        config: the limits.
        side: the target (with its process under --spawn, so it can be restarted).
        fixtures_info: {"secret": bytes, "canary_path": str, "canary_data": bytes}.
        paths: (small fixture files for valid GETs, large ones for early closes).
        other: the server to compare with (differential mode), or None.
        progress: called as progress(report, findings, elapsed) about twice a second.

    Returns:
        The report; findings are the smallest example seen per invariant broken.
    """
    state = _Run(config, side, other, fixtures_info, progress)
    state.paths = paths
    number = 0
    while state.run_round(number):
        number += 1
        if time.monotonic() > state.deadline:
            state.report.stop_reason = f"the time budget of {config.budget:g} s was spent"
            break
    state.report.elapsed = round(time.monotonic() - state.start, 2)
    state.report.findings = sorted(state.best.values(), key=lambda f: f.found_after)
    return state.report


def write_cases(report: FuzzReport, out_dir: Path, source_cases: Path, target_text: str,
                secret: bytes, seed: int) -> Path:
    """Write one case file per invariant finding into ``out_dir/fuzz/`` and check them.

    Disagreement findings (``differ-*``) are reported, not written: a difference
    from another server is a question, not yet a requirement.

    Returns:
        The folder of the case files.
    """
    from ..check import check_corpus

    folder = casefile.prepare_corpus(out_dir, source_cases)
    written = []
    for finding in report.findings:
        if finding.kind not in invariants.KINDS:
            finding.reproducer = casefile.reproducer(finding.example, target_text, out_dir, "")
            if finding.reproducer.startswith("python"):
                finding.reproducer = "(sent in pieces; see the example description)"
            continue
        finding.name = casefile.case_name(finding.kind, finding.example)
        path = folder / f"{finding.name}.toml"
        path.write_text(casefile.case_text(finding.kind, finding.example, finding.detail, secret,
                                           seed, finding.found_after), encoding="utf-8")
        finding.case_path = str(path)
        finding.reproducer = casefile.reproducer(finding.example, target_text, out_dir, finding.name)
        written.append(finding)
    if written:
        problems = check_corpus(out_dir)
        for finding in written:
            finding.problems = [p for p in problems if f"{finding.name}.toml" in p]
    return folder


def verify_cases(report: FuzzReport, out_dir: Path, side: Side) -> None:
    """Run each written case with the runner against the target; record its verdict."""
    from ..docroot import Fixtures
    from ..loader import load_case
    from ..runner import Options, run_case

    fixtures = Fixtures(out_dir)
    for finding in report.findings:
        if not finding.case_path or finding.problems:
            continue
        try:
            case = load_case(finding.case_path, out_dir)
            result = run_case(case, side.target, fixtures, Options(), side.server)
            finding.runner_verdict = result.verdict
        except Exception as exc:  # the runner is not ours to debug here: say so
            finding.runner_verdict = f"error: {exc}"
