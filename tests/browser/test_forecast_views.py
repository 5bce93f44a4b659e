"""The forecast line at the top of the controls view and each decision's gain in the review history,
rendered by the real ES modules in a blank page (the stand-in model of test_views_harness), from traits
the real RunState built out of a scripted run's events; hostile text stays text."""
from __future__ import annotations

import pytest

from workbench import open_run
from workbench.ui.state import RunState

from test_decision_confidence import run
from test_views_harness import harness  # noqa: F401  (the fixture)

pytestmark = pytest.mark.browser


def run_state(tmp_path) -> RunState:
    """The dashboard's state after a run whose one kept change won one validation sample of twenty."""
    run(tmp_path, "run", ["val0"])
    st = RunState()
    for event in open_run(tmp_path / "run").events():
        st.apply(event)
    return st


def test_forecast_line_and_gain_render_as_text(harness, tmp_path):  # noqa: F811
    page, st = harness, run_state(tmp_path)
    controls = st.traits("controls", {"controls"})
    assert controls["forecast"].startswith("forecast: ~")
    page.evaluate("(s) => window.__render('controls', s)", controls)
    assert page.locator(".harness-controls .wb-forecast").inner_text() == controls["forecast"]
    review = st.traits("review", {"review"})
    page.evaluate("(s) => window.__render('review', s)", review)
    history = page.locator(".harness-review .wb-history").inner_text()
    assert "gain +0.050 [" in history and "won 1, lost 0" in history
    hostile = dict(controls, forecast="forecast: <img src=x onerror=alert(1)> ~3 calls")
    page.evaluate("(s) => window.__render('controls', s)", hostile)
    assert page.locator(".harness-controls img").count() == 0
    assert "<img src=x onerror=alert(1)>" in page.locator(".harness-controls .wb-forecast").last.inner_text()
    assert not [m for m in page.console_messages if m.startswith(("error", "pageerror"))]
