"""Starts the server under test (``--spawn``), watches it and always stops it.

The command is split like a shell would split it, but no shell runs it: each
argument gets ``{port}``, ``{root}``, ``{host}`` and ``{scratch}`` substituted. The
server runs in its own process group with the served root as its working
directory, so stopping the group also stops whatever it forked.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

__all__ = [
    "SpawnError",
    "SpawnedServer",
    "ServerLog",
    "anchor",
    "free_port",
    "group_alive",
    "proc_stat",
    "render_command",
    "stop_group",
    "is_listening",
    "listening_ports",
    "listening_pids",
    "marked_pids",
    "socket_inodes",
    "kill_process",
]

# How long a server may take to start listening: Java and Node servers need about
# 150 ms here, a cold Python import several hundred; 15 s leaves room on a busy CI.
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
POLL_INTERVAL = 0.02


class SpawnError(Exception):
    """The server could not be started; the message says why and what it printed."""


def free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def render_command(template: str, **values: str) -> list[str]:
    """Split ``template`` like a shell and substitute placeholders in each argument.

    Raises:
        SpawnError: the template does not split (an unclosed quote) or names an
            unknown placeholder.
    """
    try:
        argv = shlex.split(template)
    except ValueError as exc:
        raise SpawnError(f"cannot split the spawn command {template!r}: {exc}") from None
    if not argv:
        raise SpawnError("the spawn command is empty")
    out = []
    for arg in argv:
        try:
            out.append(arg.format(**values))
        except (KeyError, IndexError, ValueError) as exc:
            known = ", ".join("{%s}" % k for k in values)
            raise SpawnError(f"bad placeholder in spawn argument {arg!r} ({exc}); known: {known}") from None
    return out


def group_alive(pgid: int) -> bool:
    """Whether a process group still has a live (non-zombie) member."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not Path("/proc").is_dir():
        return True
    return bool(group_pids(pgid))


def stop_group(proc: subprocess.Popen, grace: float = 5.0) -> bool:
    """SIGTERM the process group, SIGKILL what is left after ``grace`` seconds.

    Waits for every member of the group (forking servers such as mini_httpd keep
    the listening socket in their children), not just the leader. True if the
    group is gone.
    """
    pgid = proc.pid
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if proc.poll() is not None and not group_alive(pgid):
                return True
            time.sleep(0.02)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        return False
    return not group_alive(pgid)


def anchor(arg: str) -> str:
    """Make a relative path to an existing file absolute.

    The server runs inside the fixture root, but ``--spawn "python3 server.py
    {port}"`` names server.py where the user typed it: such a path is resolved
    against the current directory before the working directory changes.
    """
    if arg.startswith("-") or os.path.isabs(arg) or not os.path.exists(arg):
        return arg
    return os.path.abspath(arg)


# The server's own output is kept up to this many bytes (a server that prints
# megabytes per request must not fill the disk or the runner's memory); past it
# only the count grows.
LOG_LIMIT = 4 * 1024 * 1024

# Lines of a case's window of the server log that a report quotes, and their width.
LOG_LINES = 30
LOG_WIDTH = 300

# Environment variable set in every spawned server: its descendants inherit it, so
# a process that detached with setsid() or a double fork is still found at stop.
MARKER = "CONFORMANCE_SPAWN_ID"


