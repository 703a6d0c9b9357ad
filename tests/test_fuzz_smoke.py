"""The fuzz smoke: a few hundred examples against the reference and broken servers.

The fuzzer must find the broken variants' defects within its budget, write cases
that ``check`` accepts and the runner fails on the variant (and passes on the
reference), and stop with a clear reason on targets that are dead, reset
everything or answer garbage, with memory bounded. Long runs are a tool
(docs/fuzz.md), not a test.
"""

from __future__ import annotations

import resource
import shlex
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from conformance.docroot import Fixtures
from conformance.fuzz import cli
from conformance.fuzz.engine import FuzzConfig, Side, run, verify_cases, write_cases
from conformance.resources import cases_dir, reference_server
from conformance.spawn import SpawnedServer, free_port
from conformance.wire import Target

pytestmark = pytest.mark.network

STUDENT = Path(__file__).resolve().parent / "student_server.py"
CASES = cases_dir()
INFO = cli.fixtures_info(CASES)
PATHS = cli.fixture_paths(CASES, FuzzConfig().read_cap)
# Short deadlines: the smoke is about finding, not about slow servers.
QUICK = dict(timeout=0.5, shrink_seconds=15.0, budget=150.0)


@pytest.fixture(scope="module")
def root() -> Path:
    return Fixtures(CASES).cached_root()


def _spawn(template: str, root: Path) -> SpawnedServer:
    server = SpawnedServer.from_template(template, root)
    server.start()
    return server


def _reference(root: Path) -> SpawnedServer:
    return _spawn(f"{shlex.quote(sys.executable)} {shlex.quote(str(reference_server()))} "
                  "{port} --bind {host} --root {root} --quiet", root)


def _student(root: Path, defect: str) -> SpawnedServer:
    return _spawn(f"{shlex.quote(sys.executable)} {shlex.quote(str(STUDENT))} {{port}} --root {{root}} "
                  f"--defect {defect}", root)


@pytest.fixture(scope="module")
def reference(root):
    server = _reference(root)
    yield server
    server.stop()


def test_the_reference_gives_no_finding(reference):
    side = Side(Target(reference.host, reference.port), reference)
    report = run(FuzzConfig(examples=300, seed=1, **QUICK), side, INFO, PATHS)
    assert report.error == ""
    assert [(f.kind, f.detail) for f in report.findings] == []
    assert report.examples == 300 and report.stop_reason == "300 examples were run"


@pytest.mark.slow
@pytest.mark.parametrize("defect, kind", [
    ("wrong-content-length", "framing"),
    ("traversal", "secret"),
    ("crash-on-bad-request-line", "canary"),  # each crash costs a restart: about 20 s
])
def test_a_broken_variant_is_found_and_its_case_fails_there_only(root, reference, tmp_path, defect, kind):
    server = _student(root, defect)
    try:
        side = Side(Target(server.host, server.port), server)
        report = run(FuzzConfig(examples=1000, seed=1, **QUICK), side, INFO, PATHS)
        found = {f.kind: f for f in report.findings}
        assert kind in found, (report.stop_reason, list(found))
        assert found[kind].found_after <= 1000
        write_cases(report, tmp_path, CASES, str(side.target), INFO["secret"], 1)
        assert found[kind].problems == []
        verify_cases(report, tmp_path, side)
        assert found[kind].runner_verdict == "fail"
    finally:
        server.stop()
    # The same case passes on the reference: it names a defect, not a choice.
    verify_cases(report, tmp_path, Side(Target(reference.host, reference.port), reference))
    assert found[kind].runner_verdict == "pass"


def test_a_fixed_seed_replays_the_same_examples(reference):
    def sent(seed: int) -> list[bytes]:
        side = Side(Target(reference.host, reference.port), reference)
        seen: list[bytes] = []
        play = side.play
        side.play = lambda conn: (seen.append(b"".join(p.payload for p in conn.parts)), play(conn))[1]
        run(FuzzConfig(examples=40, seed=seed, **QUICK), side, INFO, PATHS)
        return seen

    first = sent(5)
    assert len(first) >= 40 and first == sent(5)
    assert first != sent(6)


# -- bad targets ------------------------------------------------------------------------------


class _Misbehaving:
    """A loopback server that treats every connection the same bad way, in one thread."""

    def __init__(self, handle):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.handle = handle
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1.0)
                try:
                    self.handle(conn)
                except OSError:
                    pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)
        self.listener.close()


def _garbage(conn):
    conn.recv(65536)
    conn.sendall(b"\x00\x01garbage\xff" * 10)


def _reset(conn):
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


CHUNK = b"a" * (1 << 20)


def _huge_status_line(conn):
    conn.recv(65536)
    conn.sendall(b"HTTP/1.0 200 ")
    for _ in range(64):  # 64 MiB of reason phrase, never a line end
        conn.sendall(CHUNK)


@pytest.mark.parametrize("handle, words", [
    (_garbage, "did not serve the canary"),
    (_reset, "did not serve the canary"),
    (_huge_status_line, "did not serve the canary"),
])
def test_a_bad_target_ends_the_run_quickly_with_memory_bounded(handle, words):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    started = time.monotonic()
    with _Misbehaving(handle) as bad:
        report = run(FuzzConfig(examples=500, seed=1, **QUICK), Side(Target("127.0.0.1", bad.port)),
                     INFO, PATHS)
    assert words in report.stop_reason
    assert report.examples < 20
    assert time.monotonic() - started < 60
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown < 48 * 1024, f"peak memory grew by {grown} KiB"


def test_an_unreachable_target_is_said_so_at_once():
    port = free_port("127.0.0.1")  # nothing listens there
    report = run(FuzzConfig(examples=100, seed=1, **QUICK), Side(Target("127.0.0.1", port)), INFO, PATHS)
    assert "refused" in report.stop_reason and report.examples <= 1
