""""Branch from here" in a real JupyterLab, in Debian's Chromium: a person rejects a proposal, the run
finishes, they branch from that proposal accepting it, and both runs' curves appear on one chart.

The notebook trains the shout task (tests/scripted_tasks.py, ScriptedModels in the kernel) with
HumanApproval: its first proposal to reach a person (p1-2) is the right instruction.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from test_dashboard import shot

pytestmark = pytest.mark.browser

TESTS = Path(__file__).resolve().parents[1]
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
DASH = f"{PANEL} .wb-dashboard"
SLOW = 90_000  # ms: kernels start slowly on 2 busy cores

SETUP = f"""import sys
sys.path.insert(0, {str(TESTS)!r})
from scripted_tasks import TEST, TRAIN, VAL, Optimizer, Shout, backward, same_text, task
from workbench import HumanApproval, Models, TrainConfig, Trainer
from workbench.ui import Workbench
trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, Optimizer()),
                  config=TrainConfig(max_steps=2, batch_size=4, concurrency=2), approval=HumanApproval(),
                  runs_root="branch-runs", task="shout")
wb = Workbench(trainer)
wb"""


def notebook(cells: list[str]) -> str:
    return json.dumps({"cells": [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {},
                                  "outputs": [], "source": src} for i, src in enumerate(cells)],
                       "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
                       "nbformat": 4, "nbformat_minor": 5})


def test_branch_from_a_rejected_proposal_accepts_it_and_shows_both_curves(page, lab, workdir):
    base, token = lab
    (workdir / "branching.ipynb").write_text(notebook([SETUP]))
    # a workspace of its own, reset: the lab server is shared by the session's browser tests
    page.goto(f"{base}/lab/workspaces/branching/tree/branching.ipynb?reset&token={token}")
    page.wait_for_selector(f"{PANEL} .jp-Cell", timeout=SLOW)
    page.wait_for_function(
        """() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                   const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
                   return !!k && k.status === 'idle'; }""", timeout=SLOW)
    for attempt in range(4):  # a loaded machine may drop a run-all issued while the panel is still settling
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        try:
            page.wait_for_selector(f"{DASH} .wb-controls-view button[data-action=start]", timeout=60_000)
            break
        except Exception:
            if attempt == 3:
                raise

    # the person rejects the first proposal that reaches them, then lets validation decide the rest
    page.click(f"{DASH} .wb-controls-view button[data-action=start]")
    card = page.wait_for_selector(f"{DASH} .wb-pending[data-proposal]", timeout=SLOW)
    rejected = card.get_attribute("data-proposal")
    page.click(f'{DASH} .wb-pending[data-proposal="{rejected}"] button[data-action=reject]')
    page.wait_for_selector(f'{DASH} .wb-history [data-proposal="{rejected}"][data-status="reverted"]', timeout=SLOW)
    page.click(f"{DASH} .wb-review-view input.wb-auto")
    page.wait_for_selector(f"{DASH} .wb-controls-view .wb-badge-finished", timeout=SLOW)
    parent_id = page.locator(f"{DASH} .wb-controls-view .wb-run-id code").text_content()
    assert page.locator(f"{DASH} .wb-chart-family").is_hidden()  # no family yet

    # branch from the rejected proposal, accepting it
    entry = page.locator(f'{DASH} .wb-history [data-proposal="{rejected}"]')
    entry.locator("summary").click()
    assert entry.locator("button[data-action=branch-step]").text_content() == "Branch before step 1: decide again"
    button = entry.locator("button[data-action=branch]")
    assert button.text_content() == "Branch from here: accept it"
    button.click()
    page.wait_for_function("([sel, old]) => { const e = document.querySelector(sel); return e && e.textContent !== old; }",
                           arg=[f"{DASH} .wb-controls-view .wb-run-id code", parent_id], timeout=SLOW)
    child_id = page.locator(f"{DASH} .wb-controls-view .wb-run-id code").text_content()
    page.wait_for_selector(f"{DASH} .wb-controls-view .wb-badge-finished", timeout=SLOW)
    page.wait_for_selector(f'{DASH} .wb-history [data-proposal="{rejected}"][data-status="kept"]', timeout=SLOW)
    assert f"branch of {parent_id} after step 0, accept {rejected}" in \
        page.locator(f"{DASH} .wb-controls-view .wb-message").text_content()

    # both runs' curves, together, on the family chart
    chart = f"{DASH} .wb-curves-view .wb-chart-family"
    page.wait_for_function("""([sel, names]) => { const gd = document.querySelector(sel);
        return gd && gd.data && names.every(n => gd.data.some(t => t.name === n && t.x.length > 0)); }""",
                           arg=[chart, [parent_id, child_id]], timeout=SLOW)
    lines = page.evaluate("""(sel) => document.querySelector(sel).data.filter(t => t.showlegend !== false)
        .map(t => ({name: t.name, x: t.x, y: t.y}))""", chart)
    assert [line["name"] for line in lines] == [parent_id, child_id]
    assert lines[1]["x"][0] == 0 and lines[1]["y"][1] == 1.0  # the branch kept the proposal at step 1
    assert page.locator(f"{DASH} .wb-family-head").is_visible()
    assert not [m for m in page.console_messages if m.startswith("pageerror")]
    shot(page, "lab-branch-family", DASH)
