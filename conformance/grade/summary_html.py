"""summary.html: the class page, one standalone file that works offline. Pure.

What it shows, top to bottom: the class x item grid (each cell the points, shaded
by the share of the item's points), the distribution of totals (an inline SVG
histogram), the cases that fail most often (what to teach again), flaky cases, the
submissions that were not graded and why. Each submission's name opens its
feedback in a panel on the page (``#open=ID`` does the same, so the page can be
linked to one student) and links to ``ID/feedback.md`` beside the page.

Every text is escaped; the feedback travels in a JSON script element with ``<``
written as ``\\u003c`` so no submission's output can close it.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from typing import Iterable, Mapping
from urllib.parse import quote

from .feedback import feedback_markdown

__all__ = ["render_summary", "histogram", "most_failed"]

BINS = 10           # bars in the histogram of totals
MOST_FAILED = 25    # rows in "cases that fail most often"

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td.name,th.name{text-align:left}
td.status{text-align:left;color:#555;font-size:.9em}
a{color:#0645ad}.muted{color:#777}
#panel{position:fixed;top:0;right:0;width:46%;height:100%;overflow:auto;background:#fff;
border-left:2px solid #888;padding:1em;box-shadow:-4px 0 12px #0003}
#panel pre{white-space:pre-wrap;font:12px/1.35 ui-monospace,monospace}
#panel button{float:right}
"""

