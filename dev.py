#!/usr/bin/env python3
"""The quick start: set up a virtual environment once, then run the suite or the tests.

    python3 dev.py suite [ARGS...]   the conformance suite (default: against the bundled
                                     reference server); ARGS go to `python -m conformance`
    python3 dev.py test [ARGS...]    the test suite in parallel; ARGS go to pytest

Needs only Python 3.10 or newer: it creates .venv beside this file and installs the
project with its test extra there, again only when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv"
STAMP = VENV / "installed-from"

USAGE = __doc__.split("\n\n")[1]


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_venv() -> Path:
    if sys.version_info < (3, 10):
        sys.exit(f"dev.py: Python 3.10 or newer is needed, this is {sys.version.split()[0]}")
    wanted = hashlib.sha256((HERE / "pyproject.toml").read_bytes()).hexdigest()
    python = venv_python()
    if python.exists() and STAMP.exists() and STAMP.read_text().strip() == wanted:
        return python
    if not python.exists():
        print(f"dev.py: creating {VENV}", file=sys.stderr)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    print("dev.py: installing the project and its test dependencies", file=sys.stderr)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", f"{HERE}[test]"],
        check=True,
    )
    STAMP.write_text(wanted)
    return python


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("suite", "test"):
        print(USAGE, file=sys.stderr)
        return 2
    python = str(ensure_venv())
    command, rest = argv[0], argv[1:]
    if command == "suite":
        # From where the user stands: --spawn "python3 server.py {port}" and -o FILE
        # name paths relative to the folder the command was typed in.
        return subprocess.run([python, "-m", "conformance", *rest]).returncode
    # The tests are the project's own: they run from the checkout.
    return subprocess.run([python, "-m", "pytest", "-n", "auto", *rest], cwd=HERE).returncode


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except subprocess.CalledProcessError as exc:
        sys.exit(f"dev.py: {' '.join(map(str, exc.cmd))} failed with status {exc.returncode}")
    except KeyboardInterrupt:
        sys.exit(130)
