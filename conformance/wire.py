"""Plays one scripted connection over TCP and records what came back.

This module and ``runner`` are the only places with sockets, threads and clocks.
Everything here is bounded: every socket call has a timeout derived from the
connection's deadline, every wait on another connection's events ends at that
deadline, and what is read is capped in size.
"""

from __future__ import annotations

import errno
import fnmatch
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass

from .model import Connection, Observation
from .parse import framed_length, is_simple_response, request_method

__all__ = ["Target", "EventBoard", "CloseGrace", "play", "send_part", "MAX_KEEP", "HEAD_KEEP"]

# Bytes of a response kept for judging; past it only the count grows. Large enough
# for the biggest fixture (8 MiB) with room to spare, small enough that 32 parallel
# downloads stay well under a gigabyte.
MAX_KEEP = 64 * 1024 * 1024

# A gated reader shrinks its receive buffer so that a server which serves one client
# at a time cannot finish a large file into socket buffers and look concurrent.
GATED_RCVBUF = 64 * 1024

# Bytes kept of a response no body expectation needs to see whole: its head and
# enough of the body to quote. Past it only the count grows, so a server that sends
# an endless body or a gigabyte of headers costs the runner no memory.
HEAD_KEEP = 256 * 1024

# While the head has not ended after this many bytes, framing is not looked for.
HEAD_LIMIT = 64 * 1024

RECV_SIZE = 256 * 1024

# Reads that may still take bytes already waiting once the deadline has passed.
LATE_READS = 64


@dataclass(frozen=True)
class Target:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class EventBoard:
    """Timestamps of the events the connections of one case publish.

    Shared by the threads that play a scenario's connections; the condition guards
    ``times`` and ``done``.
    """

    def __init__(self, names: list[str]):
        self.names = list(names)
        self.start = time.monotonic()
        self.times: dict[str, float] = {}
        self.aborted = ""  # why the runner ended the connections early, "" while it has not
        self._done: set[str] = set()
        self._sockets: list[socket.socket] = []
        self._cond = threading.Condition()

    def register(self, sock: socket.socket) -> None:
        """Note a connection's socket, so that ``abort`` can end it."""
        with self._cond:
            self._sockets.append(sock)
            if self.aborted:
                _shutdown(sock)

    def abort(self, reason: str) -> None:
        """End every connection now: waits return, reads and writes stop.

        The runner's scenario watchdog calls this when the server has shown it
        answers nobody while a client holds its request back; waiting out every
        deadline would teach nothing more.
        """
        with self._cond:
            if self.aborted:
                return
            self.aborted = reason
            for sock in self._sockets:
                _shutdown(sock)
            self._cond.notify_all()

    def now(self) -> float:
        return time.monotonic() - self.start

    def emit(self, name: str, event: str, at: float | None = None) -> None:
        """Publish ``event``, timed now or at ``at`` (a ``time.monotonic()`` reading)."""
        when = self.now() if at is None else at - self.start
        with self._cond:
            self.times.setdefault(f"{name}.{event}", when)
            if event == "done":
                self._done.add(name)
            self._cond.notify_all()

    def _state(self, globs: tuple[str, ...]) -> str:
        """'yes' when every glob is satisfied, 'never' when one cannot be any more."""
        for glob in globs:
            conn_glob, _, event = glob.rpartition(".")
            matched = [n for n in self.names if fnmatch.fnmatchcase(n, conn_glob)]
            if not matched:
                return "never"
            for name in matched:
                if f"{name}.{event}" in self.times:
                    continue
                return "never" if name in self._done else "no"
        return "yes"

    def events_of(self, name: str) -> dict[str, float]:
        """A copy of one connection's events, taken while no other thread adds one."""
        with self._cond:
            return {k: v for k, v in self.times.items() if k.startswith(name + ".")}

    def snapshot(self) -> dict[str, float]:
        with self._cond:
            return dict(self.times)

    def state(self, globs: tuple[str, ...]) -> str:
        """'yes', 'no' (not yet) or 'never' for a set of event globs, right now."""
        with self._cond:
            return self._state(globs)

    def wait(self, globs: tuple[str, ...], deadline: float) -> bool:
        """Wait until every glob is satisfied or the monotonic ``deadline`` passes."""
        if not globs:
            return True
        with self._cond:
            while True:
                state = self._state(globs)
                if state != "no":
                    return state == "yes"
                if self.aborted:
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.5))


