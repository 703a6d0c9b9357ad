"""The HTML comparison matrix: structure, escaping, and a real headless browser.

The pure tests parse the page with the standard library's HTML parser. The
browser tests load the page from disk (file://) in Debian's chromium, headless
and offline, and read back the DOM after the page's script has run
(``--dump-dom``). The script takes its state from the URL fragment, setting the
filter controls and clicking the named cell the way a person would, so a
fragment such as ``#area=lab&open=nginx:lab/get-text-file`` exercises the area
filter and the click on a failing cell.

To look at the page yourself, have the browser test save a screenshot:

    MATRIX_SCREENSHOT=/tmp/matrix.png python -m pytest tests/test_matrix_html.py
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import re
import signal
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode

import pytest

from conformance.matrix_html import VERDICT_COLOURS, _clean, render_html

# Debian's chromium; MATRIX_CHROMIUM names another Chromium-based browser.
CHROMIUM = Path(os.environ.get("MATRIX_CHROMIUM", "/usr/bin/chromium"))
BROWSER_TIMEOUT = 60  # seconds for one chromium run, then its process group is killed

# Received text that tries every way out of its element: the script element the
# data lives in, a comment, an attribute, and raw control characters.
HOSTILE = (
    "HTTP/1.0 200 OK\\r\\n\n"
    '</script><img src=x onerror=alert(1)><!-- "quoted" \'single\' & &amp; ]]>\n'
    "<SCRIPT>alert(2)</SCRIPT></scrIpt ><style>body{display:none}</style>\n"
    "raw \x00\x1b[31m\x7f \udcff end"
)
HOSTILE_SERVER = "evil \"<b>srv</b>\" & 'co'"


def _result(verdict, **extra):
    base = {"verdict": verdict, "reason": "", "expected": [], "actual": "", "findings": [],
            "sent": "", "received": "", "known": False}
    return {**base, **extra}


def _server(name, language, version, status="ran", reason="", **extra):
    counts = dict.fromkeys(("pass", "warn", "info", "fail", "error", "skip", "total"), 0)
    base = {"name": name, "language": language, "version": version, "status": status,
            "reason": reason, "duration": 1.25, "counts": counts,
            "new_failures": [], "fixed": [], "known_failures": []}
    return {**base, **extra}


def make_matrix():
    """A small matrix with every verdict, every badge, a skipped and a broken server."""
    cases = [
        {"id": "lab/get-text-file", "title": "serves a text file byte for byte", "area": "lab",
         "level": "MUST", "requirements": ["R-8.1-a"]},
        {"id": "lab/missing-file-404", "title": "answers 404 for a missing file", "area": "lab",
         "level": "MUST", "requirements": ["R-9.4-a"]},
        {"id": "rfc1945/head-no-body", "title": "answers HEAD without a body", "area": "rfc1945",
         "level": "SHOULD", "requirements": ["R-8.2-a"]},
        {"id": "rfc1945/date-header", "title": "sends a Date header", "area": "rfc1945",
         "level": "MAY", "requirements": ["R-10.6-a"]},
        {"id": "security/hostile-echo", "title": "title </script><img src=x onerror=alert(3)>",
         "area": "security", "level": "MUST", "requirements": ["ROB-<7>"]},
    ]
    get = "GET /hello.txt HTTP/1.0\\r\\n\n\\r\\n"
    ok = "HTTP/1.0 200 OK\\r\\n\nContent-Length: 12\\r\\n\n\\r\\n\nHello world\\n"
    results = {
        "nginx": {
            "lab/get-text-file": _result(
                "fail", reason="body differs at byte 3", known=True,
                expected=["200 with the bytes of hello.txt"], actual="200 with 11 bytes",
                findings=["body differs at byte 3", "Content-Length 12 but 11 bytes followed"],
                sent=get, received="HTTP/1.0 200 OK\\r\\n\nContent-Length: 12\\r\\n\n\\r\\n\nHelo world\\n"),
            "lab/missing-file-404": _result("pass", sent="GET /nope HTTP/1.0\\r\\n\n\\r\\n"),
            "rfc1945/head-no-body": _result("warn", reason="a body followed a HEAD response",
                                            expected=["200 and no body"], actual="200 and 12 bytes"),
            "rfc1945/date-header": _result("info", reason="no Date header"),
            "security/hostile-echo": _result("pass"),
        },
        "reference": {
            "lab/get-text-file": _result("pass", sent=get, received=ok),
            "lab/missing-file-404": _result("error", reason="connection refused",
                                            actual="connect() failed: [Errno 111]"),
            "rfc1945/head-no-body": _result("pass"),
            "rfc1945/date-header": _result("skip", reason="not in the selected profile"),
            # no result for security/hostile-echo: a "missing" cell
        },
        HOSTILE_SERVER: {
            "lab/get-text-file": _result("pass", known=True),  # fixed, though not listed so
            "lab/missing-file-404": _result("pass"),
            "rfc1945/head-no-body": _result("pass"),
            "rfc1945/date-header": _result("pass"),
            "security/hostile-echo": _result(
                "fail", reason="echoed <b>markup</b> & \x1b[2J", expected=["<no echo>"],
                actual="</script>", findings=["<img src=x onerror=alert(4)>"],
                sent="GET /</script> HTTP/1.0\\r\\n\n\\r\\n", received=HOSTILE),
        },
    }
    servers = [
        _server("nginx", "C", "1.22.1", known_failures=["lab/get-text-file"]),
        _server("reference", "Python", "0.1.0", new_failures=["lab/missing-file-404"],
                fixed=["rfc1945/head-no-body"], known_failures=["rfc1945/head-no-body"]),
        _server(HOSTILE_SERVER, "Perl <5>", "1.0 & up", new_failures=["security/hostile-echo"]),
        _server("jwebserver", "Java", "", status="skipped", reason="needs JDK 18 or newer; Debian's is 17"),
        _server("caddy", "Go", "2.6.2", status="error", reason="exited with status 1: <bind: address in use>"),
    ]
    return {
        "format": "http10-conformance-matrix", "version": 1, "suite_version": "0.1.0",
        "generated": "2026-11-26T16:00:00+00:00", "duration": 123.4,
        "servers": servers, "cases": cases, "results": results,
    }


# ---------------------------------------------------------------------------
# A minimal DOM over html.parser, for the page and for chromium's dumped DOM

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children = tag, dict(attrs), parent, []

    def text(self):
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self):
        for c in self.children:
            if isinstance(c, Node):
                yield c
                yield from c.iter()

    def find_all(self, tag=None, **attrs):
        return [n for n in self.iter() if (tag is None or n.tag == tag)
                and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())]

    def by_id(self, id_):
        found = self.find_all(id=id_)
        assert len(found) == 1, f"{len(found)} elements with id {id_!r}"
        return found[0]

    def classes(self):
        return set((self.attrs.get("class") or "").split())


class _Builder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = self.node = Node("#document", {}, None)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.node)
        self.node.children.append(node)
        if tag not in VOID:
            self.node = node

    def handle_startendtag(self, tag, attrs):
        self.node.children.append(Node(tag, attrs, self.node))

    def handle_endtag(self, tag):
        node = self.node
        while node is not None and node.tag != tag:
            node = node.parent
        assert node is not None, f"stray </{tag}>"
        self.node = node.parent

    def handle_data(self, data):
        self.node.children.append(data)


def parse(text):
    builder = _Builder()
    builder.feed(text)
    builder.close()
    return builder.root


def visible(node):
    """Not hidden by its own or an ancestor's ``hidden`` attribute."""
    while node is not None:
        if "hidden" in node.attrs:
            return False
        node = node.parent
    return True


