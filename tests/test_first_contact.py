"""What a new student, instructor or server author trips over first: each gets a clear
message, at once, and no traceback."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conformance.model import Connection, Part
from conformance.runner import preflight
from conformance.wire import EventBoard, Target, play

REPO = Path(__file__).resolve().parent.parent
PY = shlex.quote(sys.executable)
STUDENT = f"{PY} {shlex.quote(str(REPO / 'tests' / 'student_server.py'))} {{port}} --root {{root}}"


def conformance(*args: str, cwd: Path = REPO, timeout: float = 120, prelude: str = "") -> subprocess.CompletedProcess:
    """Run the CLI, optionally after ``prelude`` (Python run first in the same process)."""
    code = f"{prelude}\nimport sys\nfrom conformance.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_a_missing_dependency_is_named_before_anything_runs():
    proc = conformance("--id", "lab/get-text-file",
                       prelude="import conformance.cli as c; c.NEEDED['no_such_module_here'] = 'nothere'")
    assert proc.returncode == 2
    assert "lacks nothere" in proc.stderr and "dev.py suite" in proc.stderr and "pip install ." in proc.stderr
    assert "Traceback" not in proc.stderr


# Importing a module set to None in sys.modules raises ImportError, as a missing one does.
NO_TABULATE = "import sys; sys.modules['tabulate'] = None"


def test_json_and_junit_reports_do_not_need_tabulate():
    for fmt in ("json", "junit"):
        proc = conformance("--id", "lab/get-text-file", "--format", fmt, "-q", prelude=NO_TABULATE)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr


def test_the_table_without_tabulate_says_how_to_get_it_before_running():
    proc = conformance("--id", "lab/get-text-file", prelude=NO_TABULATE)
    assert proc.returncode == 2
    assert "tabulate" in proc.stderr and "--format json" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_output_that_is_a_folder_is_refused_at_once(tmp_path):
    proc = conformance("--id", "lab/get-text-file", "-o", str(tmp_path))
    assert proc.returncode == 2
    assert "is a folder" in proc.stderr


def test_an_output_in_a_missing_folder_is_written(tmp_path):
    out = tmp_path / "new" / "folder" / "report.json"
    proc = conformance("--id", "lab/get-text-file", "--format", "json", "-o", str(out), "-q")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["results"][0]["verdict"] == "pass"


@pytest.mark.skipif(not (REPO / ".venv").is_dir(), reason="dev.py has not set up .venv here")
def test_dev_py_suite_takes_paths_from_where_the_user_stands(tmp_path):
    shutil.copy(REPO / "tests" / "student_server.py", tmp_path / "server.py")
    proc = subprocess.run(
        [sys.executable, str(REPO / "dev.py"), "suite", "--spawn", "python3 server.py {port}",
         "--id", "lab/get-text-file", "--format", "json", "-o", "report.json", "-q"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "report.json").is_file()


@pytest.mark.parametrize("typo, suggestion", [("lsit", "did you mean 'list'?"),
                                              ("--taget", "did you mean --target?"),
                                              ("--verbsoe", "did you mean --verbose?")])
def test_a_typo_gets_the_nearest_command_or_option(typo, suggestion):
    proc = conformance(typo, "x")
    assert proc.returncode == 2
    assert suggestion in proc.stderr


def test_docroot_into_a_folder_with_a_foreign_root_says_what_is_wrong(tmp_path):
    (tmp_path / "root").mkdir()
    proc = conformance("docroot", str(tmp_path))
    assert proc.returncode == 2
    assert "was not built by 'conformance docroot'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_matrix_help_agrees_with_itself_on_the_default_profile():
    proc = conformance("matrix", "--help")
    assert "(default: profile 'all')" in proc.stdout.replace("\n", " ").replace("  ", " ") or \
        "default: profile 'all'" in " ".join(proc.stdout.split())
    assert "(default: 'all')" in " ".join(proc.stdout.split())


def test_a_host_that_does_not_resolve_is_named(monkeypatch):
    def no_such_host(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    conn = Connection(parts=(Part(data=b"GET / HTTP/1.0\r\n\r\n"),), timeout=1.0)
    obs = play(conn, Target("no-such-host.invalid", 80), EventBoard([conn.name]))
    assert "does not resolve" in obs.error
    from conformance.docroot import Fixtures
    from conformance.resources import cases_dir

    message = preflight(Target("no-such-host.invalid", 80), Fixtures(cases_dir()))
    assert "does not resolve" in message and "Nothing is answering" not in message


def _forbidding_server() -> tuple[int, threading.Thread]:
    listener = socket.create_server(("127.0.0.1", 0))

    def run():
        with listener:
            listener.settimeout(10)
            conn, _ = listener.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.0 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


def test_a_forbidden_canary_points_at_permissions():
    from conformance.docroot import Fixtures
    from conformance.resources import cases_dir

    port, thread = _forbidding_server()
    message = preflight(Target("127.0.0.1", port), Fixtures(cases_dir()))
    thread.join(5)
    assert "403 Forbidden" in message and "drops to another user" in message


def test_the_spawned_root_can_be_entered_by_any_user():
    from conformance.docroot import Fixtures, reachable_cache_base
    from conformance.resources import cases_dir

    root = Fixtures(cases_dir()).cached_root(reachable_cache_base())
    for folder in [root, *root.parents]:
        assert folder.stat().st_mode & 0o001, f"{folder} cannot be entered by other users"


def test_the_lab_profile_fails_a_server_that_serves_files_above_its_folder():
    proc = conformance("--spawn", STUDENT + " --defect traversal", "--profile", "lab", "--format", "json", "-q",
                       timeout=180)
    assert proc.returncode == 1
    failed = {r["id"] for r in json.loads(proc.stdout)["results"] if r["verdict"] == "fail"}
    assert any(case_id.startswith("security/") for case_id in failed), failed


def test_an_edited_fixture_is_reported_at_start(tmp_path):
    from conformance.docroot import Fixtures
    from conformance.resources import cases_dir
    from conformance.spawn import SpawnedServer

    root = Fixtures(cases_dir()).materialise(tmp_path / "fixtures")
    (root / "file.txt").write_bytes(b"edited by hand\n")
    template = f"{PY} -m http.server {{port}} --bind {{host}} --directory {shlex.quote(str(root))}"
    with SpawnedServer.from_template(template, root) as server:
        proc = conformance("--target", f"127.0.0.1:{server.port}", "--id", "lab/get-text-file", "-q")
    assert "the served files differ from the fixtures (file.txt: 15 bytes served" in proc.stderr
    assert "docroot" in proc.stderr


def _failing_recipe(tmp_path: Path) -> Path:
    recipes = tmp_path / "servers.toml"
    recipes.write_text(
        '[server.broken]\nlanguage = "Python"\n'
        f'command = ["{sys.executable}", "-c", "raise SystemExit(\'syntax error in the recipe\')", "{{port}}"]\n'
    )
    (tmp_path / "known-failures").mkdir()
    return recipes


def test_a_partial_matrix_does_not_touch_docs_and_a_server_that_does_not_start_fails(tmp_path):
    recipes = _failing_recipe(tmp_path)
    before = (REPO / "docs" / "matrix.md").read_bytes()
    proc = conformance("matrix", str(recipes), "--id", "lab/get-text-file", cwd=tmp_path, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "broken: did not run" in proc.stderr
    assert (REPO / "docs" / "matrix.md").read_bytes() == before
    page = (tmp_path / "matrix-partial" / "matrix.md").read_text()
    assert "No server ran" in page
    for line in page.splitlines():
        if line.startswith("|"):
            assert line.endswith("|")


def test_tox_leaves_the_slow_tests_out_unless_told():
    assert '{posargs:-m "not slow"}' in (REPO / "tox.ini").read_text()
