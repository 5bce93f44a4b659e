"""The dashboard defects of issue 11, checked in Chromium on each view module alone (the harness of
test_views_harness.py: exactly the ES modules the kernel sends, a stand-in for anywidget's model).

Plotly charts: loaded once per page, readable axis text also when narrow, hover / zoom / legend
toggles. Review: an open edit cannot be dropped by a plain Accept, and starts from the full text.
Layout: long ids and names stay inside their columns and panels, and nothing is clipped when narrow.
Status, run folder, disconnected parameters.
"""
from __future__ import annotations

import json

import pytest

from workbench.records.events import EventBus
from workbench.ui import ControlsView, CurvesView, Funnel, GraphView, ReviewView, SamplesView

from test_views_harness import give_plotly, harness  # noqa: F401  (the fixture)
from test_widgets import PAYLOAD, Emitter, ask, emit_step, graph_dict, start_run

pytestmark = pytest.mark.browser

LONG_ID = "5a8b57f25542995d1e6f1371"            # a HotpotQA id: 24 characters, no spaces
LONG_NODE = "retrieve_supporting_paragraphs_from_the_wikipedia_dump"
LONG_INPUT = "the_question_as_asked_by_the_annotator_in_the_dev_set"


def traits_after(events) -> dict:
    """Every view's traits after feeding `events(emit)` to a real funnel (Graphviz layout)."""
    bus = EventBus()
    funnel = Funnel(bus=bus, threaded=False)
    views = {"graph": GraphView(funnel), "samples": SamplesView(funnel), "curves": CurvesView(funnel),
             "review": ReviewView(funnel), "controls": ControlsView(funnel)}
    emit = Emitter(bus)
    start_run(emit)
    extra = events(emit, funnel) or {}
    funnel.flush()
    for name, value in extra.items():
        funnel.select(**{name: value})
    out = {name: {k: getattr(v, k) for k in v.trait_names(sync=True) if not k.startswith("_")
                  and k not in ("layout", "tabbable", "tooltip")} for name, v in views.items()}
    funnel.close()
    return json.loads(json.dumps(out))


def render(page, name, state, width=None):
    if width:
        page.evaluate("(w) => { document.body.style.width = w + 'px'; document.body.style.margin = '0'; }", width)
    page.evaluate("([n, s]) => window.__render(n, s)", [name, state])
    page.evaluate("() => window.__frames(2)")


def fits(page, selector) -> list[str]:
    """Elements matching `selector` whose content is wider than their box (clipped or overflowing)."""
    return page.evaluate("""(sel) => [...document.querySelectorAll(sel)]
        .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.className + ': ' + e.textContent.slice(0, 40))""",
                         selector)


# -- plotly curves --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_run():
    def run(emit, funnel):
        for step in range(1, 6):
            emit_step(emit, step, approve=step % 2 == 1)
    return traits_after(run)


def plotted(page, box=".harness-curves .wb-chart-score"):
    page.wait_for_selector(box + " .main-svg", timeout=60_000)
    return box


def test_plotly_is_loaded_once_per_page_and_draws_every_view(harness, small_run):
    page = harness
    give_plotly(page)
    render(page, "curves", small_run["curves"])
    render(page, "curves", small_run["curves"])  # a second curves view on the same page
    page.wait_for_function("() => document.querySelectorAll('.harness-curves .wb-chart-score.js-plotly-plot').length === 2",
                           timeout=60_000)
    assert page.evaluate("() => window.__sent.filter(m => m.type === 'plotly_js').length") == 1
    assert page.locator("script[data-workbench=plotly]").count() == 1
    assert page.evaluate("() => window.__wbXss === undefined")


def test_axis_text_is_readable_also_in_a_narrow_notebook(harness, small_run):
    page = harness
    give_plotly(page)
    for width in (1200, 360):
        page.evaluate("() => document.body.replaceChildren()")
        render(page, "curves", small_run["curves"], width=width)
        box = plotted(page)
        sizes = page.evaluate("""(box) => [...document.querySelectorAll(box + ' .xtick text, ' + box + ' .ytick text')]
            .map(t => parseFloat(getComputedStyle(t).fontSize))""", box)
        assert sizes and min(sizes) >= 11, (width, sizes)
        chart = page.locator(box).bounding_box()
        assert chart["width"] <= width + 1  # the chart follows the notebook's width