def cleaned(text):
    """What the page shows for input text: control characters made visible."""
    return _clean(text)


# ---------------------------------------------------------------------------
# Pure tests: the page as text


@pytest.fixture(scope="module")
def page():
    return render_html(make_matrix())


@pytest.fixture(scope="module")
def dom(page):
    return parse(page)


def test_one_file_with_no_external_resource(page, dom):
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</html>\n")
    # nothing is fetched: no element that loads, no attribute that points anywhere
    loading = {"link", "img", "iframe", "object", "embed", "base", "audio", "video", "source"}
    assert not [n.tag for n in dom.iter() if n.tag in loading]
    for node in dom.iter():
        assert not {"src", "href", "srcset", "action", "formaction", "poster"} & set(node.attrs), node.tag
    assert not re.search(r"https?:|//[a-z0-9]|url\(|@import", page, re.IGNORECASE)
    scripts = dom.find_all("script")
    assert [(s.attrs.get("type"), s.attrs.get("id")) for s in scripts] == [
        ("application/json", "matrix-data"), (None, None)]
    assert len(dom.find_all("style")) == 1


def test_csp_allows_only_the_page_own_style_and_script(page, dom):
    csp = dom.find_all("meta", http_equiv="Content-Security-Policy")[0].attrs["content"]
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp

    def sha(text):
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    assert f"style-src {sha(dom.find_all('style')[0].text())}" in csp
    assert f"script-src {sha(dom.find_all('script')[1].text())}" in csp


