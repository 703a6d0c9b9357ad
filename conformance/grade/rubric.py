"""Rubrics: which cases earn which points, and how a submission is started.

A rubric is a TOML file (schema: ``rubric-schema.json`` beside this module; README,
"For instructors"). ``load_rubric`` reads it, validates it against the schema, then
checks what a schema cannot: the points add up to the stated total, every item's
selection names at least one case and every plain case id exists, ``requires``
names earlier items. Every problem is a ``RubricError`` naming the item, raised
before anything runs. The resolved case ids are stored in each item, so scoring
never needs the corpus again.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from ..corpusfile import CaseError, format_key, read_toml
from ..loader import load_corpus
from ..select import select

__all__ = ["BUILTIN", "Limits", "Item", "Rubric", "RubricError", "load_rubric", "rubric_path", "timing_sensitive"]

HERE = Path(__file__).resolve().parent
SCHEMA_PATH = HERE / "rubric-schema.json"
BUILTIN = {"lab": HERE / "lab.toml"}
GLOB_CHARS = "*?["
POINTS_EPSILON = 1e-6


class RubricError(Exception):
    """A rubric that cannot be used; the message names the file and the item."""


@dataclass(frozen=True)
class Limits:
    """Per-submission limits; the defaults and units are in rubric-schema.json."""

    build_seconds: float = 120.0
    startup_seconds: float = 10.0
    run_seconds: float = 300.0
    cpu_seconds: int = 300
    file_size_mb: float = 64.0
    open_files: int = 1024
    processes: int = 512
    memory_mb: float = 1024.0


@dataclass(frozen=True)
class Item:
    id: str
    title: str
    points: float
    cases: tuple[str, ...]  # resolved case ids, in corpus order
    kind: str = "server"
    scoring: str = "proportional"
    k: int | None = None
    requires: tuple[str, ...] = ()
    visibility: str = "visible"
    feedback: str = "full"
    extra_credit: bool = False
    select: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Rubric:
    name: str
    total: float
    items: tuple[Item, ...]
    start: str = "python3 server.py {port}"
    build: str = ""
    client: str = ""
    required_files: tuple[str, ...] = ()
    jobs: int = 1
    retries: int = 2
    visibility: str = "visible"
    feedback: str = "full"
    limits: Limits = field(default_factory=Limits)
    source: str = ""   # where it was read from
    text: str = ""     # the TOML as read, for the bundle and the hash
    sha256: str = ""
    timing_sensitive: tuple[str, ...] = ()  # case ids retried when they fail

    def item(self, item_id: str) -> Item:
        for item in self.items:
            if item.id == item_id:
                return item
        raise KeyError(item_id)

    def server_cases(self) -> list[str]:
        """Every server case any item selects, each once, in corpus order."""
        seen: dict[str, None] = {}
        for item in self.items:
            if item.kind == "server":
                seen.update(dict.fromkeys(item.cases))
        return list(seen)

    def client_cases(self) -> list[str]:
        seen: dict[str, None] = {}
        for item in self.items:
            if item.kind == "client":
                seen.update(dict.fromkeys(item.cases))
        return list(seen)


def rubric_path(name_or_file: str | Path) -> Path:
    """A built-in rubric's file (``lab``), or the path as given."""
    if str(name_or_file) in BUILTIN:
        return BUILTIN[str(name_or_file)]
    return Path(name_or_file)


def timing_sensitive(case) -> bool:
    """Cases whose verdict may depend on the machine's load: retried when they fail."""
    return case.area == "concurrency" or case.scenario


def _schema_problems(data: dict) -> list[str]:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        path = list(error.absolute_path)
        where = format_key(path) or "the top level"
        if len(path) >= 2 and path[0] == "item" and isinstance(path[1], int):
            raw = data["item"][path[1]]
            name = raw.get("id") if isinstance(raw, dict) else None
            where = f"item {name!r} ({format_key(path)})" if name else f"item number {path[1] + 1} ({format_key(path)})"
        message = error.message
        if error.validator == "additionalProperties":
            message = message.replace("Additional properties are not allowed", "unknown key")
        problems.append(f"{where}: {message}")
    return problems


def _resolve(item_raw: dict, corpus, client_ids: dict[str, str]) -> list[str]:
    """The case ids an item's selection names; raises RubricError on a bad selection."""
    sel = item_raw["select"]
    name = item_raw["id"]
    if item_raw.get("kind", "server") == "client":
        extra = set(sel) - {"ids", "levels"}
        if extra:
            raise RubricError(f"item {name!r}: a client item selects by ids and levels only, not {sorted(extra)}")
        ids = sel.get("ids", [])
        for pattern in ids:
            if not any(ch in pattern for ch in GLOB_CHARS) and pattern not in client_ids:
                raise RubricError(f"item {name!r}: unknown client case id {pattern!r}")
        levels = sel.get("levels", [])
        return [c for c, level in client_ids.items()
                if (not ids or any(fnmatch.fnmatchcase(c, g) for g in ids)) and (not levels or level in levels)]
    known = {c.id for c in corpus.cases}
    for pattern in sel.get("ids", []):
        if not any(ch in pattern for ch in GLOB_CHARS) and pattern not in known:
            raise RubricError(f"item {name!r}: unknown case id {pattern!r} ('python -m conformance list' shows them)")
    try:
        chosen = select(
            corpus.cases, corpus.profiles,
            ids=tuple(sel.get("ids", ())), areas=tuple(sel.get("areas", ())),
            profile=sel.get("profile"), tags=tuple(sel.get("tags", ())),
            exclude_tags=tuple(sel.get("exclude_tags", ())), levels=tuple(sel.get("levels", ())),
        )
    except ValueError as exc:
        raise RubricError(f"item {name!r}: {exc}") from None
    return [c.id for c in chosen]


