"""Reporters: turn the ``Result`` records of a run into text for people and CI.

Reporters only consume results; they never run anything. ``REPORTERS`` maps a
``--format`` name to its reporter, and is also the list of formats the CLI offers.
Every reporter takes the results and a ``RunInfo`` and returns a ``str`` that ends
in a newline; the keywords ``verbose`` and ``color`` are accepted by all of them so
the CLI can call any one the same way, and ignored where they mean nothing.

Two rules hold for every format:

- Results are ordered by area, then by id, so a serial run and a ``--jobs 8`` run
  of the same corpus give the same report.
- Text that may come from the server (``actual``, ``findings``, ``received``, ...)
  can hold any character. ``_safe`` escapes control characters and lone surrogates
  before they reach a terminal (an ESC byte would drive it), a Markdown page or an
  XML file (XML 1.0 forbids most C0 characters outright). JSON keeps the exact
  strings, since its own escaping is lossless.
"""

from __future__ import annotations

import itertools
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from .causes import CAUSES, cause_order
from .model import LEVELS, Result

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "COUNT_ORDER",
    "RunInfo",
    "Reporter",
    "REPORTERS",
    "exit_status",
    "summarise",
    "verdict_line",
    "cause_groups",
    "report_table",
    "report_json",
    "report_junit",
    "report_markdown",
]

# Identifies the JSON document; bump FORMAT_VERSION on any incompatible change and
# update docs/report-schema.json with it. Adding a key is not incompatible.
FORMAT = "http10-conformance-report"
FORMAT_VERSION = 1

# The order counts are shown in, best first (model.VERDICTS is worst first).
COUNT_ORDER = ("pass", "warn", "info", "fail", "error", "skip")

# Non-passes that get a full block of details, in the order they are shown.
DETAILED = ("fail", "error", "warn")
# Non-passes that are only listed, one line each.
BRIEF = ("info", "skip")

REASON_WIDTH = 60  # characters of the reason shown in a terminal table cell

# The table report shows the details of this many failures; --verbose shows all.
DETAIL_FIRST = 3

ANSI = {
    "pass": "\x1b[32m",
    "warn": "\x1b[33m",
    "info": "\x1b[36m",
    "fail": "\x1b[1;31m",
    "error": "\x1b[1;35m",
    "skip": "\x1b[2m",
}
ANSI_RESET = "\x1b[0m"


@dataclass(frozen=True)
class RunInfo:
    """What was run, where and how: the header of every report.

    ``options`` holds the run's settings as plain JSON values, e.g.
    ``{"jobs": 8, "strict": False, "timeout_scale": 1.0, "selection": "default"}``.
    """

    suite_version: str
    target: str  # "host:port", or the --spawn command line
    options: dict[str, Any]
    started: str  # ISO 8601 in UTC, e.g. "2024-05-01T12:00:00Z"
    duration: float  # wall-clock seconds for the whole run
    exit_status: int
    incomplete: str = ""  # why some cases were not run (budget, signal); "" when all were
    notes: list[str] = field(default_factory=list)  # what a reader should know about the run
    server_log: str = ""  # where the spawned server's whole output was saved
    reproduce: str = ""  # how to start the spawned server by hand for the reproducers


class Reporter(Protocol):
    def __call__(
        self, results: list[Result], run: RunInfo, *, verbose: bool = False, color: bool = False
    ) -> str: ...


# ---------------------------------------------------------------------------
# Counting and the overall verdict


def exit_status(results: list[Result]) -> int:
    """The process exit status a run with these results earns.

    Returns:
        0 when no result is ``fail`` or ``error``, else 1. (Usage errors, 2, and an
        unreachable target, 3, are decided before any result exists.)
    """
    return int(any(r.verdict in ("fail", "error") for r in results))