def test_hostile_text_stays_text(page, dom):
    # The two closing tags of the page's own scripts, and no other script tag.
    assert len(re.findall(r"</script", page, re.IGNORECASE)) == 2
    assert len(re.findall(r"<script", page, re.IGNORECASE)) == 2
    assert not re.search(r"<img|<b>|<!--|onerror=alert\(\d\)>", page, re.IGNORECASE)
    allowed = {"html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3", "p",
               "time", "span", "section", "table", "thead", "tbody", "tr", "th", "td", "small",
               "code", "details", "summary", "ul", "li", "form", "label", "select", "option",
               "input", "output", "button", "aside", "dl", "dt", "dd", "pre", "script", "noscript"}
    assert {n.tag for n in dom.iter()} <= allowed
    # the hostile strings come back intact (only control characters made visible)
    data = json.loads(dom.by_id("matrix-data").text())
    hostile = data["results"][HOSTILE_SERVER]["security/hostile-echo"]
    assert hostile["received"] == cleaned(HOSTILE)
    assert "\\x1b[31m" in hostile["received"] and "\\udcff" not in hostile["received"]
    assert data["cases"]["security/hostile-echo"]["title"].startswith("title </script><img")
    row = dom.find_all("tr", data_case="security/hostile-echo")[0]
    assert row.find_all("th")[0].attrs["title"] == "title </script><img src=x onerror=alert(3)>"
    assert dom.find_all("th", data_server=HOSTILE_SERVER)
    assert dom.find_all("tr", data_server=HOSTILE_SERVER)[0].find_all("td")[0].text() == "Perl <5>"


def test_no_raw_control_character_or_surrogate(page):
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]", page)
    page.encode("utf-8")  # would raise on a lone surrogate


def test_every_case_and_server_is_there(dom):
    matrix = make_matrix()
    rows = dom.by_id("matrix").find_all("tbody")[0].find_all("tr")
    # area, then id
    assert [r.attrs["data-case"] for r in rows] == sorted(
        (c["id"] for c in matrix["cases"]), key=lambda i: (i.split("/")[0], i))
    summary = dom.by_id("servers").find_all("tbody")[0].find_all("tr")
    assert [r.attrs["data-server"] for r in summary] == [s["name"] for s in matrix["servers"]]
    columns = dom.by_id("matrix").find_all("thead")[0].find_all("th", scope="col")[2:]
    assert [c.attrs["data-server"] for c in columns] == ["nginx", "reference", HOSTILE_SERVER]
    skipped = dom.find_all("tr", data_server="jwebserver")[0]
    assert skipped.attrs["data-status"] == "skipped"
    assert "needs JDK 18 or newer; Debian's is 17" in skipped.text()
    assert "<bind: address in use>" in dom.find_all("tr", data_server="caddy")[0].text()
    assert dom.by_id("suite-version").text() == "0.1.0"
    assert "2026-11-26T16:00:00+00:00" in dom.by_id("meta").text()
    assert dom.by_id("duration").text() == "123.4 s"


