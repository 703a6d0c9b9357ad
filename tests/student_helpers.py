"""Helpers for the tests of the student server: fixture root, process, raw sockets.

Kept apart from ``conftest.py`` (which the project lead owns) and importable on
its own, so other tests can start a broken variant with::

    with student_server(root, "sequential") as srv:
        reply = exchange(srv.port, b"GET /file.txt HTTP/1.0\\r\\n\\r\\n")

Everything is bounded: the server must print its listening line within
``START_TIMEOUT``, every socket operation has a deadline, and ``stop`` ends the
process (SIGTERM, then SIGKILL) whatever state it is in.
"""

from __future__ import annotations

import hashlib
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = [
    "SERVER",
    "CASES",
    "build_docroot",
    "StudentServer",
    "student_server",
    "Exchange",
    "exchange",
    "Response",
    "parse_response",
    "get",
    "processes_with",
]

HERE = Path(__file__).resolve().parent
SERVER = HERE / "student_server.py"
CASES = HERE.parent / "cases"

START_TIMEOUT = 10.0   # seconds for the server to print its listening line
STOP_TIMEOUT = 3.0     # seconds between SIGTERM and SIGKILL
LISTENING = re.compile(rb"listening on 127\.0\.0\.1:(\d+)")


# --------------------------------------------------------------------------
# The fixture document root (cases/README.md, "The document root")
# --------------------------------------------------------------------------

def _escaped_bytes(text: str) -> bytes:
    # The corpus's escape rule: each character is one byte, its code point.
    return text.encode("latin-1")


def _sha256_counter(seed: str, size: int) -> bytes:
    seed_bytes = seed.encode("utf-8")
    blocks = (size + 31) // 32
    data = b"".join(hashlib.sha256(seed_bytes + n.to_bytes(8, "big")).digest() for n in range(blocks))
    return data[:size]


