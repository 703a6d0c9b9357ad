"""COVERAGE.md: cases per requirement, reasons for the uncovered ones, covered/testable."""

from pathlib import Path
from types import SimpleNamespace

from conformance.coverage import coverage_counts, coverage_markdown, section_key
from conformance.loader import load_corpus
from conformance.model import Requirement

CASES = Path(__file__).resolve().parent.parent / "cases"


def corpus():
    requirements = {
        r.id: r
        for r in [
            Requirement("R-10.4-a", "10.4", "MUST", "Content-Length is digits | only."),
            Requirement("R-2.2-a", "2.2", "MUST", "CRLF ends every line."),
            Requirement("R-2.2-b", "2.2", "SHOULD", "Folding is read as whitespace."),
            Requirement("R-AppB-a", "Appendix B", "SHOULD", "Extra spaces are tolerated."),
            Requirement("R-9.4-e", "9.4", "MUST", "401 has WWW-Authenticate.", testable=False,
                        reason="not applicable: no authentication"),
            Requirement("ROB-7", "robustness", "MUST", "TCP is a byte stream."),
        ]
    }
    cases = [
        SimpleNamespace(id="rfc1945/crlf", requirements=("R-2.2-a",)),
        SimpleNamespace(id="lab/in-pieces", requirements=("ROB-7", "R-2.2-a")),
        SimpleNamespace(id="rfc1945/typo", requirements=("R-0-z",)),
    ]
    return SimpleNamespace(requirements=requirements, cases=cases)


def test_summary_and_counts():
    text = coverage_markdown(corpus())
    assert "**Covered: 2/5** testable requirements (6 in the catalogue, 1 not testable as a black box)." in text
    assert "| MUST | 2 | 3 |" in text and "| SHOULD | 0 | 2 |" in text
    assert coverage_counts(corpus())["all"] == (2, 5)


def test_rows_list_cases_reasons_and_uncovered():
    text = coverage_markdown(corpus())
    assert "| R-2.2-a | MUST | CRLF ends every line. | `lab/in-pieces`, `rfc1945/crlf` |" in text
    assert "| R-2.2-b | SHOULD | Folding is read as whitespace. | **NOT COVERED** |" in text
    assert "| R-9.4-e | MUST | 401 has WWW-Authenticate. | not testable: not applicable: no authentication |" in text
    assert "Content-Length is digits \\| only." in text  # a pipe cannot break the table
    assert "- R-0-z: `rfc1945/typo`" in text


def test_sections_in_numeric_order():
    text = coverage_markdown(corpus())
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == [
        "## RFC 1945 §2.2",
        "## RFC 1945 §9.4",
        "## RFC 1945 §10.4",
        "## RFC 1945 Appendix B",
        "## Robustness (beyond RFC 1945)",
        "## Named by cases but not in the catalogue",
    ]
    assert sorted(["10.4", "robustness", "2.2", "Appendix B", "9.4"], key=section_key) == [
        "2.2", "9.4", "10.4", "Appendix B", "robustness"]


def test_extra_cases_count():
    extra = [SimpleNamespace(id="client/x", requirements=("R-2.2-b",))]
    assert coverage_counts(corpus(), extra)["all"] == (3, 5)
    assert "`client/x`" in coverage_markdown(corpus(), extra)


def test_real_corpus_is_deterministic():
    real = load_corpus(CASES)
    text = coverage_markdown(real)
    assert text == coverage_markdown(real)
    assert text.startswith("# Coverage of the requirement catalogue\n")
    for rid in real.requirements:
        assert f"| {rid} |" in text