def test_cells_carry_the_verdict_word_a_colour_and_badges(dom):
    def cell(server, case):
        return dom.find_all("td", data_server=server, data_case=case)[0]

    for server, case, verdict in [("nginx", "lab/get-text-file", "fail"),
                                  ("nginx", "rfc1945/head-no-body", "warn"),
                                  ("nginx", "rfc1945/date-header", "info"),
                                  ("reference", "lab/missing-file-404", "error"),
                                  ("reference", "rfc1945/date-header", "skip"),
                                  ("reference", "lab/get-text-file", "pass")]:
        td = cell(server, case)
        assert td.attrs["data-verdict"] == verdict and f"v-{verdict}" in td.classes()
        assert td.text().split()[0] == verdict
        # every non-pass opens a detail; a pass has nothing to open
        assert bool(td.find_all("button")) == (verdict != "pass")
    assert cell("nginx", "lab/get-text-file").attrs["data-badge"] == "known"
    assert cell("reference", "lab/missing-file-404").attrs["data-badge"] == "new"
    assert cell("reference", "rfc1945/head-no-body").attrs["data-badge"] == "fixed"
    assert cell(HOSTILE_SERVER, "security/hostile-echo").attrs["data-badge"] == "new"
    assert cell(HOSTILE_SERVER, "lab/get-text-file").attrs["data-badge"] == "fixed"
    assert "data-badge" not in cell(HOSTILE_SERVER, "lab/missing-file-404").attrs
    missing = cell("reference", "security/hostile-echo")
    assert missing.attrs["data-verdict"] == "missing" and not missing.find_all("button")
    nonpass = {r.attrs["data-case"]: r.attrs["data-nonpass"] for r in dom.find_all("tr")
               if "data-case" in r.attrs}
    assert nonpass == {"lab/get-text-file": "1", "lab/missing-file-404": "1",
                       "rfc1945/head-no-body": "1", "rfc1945/date-header": "1",
                       "security/hostile-echo": "1"}


def test_distinct_colour_per_verdict():
    assert len({bg for bg, _ in VERDICT_COLOURS.values()}) == len(VERDICT_COLOURS)


def test_filters_offer_the_areas_and_levels(dom):
    areas = [o.attrs["value"] for o in dom.by_id("filter-area").find_all("option")]
    assert areas == ["", "lab", "rfc1945", "security"]
    levels = [o.attrs["value"] for o in dom.by_id("filter-level").find_all("option")]
    assert levels == ["", "MUST", "SHOULD", "MAY"]
    assert dom.by_id("filter-nonpass").attrs["type"] == "checkbox"
    assert "hidden" in dom.by_id("detail").attrs


def test_only_non_passes_travel_as_details(dom):
    data = json.loads(dom.by_id("matrix-data").text())
    assert set(data["results"]) == {"nginx", "reference", HOSTILE_SERVER}
    assert set(data["results"]["nginx"]) == {
        "lab/get-text-file", "rfc1945/head-no-body", "rfc1945/date-header"}


def test_same_page_for_any_case_order_and_deterministic():
    matrix = make_matrix()
    shuffled = copy.deepcopy(matrix)
    shuffled["cases"].reverse()
    assert render_html(shuffled) == render_html(matrix)


def test_all_rows_pass_and_no_server_ran():
    matrix = make_matrix()
    for server in matrix["servers"]:
        server["status"], server["reason"] = "skipped", "not installed"
    root = parse(render_html(matrix))
    assert not root.by_id("matrix").find_all("th", data_server="nginx")
    assert {r.attrs["data-nonpass"] for r in root.by_id("matrix").find_all("tr")
            if "data-case" in r.attrs} == {"0"}


@pytest.mark.parametrize("change", [{"format": "http10-conformance-report"}, {"version": 2}])
def test_rejects_another_document(change):
    with pytest.raises(ValueError):
        render_html({**make_matrix(), **change})


# ---------------------------------------------------------------------------
# In a real browser: Debian's chromium, headless, offline, the page from disk

needs_chromium = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"{CHROMIUM} is missing (apt-get install chromium)",
)


def run_chromium(tmp_path, *args):
    """Run chromium headless with no network; its stdout. Killed after BROWSER_TIMEOUT."""
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-dev-shm-usage", "--disable-extensions",
        # no name resolves, so nothing could leave the machine even by mistake
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={tmp_path / 'profile'}", *args,
    ]
    # A session of its own, so that a timeout kills chromium's helper processes too.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=BROWSER_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"chromium did not finish within {BROWSER_TIMEOUT} s")
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode("utf-8")


