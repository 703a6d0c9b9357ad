"""Shared helpers and fixtures for the reference server and client tests.

The reference files are scripts, not a package, so they are loaded by path. A
server under test runs as a child process on port 0; its port is read from its
startup line (never guessed, never waited for with sleep), and the process is
always stopped. Every socket has a timeout, every loop a bound.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parent.parent
SERVER_PY = REPO / "reference" / "server.py"
CLIENT_PY = REPO / "reference" / "client.py"

START_TIMEOUT = 15.0  # seconds for a server to print its startup line (a loaded CI box)
STOP_TIMEOUT = 15.0   # seconds for a server to exit after SIGTERM before it is killed
IO_TIMEOUT = 10.0     # seconds for one exchange to end


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


server = _load("reference_server", SERVER_PY)
client = _load("reference_client", CLIENT_PY)


# -- the fixture document root ----------------------------------------------------------------


@pytest.fixture(scope="session")
def docroot(tmp_path_factory) -> Path:
    """The materialised fixture root (cases/fixtures.toml); secret.txt lies beside it."""
    from conformance.docroot import Fixtures

    return Fixtures(REPO / "cases").materialise(tmp_path_factory.mktemp("docroot"))


# -- a server process ---------------------------------------------------------------------------


@dataclass
class ServerProcess:
    process: subprocess.Popen
    port: int
    stderr_path: Path
    lines: "queue.Queue[str]" = field(default_factory=queue.Queue)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def wait_line(self, pattern: str, timeout: float = START_TIMEOUT) -> str:
        """The next stdout line matching ``pattern`` (regex), read as it is printed."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line matching {pattern!r} within {timeout} s")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"server exited before printing {pattern!r}; stderr:\n"
                                     + self.stderr())
            if re.search(pattern, line):
                return line

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the server and wait for it (killed if it does not exit); exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@contextmanager
def running_server(root: Path, *args: str, tmp_dir: Path | None = None) -> Iterator[ServerProcess]:
    """Start ``server.py 0 --root ROOT ARGS...``; yield it; always stop it."""
    log_dir = tmp_dir or root.parent
    stderr_path = log_dir / f"server-{os.getpid()}-{time.monotonic_ns()}.err"
    with open(stderr_path, "wb") as stderr_file:
        process = subprocess.Popen(
            [sys.executable, str(SERVER_PY), "0", "--root", str(root), *args],
            stdout=subprocess.PIPE, stderr=stderr_file, text=True)
    lines: queue.Queue = queue.Queue()

    def pump():  # a thread, so that reading the startup line can time out
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    handle = ServerProcess(process, 0, stderr_path, lines)
    try:
        startup = handle.wait_line(r"^Serving ")
        handle.port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", startup).group(1))
        yield handle
    finally:
        handle.stop()
        process.stdout.close()


# -- raw exchanges ------------------------------------------------------------------------------


@dataclass
class Reply:
    raw: bytes
    status: int | None
    headers: dict[str, str]
    body: bytes
    ended: str  # "closed", "reset" or "timeout"

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def parse_reply(raw: bytes, ended: str = "closed") -> Reply:
    """Split raw response bytes; status None for a reply without a status line."""
    match = re.match(rb"HTTP/(\d+)\.(\d+) (\d{3})[^\r\n]*\r\n", raw)
    if not match:
        return Reply(raw, None, {}, raw, ended)
    head, _, body = raw.partition(b"\r\n\r\n")
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        headers[name.decode("latin-1").lower()] = value.strip().decode("latin-1")
    return Reply(raw, int(match.group(3)), headers, body, ended)


def connect(port: int, timeout: float = IO_TIMEOUT, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:  # before connect, so the window is small from the start
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect(("127.0.0.1", port))
    return sock


def read_all(sock: socket.socket, limit: int = 64 << 20) -> tuple[bytes, str]:
    """Read to EOF (or reset, timeout, limit); returns the bytes and how it ended."""
    chunks = []
    total = 0
    while total < limit:
        try:
            chunk = sock.recv(1 << 16)
        except socket.timeout:
            return b"".join(chunks), "timeout"
        except ConnectionResetError:
            return b"".join(chunks), "reset"
        if not chunk:
            return b"".join(chunks), "closed"
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks), "limit"


def exchange(port: int, data: bytes, *, half_close: bool = False, split: int = 0,
             timeout: float = IO_TIMEOUT) -> Reply:
    """Send ``data`` (in pieces of ``split`` bytes if > 0), read the whole reply."""
    with connect(port, timeout) as sock:
        if split:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(0, len(data), split):
                sock.sendall(data[i:i + split])
        else:
            sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        raw, ended = read_all(sock)
    return parse_reply(raw, ended)


def get(port: int, path: str, **kwargs) -> Reply:
    return exchange(port, f"GET {path} HTTP/1.0\r\n\r\n".encode("latin-1"), **kwargs)