# SO_LINGER on, 0 seconds: close() resets the connection instead of ending it.
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)


def _shutdown(sock: socket.socket) -> None:
    """End a connection the runner gives up on: wake our reader now, reset it at close.

    A plain close leaves a server that is blocked sending into our full window
    waiting for its zero-window probes to meet the closed socket, which takes
    seconds of back-off; a one-client-at-a-time server then answers nobody for
    that long after the case. The reset frees it at once.
    """
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _connect(target: Target, timeout: float, rcvbuf: int | None) -> socket.socket:
    last: OSError | None = None
    try:
        addresses = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"the host {target.host!r} does not resolve: {exc.strerror or exc}") from None
    for family, kind, proto, _, addr in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            if rcvbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(timeout)
            sock.connect(addr)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    raise last or OSError(f"cannot resolve {target.host}")


def send_part(sock: socket.socket, payload: bytes, chunk: int, pause: float, deadline: float) -> float:
    """Send ``payload`` in writes of ``chunk`` bytes (0: one write), ``pause`` seconds apart.

    Used for both sides: requests here, the scripted server's responses in client_runner.
    Returns the monotonic time just before the last write began: the earliest moment
    the peer could have had the whole part.
    """
    step = chunk if chunk > 0 else max(len(payload), 1)
    last = time.monotonic()
    for offset in range(0, len(payload), step):
        if offset and pause:
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        last = time.monotonic()
        sock.sendall(payload[offset : offset + step])
    return last


def play(conn: Connection, target: Target, board: EventBoard, scale: float = 1.0,
         grace: CloseGrace | None = None, keep: int = MAX_KEEP) -> Observation:
    """Connect, send ``conn``'s parts, read the answer; never raises on network errors.

    Args:
        conn: the scripted connection.
        target: where to connect.
        board: publishes this connection's events and serves its waits.
        scale: multiplies every timeout (``--timeout-scale``).
        grace: how long a response complete by its framing may stay open (shared
            by a run, so it learns a server that never closes); a fresh one if None.
        keep: bytes of the response kept for judging; past it only the count grows.

    Returns:
        The observation: bytes sent and received, how reading ended ("open": the
        response was complete by its framing and the server did not close within
        the grace), event times.
    """
    obs = Observation(name=conn.name)
    limit = conn.timeout * scale
    try:
        if not board.wait(conn.start_after, time.monotonic() + limit):
            board.emit(conn.name, "wait_timeout")
        deadline = time.monotonic() + limit
        try:
            sock = _connect(target, limit, GATED_RCVBUF if conn.read_gate else None)
        except ConnectionRefusedError as exc:
            obs.end, obs.error = "refused", f"connection refused by {target} ({exc.strerror})"
            return obs
        except socket.timeout:
            obs.end, obs.error = "error", f"connecting to {target} timed out after {limit:.1f} s"
            return obs
        except OSError as exc:
            obs.end, obs.error = "error", f"cannot connect to {target}: {exc}"
            return obs
        with sock:
            board.register(sock)
            board.emit(conn.name, "connected")
            if _send(conn, sock, obs, board, deadline) and conn.read != 0:
                _receive(conn, sock, obs, board, deadline, grace or CloseGrace(scale), keep)
            elif conn.read == 0:
                obs.end = "limit"
            if board.aborted and obs.end in ("closed", "reset", "error"):
                # Our own shutdown ended it: to the judge, the server never finished.
                obs.end, obs.error = "timeout", board.aborted
    finally:
        board.emit(conn.name, "done")
        obs.events = board.events_of(conn.name)
    return obs


