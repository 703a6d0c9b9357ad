"""The Gradescope bundle: its layout, and run_autograder run end to end outside Gradescope."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile

import jsonschema
import pytest

from grade_helpers import ROOT, RUBRIC

pytestmark = [pytest.mark.network, pytest.mark.skipif(sys.platform != "linux", reason="grading isolation is Linux-only")]

SCHEMA = json.loads((ROOT / "conformance" / "grade" / "schemas" / "gradescope-results.schema.json").read_text())


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    dest = tmp_path_factory.mktemp("bundle") / "autograder"
    proc = subprocess.run([sys.executable, "-m", "conformance.grade", "--gradescope-bundle", str(dest),
                           "--rubric", str(RUBRIC)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return dest


def test_layout_and_zip_root(bundle):
    for name in ("setup.sh", "run_autograder"):
        assert os.access(bundle / name, os.X_OK) and (bundle / name).read_text().startswith("#!/usr/bin/env bash")
        subprocess.run(["bash", "-n", str(bundle / name)], check=True)
    assert (bundle / "rubric.toml").read_text() == RUBRIC.read_text()
    assert list((bundle / "wheels").glob("http10_conformance-*.whl"))
    with zipfile.ZipFile(bundle / "autograder.zip") as zf:
        names = zf.namelist()
        assert {"setup.sh", "run_autograder", "rubric.toml"} <= set(names)
        assert (zf.getinfo("run_autograder").external_attr >> 16) & 0o111
    wheel = next((bundle / "wheels").glob("*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        assert "conformance/grade/lab.toml" in zf.namelist()
        assert "conformance/grade/schemas/gradescope-results.schema.json" in zf.namelist()


@pytest.mark.parametrize("submission, score", [("reference", 100), ("empty", 0)])
def test_run_autograder_grades_the_submission(bundle, tmp_path, submission, score):
    root = tmp_path / "autograder"
    shutil.copytree(bundle, root / "source")
    sub = root / "submission"
    sub.mkdir()
    if submission == "reference":
        shutil.copy(ROOT / "reference" / "server.py", sub / "server.py")
        shutil.copy(ROOT / "reference" / "client.py", sub / "client.py")
    (root / "submission_metadata.json").write_text(json.dumps({"id": 12345}))
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "CONFORMANCE_PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(root / "source" / "run_autograder")], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((root / "results" / "results.json").read_text())
    jsonschema.validate(results, SCHEMA)
    assert results["score"] == score, results["output"]
    assert json.loads((root / "results" / "grade" / "result.json").read_text())["submission"] == "12345"
