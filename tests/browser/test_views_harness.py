"""Each view module on its own in a blank page, with a stand-in for anywidget's model.

No Jupyter here: the bundled ES modules (exactly what the kernel sends) are imported from blob URLs
and rendered with traits built by the real RunState from a synthetic 30-node, 200-step run. This
checks scale (render and update times), what the views send back, and that buttons carry the id of
the proposal they were drawn for.
"""
from __future__ import annotations

import json
import time

import pytest

from workbench.records.events import EventBus
from workbench.ui import CurvesView, Funnel, GraphView, ReviewView, SamplesView, assets

from test_widgets import PAYLOAD, Emitter, emit_step, start_run

pytestmark = pytest.mark.browser

HARNESS = r"""
window.__sent = [];
window.__mods = {};
window.__load = async (sources) => {
  for (const [name, code] of Object.entries(sources)) {
    const url = URL.createObjectURL(new Blob([code], { type: "text/javascript" }));
    window.__mods[name] = (await import(url)).default;
  }
};
window.__render = (name, state) => {
  const handlers = {};
  const model = {
    get: (k) => state[k],
    set: (k, v) => { state[k] = v; },
    save_changes: () => {},
    on: (ev, fn) => { (handlers[ev] = handlers[ev] || []).push(fn); },
    off: (ev, fn) => { handlers[ev] = (handlers[ev] || []).filter((f) => f !== fn); },
    send: (msg) => {
      window.__sent.push(msg);
      // what CurvesView does in the kernel: answer with plotly.min.js as a binary buffer
      if (msg && msg.type === "plotly_js" && window.__plotlyBytes) {
        setTimeout(() => model.custom({ type: "plotly_js" }, [new DataView(window.__plotlyBytes.buffer)]), 0);
      }
    },
    update: (k, v) => { state[k] = v; (handlers["change:" + k] || []).forEach((f) => f()); },
    custom: (msg, buffers) => (handlers["msg:custom"] || []).forEach((f) => f(msg, buffers || [])),
  };
  const el = document.createElement("div");
  el.className = "harness-" + name;
  document.body.append(el);
  window.__mods[name].render({ model, el });
  window["__model_" + name] = model;
  return true;
};
window.__frames = (n) => new Promise((resolve) => {
  let k = 0;
  const tick = () => (++k >= n ? resolve() : requestAnimationFrame(tick));
  requestAnimationFrame(tick);
});
"""


@pytest.fixture(scope="module")
def big_run():
    """Traits of every view after a 200-step run of a 30-node pipeline (real Graphviz layout)."""
    bus = EventBus()
    funnel = Funnel(bus=bus, threaded=False)
    views = {"graph": GraphView(funnel), "samples": SamplesView(funnel), "curves": CurvesView(funnel),
             "review": ReviewView(funnel)}
    emit = Emitter(bus)
    start_run(emit)
    for step in range(1, 201):
        emit_step(emit, step, hops=14, approve=None if step == 200 else step % 3 != 0)
    funnel.flush()
    funnel.select(node_id="query#7")
    traits = {name: {k: getattr(v, k) for k in v.trait_names(sync=True) if not k.startswith("_")
                     and k not in ("layout", "tabbable", "tooltip")} for name, v in views.items()}
    funnel.close()
    return json.loads(json.dumps(traits))


@pytest.fixture
def harness(page):
    page.set_content(f"<!doctype html><html><head><style>{assets.css()}</style></head><body></body></html>")
    page.add_script_tag(content=HARNESS, type="module")
    page.wait_for_function("() => !!window.__load")
    sources = {name: assets.esm(f"{name}.js") for name in ("graph", "samples", "curves", "review", "controls")}
    page.evaluate("(s) => window.__load(s)", sources)
    return page


def timed(page, script, arg=None):
    t0 = time.perf_counter()
    page.evaluate(script, arg)
    page.evaluate("() => window.__frames(2)")
    return time.perf_counter() - t0


