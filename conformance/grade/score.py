"""Scoring: case verdicts and a rubric in, points per item out. Pure functions.

A case earns its share when its verdict is ``pass`` or ``info`` (``info`` is a
choice RFC 1945 leaves open, never a mistake); ``warn``, ``fail``, ``error`` and
``skip`` earn nothing (a case skipped because the run's budget ran out was not
shown to work). A case that failed and then passed on a retry is marked flaky and
earns its share: the retry is the documented benefit of the doubt, and the mark
lets the instructor see it.

Rules (``scoring`` in the rubric):
  proportional  points x passed / cases
  all           points if every case passed, else 0
  k-of-n        points once k cases passed, else points x passed / k
``requires``: an item whose required items did not all score more than 0 gets 0,
with the reason, whatever its own cases did.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from .rubric import Item, Rubric

__all__ = ["EARNING", "STATUSES", "case_earns", "item_fraction", "score_items", "totals"]

EARNING = frozenset({"pass", "info"})

# A submission's status, and what it means; every status but "graded" scores 0.
STATUSES = {
    "graded": "the cases ran and were scored",
    "incomplete-submission": "a required file is missing, or the folder is empty",
    "did-not-build": "the build command failed or ran out of time",
    "did-not-start": "the server exited, or never listened on the port it was given",
    "grader-error": "the grader itself failed; the score is 0 until it is graded again",
}

POINTS_DIGITS = 2


def case_earns(record: Mapping | None) -> bool:
    return record is not None and record.get("verdict") in EARNING


def item_fraction(item: Item, records: Mapping[str, Mapping]) -> tuple[float, int, int]:
    """The fraction of the item's points its cases earn, and (passed, counted)."""
    passed = sum(1 for cid in item.cases if case_earns(records.get(cid)))
    counted = len(item.cases)
    if item.scoring == "all":
        fraction = 1.0 if passed == counted else 0.0
    elif item.scoring == "k-of-n":
        fraction = min(1.0, passed / item.k)
    else:
        fraction = passed / counted
    return fraction, passed, counted


def score_items(rubric: Rubric, records: Mapping[str, Mapping], status: str = "graded",
                reason: str = "") -> list[dict]:
    """Points per item, in rubric order.

    Args:
        rubric: the rubric (items with resolved case ids).
        records: case id -> a case record with at least ``verdict`` (and ``flaky``).
        status: the submission's status; anything but ``graded`` scores 0 everywhere.
        reason: why it was not graded, repeated in each item.

    Returns:
        One dict per item: id, title, score, max_score, status (passed/failed),
        passed, counted, flaky (case ids), failed (case ids that did not earn),
        gated_by (required items that scored nothing), visibility, feedback,
        extra_credit, kind, scoring, reason.
    """
    out: list[dict] = []
    scored: dict[str, float] = {}
    for item in rubric.items:
        fraction, passed, counted = item_fraction(item, records)
        gated_by = [req for req in item.requires if scored.get(req, 0.0) <= 0.0]
        why = ""
        if status != "graded":
            fraction, passed, why = 0.0, 0, reason or STATUSES.get(status, status)
        elif gated_by:
            fraction = 0.0
            why = "no points until " + ", ".join(repr(rubric.item(g).title) for g in gated_by) + " scores"
        score = round(item.points * fraction, POINTS_DIGITS)
        scored[item.id] = score
        out.append({
            "id": item.id,
            "title": item.title,
            "kind": item.kind,
            "score": score,
            "max_score": item.points,
            "status": "passed" if status == "graded" and score >= item.points and not gated_by else "failed",
            "scoring": item.scoring + (f" (k = {item.k})" if item.k else ""),
            "passed": passed,
            "counted": counted,
            "failed": [cid for cid in item.cases if not case_earns(records.get(cid))] if status == "graded" else [],
            "flaky": [cid for cid in item.cases if (records.get(cid) or {}).get("flaky")],
            "gated_by": gated_by if status == "graded" else [],
            "visibility": item.visibility,
            "feedback": item.feedback,
            "extra_credit": item.extra_credit,
            "reason": why,
        })
    return out


def totals(items: Iterable[Mapping]) -> tuple[float, float, float]:
    """(score, max_score, extra_credit earned): extra credit counts in score, not in max_score."""
    items = list(items)
    score = round(sum(i["score"] for i in items), POINTS_DIGITS)
    max_score = round(sum(i["max_score"] for i in items if not i["extra_credit"]), POINTS_DIGITS)
    extra = round(sum(i["score"] for i in items if i["extra_credit"]), POINTS_DIGITS)
    return score, max_score, extra
