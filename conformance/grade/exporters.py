"""From result.json to the platforms' files and the class CSVs. Pure functions.

- Gradescope's results.json (autograder specification, see
  schemas/gradescope-results.schema.json): one test per rubric item, top-level
  ``score`` given explicitly (it overrides the sum, so extra credit is explicit),
  ``execution_time``, student stdout hidden.
- PrairieLearn's results.json (external grading, schemas/prairielearn-results.schema.json):
  ``score`` a fraction in [0, 1], ``gradable`` false only when the grader failed,
  under 1 MB.
- grades.csv: one row per submission, one column per item, a total.
- cases.csv: one row per submission and case (long format, for analysis).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Iterable, Mapping

from .feedback import feedback_markdown, item_text, root_causes

__all__ = ["FORMATS", "gradescope", "prairielearn", "grades_csv", "cases_csv", "PRAIRIELEARN_MAX_BYTES"]

PRAIRIELEARN_MAX_BYTES = 1_000_000
PL_OUTPUT_CAP = 20_000  # characters per output field before the file is measured


def _summary_line(result: Mapping) -> str:
    if result["status"] != "graded":
        return f"Not graded: {result['reason']}"
    causes = root_causes(result, 3)
    text = f"{result['score']:g} / {result['max_score']:g} points."
    if causes:
        text += " What went wrong most: " + "; ".join(f"{r} ({n})" for r, n in causes) + "."
    return text


def gradescope(result: Mapping) -> dict:
    """Gradescope's results.json for one submission."""
    tests = []
    for number, item in enumerate(result["items"], 1):
        tests.append({
            "name": item["title"] + (" (extra credit)" if item["extra_credit"] else ""),
            "number": str(number),
            "score": item["score"],
            # Extra credit adds to the score without raising the maximum.
            "max_score": 0.0 if item["extra_credit"] else item["max_score"],
            "status": item["status"],
            "output": item_text(result, item),
            "output_format": "md",
            "visibility": item["visibility"],
            "tags": [item["id"]],
        })
    return {
        "score": result["score"],
        "execution_time": result["duration"],
        "output": _summary_line(result),
        "output_format": "md",
        "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": {"submission": result["submission"], "status": result["status"],
                       "reason": result["reason"], "hashes": result.get("hashes", {})},
    }


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "\n... (cut)"


def prairielearn(result: Mapping) -> dict:
    """PrairieLearn's results.json for one submission (kept under 1 MB)."""
    graded = result["status"] != "grader-error"
    fraction = result["score"] / result["max_score"] if result["max_score"] else 0.0
    limit = PL_OUTPUT_CAP
    while True:
        data = {
            "gradable": graded,
            "score": max(0.0, min(1.0, round(fraction, 4))),
            "message": _summary_line(result),
            "output": _cap(feedback_markdown(result), limit),
            "tests": [
                {"name": item["title"], "description": item["id"],
                 "points": item["score"], "max_points": 0.0 if item["extra_credit"] else item["max_score"],
                 "message": item["reason"] or item["status"],
                 "output": _cap(item_text(result, item), limit)}
                for item in result["items"] if item["visibility"] != "hidden"
            ],
        }
        if not graded:
            data["format_errors"] = [result["reason"]]
        if len(json.dumps(data).encode()) < PRAIRIELEARN_MAX_BYTES or limit < 100:
            return data
        limit //= 4


def grades_csv(results: Iterable[Mapping]) -> str:
    """grades.csv: submission, status, total, max, one column per item, flaky cases, reason."""
    results = sorted(results, key=lambda r: r["submission"])
    item_ids: list[str] = []
    for res in results:
        for item in res["items"]:
            if item["id"] not in item_ids:
                item_ids.append(item["id"])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["submission", "status", "total", "max", *item_ids, "flaky_cases", "reason",
                     "submission_sha256", "rubric_sha256", "corpus_sha256", "graded_at"])
    for res in results:
        scores = {i["id"]: i["score"] for i in res["items"]}
        flaky = sorted({cid for i in res["items"] for cid in i["flaky"]})
        hashes = res.get("hashes", {})
        writer.writerow([res["submission"], res["status"], f"{res['score']:g}", f"{res['max_score']:g}",
                         *(f"{scores[i]:g}" if i in scores else "" for i in item_ids),
                         " ".join(flaky), res["reason"], hashes.get("submission", ""),
                         hashes.get("rubric", ""), hashes.get("corpus", ""), res["graded_at"]])
    return out.getvalue()


def cases_csv(results: Iterable[Mapping]) -> str:
    """cases.csv: submission x case verdicts, one row each."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["submission", "case", "kind", "level", "verdict", "flaky", "attempts", "items", "reason"])
    for res in sorted(results, key=lambda r: r["submission"]):
        for case in res["cases"]:
            writer.writerow([res["submission"], case["id"], case["kind"], case["level"], case["verdict"],
                             "yes" if case["flaky"] else "", case["attempts"], " ".join(case["items"]),
                             case["reason"]])
    return out.getvalue()


FORMATS = {"gradescope": gradescope, "prairielearn": prairielearn}
