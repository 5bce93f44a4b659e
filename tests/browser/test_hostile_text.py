"""Issue 20 in Chromium: what a person reads is what is there.

The dashboard's views (the harness of test_views_harness.py: exactly the ES modules the kernel sends)
fed a run whose sample id holds a right-to-left override, whose node is named with one, whose
replies hold `$...$` and whose model role is named with markup; the HTML report of such a run; and
DataFrames in a real JupyterLab, where MathJax would typeset `$x$ and $y$`.
"""
from __future__ import annotations

import json

import pytest

from test_dashboard_defects import plotted, render, traits_after
from test_views_harness import give_plotly, harness  # noqa: F401  (the fixture)
from test_widgets import PAYLOAD, ask, graph_dict

from hostile_text import DOLLARS, RLO, RLO_ID, RLO_SHOWN, ROLE, train_hostile_run

pytestmark = pytest.mark.browser

RLO_NODE = f"retrieve{RLO}kcatta"  # reads "retrieveattack" backwards unless the override is shown

# Every text node holding one of `needles` sits in an isolate (a <bdi> or a box with unicode-bidi:
# isolate), and an invisible control is left only inside free text (isolated), never in an id or a name.
ISOLATED = """([root, needles]) => {
  const out = {bare: [], controls: [], seen: 0};
  const walker = document.createTreeWalker(document.querySelector(root), NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (/[\\u061C\\u200B-\\u200F\\u202A-\\u202E\\u2060\\u2066-\\u2069\\uFEFF]/.test(n.data)) {
      // allowed only inside free text (a reply, an error: isolated, shown as written), never in a name
      const box = n.parentElement.closest('bdi');
      if (!box || box.matches('.wb-name, .name')) out.controls.push((n.parentElement.localName + ': ' + n.data).slice(0, 80));
    }
    if (!needles.some((w) => n.data.includes(w))) continue;
    out.seen++;
    let el = n.parentElement, ok = false;
    for (; el && el !== document.body; el = el.parentElement) {
      if (el.localName === 'bdi' || getComputedStyle(el).unicodeBidi.startsWith('isolate')) { ok = true; break; }
      if (el.namespaceURI === 'http://www.w3.org/2000/svg') { ok = true; break; }  // Graphviz labels: controls spelled out
    }
    if (!ok) out.bare.push(n.data.slice(0, 60));
  }
  return out;
}"""


@pytest.fixture(scope="module")
def hostile_views():
    def run(emit, funnel):
        emit.step = 1
        ids = [RLO_ID, "s2"]
        emit("step_started", epoch=0, batch=ids)
        for sid in ids:
            g = graph_dict(sid, question=DOLLARS, prediction=f"wrong {DOLLARS}", score=0.0)
            for n in g["nodes"]:
                if n["component"] == "retrieve":
                    n["component"] = RLO_NODE
                    n["id"] = n["id"].replace("retrieve", RLO_NODE)
            for e in g["edges"]:
                for end in ("source", "target"):
                    e[end] = e[end].replace("retrieve", RLO_NODE)
            emit("forward", split="train", phase="train", graph=g,
                 summary={"sample_id": sid, "inputs": {"question": DOLLARS}, "target": "Paris",
                          "prediction": f"wrong {DOLLARS}", "score": 0.0, "status": "failed",
                          "error": f"{PAYLOAD} {RLO}", "seconds": 0.1})
        emit("selection", samples=[{"sample_id": sid, "selected": True, "reason": f"failed: {sid}"} for sid in ids])
        emit("gradient", sample_id=RLO_ID, node_id="answer", component="answer", call_index=1,
             target="answer.instruction", target_kind="parameter", score=0.0, text=f"fix {DOLLARS}")
        emit("skipped", stage="backward", parameter="answer.instruction", node_id=RLO_NODE, sample_id=RLO_ID,
             error=f"no reply {PAYLOAD}")
        ask(emit, "p1", "Answer.", f"Answer in one word.{RLO} Never mind.")
        emit("step_finished", epoch=0, train_score=0.0, val_score=None, best_val=0.5, accepted=[], rejected=[],
             usage={ROLE: {"calls": 2, "prompt_tokens": 10, "completion_tokens": 3, "cache_hits": 0, "latency_s": 0.1},
                    "backward": {"calls": 1, "prompt_tokens": 5, "completion_tokens": 2, "cache_hits": 0,
                                 "latency_s": 0.1}})
        return {"node_id": f"{RLO_NODE}#2", "sample_id": RLO_ID}
    return traits_after(run)