class ServerLog:
    """The spawned server's stdout and stderr, read from a pipe by a thread of its own.

    The reader keeps draining the pipe whatever the size, so a chatty server never
    blocks on a full pipe; it keeps the first ``LOG_LIMIT`` bytes. Offsets into the
    kept bytes mark the windows of cases. The lock guards ``_data`` and ``dropped``.
    """

    def __init__(self, limit: int = LOG_LIMIT):
        self.limit = limit
        self.dropped = 0
        self._data = bytearray()
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None

    def follow(self, fd: int) -> threading.Thread:
        thread = threading.Thread(target=self._drain, args=(fd,), name="server-log", daemon=True)
        self._reader = thread
        thread.start()
        return thread

    def drained(self, timeout: float) -> bool:
        """Wait until the pipe of the server that last started is read to its end.

        Why: a process that dies on a request writes its traceback as it exits, and
        the reader thread may not have read it yet when the runner sees the exit; the
        blamed case must quote it. The end comes once every process holding the pipe
        has exited, so a child left behind costs ``timeout`` and no more.
        """
        reader = self._reader
        if reader is None:
            return True
        reader.join(timeout)
        return not reader.is_alive()

    def _drain(self, fd: int) -> None:
        try:
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return
                self.add(chunk)
        except OSError:
            return
        finally:
            os.close(fd)

    def add(self, chunk: bytes) -> None:
        with self._lock:
            room = self.limit - len(self._data)
            if room > 0:
                self._data += chunk[:room]
            self.dropped += max(0, len(chunk) - max(room, 0))

    def mark(self) -> int:
        with self._lock:
            return len(self._data)

    def text(self, start: int = 0, end: int | None = None) -> str:
        with self._lock:
            return bytes(self._data[start:end]).decode("utf-8", "replace")

    def lines(self, start: int, end: int | None = None, count: int = LOG_LINES) -> list[str]:
        """The last ``count`` lines written between two marks, each cut at LOG_WIDTH."""
        lines = [line.rstrip() for line in self.text(start, end).splitlines() if line.strip()]
        if len(lines) > count:
            lines = [f"... ({len(lines) - count} earlier lines)"] + lines[-count:]
        return [line if len(line) <= LOG_WIDTH else line[: LOG_WIDTH - 3] + "..." for line in lines]

    def save(self, path: Path) -> None:
        with self._lock:
            data = bytes(self._data)
        note = f"\n[... {self.dropped} more bytes not kept]\n".encode() if self.dropped else b""
        path.write_bytes(data + note)


class SpawnedServer:
    """A server process the runner owns.

    ``start`` returns once the server listens on its port, learnt from the kernel's
    table of listening sockets, never by connecting: a connection that sends
    nothing is exactly what kills many student servers. ``stop`` ends the whole
    process group and every process that carries this server's marker or holds its
    port. The lock guards the process handle against concurrent restarts from the
    runner's worker threads.
    """

    def __init__(self, argv: list[str], root: Path, host: str, port: int, scratch: Path,
                 env: dict[str, str] | None = None):
        self.argv = list(argv)
        self.root = Path(root)
        self.host = host
        self.port = port
        self.scratch = Path(scratch)
        self.marker = f"{os.getpid()}-{port}-{time.monotonic_ns()}"
        self.env = {**(os.environ if env is None else env), MARKER: self.marker}
        self.proc: subprocess.Popen | None = None
        self.log = ServerLog()
        self.restarts = 0
        self.generation = 0
        self.stray: list[int] = []  # pids found outside the group at a stop
        self._lock = threading.Lock()

    @staticmethod
    def make_scratch() -> Path:
        scratch = Path(tempfile.mkdtemp(prefix="conformance-scratch-"))
        # Some servers (lighttpd, webfs) drop privileges before writing here.
        os.chmod(scratch, 0o777)
        return scratch

    @classmethod
    def from_template(cls, template: str, root: Path, host: str = "127.0.0.1",
                      port: int | None = None) -> "SpawnedServer":
        """A server from a ``--spawn`` command line with placeholders."""
        port = port or free_port(host)
        scratch = cls.make_scratch()
        argv = render_command(template, port=str(port), root=str(root), host=host, scratch=str(scratch))
        return cls([anchor(arg) for arg in argv], root, host, port, scratch)

    def start(self) -> None:
        with self._lock:
            self._start()

    def _start(self) -> None:
        self.log.add(f"[conformance: starting {shlex.join(self.argv)}]\n".encode())
        read_end, write_end = os.pipe()
        try:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=write_end,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        except OSError as exc:
            os.close(read_end)
            raise SpawnError(f"cannot start {self.argv[0]!r}: {exc.strerror or exc}") from None
        finally:
            os.close(write_end)
        self.log.follow(read_end)
        self.generation += 1
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                time.sleep(0.1)  # the last words of a crash are still in the pipe
                raise SpawnError(
                    f"the server exited with status {self.proc.returncode} before listening on "
                    f"{self.host}:{self.port}; its output:\n{self.output_tail()}"
                )
            if is_listening(self.port, self.host):
                return
            time.sleep(POLL_INTERVAL)
        elsewhere = sorted(set(listening_ports(self.pids())) - {self.port})
        self._stop()
        where = (
            f"it listens on port {', '.join(map(str, elsewhere))} instead: take the port from "
            "the command line ({port}), do not hard-code it"
            if elsewhere else "does it take the port from {port} in the command?"
        )
        raise SpawnError(
            f"the server did not listen on {self.host}:{self.port} within {START_TIMEOUT:.0f} s "
            f"({where}); its output:\n{self.output_tail()}"
        )

    def output_tail(self, lines: int = 15) -> str:
        tail = [line for line in self.log.lines(0, count=lines) if not line.startswith("[conformance:")]
        return "\n".join("  | " + line for line in tail) or "  (no output)"

    def pids(self) -> list[int]:
        """Every live process of this server: its group and whatever carries its marker."""
        return marked_pids(self.marker) | group_pids(self.proc.pid if self.proc else None)

    def exit_status(self) -> int | None:
        with self._lock:
            return None if self.proc is None else self.proc.poll()

    def wait_exit(self, timeout: float) -> int | None:
        """The exit status once the server has exited, or None if it still runs after ``timeout``."""
        proc = self.proc
        if proc is None:
            return None
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def restart(self, force: bool = False) -> None:
        """Start the server again if it has exited (or, with ``force``, stop it first).

        Raises:
            SpawnError: it could not be started again (it may not reuse its port).
        """
        with self._lock:
            if not force and self.proc is not None and self.proc.poll() is None:
                return
            self.restarts += 1
            self._stop()
            self._start()

    def stop(self) -> None:
        """Stop the process group and its strays for good, and remove the scratch folder."""
        with self._lock:
            self._stop()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def _stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_group(proc, STOP_TIMEOUT)
        # What left the group (setsid, a double fork) but carries the marker, or
        # still holds the port.
        stray = marked_pids(self.marker) | set(listening_pids(self.port))
        stray.discard(os.getpid())
        for pid in sorted(stray):
            self.stray.append(pid)
            kill_process(pid)

    def __enter__(self) -> "SpawnedServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# --- what the kernel says about processes and sockets (Linux /proc; elsewhere empty) ---