def test_graph_of_thirty_nodes_renders_updates_and_sends_clicks(harness, big_run):
    page, g = harness, big_run["graph"]
    assert g["svg"].count('class="node') == 30
    took = timed(page, "(s) => window.__render('graph', s)", g)
    assert page.locator(".harness-graph g.node").count() == 30
    assert took < 5, took
    # 200 status updates (as the funnel would push them), with no re-layout: the same SVG element stays
    page.evaluate("() => { window.__svgBefore = document.querySelector('.harness-graph svg'); }")
    ids = [n for n in json.loads(json.dumps(list(g["node_status"]) or ["answer"]))]
    t0 = time.perf_counter()
    page.evaluate("""(ids) => { const m = window.__model_graph; const states = ['running', 'done', 'gradient', 'failed'];
        for (let i = 0; i < 200; i++) { const st = {}; ids.forEach((id, j) => st[id] = states[(i + j) % 4]);
          m.update('node_status', st); } }""", ids)
    page.evaluate("() => window.__frames(2)")
    assert time.perf_counter() - t0 < 5
    assert page.evaluate("() => window.__svgBefore === document.querySelector('.harness-graph svg')")
    assert page.locator(".harness-graph g.node.wb-st-running, .harness-graph g.node.wb-st-done, "
                        ".harness-graph g.node.wb-st-gradient, .harness-graph g.node.wb-st-failed").count() >= len(ids)
    # the panel of a node in a loop: one section per call, the clicked one marked
    assert page.locator(".harness-graph .wb-panel .wb-call").count() == 14
    assert page.locator('.harness-graph .wb-panel .wb-call.wb-current[data-node-id="query#7"]').count() == 1
    page.locator('.harness-graph g.node[data-node-id="answer"]').click()
    assert page.evaluate("() => window.__sent.at(-1)") == {"type": "select_node", "node_id": "answer"}
    page.locator(".harness-graph .wb-panel .wb-close").click()
    assert page.evaluate("() => window.__sent.at(-1)") == {"type": "select_node", "node_id": ""}


def give_plotly(page):
    """Hand the page the kernel's plotly.min.js (the stand-in model answers `plotly_js` with it)."""
    import base64
    page.evaluate("(b64) => { const s = atob(b64); const a = new Uint8Array(s.length); "
                  "for (let i = 0; i < s.length; i++) a[i] = s.charCodeAt(i); window.__plotlyBytes = a; }",
                  base64.b64encode(assets.plotly_js()).decode("ascii"))


def test_curves_of_two_hundred_steps_draw_fast(harness, big_run):
    page, c = harness, big_run["curves"]
    assert len(c["points"]) == 200 and len(c["marks"]) == 200  # steps 0..199; p200 still waits
    give_plotly(page)
    took = timed(page, "(s) => window.__render('curves', s)", c)
    page.wait_for_selector(".harness-curves .wb-chart-score .main-svg", timeout=60_000)
    assert took < 5, took
    kept = sum(m["outcome"] == "kept" for m in c["marks"])
    drawn = page.evaluate("""() => { const d = document.querySelector('.harness-curves .wb-chart-score').data;
        return Object.fromEntries(d.map(t => [t.name, t.x.length])); }""")
    assert drawn["proposal kept"] == kept and drawn["candidate kept"] == kept
    assert drawn["proposal rejected by a person"] == sum(m["outcome"] == "rejected" for m in c["marks"])
    # 200 pushes (one per step) redraw at most once per frame
    t0 = time.perf_counter()
    page.evaluate("""(c) => { const m = window.__model_curves;
        for (let i = 1; i <= 200; i++) m.update('figures', c.figures); }""", c)
    page.evaluate("() => window.__frames(2)")
    assert time.perf_counter() - t0 < 5
    assert page.locator(".harness-curves .wb-usage b").first.text_content() == f"{c['totals']['calls']:,}"


def test_samples_table_shows_payload_as_text_and_sends_pin_and_select(harness, big_run):
    page, s = harness, big_run["samples"]
    page.evaluate("(s) => window.__render('samples', s)", s)
    row = page.locator('.harness-samples tr[data-sample="s2"]')
    assert PAYLOAD in row.text_content()
    assert page.locator(".harness-samples img, .harness-samples script").count() == 0
    row.locator("button", has_text="pin").click()
    assert page.evaluate("() => window.__sent.at(-1)") == {"type": "pin", "sample_id": "s2", "value": True}
    row.locator("button", has_text="exclude").click()
    assert page.evaluate("() => window.__sent.at(-1)") == {"type": "exclude", "sample_id": "s2", "value": True}
    row.click()
    assert page.evaluate("() => window.__sent.at(-1)") == {"type": "select_sample", "sample_id": "s2"}
    assert page.evaluate("() => window.__wbXss === undefined")


