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

import functools
import json
import re
import sys
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Iterable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

import jsonschema
import referencing
import referencing.jsonschema

from . import escape
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

SCHEMA_FILE = "schema.json"
REQUIREMENTS_FILE = "requirements.toml"
PROFILES_FILE = "profiles.toml"
FIXTURES_FILE = "fixtures.toml"

# "full" responses accept either 1.x version unless the case says otherwise (README).
DEFAULT_FULL_VERSIONS = ("HTTP/1.0", "HTTP/1.1")


class CaseError(Exception):
    """A corpus file that is not valid.

    Attributes:
        file: the file's path as given (or relative to the cases directory).
        key: the dotted key inside the file (``expect[1].status``), ``line N`` for a
            TOML syntax error, or "" for the file as a whole.
        message: what is wrong, and where it helps, what is allowed.
    """

    def __init__(self, file: str | Path, key: str, message: str):
        super().__init__(file, key, message)
        self.file = str(file)
        self.key = key
        self.message = message

    def __str__(self) -> str:
        return f"{self.file}: {self.key or '(file)'}: {self.message}"


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


def default_cases_dir() -> Path:
    """The checkout's ``cases/`` folder, or the corpus shipped inside the package."""
    from .resources import cases_dir

    return cases_dir()


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


def _display(path: Path, cases_dir: Path | None) -> str:
    """A short name for messages: relative to the cases folder's parent if possible."""
    if cases_dir is not None:
        try:
            return Path(path).resolve().relative_to(Path(cases_dir).resolve().parent).as_posix()
        except ValueError:
            pass
    return str(path)


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def read_toml(path: str | Path, display: str | None = None) -> dict[str, Any]:
    """Read and decode one TOML file.

    Raises:
        CaseError: the file cannot be read, is not UTF-8 or is not valid TOML (the
            key is then ``line N``).
    """
    display = display or str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise CaseError(display, "", f"cannot read the file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise CaseError(
            display, f"line {line}", "not valid UTF-8: a TOML file is UTF-8 text; write other bytes as \\u00XX"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _TOML_POSITION.search(message)
        key = ""
        if found:
            key = f"line {found.group(1)}"
            message = message[: found.start()] + f" (column {found.group(2)})"
        raise CaseError(display, key, f"invalid TOML: {message}") from None


# ---------------------------------------------------------------------------
# Schema validation and readable errors


@functools.lru_cache(maxsize=8)
def _schema(schema_path: str) -> tuple[dict, referencing.Registry]:
    with open(schema_path, encoding="utf-8") as fh:
        schema = json.load(fh)
    resource = referencing.Resource.from_contents(schema, default_specification=referencing.jsonschema.DRAFT202012)
    return schema, referencing.Registry().with_resource(schema["$id"], resource)


@functools.lru_cache(maxsize=32)
def _validator(schema_path: str, definition: str | None) -> jsonschema.Draft202012Validator:
    schema, registry = _schema(schema_path)
    target = schema if definition is None else {"$ref": f"{schema['$id']}#/$defs/{definition}"}
    return jsonschema.Draft202012Validator(
        target, registry=registry, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def _schema_path_for(cases_dir: Path | None) -> str:
    """The schema of this corpus, or the shipped one if the corpus has none."""
    if cases_dir is not None and (Path(cases_dir) / SCHEMA_FILE).is_file():
        return str((Path(cases_dir) / SCHEMA_FILE).resolve())
    return str((default_cases_dir() / SCHEMA_FILE).resolve())


def format_key(path: Iterable[str | int]) -> str:
    """``["expect", 1, "status"]`` -> ``expect[1].status``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "an array",
    "object": "a table",
}


def _toml_type(value: Any) -> str:
    """The TOML name of a decoded value's type, for messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime):
        return "a date-time"
    if isinstance(value, (date, time)):
        return "a date or time"
    return type(value).__name__


def _known_keys(schema: Any, root: dict) -> list[str]:
    """The property names a table schema allows, following local ``$ref``."""
    keys: list[str] = []
    seen = 0
    while isinstance(schema, dict) and seen < 8:
        keys.extend(schema.get("properties", {}))
        ref = schema.get("$ref", "")
        if "#/$defs/" not in ref:
            break
        schema = root["$defs"].get(ref.rsplit("/", 1)[1])
        seen += 1
    return sorted(dict.fromkeys(keys))


_UNEXPECTED = re.compile(r"\((.*) (?:was|were) unexpected\)")


def _unexpected_names(message: str) -> list[str]:
    found = _UNEXPECTED.search(message)
    if not found:
        return []
    return re.findall(r"'((?:[^'\\]|\\.)*)'", found.group(1))


def _deepest(error: jsonschema.ValidationError) -> jsonschema.ValidationError | None:
    """For oneOf/anyOf: the sub-error that reaches deepest into the value, if any."""
    best = None
    for sub in error.context or ():
        if len(sub.relative_path) and (best is None or len(sub.relative_path) > len(best.relative_path)):
            best = sub
    if best is not None and best.context:
        return _deepest(best) or best
    return best


def _explain(error: jsonschema.ValidationError, root: dict) -> list[tuple[str, str]]:
    """One schema error -> [(dotted key, message)], in the project's words."""
    path = list(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    custom = schema.get("x-error")
    kind = error.validator
    value = error.instance

    if kind in ("oneOf", "anyOf"):
        deeper = _deepest(error)
        if deeper is not None:
            return _explain(deeper, root)
        return [(format_key(path), f"must be {custom}" if custom else error.message)]
    if kind == "required":
        missing = [name for name in error.validator_value if isinstance(value, dict) and name not in value]
        return [(format_key(path + [name]), custom or "required key is missing") for name in missing[:1]]
    if kind in ("additionalProperties", "unevaluatedProperties"):
        known = _known_keys(error.schema, root)
        names = _unexpected_names(error.message) or ["?"]
        allowed = f" (allowed here: {', '.join(known)})" if known else ""
        hint = ""
        if "count" in names and "count" not in known:
            hint = "; count is only for the connections of a scenario"
        return [(format_key(path + [name]), f"unknown key{allowed}{hint}") for name in names]
    if kind == "not":
        return [(format_key(path), custom or "not allowed here")]
    if kind == "pattern" and error.validator_value == root["$defs"]["bytes"]["pattern"]:
        try:
            escape.to_bytes(value)
        except ValueError as exc:
            return [(format_key(path), str(exc))]
    if kind == "type":
        wanted = error.validator_value
        wanted = [wanted] if isinstance(wanted, str) else wanted
        names = " or ".join(_TYPE_NAMES.get(w, w) for w in wanted)
        return [(format_key(path), f"must be {names}, not {_toml_type(value)}")]
    if kind == "enum":
        allowed = ", ".join(json.dumps(v) for v in error.validator_value)
        return [(format_key(path), f"must be one of {allowed}, not {json.dumps(value, default=str)}")]
    if kind == "const":
        return [(format_key(path), f"must be {json.dumps(error.validator_value)}")]
    if kind == "format" and error.validator_value == "regex":
        try:
            re.compile(value)
        except re.error as exc:
            return [(format_key(path), f"not a valid regular expression: {exc}")]
    if kind == "pattern":
        return [(format_key(path), f"{json.dumps(value)} does not match the pattern {error.validator_value}")]
    if kind == "uniqueItems":
        return [(format_key(path), "has repeated items")]
    if kind in ("minItems", "maxItems", "minimum", "maximum", "exclusiveMinimum", "minLength", "maxLength"):
        bound = error.validator_value
        text = {
            "minItems": f"needs at least {bound} item(s)",
            "maxItems": f"may have at most {bound} items",
            "minimum": f"must be at least {bound}",
            "maximum": f"must be at most {bound}",
            "exclusiveMinimum": f"must be more than {bound}",
            "minLength": "must not be empty" if bound == 1 else f"needs at least {bound} characters",
            "maxLength": f"may have at most {bound} characters",
        }[kind]
        return [(format_key(path), text)]
    return [(format_key(path), custom or error.message)]


def _jsonable(value: Any) -> Any:
    """TOML date-times as RFC 3339 strings, for the schemas of the non-case files."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    return value


def schema_problems(data: Any, cases_dir: Path | None = None, definition: str | None = None) -> list[tuple[str, str]]:
    """Validate decoded TOML with the schema; every problem as (key, message).

    Args:
        data: the decoded file.
        cases_dir: the corpus, whose ``schema.json`` is used (the shipped one if none).
        definition: None for a case file, or a ``$defs`` name such as
            ``requirements_file``, ``profiles_file`` or ``fixtures_file``.

    Returns:
        Problems sorted by key, duplicates removed; empty when the data is valid.
    """
    schema_path = _schema_path_for(cases_dir)
    root, _ = _schema(schema_path)
    validator = _validator(schema_path, definition)
    if definition is not None:
        data = _jsonable(data)
    problems: dict[tuple[str, str], None] = {}
    for error in validator.iter_errors(data):
        for problem in _explain(error, root):
            problems[problem] = None
    return sorted(problems, key=_problem_order)


def _problem_order(problem: tuple[str, str]) -> tuple:
    # Numeric order for indices, so expect[2] comes before expect[10].
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[\[\].]+", problem[0]) if p), problem[1]


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


def _expand_names(raw: dict) -> list[str]:
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
            for name in _expand_names(raw):
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
    display = _display(path, cases_dir)
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


def _load_catalogue(cases_dir: Path, name: str, definition: str) -> dict[str, Any]:
    path = Path(cases_dir) / name
    display = _display(path, cases_dir)
    data = read_toml(path, display)
    problems = schema_problems(data, cases_dir, definition)
    if problems:
        key, message = problems[0]
        raise CaseError(display, key, message)
    return data


def load_requirements(cases_dir: str | Path) -> dict[str, Requirement]:
    """Load ``requirements.toml``: requirement id -> ``Requirement``, in file order.

    Raises:
        CaseError: the file is invalid or holds an id twice.
    """
    cases_dir = Path(cases_dir)
    data = _load_catalogue(cases_dir, REQUIREMENTS_FILE, "requirements_file")
    out: dict[str, Requirement] = {}
    for index, raw in enumerate(data["requirement"]):
        if raw["id"] in out:
            raise CaseError(
                _display(cases_dir / REQUIREMENTS_FILE, cases_dir),
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
    data = _load_catalogue(Path(cases_dir), PROFILES_FILE, "profiles_file")
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


def fixtures_data(cases_dir: str | Path) -> tuple[dict, bytes, str]:
    """Read and validate ``fixtures.toml``: (decoded data, raw bytes, display name).

    Raises:
        CaseError: the file is invalid.
    """
    cases_dir = Path(cases_dir)
    path = cases_dir / FIXTURES_FILE
    data = _load_catalogue(cases_dir, FIXTURES_FILE, "fixtures_file")
    return data, path.read_bytes(), _display(path, cases_dir)


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