def test_hover_zoom_and_legend_toggle_work(harness, small_run):
    page = harness
    give_plotly(page)
    render(page, "curves", small_run["curves"])
    box = plotted(page)
    # hover a proposal in the strip: parameter, decision, score and reason
    pos = page.evaluate("""(box) => { const gd = document.querySelector(box); const L = gd._fullLayout;
        const i = gd.data.findIndex(t => t.name === 'proposal rejected by a person');
        const r = gd.getBoundingClientRect();
        return {x: r.left + L.xaxis._offset + L.xaxis.d2p(gd.data[i].x[0]),
                y: r.top + L.yaxis2._offset + L.yaxis2.d2p(gd.data[i].y[0])}; }""", box)
    page.mouse.move(pos["x"], pos["y"])
    page.wait_for_selector(box + " .hoverlayer .hovertext", timeout=10_000)
    text = page.locator(box + " .hoverlayer").text_content()
    assert "p2" in text and "answer.instruction" in text and "rejected by a person" in text
    assert "not validated" in text and "reason: rejected by person" in text
    # legend toggle: one click hides a series, a second shows it again
    item = page.locator(box + " .legend .traces", has_text="minibatch score")
    item.click()
    page.wait_for_function("""(box) => document.querySelector(box).data
        .find(t => t.name === 'minibatch score').visible === 'legendonly'""", arg=box)
    item.click()
    page.wait_for_function("""(box) => document.querySelector(box).data
        .find(t => t.name === 'minibatch score').visible === true""", arg=box)
    # zoom: drag across the plot area narrows the step axis
    before = page.evaluate("(box) => document.querySelector(box)._fullLayout.xaxis.range.slice()", box)
    drag = page.evaluate("""(box) => { const gd = document.querySelector(box); const L = gd._fullLayout;
        const r = gd.getBoundingClientRect(); const y = r.top + L.yaxis._offset + L.yaxis._length / 2;
        return {x1: r.left + L.xaxis._offset + L.xaxis._length * 0.3, x2: r.left + L.xaxis._offset + L.xaxis._length * 0.7, y}; }""",
                         box)
    page.mouse.move(drag["x1"], drag["y"])
    page.mouse.down()
    page.mouse.move(drag["x2"], drag["y"], steps=8)
    page.mouse.up()
    page.wait_for_function("""([box, lo, hi]) => { const r = document.querySelector(box)._fullLayout.xaxis.range;
        return r[0] > lo && r[1] < hi; }""", arg=[box, before[0], before[1]])


def test_a_hostile_parameter_name_shows_as_text_in_the_chart(harness):
    def run(emit, funnel):
        emit.step = 1
        emit("proposal", proposal_id="p1", parameter=PAYLOAD, role="instruction", old="a", new="b",
             source="optimizer", gradient_summary="")
        emit("update", proposal_id="p1", parameter=PAYLOAD, accepted=False, value="a", reason=PAYLOAD)
    state = traits_after(run)
    page = harness
    give_plotly(page)
    render(page, "curves", state["curves"])
    box = plotted(page)
    page.evaluate("""(box) => { const gd = document.querySelector(box);
        const i = gd.data.findIndex(t => t.yaxis === 'y2'); window.Plotly.Fx.hover(gd, [{curveNumber: i, pointNumber: 0}], ['xy2']); }""",
                  box)
    page.wait_for_selector(box + " .hoverlayer .hovertext", timeout=10_000)
    assert "<img src=x" in page.locator(box + " .hoverlayer").text_content()
    assert page.locator(".harness-curves img, .harness-curves script").count() == 0
    page.wait_for_timeout(200)
    assert page.evaluate("() => window.__wbXss === undefined")