def summarise(results: list[Result]) -> dict[str, Any]:
    """Count the results per verdict, overall and per area.

    Returns:
        ``{"overall": COUNTS, "areas": {area: COUNTS, ...}}`` where COUNTS is
        ``{"pass": n, "warn": n, "info": n, "fail": n, "error": n, "skip": n,
        "total": n}``; areas in alphabetical order.

    Raises:
        ValueError: a result carries a verdict that is not one of COUNT_ORDER.
    """
    overall = _zero_counts()
    areas: dict[str, dict[str, int]] = {}
    for r in _ordered(results):
        if r.verdict not in COUNT_ORDER:
            raise ValueError(f"{r.id}: unknown verdict {r.verdict!r}")
        for counts in (overall, areas.setdefault(r.area, _zero_counts())):
            counts[r.verdict] += 1
            counts["total"] += 1
    return {"overall": overall, "areas": areas}


def verdict_line(results: list[Result]) -> str:
    """One line a person can act on.

    Returns:
        e.g. ``"PASS: every selected MUST case passed (3 warnings)"`` or
        ``"FAIL: 2 MUST cases failed, 1 could not be run"``. A fail is counted at
        its case's level: a SHOULD case fails only under --strict, and any level
        fails when the server stopped serving after the case.
    """
    counts = summarise(results)["overall"]
    if exit_status(results):
        parts = []
        for level in LEVELS:
            n = sum(1 for r in results if r.verdict == "fail" and r.level == level)
            if n:
                parts.append(f"{_plural(n, f'{level} case')} failed")
        if counts["error"]:
            parts.append(f"{counts['error']} could not be run")
        return "FAIL: " + ", ".join(parts)
    extra = [_plural(counts["warn"], "warning")] if counts["warn"] else []
    extra += [f"{counts['skip']} skipped"] if counts["skip"] else []
    return "PASS: every selected MUST case passed" + (f" ({', '.join(extra)})" if extra else "")


# ---------------------------------------------------------------------------
# Helpers shared by the text formats

# C0 and C1 controls, DEL, surrogates (undecodable bytes smuggled in by
# "surrogateescape"), and the two non-characters XML 1.0 forbids.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(match: re.Match[str]) -> str:
    ch = match.group()
    code = ord(ch)
    if ch in _NAMED:
        return _NAMED[ch]
    if 0xDC80 <= code <= 0xDCFF:  # the byte that surrogateescape could not decode
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _safe(text: str) -> str:
    """Escape every character a terminal, Markdown or XML must not see raw."""
    return _UNSAFE.sub(_escape_char, text)


def _lines(text: str) -> list[str]:
    """Escaped bytes as display lines: the runner may break them after each LF."""
    return [_safe(line) for line in text.rstrip("\n").split("\n")] if text else []