def no_script_ran(page):
    page.wait_for_timeout(200)
    assert page.evaluate("() => window.__wbXss === undefined && window.__xss === undefined")


def test_samples_show_the_override_in_an_id_and_isolate_every_value(harness, hostile_views):
    page = harness
    render(page, "samples", hostile_views["samples"])
    cell = page.locator(".harness-samples tr.wb-sample").first.locator("td.wb-id")
    assert cell.text_content() == RLO_SHOWN
    assert cell.locator("bdi.wb-name .wb-ctl").text_content() == "\u27e8U+202E\u27e9"
    found = page.evaluate(ISOLATED, [".harness-samples", [DOLLARS, "gnp.exe", "onerror"]])
    assert found["seen"] >= 6 and found["bare"] == [] and found["controls"] == [], found
    assert page.locator(".harness-samples img, .harness-samples script").count() == 0
    # the row still sends the real id, not what is shown
    page.locator(".harness-samples tr.wb-sample").first.click()
    assert page.evaluate("() => window.__sent.at(-1)") == {"type": "select_sample", "sample_id": RLO_ID}
    no_script_ran(page)


def test_graph_panel_and_labels_spell_out_the_override(harness, hostile_views):
    page = harness
    render(page, "graph", hostile_views["graph"])
    panel = ".harness-graph .wb-panel"
    page.wait_for_selector(panel + ":not([hidden])")
    title = page.locator(panel + " .wb-panel-title").text_content()
    assert title == f"retrieve\u27e8U+202E\u27e9kcatta#2"
    labels = page.evaluate("() => [...document.querySelectorAll('.harness-graph svg g.node text')].map(t => t.textContent)")
    assert any("retrieve\u27e8U+202E\u27e9kcatta" in t for t in labels) and not any(RLO in t for t in labels)
    # the sample picker's options spell it out too; their value stays the real id
    option = page.locator(panel + " .wb-sample-picker option").first
    assert option.text_content() == RLO_SHOWN and option.get_attribute("value") == RLO_ID
    found = page.evaluate(ISOLATED, [".harness-graph", [DOLLARS, "kcatta", "gnp.exe"]])
    assert found["seen"] >= 4 and found["bare"] == [] and found["controls"] == [], found
    no_script_ran(page)


def test_review_shows_the_override_a_proposal_would_put_in_the_prompt(harness, hostile_views):
    page = harness
    render(page, "review", hostile_views["review"])
    diff = page.locator(".harness-review .wb-pending .wb-diff")
    assert "one word.\u27e8U+202E\u27e9 Never" in diff.text_content()
    assert diff.locator(".wb-ctl").count() == 1
    # the edit box holds the exact text: what is accepted is what was proposed
    page.locator(".harness-review .wb-pending button.wb-edit").click()
    assert page.locator(".harness-review .wb-edit-text").input_value() == f"Answer in one word.{RLO} Never mind."
    page.locator(".harness-review .wb-params > summary").click()
    found = page.evaluate(ISOLATED, [".harness-review", ["gnp.exe", "kcatta", "onerror"]])
    assert found["seen"] >= 1 and found["bare"] == [] and found["controls"] == [], found
    no_script_ran(page)