_TCP_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
_LISTEN = "0A"


def _listening_sockets() -> dict[int, int] | None:
    """Socket inode -> port of every listening TCP socket; None where /proc has no table."""
    found: dict[int, int] = {}
    seen = False
    for table in _TCP_TABLES:
        try:
            with open(table, encoding="ascii") as f:
                next(f, None)
                seen = True
                for line in f:
                    fields = line.split()
                    if len(fields) > 9 and fields[3] == _LISTEN:
                        found[int(fields[9])] = int(fields[1].rsplit(":", 1)[1], 16)
        except OSError:
            continue
    return found if seen else None


def is_listening(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a socket listens on ``port``, without connecting where the kernel can tell.

    Where there is no /proc table, a connection is the only way to know; it is
    closed at once, which the servers of such systems have to survive.
    """
    table = _listening_sockets()
    if table is not None:
        return port in table.values()
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets a process holds (from /proc/PID/fd); empty where unreadable."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    except OSError:
        pass
    return inodes


def listening_ports(pids) -> set[int]:
    """The ports these processes listen on (to tell a hard-coded port)."""
    table = _listening_sockets() or {}
    return {table[i] for pid in pids for i in socket_inodes(pid) if i in table}


def _all_pids() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def listening_pids(port: int) -> list[int]:
    """The processes that hold a socket listening on ``port``."""
    table = _listening_sockets() or {}
    inodes = {i for i, p in table.items() if p == port}
    if not inodes:
        return []
    return [pid for pid in _all_pids() if pid != os.getpid() and socket_inodes(pid) & inodes]


def marked_pids(marker: str) -> set[int]:
    """Live processes whose environment carries ``MARKER=marker``."""
    needle = f"{MARKER}={marker}".encode() + b"\0"
    found = set()
    for pid in _all_pids():
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if needle in f.read() + b"\0" and not _is_zombie(pid):
                    found.add(pid)
        except OSError:
            continue
    return found


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """A process's state letter, parent and process group, from /proc/PID/stat; None if gone."""
    try:
        # The name in parentheses may itself hold spaces and parentheses.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0], int(fields[1]), int(fields[2])
    except (OSError, IndexError, ValueError):
        return None


def group_pids(pgid: int | None) -> set[int]:
    """The live (non-zombie) members of a process group."""
    if pgid is None:
        return set()
    found = set()
    for pid in _all_pids():
        seen = proc_stat(pid)
        if seen is not None and seen[2] == pgid and seen[0] != "Z":
            found.add(pid)
    return found


def _is_zombie(pid: int) -> bool:
    seen = proc_stat(pid)
    return seen is None or seen[0] == "Z"


def kill_process(pid: int, grace: float = 1.0) -> None:
    """SIGTERM one process, SIGKILL it if it is still there after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if _is_zombie(pid) or not Path(f"/proc/{pid}").exists():
                return
            time.sleep(0.02)