def _cut(text: str, width: int = REASON_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _zero_counts() -> dict[str, int]:
    return dict.fromkeys((*COUNT_ORDER, "total"), 0)


def _ordered(results: list[Result]) -> list[Result]:
    return sorted(results, key=lambda r: (r.area, r.id))


def _by_area(results: list[Result]) -> Iterator[tuple[str, list[Result]]]:
    for area, group in itertools.groupby(_ordered(results), key=lambda r: r.area):
        yield area, list(group)


def _details(r: Result, with_bytes: bool) -> list[tuple[str, str | list[str]]]:
    """(label, value) pairs explaining a non-pass; values already made safe.

    A list value is a block of lines (the bytes sent and received).
    """
    rows: list[tuple[str, str | list[str]]] = [
        ("requirements", f"{', '.join(r.requirements)} ({r.level})")
    ]
    if r.reason and r.reason not in r.findings:
        rows.append(("reason", r.reason))
    if r.expected:
        rows.append(("expected", ", or ".join(r.expected)))
    if r.actual:
        rows.append(("got", r.actual))
    rows += [("finding", f) for f in r.findings]
    if r.server_log:
        rows.append(("the server wrote", [_safe(line) for line in r.server_log]))
    if r.hint:
        rows.append(("hint", " ".join(r.hint.split())))  # prose from a TOML file
    if r.reproducer:
        rows.append(("reproduce", r.reproducer))
    if with_bytes and (r.sent or r.received):
        rows += [("sent", _lines(r.sent)), ("received", _lines(r.received))]
    return [(k, v if isinstance(v, list) else _safe(v)) for k, v in rows]


def cause_groups(results: list[Result]) -> list[tuple[str, str, list[Result]]]:
    """The failures and errors grouped by likely root cause, the cause to fix first first.

    Returns:
        ``[(cause key, title, results), ...]``; a result without a cause counts as
        a wrong answer, a case the runner could not run as "not run".
    """
    bad = [r for r in _ordered(results) if r.verdict in ("fail", "error")]
    groups: dict[str, list[Result]] = {}
    for r in bad:
        cause = r.cause or "wrong-answer"
        if cause == "wrong-answer":
            # Wrong answers are as many mistakes as the requirements they break.
            cause += ":" + (r.requirements[0] if r.requirements else "?")
        groups.setdefault(cause, []).append(r)
    order = sorted(groups, key=lambda k: (k == "not-run", cause_order(k.split(":")[0]), k))
    return [(k, _cause_title(k, groups[k]), groups[k]) for k in order]


def _cause_title(key: str, group: list[Result]) -> str:
    if key == "not-run":
        return "cases the runner could not run"
    if key.startswith("wrong-answer:"):
        return f"{CAUSES['wrong-answer'].title} on {key.split(':', 1)[1]}, such as: {group[0].title}"
    return CAUSES[key].title if key in CAUSES else key


def _cause_advice(key: str) -> str:
    # A wrong answer's advice is its cases' own hints, shown in their details.
    return CAUSES[key].advice if key in CAUSES and key != "wrong-answer" else ""



def _plain_details(r: Result, with_bytes: bool, indent: str = "  ") -> list[str]:
    out = []
    for label, value in _details(r, with_bytes):
        if isinstance(value, list):
            out.append(f"{indent}{label}:" + ("" if value else " (nothing)"))
            out += [f"{indent}  {line}" for line in value]
        else:
            out.append(f"{indent}{label}: {value}")
    return out


def _option(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _options(run: RunInfo) -> str:
    return ", ".join(f"{k}={_option(v)}" for k, v in run.options.items())


def _count_rows(summary: dict[str, Any], cell=_safe) -> list[list[Any]]:
    rows = [[cell(area), *(c[v] for v in COUNT_ORDER), c["total"]]
            for area, c in summary["areas"].items()]
    overall = summary["overall"]
    return rows + [["total", *(overall[v] for v in COUNT_ORDER), overall["total"]]]


# ---------------------------------------------------------------------------
# table: for a terminal


def tabulate(*args, **kwargs) -> str:
    # Imported here: the JSON and JUnit reports must work where tabulate is missing.
    from tabulate import tabulate as format_table

    return format_table(*args, **kwargs)


def report_table(
    results: list[Result], run: RunInfo, *, verbose: bool = False, color: bool = False
) -> str:
    """Human output for a terminal: short by default, everything with ``verbose``.

    Args:
        results: the run's results, in any order.
        run: what was run.
        verbose: every case in a table per area, the details of every non-pass,
            and the (escaped) bytes sent and received.
        color: colour the verdict words with ANSI escapes.

    Returns:
        The header; the verdict and the totals; the failures grouped under their
        likely cause, the one to fix first first, one line each; the details of the
        first few (all with ``verbose``); the warnings, one line each; the run's
        notes; the one-line verdict again at the end, where a terminal leaves it.
    """

    def paint(word: str, verdict: str) -> str:
        return f"{ANSI[verdict]}{word}{ANSI_RESET}" if color else word

    line = verdict_line(results)
    word, rest = line.split(":", 1)
    verdict = paint(word, "fail" if exit_status(results) else "pass") + ":" + rest
    out = [
        f"HTTP/1.0 conformance report, suite {_safe(run.suite_version)}",
        f"target:  {_safe(run.target)}",
        f"options: {_safe(_options(run))}",
        f"started: {_safe(run.started)} ({run.duration:.2f} s)",
    ]
    if run.incomplete:
        out.append(paint("INCOMPLETE", "error") + f": {_safe(run.incomplete)}")

    # Phase 1 (verbose): a table of every case per area.
    if verbose:
        for area, group in _by_area(results):
            rows = [
                [_safe(r.id), _safe(r.level), paint(_safe(r.verdict), r.verdict),
                 _safe(", ".join(r.requirements)), _cut(_safe(r.reason))]
                for r in group
            ]
            headers = ["case", "level", "verdict", "requirements", "reason"]
            out += ["", _safe(area), tabulate(rows, headers, disable_numparse=True)]

    # Phase 2: the totals.
    out += ["", tabulate(_count_rows(summarise(results)), ["area", *COUNT_ORDER, "total"])]

    # Phase 3: failures by cause, one line each.
    groups = cause_groups(results)
    bad = sum(len(g) for _, _, g in groups)
    if groups:
        causes = len([k for k, _, _ in groups if k != "not-run"])
        out += ["", f"{_plural(bad, 'failure')}, {_plural(causes, 'likely cause')}"
                + (" (fix the first one first)" if causes > 1 else "") + ":"]
        for number, (key, title, group) in enumerate(groups, 1):
            out += ["", f"{number}. {_safe(title)} ({_plural(len(group), 'case')})"]
            advice = _cause_advice(key)
            if advice:
                out.append(f"   {_safe(advice)}")
            for r in group:
                out.append(f"   {paint(r.verdict.upper(), r.verdict)} {_safe(r.id)}: {_cut(_safe(r.reason), 100)}")

    # Phase 4: the details of the first failures of each cause (verbose: of every non-pass).
    firsts = [g[0] for _, _, g in groups][:DETAIL_FIRST]
    shown = [r for _, _, g in groups for r in g] + [r for r in _ordered(results) if r.verdict == "warn"] \
        if verbose else firsts
    if shown:
        hidden = bad - len([r for r in shown if r.verdict in ("fail", "error")])
        out += ["", "Details" + (f" of the first case of each cause ({hidden} more with --verbose)"
                                 if hidden > 0 else "")]
    for r in shown:
        out += ["", f"{paint(r.verdict.upper(), r.verdict)} {_safe(r.id)}: {_safe(r.title)}"]
        out += _plain_details(r, verbose)

    # Phase 5: warnings and the rest, one line each.
    warns = [r for r in _ordered(results) if r.verdict == "warn"]
    if warns and not verbose:
        out += ["", f"Warnings: SHOULD-level requirements not met ({len(warns)}; --strict makes them failures)"]
        out += [f"  {paint('warn', 'warn')} {_safe(r.id)}: {_cut(_safe(r.reason), 100)}" for r in warns]
    brief = [r for v in BRIEF for r in _ordered(results) if r.verdict == v]
    if brief and verbose:
        out += ["", "Information and skipped cases", ""]
        out += [
            f"  {paint(r.verdict, r.verdict)} {_safe(r.id)}: {_safe(r.title)}"
            + (f" ({_safe(r.reason)})" if r.reason else "")
            for r in brief
        ]
    elif brief:
        counts = summarise(results)["overall"]
        parts = [f"{counts[v]} {v}" for v in BRIEF if counts[v]]
        out += ["", f"Not shown: {', '.join(parts)} (--verbose lists them)"]

    # Phase 6: what to know about the run, and the verdict.
    if run.notes:
        out += ["", "Notes"] + [f"  - {_safe(n)}" for n in run.notes]
    if run.reproduce and groups:
        out += ["", "To replay a reproducer by hand, start the server as the runner did, on port 8080:",
                f"  {_safe(run.reproduce)}"]
    if run.server_log:
        out += ["", f"The server's whole output: {_safe(run.server_log)}"]
    out += ["", verdict]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------
# json: for programs; the schema is docs/report-schema.json


def report_json(
    results: list[Result], run: RunInfo, *, verbose: bool = False, color: bool = False
) -> str:
    """The versioned JSON report (``verbose`` and ``color`` are ignored: it holds everything).

    Returns:
        ``{"format", "version", "suite_version", "run", "summary", "results"}`` with
        keys in that fixed order, every ``Result`` field in declaration order,
        indented by 2, non-ASCII text kept as is.
    """
    doc = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "suite_version": run.suite_version,
        "incomplete": bool(run.incomplete),
        "incomplete_reason": run.incomplete,
        "run": asdict(run),
        "summary": summarise(results),
        "results": [asdict(r) for r in _ordered(results)],
    }
    text = json.dumps(doc, indent=2, ensure_ascii=False, default=str)
    # A lone surrogate cannot be encoded as UTF-8 when the caller writes the text;
    # as a JSON \u escape it can. Surrogates only ever occur inside string literals.
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n"


# ---------------------------------------------------------------------------
# junit: for CI systems


def report_junit(
    results: list[Result], run: RunInfo, *, verbose: bool = False, color: bool = False
) -> str:
    """JUnit XML: one ``testsuite`` per area, one ``testcase`` per case.

    fail becomes ``<failure>``, error ``<error>``, skip ``<skipped>``; warn and info
    pass with a ``<system-out>`` saying why. Failure bodies always carry the bytes
    sent and received (``verbose`` and ``color`` are ignored).
    """

    def counts_attrs(c: dict[str, int]) -> dict[str, str]:
        return {k: str(c[v]) for k, v in
                (("tests", "total"), ("failures", "fail"), ("errors", "error"), ("skipped", "skip"))}

    summary = summarise(results)
    root = ET.Element("testsuites", {
        "name": "http10-conformance",
        **counts_attrs(summary["overall"]),
        "time": f"{run.duration:.3f}",
    })
    for area, group in _by_area(results):
        suite = ET.SubElement(root, "testsuite", {
            "name": _safe(area),
            **counts_attrs(summary["areas"][area]),
            "time": f"{sum(r.duration for r in group):.3f}",
            "timestamp": _safe(run.started),
        })
        props = ET.SubElement(suite, "properties")
        for name, value in [("suite_version", run.suite_version), ("target", run.target),
                            *((f"option.{k}", _option(v)) for k, v in run.options.items())]:
            ET.SubElement(props, "property", name=_safe(name), value=_safe(value))
        for r in group:
            case = ET.SubElement(suite, "testcase", {
                "classname": _safe(area), "name": _safe(r.id), "time": f"{r.duration:.3f}",
            })
            body = "\n".join([_safe(r.title), *_plain_details(r, True, indent="")])
            if r.verdict == "fail":
                ET.SubElement(case, "failure", message=_safe(r.reason), type=r.level).text = body
            elif r.verdict == "error":
                ET.SubElement(case, "error", message=_safe(r.reason), type="error").text = body
            elif r.verdict == "skip":
                ET.SubElement(case, "skipped", message=_safe(r.reason))
            elif r.verdict in ("warn", "info"):
                ET.SubElement(case, "system-out").text = f"{r.verdict}: {_safe(r.reason)}\n{body}"
            if r.server_log:
                ET.SubElement(case, "system-err").text = "\n".join(_safe(line) for line in r.server_log)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# ---------------------------------------------------------------------------
# markdown: for a GitHub comment or the docs

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|&~])")


