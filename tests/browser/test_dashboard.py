"""The dashboard in a real JupyterLab (and Voila), driven like a person would, in Debian's Chromium.

The notebook (notebooks/widget_review_demo.ipynb) trains a two-hop QA pipeline whose models are
ScriptedModels, with HumanApproval. Its first proposal ("in one word") raises validation and is kept
when accepted; its second adds a useless sentence and is reverted when rejected. One training sample
carries an `<img onerror>` / `<script>` payload that must show as text and never run.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from workbench.ui import assets

pytestmark = pytest.mark.browser

DASH = ".wb-dashboard"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
GRADIENT_TEXT = "The answer must be the bare name in one word"
FIRST_PROPOSAL = "Answer the question in one word."
SECOND_PROPOSAL = "Answer the question in one word. Think step by step."
SLOW = 90_000  # ms: kernels start slowly on 2 busy cores


def shot(page, name, selector=DASH):
    """Save a screenshot of the dashboard (the page grows tall enough to hold all of it)."""
    ARTIFACTS.mkdir(exist_ok=True)
    size = page.viewport_size
    try:
        el = page.locator(selector).first
        height = page.evaluate("(sel) => { const e = document.querySelector(sel); return e ? e.scrollHeight : 0; }",
                               selector)
        page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(4000, height + 400))})
        el.scroll_into_view_if_needed()
        el.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    except Exception:
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    finally:
        page.set_viewport_size(size)


def xss_count(page):
    return page.evaluate("() => window.__wbXss === undefined ? 0 : window.__wbXss")


def pending(page, not_id=None):
    """Wait for a pending proposal (other than `not_id`); return (id, old text, new text)."""
    sel = f"{DASH} .wb-pending[data-proposal]" + (f':not([data-proposal="{not_id}"])' if not_id else "")
    card = page.wait_for_selector(sel, timeout=SLOW)
    pid = card.get_attribute("data-proposal")
    diff = card.query_selector(".wb-diff")
    old = "".join(e.text_content() for e in diff.query_selector_all("span.wb-same, del.wb-del"))
    new = "".join(e.text_content() for e in diff.query_selector_all("span.wb-same, ins.wb-ins"))
    return pid, old, new


def param_value(page, name):
    return page.locator(f'{DASH} .wb-review-view .wb-params [data-param="{name}"] .wb-param-value').text_content()


def open_and_run_notebook(page, url):
    page.goto(url)
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=SLOW)
    page.wait_for_function(
        """() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                   const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
                   return !!k && k.status === 'idle'; }""", timeout=SLOW)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_selector(f"{DASH} .wb-controls-view button[data-action=start]", timeout=SLOW)


def test_dashboard_review_flow_in_jupyterlab(page, lab):
    base, token = lab
    open_and_run_notebook(page, f"{base}/lab/tree/widget_review_demo.ipynb?token={token}")
    shot(page, "lab-1-before-start", ".jp-NotebookPanel")

    # start: returns at once, the views fill in while training runs in the worker thread
    page.click(f"{DASH} .wb-controls-view button[data-action=start]")
    page.wait_for_selector(f"{DASH} .wb-graph-view svg.wb-svg g.node[data-node-id='answer']", timeout=SLOW)
    for node in ("query", "query#2", "retrieve", "retrieve#2", "answer", "loss"):
        assert page.locator(f'{DASH} .wb-graph-view g.node[data-node-id="{node}"]').count() == 1, node

    # the first proposal waits for a decision; gradients have arrived by then
    pid1, old1, new1 = pending(page)
    assert old1 == "Answer the question." and new1 == FIRST_PROPOSAL
    assert page.locator(f"{DASH} .wb-graph-view g.node.wb-st-gradient").count() >= 1

    # click a node: its panel shows its parameter and the gradient text it received
    page.locator(f'{DASH} .wb-graph-view g.node[data-node-id="answer"]').click()
    panel = page.wait_for_selector(f"{DASH} .wb-graph-view .wb-panel:not([hidden]) .wb-grad-text", timeout=SLOW)
    page.wait_for_function(
        "([sel, text]) => [...document.querySelectorAll(sel)].some(e => e.textContent.includes(text))",
        arg=[f"{DASH} .wb-panel .wb-grad-text", GRADIENT_TEXT], timeout=SLOW)
    assert page.locator(f'{DASH} .wb-panel [data-param="answer.instruction"] .wb-param-value').text_content() \
        == "Answer the question."
    assert panel is not None
    # a node in the loop: per-call sections for query and query#2
    page.locator(f'{DASH} .wb-graph-view g.node[data-node-id="query#2"]').click()
    page.wait_for_selector(f'{DASH} .wb-panel .wb-call.wb-current[data-node-id="query#2"]', timeout=SLOW)
    assert page.locator(f"{DASH} .wb-panel .wb-call").count() == 2

    # the hostile sample is in this batch: its payload is shown as text and nothing ran
    row = page.wait_for_selector(f'{DASH} .wb-samples-view tr[data-sample="hostile"]', timeout=SLOW)
    assert "<img src=x onerror=" in row.text_content()
    row.click()
    page.wait_for_function(
        "(sel) => { const p = document.querySelector(sel); return p && p.textContent.includes('<script>window.__wbXss=1</script>'); }",
        arg=f"{DASH} .wb-graph-view .wb-panel", timeout=SLOW)
    assert page.locator(f"{DASH} img").count() == 0
    assert page.locator(f"{DASH} .wb-view script").count() == 0
    shot(page, "lab-2-first-proposal")

    # Accept: the value is kept after validation, and the next proposal starts from it
    page.click(f'{DASH} .wb-pending[data-proposal="{pid1}"] button[data-action=accept]')
    page.wait_for_selector(f'{DASH} .wb-history [data-proposal="{pid1}"][data-status="kept"]', timeout=SLOW)
    assert param_value(page, "answer.instruction") == FIRST_PROPOSAL
    pid2, old2, new2 = pending(page, not_id=pid1)
    assert old2 == FIRST_PROPOSAL and new2 == SECOND_PROPOSAL

    # Reject: the proposal is reverted, the accepted value stays
    page.click(f'{DASH} .wb-pending[data-proposal="{pid2}"] button[data-action=reject]')
    page.wait_for_selector(f'{DASH} .wb-history [data-proposal="{pid2}"][data-status="reverted"]', timeout=SLOW)
    assert param_value(page, "answer.instruction") == FIRST_PROPOSAL
    shot(page, "lab-3-after-reject")

    # auto-approve: validation alone decides the rest; the run completes
    page.click(f"{DASH} .wb-review-view input.wb-auto")
    page.wait_for_selector(f"{DASH} .wb-controls-view .wb-badge-finished", timeout=SLOW)
    page.wait_for_function("(sel) => document.querySelector(sel).textContent.includes('completed')",
                           arg=f"{DASH} .wb-controls-view .wb-summary", timeout=SLOW)
    assert param_value(page, "answer.instruction") == FIRST_PROPOSAL
    # curves (plotly, from the kernel's plotly package): one kept proposal, the person's rejection; usage counted
    chart = f"{DASH} .wb-curves-view .wb-chart-score"
    page.wait_for_function("""(sel) => { const gd = document.querySelector(sel);
        return gd && gd.data && gd.data.some(t => t.name === 'proposal rejected by a person'); }""", arg=chart, timeout=SLOW)
    counts = page.evaluate("(sel) => Object.fromEntries(document.querySelector(sel).data.map(t => [t.name, t.x.length]))",
                           chart)
    assert counts["proposal kept"] == 1 and counts["candidate kept"] == 1
    assert counts["proposal rejected by a person"] >= 1
    assert page.locator("script[data-workbench=plotly]").count() == 1
    calls = page.locator(f"{DASH} .wb-curves-view .wb-usage b").first.text_content()
    assert int(calls.replace(",", "")) > 0
    # the run's id and folder are shown; the parameters' descriptions too
    assert page.locator(f"{DASH} .wb-controls-view .wb-run-dir code").text_content().strip() != ""
    assert "how to answer" in page.locator(f'{DASH} .wb-review-view [data-param="answer.instruction"] .wb-param-desc').text_content()

    # the hostile graph cell: a node *named* with the payload shows it as text
    page.wait_for_function(
        "() => [...document.querySelectorAll('.wb-graph-view svg text')].some(t => t.textContent.includes('<img src=x onerror='))",
        timeout=SLOW)
    assert page.locator(".jp-OutputArea img").count() == 0
    assert xss_count(page) == 0
    shot(page, "lab-4-finished")
    # a narrow notebook: the views stack, every button keeps its whole label
    page.set_viewport_size({"width": 640, "height": 1100})
    page.evaluate("() => window.jupyterapp.commands.execute('application:toggle-left-area')")
    page.wait_for_timeout(800)
    tops = page.evaluate("""(d) => Object.fromEntries(['graph', 'review', 'samples', 'curves'].map(v =>
        [v, document.querySelector(d + ' .wb-' + v + '-view').getBoundingClientRect().top]))""", DASH)
    assert tops["review"] > tops["graph"] and tops["curves"] > tops["samples"], tops
    clipped = page.evaluate("""(d) => [...document.querySelectorAll(d + ' button')]
        .filter(b => b.offsetParent && b.scrollWidth > b.clientWidth + 1).map(b => b.textContent)""", DASH)
    assert clipped == []
    sizes = page.evaluate("""(d) => [...document.querySelectorAll(d + ' .wb-curves-view .xtick text')]
        .map(t => parseFloat(getComputedStyle(t).fontSize))""", DASH)
    assert sizes and min(sizes) >= 11
    shot(page, "lab-5-narrow")
    errors = [m for m in page.console_messages if m.startswith("pageerror")]
    assert not errors, errors

    # reloading the page drops the widget, not the run: `wb` in a new cell brings the dashboard back
    page.set_viewport_size({"width": 1500, "height": 1100})
    page.reload()
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=SLOW)
    page.wait_for_function(
        """() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                   const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
                   return !!k && k.status === 'idle'; }""", timeout=SLOW)
    page.evaluate("""async () => { const app = window.jupyterapp; const nb = app.shell.currentWidget.content;
        nb.activeCellIndex = nb.widgets.length - 1;
        await app.commands.execute('notebook:insert-cell-below');
        nb.activeCell.model.sharedModel.setSource('wb');
        await app.commands.execute('notebook:run-cell'); }""")
    page.wait_for_function("""(sel) => [...document.querySelectorAll(sel)].some(e => e.textContent.includes('finished'))""",
                           arg=f"{DASH} .wb-controls-view .wb-badge", timeout=SLOW)
    back = page.locator(DASH).last
    assert back.locator(f'.wb-history [data-proposal="{pid1}"][data-status="kept"]').count() == 1
    assert back.locator(f'.wb-history [data-proposal="{pid2}"][data-status="reverted"]').count() == 1


def test_dashboard_in_notebook7(page, lab):
    base, token = lab
    open_and_run_notebook(page, f"{base}/notebooks/nb7_widget_review_demo.ipynb?token={token}")
    page.click(f"{DASH} .wb-controls-view button[data-action=start]")
    page.wait_for_selector(f"{DASH} .wb-graph-view svg.wb-svg g.node[data-node-id='answer']", timeout=SLOW)
    pid, _, new = pending(page)
    assert new == FIRST_PROPOSAL
    page.wait_for_selector(f"{DASH} .wb-curves-view .wb-chart-score.js-plotly-plot", timeout=SLOW)
    page.locator(f'{DASH} .wb-graph-view g.node[data-node-id="answer"]').click()
    page.wait_for_selector(f"{DASH} .wb-panel .wb-grad-text", timeout=SLOW)
    page.click(f'{DASH} .wb-pending[data-proposal="{pid}"] button[data-action=accept]')
    page.wait_for_selector(f'{DASH} .wb-history [data-proposal="{pid}"][data-status="kept"]', timeout=SLOW)
    assert xss_count(page) == 0
    shot(page, "notebook7-dashboard")
    page.click(f"{DASH} .wb-controls-view button[data-action=stop]")
    page.wait_for_selector(f"{DASH} .wb-controls-view .wb-badge-finished", timeout=SLOW)


def test_dashboard_in_voila(page, voila):
    page.goto(voila, timeout=SLOW)
    page.wait_for_selector(f"{DASH} .wb-controls-view button[data-action=start]", timeout=SLOW * 2)
    page.click(f"{DASH} .wb-controls-view button[data-action=start]")
    page.wait_for_selector(f"{DASH} .wb-graph-view svg.wb-svg g.node[data-node-id='answer']", timeout=SLOW)
    pending(page)
    assert page.locator(f"{DASH} .wb-samples-view tr.wb-sample").count() == 4
    # the plotly charts load from the kernel here too (Voila serves no extension assets)
    page.wait_for_selector(f"{DASH} .wb-curves-view .wb-chart-score.js-plotly-plot", timeout=SLOW)
    assert page.locator(f"{DASH} .wb-controls-view .wb-badge").text_content() == "waiting for you"
    assert xss_count(page) == 0
    shot(page, "voila-dashboard")
    page.click(f"{DASH} .wb-controls-view button[data-action=stop]")
    page.wait_for_selector(f"{DASH} .wb-controls-view .wb-badge-finished", timeout=SLOW)


HOSTILE_SVG = """<?xml version="1.0"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="100pt" height="50pt"
     viewBox="0 0 100 50" onload="window.__wbXss=(window.__wbXss||0)+1">
