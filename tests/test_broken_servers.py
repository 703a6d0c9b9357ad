"""The runner against broken servers: bounded runs, blame that does not depend on --jobs,
the server's own words, partial reports.

Each broken server is a variant of tests/student_server.py (one classic mistake),
started by the runner with --spawn on a free loopback port and stopped by it. The
selections are small, so each run takes seconds; tools/bench_broken.py runs the
whole default profile and prints the times.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import jsonschema
import pytest

from student_helpers import children_of, processes_with

REPO = Path(__file__).resolve().parent.parent
PY = shlex.quote(sys.executable)
STUDENT = f"{PY} {shlex.quote(str(REPO / 'tests' / 'student_server.py'))} {{port}} --root {{root}}"
SCHEMA = json.loads((REPO / "docs" / "report-schema.json").read_text())

pytestmark = pytest.mark.network


def conformance(*args: str, timeout: float = 240, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "conformance", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def report(proc: subprocess.CompletedProcess) -> dict:
    assert proc.stdout, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    return doc


def by_id(doc: dict) -> dict[str, dict]:
    return {r["id"]: r for r in doc["results"]}


def ids(*names: str) -> list[str]:
    return [arg for name in names for arg in ("--id", name)]


# A spread of cases: plain files, HEAD, errors, an empty connection, a client that
# vanishes, a malformed request line, HTTP/0.9, stalled clients, parallel downloads.
SPREAD = ids(
    "lab/get-text-file", "lab/get-binary-file", "lab/get-missing-file", "rfc1945/head-no-body",
    "robustness/connect-and-close", "robustness/nul-in-request-line", "rfc1945/request-line-four-words",
    "rfc1945/http09-simple-request", "lab/survives-client-vanishing-mid-download",
    "concurrency/vanished-client-does-not-disturb-others", "concurrency/stalled-client-does-not-block",
    "concurrency/eight-stalled-clients-do-not-block", "concurrency/sixteen-parallel-large-downloads",
    "security/dotdot-literal", "robustness/random-binary-garbage",
)

# variant (--defect list) -> cases that must fail on it, with their cause, and cases
# that must still pass (the server's other behaviour is judged, not lost).
VARIANTS = {
    "no-close": (["no-close"], {"lab/get-text-file": "not-closed"}, []),
    "sequential": (["sequential"], {"concurrency/stalled-client-does-not-block": "not-concurrent"},
                   ["lab/get-text-file"]),
    "small-pool": (["small-pool"], {"concurrency/eight-stalled-clients-do-not-block": "not-concurrent"},
                   ["concurrency/stalled-client-does-not-block", "lab/get-text-file"]),
    "crash-on-empty-request": (["crash-on-empty-request"], {"robustness/connect-and-close": "crash"},
                               ["lab/get-text-file", "lab/get-binary-file", "security/dotdot-literal"]),
    "crash-on-bad-request-line": (["crash-on-bad-request-line"], {"rfc1945/request-line-four-words": "crash"},
                                  ["lab/get-text-file", "rfc1945/head-no-body"]),
    "dies-on-disconnect+sequential": (
        ["dies-on-disconnect", "sequential"],
        {"lab/survives-client-vanishing-mid-download": "crash"},
        ["lab/get-text-file", "lab/get-missing-file"]),
    "answers-once": (["answers-once"], {"lab/get-binary-file": "stuck"}, []),
}


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_verdicts_do_not_depend_on_jobs(variant):
    defects, failing, passing = VARIANTS[variant]
    spawn = STUDENT + "".join(f" --defect {d}" for d in defects)
    runs = [conformance("--spawn", spawn, *SPREAD, "--format", "json", "-q", "--jobs", jobs,
                        "--timeout-scale", "0.5") for jobs in ("1", "8")]
    serial, parallel = (by_id(report(p)) for p in runs)
    assert [p.returncode for p in runs] == [1, 1], [p.stderr[-2000:] for p in runs]
    assert {k: v["verdict"] for k, v in serial.items()} == {k: v["verdict"] for k, v in parallel.items()}
    for case_id, cause in failing.items():
        for results in (serial, parallel):
            assert results[case_id]["verdict"] == "fail", results[case_id]
            assert results[case_id]["cause"] == cause, results[case_id]
    for case_id in passing:
        assert serial[case_id]["verdict"] == "pass", serial[case_id]


@pytest.mark.slow
@pytest.mark.parametrize("nofile", ["20", "28"])
def test_a_descriptor_leak_gets_the_same_verdicts_at_any_jobs(nofile):
    """The leak runs out during whichever case comes when it does, and that depends on
    --jobs; a case that meets the exhausted server is not blamed for it. Two limits,
    so that the exhaustion falls on different cases."""
    spawn = STUDENT + " --defect leaks-descriptors"
    runs = [conformance("--spawn", spawn, *SPREAD, "--format", "json", "-q", "--jobs", jobs,
                        "--timeout-scale", "0.5", env={"STUDENT_SERVER_NOFILE": nofile})
            for jobs in ("1", "8")]
    serial, parallel = (by_id(report(p)) for p in runs)
    assert {k: v["verdict"] for k, v in serial.items()} == {k: v["verdict"] for k, v in parallel.items()}
    for results in (serial, parallel):
        assert not [k for k, v in results.items() if v["cause"] == "stuck"], results
        assert results["lab/get-text-file"]["cause"] == "not-closed"


def test_a_server_that_serves_one_client_at_a_time_is_run_one_case_at_a_time():
    """Once the watchdog has found it answering nobody beside a stalled client twice,
    --jobs gains nothing and costs a replay per case; a concurrent server never
    shows it. (A small pool can show it, under load: it too answers nobody once its
    threads are all held by stalled clients.)"""
    stalls = ids("concurrency/stalled-client-does-not-block", "concurrency/eight-stalled-clients-do-not-block",
                 "concurrency/stalled-mid-header-does-not-block", "lab/get-text-file", "lab/get-binary-file")
    notes = {}
    for name, server in (("sequential", ["--spawn", STUDENT + " --defect sequential"]), ("reference", [])):
        proc = conformance(*server, *stalls, "--format", "json", "-q", "--jobs", "8", "--timeout-scale", "0.5")
        notes[name] = [n for n in report(proc)["run"]["notes"] if "one case at a time" in n]
    assert len(notes["sequential"]) == 1 and "answered nobody" in notes["sequential"][0]
    assert notes["reference"] == []


def test_a_server_that_leaks_descriptors_is_restarted_and_every_case_judged():
    # STUDENT_SERVER_NOFILE lowers the variant's `ulimit -n` so that it runs out of
    # descriptors within a few cases.
    spawn = STUDENT + " --defect leaks-descriptors"
    selection = ids("lab/get-*", "rfc1945/head-no-body", "security/dotdot-literal", "rfc1945/root-index")
    proc = conformance("--spawn", spawn, *selection, "--format", "json", "-q", "--timeout-scale", "0.5",
                       env={"STUDENT_SERVER_NOFILE": "16"})
    doc = report(proc)
    assert proc.returncode == 1
    assert any("restarted" in note for note in doc["run"]["notes"]), doc["run"]["notes"]
    results = by_id(doc)
    # Every case got a verdict of its own: the responses are never closed, and no
    # case was lost to the exhaustion.
    assert all(r["verdict"] in ("fail", "warn") for r in results.values()), results
    assert all(r["reason"].startswith("not run") is False for r in results.values())
    assert results["lab/get-text-file"]["cause"] == "not-closed"


def test_a_crash_is_blamed_with_the_servers_traceback():
    proc = conformance("--spawn", STUDENT + " --defect crash-on-bad-request-line",
                       *ids("rfc1945/request-line-four-words", "lab/get-text-file"), "--format", "json", "-q")
    results = by_id(report(proc))
    crashed = results["rfc1945/request-line-four-words"]
    assert crashed["verdict"] == "fail" and crashed["cause"] == "crash"
    assert "exited" in crashed["reason"]
    assert any("Traceback" in line for line in crashed["server_log"]), crashed["server_log"]
    assert any("ValueError" in line for line in crashed["server_log"]), crashed["server_log"]
    assert results["lab/get-text-file"]["verdict"] == "pass"
    assert "the server's whole output is in" in proc.stderr


def test_the_table_report_leads_with_the_cause_and_quotes_the_server():
    proc = conformance("--spawn", STUDENT + " --defect crash-on-bad-request-line",
                       *ids("rfc1945/request-line-four-words", "lab/get-text-file"))
    assert proc.returncode == 1
    out = proc.stdout
    assert "1 failure, 1 likely cause" in out
    assert "1. the server process died (1 case)" in out
    assert "the server wrote:" in out and "ValueError" in out
    # The reproducer names a port a person can use after the run, and how to start the server there.
    assert "| nc 127.0.0.1 8080" in out
    assert "start the server as the runner did, on port 8080" in out


def test_a_server_that_stops_after_the_preflight_ends_the_run_quickly():
    started = time.monotonic()
    proc = conformance("--spawn", STUDENT + " --defect answers-once", "--profile", "lab", "--format", "json",
                       "-q", "--timeout-scale", "0.5")
    took = time.monotonic() - started
    doc = report(proc)
    assert proc.returncode == 1
    verdicts = {r["verdict"] for r in doc["results"]}
    assert verdicts <= {"fail", "error"}
    assert any("stops answering after a request or two" in r["reason"] for r in doc["results"])
    assert took < 60, took  # the lab profile against a correct server takes a few seconds


def test_a_target_that_stops_answering_is_not_waited_on_case_by_case():
    server = subprocess.Popen([sys.executable, str(REPO / "tests" / "student_server.py"), "0", "--root",
                               str(_fixture_root()), "--defect", "answers-once"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(server.stdout.readline().rsplit(":", 1)[1])
        proc = conformance("--target", f"127.0.0.1:{port}", "--profile", "lab", "--format", "json", "-q",
                           "--timeout-scale", "0.5", timeout=120)
    finally:
        server.terminate()
        server.wait(10)
    doc = report(proc)
    assert proc.returncode == 1
    not_run = [r for r in doc["results"] if r["reason"].startswith("not run")]
    assert len(not_run) >= len(doc["results"]) - 2
    assert "cannot restart a --target" in not_run[0]["reason"] and "--spawn" in not_run[0]["reason"]
    assert doc["run"]["duration"] < 30


def _fixture_root() -> Path:
    from conformance.docroot import Fixtures
    from conformance.resources import cases_dir

    return Fixtures(cases_dir()).cached_root()


def test_a_server_that_cannot_be_restarted_becomes_a_result(tmp_path):
    # The second start fails, as a server without SO_REUSEADDR does while its old
    # socket lingers; the flag file lives in {scratch}, which restarts share.
    script = tmp_path / "once.sh"
    script.write_text(
        "#!/bin/sh\n"
        'if [ -e "$1/started" ]; then echo "OSError: [Errno 98] Address already in use" >&2; exit 1; fi\n'
        'touch "$1/started"\n'
        f'exec {PY} {shlex.quote(str(REPO / "tests" / "student_server.py"))} "$2" --root . '
        "--defect crash-on-bad-request-line\n"
    )
    script.chmod(0o755)
    proc = conformance("--spawn", f"{script} {{scratch}} {{port}}",
                       *ids("lab/get-text-file", "rfc1945/request-line-four-words", "security/dotdot-literal"),
                       "--format", "json", "-q")
    doc = report(proc)
    assert proc.returncode == 1
    results = by_id(doc)
    assert results["lab/get-text-file"]["verdict"] == "pass"
    assert results["security/dotdot-literal"]["verdict"] == "error"
    assert "could not be started again" in results["security/dotdot-literal"]["reason"]
    assert "Address already in use" in results["security/dotdot-literal"]["reason"]
    assert "Traceback" not in proc.stderr


def test_a_detached_daemon_is_found_and_stopped(tmp_path):
    token = f"conformance-daemon-{uuid.uuid4().hex}"
    daemon = tmp_path / "daemon.py"
    daemon.write_text(
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f"        sys.argv[0] = {token!r}\n"
        "        time.sleep(120)\n"
        "        os._exit(0)\n"
        "    os._exit(0)\n"
        "os.execvp(sys.executable, [sys.executable, '-m', 'http.server', sys.argv[1], '--bind', '127.0.0.1'])\n"
    )
    proc = conformance("--spawn", f"{PY} {daemon} {{port}} {token}", *ids("lab/get-text-file"), "-q", timeout=60)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "had left the server's process group" in proc.stderr
    deadline = time.monotonic() + 5
    while processes_with(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(token) == []


def test_a_hard_coded_port_is_named():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        fixed = sock.getsockname()[1]
    script = (f"import socket, time; s = socket.socket(); s.bind(('127.0.0.1', {fixed})); s.listen(); "
              "time.sleep(60)")
    proc = subprocess.run([sys.executable, "-c", "import conformance.spawn as s; s.START_TIMEOUT = 2; "
                           "import sys; from conformance.cli import main; sys.exit(main(sys.argv[1:]))",
                           "--spawn", f"{PY} -c {shlex.quote(script)} {{port}}", *ids("lab/get-text-file")],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert f"it listens on port {fixed} instead" in proc.stderr


def test_budget_ends_the_run_with_an_incomplete_report(tmp_path):
    out = tmp_path / "deep" / "report.json"  # missing folders are created
    proc = conformance("--spawn", STUDENT + " --defect sequential", "--profile", "concurrency", "--budget", "2",
                       "--format", "json", "-o", str(out), "-q")
    assert proc.returncode == 4, proc.stderr
    doc = json.loads(out.read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    assert doc["incomplete"] is True
    assert "budget of 2 s ran out" in doc["incomplete_reason"]
    skipped = [r for r in doc["results"] if r["verdict"] == "skip"]
    assert skipped and all(r["reason"].startswith("not run") for r in skipped)


@pytest.mark.parametrize("budget", ["0", "-5"])
def test_a_budget_that_is_not_positive_is_a_usage_error(budget):
    proc = conformance("--budget", budget, *ids("lab/get-text-file"), timeout=30)
    assert proc.returncode == 2
    assert "--budget wants a positive number" in proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_writes_a_valid_incomplete_report(tmp_path, sig):
    out = tmp_path / "report.json"
    runner = subprocess.Popen(
        [sys.executable, "-m", "conformance", "--spawn", STUDENT + " --defect sequential", "--profile", "all",
         "--format", "json", "-o", str(out), "-q"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # Signal once the run is under way (its server started), not at a fixed
        # time a loaded machine may not have reached.
        deadline = time.monotonic() + 30
        while not children_of(runner.pid) and runner.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(4)  # some cases done: the sequential server's run takes over 20 s
        runner.send_signal(sig)
        # A second signal while the report is being written must not cut it short.
        time.sleep(0.05)
        runner.send_signal(sig)
        runner.wait(30)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert runner.returncode == 128 + sig
    doc = json.loads(out.read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    assert doc["incomplete"] is True and "interrupted" in doc["incomplete_reason"]
    done = [r for r in doc["results"] if not r["reason"].startswith("not run")]
    assert done, "the cases run before the signal are in the report"
    assert not (tmp_path / "report.json.partial").exists()


def test_a_case_that_kills_a_fresh_server_is_not_replayed():
    # Each of these kills a server that dies when a client vanishes. The first ran on
    # a server other cases had used, so it is replayed alone on a fresh one; the
    # others ran alone on a server just restarted, which is what a replay would do.
    selection = ids("lab/get-text-file", "robustness/client-closes-mid-headers",
                    "robustness/client-never-reads-large-file", "robustness/client-reads-1-kib-of-large-file")
    proc = conformance("--spawn", STUDENT + " --defect dies-on-disconnect", *selection,
                       "--format", "json", "-q")
    doc = report(proc)
    results = by_id(doc)
    crashed = [r for r in results.values() if r["id"] != "lab/get-text-file"]
    assert all(r["verdict"] == "fail" and r["cause"] == "crash" for r in crashed), crashed
    assert results["lab/get-text-file"]["verdict"] == "pass"
    log = Path(doc["run"]["server_log"]).read_text()
    assert log.count("replaying") == 1, log
    assert doc["run"]["notes"] == ["the server was restarted 4 times during the run"]