def _send(conn: Connection, sock: socket.socket, obs: Observation, board: EventBoard, deadline: float) -> bool:
    """Send every part; False when the server closed on us while we were sending."""
    sent = bytearray()
    try:
        for number, part in enumerate(conn.parts, start=1):
            if part.wait_for:
                waited = _wait_watching(sock, board, part.wait_for, deadline)
                if waited == "server":
                    # The server answered or closed while we held the rest back (a
                    # timeout, an early error): stop sending and read what it did.
                    board.emit(conn.name, "interrupted")
                    obs.error = f"the server answered or closed after {len(sent)} request bytes, while the client waited"
                    return True
                if waited != "yes":
                    board.emit(conn.name, "wait_timeout")
            if part.pause_ms:
                time.sleep(min(part.pause_ms / 1000, max(0.0, deadline - time.monotonic())))
            payload = part.payload
            began = send_part(sock, payload, part.chunk, part.chunk_pause_ms / 1000, deadline)
            sent += payload
            # Stamped when the last write began, published once it is sent: a server
            # that answers another client only after reading this part's last byte
            # cannot then be timed before it, however late this thread gets the GIL.
            board.emit(conn.name, f"part-{number}", at=began)
        board.emit(conn.name, "sent")
        if conn.half_close:
            sock.shutdown(socket.SHUT_WR)
        return True
    except socket.timeout:
        obs.error = f"sending timed out after {len(sent)} bytes (the server stopped reading)"
        return True
    except OSError as exc:
        # The server may legitimately answer and close before we finish sending
        # (an early 400 or 414): what it sent is still worth reading.
        obs.error = f"the server closed the connection after {len(sent)} request bytes ({_errname(exc)})"
        return True
    finally:
        obs.sent = bytes(sent)


# How often a connection that holds back the rest of its request looks for the server
# closing it; a server's read timeout is seconds, so 20 ms is plenty fine-grained.
WATCH_INTERVAL = 0.02


def _wait_watching(sock: socket.socket, board: EventBoard, globs: tuple[str, ...], deadline: float) -> str:
    """Wait for ``globs`` while watching the socket: 'yes', 'never', 'timeout' or 'server'."""
    while True:
        state = board.state(globs)
        if state != "no":
            # One last look: the server may have closed on us just before the other
            # connection's event, and that order is what a scenario judges.
            return "server" if _readable(sock, 0) else state
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "timeout"
        if _readable(sock, min(WATCH_INTERVAL, remaining)):
            return "server"


def _readable(sock: socket.socket, timeout: float) -> bool:
    readable, _, _ = select.select([sock], [], [], timeout)
    return bool(readable)


class Tally:
    """Evidence for and against a server habit, counted by the threads of a run.

    ``shows(after, ratio)``: at least ``after`` observations against, and more than
    ``ratio`` times as many as for (``ratio=None``: none for at all).
    """

    def __init__(self):
        self._against = 0
        self._for = 0
        self._lock = threading.Lock()

    def record(self, against: bool) -> None:
        with self._lock:
            if against:
                self._against += 1
            else:
                self._for += 1

    def shows(self, after: int, ratio: float | None) -> bool:
        with self._lock:
            if self._against < after:
                return False
            return not self._for if ratio is None else self._against > ratio * self._for


class CloseGrace:
    """How long a complete response may stay open before the runner stops reading.

    HTTP/1.0 ends a response by closing, and a correct server closes right after
    the last byte. A server that never closes would otherwise cost every case its
    whole timeout; with the grace it costs ``FULL`` seconds, and once at least
    ``LEARN_AFTER`` complete responses stayed open, and more than twice as many as
    were closed within the grace, only ``LEARNED`` seconds; once ``NEVER_AFTER`` stayed
    open and none was closed, ``NEVER``. (Many such servers close on some error paths
    and not after a file, so a streak would never form.) Only a server that closes
    between two graces could be judged differently by the order cases ran in.
    Shared by the threads of a run.
    """

    FULL = 1.0
    LEARNED = 0.05
    LEARN_AFTER = 3
    # A server that has left this many complete responses open and closed none
    # (it leaks every socket) gets only a moment: its close is not late, it is absent.
    NEVER = 0.01
    NEVER_AFTER = 10

    # Once learned, a response that only a close can end (a Simple-Response, or no
    # Content-Length) is over when no byte came for this long: the close it waits
    # for is the one this server does not make.
    IDLE = 0.5

    def __init__(self, scale: float = 1.0):
        self.scale = scale
        self._tally = Tally()

    def learned(self) -> bool:
        """Whether this server has shown that it leaves responses open."""
        return self._tally.shows(self.LEARN_AFTER, ratio=2)

    def seconds(self) -> float:
        if self._tally.shows(self.NEVER_AFTER, ratio=None):
            return self.NEVER * self.scale
        return (self.LEARNED if self.learned() else self.FULL) * self.scale

    def idle(self) -> float | None:
        """How long an unframed response may pause before it counts as ended; None: until the deadline."""
        return self.IDLE * self.scale if self.learned() else None

    def record(self, closed: bool) -> None:
        self._tally.record(against=not closed)


