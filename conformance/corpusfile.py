"""Read and validate the corpus's own files: TOML in, checked data or ``CaseError`` out.

Both the loader (cases, requirements, profiles) and ``docroot`` (fixtures.toml)
read through here, so neither imports the other for it. Files are validated with
``cases/schema.json`` through the ``jsonschema`` library, so the published schema and
the checks cannot drift; a schema error names the file and the key
(``expect[1].status``).
"""

from __future__ import annotations

import functools
import json
import re
import sys
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

__all__ = [
    "SCHEMA_FILE",
    "FIXTURES_FILE",
    "CaseError",
    "default_cases_dir",
    "display_name",
    "read_toml",
    "format_key",
    "jsonable",
    "schema_problems",
    "load_catalogue",
    "fixtures_data",
]

SCHEMA_FILE = "schema.json"
FIXTURES_FILE = "fixtures.toml"


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


def default_cases_dir() -> Path:
    """The checkout's ``cases/`` folder, or the corpus shipped inside the package."""
    from .resources import cases_dir

    return cases_dir()


def display_name(path: Path, cases_dir: Path | None) -> str:
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


def jsonable(value: Any) -> Any:
    """TOML date-times as RFC 3339 strings, for the schemas of the non-case files."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
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
        data = jsonable(data)
    problems: dict[tuple[str, str], None] = {}
    for error in validator.iter_errors(data):
        for problem in _explain(error, root):
            problems[problem] = None
    return sorted(problems, key=_problem_order)


def _problem_order(problem: tuple[str, str]) -> tuple:
    # Numeric order for indices, so expect[2] comes before expect[10].
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[\[\].]+", problem[0]) if p), problem[1]


def load_catalogue(cases_dir: Path, name: str, definition: str) -> dict[str, Any]:
    path = Path(cases_dir) / name
    display = display_name(path, cases_dir)
    data = read_toml(path, display)
    problems = schema_problems(data, cases_dir, definition)
    if problems:
        key, message = problems[0]
        raise CaseError(display, key, message)
    return data


def fixtures_data(cases_dir: str | Path) -> tuple[dict, bytes, str]:
    """Read and validate ``fixtures.toml``: (decoded data, raw bytes, display name).

    Raises:
        CaseError: the file is invalid.
    """
    cases_dir = Path(cases_dir)
    path = cases_dir / FIXTURES_FILE
    data = load_catalogue(cases_dir, FIXTURES_FILE, "fixtures_file")
    return data, path.read_bytes(), display_name(path, cases_dir)
