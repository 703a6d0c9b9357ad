"""feedback.md for the student, and the text of each item on the platforms. Pure.

Plain words, root causes first: when the submission was not graded, why (with the
build or server output); otherwise the mistakes that made most cases fail (the
runner's ``cause`` where it gives one, else the case's reason), then each item with
its score. An item whose rubric feedback is ``title`` shows its title and score
only; ``hidden`` items are left out of what students see.
"""

from __future__ import annotations

from collections import Counter
from typing import Mapping

__all__ = ["root_causes", "item_text", "feedback_markdown"]

OUTPUT_LINES = 30      # lines of build or server output shown to the student
CASES_PER_ITEM = 12    # failed cases listed per item, then "and N more"


def _tail(text: str, lines: int = OUTPUT_LINES) -> str:
    kept = (text or "").rstrip().splitlines()[-lines:]
    return "\n".join(kept) or "(no output)"


def _fence(text: str) -> str:
    body = text.replace("```", "'''")
    return f"```\n{body}\n```"


def root_causes(result: Mapping, limit: int = 5) -> list[tuple[str, int]]:
    """The most common reasons cases failed: [(reason, number of cases)], most first."""
    counts: Counter[str] = Counter()
    for case in result.get("cases", []):
        if case["verdict"] in ("pass", "info", "skip"):
            continue
        counts[case.get("cause") or case.get("reason") or case["verdict"]] += 1
    return counts.most_common(limit)


def _case_lines(case: Mapping, full: bool) -> list[str]:
    lines = [f"- **{case['title']}** (`{case['id']}`, {case['level']}): {case['verdict']}"
             + (f", {case['reason']}" if case.get("reason") else "")]
    if not full:
        return lines
    if case.get("flaky"):
        lines.append(f"  - flaky: it passed only on attempt {case['attempts']}")
    if case.get("requirements"):
        lines.append(f"  - requirement: {', '.join(case['requirements'])}")
    if case.get("expected"):
        lines.append(f"  - expected: {' or '.join(case['expected'])}")
    if case.get("actual"):
        lines.append(f"  - got: {case['actual']}")
    if case.get("hint"):
        lines.append(f"  - hint: {' '.join(case['hint'].split())}")
    if case.get("reproducer"):
        lines.append(f"  - try it: `{case['reproducer']}`")
    if case.get("server_log"):
        log = "\n".join(case["server_log"][-8:])
        lines.append("  - your server printed:\n\n" + "\n".join("    " + ln for ln in _fence(log).splitlines()))
    return lines


def item_text(result: Mapping, item: Mapping) -> str:
    """What a student sees for one item (Markdown), by the item's feedback level."""
    head = f"{item['score']:g} / {item['max_score']:g} points"
    if item.get("reason") and result["status"] == "graded":
        head += f": {item['reason']}"
    if item["feedback"] == "title" or result["status"] != "graded":
        return head
    cases = {c["id"]: c for c in result.get("cases", [])}
    lines = [head, ""]
    failed = [cases[cid] for cid in item["failed"] if cid in cases]
    if not failed:
        lines.append("Its one check passed." if item["counted"] == 1 else f"All {item['counted']} checks passed.")
    else:
        lines.append(f"{item['passed']} of {item['counted']} checks passed. These did not:")
        for case in failed[:CASES_PER_ITEM]:
            lines.extend(_case_lines(case, full=True))
        if len(failed) > CASES_PER_ITEM:
            lines.append(f"- and {len(failed) - CASES_PER_ITEM} more")
    flaky = [cases[cid] for cid in item["flaky"] if cid in cases]
    if flaky:
        lines.append("")
        lines.append("Passed only when run again (flaky, counted as passed): "
                     + ", ".join(f"`{c['id']}`" for c in flaky))
    return "\n".join(lines)


def _not_graded(result: Mapping) -> list[str]:
    lines = [f"**Your submission was not graded: {result['reason']}**", ""]
    build, launch = result.get("build"), result.get("launch")
    if result["status"] == "did-not-build" and build:
        lines += [f"The build command `{build['command']}` printed:", "", _fence(_tail(build["output"])), ""]
    elif result["status"] == "did-not-start" and launch:
        lines += [f"The server was started as `{launch['command']}`. It printed:", "",
                  _fence(_tail(launch["output"])), ""]
    elif result["status"] == "grader-error":
        lines += ["This is the grader's fault, not yours; your instructor has been told.", ""]
    return lines


def feedback_markdown(result: Mapping) -> str:
    """The whole feedback.md of one submission."""
    lines = [f"# {result['rubric']['name']}", "",
             f"Submission `{result['submission']}`: **{result['score']:g} / {result['max_score']:g} points**"
             + (f" (including {result['extra_credit']:g} extra credit)" if result["extra_credit"] else ""), ""]
    if result["status"] != "graded":
        lines += _not_graded(result)
    else:
        causes = root_causes(result)
        if causes:
            lines += ["## What went wrong most", ""]
            lines += [f"- {reason} ({count} check{'s' if count != 1 else ''})" for reason, count in causes]
            lines.append("")
        else:
            lines += ["Every check passed.", ""]
    shown = [i for i in result["items"] if i["visibility"] != "hidden"]
    lines += ["## Items", ""]
    for number, item in enumerate(shown, 1):
        tag = " (extra credit)" if item["extra_credit"] else ""
        when = {"after_due_date": " (shown after the due date)",
                "after_published": " (shown when grades are published)"}.get(item["visibility"], "")
        lines += [f"### {number}. {item['title']}{tag}{when}", "", item_text(result, item), ""]
    return "\n".join(lines).rstrip() + "\n"