def build_docroot(dest: Path, cases: Path = CASES) -> Path:
    """Materialise the fixture document root under ``dest``; return ``dest/root``.

    Follows the six steps of cases/README.md from ``cases/fixtures.toml``: the
    static files, the generated ones, the ``[[file]]`` entries, the files outside
    the root, the symlinks, and the modification times.
    """
    spec = tomllib.loads((cases / "fixtures.toml").read_text(encoding="utf-8"))
    root = dest / "root"
    shutil.copytree(cases / "docroot", root, symlinks=True)
    for gen in spec.get("generated", []):
        if gen["generator"] != "sha256-counter":
            raise ValueError(f"fixtures.toml: unknown generator {gen['generator']!r}")
        target = root / gen["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(_sha256_counter(gen["seed"], gen["size"]))
    for entry in spec.get("file", []):
        target = root / entry["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(_escaped_bytes(entry["data"]) * entry.get("repeat", 1))
    for entry in spec.get("outside", []):
        (dest / entry["path"]).write_bytes(_escaped_bytes(entry["data"]))
    for entry in spec.get("symlink", []):
        os.symlink(entry["target"], root / entry["path"])
    canary = spec["canary"]
    (root / canary["path"]).write_bytes(_escaped_bytes(canary["data"]))

    default = spec["default_mtime"].timestamp()
    special = {entry["path"]: entry["time"].timestamp() for entry in spec.get("mtime", [])}
    # Bottom-up, so that setting a file's time does not disturb its folder's.
    for folder, dirs, files in os.walk(root, topdown=False):
        for name in files + dirs:
            path = Path(folder, name)
            t = special.get(path.relative_to(root).as_posix(), default)
            os.utime(path, (t, t), follow_symlinks=False)
    os.utime(root, (default, default))
    return root


# --------------------------------------------------------------------------
# The server process
# --------------------------------------------------------------------------

class StudentServer:
    """A running ``student_server.py``: its ``port`` and its ``proc``.

    Use ``student_server()``, which always stops it.
    """

    def __init__(self, root: Path, defects: Sequence[str] = ()) -> None:
        cmd = [sys.executable, str(SERVER), "0", "--root", str(root)]
        for name in defects:
            cmd += ["--defect", name]
        self.defects = tuple(defects)
        self._stderr = tempfile.TemporaryFile()
        self._stderr_text = ""
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr,
            start_new_session=True,
        )
        try:
            self.port = self._wait_listening()
        except BaseException:
            self.stop()
            raise

    def _wait_listening(self) -> int:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no listening line within {START_TIMEOUT}s: {self.stderr()}")
            ready, _, _ = select.select([self.proc.stdout], [], [], remaining)
            if ready:
                byte = os.read(self.proc.stdout.fileno(), 1)
                if not byte:
                    raise RuntimeError(f"server exited before listening: {self.stderr()}")
                line += byte
        match = LISTENING.fullmatch(line.strip())
        if match is None:
            raise RuntimeError(f"unexpected first line {line!r}")
        return int(match.group(1))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr(self) -> str:
        """The last 2000 characters the server wrote to stderr (kept after stop)."""
        if not self._stderr.closed:
            self._stderr.seek(0)
            self._stderr_text = self._stderr.read().decode("utf-8", "replace")[-2000:]
        return self._stderr_text

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT; safe to call twice."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.stderr()
        self._stderr.close()


@contextmanager
def student_server(root: Path, *defects: str) -> Iterator[StudentServer]:
    """Start the student server on a free port with these defects; always stop it."""
    srv = StudentServer(root, defects)
    try:
        yield srv
    finally:
        srv.stop()


# --------------------------------------------------------------------------
# Raw-socket client
# --------------------------------------------------------------------------

class Exchange(NamedTuple):
    data: bytes       # every byte received
    ended: str        # "closed", "reset", "timeout" or "limit"
    refused: bool = False


def exchange(
    port: int,
    *parts: bytes,
    pause: float = 0.0,
    timeout: float = 5.0,
    half_close: bool = False,
    read_limit: int | None = None,
    rcvbuf: int | None = None,
) -> Exchange:
    """Connect, send ``parts`` (``pause`` seconds apart), read until EOF or a limit.

    ``timeout`` is the deadline for the whole exchange; reaching it is an
    outcome (``ended`` is "closed", "reset", "timeout", "limit" or, when
    nothing listens, "refused"), never an exception. With ``read_limit``
    the client closes once it has that many bytes (a client that leaves early).
    """
    deadline = time.monotonic() + timeout
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    received = bytearray()
    try:
        sock.settimeout(timeout)
        try:
            sock.connect(("127.0.0.1", port))
        except (ConnectionRefusedError, socket.timeout):
            return Exchange(b"", "refused", refused=True)
        try:
            for i, part in enumerate(parts):
                if i and pause:
                    time.sleep(pause)
                sock.sendall(part)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass    # the server may close before it has read everything
        while True:
            if read_limit is not None and len(received) >= read_limit:
                return Exchange(bytes(received), "limit")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return Exchange(bytes(received), "timeout")
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                return Exchange(bytes(received), "timeout")
            except ConnectionResetError:
                return Exchange(bytes(received), "reset")
            if not chunk:
                return Exchange(bytes(received), "closed")
            received += chunk
    finally:
        sock.close()


class Response(NamedTuple):
    status_line: bytes | None       # None: no status line (an HTTP/0.9 Simple-Response)
    version: str | None
    status: int | None
    headers: dict[str, list[str]]   # lower-case name -> values
    head: bytes                     # the header block as received, with its line ends
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None


STATUS_LINE = re.compile(rb"(HTTP/\d+\.\d+) (\d{3})(?: [^\r\n]*)?\r?\n")


def parse_response(data: bytes) -> Response:
    """Split raw response bytes; tolerant, so the tests can assert on anything."""
    match = STATUS_LINE.match(data)
    if match is None:
        return Response(None, None, None, {}, b"", data)
    end = re.search(rb"\r?\n\r?\n", data)
    cut = end.end() if end else len(data)
    head, body = data[:cut], data[cut:]
    headers: dict[str, list[str]] = {}
    for line in re.split(rb"\r?\n", head)[1:]:
        name, colon, value = line.partition(b":")
        if colon:
            headers.setdefault(name.decode("latin-1").strip().lower(), []).append(
                value.decode("latin-1").strip())
    return Response(match.group(0).rstrip(b"\r\n"), match.group(1).decode(),
                    int(match.group(2)), headers, head, body)


def get(port: int, request: bytes, **kwargs) -> tuple[Exchange, Response]:
    """One exchange, parsed."""
    result = exchange(port, request, **kwargs)
    return result, parse_response(result.data)


def processes_with(token: str) -> list[int]:
    """Live processes (other than this one) whose command line holds ``token``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or entry.name == str(os.getpid()):
            continue
        try:
            if token.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def children_of(pid: int) -> list[int]:
    """Live processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found
