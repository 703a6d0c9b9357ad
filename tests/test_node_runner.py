"""The Node.js runner (tools/node-runner/run.mjs) agrees with the Python runner.

The corpus claims to be language-neutral: the exported JSON bundle and
cases/README.md should be enough to write a runner in another language. The node
runner is that second runner; these tests replay the same single-connection cases
with both runners against the same kind of server and require the same verdict,
case by case: on the reference server (everything passes) and on a broken one
(some cases fail, and they must fail in both).

Each runner gets a server of its own, started fresh, so that a case one runner
plays cannot change what the other sees. Every process is stopped whatever
happens; every wait has a deadline.
"""

from __future__ import annotations

import json
import queue
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import pytest

from conformance.docroot import Fixtures
from conformance.export import build_bundle, dumps
from conformance.spawn import free_port

REPO = Path(__file__).resolve().parent.parent
CASES = REPO / "cases"
RUNNER = REPO / "tools" / "node-runner" / "run.mjs"
STUDENT_SERVER = REPO / "tests" / "student_server.py"
NODE = shutil.which("node")

START_TIMEOUT = 15.0  # seconds for a server to accept connections
RUN_TIMEOUT = 120.0  # seconds for one runner over the whole selection
BROKEN_DEFECT = "head-sends-body"
LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")

pytestmark = [
    pytest.mark.network,
    pytest.mark.skipif(NODE is None, reason="node is not installed: the Node.js runner cannot run"),
]


