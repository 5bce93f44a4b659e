"""The views at the sizes a dashboard gives them (found on the embedded quickstart in JupyterLab):
a small graph is not blown up to the card's width, and the samples table fits a card at the
samples view's minimum width (440 px), so pin / exclude show without scrolling sideways.

Same harness as test_views_harness.py: the bundled ES modules in a blank Chromium page, rendered
with traits built by the real reducers (and a real Graphviz layout).
"""
from __future__ import annotations

import json

import pytest

from workbench import render_svg, run_example
from workbench.tasks.datasets import Example
from workbench.records.events import EventBus
from workbench.llm.scripted import ScriptedModel
from workbench.engine.loss import get_eval_fn
from workbench.ui import Funnel, SamplesView

from test_backward_base_model import SayWord
from test_views_harness import harness  # noqa: F401  (the page with the views loaded)
from test_widgets import Emitter, emit_step, start_run

pytestmark = pytest.mark.browser

DOT_POINT_PX = 96 / 72  # Graphviz sizes the SVG in points


def two_node_svg() -> str:
    r = run_example(SayWord(), Example("w1", {"word": "plum"}, "plum", {}), get_eval_fn("exact_match"),
                    ScriptedModel(lambda m: "plum"))
    assert len(r.graph.nodes) == 2  # the LLM call and the loss
    return render_svg(r.graph)


def rendered_scale(page) -> float:
    """Drawn width of the graph's SVG over its natural width (1.0: labels at their 11 pt)."""
    return page.evaluate("""() => {
      const svg = document.querySelector('.harness-graph svg.wb-svg');
      return svg.getBoundingClientRect().width / (parseFloat(svg.dataset.width) * %s);
    }""" % DOT_POINT_PX)


def test_a_two_node_graph_is_drawn_at_its_natural_size_in_a_wide_card(harness):  # noqa: F811
    page = harness
    page.evaluate("() => { document.body.style.width = '900px'; }")
    page.evaluate("(s) => window.__render('graph', s)", {"svg": two_node_svg(), "node_status": {}, "panel": {}})
    page.evaluate("() => window.__frames(2)")
    assert rendered_scale(page) == pytest.approx(1.0, abs=0.02)  # it was 2.4 (40 px labels)
    font = page.evaluate("() => document.querySelector('.harness-graph g.node text').getBoundingClientRect().height")
    assert font < 20, f"a node label is {font:.0f} px tall"
    page.locator(".harness-graph button", has_text="full size").click()  # the toggle still works both ways
    assert rendered_scale(page) == pytest.approx(1.0, abs=0.02)


def test_a_graph_wider_than_its_card_still_shrinks_to_fit(harness):  # noqa: F811
    page = harness
    page.evaluate("() => { document.body.style.width = '300px'; }")
    chain = {"sample_id": "s", "nodes": [{"id": f"step{i}", "component": f"step{i}", "kind": "llm"} for i in range(6)],
             "edges": [{"source": f"step{i}", "target": f"step{i + 1}", "input": "x", "guess": False}
                       for i in range(5)], "gradients": []}
    svg = render_svg(json.loads(json.dumps(chain)), rankdir="LR")
    page.evaluate("(s) => window.__render('graph', s)", {"svg": svg, "node_status": {}, "panel": {}})
    page.evaluate("() => window.__frames(2)")
    assert rendered_scale(page) < 0.9
    canvas = page.evaluate("() => { const c = document.querySelector('.harness-graph .wb-graph-canvas');"
                           " return [c.scrollWidth, c.clientWidth]; }")
    assert canvas[0] <= canvas[1]


def test_the_samples_table_fits_a_card_at_its_minimum_width(harness):  # noqa: F811
    bus = EventBus()
    funnel = Funnel(bus=bus, threaded=False)
    view = SamplesView(funnel)
    emit = Emitter(bus)
    start_run(emit)
    emit_step(emit, 1)
    funnel.flush()
    traits = json.loads(json.dumps({k: getattr(view, k) for k in view.trait_names(sync=True)
                                    if not k.startswith("_") and k not in ("layout", "tabbable", "tooltip")}))
    funnel.close()
    page = harness
    page.evaluate("() => { document.body.style.width = '440px'; document.body.style.margin = '0'; }")
    page.evaluate("(s) => window.__render('samples', s)", traits)
    page.evaluate("() => window.__frames(2)")
    scroller = page.evaluate("() => { const s = document.querySelector('.harness-samples .wb-table-scroll');"
                             " return [s.scrollWidth, s.clientWidth]; }")
    assert scroller[0] <= scroller[1], f"the table is {scroller[0]} px wide in a {scroller[1]} px card"
    card_right = page.evaluate("() => document.querySelector('.harness-samples .wb-card').getBoundingClientRect().right")
    buttons = page.locator(".harness-samples .wb-flags button")
    assert buttons.count() >= 2
    for i in range(buttons.count()):
        box = buttons.nth(i).bounding_box()
        assert box["x"] + box["width"] <= card_right, f"{buttons.nth(i).text_content()} is cut off"