@pytest.fixture(scope="module")
def page_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("matrix") / "matrix.html"
    path.write_text(render_html(make_matrix()), encoding="utf-8")
    return path


def shown_cases(root):
    return [r.attrs["data-case"] for r in root.by_id("matrix").find_all("tr")
            if "data-case" in r.attrs and visible(r)]


@needs_chromium
@pytest.mark.slow
def test_browser_area_filter_and_click_on_a_failing_cell(page_file, tmp_path):
    url = page_file.as_uri() + "#area=lab&open=nginx:lab/get-text-file"
    root = parse(run_chromium(tmp_path, "--dump-dom", url))
    assert root.find_all("html")[0].attrs.get("data-ready") == "1", "the page script did not run"

    # the area filter: only the lab rows are left
    assert shown_cases(root) == ["lab/get-text-file", "lab/missing-file-404"]
    assert root.by_id("shown-count").text() == "2 of 5 cases shown"

    # the click: the panel shows that cell's case, expectations and bytes
    detail = root.by_id("detail")
    assert visible(detail)
    assert (detail.attrs["data-server"], detail.attrs["data-case"]) == ("nginx", "lab/get-text-file")
    assert root.by_id("detail-verdict").text() == "fail"
    assert root.by_id("detail-badge").text() == "known"
    assert root.by_id("detail-title").text() == "serves a text file byte for byte"
    assert root.by_id("detail-requirements").text() == "R-8.1-a (MUST)"
    assert root.by_id("detail-reason").text() == "body differs at byte 3"
    assert [li.text() for li in root.by_id("detail-expected").find_all("li")] == [
        "200 with the bytes of hello.txt"]
    assert root.by_id("detail-actual").text() == "200 with 11 bytes"
    assert [li.text() for li in root.by_id("detail-findings").find_all("li")] == [
        "body differs at byte 3", "Content-Length 12 but 11 bytes followed"]
    matrix = make_matrix()
    result = matrix["results"]["nginx"]["lab/get-text-file"]
    assert root.by_id("detail-sent").text() == result["sent"]
    assert root.by_id("detail-received").text() == result["received"]
    active = root.find_all("td", data_server="nginx", data_case="lab/get-text-file")[0]
    assert "active" in active.classes()


@needs_chromium
@pytest.mark.slow
def test_browser_level_and_non_pass_filters_and_hostile_bytes(page_file, tmp_path):
    # a server name with quotes, markup and "&" survives the round trip through the URL
    fragment = urlencode({"level": "MUST", "nonpass": "1",
                          "open": f"{HOSTILE_SERVER}:security/hostile-echo"})
    root = parse(run_chromium(tmp_path, "--dump-dom", page_file.as_uri() + "#" + fragment))
    assert root.find_all("html")[0].attrs.get("data-ready") == "1"
    assert shown_cases(root) == ["lab/get-text-file", "lab/missing-file-404",
                                 "security/hostile-echo"]
    # what the received bytes tried to inject is text in the panel, not elements
    assert not root.find_all("img") and not root.find_all("b")
    assert len(root.find_all("script")) == 2
    assert root.by_id("detail").attrs["data-server"] == HOSTILE_SERVER
    assert root.by_id("detail-received").text() == cleaned(HOSTILE)
    assert root.by_id("detail-title").text() == "title </script><img src=x onerror=alert(3)>"
    assert root.by_id("detail-reason").text() == "echoed <b>markup</b> & \\x1b[2J"


@needs_chromium
@pytest.mark.slow
def test_browser_screenshot(page_file, tmp_path):
    """Renders at all (and, with MATRIX_SCREENSHOT=path, keeps the picture to look at)."""
    target = Path(os.environ.get("MATRIX_SCREENSHOT") or tmp_path / "matrix.png")
    url = page_file.as_uri() + "#open=nginx:lab/get-text-file"
    run_chromium(tmp_path, f"--screenshot={target}", "--window-size=1400,900",
                 "--hide-scrollbars", url)
    png = target.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