def _receive(conn: Connection, sock: socket.socket, obs: Observation, board: EventBoard,
             deadline: float, grace: CloseGrace, keep: int) -> None:
    received = bytearray()
    total = 0
    gated = bool(conn.read_gate)
    want = conn.read
    late_reads = 0
    method = request_method(obs.sent)
    framed: int | None = None  # total length the response's framing announces
    head_seen = False
    by_close = False  # only the server's close can end this response
    may_idle = want is None and not gated
    complete = False
    until = deadline
    if conn.half_close and not gated and (idle := grace.idle()) is not None:
        # The server has the whole request and its end, and has shown it leaves
        # connections open: silence for the idle time is the answer it will give
        # (a never-closing server made each half-closed case wait its whole timeout).
        until = min(deadline, time.monotonic() + idle)
    try:
        while True:
            remaining = until - time.monotonic()
            if remaining <= 0:
                if complete:
                    # Complete by its framing and still open after the grace.
                    obs.end = "open"
                    grace.record(False)
                    break
                # Past the deadline (sending may have used it all), still take what
                # has already arrived, a bounded number of times, without waiting.
                late_reads += 1
                if late_reads > LATE_READS:
                    obs.end = "timeout"
                    break
                sock.setblocking(False)
            else:
                sock.settimeout(remaining)
            size = RECV_SIZE if want is None else min(RECV_SIZE, want - total)
            try:
                chunk = sock.recv(size)
            except BlockingIOError:
                obs.end = "open" if complete else "timeout"
                break
            if not chunk:
                obs.end = "closed"
                if complete:
                    grace.record(True)
                elif not board.aborted:
                    board.emit(conn.name, "complete")
                break
            if total == 0:
                board.emit(conn.name, "first_byte")
                until = deadline  # an answer has begun: the rules below take over
            total += len(chunk)
            if len(received) < keep:
                received += chunk[: keep - len(received)]
            if want is not None and total >= want:
                obs.end = "limit"
                break
            if not head_seen and len(received) == total:
                framed = framed_length(bytes(received), method)
                head_seen = framed is not None or _head_ended(received) or is_simple_response(received)
                by_close = head_seen and framed is None
            if by_close and may_idle and (idle := grace.idle()) is not None:
                until = min(deadline, time.monotonic() + idle)
            if not complete and framed is not None and total >= framed:
                complete = True
                board.emit(conn.name, "complete")
                # The close follows the last byte: a response complete just at the
                # deadline still gets its grace.
                until = time.monotonic() + grace.seconds()
            if gated:
                gated = False
                if not board.wait(conn.read_gate, deadline):
                    board.emit(conn.name, "wait_timeout")
    except socket.timeout:
        if complete:
            obs.end = "open"
            grace.record(False)
        else:
            obs.end = "timeout"
    except ConnectionResetError:
        obs.end = "reset"
        if not complete and not board.aborted:
            board.emit(conn.name, "complete")
    except OSError as exc:
        obs.end, obs.error = "error", f"reading failed: {_errname(exc)}"
    obs.received = bytes(received)
    del received  # the copy above is the one kept: free the buffer before the next case
    obs.received_total = total


def _head_ended(received: bytearray) -> bool:
    """The head is over (so framing can no longer become known) or is past all reason."""
    return b"\n\n" in received or b"\n\r\n" in received or len(received) > HEAD_LIMIT


def _errname(exc: OSError) -> str:
    if exc.errno in errno.errorcode:
        return f"{errno.errorcode[exc.errno]}: {exc.strerror}"
    return str(exc)
