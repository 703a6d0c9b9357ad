"""Class outputs from per-submission results: grades.csv, cases.csv, summary.html.

``write_class_outputs`` is what ``grade`` calls after a class run; ``merge`` does the
same for result files graded elsewhere (one per platform container, or several
machines): beyond one machine the platforms are the distributed engine, and this
is the step that brings their results together.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from .exporters import cases_csv, grades_csv
from .feedback import feedback_markdown
from .result import read_result
from .summary_html import render_summary

__all__ = ["write_class_outputs", "collect", "merge"]


def write_class_outputs(results: Iterable[dict], out: Path) -> None:
    results = sorted(results, key=lambda r: r["submission"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "grades.csv").write_text(grades_csv(results), encoding="utf-8")
    (out / "cases.csv").write_text(cases_csv(results), encoding="utf-8")
    (out / "summary.html").write_text(render_summary(results), encoding="utf-8")


def collect(paths: Iterable[Path]) -> list[Path]:
    """result.json files named by ``paths``: files, folders holding one, or folders of such folders."""
    found: list[Path] = []
    for path in paths:
        if path.is_file():
            found.append(path)
        elif (path / "result.json").is_file():
            found.append(path / "result.json")
        elif path.is_dir():
            found.extend(sorted(path.glob("*/result.json")))
        else:
            raise ValueError(f"{path}: no such file or folder")
    if not found:
        raise ValueError("no result.json among the paths given")
    return found


def merge(paths: Iterable[Path], out: Path) -> list[dict]:
    """Read every result, keep the newest per submission, copy them under ``out`` and write the class outputs.

    Raises:
        ValueError: a path is not a result file (the message names it), or none was given.
    """
    newest: dict[str, dict] = {}
    for file in collect(paths):
        result = read_result(file)
        name = result["submission"]
        if name not in newest or result["graded_at"] >= newest[name]["graded_at"]:
            newest[name] = result
    for name, result in newest.items():
        target = out / name
        target.mkdir(parents=True, exist_ok=True)
        (target / "result.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        (target / "feedback.md").write_text(feedback_markdown(result), encoding="utf-8")
    write_class_outputs(newest.values(), out)
    return sorted(newest.values(), key=lambda r: r["submission"])


