"""One submission through the worker: the build step, and the grader's own failure."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import jsonschema
import pytest

from conformance.grade import submission
from conformance.grade.result import result_problems
from conformance.grade.rubric import load_rubric
from grade_helpers import RUBRIC, build_class

pytestmark = [pytest.mark.network, pytest.mark.skipif(sys.platform != "linux", reason="grading isolation is Linux-only")]

SCHEMAS = Path(__file__).resolve().parents[1] / "conformance" / "grade" / "schemas"


def rubric_with(tmp_path, extra: str, limits: str = "") -> Path:
    text = RUBRIC.read_text().replace('required_files = ["server.py"]', extra)
    text = text.replace("[limits]\n", "[limits]\n" + limits)
    path = tmp_path / "rubric.toml"
    path.write_text(text)
    return path


def test_build_step_results(tmp_path):
    subs = tmp_path / "subs"
    ok = subs / "builds"
    (ok / "src").mkdir(parents=True)
    (ok / "src" / "server.py").write_bytes((Path(__file__).resolve().parents[1] / "reference" / "server.py").read_bytes())
    (ok / "build.sh").write_text("cp src/server.py server.py\necho built\n")
    broken = subs / "broken"
    broken.mkdir()
    (broken / "build.sh").write_text("echo 'server.c:3: error: expected ; before }' >&2\nexit 2\n")
    slow = subs / "slow"
    slow.mkdir()
    (slow / "build.sh").write_text("sleep 30\n")
    rubric = rubric_with(tmp_path, 'build = "sh build.sh"', "build_seconds = 2\n")
    proc = subprocess.run([sys.executable, "-m", "conformance.grade", str(subs), "--rubric", str(rubric),
                           "--out", str(tmp_path / "out"), "--jobs", "2"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    res = {n: json.loads((tmp_path / "out" / n / "result.json").read_text()) for n in ("builds", "broken", "slow")}
    for r in res.values():
        assert not result_problems(r)
    assert res["builds"]["status"] == "graded" and res["builds"]["build"]["output"].strip() == "built"
    assert res["broken"]["status"] == "did-not-build"
    assert res["broken"]["reason"] == "the build command exited with status 2"
    assert "expected ; before }" in (tmp_path / "out" / "broken" / "feedback.md").read_text()
    assert res["slow"]["status"] == "did-not-build" and res["slow"]["build"]["timed_out"]
    assert res["slow"]["duration"] < 20


def test_a_grader_failure_is_a_result_with_the_reason(tmp_path, monkeypatch):
    subs = build_class(tmp_path / "subs", variants=(), bad=(), reference=True)

    def broken(self):
        raise RuntimeError("the corpus vanished")

    monkeypatch.setattr(submission._Worker, "grade", broken)
    job = submission.Job(submission=str(subs / "reference"), name="reference", out=str(tmp_path / "out"),
                         rubric=str(RUBRIC), platform_files={"gradescope": str(tmp_path / "gs.json"),
                                                             "prairielearn": str(tmp_path / "pl.json")})
    result = submission.run_job(job)
    assert result["status"] == "grader-error" and result["score"] == 0
    assert "RuntimeError: the corpus vanished" in result["reason"]
    assert not result_problems(json.loads((tmp_path / "out" / "result.json").read_text()))
    gs = json.loads((tmp_path / "gs.json").read_text())
    jsonschema.validate(gs, json.loads((SCHEMAS / "gradescope-results.schema.json").read_text()))
    assert gs["score"] == 0 and "the corpus vanished" in gs["output"]
    pl = json.loads((tmp_path / "pl.json").read_text())
    jsonschema.validate(pl, json.loads((SCHEMAS / "prairielearn-results.schema.json").read_text()))
    assert pl["gradable"] is False and pl["score"] == 0


def test_a_worker_that_dies_still_leaves_a_result(tmp_path, monkeypatch):
    subs = build_class(tmp_path / "subs", variants=(), bad=("never-listens",), reference=False)
    rubric = load_rubric(RUBRIC)
    monkeypatch.setattr(submission, "worker_timeout", lambda r: 1.0)
    job = submission.Job(submission=str(subs / "never-listens"), name="never-listens", out=str(tmp_path / "out"),
                         rubric=str(RUBRIC))
    result = submission.grade_submission(job, rubric)
    assert result["status"] == "grader-error" and "longer than 1 s" in result["reason"]
    assert json.loads((tmp_path / "out" / "result.json").read_text())["status"] == "grader-error"
    from conformance.grade import isolate
    for _ in range(10):  # nothing comes back, not even a sandbox that was about to exec
        assert not isolate.submission_pids(job.marker, job.uid, grader=True)
        time.sleep(0.2)


def _cmdlines_with(token: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if token in cmd:
            found.append(f"{pid} {cmd}")
    return found


def test_sigterm_stops_every_worker_and_submission(tmp_path):
    token = f"token-{uuid.uuid4().hex}"
    subs = build_class(tmp_path / "subs", variants=(), bad=("never-listens",), reference=False)
    shutil.copytree(subs / "never-listens", subs / "never-listens-2")
    rubric = tmp_path / "rubric.toml"
    rubric.write_text(RUBRIC.read_text().replace('start = "python3 server.py {port}"',
                                                 f'start = "python3 server.py {{port}} {token}"')
                      .replace("startup_seconds = 3", "startup_seconds = 60"))
    proc = subprocess.Popen([sys.executable, "-m", "conformance.grade", str(subs), "--rubric", str(rubric),
                             "--out", str(tmp_path / "out"), "--jobs", "2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len([c for c in _cmdlines_with(token) if "server.py" in c]) < 2:
            time.sleep(0.1)
        assert len([c for c in _cmdlines_with(token) if "server.py" in c]) >= 2, "the servers never started"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert not _cmdlines_with(token)


def test_check_rubric_command(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "conformance.grade", "--check-rubric", str(RUBRIC)],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "OK, 7 items, 100 points" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(RUBRIC.read_text().replace('"lab/get-missing-file"', '"lab/get-missing-fil"'))
    proc = subprocess.run([sys.executable, "-m", "conformance.grade", "--check-rubric", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "item 'not-found': unknown case id 'lab/get-missing-fil'" in proc.stderr
    # the same error before anything runs when grading
    proc = subprocess.run([sys.executable, "-m", "conformance.grade", str(tmp_path), "--rubric", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "unknown case id" in proc.stderr


def _nobody_can_run_python() -> bool:
    # Under tox the interpreter lies below /root (0700): `nobody` cannot start it.
    if os.geteuid() != 0 or not shutil.which("runuser"):
        return False
    probe = subprocess.run(["runuser", "-u", "nobody", "--", sys.executable, "-c", "pass"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(not _nobody_can_run_python(),
                    reason="needs root, runuser, and an interpreter the user nobody may execute")
def test_as_an_unprivileged_grader_the_missing_protections_are_reported():
    """Graded by `nobody`: no uid switch, no namespace, and both say so; the daemon is still stopped."""
    # pytest's own temporary folders are root's alone; this one `nobody` may use.
    base = Path(tempfile.mkdtemp(prefix="grade-nobody-"))
    try:
        _graded_by_nobody(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _graded_by_nobody(base: Path) -> None:
    base.chmod(0o777)
    subs = build_class(base / "subs", variants=(), bad=("daemon",), reference=True)
    home = base / "home"
    home.mkdir()
    home.chmod(0o777)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "TMPDIR": str(home),
           "CONFORMANCE_CACHE_DIR": str(home / "cache")}
    proc = subprocess.run(["runuser", "-u", "nobody", "--", sys.executable, "-m", "conformance.grade", str(subs),
                           "--rubric", str(RUBRIC), "--out", str(home / "out"), "--jobs", "2"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    ref = json.loads((home / "out" / "reference" / "result.json").read_text())
    assert ref["score"] == 100, ref["items"]
    assert ref["isolation"]["unprivileged user"] == {
        "available": False, "detail": ref["isolation"]["unprivileged user"]["detail"]}
    assert "not root" in ref["isolation"]["unprivileged user"]["detail"]
    assert ref["isolation"]["network namespace"]["available"] is False
    assert ref["isolation"]["child subreaper"]["available"] is True
    daemon = json.loads((home / "out" / "daemon" / "result.json").read_text())
    assert daemon["cleanup"]["leftover_processes"] and daemon["cleanup"]["still_running"] == 0
    from conformance.grade import isolate
    assert not isolate.submission_pids(daemon["cleanup"]["marker"])


def test_a_regrade_keeps_the_previous_result_and_says_what_changed(tmp_path):
    subs = build_class(tmp_path / "subs", variants=(), bad=("syntax-error",), reference=False)
    folder = subs / "syntax-error"
    args = [sys.executable, "-m", "conformance.grade", str(subs), "--rubric", str(RUBRIC), "--out", str(tmp_path / "out")]
    subprocess.run(args, check=True, capture_output=True, timeout=120)
    (folder / "server.py").write_bytes((Path(__file__).resolve().parents[1] / "reference" / "server.py").read_bytes())
    subprocess.run(args, check=True, capture_output=True, timeout=120)
    out = tmp_path / "out" / "syntax-error"
    assert json.loads((out / "result.prev.json").read_text())["status"] == "did-not-start"
    now = json.loads((out / "result.json").read_text())
    assert now["status"] == "graded"
    assert now["previous"]["hashes_changed"] == ["submission"] and now["previous"]["files_changed"] == ["server.py"]
    assert {"item": "files", "old": 0.0, "new": 35.0} in now["previous"]["items_changed"]