def test_review_buttons_belong_to_the_proposal_they_were_drawn_for(harness, big_run):
    page, r = harness, big_run["review"]
    assert r["pending"]["proposal_id"] == "p200" and len(r["history"]) == 199
    took = timed(page, "(s) => window.__render('review', s)", r)
    assert took < 5, took
    assert page.locator(".harness-review .wb-hist").count() == 199
    # keep a handle on p200's Accept button, then a new proposal replaces the card
    page.evaluate("() => { window.__oldAccept = document.querySelector('.harness-review .wb-pending button[data-action=accept]'); }")
    newer = dict(r["pending"], proposal_id="p201", new="Answer in two words.",
                 diff=[["-", "Answer in one word."], ["+", "Answer in two words."]])
    page.evaluate("(p) => { window.__model_review.update('pending', p); return window.__frames(2); }", newer)
    assert page.locator('.harness-review .wb-pending[data-proposal="p201"]').count() == 1
    assert page.evaluate("() => !document.contains(window.__oldAccept)")
    # a click that reaches the old button anyway still names p200 (which the kernel refuses)
    page.evaluate("() => window.__oldAccept.click()")
    assert page.evaluate("() => window.__sent.at(-1)") == {"type": "decide", "proposal_id": "p200",
                                                           "action": "accept", "text": None}
    page.locator(".harness-review .wb-pending button[data-action=reject]").click()
    assert page.evaluate("() => window.__sent.at(-1)") == {"type": "decide", "proposal_id": "p201",
                                                           "action": "reject", "text": None}
    # the kernel refuses: the card says so and its buttons work again
    page.evaluate("() => window.__model_review.custom({type: 'decision_result', proposal_id: 'p201', ok: false, "
                  "reason: 'proposal p201 is no longer waiting for a decision'})")
    assert "no longer waiting" in page.locator(".harness-review .wb-notice").text_content()
    assert page.locator(".harness-review .wb-pending button[data-action=accept]").is_enabled()
    # Edit: change the text, then accept the edited value
    page.locator(".harness-review .wb-pending button[data-action=edit]").first.click()
    page.locator(".harness-review .wb-edit-text").fill("Answer with <b>one</b> word.")
    page.locator(".harness-review .wb-edit-box button[data-action=edit]").click()
    assert page.evaluate("() => window.__sent.at(-1)") == {"type": "decide", "proposal_id": "p201", "action": "edit",
                                                           "text": "Answer with <b>one</b> word."}
    # auto-approve
    page.locator(".harness-review input.wb-auto").check()
    assert page.evaluate("() => window.__sent.at(-1)") == {"type": "auto", "value": True}


def test_controls_send_actions_and_follow_status(harness):
    page = harness
    state = {"status": "idle", "step": 0, "epoch": 0, "detail": "", "run_id": "", "export_path": "out.json",
             "export_formats": ["json", "yaml", "md"], "message": "", "summary": {}}
    page.evaluate("(s) => window.__render('controls', s)", state)
    c = ".harness-controls"
    page.locator(f"{c} button[data-action=start]").click()
    assert page.evaluate("() => window.__sent.at(-1)") == {"type": "control", "action": "start"}
    page.evaluate("() => window.__model_controls.update('status', 'running')")
    assert page.locator(f"{c} button[data-action=start]").is_disabled()
    page.locator(f"{c} button[data-action=pause]").click()
    assert page.evaluate("() => window.__sent.at(-1)") == {"type": "control", "action": "pause"}
    page.evaluate("() => window.__model_controls.update('status', 'paused')")
    page.locator(f"{c} button[data-action=resume]").click()
    assert page.evaluate("() => window.__sent.at(-1)") == {"type": "control", "action": "resume"}
    page.locator(f"{c} button[data-action=step]").click()
    assert page.evaluate("() => window.__sent.at(-1)") == {"type": "control", "action": "step"}
    page.locator(f"{c} button[data-action=stop]").click()
    assert page.evaluate("() => window.__sent.at(-1)") == {"type": "control", "action": "stop"}
    page.locator(f"{c} select.wb-format").select_option("md")
    page.locator(f"{c} input.wb-path").fill("prompts.md")
    page.locator(f"{c} button[data-action=export]").click()
    assert page.evaluate("() => window.__sent.at(-1)") == {"type": "control", "action": "export",
                                                           "path": "prompts.md", "format": "md"}
