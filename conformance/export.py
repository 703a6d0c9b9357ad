"""The corpus as one JSON bundle, for runners written in other languages.

The bundle holds every file of the corpus as decoded TOML (so a runner needs no
TOML parser), the static fixture files as bytes strings, and validates against
``cases/bundle-schema.json``, which refers to the case schema for each case.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import __version__
from .corpusfile import jsonable, read_toml
from .loader import case_files

__all__ = ["FORMAT", "VERSION", "build_bundle", "bundle_problems", "dumps"]

FORMAT = "http10-conformance-corpus"
VERSION = 1


def _case_id(path: Path, cases_dir: Path) -> str:
    return path.relative_to(cases_dir).with_suffix("").as_posix()


def build_bundle(cases_dir: Path) -> dict[str, Any]:
    """Read the whole corpus under ``cases_dir`` into one JSON-ready value."""
    cases_dir = Path(cases_dir)
    docroot = cases_dir / "docroot"
    return {
        "format": FORMAT,
        "version": VERSION,
        "suite_version": __version__,
        "case_format": 1,
        "cases": {_case_id(p, cases_dir): read_toml(p) for p in case_files(cases_dir)},
        "client_cases": {
            _case_id(p, cases_dir): read_toml(p) for p in sorted((cases_dir / "client").glob("*.toml"))
        },
        "requirements_file": read_toml(cases_dir / "requirements.toml"),
        "profiles_file": read_toml(cases_dir / "profiles.toml"),
        "fixtures_file": jsonable(read_toml(cases_dir / "fixtures.toml")),
        "docroot": {
            p.relative_to(docroot).as_posix(): p.read_bytes().decode("latin-1")
            for p in sorted(docroot.rglob("*"))
            if p.is_file()
        },
    }


def dumps(bundle: dict[str, Any]) -> str:
    return json.dumps(bundle, indent=1, sort_keys=True, ensure_ascii=True) + "\n"


def bundle_problems(bundle: Any, cases_dir: Path) -> list[str]:
    """Validate a bundle against the published schemas; every problem as one line."""
    import jsonschema
    from referencing import Registry, Resource

    def resource(name: str) -> Resource:
        return Resource.from_contents(json.loads((Path(cases_dir) / name).read_text(encoding="utf-8")))

    case_schema = resource("schema.json")
    bundle_schema = resource("bundle-schema.json")
    registry = Registry().with_resources([(case_schema.id(), case_schema), (bundle_schema.id(), bundle_schema)])
    validator = jsonschema.Draft202012Validator(bundle_schema.contents, registry=registry)
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(bundle)'}: {error.message[:300]}"
        for error in sorted(validator.iter_errors(bundle), key=lambda e: list(map(str, e.absolute_path)))
    ]
