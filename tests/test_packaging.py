"""An installed wheel works without the checkout: corpus and reference server inside."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    setuptools = pytest.importorskip("setuptools", reason="building the wheel offline needs setuptools here")
    if tuple(int(x) for x in setuptools.__version__.split(".")[:2]) < (70, 1):
        pytest.skip("setuptools older than 70.1 needs the wheel package (the test extra brings 70.1+)")
    build = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(build), str(REPO)],
        check=True, capture_output=True, timeout=300,
    )
    wheels = list(build.glob("*.whl"))
    assert len(wheels) == 1, wheels
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheels[0])],
        check=True, capture_output=True, timeout=300,
    )
    return target


def run_installed(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    # The installed copy first on the path, the checkout nowhere: cwd is elsewhere.
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONSAFEPATH": "1"}
    return subprocess.run([sys.executable, "-m", "conformance", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_wheel_carries_the_corpus_and_the_reference(installed):
    package = installed / "conformance"
    assert (package / "corpus" / "schema.json").is_file()
    assert (package / "corpus" / "docroot" / ".htaccess").is_file()
    assert (package / "corpus" / "client" / "writes-text-body.toml").is_file()
    assert (package / "bundled" / "server.py").is_file()


def test_installed_runner_checks_and_runs_without_the_checkout(installed, tmp_path):
    check = run_installed(installed, tmp_path, "check")
    assert check.returncode == 0, check.stderr
    assert "OK" in check.stdout
    run = run_installed(installed, tmp_path, "--profile", "lab", "-q", "--format", "json")
    assert run.returncode == 0, run.stderr + run.stdout[-2000:]
    verdicts = {r["verdict"] for r in json.loads(run.stdout)["results"]}
    assert verdicts == {"pass"}


def test_installed_copy_uses_its_own_corpus_and_server(installed, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(installed), "PYTHONSAFEPATH": "1"}
    out = subprocess.run(
        [sys.executable, "-c", "import conformance.resources as r; print(r.cases_dir()); print(r.reference_server())"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout.split()
    assert all(Path(p).is_relative_to(installed.resolve()) for p in out), out
