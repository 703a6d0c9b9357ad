"""What confines a submission on this machine, and finding and stopping its processes.

Layers (each reported in result.json as available or not, with the reason):

- ``temporary copy``: the submission and a fresh fixture root in a folder of their own;
- ``session and process group``: every process starts a new session (runner, sandbox);
- ``child subreaper``: PR_SET_CHILD_SUBREAPER on the per-submission worker, so a
  server that double-forks or calls setsid() is re-parented to the worker and found;
- ``resource limits``: RLIMIT_CORE 0, CPU, FSIZE, NOFILE (and NPROC as its own user),
  set by ``sandbox``;
- ``memory watch``: resident memory of all the submission's processes, summed and
  checked every ``MEMORY_POLL`` seconds (RLIMIT_AS breaks JVMs and Go);
- ``unprivileged user``: when the grader is root, one uid per parallel slot with no
  passwd entry (``UID_BASE`` + slot), so RLIMIT_NPROC holds and its processes are
  found by uid;
- ``network namespace``: when the kernel allows, the worker unshares its network
  namespace and brings up loopback only; the runner and the server live there, so
  no outside address is reachable and parallel graders never collide on a port.

A submission's processes are those of its uid, or whose environment carries its
marker (``sandbox.MARKER_ENV``), or that descend from the worker (other than the
grader's own runner processes, which end by themselves).
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import socket
import struct
import threading
import time
from pathlib import Path

from ..spawn import proc_stat
from .sandbox import GRADER_ENV, MARKER_ENV

__all__ = ["UID_BASE", "UidClaim", "Protections", "set_subreaper", "enter_network_namespace", "descendants", "submission_pids",
           "sweep", "listening_ports", "MemoryWatch", "describe_pid", "reap_children"]

UID_BASE = 61000
UID_COUNT = 512      # uids UID_BASE .. UID_BASE + UID_COUNT - 1 are for submissions
UID_LOCKS = Path(os.environ.get("CONFORMANCE_GRADE_LOCKS", "/tmp/conformance-grade-uids"))
PR_SET_CHILD_SUBREAPER = 36
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
MEMORY_POLL = 0.25   # seconds between two looks at the submission's memory
SWEEP_ROUNDS = 20    # SIGKILL rounds before giving up on a process that keeps coming back
TCP_LISTEN = "0A"


class Protections(dict):
    """name -> {"available": bool, "detail": str}, in the order they were recorded."""

    def note(self, name: str, available: bool, detail: str) -> bool:
        self[name] = {"available": bool(available), "detail": detail}
        return bool(available)


class UidClaim:
    """One uid for one parallel slot, held by an flock so that graders running side by
    side (two classes, or parallel test workers) never share one: the sweep by uid
    would kill the other's processes."""

    def __init__(self):
        self.uid: int | None = None
        self._fh = None

    def __enter__(self) -> "UidClaim":
        UID_LOCKS.mkdir(mode=0o700, exist_ok=True)
        for uid in range(UID_BASE, UID_BASE + UID_COUNT):
            fh = open(UID_LOCKS / f"{uid}.lock", "a")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.close()
                continue
            self.uid, self._fh = uid, fh
            return self
        raise RuntimeError(f"all {UID_COUNT} submission uids from {UID_BASE} are in use")

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            self._fh.close()


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def set_subreaper() -> tuple[bool, str]:
    """Make this process the child subreaper of its descendants (Linux 3.4+)."""
    try:
        if _libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            err = ctypes.get_errno()
            return False, f"prctl(PR_SET_CHILD_SUBREAPER) failed: {os.strerror(err)}"
    except (OSError, AttributeError) as exc:
        return False, f"no prctl on this system ({exc})"
    return True, "orphaned processes of the submission are re-parented to its worker and stopped"


