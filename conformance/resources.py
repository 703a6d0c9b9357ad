"""Where the corpus and the bundled reference server are, in a checkout or installed.

In a checkout they sit beside the package (``cases/``, ``reference/``); an
installed wheel carries them as package data (``conformance/corpus`` and
``conformance/bundled``), mapped there by pyproject.toml.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["cases_dir", "reference_server"]

_PACKAGE = Path(__file__).resolve().parent


def _first_existing(*candidates: Path) -> Path:
    for path in candidates:
        if path.exists():
            return path
    return candidates[0]


def cases_dir() -> Path:
    """The bundled corpus folder (holding schema.json and the case areas)."""
    return _first_existing(_PACKAGE.parent / "cases", _PACKAGE / "corpus").resolve()


def reference_server() -> Path:
    """The bundled reference server script, started as a process, never imported."""
    return _first_existing(
        _PACKAGE.parent / "reference" / "server.py", _PACKAGE / "bundled" / "server.py"
    ).resolve()