<script>window.__wbXss=(window.__wbXss||0)+1</script>
<g id="node&#45;a" class="node" onclick="window.__wbXss=1"><title>a</title>
<a xlink:href="javascript:window.__wbXss=1"><text x="5" y="20">&lt;img src=x onerror=alert(1)&gt;</text></a>
<foreignObject width="10" height="10"><img xmlns="http://www.w3.org/1999/xhtml" src="x" onerror="window.__wbXss=(window.__wbXss||0)+1"/></foreignObject>
<image href="x" onerror="window.__wbXss=(window.__wbXss||0)+1"/>
<set attributeName="onmouseover" to="window.__wbXss=1"/>
</g></svg>"""


def test_safe_svg_and_text_helpers_run_nothing(page):
    """util.js in a blank page: hostile SVG loses scripts and handlers; h() makes text, not markup."""
    page.set_content("<!doctype html><html><body><div id=out></div></body></html>")
    util = assets._EXPORT.sub("", assets._read("util.js"))
    page.add_script_tag(content=util + "\nwindow.__util = { safeSvg, h, diffView };", type="module")
    page.wait_for_function("() => !!window.__util")
    result = page.evaluate("""(svgText) => {
        const out = document.getElementById('out');
        const svg = window.__util.safeSvg(svgText);
        out.append(svg);
        out.append(window.__util.h('div', {class: 'cell'}, '<img src=x onerror="window.__wbXss=1">'));
        out.append(window.__util.diffView([['+', '<script>window.__wbXss=1</script>'], ['=', '<b>x</b>']]));
        const attrs = [...out.querySelectorAll('*')].flatMap(e => [...e.attributes].map(a => a.name));
        return {tags: [...out.querySelectorAll('*')].map(e => e.localName), attrs,
                nodeId: svg.querySelector('g.node').id, text: out.textContent};
    }""", HOSTILE_SVG)
    page.wait_for_timeout(300)  # give any handler a chance to fire
    assert xss_count(page) == 0
    for banned in ("script", "foreignObject", "foreignobject", "img", "image", "set"):
        assert banned not in result["tags"], (banned, result["tags"])
    assert not [a for a in result["attrs"] if a.startswith("on") or "href" in a], result["attrs"]
    assert result["nodeId"] == "node-a"  # '&#45;' parsed back to '-'
    assert '<img src=x onerror="window.__wbXss=1">' in result["text"]
    assert "<script>window.__wbXss=1</script>" in result["text"]
    assert re.search(r"<img src=x onerror=alert\(1\)>", result["text"])
