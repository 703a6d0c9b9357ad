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

__all__ = ["SpawnError", "SpawnedServer", "anchor", "free_port", "group_alive", "render_command", "stop_group"]

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
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():
        return True
    for entry in proc_dir.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


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


class SpawnedServer:
    """A server process the runner owns.

    ``start`` returns once the port accepts connections; ``stop`` ends the whole
    process group. The lock guards the process handle against concurrent restarts
    from the runner's worker threads.
    """

    def __init__(self, argv: list[str], root: Path, host: str, port: int, scratch: Path,
                 env: dict[str, str] | None = None):
        self.argv = list(argv)
        self.root = Path(root)
        self.host = host
        self.port = port
        self.scratch = Path(scratch)
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.log_path = self.scratch / "server-output.log"
        self.restarts = 0
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
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        except OSError as exc:
            raise SpawnError(f"cannot start {self.argv[0]!r}: {exc.strerror or exc}") from None
        finally:
            log.close()
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SpawnError(
                    f"the server exited with status {self.proc.returncode} before listening on "
                    f"{self.host}:{self.port}; its output:\n{self.output_tail()}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(POLL_INTERVAL)
        self._stop()
        raise SpawnError(
            f"the server did not listen on {self.host}:{self.port} within {START_TIMEOUT:.0f} s "
            f"(does it take the port from {{port}} in the command?); its output:\n{self.output_tail()}"
        )

    def output_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_bytes().decode("utf-8", "replace")
        except OSError:
            return "(no output)"
        tail = text.strip().splitlines()[-lines:]
        return "\n".join("  | " + line for line in tail) or "  (no output)"

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

    def restart(self) -> None:
        with self._lock:
            if self.proc is not None and self.proc.poll() is None:
                return
            self.restarts += 1
            self._stop()
            self._start()

    def stop(self) -> None:
        """Stop the process group for good and remove the scratch folder."""
        with self._lock:
            self._stop()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def _stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_group(proc, STOP_TIMEOUT)

    def __enter__(self) -> "SpawnedServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
