"""The Gradescope autograder folder: setup.sh, run_autograder, the rubric, the project's wheel.

Gradescope builds an image from the zip once (``setup.sh``, as root, Ubuntu) and runs
``run_autograder`` once per submission in a fresh container; it reads
``/autograder/results/results.json``. Here:

- ``setup.sh`` installs Python if missing, makes a virtual environment in
  /opt/conformance and installs the wheel shipped in the folder (its two small
  dependencies come from PyPI while the image is built);
- ``run_autograder`` writes a provisional results.json first (so a crash still
  leaves a valid file), makes the instructor's files unreadable to others, and
  grades /autograder/submission with the rubric into the real results.json;
- ``autograder.zip`` holds all of it with setup.sh and run_autograder at the zip's
  root (zipping the folder instead of its contents is the classic mistake).

``AUTOGRADER_ROOT`` and ``CONFORMANCE_PYTHON`` override /autograder and the
interpreter, which is how the tests run the script outside Gradescope.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .rubric import Rubric

__all__ = ["BundleError", "write_bundle", "SETUP_SH", "RUN_AUTOGRADER"]

WHEEL_TIMEOUT = 300  # seconds for building the project's wheel
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "conformance", "cases", "reference")  # what the wheel is built from

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder image.
set -euo pipefail
if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv python3-pip
fi
python3 -m venv /opt/conformance
/opt/conformance/bin/pip install --quiet --disable-pip-version-check /autograder/source/wheels/*.whl
/opt/conformance/bin/python -m conformance.grade --check-rubric /autograder/source/rubric.toml
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this once per submission; it must leave results/results.json.
set -u
ROOT="${AUTOGRADER_ROOT:-/autograder}"
PYTHON="${CONFORMANCE_PYTHON:-/opt/conformance/bin/python}"
RESULTS="$ROOT/results/results.json"
mkdir -p "$ROOT/results"
# A provisional file: if anything below dies, Gradescope still reads a valid result.
printf '%s\\n' '{"score": 0, "output": "The autograder did not finish; your instructor has been told.", "tests": []}' > "$RESULTS"
# Student code runs as its own user: keep the rubric and the results away from it.
chmod -R o= "$ROOT/source" "$ROOT/results" 2>/dev/null || true
NAME="submission"
if [ -f "$ROOT/submission_metadata.json" ]; then
    NAME="$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("id", "submission"))' \\
        "$ROOT/submission_metadata.json" 2>/dev/null || echo submission)"
fi
"$PYTHON" -m conformance.grade --one "$ROOT/submission" --name "$NAME" \\
    --rubric "$ROOT/source/rubric.toml" --out "$ROOT/results/grade" \\
    --format gradescope --results "$RESULTS" --quiet
status=$?
echo "conformance grade exited with status $status"
exit 0
"""

README = """\
Gradescope autograder for: {name}

Upload autograder.zip (setup.sh and run_autograder are at its root) as the
assignment's autograder ("Zip file upload"). Students hand in their server.py
(and client.py) at the top of the submission. Instructors see each run's output
in results/stdout; students see the items as the rubric's visibility says.
"""


class BundleError(Exception):
    """The bundle could not be written (e.g. the project's wheel did not build)."""


def _project_root() -> Path:
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file():
        raise BundleError(
            "the Gradescope bundle ships the project's wheel, built from a checkout; this copy of "
            f"conformance is installed without one ({root} has no pyproject.toml)")
    return root


def build_wheel(dest: Path) -> Path:
    """Build the project's wheel into ``dest`` (offline: no build isolation).

    It is built from a copy of the sources, so the checkout gets no build/ folder
    and two builds at once (parallel tests) cannot trip over each other.
    """
    root = _project_root()
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="conformance-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in SOURCES:
            if (root / name).is_dir():
                shutil.copytree(root / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            elif (root / name).is_file():
                shutil.copy(root / name, src / name)
        proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                               "--disable-pip-version-check", "-w", str(dest), str(src)],
                              capture_output=True, text=True, timeout=WHEEL_TIMEOUT)
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        raise BundleError(f"building the project's wheel failed: {proc.stderr.strip()[-800:]}")
    return wheels[-1]


def write_bundle(dest: Path, rubric: Rubric, wheel: Path | None = None) -> Path:
    """Write the autograder folder and its zip; returns the zip's path.

    Args:
        dest: the folder to write (created; files of a previous bundle are replaced).
        rubric: the rubric to ship (its TOML text as read).
        wheel: a prebuilt wheel of the project; built from the checkout if None.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    wheels = dest / "wheels"
    if wheels.exists():
        shutil.rmtree(wheels)
    if wheel is None:
        build_wheel(wheels)
    else:
        wheels.mkdir()
        shutil.copy(wheel, wheels / Path(wheel).name)
    (dest / "rubric.toml").write_text(rubric.text, encoding="utf-8")
    for name, text in (("setup.sh", SETUP_SH), ("run_autograder", RUN_AUTOGRADER)):
        (dest / name).write_text(text, encoding="utf-8")
        (dest / name).chmod(0o755)
    (dest / "README.txt").write_text(README.format(name=rubric.name), encoding="utf-8")
    archive = dest / "autograder.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(dest.rglob("*")):
            if path == archive or path.is_dir():
                continue
            info = zipfile.ZipInfo(path.relative_to(dest).as_posix())
            info.external_attr = (path.stat().st_mode & 0o777) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    return archive
