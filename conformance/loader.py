"""Load the case corpus: TOML files -> validated, frozen ``model`` values.

Every file is validated with ``cases/schema.json`` through the ``jsonschema`` library
(so the schema and the loader cannot drift); schema errors become ``CaseError`` values
that name the file and the key (``expect[1].status``, ``connection[0].parts[2].data``).
After validation the loader only converts: bytes strings through ``escape.to_bytes``,
``count`` connections into ``NAME-1`` .. ``NAME-N``, ``data`` into one part, scalar
``status`` / ``status_class`` / ``version`` into tuples (``"4xx"`` -> 4).

Indices in keys are 0-based, as in the decoded TOML arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import escape

# CaseError, default_cases_dir, read_toml, schema_problems and fixtures_data are
# part of the loader's interface too (see __all__); they live in corpusfile so that
# docroot can read fixtures.toml without importing the loader.
from .corpusfile import (
    CaseError,
    default_cases_dir,
    display_name,
    fixtures_data,
    load_catalogue,
    read_toml,
    schema_problems,
)
from .docroot import Fixtures
from .model import (
    BodyExpect,
    Case,
    Connection,
    HeaderExpect,
    Order,
    Outcome,
    Part,
    Profile,
    Requirement,
)

__all__ = [
    "AREAS",
    "CASE_FILES_EXCLUDED",
    "CaseError",
    "Corpus",
    "default_cases_dir",
    "case_files",
    "case_id",
    "read_toml",
    "schema_problems",
    "load_case",
    "load_requirements",
    "load_profiles",
    "fixtures_data",
    "load_fixtures",
    "load_corpus",
]

# The areas cases/README.md names; a corpus may add its own folders.
AREAS = ("lab", "rfc1945", "robustness", "security", "concurrency")

# Folders under the cases directory that hold no server case files: the fixture
# files, and the client cases (their own format, loaded by client_cases).
CASE_FILES_EXCLUDED = ("docroot", "client")

REQUIREMENTS_FILE = "requirements.toml"
PROFILES_FILE = "profiles.toml"

# "full" responses accept either 1.x version unless the case says otherwise (README).
DEFAULT_FULL_VERSIONS = ("HTTP/1.0", "HTTP/1.1")


@dataclass(frozen=True)
class Corpus:
    """Everything under one cases directory, loaded and validated."""

    cases: tuple[Case, ...]  # sorted by id
    requirements: dict[str, Requirement] = field(default_factory=dict)
    profiles: dict[str, Profile] = field(default_factory=dict)
    fixtures: Fixtures | None = None
    cases_dir: Path | None = None

    def case(self, case_id: str) -> Case:
        """The case with this id; KeyError if there is none."""
        for case in self.cases:
            if case.id == case_id:
                return case
        raise KeyError(case_id)


# ---------------------------------------------------------------------------
# Files and TOML


def case_files(cases_dir: str | Path) -> list[Path]:
    """Every case file under ``cases_dir``: ``<area>/**/*.toml``, sorted.

    The top-level TOML files (requirements, profiles, fixtures), ``docroot/`` and
    folders whose name starts with "." or "_" are not case files.
    """
    cases_dir = Path(cases_dir)
    found = []
    for area in sorted(cases_dir.iterdir()):
        if not area.is_dir() or area.name in CASE_FILES_EXCLUDED or area.name[:1] in "._":
            continue
        for path in area.rglob("*.toml"):
            rel = path.relative_to(cases_dir).parts
            if any(part[:1] in "._" for part in rel):
                continue
            found.append(path)
    return sorted(found, key=lambda p: p.relative_to(cases_dir).as_posix())


def case_id(path: str | Path, cases_dir: str | Path) -> str:
    """``cases/lab/get-binary-file.toml`` -> ``lab/get-binary-file``."""
    rel = Path(path).resolve().relative_to(Path(cases_dir).resolve())
    return rel.with_suffix("").as_posix()


# ---------------------------------------------------------------------------
# Conversion of valid data into model values


def _tuple(value: Any) -> tuple:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list) else (value,)


def _part(raw: dict) -> Part:
    return Part(
        data=escape.to_bytes(raw.get("data", "")),
        repeat=raw.get("repeat", 1),
        pause_ms=raw.get("pause_ms", 0),
        chunk=raw.get("chunk", 0),
        chunk_pause_ms=raw.get("chunk_pause_ms", 0),
        wait_for=tuple(raw.get("wait_for", ())),
    )


def _outcome(raw: dict) -> Outcome:
    response = raw.get("response", "full")
    version = _tuple(raw.get("version"))
    if not version and response == "full":
        version = DEFAULT_FULL_VERSIONS
    headers = raw.get("headers", {})
    body = raw.get("body", {})
    return Outcome(
        verdict=raw.get("verdict", "pass"),
        note=raw.get("note", ""),
        response=response,
        status=_tuple(raw.get("status")),
        status_class=tuple(int(c[0]) for c in _tuple(raw.get("status_class"))),
        version=version,
        headers=HeaderExpect(
            present=tuple(headers.get("present", ())),
            absent=tuple(headers.get("absent", ())),
            equal=tuple(headers.get("equal", {}).items()),
            match=tuple(headers.get("match", {}).items()),
            fixture=tuple(headers.get("fixture", {}).items()),
        ),
        body=BodyExpect(
            fixture=body.get("fixture"),
            equal=escape.to_bytes(body["equal"]) if "equal" in body else None,
            empty=body.get("empty"),
            contains=tuple(escape.to_bytes(s) for s in body.get("contains", ())),
            excludes=tuple(escape.to_bytes(s) for s in body.get("excludes", ())),
        ),
        framing=raw.get("framing", "strict"),
        connection=raw.get("connection", "closed"),
    )


def _connection(raw: dict, name: str, outcomes: list[dict]) -> Connection:
    if "data" in raw:
        parts: tuple[Part, ...] = (Part(data=escape.to_bytes(raw["data"])),)
    else:
        parts = tuple(_part(p) for p in raw.get("parts", ()))
    return Connection(
        name=name,
        parts=parts,
        start_after=tuple(raw.get("start_after", ())),
        half_close=raw.get("half_close", False),
        read=raw.get("read"),
        read_gate=tuple(raw.get("read_gate", ())),
        timeout=float(raw.get("timeout", 5.0)),
        outcomes=tuple(_outcome(o) for o in outcomes),
    )


def expand_names(raw: dict) -> list[str]:
    """``count`` copies are NAME-1 .. NAME-N; without ``count``, just NAME."""
    name = raw.get("name", "main")
    if "count" not in raw:
        return [name]
    return [f"{name}-{i}" for i in range(1, raw["count"] + 1)]


def build_case(data: dict, cid: str, path: str) -> Case:
    """Schema-valid decoded data -> ``Case``.

    Raises:
        CaseError: a problem the schema cannot express (duplicate connection names
            after ``count`` expansion, a scenario of a single connection).
    """
    if "connection" in data:
        connections = []
        seen: dict[str, int] = {}
        for index, raw in enumerate(data["connection"]):
            for name in expand_names(raw):
                if name in seen:
                    raise CaseError(
                        path,
                        f"connection[{index}].name",
                        f"connection name {name!r} is already used by connection[{seen[name]}]"
                        + (" (count expands NAME into NAME-1 .. NAME-N)" if "count" in raw or name != raw["name"] else ""),
                    )
                seen[name] = index
                connections.append(_connection(raw, name, raw["expect"]))
        if len(connections) < 2:
            raise CaseError(
                path,
                "connection",
                "a scenario has two or more connections (use count, or [request] for a single one)",
            )
        order = tuple(Order(first=o["first"], then=o["then"], note=o.get("note", "")) for o in data.get("order", ()))
    else:
        request = data["request"]
        connections = [_connection(request, request.get("name", "main"), data["expect"])]
        order = ()
    return Case(
        id=cid,
        path=path,
        title=data["title"],
        requirements=tuple(data["requirements"]),
        level=data["level"],
        connections=tuple(connections),
        order=order,
        tags=tuple(data.get("tags", ())),
        hint=data.get("hint", ""),
        liveness=data.get("liveness", False),
    )


# ---------------------------------------------------------------------------
# Public loaders


def load_case(path: str | Path, cases_dir: str | Path) -> Case:
    """Load and validate one case file.

    Args:
        path: the case file, under ``cases_dir``.
        cases_dir: the corpus folder; the case id is the path relative to it.

    Returns:
        The case, with ``Case.path`` set to ``path`` as a string.

    Raises:
        CaseError: the first problem of the file (by key), naming the file and key.
    """
    path = Path(path)
    cases_dir = Path(cases_dir)
    display = display_name(path, cases_dir)
    data = read_toml(path, display)
    problems = schema_problems(data, cases_dir)
    if problems:
        key, message = problems[0]
        raise CaseError(display, key, message)
    try:
        cid = case_id(path, cases_dir)
    except ValueError:
        raise CaseError(display, "", f"the case file is not under the cases folder {cases_dir}") from None
    try:
        return build_case(data, cid, str(path))
    except CaseError as exc:
        raise CaseError(display, exc.key, exc.message) from None


def load_requirements(cases_dir: str | Path) -> dict[str, Requirement]:
    """Load ``requirements.toml``: requirement id -> ``Requirement``, in file order.

    Raises:
        CaseError: the file is invalid or holds an id twice.
    """
    cases_dir = Path(cases_dir)
    data = load_catalogue(cases_dir, REQUIREMENTS_FILE, "requirements_file")
    out: dict[str, Requirement] = {}
    for index, raw in enumerate(data["requirement"]):
        if raw["id"] in out:
            raise CaseError(
                display_name(cases_dir / REQUIREMENTS_FILE, cases_dir),
                f"requirement[{index}].id",
                f"duplicate requirement id {raw['id']!r}",
            )
        out[raw["id"]] = Requirement(
            id=raw["id"],
            section=raw["section"],
            level=raw["level"],
            text=raw["text"],
            party=raw.get("party", "origin server"),
            testable=raw.get("testable", True),
            reason=raw.get("reason", ""),
        )
    return out


def load_profiles(cases_dir: str | Path) -> dict[str, Profile]:
    """Load ``profiles.toml``: profile name -> ``Profile``, in file order.

    Raises:
        CaseError: the file is invalid.
    """
    data = load_catalogue(Path(cases_dir), PROFILES_FILE, "profiles_file")
    return {
        name: Profile(
            name=name,
            description=raw["description"],
            areas=tuple(raw.get("areas", ())),
            ids=tuple(raw.get("ids", ())),
            tags=tuple(raw.get("tags", ())),
            exclude_tags=tuple(raw.get("exclude_tags", ())),
            levels=tuple(raw.get("levels", ())),
        )
        for name, raw in data["profile"].items()
    }


def load_fixtures(cases_dir: str | Path) -> Fixtures:
    """Describe the document root from ``fixtures.toml`` and ``docroot/`` (nothing is built).

    Raises:
        CaseError: fixtures.toml is invalid.
    """
    return Fixtures(cases_dir)


def load_corpus(cases_dir: str | Path | None = None) -> Corpus:
    """Load a whole corpus: cases, requirements, profiles and fixtures.

    Only per-file validity is checked here; ``check.check_corpus`` also checks the
    files against each other (requirement ids, fixture paths, event globs).

    Args:
        cases_dir: the corpus folder; the shipped corpus if None.

    Raises:
        CaseError: the first invalid file.
    """
    cases_dir = Path(cases_dir) if cases_dir is not None else default_cases_dir()
    cases = tuple(sorted((load_case(p, cases_dir) for p in case_files(cases_dir)), key=lambda c: c.id))
    return Corpus(
        cases_dir=cases_dir,
        cases=cases,
        requirements=load_requirements(cases_dir),
        profiles=load_profiles(cases_dir),
        fixtures=load_fixtures(cases_dir),
    )