def enter_network_namespace() -> tuple[bool, str]:
    """Unshare the network namespace (this process, before any thread) and bring up loopback."""
    if os.geteuid() != 0:
        return False, "needs root (CAP_SYS_ADMIN); the submission shares the machine's network"
    try:
        if _libc().unshare(CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            return False, f"unshare(CLONE_NEWNET) refused: {os.strerror(err)} (a container without CAP_SYS_ADMIN?)"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            ifreq = struct.pack("16sH14x", b"lo", 0)
            flags = struct.unpack("16sH14x", fcntl.ioctl(sock, SIOCGIFFLAGS, ifreq))[1]
            fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            probe.listen(1)
            socket.create_connection(probe.getsockname(), timeout=2).close()
    except (OSError, AttributeError) as exc:
        return False, f"could not set up a private loopback: {exc}"
    return True, "a network namespace of its own with loopback only: no outside address, no port collisions"


def _uid(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _has_marker(pid: int, marker: str, grader: bool = False) -> bool:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"{MARKER_ENV}={marker}".encode() in env or (grader and f"{GRADER_ENV}={marker}".encode() in env)


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def descendants(root: int) -> set[int]:
    """Every live process below ``root`` (by parent links, read once from /proc)."""
    children: dict[int, list[int]] = {}
    for pid in _pids():
        st = proc_stat(pid)
        if st is not None and st[0] not in ("Z", "X"):
            children.setdefault(st[1], []).append(pid)
    out, todo = set(), [root]
    while todo and len(out) < 100_000:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def submission_pids(marker: str, uid: int | None = None, below: int | None = None,
                    grader: bool = False) -> list[int]:
    """Live (non-zombie) processes of the submission.

    Those of ``uid``, those whose environment carries ``marker``, and, with
    ``below``, every descendant of that process (call it only when the grader's own
    children have ended: then whatever is left below the subreaper is the submission's).
    With ``grader``, also the grader's own processes for this submission (the worker,
    its runner, a sandbox that has not exec'd yet): for stopping a worker from outside.
    """
    me = os.getpid()
    found = set(descendants(below)) if below is not None else set()
    for pid in _pids():
        if pid == me or pid in found:
            continue
        st = proc_stat(pid)
        if st is None or st[0] in ("Z", "X"):
            continue
        if (uid is not None and _uid(pid) == uid) or (marker and _has_marker(pid, marker, grader)):
            found.add(pid)
    found.discard(me)
    return sorted(found)


def describe_pid(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        cmd = "?"
    return f"{pid} {cmd[:120]}"


def reap_children() -> None:
    """Collect every exited child (re-parented orphans included) without blocking."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def sweep(marker: str, uid: int | None = None, below: int | None = None,
          rounds: int = SWEEP_ROUNDS, reap: bool = True, grader: bool = False) -> tuple[list[str], int, int]:
    """SIGKILL every process of the submission until none is left (bounded).

    ``reap`` collects exited children with waitpid(-1): only in a process whose
    other children have all been waited for (the worker), never in the threaded parent.

    Returns:
        (the processes found, as "pid command"; how many were killed; how many still run).
    """
    found: dict[int, str] = {}
    killed: set[int] = set()
    for _ in range(rounds):
        pids = submission_pids(marker, uid, below, grader)
        if not pids:
            break
        for pid in pids:
            found.setdefault(pid, describe_pid(pid))
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
            except PermissionError:
                pass
        time.sleep(0.05)
        if reap:
            reap_children()
    if reap:
        reap_children()
    return list(found.values()), len(killed), len(submission_pids(marker, uid, below, grader))


def _socket_inodes(pids: list[int]) -> set[str]:
    from ..spawn import socket_inodes

    return {str(inode) for pid in pids for inode in socket_inodes(pid)}


def listening_ports(uid: int | None = None, pids: list[int] | None = None) -> list[int]:
    """TCP ports in LISTEN state in this network namespace: all, or those of ``uid`` / of ``pids``."""
    inodes = _socket_inodes(pids) if pids is not None else None
    ports = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != TCP_LISTEN:
                continue
            if uid is not None and fields[7] != str(uid):
                continue
            if inodes is not None and fields[9] not in inodes:
                continue
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def _rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class MemoryWatch:
    """A thread that kills the submission when its processes together hold more than ``limit`` bytes."""

    def __init__(self, marker: str, uid: int | None, limit: int):
        self.marker, self.uid, self.limit = marker, uid, limit
        self.peak = 0
        self.exceeded = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-watch", daemon=True)

    def __enter__(self) -> "MemoryWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(MEMORY_POLL):
            pids = submission_pids(self.marker, self.uid)
            total = sum(_rss_bytes(p) for p in pids)
            self.peak = max(self.peak, total)
            if total > self.limit:
                self.exceeded = True
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
