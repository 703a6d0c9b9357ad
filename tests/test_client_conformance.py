"""The client cases pass the reference client and catch each broken client."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from conformance.client_cases import ClientObservation, judge_client, load_client_cases
from conformance.client_runner import run_client_case
from conformance.docroot import Fixtures

REPO = Path(__file__).resolve().parent.parent
CASES = REPO / "cases"
PY = shlex.quote(sys.executable)
REFERENCE = f"{PY} {shlex.quote(str(REPO / 'reference' / 'client.py'))} --timeout 3 {{host}} {{port}} {{client_port}} {{path}}"
BROKEN = f"{PY} {shlex.quote(str(REPO / 'tests' / 'broken_client.py'))} {{host}} {{port}} {{client_port}} {{path}}"

ALL = {c.id: c for c in load_client_cases(CASES, Fixtures(CASES))}

# Each defect of tests/broken_client.py and the client cases that must catch it.
CAUGHT_BY = {
    "bare-lf": ["client/sends-http10-get"],
    "ignores-client-port": ["client/connects-from-client-port"],
    "single-recv": ["client/writes-large-body", "client/body-in-small-pieces"],
    "text-mode": ["client/writes-binary-body"],
    "ignores-path": ["client/fetches-given-path"],
}


@pytest.mark.parametrize("case_id", sorted(ALL))
def test_reference_client_passes(case_id):
    result = run_client_case(ALL[case_id], REFERENCE)
    assert result.verdict == "pass", (result.findings, result.actual)


@pytest.mark.parametrize("case_id", sorted({c for ids in CAUGHT_BY.values() for c in ids}))
def test_correct_broken_client_passes_the_catching_cases(case_id):
    # Without a defect the test client is correct, so a catch below is the defect's doing.
    result = run_client_case(ALL[case_id], BROKEN)
    assert result.verdict == "pass", (result.findings, result.actual)


@pytest.mark.parametrize(
    "defect, case_id", [(d, c) for d, ids in sorted(CAUGHT_BY.items()) for c in ids]
)
def test_broken_client_is_caught(defect, case_id):
    result = run_client_case(ALL[case_id], f"{BROKEN} --defect {defect}")
    assert result.verdict == "fail", (result.findings, result.actual)
    assert result.findings


def test_every_case_names_checks_and_requirements():
    for case in ALL.values():
        assert case.checks and case.requirements, case.id


def test_path_check_accepts_any_equivalent_encoding():
    case = ALL["client/percent-encodes-space"]
    for sent in (b"/space%20name.txt", b"/space%20name%2etxt", b"/%73pace%20name.txt"):
        obs = ClientObservation(request=b"GET " + sent + b" HTTP/1.0\r\n\r\n")
        assert judge_client(case, obs).verdict == "pass", sent
    raw = ClientObservation(request=b"GET /space name.txt HTTP/1.0\r\n\r\n")
    assert judge_client(case, raw).verdict == "fail"


def test_missing_client_command_is_an_error():
    result = run_client_case(ALL["client/writes-text-body"], "/nonexistent/client {host} {port}")
    assert result.verdict == "error"
    assert "cannot start" in result.reason