# -- review: edit, then accept ------------------------------------------------------------------------

def test_an_open_edit_cannot_be_dropped_by_a_plain_accept_and_starts_from_the_full_text(harness):
    long_new = "Answer in one word. " + "detail " * 1500 + "END"
    def run(emit, funnel):
        emit.step = 1
        ask(emit, "p1", "Answer.", long_new)
    page = harness
    render(page, "review", traits_after(run)["review"])
    card = ".harness-review .wb-pending"
    accept = page.locator(f"{card} .wb-main-actions button[data-action=accept]")
    assert accept.is_visible()
    page.locator(f"{card} button.wb-edit").click()
    assert page.locator(f"{card} .wb-edit-text").input_value() == long_new  # never the clipped text
    assert not accept.is_visible()  # while an edit is open, only the edited text can be accepted
    page.locator(f"{card} .wb-edit-text").fill("Answer with one word only.")
    page.locator(f"{card} .wb-edit-box button[data-action=edit]").click()
    assert page.evaluate("() => window.__sent.at(-1)") == {"type": "decide", "proposal_id": "p1", "action": "edit",
                                                           "text": "Answer with one word only."}
    # cancel: back to the plain buttons, the box forgets the edit
    page.evaluate("() => window.__model_review.custom({type: 'decision_result', proposal_id: 'p1', ok: false, reason: 'test'})")
    page.locator(f"{card} button.wb-cancel").click()
    assert accept.is_visible() and not page.locator(f"{card} .wb-edit-box").is_visible()


# -- layout: long ids and names, narrow notebooks ----------------------------------------------------------

@pytest.fixture(scope="module")
def long_names_run():
    def run(emit, funnel):
        emit.step = 1
        ids = [LONG_ID, LONG_ID[::-1], "s3"]
        emit("step_started", epoch=0, batch=ids)
        for sid in ids:
            g = graph_dict(sid)
            for n in g["nodes"]:
                if n["component"] == "retrieve":
                    n["component"] = LONG_NODE
                    n["id"] = LONG_NODE if n["call_index"] == 1 else f"{LONG_NODE}#{n['call_index']}"
                    n["inputs"] = {LONG_INPUT: "Which city is the Eiffel Tower in?"}
            for e in g["edges"]:
                for end in ("source", "target"):
                    if e[end].startswith("retrieve"):
                        e[end] = e[end].replace("retrieve", LONG_NODE)
            emit("forward", split="train", phase="train", graph=g,
                 summary={"sample_id": sid, "inputs": {"question": "q"}, "target": "Paris", "prediction": "Rome",
                          "score": 0.0, "status": "failed", "error": None, "seconds": 0.1})
        emit("selection", samples=[{"sample_id": sid, "selected": True, "reason": "failed"} for sid in ids])
        return {"node_id": LONG_NODE}
    return traits_after(run)


@pytest.mark.parametrize("width", [1100, 380])
def test_long_sample_ids_stay_in_their_column_and_buttons_are_never_clipped(harness, long_names_run, width):
    page = harness
    render(page, "samples", long_names_run["samples"], width=width)
    assert page.locator(f'.harness-samples tr[data-sample="{LONG_ID}"] td.wb-id').text_content() == LONG_ID
    assert fits(page, ".harness-samples td.wb-id") == []
    assert fits(page, ".harness-samples .wb-flags button") == []  # "exclude", never "exclu"
    # the table scrolls inside the view rather than spilling out of it
    view = page.locator(".harness-samples").bounding_box()
    assert view["width"] <= width + 1


@pytest.mark.parametrize("width", [1100, 420])
def test_long_node_and_input_names_stay_inside_the_node_panel(harness, long_names_run, width):
    page = harness
    render(page, "graph", long_names_run["graph"], width=width)
    panel = ".harness-graph .wb-panel"
    page.wait_for_selector(panel + ":not([hidden])")
    assert fits(page, panel) == []  # no horizontal overflow: the long node name wraps
    box = page.locator(panel).bounding_box()
    picker = page.locator(panel + " .wb-sample-picker").bounding_box()
    assert picker["x"] + picker["width"] <= box["x"] + box["width"] + 1
    kv = page.locator(panel + " .wb-kv").first
    key, value = kv.locator(".wb-k").bounding_box(), kv.locator(".wb-pre").bounding_box()
    assert value["width"] >= 0.5 * (key["width"] + value["width"])  # the value is not squeezed
    assert page.locator(".harness-graph").bounding_box()["width"] <= width + 1


