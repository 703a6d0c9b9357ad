"""One submission's result.json: the unit every class output is made from.

``make_result`` assembles the record from what grading learned (pure); the schema
is ``result-schema.json`` beside this module, versioned by ``format`` and
``version``. ``compare`` says what changed between two results of the same
submission (a regrade): score per item and which hashes differ.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import jsonschema

from .. import __version__
from .rubric import Rubric
from .score import score_items, totals

__all__ = ["FORMAT", "VERSION", "SCHEMA_PATH", "CASE_FIELDS", "make_result", "compare", "result_problems", "read_result"]

FORMAT = "http10-conformance-grade-result"
VERSION = 1
SCHEMA_PATH = Path(__file__).resolve().parent / "result-schema.json"

# The fields of a runner's per-case result kept in result.json (read with .get():
# server_log and cause arrive with a newer runner).
CASE_FIELDS = ("id", "title", "area", "level", "requirements", "verdict", "reason", "expected",
               "actual", "findings", "reproducer", "hint", "server_log", "cause", "duration")
TEXT_CAP = 4000  # characters per text field of a case; result files stay small


def _cap(value: Any) -> Any:
    if isinstance(value, str) and len(value) > TEXT_CAP:
        return value[:TEXT_CAP] + f"... ({len(value) - TEXT_CAP} more characters)"
    if isinstance(value, list):
        return [_cap(v) for v in value[:200]]
    return value


def case_record(raw: Mapping, kind: str, items: list[str], attempts: int = 1, flaky: bool = False) -> dict:
    """A runner result (JSON report entry) as kept in result.json."""
    rec = {name: _cap(raw.get(name)) for name in CASE_FIELDS}
    for name in ("requirements", "expected", "findings", "server_log"):
        rec[name] = list(rec[name] or [])
    for name in ("title", "area", "level", "verdict", "reason", "actual", "reproducer", "hint", "cause"):
        rec[name] = "" if rec[name] is None else str(rec[name])
    rec["duration"] = float(rec["duration"] or 0.0)
    rec.update(kind=kind, items=items, attempts=attempts, flaky=flaky)
    return rec


def make_result(
    rubric: Rubric,
    submission: str,
    *,
    status: str = "graded",
    reason: str = "",
    cases: list[dict] | None = None,
    build: dict | None = None,
    launch: dict | None = None,
    runner: dict | None = None,
    isolation: dict | None = None,
    cleanup: dict | None = None,
    hashes: dict | None = None,
    duration: float = 0.0,
    graded_at: str | None = None,
) -> dict:
    """The result record of one submission (see result-schema.json)."""
    cases = list(cases or [])
    records = {c["id"]: c for c in cases}
    items = score_items(rubric, records, status, reason)
    score, max_score, extra = totals(items)
    return {
        "format": FORMAT,
        "version": VERSION,
        "tool_version": __version__,
        "submission": submission,
        "status": status,
        "reason": reason,
        "score": score,
        "max_score": max_score,
        "extra_credit": extra,
        "rubric": {"name": rubric.name, "source": rubric.source, "sha256": rubric.sha256, "total": rubric.total},
        "items": items,
        "cases": cases,
        "build": build,
        "launch": launch,
        "runner": runner,
        "isolation": isolation or {},
        "cleanup": cleanup,
        "hashes": hashes or {},
        "previous": None,
        "graded_at": graded_at or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "duration": round(duration, 2),
    }


def compare(old: Mapping, new: Mapping) -> dict:
    """What changed from ``old`` to ``new`` (two results of one submission)."""
    old_items = {i["id"]: i["score"] for i in old.get("items", [])}
    changed = [
        {"item": i["id"], "old": old_items.get(i["id"]), "new": i["score"]}
        for i in new.get("items", []) if old_items.get(i["id"]) != i["score"]
    ]
    old_h, new_h = old.get("hashes", {}), new.get("hashes", {})
    hashes = [k for k in ("corpus", "rubric", "submission") if old_h.get(k) != new_h.get(k)]
    old_files, new_files = old_h.get("files", {}), new_h.get("files", {})
    files = sorted(f for f in set(old_files) | set(new_files) if old_files.get(f) != new_files.get(f))
    return {"graded_at": old.get("graded_at", ""), "score": old.get("score"), "items_changed": changed,
            "hashes_changed": hashes, "files_changed": files}


def result_problems(result: Any) -> list[str]:
    """Schema problems of a result record; empty when it is valid."""
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(result)]


def read_result(path: str | Path) -> dict:
    """Read a result.json (or a folder holding one); ValueError if it is not one."""
    path = Path(path)
    if path.is_dir():
        path = path / "result.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable result file: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a grade result (no format {FORMAT!r})")
    if data.get("version") != VERSION:
        raise ValueError(f"{path}: result version {data.get('version')!r}, this grader reads {VERSION}")
    return data
