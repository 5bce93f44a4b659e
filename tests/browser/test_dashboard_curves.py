"""Dashboard defects found by using it in JupyterLab (light and dark theme), checked in Chromium on
each view module alone (the harness of test_views_harness.py).

- The held-out test score's diamond at step 0 was half cut off by the plot's edge, and its label
  ("test 0.000", under a score of 0) was drawn outside the plot, so it never showed.
- Every push of new figures during a run (each step) undid what the person did to the chart: a
  series hidden by a legend click came back, a zoom was lost.
- In JupyterLab's dark theme the chart's text (axes, legend) and the 'best validation so far' line
  were near-black on the dark page; warning notes and error text in the review were dark red / brown
  on dark grey.
"""
from __future__ import annotations

import pytest

from test_dashboard_defects import plotted, render, traits_after
from test_views_harness import give_plotly, harness  # noqa: F401  (the fixture)
from test_widgets import emit_step

pytestmark = pytest.mark.browser

DARK = """() => { document.body.dataset.jpThemeLight = 'false';
  const s = document.body.style; s.background = '#212121';
  s.setProperty('--jp-layout-color1', '#212121'); s.setProperty('--jp-layout-color2', '#424242');
  s.setProperty('--jp-ui-font-color1', 'rgba(255,255,255,.87)'); s.setProperty('--jp-ui-font-color2', 'rgba(255,255,255,.54)');
  s.setProperty('--jp-border-color2', '#424242'); }"""

# WCAG contrast of an element's text colour (or a given colour) against the dark page
CONTRAST = """([sel, prop]) => [...document.querySelectorAll(sel)].map(e => {
  const lum = (c) => { const m = c.match(/[\\d.]+/g).map(Number); const a = m.length > 3 ? m[3] : 1;
    const bg = [33, 33, 33]; const rgb = [0, 1, 2].map(i => m[i] * a + bg[i] * (1 - a));
    const lin = rgb.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]; };
  const L = lum(getComputedStyle(e)[prop]); const B = lum('rgb(33, 33, 33)');
  return [e.textContent.slice(0, 30), (Math.max(L, B) + 0.05) / (Math.min(L, B) + 0.05)]; })"""


@pytest.fixture(scope="module")
def finished_run():
    def run(emit, funnel):
        emit("eval", split="test", phase="baseline", score=0.0, n=2, errored=0, proposal_id=None)
        for step in range(1, 4):
            emit_step(emit, step, approve=step % 2 == 1)
        emit("run_finished", status="completed", baseline={"val": 0.5, "test": 0.0}, final={"val": 0.75, "test": 1.0},
             best_val=0.75, best_step=1, usage={}, error=None, run_dir="runs/r1", run_id="r1", steps=3)
    return traits_after(run)


def drawn(page, curves, *, dark=False) -> str:
    """Render the curves view (in the dark theme if asked); the score chart's selector once plotted."""
    if dark:
        page.evaluate(DARK)
    give_plotly(page)
    render(page, "curves", curves)
    return plotted(page)


def test_the_test_score_at_step_0_and_its_label_are_inside_the_plot(harness, finished_run):
    page = harness
    box = drawn(page, finished_run["curves"])
    where = page.evaluate("""(box) => { const gd = document.querySelector(box); const L = gd._fullLayout;
        const plot = gd.querySelector('.draglayer .xy .nsewdrag').getBoundingClientRect();
        const trace = [...gd.querySelectorAll('.scatterlayer .trace')].find(g => g.__data__[0].trace.name === 'test score (held out)');
        const labels = [...trace.querySelectorAll('.textpoint text')].map(t => [t.textContent, t.getBoundingClientRect()]);
        const r = gd.getBoundingClientRect();
        return {plot: {left: plot.left, right: plot.right, top: plot.top, bottom: plot.bottom},
                x0: r.left + L.xaxis._offset + L.xaxis.d2p(0), labels}; }""", box)
    plot = where["plot"]
    assert where["x0"] - plot["left"] >= 5, where  # the whole diamond, not half of it
    assert [t for t, _ in where["labels"]] == ["test 0.000", "test 1.000"]
    for text, r in where["labels"]:
        assert plot["left"] - 1 <= r["left"] and r["right"] <= plot["right"] + 1, (text, r, plot)
        assert plot["top"] - 1 <= r["top"] and r["bottom"] <= plot["bottom"] + 1, (text, r, plot)


def test_a_hidden_series_and_a_zoom_survive_the_next_push(harness, finished_run):
    page = harness
    box = drawn(page, finished_run["curves"])
    page.locator(box + " .legend .traces", has_text="minibatch score").click()
    page.wait_for_function("""(box) => document.querySelector(box).data
        .find(t => t.name === 'minibatch score').visible === 'legendonly'""", arg=box)
    page.evaluate("(box) => window.Plotly.relayout(document.querySelector(box), {'xaxis.range': [1, 2]})", box)
    # the kernel pushes the next step's figures (a new proposal outcome adds a trace in the middle)
    figures = finished_run["curves"]["figures"]
    extra = dict(figures["score"]["data"][-2], name="proposal validated, not kept")
    newer = {"score": dict(figures["score"], data=figures["score"]["data"][:3] + [extra] + figures["score"]["data"][3:]),
             "cost": figures["cost"]}
    page.evaluate("(f) => { window.__model_curves.update('figures', f); return window.__frames(3); }", newer)
    page.wait_for_timeout(200)
    state = page.evaluate("""(box) => { const gd = document.querySelector(box);
        return {hidden: gd.data.filter(t => t.visible === 'legendonly').map(t => t.name),
                range: gd._fullLayout.xaxis.range}; }""", box)
    assert state["hidden"] == ["minibatch score"], state
    assert state["range"] == [1, 2], state


def test_chart_text_and_lines_are_readable_in_the_dark_theme(harness, finished_run):
    page = harness
    box = drawn(page, finished_run["curves"], dark=True)
    low = [c for c in page.evaluate(CONTRAST, [f"{box} .xtick text, {box} .ytick text, {box} .legendtext, "
                                               f"{box} .g-xtitle text, {box} .g-ytitle text", "fill"]) if c[1] < 4.5]
    assert low == [], low
    best = page.evaluate("""(box) => { const gd = document.querySelector(box);
        const trace = [...gd.querySelectorAll('.scatterlayer .trace')].find(g => g.__data__[0].trace.name === 'best validation so far');
        return getComputedStyle(trace.querySelector('path.js-line')).stroke; }""", box)
    page.evaluate("(c) => { const e = document.createElement('i'); e.className = 'probe'; e.style.color = c; document.body.append(e); }", best)
    assert page.evaluate(CONTRAST, [".probe", "color"])[0][1] >= 3, best  # a line: 3:1 is enough


def test_review_notes_and_errors_are_readable_in_the_dark_theme(harness):
    def run(emit, funnel):
        emit.step = 1
        emit("no_proposal", parameter="answer.instruction", source="feedback",
             reason="no feedback this step: no node using it ran on the back-propagated samples (q2, q6)")
        emit("disconnected", parameter="query.instruction", node_id="query", sample_id="s1",
             reason="its output reached the loss only as a plain str")
    page = harness
    page.evaluate(DARK)
    render(page, "review", traits_after(run)["review"])
    shown = page.evaluate(CONTRAST, [".harness-review .wb-param-note, .harness-review .wb-param-why", "color"])
    assert len(shown) == 2 and all(c >= 4.5 for _, c in shown), shown
