"""The comparison matrix: the corpus against many real servers, one after another.

Each server is started from a recipe (tools/servers/servers.toml), run against the
selected cases, and stopped. The result is one JSON-ready dict (the input of the
Markdown and HTML renderers) that also compares each server's failures with its
known-failures file, so the matrix works as a regression gate.
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from . import __version__
from .matrix_html import MATRIX_FORMAT, MATRIX_VERSION
from .model import Case, Result
from .report import COUNT_ORDER
from .runner import Options, preflight, run_all
from .spawn import SpawnError, SpawnedServer, free_port
from .wire import Target

__all__ = ["load_known", "run_matrix", "render_markdown"]

BAD = ("fail", "error")

# Symbols for the Markdown table, where colour is not available.
SYMBOLS = {"pass": "✓", "warn": "W", "info": "i", "fail": "✗", "error": "E", "skip": "-"}


def load_known(folder: Path, name: str) -> dict[str, str]:
    """Known failures of one server: ``case-id  # why`` per line; id -> why."""
    path = folder / f"{name}.txt"
    if not path.exists():
        return {}
    known = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        text, _, why = line.partition("#")
        if text.strip():
            known[text.strip()] = why.strip()
    return known


def _world_readable_root(fixtures) -> tuple[Path, Path]:
    # Servers started as root drop to www-data or nobody: the served tree must be
    # readable by them, which a home folder or pytest's 0700 folders are not.
    base = Path(tempfile.mkdtemp(prefix="conformance-matrix-", dir="/tmp" if os.path.isdir("/tmp") else None))
    os.chmod(base, 0o755)
    return base, fixtures.materialise(base / "fixtures")


def _server_row(recipe, status: str, reason: str = "", version: str = "", duration: float = 0.0) -> dict:
    return {
        "name": recipe.name,
        "language": recipe.language,
        "version": version,
        "status": status,
        "reason": reason,
        "duration": round(duration, 2),
        "counts": {k: 0 for k in (*COUNT_ORDER, "total")},
        "new_failures": [],
        "fixed": [],
        "known_failures": [],
    }


def _run_one(recipe, root: Path, cases: list[Case], fixtures, jobs: int) -> tuple[str, str, list[Result]]:
    """Start one server, run the cases, stop it: (status, reason, results)."""
    host = "127.0.0.1"
    port = free_port(host)
    scratch = SpawnedServer.make_scratch()
    try:
        argv, env = recipe.render(port, root, scratch, host=host)
    except Exception as exc:  # a recipe's build or template can fail in many ways
        return "error", f"cannot prepare the server: {exc}", []
    server = SpawnedServer(argv, root, host, port, scratch, env)
    try:
        server.start()
        problem = preflight(Target(host, port), fixtures)
        if problem:
            return "error", problem, []
        return "ran", "", run_all(cases, Target(host, port), fixtures, Options(jobs=jobs), server).results
    except SpawnError as exc:
        return "error", str(exc), []
    finally:
        server.stop()


