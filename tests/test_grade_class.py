"""`conformance grade` on a whole class: broken variants, the reference, and bad submissions.

The class (tests/grade_helpers.py) is graded once per module with the small rubric
tests/grade_class/rubric.toml at --jobs 2; the tests then read what it wrote.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from conformance.grade import isolate
from conformance.grade.result import result_problems
from grade_helpers import BAD, RUBRIC, VARIANTS, build_class

# Grading the whole test class takes about a minute on two cores: CI runs it once
# (the README's test command), tox leaves it out.
pytestmark = [pytest.mark.network, pytest.mark.slow,
              pytest.mark.skipif(sys.platform != "linux", reason="grading isolation is Linux-only")]

SCHEMAS = Path(__file__).resolve().parents[1] / "conformance" / "grade" / "schemas"
GRADE_TIMEOUT = 400  # seconds for grading the whole test class


def grade(*args, timeout=GRADE_TIMEOUT):
    return subprocess.run([sys.executable, "-m", "conformance.grade", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def graded(tmp_path_factory, worker_id):
    # Graded once for all pytest-xdist workers: the first one grades, the others wait and read.
    shared = tmp_path_factory.getbasetemp()
    shared = shared.parent if worker_id != "master" else shared
    base = shared / "grade-class"
    with open(shared / "grade-class.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (base / "status").exists():
            subs = build_class(base / "submissions")
            proc = grade(subs, "--rubric", RUBRIC, "--out", base / "out", "--jobs", 2, "--format", "gradescope",
                         "--format", "prairielearn")
            (base / "stderr").write_text(proc.stderr)
            (base / "status").write_text(str(proc.returncode))
    assert (base / "status").read_text() == "0", (base / "stderr").read_text()
    out = base / "out"
    results = {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/result.json")}
    return {"out": out, "subs": base / "submissions", "results": results}


def items(result):
    return {i["id"]: i["score"] for i in result["items"]}


def test_every_submission_has_a_valid_result(graded):
    names = {"reference", *(f"defect-{d}" for d in VARIANTS), *BAD}
    assert set(graded["results"]) == names
    for name, result in graded["results"].items():
        assert not result_problems(result), name
        assert (graded["out"] / name / "feedback.md").read_text().startswith("# Test class")


def test_the_reference_gets_full_marks(graded):
    ref = graded["results"]["reference"]
    assert ref["status"] == "graded" and ref["score"] == ref["max_score"] == 100, ref["items"]


@pytest.mark.parametrize("defect, item", sorted(VARIANTS.items()))
def test_each_variant_loses_points_in_its_item(graded, defect, item):
    result = graded["results"][f"defect-{defect}"]
    assert result["status"] == "graded", result["reason"]
    scored = {i["id"]: i for i in result["items"]}
    assert scored[item]["score"] < scored[item]["max_score"], scored[item]
    # the feedback names a failed case of that item, with its hint or reproducer
    text = (graded["out"] / f"defect-{defect}" / "feedback.md").read_text()
    assert any(cid in text for cid in scored[item]["failed"])


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_submissions_get_a_reason_in_bounded_time(graded, name):
    status, phrase = BAD[name]
    result = graded["results"][name]
    assert result["status"] == status, result["reason"]
    assert phrase in result["reason"]
    assert result["duration"] < 60
    if status != "graded":
        assert result["score"] == 0


def test_the_daemon_is_found_stopped_and_its_ports_freed(graded):
    cleanup = graded["results"]["daemon"]["cleanup"]
    assert cleanup["leftover_processes"] and cleanup["killed"] >= 1, cleanup
    assert cleanup["still_running"] == 0 and cleanup["ports_free"], cleanup


def test_nothing_of_any_submission_is_left_running(graded):
    for name, result in graded["results"].items():
        cleanup = result["cleanup"] or {}
        if cleanup.get("marker"):
            assert not isolate.submission_pids(cleanup["marker"], cleanup.get("uid")), name
        if cleanup.get("uid") is not None:
            assert not isolate.listening_ports(uid=cleanup["uid"]), name


def test_every_protection_is_reported(graded):
    wanted = {"temporary copy", "session and process group", "child subreaper", "resource limits",
              "memory watch", "unprivileged user", "network namespace"}
    for name, result in graded["results"].items():
        assert set(result["isolation"]) == wanted, name
        assert all(isinstance(p["available"], bool) and p["detail"] for p in result["isolation"].values())
    ref = graded["results"]["reference"]["isolation"]
    assert ref["unprivileged user"]["available"] is (os.geteuid() == 0)


def test_platform_files_validate_against_their_schemas(graded):
    gs_schema = json.loads((SCHEMAS / "gradescope-results.schema.json").read_text())
    pl_schema = json.loads((SCHEMAS / "prairielearn-results.schema.json").read_text())
    for name in graded["results"]:
        gs = json.loads((graded["out"] / name / "gradescope.json").read_text())
        jsonschema.validate(gs, gs_schema)
        pl_path = graded["out"] / name / "prairielearn.json"
        assert pl_path.stat().st_size < 1_000_000
        jsonschema.validate(json.loads(pl_path.read_text()), pl_schema)
    gs = json.loads((graded["out"] / "reference" / "gradescope.json").read_text())
    assert gs["score"] == 100 and all(t["status"] == "passed" for t in gs["tests"])


def test_class_csvs(graded):
    rows = {r["submission"]: r for r in csv.DictReader((graded["out"] / "grades.csv").open())}
    assert set(rows) == set(graded["results"])
    assert rows["reference"]["total"] == "100" and rows["defect-no-404"]["not-found"] == "0"
    assert rows["empty"]["status"] == "incomplete-submission"
    cases = list(csv.DictReader((graded["out"] / "cases.csv").open()))
    assert {(c["submission"], c["case"]) for c in cases} >= {("reference", "lab/get-text-file"),
                                                            ("defect-sequential", "lab/second-client-while-first-stalls")}
    assert (graded["out"] / "summary.html").read_text().startswith("<!DOCTYPE html>")


def test_grades_do_not_depend_on_jobs(graded, tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    for name in ("reference", "defect-no-404", "defect-head-sends-body", "syntax-error"):
        (subs / name).symlink_to(graded["subs"] / name, target_is_directory=True)
    proc = grade(subs, "--rubric", RUBRIC, "--out", tmp_path / "out", "--jobs", 1)
    assert proc.returncode == 0, proc.stderr
    for name in ("reference", "defect-no-404", "defect-head-sends-body", "syntax-error"):
        again = json.loads((tmp_path / "out" / name / "result.json").read_text())
        assert items(again) == items(graded["results"][name]), name


def test_merge_rebuilds_the_class_outputs(graded, tmp_path):
    proc = grade("merge", *sorted(graded["out"].glob("*/result.json")), "--out", tmp_path / "merged")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "merged" / "grades.csv").read_text() == (graded["out"] / "grades.csv").read_text()
    assert (tmp_path / "merged" / "reference" / "feedback.md").exists()


def test_single_submission_mode_writes_the_platform_file(graded, tmp_path):
    target = tmp_path / "results" / "results.json"
    proc = grade("--one", graded["subs"] / "syntax-error", "--rubric", RUBRIC, "--out", tmp_path / "out",
                 "--format", "gradescope", "--results", target)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(target.read_text())
    assert data["score"] == 0 and "SyntaxError" not in data["output"] and "exited at once" in data["output"]


def test_a_case_that_passes_on_a_retry_is_marked_flaky(graded):
    result = graded["results"]["flaky"]
    concurrency = {i["id"]: i for i in result["items"]}["concurrency"]
    assert concurrency["flaky"] == ["lab/second-client-while-first-stalls"]
    case = {c["id"]: c for c in result["cases"]}["lab/second-client-while-first-stalls"]
    assert case["flaky"] and case["attempts"] == 2 and "passed on attempt 2" in case["reason"]
    rows = {r["submission"]: r for r in csv.DictReader((graded["out"] / "grades.csv").open())}
    assert rows["flaky"]["flaky_cases"] == "lab/second-client-while-first-stalls"
    assert 'data-case="lab/second-client-while-first-stalls"' in (graded["out"] / "summary.html").read_text()
