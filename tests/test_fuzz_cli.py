"""``conformance fuzz`` on the command line: wired in as the main CLI will wire it."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.fuzz import add_parser, main
from conformance.spawn import free_port

pytestmark = pytest.mark.network

STUDENT = Path(__file__).resolve().parent / "student_server.py"


def _run(argv: list[str]) -> int:
    # What conformance/cli.py does: add_parser(sub), then HANDLERS["fuzz"] = main.
    parser = argparse.ArgumentParser(prog="conformance")
    sub = parser.add_subparsers(dest="command")
    add_parser(sub)
    return main(parser.parse_args(["fuzz", *argv]))


def test_the_reference_run_exits_0_and_says_no_findings(tmp_path, capsys):
    status = _run(["--examples", "150", "--seed", "2", "--out", str(tmp_path / "out"),
                   "--json", str(tmp_path / "r.json"), "--quiet"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "150 examples" in out and "no findings" in out
    assert json.loads((tmp_path / "r.json").read_text())["examples"] == 150


def test_a_broken_server_exits_1_with_a_reproducer_and_a_checked_case(tmp_path, capsys):
    spawn = f"{shlex.quote(sys.executable)} {shlex.quote(str(STUDENT))} {{port}} --root {{root}} --defect wrong-content-length"
    out_dir = tmp_path / "found"
    status = _run(["--spawn", spawn, "--examples", "600", "--seed", "1", "--out", str(out_dir),
                   "--timeout", "0.5", "--quiet"])
    out = capsys.readouterr().out
    assert status == 1, out
    assert "framing:" in out and "reproduce: printf " in out and "(runner: fail)" in out
    assert "  check: " not in out  # check found nothing wrong with the written case
    cases = list((out_dir / "fuzz").glob("framing-*.toml"))
    assert len(cases) == 1
    checked = subprocess.run([sys.executable, "-m", "conformance", "check", "--cases", str(out_dir)],
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_an_unreachable_target_exits_3(tmp_path, capsys):
    port = free_port("127.0.0.1")
    status = _run(["--target", f"127.0.0.1:{port}", "--out", str(tmp_path), "--quiet"])
    assert status == 3
    assert "Nothing is answering" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["--target", "127.0.0.1:1", "--spawn", "x"],
    ["--examples", "0"],
    ["--target", "nonsense"],
])
def test_bad_arguments_exit_2(argv, tmp_path, capsys):
    assert _run([*argv, "--out", str(tmp_path)]) == 2


def test_python_m_conformance_fuzz_runs_standalone(tmp_path):
    done = subprocess.run([sys.executable, "-m", "conformance.fuzz", "--help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "--against" in done.stdout
