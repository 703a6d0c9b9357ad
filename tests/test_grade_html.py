"""summary.html: structure and escaping (parsed), then the page in headless chromium.

The browser test loads the page from disk (file://) in Debian's chromium, offline,
with ``#open=ID`` in the URL, and reads the DOM back after the page's script ran.
To look at the page yourself: GRADE_SCREENSHOT=/tmp/summary.png python -m pytest tests/test_grade_html.py
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conformance.grade.result import case_record, make_result
from conformance.grade.rubric import load_rubric
from conformance.grade.summary_html import histogram, most_failed, render_summary
from grade_helpers import RUBRIC

CHROMIUM = Path(os.environ.get("MATRIX_CHROMIUM", "/usr/bin/chromium"))
BROWSER_TIMEOUT = 60
HOSTILE = "</script><img src=x onerror=alert(1)> & \"q\""


def case(cid, verdict, **extra):
    return case_record({"id": cid, "title": f"title of {cid}", "area": cid.split("/")[0], "level": "MUST",
                        "verdict": verdict, "reason": "" if verdict == "pass" else f"{cid} broke", **extra},
                       "server", ["files"])


def make_class():
    rubric = load_rubric(RUBRIC)
    ids = rubric.server_cases()
    good = make_result(rubric, "alice", cases=[case(c, "pass") for c in ids])
    half = make_result(rubric, "bob", cases=[case(c, "fail" if c.startswith("lab/get-") else "pass") for c in ids])
    flaky_cases = [case(c, "pass") for c in ids]
    flaky_cases[0]["flaky"], flaky_cases[0]["attempts"] = True, 2
    flaky = make_result(rubric, "carol", cases=flaky_cases)
    evil = make_result(rubric, "dave<b>", status="did-not-start", reason=HOSTILE)
    return [good, half, flaky, evil], ids


class Node:
    def __init__(self, tag, attrs, parent=None):
        self.tag, self.attrs, self.parent, self.children, self.texts = tag, dict(attrs), parent, [], []

    def text(self):
        return "".join(self.texts + [c.text() for c in self.children]).strip()

    def find_all(self, tag=None, **attrs):
        out = []
        for child in self.children:
            if (tag is None or child.tag == tag) and all(
                    child.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items()):
                out.append(child)
            out.extend(child.find_all(tag, **attrs))
        return out

    def by_id(self, ident):
        found = self.find_all(id=ident)
        assert found, ident
        return found[0]


class Tree(HTMLParser):
    VOID = {"meta", "br", "img", "input", "link", "rect"}

    def __init__(self):
        super().__init__()
        self.root = self.node = Node("#root", {})

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.node)
        self.node.children.append(node)
        if tag not in self.VOID:
            self.node = node

    def handle_startendtag(self, tag, attrs):
        self.node.children.append(Node(tag, attrs, self.node))

    def handle_endtag(self, tag):
        node = self.node
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.node = node.parent

    def handle_data(self, data):
        self.node.texts.append(data)


def parse(text):
    tree = Tree()
    tree.feed(text)
    return tree.root


def test_page_structure_and_escaping():
    results, ids = make_class()
    page = parse(render_summary(results))
    rows = page.by_id("grid").find_all("tr", data_status="graded")
    assert [r.attrs["data-submission"] for r in rows] == ["alice", "bob", "carol"]
    alice = page.by_id("grid").find_all("tr", data_submission="alice")[0]
    assert alice.find_all("td", data_item="files")[0].attrs["data-score"] == "35"
    assert page.by_id("grid").find_all("tr", data_submission="bob")[0].find_all(
        "td", data_item="files")[0].attrs["data-score"] == "0"
    # what to teach again: the lab/get-* cases bob failed
    failed = [r.attrs["data-case"] for r in page.by_id("most-failed").find_all("tr") if "data-case" in r.attrs]
    assert failed and all(c.startswith("lab/get-") for c in failed)
    assert page.by_id("flaky").find_all("tr", data_case=ids[0])
    assert "dave<b>" in page.by_id("not-graded").text() and HOSTILE in page.by_id("not-graded").text()
    assert not page.find_all("img")
    scripts = page.find_all("script")
    assert len(scripts) == 2
    data = json.loads(scripts[0].text())
    assert set(data) == {"alice", "bob", "carol", "dave<b>"} and HOSTILE in data["dave<b>"]


def test_histogram_and_most_failed_are_pure():
    assert histogram([0, 49.9, 50, 100, 104], 100, bins=2) == [(0, 50.0, 2), (50.0, 100.0, 3)]
    results, _ = make_class()
    top = most_failed(results, limit=1)
    assert top[0][2:4] == (1, 3)  # failed by 1 of the 3 graded submissions


needs_chromium = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                                    reason=f"{CHROMIUM} is missing (apt-get install chromium)")


def run_chromium(tmp_path, *args):
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", "--disable-extensions", "--host-resolver-rules=MAP * ~NOTFOUND",
           f"--user-data-dir={tmp_path / 'profile'}", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=BROWSER_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"chromium did not finish within {BROWSER_TIMEOUT} s")
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode("utf-8")


@needs_chromium
@pytest.mark.slow
def test_browser_opens_a_submissions_feedback(tmp_path):
    results, _ = make_class()
    page = tmp_path / "summary.html"
    page.write_text(render_summary(results), encoding="utf-8")
    root = parse(run_chromium(tmp_path, "--dump-dom", page.as_uri() + "#open=dave%3Cb%3E"))
    assert root.find_all("html")[0].attrs.get("data-ready") == "1", "the page script did not run"
    panel = root.by_id("panel")
    assert "hidden" not in panel.attrs and panel.attrs["data-submission"] == "dave<b>"
    assert "Your submission was not graded" in root.by_id("panel-text").text()
    assert HOSTILE in root.by_id("panel-text").text() and not root.find_all("img")
    assert root.by_id("panel-link").attrs["href"] == "dave%3Cb%3E/feedback.md"


@needs_chromium
@pytest.mark.slow
def test_browser_screenshot(tmp_path):
    results, _ = make_class()
    page = tmp_path / "summary.html"
    page.write_text(render_summary(results), encoding="utf-8")
    target = Path(os.environ.get("GRADE_SCREENSHOT") or tmp_path / "summary.png")
    run_chromium(tmp_path, f"--screenshot={target}", "--window-size=1400,1000", "--hide-scrollbars",
                 page.as_uri() + "#open=bob")
    png = target.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