def run_matrix(
    recipes: dict,
    cases: list[Case],
    fixtures,
    known_dir: Path,
    jobs: int = 4,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Run ``cases`` against every recipe; the matrix dict of conformance.matrix_html."""
    started = datetime.now(timezone.utc)
    clock = time.monotonic()
    base, root = _world_readable_root(fixtures)
    servers, results = [], {}
    try:
        for recipe in recipes.values():
            missing = recipe.missing() or recipe.access_problem(root)
            if missing:
                servers.append(_server_row(recipe, "skipped", missing))
                if progress:
                    progress(f"{recipe.name}: skipped ({missing})")
                continue
            version = recipe.version()
            began = time.monotonic()
            status, reason, ran = _run_one(recipe, root, cases, fixtures, jobs)
            row = _server_row(recipe, status, reason, version, time.monotonic() - began)
            known = load_known(known_dir, recipe.name)
            failing = {r.id for r in ran if r.verdict in BAD}
            selected = {c.id for c in cases}
            row["known_failures"] = sorted(set(known) & selected)
            if status == "ran":
                row["new_failures"] = sorted(failing - set(known))
                row["fixed"] = sorted((set(known) & selected) - failing)
            for result in ran:
                row["counts"][result.verdict] += 1
                row["counts"]["total"] += 1
            # The bytes are kept for the cells a reader will open, not for passes: the
            # committed matrix stays small enough to read in a diff.
            results[recipe.name] = {
                r.id: {
                    "verdict": r.verdict,
                    "reason": r.reason,
                    "expected": r.expected,
                    "actual": r.actual,
                    "findings": r.findings,
                    "sent": "" if r.verdict == "pass" else r.sent,
                    "received": "" if r.verdict == "pass" else r.received,
                    "known": r.id in known,
                }
                for r in ran
            }
            servers.append(row)
            if progress:
                counts = ", ".join(f"{row['counts'][k]} {k}" for k in COUNT_ORDER if row["counts"][k])
                progress(f"{recipe.name} {version}: {status} in {row['duration']:.1f} s ({counts or reason})")
    finally:
        import shutil

        shutil.rmtree(base, ignore_errors=True)
    return {
        "format": MATRIX_FORMAT,
        "version": MATRIX_VERSION,
        "suite_version": __version__,
        "generated": started.isoformat(timespec="seconds"),
        "duration": round(time.monotonic() - clock, 1),
        "servers": servers,
        "cases": [
            {"id": c.id, "title": c.title, "area": c.area, "level": c.level, "requirements": list(c.requirements)}
            for c in cases
        ],
        "results": results,
    }


def gate_failures(matrix: dict) -> list[str]:
    """What the regression gate reports: new failures and known failures that now pass."""
    lines = []
    for server in matrix["servers"]:
        if server["status"] == "error":
            first = (server["reason"] or "no reason given").splitlines()[0]
            lines.append(f"{server['name']}: did not run: {first}")
        for case_id in server["new_failures"]:
            lines.append(f"{server['name']}: new failure {case_id}")
        for case_id in server["fixed"]:
            lines.append(f"{server['name']}: known failure now passes {case_id} (remove it from its known-failures file)")
    return lines


def render_markdown(matrix: dict) -> str:
    """The matrix as Markdown: a summary per server, then cases x servers."""
    ran = [s for s in matrix["servers"] if s["status"] == "ran"]
    lines = [
        "# Comparison matrix",
        "",
        f"Generated by `python -m conformance matrix` on {matrix['generated']} "
        f"(suite {matrix['suite_version']}, {len(matrix['cases'])} cases, {matrix['duration']:.0f} s). "
        "Legend: ✓ pass, W warn, i info, ✗ fail, E error, - not run; "
        "a `*` marks a known failure (tools/servers/known-failures/).",
        "",
        "| server | language | version | status | " + " | ".join(COUNT_ORDER) + " | new failures | fixed |",
        "|---|---|---|---|" + "---|" * len(COUNT_ORDER) + "---|---|",
    ]
    for s in matrix["servers"]:
        status = s["status"] if not s["reason"] else f"{s['status']}: {_md(s['reason'].splitlines()[0])}"
        counts = " | ".join(str(s["counts"][k]) for k in COUNT_ORDER)
        lines.append(
            f"| {s['name']} | {s['language']} | {_md(s['version'])} | {status} | {counts} | "
            f"{len(s['new_failures'])} | {len(s['fixed'])} |"
        )
    if not ran:
        return "\n".join(lines + ["", "No server ran, so there is no table of cases."]) + "\n"
    lines += ["", "| case | level | " + " | ".join(s["name"] for s in ran) + " |",
              "|---|---|" + "---|" * len(ran)]
    for case in matrix["cases"]:
        cells = []
        for s in ran:
            cell = matrix["results"][s["name"]].get(case["id"])
            if cell is None:
                cells.append("-")
            else:
                cells.append(SYMBOLS[cell["verdict"]] + ("*" if cell["known"] and cell["verdict"] in BAD else ""))
        lines.append(f"| `{case['id']}` | {case['level']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
