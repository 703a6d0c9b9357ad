"""Rubrics, scoring, result records, feedback and the platform exporters: no network."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import jsonschema
import pytest

from conformance.grade import exporters
from conformance.grade.feedback import feedback_markdown, root_causes
from conformance.grade.result import case_record, compare, make_result, result_problems
from conformance.grade.rubric import RubricError, load_rubric

SCHEMAS = Path(__file__).resolve().parents[1] / "conformance" / "grade" / "schemas"

GOOD = """
[rubric]
name = "test"
total = 10

[[item]]
id = "files"
title = "Serves files"
points = 6
select = { ids = ["lab/get-text-file", "lab/get-binary-file"] }

[[item]]
id = "missing"
title = "404"
points = 4
scoring = "all"
select = { ids = ["lab/get-missing-*"] }
requires = ["files"]

[[item]]
id = "bonus"
title = "Bonus"
points = 2
extra_credit = true
scoring = "k-of-n"
k = 1
select = { ids = ["lab/get-index-at-root"] }
visibility = "hidden"
"""


def write(tmp_path, text, name="r.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_builtin_lab_rubric_loads_and_adds_up():
    rubric = load_rubric("lab")
    assert sum(i.points for i in rubric.items if not i.extra_credit) == rubric.total == 100
    assert all(item.cases for item in rubric.items)
    assert "lab/second-client-while-first-stalls" in rubric.timing_sensitive
    assert rubric.client_cases() and rubric.server_cases()


@pytest.mark.parametrize("change, message", [
    (("total = 10", "total = 11"), "add up to 10 points, but total is 11"),
    (("points = 6", "points = -6"), "item 'files'"),
    (('title = "404"', 'title = "404"\ncolour = "red"'), "unknown key"),
    (('"lab/get-text-file"', '"lab/no-such-case"'), "item 'files': unknown case id 'lab/no-such-case'"),
    (('"lab/get-missing-*"', '"lab/nothing-like-this-*"'), "item 'missing': its selection matches no case"),
    (('requires = ["files"]', 'requires = ["bonus"]'), "item 'missing': requires 'bonus'"),
    (("k = 1", "k = 3"), "item 'bonus': k = 3 but its selection has only 1 cases"),
    (('visibility = "hidden"', 'visibility = "secret"'), "item 'bonus'"),
])
def test_bad_rubrics_are_refused_naming_the_item(tmp_path, change, message):
    text = GOOD.replace(*change)
    assert text != GOOD
    with pytest.raises(RubricError) as info:
        load_rubric(write(tmp_path, text))
    assert message in str(info.value)


def records(**verdicts):
    return [case_record({"id": cid, "title": cid, "area": cid.split("/")[0], "level": "MUST", "verdict": v,
                         "reason": "" if v == "pass" else f"{cid} went wrong", "hint": "look closer",
                         "reproducer": "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 8080",
                         "server_log": ["Traceback (most recent call last):"] if v == "error" else None},
                        "server", []) for cid, v in verdicts.items()]


def cases_for(**v):
    return records(**{k.replace("__", "/").replace("_", "-"): x for k, x in v.items()})


def test_scoring_rules_gating_and_extra_credit(tmp_path):
    rubric = load_rubric(write(tmp_path, GOOD))
    cases = cases_for(lab__get_text_file="pass", lab__get_binary_file="fail", lab__get_missing_file="pass",
                      lab__get_missing_folder="pass", lab__get_missing_nested_file="pass",
                      lab__get_index_at_root="pass")
    result = make_result(rubric, "alice", cases=cases)
    assert not result_problems(result)
    scores = {i["id"]: i["score"] for i in result["items"]}
    assert scores == {"files": 3.0, "missing": 4.0, "bonus": 2.0}
    assert (result["score"], result["max_score"], result["extra_credit"]) == (9.0, 10.0, 2.0)
    # Nothing served: the 404 item is gated, whatever its own cases did.
    cases[0]["verdict"] = "fail"
    gated = make_result(rubric, "bob", cases=cases)
    missing = gated["items"][1]
    assert missing["score"] == 0 and missing["gated_by"] == ["files"] and "Serves files" in missing["reason"]


def test_flaky_case_counts_and_is_marked(tmp_path):
    rubric = load_rubric(write(tmp_path, GOOD))
    cases = cases_for(lab__get_text_file="pass", lab__get_binary_file="pass")
    cases[1]["flaky"], cases[1]["attempts"] = True, 2
    result = make_result(rubric, "carol", cases=cases)
    assert result["items"][0]["score"] == 6 and result["items"][0]["flaky"] == ["lab/get-binary-file"]
    assert "flaky" in feedback_markdown(result)


def test_not_graded_scores_zero_with_the_reason(tmp_path):
    rubric = load_rubric(write(tmp_path, GOOD))
    result = make_result(rubric, "dave", status="did-not-build", reason="make exited with status 2",
                         build={"command": "make", "exit_status": 2, "timed_out": False,
                                "output": "server.c:1: error: expected ';'", "duration": 0.1})
    assert not result_problems(result)
    assert result["score"] == 0 and all(i["reason"] == "make exited with status 2" for i in result["items"])
    text = feedback_markdown(result)
    assert text.index("not graded: make exited with status 2") < text.index("## Items")
    assert "expected ';'" in text


def test_feedback_puts_root_causes_first_and_respects_levels(tmp_path):
    rubric = load_rubric(write(tmp_path, GOOD.replace('title = "404"', 'title = "404"\nfeedback = "title"')))
    cases = cases_for(lab__get_text_file="pass", lab__get_binary_file="error", lab__get_missing_file="fail",
                      lab__get_missing_folder="fail", lab__get_missing_nested_file="pass")
    for c in cases[2:4]:
        c["cause"] = "answers 200 for a missing file"
    result = make_result(rubric, "erin", cases=cases)
    assert root_causes(result)[0] == ("answers 200 for a missing file", 2)
    text = feedback_markdown(result)
    assert text.index("What went wrong most") < text.index("## Items")
    assert "Traceback" in text and "nc 127.0.0.1 8080" in text       # full feedback on item 1
    assert "lab/get-missing-folder went wrong" not in text            # title-only item 2
    assert "Bonus" not in text                                        # hidden item


def schema(name):
    return json.loads((SCHEMAS / name).read_text())


@pytest.mark.parametrize("status", ["graded", "did-not-start", "grader-error"])
def test_platform_files_validate(tmp_path, status):
    rubric = load_rubric(write(tmp_path, GOOD))
    cases = cases_for(lab__get_text_file="pass", lab__get_binary_file="fail") if status == "graded" else []
    result = make_result(rubric, "frank", status=status, reason="" if status == "graded" else "it broke",
                         cases=cases)
    gs = exporters.gradescope(result)
    jsonschema.validate(gs, schema("gradescope-results.schema.json"))
    assert gs["score"] == result["score"] and [t["number"] for t in gs["tests"]] == ["1", "2", "3"]
    assert gs["tests"][2]["visibility"] == "hidden" and gs["tests"][2]["max_score"] == 0
    pl = exporters.prairielearn(result)
    jsonschema.validate(pl, schema("prairielearn-results.schema.json"))
    assert len(json.dumps(pl).encode()) < exporters.PRAIRIELEARN_MAX_BYTES
    assert pl["gradable"] is (status != "grader-error")


def test_prairielearn_stays_under_one_megabyte(tmp_path):
    rubric = load_rubric(write(tmp_path, GOOD))
    cases = cases_for(lab__get_text_file="fail", lab__get_binary_file="fail")
    for c in cases:
        c["findings"] = ["x" * 3000] * 200
        c["hint"] = "y" * 3900
    result = make_result(rubric, "gina", cases=cases * 60)
    pl = exporters.prairielearn(result)
    assert len(json.dumps(pl).encode()) < exporters.PRAIRIELEARN_MAX_BYTES


def test_csvs_have_one_column_per_item_and_one_row_per_case(tmp_path):
    rubric = load_rubric(write(tmp_path, GOOD))
    a = make_result(rubric, "a", cases=cases_for(lab__get_text_file="pass", lab__get_binary_file="pass"))
    b = make_result(rubric, "b", status="did-not-start", reason="never listened")
    rows = list(csv.DictReader(io.StringIO(exporters.grades_csv([b, a]))))
    assert [r["submission"] for r in rows] == ["a", "b"]
    assert rows[0]["files"] == "6" and rows[1]["total"] == "0" and rows[1]["reason"] == "never listened"
    cases = list(csv.DictReader(io.StringIO(exporters.cases_csv([a, b]))))
    assert [(r["submission"], r["case"], r["verdict"]) for r in cases] == [
        ("a", "lab/get-text-file", "pass"), ("a", "lab/get-binary-file", "pass")]


def test_compare_shows_what_a_regrade_changed(tmp_path):
    rubric = load_rubric(write(tmp_path, GOOD))
    old = make_result(rubric, "a", cases=cases_for(lab__get_text_file="pass", lab__get_binary_file="fail"),
                      hashes={"submission": "1", "rubric": "r", "corpus": "c", "files": {"server.py": "1"}})
    new = make_result(rubric, "a", cases=cases_for(lab__get_text_file="pass", lab__get_binary_file="pass"),
                      hashes={"submission": "2", "rubric": "r", "corpus": "c", "files": {"server.py": "2"}})
    diff = compare(old, new)
    assert diff["items_changed"] == [{"item": "files", "old": 3.0, "new": 6.0}]
    assert diff["hashes_changed"] == ["submission"] and diff["files_changed"] == ["server.py"]
