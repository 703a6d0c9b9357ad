"""The pytest plugin turns cases into items that -k, -n and --junitxml handle."""

from __future__ import annotations

import shlex
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent
STUDENT = f"{shlex.quote(sys.executable)} {shlex.quote(str(REPO / 'tests' / 'student_server.py'))} {{port}} --root {{root}}"

registered = any(ep.name == "conformance" for ep in entry_points(group="pytest11"))
pytestmark = pytest.mark.skipif(not registered, reason="the plugin is registered only once the project is installed")


def test_without_options_the_plugin_adds_nothing(pytester):
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=1)


def test_cases_become_items_and_k_selects(pytester):
    result = pytester.runpytest_subprocess(
        "--conformance-spawn", STUDENT, "--conformance-profile", "lab", "-k", "get-text-file or get-empty-file", "-q"
    )
    result.assert_outcomes(passed=2)


def test_a_failing_case_is_a_failing_item_with_the_report(pytester, tmp_path):
    junit = tmp_path / "junit.xml"
    result = pytester.runpytest_subprocess(
        "--conformance-spawn", f"{STUDENT} --defect head-sends-body",
        "--conformance-profile", "rfc1945", "-k", "head-no-body or get-star", f"--junitxml={junit}", "-q",
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*rfc1945/head-no-body*", "*R-8.2-a*", "*reproduce: printf 'HEAD /file.txt*"])
    assert "rfc1945/head-no-body" in junit.read_text()


def test_unreachable_target_fails_items_with_the_preflight_message(pytester):
    from conformance.spawn import free_port

    port = free_port("127.0.0.1")
    result = pytester.runpytest_subprocess(
        "--conformance-target", f"127.0.0.1:{port}", "--conformance-profile", "lab", "-k", "get-text-file", "-q"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*Nothing is answering at 127.0.0.1:*"])