def test_a_role_named_with_markup_reaches_the_cost_legend_as_text(harness, hostile_views):
    page = harness
    give_plotly(page)
    render(page, "curves", hostile_views["curves"])
    box = plotted(page, ".harness-curves .wb-chart-cost")
    legend = page.locator(box + " .legend").text_content()
    assert ROLE in legend  # the markup, as typed
    assert page.locator(box + " .legend a, .harness-curves a[href^=javascript]").count() == 0
    assert page.locator(box + " .legend").evaluate("(el) => el.querySelectorAll('tspan[style*=bold]').length") == 0
    usage = page.locator(".harness-curves .wb-usage").text_content()
    assert ROLE in usage
    role_tokens = hostile_views["curves"]["totals"]["by_role"][ROLE]["tokens"]  # the fold's count, as shown
    assert role_tokens > 0 and f"{ROLE}: " in usage and f"{role_tokens:,} tokens" in usage.split(f"{ROLE}: ", 1)[1]
    no_script_ran(page)


def test_report_isolates_values_and_spells_out_overrides_in_chromium(browser, tmp_path):
    from workbench.records.report import write_report
    from workbench.records.results import open_run
    run_dir = train_hostile_run(tmp_path)
    out = write_report(open_run(run_dir), tmp_path / "report.html")
    page = browser.new_page()
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(out.resolve().as_uri())
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
        page.evaluate("() => document.querySelectorAll('details').forEach((d) => d.open = true)")
        found = page.evaluate(ISOLATED, ["body", [DOLLARS, "gnp.exe"]])
        assert found["seen"] >= 1 and found["bare"] == [] and found["controls"] == [], found
        assert RLO_SHOWN in page.locator("body").text_content()
        legend = page.locator(".js-plotly-plot .legend").last.text_content()
        assert ROLE in legend and page.locator(".legend a").count() == 0
        no_script_ran(page)
        assert requests == [out.resolve().as_uri()], requests
    finally:
        page.close()


# -- DataFrames in JupyterLab ----------------------------------------------------------------------------

def notebook(cells: list[str]) -> str:
    return json.dumps({"cells": [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {},
                                  "outputs": [], "source": src} for i, src in enumerate(cells)],
                       "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
                       "nbformat": 4, "nbformat_minor": 5})


def test_dataframes_show_dollars_as_text_in_jupyterlab(page, lab, workdir):
    base, token = lab
    train_hostile_run(workdir / "hostile")  # its replies hold DOLLARS
    (workdir / "frames.ipynb").write_text(notebook([
        "import pandas as pd\nimport workbench\nrun = workbench.open_run('hostile/runs/run')\n"
        "mine = pd.DataFrame({'prediction': run.samples.prediction[:1].tolist()})",
        "mine",                                                 # the user's own frame: typeset (the control)
        "run.samples[['sample_id', 'prediction']].head(3)",     # what the package returns, sliced
        "pd.concat([run.samples.tail(1), run.samples.tail(1)])[['prediction']]",
        "pd.get_option('display.html.use_mathjax')",
    ]))
    # a workspace of its own, reset: the lab server is shared by the session's browser tests, and a restored
    # layout would bring back their notebooks, one of which may be the active panel the commands below act on
    page.goto(f"{base}/lab/workspaces/hostile-frames/tree/frames.ipynb?reset&token={token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=90_000)
    page.wait_for_function(
        """() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                   const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
                   return !!k && k.status === 'idle'; }""", timeout=90_000)
    outputs = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell .jp-OutputArea-output"
    # a loaded machine may drop a run-all issued while the panel is still settling: ask again, up to 4 times
    for attempt in range(4):
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        try:
            page.wait_for_function("(sel) => document.querySelectorAll(sel).length >= 4", arg=outputs,
                                   timeout=60_000)
            break
        except Exception:
            if attempt == 3:
                raise
    cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell")
    # MathJax is at work in this page: the plain pandas frame's dollars are typeset
    cells.nth(1).locator("mjx-container").first.wait_for(timeout=30_000)
    page.wait_for_timeout(1000)  # let the typesetter reach the other outputs too
    for i in (2, 3):
        out = cells.nth(i).locator(".jp-OutputArea-output")
        assert out.locator("mjx-container, .MathJax").count() == 0
        assert DOLLARS in out.locator("table").text_content()
    assert "True" in cells.nth(4).locator(".jp-OutputArea-output").text_content()  # the user's setting is untouched