def _client_cases(corpus) -> dict[str, str]:
    """Client case id -> level."""
    from ..client_cases import load_client_cases

    return {c.id: c.level for c in sorted(load_client_cases(corpus.cases_dir, corpus.fixtures), key=lambda c: c.id)}


def load_rubric(name_or_file: str | Path, cases_dir: str | Path | None = None) -> Rubric:
    """Read, validate and resolve a rubric.

    Args:
        name_or_file: ``lab`` (the built-in rubric) or a TOML file.
        cases_dir: the corpus the selections are resolved against (default: the bundled one).

    Returns:
        The rubric, with each item's case ids resolved.

    Raises:
        RubricError: the file cannot be read or is invalid; the message names the item and key.
    """
    path = rubric_path(name_or_file)
    try:
        raw_bytes = path.read_bytes()
        data = read_toml(path)
    except OSError as exc:
        raise RubricError(f"{path}: cannot read the rubric: {exc.strerror or exc}") from None
    except CaseError as exc:
        raise RubricError(f"{path}: {exc}") from None
    problems = _schema_problems(data)
    if problems:
        raise RubricError(f"{path}: " + "\n  ".join(problems))
    try:
        return _build(data, path, raw_bytes, cases_dir)
    except RubricError as exc:
        raise RubricError(f"{path}: {exc}") from None


def _build(data: dict[str, Any], path: Path, raw_bytes: bytes, cases_dir) -> Rubric:
    head = data["rubric"]
    items_raw = data["item"]
    seen: list[str] = []
    for raw in items_raw:
        if raw["id"] in seen:
            raise RubricError(f"item {raw['id']!r} appears twice")
        for req in raw.get("requires", []):
            if req not in seen:
                raise RubricError(f"item {raw['id']!r}: requires {req!r}, which is not an earlier item")
        seen.append(raw["id"])
    counted = sum(r["points"] for r in items_raw if not r.get("extra_credit", False))
    if abs(counted - head["total"]) > POINTS_EPSILON:
        raise RubricError(
            f"the items that are not extra credit add up to {counted:g} points, but total is {head['total']:g}"
        )
    if any(r.get("kind") == "client" for r in items_raw) and not head.get("client"):
        raise RubricError("a client item needs [rubric].client, the command that starts the submission's client")
    try:
        corpus = load_corpus(cases_dir)
    except CaseError as exc:
        raise RubricError(f"the case corpus is invalid: {exc}") from None
    client_ids = _client_cases(corpus) if any(r.get("kind") == "client" for r in items_raw) else {}
    items = []
    for raw in items_raw:
        cases = _resolve(raw, corpus, client_ids)
        if not cases:
            raise RubricError(f"item {raw['id']!r}: its selection matches no case")
        scoring = raw.get("scoring", "proportional")
        k = raw.get("k")
        if scoring == "k-of-n":
            if k is None:
                raise RubricError(f"item {raw['id']!r}: scoring 'k-of-n' needs k")
            if k > len(cases):
                raise RubricError(f"item {raw['id']!r}: k = {k} but its selection has only {len(cases)} cases")
        elif k is not None:
            raise RubricError(f"item {raw['id']!r}: k is only for scoring 'k-of-n'")
        items.append(Item(
            id=raw["id"], title=raw["title"], points=float(raw["points"]), cases=tuple(cases),
            kind=raw.get("kind", "server"), scoring=scoring, k=k, requires=tuple(raw.get("requires", ())),
            visibility=raw.get("visibility", head.get("visibility", "visible")),
            feedback=raw.get("feedback", head.get("feedback", "full")),
            extra_credit=raw.get("extra_credit", False), select=dict(raw["select"]),
        ))
    by_id = {c.id: c for c in corpus.cases}
    sensitive = tuple(cid for item in items if item.kind == "server"
                      for cid in item.cases if timing_sensitive(by_id[cid]))
    return Rubric(
        name=head["name"], total=float(head["total"]), items=tuple(items),
        start=head.get("start", "python3 server.py {port}"), build=head.get("build", ""),
        client=head.get("client", ""), required_files=tuple(head.get("required_files", ())),
        jobs=head.get("jobs", 1), retries=head.get("retries", 2),
        visibility=head.get("visibility", "visible"), feedback=head.get("feedback", "full"),
        limits=Limits(**data.get("limits", {})), source=str(path),
        text=raw_bytes.decode("utf-8"), sha256=hashlib.sha256(raw_bytes).hexdigest(),
        timing_sensitive=tuple(dict.fromkeys(sensitive)),
    )