def _md(text: str) -> str:
    """Safe text for a Markdown paragraph or table cell: no markup, no HTML."""
    return _MD_SPECIAL.sub(r"\\\1", _safe(text))


def _md_code(text: str) -> str:
    """An inline code span that no backtick inside ``text`` can close early."""
    text = _safe(text)
    ticks = "`" * (max((len(t) for t in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _md_block(lines: list[str]) -> list[str]:
    fence = "`" * max(3, max((len(t) for line in lines for t in re.findall("`+", line)), default=0) + 1)
    return [fence, *lines, fence]


def report_markdown(
    results: list[Result], run: RunInfo, *, verbose: bool = False, color: bool = False
) -> str:
    """Markdown for a GitHub comment or the docs (``color`` is ignored).

    Args:
        verbose: also show the bytes sent and received for each fail, error and warn.

    Returns:
        The verdict, a summary table per area, a table of cases per area, then
        the details of every non-pass.
    """

    def verdict_cell(v: str) -> str:
        return f"**{v}**" if v in ("fail", "error") else v

    line = verdict_line(results)
    out = [
        f"## HTTP/1.0 conformance: {line.split(':', 1)[0]}",
        "",
        _md(line),
        "",
        f"Suite {_md(run.suite_version)} against {_md_code(run.target)}, started "
        f"{_md(run.started)}, {run.duration:.2f} s; options: {_md(_options(run))}.",
        "",
        tabulate(_count_rows(summarise(results), _md), ["area", *COUNT_ORDER, "total"],
                 tablefmt="pipe"),
    ]
    if run.incomplete:
        out[2:2] = [f"**Incomplete:** {_md(run.incomplete)}", ""]
    groups = cause_groups(results)
    if groups:
        out += ["", "### Failures by likely cause", ""]
        for key, title, group in groups:
            advice = _cause_advice(key)
            out.append(f"- **{_md(title)}** ({_plural(len(group), 'case')})" + (f": {_md(advice)}" if advice else ""))
            out += [f"  - {_md_code(r.id)}: {_md(r.reason)}" for r in group]
    if run.notes:
        out += ["", "### Notes", ""] + [f"- {_md(n)}" for n in run.notes]
    if run.reproduce and groups:
        out += ["", f"To replay a reproducer by hand, start the server on port 8080: {_md_code(run.reproduce)}"]
    if run.server_log:
        out += ["", f"The server's whole output: {_md_code(run.server_log)}"]
    for area, group in _by_area(results):
        rows = [[_md_code(r.id), r.level, verdict_cell(r.verdict),
                 _md(", ".join(r.requirements)), _md(r.reason)] for r in group]
        out += ["", f"### {_md(area)}", "",
                tabulate(rows, ["case", "level", "verdict", "requirements", "reason"],
                         tablefmt="pipe", disable_numparse=True)]

    ordered = _ordered(results)
    detailed = [r for v in DETAILED for r in ordered if r.verdict == v]
    brief = [r for v in BRIEF for r in ordered if r.verdict == v]
    if detailed or brief:
        out += ["", "### Details"]
    for r in detailed:
        out += ["", f"#### {r.verdict.upper()} {_md_code(r.id)}: {_md(r.title)}", ""]
        for label, value in _details(r, verbose):
            if isinstance(value, list):
                out += [f"- {label}:", "", *("  " + s for s in _md_block(value)), ""]
            elif label == "reproduce":
                out.append(f"- {label}: {_md_code(value)}")
            else:
                out.append(f"- {label}: {_md(value)}")
    if brief:
        out += ["", "Information and skipped cases:", ""]
        out += [f"- {r.verdict} {_md_code(r.id)}: {_md(r.title)}"
                + (f" ({_md(r.reason)})" if r.reason else "") for r in brief]
    return "\n".join(out) + "\n"


# Format name -> reporter: the CLI's --format choices, in the order it lists them.
REPORTERS: dict[str, Reporter] = {
    "table": report_table,
    "json": report_json,
    "junit": report_junit,
    "markdown": report_markdown,
}
