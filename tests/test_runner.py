"""The runner end to end: verdicts against the reference and broken servers, spawn hygiene,
preflight, exit statuses."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from student_helpers import processes_with

REPO = Path(__file__).resolve().parent.parent
PY = shlex.quote(sys.executable)
STUDENT = f"{PY} {shlex.quote(str(REPO / 'tests' / 'student_server.py'))} {{port}} --root {{root}}"


def conformance(*args: str, timeout: float = 240, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "conformance", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def verdicts(proc: subprocess.CompletedProcess) -> dict[str, str]:
    assert proc.stdout, proc.stderr
    report = json.loads(proc.stdout)
    return {r["id"]: r["verdict"] for r in report["results"]}


@pytest.mark.slow
def test_reference_passes_every_case_serially_and_in_parallel():
    serial = conformance("--profile", "all", "--format", "json", "-q")
    parallel = conformance("--profile", "all", "--format", "json", "-q", "--jobs", "8")
    assert serial.returncode == 0, serial.stdout[-3000:]
    assert parallel.returncode == 0, parallel.stdout[-3000:]
    one, many = verdicts(serial), verdicts(parallel)
    assert len(one) > 150
    assert one == many
    not_passed = {k: v for k, v in one.items() if v != "pass"}
    assert not not_passed, not_passed


# Each broken server (one defect of tests/student_server.py) and cases that must fail on it.
BROKEN = {
    "sequential": ["concurrency/stalled-client-does-not-block", "concurrency/sixteen-parallel-large-downloads"],
    "truncate-large": ["lab/get-large-binary-file"],
    "head-sends-body": ["rfc1945/head-no-body"],
    "crash-on-bad-request-line": ["rfc1945/request-line-four-words"],
    "never-answers": ["lab/get-text-file"],
}


@pytest.mark.parametrize("defect", sorted(BROKEN))
def test_broken_server_fails_the_right_cases(defect):
    ids = BROKEN[defect]
    selection = [arg for case_id in ids for arg in ("--id", case_id)]
    # The preflight needs an answer; a server that never answers is reached through
    # the spawn check only, so it is judged with a plain GET case.
    started = time.monotonic()
    proc = conformance("--spawn", f"{STUDENT} --defect {defect}", "--format", "json", "-q",
                       "--timeout-scale", "0.5", *selection, timeout=120)
    elapsed = time.monotonic() - started
    if defect == "never-answers":
        assert proc.returncode == 3, proc.stderr
        assert "accepted a connection but sent nothing" in proc.stderr
        return
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    got = verdicts(proc)
    assert {i: got[i] for i in ids} == {i: "fail" for i in ids}
    assert elapsed < 90


def _spawn_with_child(token: str) -> str:
    # sh stays as the group leader with the server as its child, so only a
    # process-group stop gets both.
    inner = f"{PY} -m http.server {{port}} --bind {{host}}; : {token}"
    return f"sh -c {shlex.quote(inner)}"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to look for leftover processes")
def test_spawn_leaves_no_process_behind():
    token = f"conformance-test-{uuid.uuid4().hex}"
    proc = conformance("--spawn", _spawn_with_child(token), "--id", "lab/get-text-file", "-q", timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    deadline = time.monotonic() + 5
    while processes_with(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(token) == []


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to look for leftover processes")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_stops_the_spawned_server(sig):
    token = f"conformance-test-{uuid.uuid4().hex}"
    runner = subprocess.Popen(
        [sys.executable, "-m", "conformance", "--spawn", _spawn_with_child(token), "--profile", "all", "-q"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while len(processes_with(token)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(processes_with(token)) >= 2, "the spawned server never started"
        runner.send_signal(sig)
        runner.wait(30)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert runner.returncode == 128 + sig
    assert "interrupted" in runner.stderr.read()
    deadline = time.monotonic() + 5
    while processes_with(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(token) == []


def test_unreachable_target_exits_3_with_a_clear_message():
    from conformance.spawn import free_port

    port = free_port("127.0.0.1")
    proc = conformance("--target", f"127.0.0.1:{port}", timeout=30)
    assert proc.returncode == 3
    assert f"Nothing is answering at 127.0.0.1:{port}" in proc.stderr
    assert "--spawn" in proc.stderr


def test_target_not_serving_the_fixture_root_exits_3(tmp_path):
    spawn = f"{PY} -m http.server {{port}} --bind {{host}} --directory {shlex.quote(str(tmp_path))}"
    proc = conformance("--spawn", spawn, timeout=30)
    assert proc.returncode == 3
    assert "answers, but not with the fixture document root" in proc.stderr
    assert "conformance docroot" in proc.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--id", "no/such-case"], "no case matches"),
        (["--target", "localhost"], "--target wants HOST:PORT"),
        (["--profile", "nope"], "nope"),
        (["--jobs", "0"], "--jobs wants"),
        (["--target", "127.0.0.1:1", "--spawn", "x"], "not both"),
    ],
)
def test_usage_errors_exit_2(args, message):
    proc = conformance(*args, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_spawn_command_that_exits_is_reported():
    proc = conformance("--spawn", f"{PY} -c \"import sys; print('boom'); sys.exit(4)\"", timeout=30)
    assert proc.returncode == 3
    assert "exited with status 4" in proc.stderr
    assert "boom" in proc.stderr


def test_failure_output_says_what_to_fix():
    proc = conformance("--spawn", f"{STUDENT} --defect head-sends-body", "--id", "rfc1945/head-no-body",
                       "--verbose", timeout=60)
    assert proc.returncode == 1
    out = proc.stdout
    assert "FAIL rfc1945/head-no-body" in out
    assert "R-8.2-a" in out and "expected:" in out and "got:" in out
    assert "printf 'HEAD /file.txt HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1" in out


def test_list_prints_the_selection_without_running():
    proc = conformance("list", "--area", "lab", timeout=30)
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines and all(line.startswith("lab/") for line in lines)


def test_explain_prints_case_requirement_and_hint():
    proc = conformance("explain", "lab/get-text-file", timeout=30)
    assert proc.returncode == 0
    assert "R-8.1-a" in proc.stdout and "GET /file.txt HTTP/1.0\\r\\n" in proc.stdout
    assert "hint:" in proc.stdout


def test_export_bundle_validates(tmp_path):
    out = tmp_path / "bundle.json"
    proc = conformance("export", "--format", "json", "-o", str(out), timeout=60)
    assert proc.returncode == 0, proc.stderr
    bundle = json.loads(out.read_text())
    assert bundle["format"] == "http10-conformance-corpus" and bundle["version"] == 1
    from conformance.export import bundle_problems

    assert bundle_problems(bundle, REPO / "cases") == []
    bundle["cases"]["lab/get-text-file"]["level"] = "OFTEN"
    assert bundle_problems(bundle, REPO / "cases")
