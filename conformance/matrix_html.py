"""The comparison matrix (cases x servers) as one standalone HTML page.

``render_html`` only consumes the matrix document that ``conformance.matrix``
builds; it runs nothing. The page is a single file with its CSS and JavaScript
inline and no reference to anything outside it, so it can be opened from disk
with no network (docs/matrix.html is such a file).

What the page holds:

- a header (date, suite version, duration), the servers with their counts and
  their new, fixed and known failures, and a legend;
- the matrix, rendered here as static HTML so it reads without JavaScript: one
  row per case, one column per server that ran, each cell coloured per verdict
  and carrying the verdict word (colour is never the only signal);
- filters (area, level, only rows with a non-pass) and a detail panel opened by
  clicking a non-pass cell, both done by the inline script.

Escaping: every string of the input is untrusted (received bytes can hold
``</script>``). Static HTML goes through ``html.escape`` after control characters
are made visible (as report.py does for text formats). The details travel as JSON
in ``<script type="application/json">`` with ``<``, ``>`` and ``&`` written as
``\\u003c`` etc., and the script builds the detail panel with ``textContent``
only. A Content-Security-Policy allows only this page's own style and script (by
hash) and no network at all, so even a mistake here could not load anything.

The page state lives in the URL fragment, e.g.
``matrix.html#area=lab&level=MUST&nonpass=1&open=nginx:lab/get-text-file``: the
script reads it on load (setting the filter controls and clicking the named
cell, exactly as a person would) and writes it back when the filters change, so
a view can be shared as a link. The browser test drives the page this way.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from typing import Any

from .model import LEVELS
from .report import COUNT_ORDER
from .report import _safe  # the one rule for control characters, shared with report.py

__all__ = ["MATRIX_FORMAT", "MATRIX_VERSION", "VERDICT_COLOURS", "render_html"]

# The input document this renderer understands (written by conformance.matrix).
MATRIX_FORMAT = "http10-conformance-matrix"
MATRIX_VERSION = 1

# Verdict -> (background, text colour) of its cells. The pairs keep a contrast
# ratio above 4.5:1, and the verdict word is always written in the cell too.
# "missing" is a server that ran but has no result for the case.
VERDICT_COLOURS = {
    "pass": ("#d4edda", "#14532d"),
    "warn": ("#fff0b3", "#6b4500"),
    "info": ("#d6eaf8", "#0b4870"),
    "fail": ("#f5b7b1", "#7b0d0d"),
    "error": ("#e2c6f0", "#4a1470"),
    "skip": ("#e5e5e5", "#444444"),
    "missing": ("#ffffff", "#666666"),
}

# Badges a cell can carry, with the words the legend explains them by.
BADGES = {
    "known": "a failure listed in the server's known-failures file",
    "new": "a failure that is not in the known-failures file",
    "fixed": "listed as a known failure, but no longer fails",
}


# ---------------------------------------------------------------------------
# Escaping


def _clean(text: Any) -> str:
    """Control characters and lone surrogates made visible; line breaks kept."""
    return "\n".join(_safe(line) for line in str(text).split("\n"))


def _e(text: Any) -> str:
    """Text safe inside an element or a quoted attribute."""
    return html.escape(_clean(text), quote=True)


def _clean_data(value: Any) -> Any:
    """``_clean`` every string (keys included) of a JSON-ready value."""
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, dict):
        return {_clean(k): _clean_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_data(v) for v in value]
    return value


def _json_for_script(value: Any) -> str:
    """JSON that cannot end the ``<script>`` element holding it, nor open a comment."""
    text = json.dumps(value, ensure_ascii=True, sort_keys=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _csp_hash(source: str) -> str:
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


# ---------------------------------------------------------------------------
# Reading the input


def _check(matrix: dict[str, Any]) -> None:
    if matrix.get("format") != MATRIX_FORMAT:
        raise ValueError(f"not a matrix document: format {matrix.get('format')!r}")
    if matrix.get("version") != MATRIX_VERSION:
        raise ValueError(
            f"matrix version {matrix.get('version')!r} is not supported (this renderer reads "
            f"version {MATRIX_VERSION})"
        )
    for key in ("servers", "cases", "results"):
        if key not in matrix:
            raise ValueError(f"matrix document without {key!r}")


def _ran(matrix: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in matrix["servers"] if s.get("status") == "ran"]


def _cases(matrix: dict[str, Any]) -> list[dict[str, Any]]:
    # Area, then id: the order of every other report (report.py).
    return sorted(matrix["cases"], key=lambda c: (c.get("area", ""), c["id"]))


def _badge(server: dict[str, Any], case_id: str, result: dict[str, Any]) -> str:
    """"new", "fixed", "known" or "": how the cell stands against the known failures."""
    passed = result.get("verdict") == "pass"
    if case_id in server.get("new_failures", ()):
        return "new"
    if case_id in server.get("fixed", ()) or (passed and result.get("known")):
        return "fixed"  # a known failure that passes now
    if result.get("known"):
        return "known"
    return ""


def _seconds(value: Any) -> str:
    try:
        return f"{float(value):.1f} s"
    except (TypeError, ValueError):
        return _e(value)


# ---------------------------------------------------------------------------
# Static HTML, one function per part of the page


def _header(matrix: dict[str, Any]) -> list[str]:
    ran = _ran(matrix)
    generated = _e(matrix.get("generated", ""))
    return [
        "<header>",
        "<h1>HTTP/1.0 conformance matrix</h1>",
        '<p class="meta" id="meta">',
        f'Generated <time datetime="{generated}">{generated}</time>',
        f' &middot; suite <span id="suite-version">{_e(matrix.get("suite_version", ""))}</span>',
        f' &middot; {len(matrix["cases"])} cases &times; {len(ran)} servers that ran'
        f' (of {len(matrix["servers"])})',
        f' &middot; took <span id="duration">{_seconds(matrix.get("duration", 0))}</span>',
        "</p>",
        "</header>",
    ]


def _id_list(ids: list[str], kind: str) -> str:
    """A count that unfolds into the list of case ids."""
    if not ids:
        return f'<td class="ids {kind}">0</td>'
    items = "".join(f"<li><code>{_e(i)}</code></li>" for i in ids)
    return (f'<td class="ids {kind}"><details><summary>{len(ids)}</summary>'
            f"<ul>{items}</ul></details></td>")


def _summary(matrix: dict[str, Any]) -> list[str]:
    head = "".join(f'<th scope="col" class="v-{v}">{v}</th>' for v in COUNT_ORDER)
    out = [
        '<section id="summary-section">',
        "<h2>Servers</h2>",
        '<table id="servers">',
        '<thead><tr><th scope="col">server</th><th scope="col">language</th>'
        f'<th scope="col">version</th><th scope="col">status</th>{head}'
        '<th scope="col">total</th><th scope="col">time</th>'
        '<th scope="col">new failures</th><th scope="col">fixed</th>'
        '<th scope="col">known failures</th></tr></thead>',
        "<tbody>",
    ]
    for s in matrix["servers"]:
        status = s.get("status", "")
        reason = s.get("reason", "")
        counts = s.get("counts", {})
        status_text = _e(status) + (f": {_e(reason)}" if reason else "")
        cells = "".join(f'<td class="num">{_e(counts.get(v, 0))}</td>' for v in COUNT_ORDER)
        ran = status == "ran"
        out.append(
            f'<tr data-server="{_e(s["name"])}" data-status="{_e(status)}">'
            f'<th scope="row">{_e(s["name"])}</th><td>{_e(s.get("language", ""))}</td>'
            f'<td>{_e(s.get("version", ""))}</td>'
            f'<td class="status status-{_e(status)}">{status_text}</td>'
            + (cells + f'<td class="num">{_e(counts.get("total", 0))}</td>'
               f'<td class="num">{_seconds(s.get("duration", 0))}</td>'
               + _id_list(s.get("new_failures", []), "new")
               + _id_list(s.get("fixed", []), "fixed")
               + _id_list(s.get("known_failures", []), "known")
               if ran else f'<td colspan="{len(COUNT_ORDER) + 5}" class="not-run">not run</td>')
            + "</tr>"
        )
    out += ["</tbody>", "</table>", "</section>"]
    return out


def _legend() -> list[str]:
    items = [f'<li><span class="chip v-{v}">{v}</span></li>' for v in (*COUNT_ORDER, "missing")]
    items += [f'<li><span class="badge badge-{b}">{b}</span> {_e(why)}</li>'
              for b, why in BADGES.items()]
    return ['<ul id="legend" class="legend">', *items, "</ul>"]


def _filters(matrix: dict[str, Any]) -> list[str]:
    areas = sorted({c.get("area", "") for c in matrix["cases"]})
    levels = list(LEVELS) + sorted({c.get("level", "") for c in matrix["cases"]} - set(LEVELS))
    area_options = "".join(f'<option value="{_e(a)}">{_e(a)}</option>' for a in areas)
    level_options = "".join(f'<option value="{_e(lv)}">{_e(lv)}</option>' for lv in levels)
    return [
        '<form id="filters" class="filters" autocomplete="off">',
        '<label>area <select id="filter-area" name="area">'
        f'<option value="">all areas</option>{area_options}</select></label>',
        '<label>level <select id="filter-level" name="level">'
        f'<option value="">all levels</option>{level_options}</select></label>',
        '<label><input type="checkbox" id="filter-nonpass" name="nonpass" value="1"> '
        "only rows with a non-pass</label>",
        f'<output id="shown-count">{len(matrix["cases"])} of {len(matrix["cases"])} cases shown'
        "</output>",
        "</form>",
    ]


def _cell(server: dict[str, Any], case_id: str, result: dict[str, Any] | None) -> str:
    verdict = result.get("verdict", "missing") if result else "missing"
    if verdict not in VERDICT_COLOURS:
        verdict = "missing"  # an unknown word must not become a class name
    attrs = (f'class="cell v-{verdict}" data-server="{_e(server["name"])}" '
             f'data-case="{_e(case_id)}" data-verdict="{verdict}"')
    badge = _badge(server, case_id, result or {})
    badge_html = f' <span class="badge badge-{badge}">{badge}</span>' if badge else ""
    if badge:
        attrs += f' data-badge="{badge}"'
    if verdict == "pass":
        return f"<td {attrs}>pass{badge_html}</td>"
    if verdict == "missing":
        return f'<td {attrs} title="no result for this case">&mdash;</td>'
    return (f'<td {attrs}><button type="button" class="open" aria-controls="detail">'
            f"{verdict}{badge_html}</button></td>")


def _matrix(matrix: dict[str, Any]) -> list[str]:
    ran = _ran(matrix)
    head = "".join(
        f'<th scope="col" data-server="{_e(s["name"])}" '
        f'title="{_e(s.get("language", ""))} {_e(s.get("version", ""))}">'
        f'{_e(s["name"])}<small>{_e(s.get("version", ""))}</small></th>'
        for s in ran
    )
    out = [
        '<table id="matrix">',
        f'<thead><tr><th scope="col" class="case">case</th><th scope="col">level</th>{head}'
        "</tr></thead>",
        "<tbody>",
    ]
    for case in _cases(matrix):
        cid = case["id"]
        results = [matrix["results"].get(s["name"], {}).get(cid) for s in ran]
        nonpass = any(r is None or r.get("verdict") != "pass" for r in results)
        cells = "".join(_cell(s, cid, r) for s, r in zip(ran, results))
        out.append(
            f'<tr data-case="{_e(cid)}" data-area="{_e(case.get("area", ""))}" '
            f'data-level="{_e(case.get("level", ""))}" data-nonpass="{int(nonpass)}">'
            f'<th scope="row" class="case" title="{_e(case.get("title", ""))}">'
            f"<code>{_e(cid)}</code></th>"
            f'<td class="level level-{_e(case.get("level", ""))}">{_e(case.get("level", ""))}</td>'
            f"{cells}</tr>"
        )
    out += ["</tbody>", "</table>"]
    return out


# The detail panel: fixed elements that the script fills with textContent.
_DETAIL = """\
<aside id="detail" role="dialog" aria-labelledby="detail-heading" hidden>
<button type="button" id="detail-close" aria-label="close">&times;</button>
<h2 id="detail-heading"><span id="detail-verdict" class="chip"></span> <code id="detail-case"></code>
on <span id="detail-server"></span> <span id="detail-badge" class="badge"></span></h2>
<p id="detail-title"></p>
<dl>
<dt>requirements</dt><dd id="detail-requirements"></dd>
<dt>reason</dt><dd id="detail-reason"></dd>
<dt>expected</dt><dd><ul id="detail-expected"></ul></dd>
<dt>actual</dt><dd id="detail-actual"></dd>
<dt>findings</dt><dd><ul id="detail-findings"></ul></dd>
</dl>
<h3>request sent</h3>
<pre id="detail-sent"></pre>
<h3>response received</h3>
<pre id="detail-received"></pre>
</aside>"""


def _data(matrix: dict[str, Any]) -> dict[str, Any]:
    """What the script needs: the cases, and the results a click can open (non-passes)."""
    ran = {s["name"] for s in _ran(matrix)}
    keep = ("verdict", "reason", "expected", "actual", "findings", "sent", "received", "known")
    return _clean_data({
        "cases": {c["id"]: {"title": c.get("title", ""), "level": c.get("level", ""),
                            "requirements": list(c.get("requirements", []))}
                  for c in matrix["cases"]},
        "results": {name: {cid: {k: r[k] for k in keep if k in r}
                           for cid, r in by_case.items() if r.get("verdict") != "pass"}
                    for name, by_case in matrix["results"].items() if name in ran},
    })


# ---------------------------------------------------------------------------
# CSS and JavaScript (fixed text; nothing from the input is spliced in)


def _css() -> str:
    verdicts = "\n".join(
        f".v-{v} {{ background: {bg}; color: {fg}; }}" for v, (bg, fg) in VERDICT_COLOURS.items()
    )
    return _CSS + verdicts + "\n"


_CSS = """
:root { color-scheme: light; font: 14px/1.4 system-ui, sans-serif; color: #1a1a1a; }
body { margin: 0 1.5rem 2rem; }
h1 { font-size: 1.5rem; margin: 1rem 0 0.2rem; }
h2 { font-size: 1.15rem; margin: 1.2rem 0 0.4rem; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 0.92em; }
.meta { color: #444; margin: 0; }
table { border-collapse: collapse; }
th, td { border: 1px solid #c8c8c8; padding: 0.15rem 0.45rem; text-align: left; vertical-align: top; }
thead th { background: #f1f1f1; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
#servers td.status-skipped, #servers td.status-error { color: #7b0d0d; max-width: 30rem; }
#servers td.not-run { color: #666; font-style: italic; }
#servers details ul { margin: 0.2rem 0; padding-left: 1.1rem; }
#servers td.new summary { color: #7b0d0d; font-weight: bold; }
#servers td.fixed summary { color: #14532d; font-weight: bold; }
.legend { list-style: none; padding: 0; margin: 0.6rem 0; display: flex; flex-wrap: wrap; gap: 0.3rem 0.9rem; }
.chip { padding: 0 0.4rem; border-radius: 3px; font-weight: 600; }
.badge { font-size: 0.72em; font-weight: 700; text-transform: uppercase; padding: 0 0.3rem;
  border-radius: 8px; border: 1px solid currentColor; vertical-align: 0.1em; }
.badge:empty { display: none; }
.badge-known { color: #555; background: #fff; }
.badge-new { color: #fff; background: #b00020; border-color: #b00020; }
.badge-fixed { color: #fff; background: #1b6e2f; border-color: #1b6e2f; }
.filters { padding: 0.5rem 0; display: flex; flex-wrap: wrap; gap: 0.4rem 1.2rem; align-items: center; border-bottom: 1px solid #ddd; }
#shown-count { color: #444; }
#matrix th.case { position: sticky; left: 0; z-index: 1; background: #fafafa; white-space: nowrap; }
#matrix thead th { position: sticky; top: 0; z-index: 2; }
#matrix thead th.case { z-index: 3; }
#matrix thead small { display: block; font-weight: normal; color: #555; font-size: 0.8em; }
#matrix td.cell { text-align: center; white-space: nowrap; padding: 0; }
#matrix td.cell.v-pass, #matrix td.cell.v-missing { padding: 0.15rem 0.45rem; }
#matrix td.v-fail, #matrix td.v-error { font-weight: 700; }
#matrix td.cell button { all: unset; box-sizing: border-box; display: block; width: 100%;
  padding: 0.15rem 0.45rem; cursor: pointer; text-decoration: underline dotted; }
#matrix td.cell button:focus-visible { outline: 2px solid #000; outline-offset: -3px; }
#matrix td.cell[data-badge="known"] { opacity: 0.8; }
#matrix td.cell.active { outline: 3px solid #000; outline-offset: -3px; }
#matrix tr[hidden] { display: none; }
#detail { position: fixed; top: 0; right: 0; bottom: 0; width: min(44rem, 92vw); overflow: auto;
  background: #fff; border-left: 2px solid #888; box-shadow: -4px 0 12px rgba(0,0,0,0.15);
  padding: 0.6rem 1.2rem 1.5rem; z-index: 10; box-sizing: border-box; }
#detail[hidden] { display: none; }
#detail h2 { margin-top: 0.4rem; padding-right: 2rem; }
#detail-close { position: absolute; top: 0.5rem; right: 0.7rem; font-size: 1.4rem; line-height: 1;
  background: none; border: 1px solid #aaa; border-radius: 4px; cursor: pointer; }
#detail dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.3rem 0.8rem; }
#detail dt { font-weight: 600; color: #444; }
#detail dd { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; }
#detail dd ul { margin: 0; padding-left: 1.1rem; }
#detail h3 { font-size: 1rem; margin: 0.9rem 0 0.3rem; }
#detail pre { background: #f6f6f6; border: 1px solid #ddd; padding: 0.5rem; margin: 0;
  white-space: pre-wrap; overflow-wrap: anywhere; }
"""

_JS = r"""
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("matrix-data").textContent);
  const rows = Array.from(document.querySelectorAll("#matrix tbody tr"));
  const area = document.getElementById("filter-area");
  const level = document.getElementById("filter-level");
  const nonpass = document.getElementById("filter-nonpass");
  const shown = document.getElementById("shown-count");
  const detail = document.getElementById("detail");
  const $ = (id) => document.getElementById(id);
  const cells = new Map();  // server + "\n" + case id -> the cell's button
  let opened = null;        // {server, caseId, td} of the open detail

  // --- filters -------------------------------------------------------------
  function applyFilters() {
    let n = 0;
    for (const tr of rows) {
      const show = (!area.value || tr.dataset.area === area.value)
        && (!level.value || tr.dataset.level === level.value)
        && (!nonpass.checked || tr.dataset.nonpass === "1");
      tr.hidden = !show;
      if (show) n += 1;
    }
    shown.textContent = n + " of " + rows.length + " cases shown";
  }

  // --- detail panel: textContent only, never markup from the data ----------
  function fillList(ul, items) {
    ul.replaceChildren();
    for (const item of items || []) {
      const li = document.createElement("li");
      li.textContent = item;
      ul.appendChild(li);
    }
    if (!ul.children.length) {
      const li = document.createElement("li");
      li.textContent = "(none)";
      li.className = "none";
      ul.appendChild(li);
    }
  }

  function openDetail(server, caseId, td) {
    const c = data.cases[caseId] || {title: "", level: "", requirements: []};
    const r = (data.results[server] || {})[caseId] || {verdict: "missing"};
    $("detail-verdict").textContent = r.verdict;
    $("detail-verdict").className = "chip v-" + r.verdict;
    $("detail-case").textContent = caseId;
    $("detail-server").textContent = server;
    $("detail-badge").textContent = td.dataset.badge || "";
    $("detail-badge").className = "badge" + (td.dataset.badge ? " badge-" + td.dataset.badge : "");
    $("detail-title").textContent = c.title;
    $("detail-requirements").textContent = (c.requirements || []).join(", ") + " (" + c.level + ")";
    $("detail-reason").textContent = r.reason || "(none)";
    fillList($("detail-expected"), r.expected);
    $("detail-actual").textContent = r.actual || "(none)";
    fillList($("detail-findings"), r.findings);
    $("detail-sent").textContent = r.sent || "(nothing)";
    $("detail-received").textContent = r.received || "(nothing)";
    detail.dataset.server = server;
    detail.dataset.case = caseId;
    if (opened) opened.td.classList.remove("active");
    td.classList.add("active");
    opened = {server, caseId, td};
    detail.hidden = false;
    $("detail-close").focus();
    writeHash();
  }

  function closeDetail() {
    if (!opened) return;
    opened.td.classList.remove("active");
    const button = opened.td.querySelector("button");
    opened = null;
    detail.hidden = true;
    delete detail.dataset.server;
    delete detail.dataset.case;
    if (button) button.focus();
    writeHash();
  }

  // --- the URL fragment holds the view: #area=..&level=..&nonpass=1&open=server:case
  function writeHash() {
    const p = new URLSearchParams();
    if (area.value) p.set("area", area.value);
    if (level.value) p.set("level", level.value);
    if (nonpass.checked) p.set("nonpass", "1");
    if (opened) p.set("open", opened.server + ":" + opened.caseId);
    const text = p.toString();
    try {
      history.replaceState(null, "", text ? "#" + text : location.pathname + location.search);
    } catch (e) { /* some browsers refuse for file:// pages; the view still works */ }
  }

  function setSelect(select, value) {
    const known = Array.from(select.options).some((o) => o.value === value);
    select.value = known ? value : "";
    select.dispatchEvent(new Event("change", {bubbles: true}));
  }

  function findCell(spec) {
    // Either name may hold ":", so try each split until one names a cell.
    for (let i = spec.indexOf(":"); i >= 0; i = spec.indexOf(":", i + 1)) {
      const button = cells.get(spec.slice(0, i) + "\n" + spec.slice(i + 1));
      if (button) return button;
    }
    return null;
  }

  function applyHash() {
    const p = new URLSearchParams(location.hash.replace(/^#/, ""));
    setSelect(area, p.get("area") || "");
    setSelect(level, p.get("level") || "");
    nonpass.checked = p.get("nonpass") === "1";
    nonpass.dispatchEvent(new Event("change", {bubbles: true}));
    const button = p.get("open") ? findCell(p.get("open")) : null;
    if (button) button.click();  // the same path as a person's click
    else closeDetail();
  }

  // --- wiring ----------------------------------------------------------------
  for (const button of document.querySelectorAll("#matrix td.cell button.open")) {
    const td = button.parentElement;
    cells.set(td.dataset.server + "\n" + td.dataset.case, button);
    button.addEventListener("click", () => openDetail(td.dataset.server, td.dataset.case, td));
  }
  $("filters").addEventListener("change", () => { applyFilters(); writeHash(); });
  $("filters").addEventListener("submit", (event) => event.preventDefault());
  $("detail-close").addEventListener("click", closeDetail);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeDetail();
  });
  window.addEventListener("hashchange", applyHash);
  applyHash();
  document.documentElement.dataset.ready = "1";  // for tests: the script ran to the end
})();
"""


# ---------------------------------------------------------------------------
# The page


def render_html(matrix: dict[str, Any]) -> str:
    """Render the comparison matrix as one self-contained HTML page.

    Args:
        matrix: the JSON-ready matrix document from ``conformance.matrix``
            (``format`` "http10-conformance-matrix", ``version`` 1): ``servers``,
            ``cases``, and ``results[server][case id]``.

    Returns:
        The page, ending in a newline: inline CSS and JavaScript, no external
        resource, every input string escaped. Cases are ordered by area, then id;
        servers keep their order; only servers with status "ran" get a column.

    Raises:
        ValueError: the document is not a matrix of a version this renderer reads.
        KeyError: a server or case lacks its ``name`` or ``id``.
    """
    _check(matrix)
    css = _css()
    data = _json_for_script(_data(matrix))
    csp = (f"default-src 'none'; style-src {_csp_hash(css)}; script-src {_csp_hash(_JS)}; "
           "img-src 'none'; form-action 'none'; base-uri 'none'")
    page = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>HTTP/1.0 conformance matrix, {_e(matrix.get('generated', ''))}</title>",
        f"<style>{css}</style>",
        "</head>",
        "<body>",
        *_header(matrix),
        *_summary(matrix),
        "<section id=\"matrix-section\">",
        "<h2>Cases &times; servers</h2>",
        "<p>Click a cell that did not pass for the case, what was expected, what happened, "
        "and the request and response bytes. The filters and the open cell are kept in "
        "the address (<code>#area=&hellip;&amp;level=&hellip;&amp;nonpass=1&amp;open="
        "server:case</code>).</p>",
        '<noscript><p>The filters and the details need JavaScript; the matrix below reads '
        "without it.</p></noscript>",
        *_legend(),
        *_filters(matrix),
        *_matrix(matrix),
        "</section>",
        _DETAIL,
        f'<script type="application/json" id="matrix-data">{data}</script>',
        f"<script>{_JS}</script>",
        "</body>",
        "</html>",
    ]
    return "\n".join(page) + "\n"