# -- status, run folder, disconnected parameters ---------------------------------------------------------------

def test_controls_say_waiting_for_you_and_show_the_run_id_and_folder(harness):
    page = harness
    state = {"status": "waiting", "step": 3, "epoch": 0, "detail": "waiting for you · step 3", "run_id": "qa-20261126",
             "run_dir": "/home/me/runs/qa-20261126", "export_path": "out.json", "export_formats": ["json"],
             "message": "", "summary": {}}
    render(page, "controls", state, width=420)
    c = ".harness-controls"
    assert page.locator(f"{c} .wb-badge").text_content() == "waiting for you"
    assert "qa-20261126" in page.locator(f"{c} .wb-run-id").text_content()
    assert "/home/me/runs/qa-20261126" in page.locator(f"{c} .wb-run-dir").text_content()
    assert page.locator(f"{c} button[data-action=pause]").is_enabled()  # a waiting run can be paused
    assert page.locator(f"{c} button[data-action=start]").is_disabled()
    assert fits(page, f"{c} button") == []
    page.evaluate("""() => { const m = window.__model_controls; m.update('status', 'finished');
        m.update('summary', {status: 'failed', baseline: {val: 0.5}, final: {}, error: 'RuntimeError: the tool broke'}); }""")
    assert page.locator(f"{c}").text_content().count("the tool broke") == 1


def test_a_disconnected_parameter_is_marked_on_its_node_and_explained(harness):
    def run(emit, funnel):
        emit_step(emit, 1, approve=None, proposal=False)
        emit("disconnected", parameter="query.instruction", node_id="query#2", sample_id="s1",
             reason="its output reached the loss only as a plain str")
        return {"node_id": "query#2"}
    state = traits_after(run)
    page = harness
    render(page, "graph", state["graph"])
    node = page.locator('.harness-graph g.node[data-node-id="query#2"]')
    assert "wb-disconnected" in node.get_attribute("class")
    assert "no path to the loss" in node.locator("title.wb-why").text_content()
    assert "wb-disconnected" not in page.locator('.harness-graph g.node[data-node-id="answer"]').get_attribute("class")
    panel = page.locator(".harness-graph .wb-panel")
    assert "Nothing can be proposed" in panel.locator(".wb-param-why").text_content()
    render(page, "review", state["review"])
    why = page.locator('.harness-review .wb-params[open] [data-param="query.instruction"] .wb-param-why')
    assert "no path to the loss" in why.text_content()  # the list opens by itself to say so


def test_a_guessed_link_is_drawn_dashed(harness):
    def run(emit, funnel):
        emit.step = 1
        emit("step_started", epoch=0, batch=["s1"])
        g = graph_dict("s1")
        g["edges"][-2]["guess"] = True  # retrieve#2 -> answer was matched by text content
        emit("forward", split="train", phase="train", graph=g,
             summary={"sample_id": "s1", "inputs": {"question": "q"}, "target": "Paris", "prediction": "Paris",
                      "score": 1.0, "status": "ok", "error": None, "seconds": 0.1})
    page = harness
    render(page, "graph", traits_after(run)["graph"])
    dashed = page.evaluate("""() => [...document.querySelectorAll('.harness-graph g.edge')].map(e =>
        [e.id, getComputedStyle(e.querySelector('path')).strokeDasharray])""")
    guessed = [d for i, d in dashed if "retrieve#2" in i and "answer" in i]
    assert guessed and guessed[0] not in ("none", ""), dashed
    assert all(d in ("none", "") for i, d in dashed if not ("retrieve#2" in i and "answer" in i)), dashed