SCRIPT = """
(function(){
  var data = JSON.parse(document.getElementById('feedback-data').textContent);
  var panel = document.getElementById('panel');
  function open(id){
    if(!(id in data)){ panel.hidden = true; return; }
    panel.hidden = false;
    panel.setAttribute('data-submission', id);
    document.getElementById('panel-title').textContent = id;
    document.getElementById('panel-link').setAttribute('href', encodeURIComponent(id) + '/feedback.md');
    document.getElementById('panel-text').textContent = data[id];
  }
  function fromHash(){
    var params = new URLSearchParams(location.hash.slice(1));
    if(params.has('open')) open(params.get('open')); else panel.hidden = true;
  }
  document.querySelectorAll('a[data-open]').forEach(function(a){
    a.addEventListener('click', function(ev){ ev.preventDefault(); open(a.getAttribute('data-open'));
      history.replaceState(null, '', '#open=' + encodeURIComponent(a.getAttribute('data-open'))); });
  });
  document.getElementById('panel-close').addEventListener('click', function(){ panel.hidden = true; });
  window.addEventListener('hashchange', fromHash);
  fromHash();
  document.documentElement.setAttribute('data-ready', '1');
})();
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _shade(fraction: float) -> str:
    # red (0) to green (1), light enough for black text
    hue = round(120 * max(0.0, min(1.0, fraction)))
    return f"hsl({hue},70%,82%)"


def histogram(totals: list[float], maximum: float, bins: int = BINS) -> list[tuple[float, float, int]]:
    """[(low, high, count)] over [0, maximum]; the last bin includes the maximum (and extra credit above it)."""
    width = maximum / bins if maximum > 0 else 1.0
    counts = [0] * bins
    for total in totals:
        counts[min(bins - 1, max(0, int(total // width)))] += 1
    return [(round(i * width, 2), round((i + 1) * width, 2), counts[i]) for i in range(bins)]


def most_failed(results: list[Mapping], limit: int = MOST_FAILED) -> list[tuple[str, str, int, int, str]]:
    """[(case id, title, failing submissions, graded submissions, items)], most failed first."""
    graded = [r for r in results if r["status"] == "graded"]
    fails: Counter[str] = Counter()
    titles: dict[str, tuple[str, str]] = {}
    for res in graded:
        for case in res["cases"]:
            titles.setdefault(case["id"], (case["title"], ", ".join(case["items"])))
            if case["verdict"] not in ("pass", "info"):
                fails[case["id"]] += 1
    ranked = sorted(fails.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [(cid, titles[cid][0], n, len(graded), titles[cid][1]) for cid, n in ranked]


def _svg(bars: list[tuple[float, float, int]]) -> str:
    top = max((c for _, _, c in bars), default=0) or 1
    w, h, gap = 46, 120, 6
    parts = [f'<svg id="histogram" xmlns="http://www.w3.org/2000/svg" width="{len(bars) * (w + gap)}" '
             f'height="{h + 40}" role="img" aria-label="distribution of totals">']
    for i, (low, high, count) in enumerate(bars):
        bh = round(h * count / top)
        x = i * (w + gap)
        parts.append(f'<g data-low="{low:g}" data-high="{high:g}" data-count="{count}">'
                     f'<rect x="{x}" y="{h - bh + 14}" width="{w}" height="{bh}" fill="#6a9fd8"/>'
                     f'<text x="{x + w / 2}" y="{h - bh + 10}" font-size="11" text-anchor="middle">{count}</text>'
                     f'<text x="{x + w / 2}" y="{h + 30}" font-size="10" text-anchor="middle">{low:g}-{high:g}</text>'
                     '</g>')
    parts.append("</svg>")
    return "".join(parts)


def _grid(results: list[Mapping], items: list[tuple[str, str, float]]) -> str:
    head = "".join(f'<th data-item="{_e(i)}" title="{_e(t)}">{_e(i)}<br><span class="muted">{m:g}</span></th>'
                   for i, t, m in items)
    rows = []
    for res in results:
        scores = {i["id"]: i for i in res["items"]}
        cells = []
        for item_id, _, maximum in items:
            it = scores.get(item_id)
            if it is None:
                cells.append(f'<td data-item="{_e(item_id)}"></td>')
                continue
            frac = it["score"] / maximum if maximum else (1.0 if it["score"] else 0.0)
            flaky = " *" if it["flaky"] else ""
            cells.append(f'<td data-item="{_e(item_id)}" data-score="{it["score"]:g}" '
                         f'style="background:{_shade(frac)}" title="{it["passed"]}/{it["counted"]} cases">'
                         f'{it["score"]:g}{flaky}</td>')
        sid = _e(res["submission"])
        rows.append(f'<tr data-submission="{sid}" data-status="{_e(res["status"])}">'
                    f'<td class="name"><a href="#open={_e(quote(res["submission"]))}" data-open="{sid}">{sid}</a> '
                    f'<a class="muted" href="{_e(quote(res["submission"]))}/feedback.md">md</a></td>'
                    f'{"".join(cells)}<td data-total="{res["score"]:g}"><b>{res["score"]:g}</b></td>'
                    f'<td class="status">{_e(res["status"])}</td></tr>')
    return (f'<table id="grid"><thead><tr><th class="name">submission</th>{head}<th>total</th>'
            f'<th class="name">status</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def render_summary(results: Iterable[Mapping], title: str | None = None) -> str:
    """The class page for these results (any order; shown by submission id)."""
    results = sorted(results, key=lambda r: r["submission"])
    items: list[tuple[str, str, float]] = []
    for res in results:
        for it in res["items"]:
            if it["id"] not in [i for i, _, _ in items]:
                items.append((it["id"], it["title"], it["max_score"]))
    name = title or (results[0]["rubric"]["name"] if results else "grades")
    maximum = max((r["max_score"] for r in results), default=0.0)
    totals = [r["score"] for r in results]
    graded = [r for r in results if r["status"] == "graded"]
    mean = sum(totals) / len(totals) if totals else 0.0
    failed_rows = "".join(
        f'<tr data-case="{_e(cid)}"><td class="name"><code>{_e(cid)}</code></td><td class="name">{_e(t)}</td>'
        f'<td data-failing="{n}">{n} of {of}</td><td class="name">{_e(its)}</td></tr>'
        for cid, t, n, of, its in most_failed(results))
    flaky = Counter(cid for r in results for it in r["items"] for cid in it["flaky"])
    flaky_rows = "".join(f'<tr data-case="{_e(c)}"><td class="name"><code>{_e(c)}</code></td><td>{n}</td></tr>'
                         for c, n in sorted(flaky.items()))
    not_graded = "".join(f'<li data-submission="{_e(r["submission"])}"><b>{_e(r["submission"])}</b>: '
                         f'{_e(r["status"])}: {_e(r["reason"])}</li>' for r in results if r["status"] != "graded")
    feedback = {r["submission"]: feedback_markdown(r) for r in results}
    data = json.dumps(feedback, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(name)}: class summary</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{STYLE}</style></head><body>
<h1>{_e(name)}</h1>
<p id="overview">{len(results)} submissions, {len(graded)} graded; mean total {mean:.1f} of {maximum:g}.
Click a name for its feedback; * marks an item with a flaky case (passed only on a retry).</p>
<h2>Points per item</h2>
{_grid(results, items)}
<h2>Distribution of totals</h2>
{_svg(histogram(totals, maximum))}
<h2>Cases that fail most often (what to teach again)</h2>
<table id="most-failed"><thead><tr><th class="name">case</th><th class="name">what it checks</th>
<th>failing</th><th class="name">items</th></tr></thead><tbody>{failed_rows}</tbody></table>
<h2>Flaky cases</h2>
{f'<table id="flaky"><thead><tr><th class="name">case</th><th>submissions</th></tr></thead><tbody>{flaky_rows}</tbody></table>' if flaky_rows else '<p id="flaky">None: every case gave the same verdict when run again.</p>'}
<h2>Not graded</h2>
<ul id="not-graded">{not_graded or '<li class="muted">none</li>'}</ul>
<aside id="panel" hidden><button id="panel-close" type="button">close</button>
<h2 id="panel-title"></h2><p><a id="panel-link" href="#">feedback.md</a></p><pre id="panel-text"></pre></aside>
<script type="application/json" id="feedback-data">{data}</script>
<script>{SCRIPT}</script>
</body></html>
"""