# --- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bundle") / "bundle.json"
    path.write_text(dumps(build_bundle(CASES)), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def bundle(bundle_file: Path) -> dict:
    return json.loads(bundle_file.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def root() -> Path:
    return Fixtures(CASES).cached_root()


# Cases whose outcome on a server that closes with unread input depends on the
# client's receive buffer: the Python runner shrinks it for a gated reader (so the
# reset destroys the tail), the Node runner cannot set it. The verdicts of the two
# runners may then differ on such a server, for a reason that is not the judging.
BUFFER_DEPENDENT = {
    "robustness/byte-after-request-large",
    "robustness/pipelined-request-after-large-download",
    "robustness/stray-crlf-after-request-large",
}


@pytest.fixture(scope="module")
def singles(bundle: dict) -> list[str]:
    """Every single-connection case of the 'all' profile (no slow ones)."""
    return sorted(
        cid
        for cid, case in bundle["cases"].items()
        if "request" in case and "slow" not in case.get("tags", []) and cid not in BUFFER_DEPENDENT
    )


@pytest.fixture(scope="module")
def scenarios(bundle: dict) -> list[str]:
    return sorted(cid for cid, case in bundle["cases"].items() if "connection" in case)


# --- servers ---------------------------------------------------------------------------


def _free_port() -> int:
    return free_port("127.0.0.1")


def _wait_port(port: int, proc: subprocess.Popen, deadline: float) -> None:
    """Poll connect until the port accepts, the process dies, or the deadline."""
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listened on port {port} within {START_TIMEOUT} s") from None
            time.sleep(0.05)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()


@contextmanager
def _serving(argv: list[str], port: int) -> Iterator[int]:
    """Start a server that takes its port on the command line; always stop it."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port, proc, time.monotonic() + START_TIMEOUT)
        yield port
    finally:
        _stop(proc)


def reference_server(root: Path):
    port = _free_port()
    return _serving([sys.executable, str(REPO / "reference" / "server.py"), str(port), "--root", str(root),
                     "--quiet"], port)


def _listening_port(proc: subprocess.Popen, deadline: float) -> int:
    """Read the student server's 'listening on 127.0.0.1:PORT' line, with a deadline."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.put(line)
            if LISTENING.search(line):
                return

    threading.Thread(target=read, daemon=True).start()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"the broken server printed no listening line within {START_TIMEOUT} s")
        try:
            line = lines.get(timeout=min(remaining, 0.5))
        except queue.Empty:
            if proc.poll() is not None:
                raise RuntimeError(f"the broken server exited with status {proc.returncode}") from None
            continue
        found = LISTENING.search(line)
        if found:
            return int(found[1])


def http_server(root: Path):
    """Python's http.server, as it comes: a real server with a few departures."""
    port = _free_port()
    return _serving([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                     "--protocol", "HTTP/1.0", "--directory", str(root)], port)


@contextmanager
def student_server(root: Path, defect: str) -> Iterator[int]:
    """tests/student_server.py with one defect switched on."""
    proc = subprocess.Popen(
        [sys.executable, str(STUDENT_SERVER), "0", "--root", str(root), "--defect", defect],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        port = _listening_port(proc, time.monotonic() + START_TIMEOUT)
        _wait_port(port, proc, time.monotonic() + START_TIMEOUT)
        yield port
    finally:
        _stop(proc)


def broken_server(root: Path, kind: str):
    if kind == "http.server":
        return http_server(root)
    if not STUDENT_SERVER.is_file():
        pytest.skip("tests/student_server.py is not there (http.server covers a broken server)")
    return student_server(root, kind)


# --- the two runners ----------------------------------------------------------------


def _ids_args(ids: Sequence[str]) -> list[str]:
    return [arg for cid in ids for arg in ("--id", cid)]


def python_verdicts(port: int, ids: Sequence[str]) -> dict[str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "conformance", "--target", f"127.0.0.1:{port}", "--format", "json",
         "--jobs", "4", "-q", "--profile", "all", *_ids_args(ids)],
        cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )
    assert proc.returncode in (0, 1), f"python runner exited {proc.returncode}: {proc.stderr[-2000:]}"
    return {r["id"]: r["verdict"] for r in json.loads(proc.stdout)["results"]}


def node_run(args: Sequence[str], timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [NODE, str(RUNNER), *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def node_verdicts(bundle_file: Path, root: Path, port: int, ids: Sequence[str]) -> dict[str, dict]:
    proc = node_run(
        ["--bundle", str(bundle_file), "--target", f"127.0.0.1:{port}", "--root", str(root),
         "--profile", "all", "--json", *_ids_args(ids)]
    )
    assert proc.returncode in (0, 1), f"node runner exited {proc.returncode}: {proc.stderr[-2000:]}"
    return {r["id"]: r for r in json.loads(proc.stdout)}


def compare(python: dict[str, str], node: dict[str, dict], ids: Sequence[str]) -> list[str]:
    """Every case whose verdicts differ, as one line each."""
    assert sorted(python) == sorted(ids), "the python runner did not run exactly the selection"
    assert sorted(node) == sorted(ids), "the node runner did not run exactly the selection"
    return [
        f"{cid}: python {python[cid]}, node {node[cid]['verdict']} ({node[cid].get('reason', '')})"
        for cid in ids
        if python[cid] != node[cid]["verdict"]
    ]


# --- tests -----------------------------------------------------------------------------


@pytest.mark.slow
def test_agrees_on_the_reference_server(bundle_file: Path, root: Path, singles: list[str]) -> None:
    with reference_server(root) as port:
        python = python_verdicts(port, singles)
    with reference_server(root) as port:
        node = node_verdicts(bundle_file, root, port, singles)
    assert compare(python, node, singles) == []
    # The model answer fails nothing (a MAY case may still be "info").
    assert not {r["verdict"] for r in node.values()} & {"fail", "error"}


@pytest.mark.slow
@pytest.mark.parametrize("kind", [BROKEN_DEFECT, "http.server"])
def test_agrees_on_a_broken_server(bundle_file: Path, root: Path, singles: list[str], kind: str) -> None:
    """The student server with a defect, and Python's http.server (a real server that
    answers a POST with 501 and closes without reading the body: the answer must not
    be lost by either runner)."""
    with broken_server(root, kind) as port:
        python = python_verdicts(port, singles)
    with broken_server(root, kind) as port:
        node = node_verdicts(bundle_file, root, port, singles)
    assert compare(python, node, singles) == []
    failed = sorted(cid for cid in singles if node[cid]["verdict"] == "fail")
    assert failed, f"{kind} failed no case: it does not show a defect"
    assert all(python[cid] == "fail" for cid in failed)


def test_agrees_on_the_lab_profile(bundle_file: Path, root: Path, bundle: dict) -> None:
    """A quick subset for every run: the lab cases on the reference server."""
    lab = sorted(cid for cid, case in bundle["cases"].items() if cid.startswith("lab/") and "request" in case)
    assert lab
    with reference_server(root) as port:
        python = python_verdicts(port, lab)
        node = node_verdicts(bundle_file, root, port, lab)
    assert compare(python, node, lab) == []


def test_lists_scenarios_as_skipped(bundle_file: Path, root: Path, scenarios: list[str]) -> None:
    assert scenarios
    # Nothing is played for a scenario, so no server is needed at the target.
    proc = node_run(["--bundle", str(bundle_file), "--target", f"127.0.0.1:{_free_port()}",
                     "--root", str(root), "--id", scenarios[0]], timeout=30)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"SKIP {scenarios[0]}")
    assert "scenario: not supported by this runner" in lines[0]
    assert lines[-1] == "0 passed, 0 failed, 0 warned, 0 info, 1 skipped"


def test_an_unreachable_target_is_an_error(bundle_file: Path, root: Path) -> None:
    proc = node_run(["--bundle", str(bundle_file), "--target", f"127.0.0.1:{_free_port()}",
                     "--root", str(root), "--id", "lab/get-text-file", "--json"], timeout=30)
    assert proc.returncode == 1, proc.stderr
    assert [r["verdict"] for r in json.loads(proc.stdout)] == ["error"]


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--target", "127.0.0.1:1", "--root", "."],
        ["--bundle", "B", "--target", "nohost", "--root", "."],
        ["--bundle", "B", "--target", "127.0.0.1:1", "--root", ".", "--profile", "no-such-profile"],
        ["--bundle", "B", "--target", "127.0.0.1:1", "--root", ".", "--id", "no/such-case"],
        ["--bundle", "B", "--target", "127.0.0.1:1", "--root", ".", "--frobnicate"],
    ],
)
def test_usage_errors_exit_2(bundle_file: Path, args: list[str]) -> None:
    args = [str(bundle_file) if a == "B" else a for a in args]
    proc = node_run(args, timeout=30)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1
