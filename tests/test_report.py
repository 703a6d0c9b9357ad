"""Reporters: golden files, the JSON schema, JUnit counts and hostile text.

The golden files in tests/golden/ are compared exactly. After an intended change
to a reporter, regenerate them and review the diff:

    UPDATE_GOLDEN=1 python -m pytest tests/test_report.py
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from conformance.model import LEVELS, VERDICTS, Result
from conformance.report import (
    COUNT_ORDER,
    FORMAT,
    FORMAT_VERSION,
    REPORTERS,
    RunInfo,
    exit_status,
    summarise,
    verdict_line,
)

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
SCHEMA = ROOT / "docs" / "report-schema.json"

RUN = RunInfo(
    suite_version="0.1.0",
    target="127.0.0.1:8080",
    options={"jobs": 4, "strict": False, "timeout_scale": 1.0, "selection": "default"},
    started="2024-05-01T12:00:00Z",
    duration=3.25,
    exit_status=1,
    notes=["the server was restarted 1 time during the run"],
    reproduce="cd /tmp/root && python3 server.py 8080",
    server_log="/tmp/conformance-server-x.log",
)

# Received bytes as the runner hands them over: already escaped (NUL, ESC, an
# invalid UTF-8 sequence), XML- and Markdown-special characters left as they are.
NASTY_RECEIVED = (
    'HTTP/1.0 200 OK\\r\\n\nX-Evil: <a href="x">&amp;</a> | `tick` *\\r\\n\n\\r\\n\n'
    "\\x00\\x1b[31mred\\xff\\xfe\\xc3("
)
# Raw characters that should never reach a reporter, but might: reporters must
# still produce a safe terminal text and well-formed XML.
RAW_CONTROL = "status line \x00\x1b[2J\x7f\x9b \udcff \ufffe"

RESULTS = [
    Result(
        id="lab/get-text-file", title="serves a text file byte for byte", area="lab",
        level="MUST", requirements=["R-8.1-a"], verdict="pass", duration=0.012,
        sent="GET /hello.txt HTTP/1.0\\r\\n\n\\r\\n", received="HTTP/1.0 200 OK\\r\\n\n",
        reproducer="printf 'GET /hello.txt HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 8080",
    ),
    Result(
        id="lab/get-binary-file", title="serves a binary file byte for byte", area="lab",
        level="MUST", requirements=["R-8.1-a", "R-10.4-a"], verdict="fail",
        reason="body differs from the fixture at byte 17",
        expected=["200 with the bytes of binary.bin", "200 with Content-Length 4096"],
        actual="200 with 4093 bytes; Content-Type: text/html; charset=<unknown> & more",
        findings=["body differs at byte 17", 'Content-Length "4096" but 4093 bytes followed'],
        duration=0.034, sent="GET /binary.bin HTTP/1.0\\r\\n\n\\r\\n", received=NASTY_RECEIVED,
        reproducer="printf 'GET /binary.bin HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 8080 | xxd",
        hint="Open the file in binary mode and send every byte;\n"
             "   a text-mode read changes line ends.",
    ),
    Result(
        id="lab/missing-file-404", title="answers 404 for a missing file", area="lab",
        level="MUST", requirements=["R-9.4-a"], verdict="error",
        reason="connection refused", actual="connect() failed: [Errno 111] Connection refused",
        duration=0.001, sent="GET /nope HTTP/1.0\\r\\n\n\\r\\n",
        reproducer="printf 'GET /nope HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 8080",
        cause="crash",
        server_log=["Traceback (most recent call last):", '  File "server.py", line 9, in <module>',
                    "IndexError: list index out of range \x1b[0m"],
    ),
    Result(
        id="rfc1945/head-no-body", title="answers HEAD without a body", area="rfc1945",
        level="SHOULD", requirements=["R-8.2-a"], verdict="warn",
        reason="a body followed the headers of a HEAD response",
        expected=["200 and no body"], actual="200 and 12 bytes of body",
        findings=["12 bytes after the header block"], duration=0.02,
        sent="HEAD /hello.txt HTTP/1.0\\r\\n\n\\r\\n",
        received="HTTP/1.0 200 OK\\r\\n\nContent-Length: 12\\r\\n\n\\r\\n\nHello world\\n",
        reproducer="printf 'HEAD /hello.txt HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 8080",
        hint="HEAD gets the headers a GET would, and no body.",
    ),
    Result(
        id="rfc1945/date-header", title="sends a Date header", area="rfc1945",
        level="MAY", requirements=["R-10.6-a"], verdict="info",
        reason="no Date header", expected=["a Date header"], actual="no Date header",
        duration=0.011,
    ),
    Result(
        id="rfc1945/simple-request", title="answers a Simple-Request", area="rfc1945",
        level="SHOULD", requirements=["R-4.1-a"], verdict="fail",
        reason="the response held a status line (strict)",
        expected=["a Simple-Response", "400 Bad Request", "the connection closed without a byte"],
        actual=RAW_CONTROL, findings=[RAW_CONTROL], duration=0.05,
        sent="GET /hello.txt\\r\\n", received=RAW_CONTROL + "\nsecond line ```",
        reproducer="printf 'GET /hello.txt\\r\\n' | nc 127.0.0.1 8080",
    ),
    Result(
        id="robustness/nul-in-request-line", title="survives a NUL in the request line",
        area="robustness", level="MUST", requirements=["ROB-1"], verdict="pass",
        duration=0.2, sent="GET /\\x00 HTTP/1.0\\r\\n\n\\r\\n", received="HTTP/1.0 400 Bad Request\\r\\n\n",
    ),
    Result(
        id="security/dotdot-escape", title="refuses a path that climbs out of the root",
        area="security", level="MUST", requirements=["ROB-7"], verdict="skip",
        reason="not in the selected profile",
    ),
    Result(
        id="concurrency/parallel-downloads", title="serves 8 downloads at once",
        area="concurrency", level="MUST", requirements=["R-lab-2"], verdict="pass",
        duration=1.5,
    ),
]

# name of the golden file -> (format, keyword arguments)
GOLDENS = {
    "report.table.txt": ("table", {}),
    "report.table-verbose.txt": ("table", {"verbose": True}),
    "report.json": ("json", {}),
    "report.junit.xml": ("junit", {}),
    "report.md": ("markdown", {}),
}


@pytest.mark.parametrize("name", GOLDENS)
def test_golden(name):
    fmt, kwargs = GOLDENS[name]
    text = REPORTERS[fmt](RESULTS, RUN, **kwargs)
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    assert text == path.read_bytes().decode("utf-8")  # exact: no newline translation


def test_every_reporter_has_a_golden_file():
    assert set(REPORTERS) == {fmt for fmt, _ in GOLDENS.values()}


@pytest.mark.parametrize("fmt", REPORTERS)
def test_reporters_accept_any_order_and_give_the_same_text(fmt):
    assert REPORTERS[fmt](RESULTS[::-1], RUN) == REPORTERS[fmt](RESULTS, RUN)


@pytest.mark.parametrize("fmt", REPORTERS)
def test_reporters_handle_an_empty_run(fmt):
    text = REPORTERS[fmt]([], RUN)
    assert text.endswith("\n")


@pytest.mark.parametrize("fmt", ["table", "junit", "markdown"])
def test_no_raw_control_character_or_surrogate_reaches_text_output(fmt):
    text = REPORTERS[fmt](RESULTS, RUN, verbose=True)
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]", text)
    text.encode("utf-8")  # would raise on a lone surrogate


def test_color_only_when_asked():
    plain = REPORTERS["table"](RESULTS, RUN)
    assert "\x1b" not in plain
    colored = REPORTERS["table"](RESULTS, RUN, color=True)
    assert "\x1b[1;31mFAIL\x1b[0m lab/get-binary-file" in colored
    assert "\x1b[1;31mFAIL\x1b[0m: 1 MUST case failed" in colored
    # colour wraps verdict words and changes nothing else, table widths included
    assert re.sub(r"\x1b\[[0-9;]*m(\w+)\x1b\[0m", r"\1", colored) == plain


# --- JSON --------------------------------------------------------------------


def test_json_validates_against_the_schema():
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    doc = json.loads(REPORTERS["json"](RESULTS, RUN))
    jsonschema.Draft202012Validator(schema).validate(doc)
    assert list(doc) == ["format", "version", "suite_version", "incomplete", "incomplete_reason",
                         "run", "summary", "results"]
    assert (doc["format"], doc["version"]) == (FORMAT, FORMAT_VERSION)


def test_json_keeps_every_result_field_exactly():
    doc = json.loads(REPORTERS["json"](RESULTS, RUN))
    # even the lone surrogate, written as a \\u escape, comes back as it was
    assert {r["id"]: r for r in doc["results"]} == {r.id: vars(r) for r in RESULTS}


def test_schema_enums_match_the_model():
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    result = schema["$defs"]["result"]["properties"]
    assert set(result["verdict"]["enum"]) == set(VERDICTS) == set(COUNT_ORDER)
    assert set(result["level"]["enum"]) == set(LEVELS)
    assert set(schema["$defs"]["result"]["required"]) == set(Result.__dataclass_fields__)


# --- JUnit -------------------------------------------------------------------


def test_junit_parses_and_counts_match():
    root = ET.fromstring(REPORTERS["junit"](RESULTS, RUN).encode("utf-8"))
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == (
        "9", "2", "1", "1")
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == ["concurrency", "lab", "rfc1945", "robustness", "security"]
    lab = suites["lab"]
    assert (lab.get("tests"), lab.get("failures"), lab.get("errors")) == ("3", "1", "1")
    assert len(lab.findall("testcase")) == 3
    assert len(root.findall(".//failure")) == 2
    assert len(root.findall(".//error")) == 1
    assert len(root.findall(".//skipped")) == 1
    assert len(root.findall(".//system-out")) == 2  # the warn and the info
    case = lab.find("testcase[@name='lab/get-binary-file']")
    assert case.get("classname") == "lab"
    failure = case.find("failure")
    assert failure.get("message") == "body differs from the fixture at byte 17"
    assert '<a href="x">&amp;</a>' in failure.text  # escaped on write, intact on read


# --- counting and exit status ------------------------------------------------


def test_summarise_counts_per_verdict_and_area():
    s = summarise(RESULTS)
    assert s["overall"] == {"pass": 3, "warn": 1, "info": 1, "fail": 2, "error": 1,
                            "skip": 1, "total": 9}
    assert list(s["areas"]) == ["concurrency", "lab", "rfc1945", "robustness", "security"]
    assert s["areas"]["rfc1945"] == {"pass": 0, "warn": 1, "info": 1, "fail": 1, "error": 0,
                                     "skip": 0, "total": 3}


def test_summarise_rejects_an_unknown_verdict():
    with pytest.raises(ValueError, match="lab/x: unknown verdict 'maybe'"):
        summarise([Result(id="lab/x", title="", area="lab", level="MUST",
                          requirements=[], verdict="maybe")])


def _only(*verdicts: str) -> list[Result]:
    return [Result(id=f"lab/c{i}", title="t", area="lab", level="MUST", requirements=["R"],
                   verdict=v) for i, v in enumerate(verdicts)]


@pytest.mark.parametrize("verdicts, status, line", [
    ((), 0, "PASS: every selected MUST case passed"),
    (("pass", "info"), 0, "PASS: every selected MUST case passed"),
    (("pass", "warn", "warn", "warn"), 0, "PASS: every selected MUST case passed (3 warnings)"),
    (("warn", "skip"), 0, "PASS: every selected MUST case passed (1 warning, 1 skipped)"),
    (("fail", "fail", "error", "pass"), 1, "FAIL: 2 MUST cases failed, 1 could not be run"),
    (("error",), 1, "FAIL: 1 could not be run"),
])
def test_exit_status_and_verdict_line(verdicts, status, line):
    results = _only(*verdicts)
    assert exit_status(results) == status
    assert verdict_line(results) == line


def test_verdict_line_counts_fails_per_level():
    assert verdict_line(RESULTS) == (
        "FAIL: 1 MUST case failed, 1 SHOULD case failed, 1 could not be run")
