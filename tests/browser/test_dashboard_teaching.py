"""Issue 16 in Chromium: the person teaches from the dashboard.

First each view module alone (the harness of test_views_harness.py: exactly the ES modules the
kernel sends, traits from a real funnel): the reason box beside Reject, the feedback boxes on a
sample, a node and a parameter (what they send, a refusal shown, a draft that survives live
updates), and a person's texts marked as theirs, hostile text as text. Then the whole loop in a real
JupyterLab against the HTTP test server: reject with a reason, feedback on a sample and a node while
the run waits, and the texts arrive in the next optimizer and backward requests the server received.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from test_dashboard import shot
from test_dashboard_defects import render, traits_after
from test_views_harness import harness  # noqa: F401  (the fixture)
from test_widgets import PAYLOAD, ask, emit_step

from hostile_text import RLO

pytestmark = pytest.mark.browser

HERE = Path(__file__).resolve().parent
SLOW = 90_000
REASON = f"Too vague {PAYLOAD} {RLO}gnp.exe"


def no_script_ran(page):
    page.wait_for_timeout(200)
    assert page.evaluate("() => window.__wbXss === undefined && window.__xss === undefined")


def sent(page, kind):
    return page.evaluate("(k) => window.__sent.filter((m) => m.type === k)", kind)


@pytest.fixture(scope="module")
def taught():
    """Traits after one step whose proposal waits, with a person's feedback of every kind, a person's
    gradient, and an earlier proposal rejected with a hostile reason."""
    def run(emit, funnel):
        emit_step(emit, 1, proposal=False)
        emit_step(emit, 2, approve=None)  # p2 waits
        emit("decision", proposal_id="p1x", action="reject", by="person", text=None, at=time.time(), reason=REASON)
        for fid, kind, node, param, text, ok in [
                ("f1", "sample", None, None, f"row feedback {PAYLOAD}", True),
                ("f2", "node", "query#2", None, f"node feedback {RLO}kcatta", True),
                ("f3", "parameter", None, "answer.instruction", "param feedback", True),
                ("f4", "sample", None, None, "it is Denmark", False)]:
            emit("feedback", feedback_id=fid, text=text, target_kind=kind, sample_id=None if param else "s1",
                 node_id=node, parameter=param, accepted=ok, reason=None if ok else "leaks a training target: 'denmark'")
        emit("gradient", sample_id="s1", node_id="answer", component="answer", call_index=1,
             target="answer.instruction", target_kind="parameter", score=0.0, text="param feedback", source="person")
        ask(emit, "p3", "Answer.", "Answer in one word.")
        emit("proposal", proposal_id="p3", parameter="answer.instruction", role="instruction", old="Answer.",
             new="Answer in one word.", source="optimizer",
             gradient_summary="Sample s1 (score 0):\n  - at answer (call 1): param feedback\n  - at answer: engine text")
        return {"node_id": "query#2", "sample_id": "s1"}
    return traits_after(run)


# -- each view alone -----------------------------------------------------------------------------------

def test_reject_takes_an_optional_reason_that_survives_live_updates(harness, taught):
    page = harness
    render(page, "review", taught["review"])
    card = ".harness-review .wb-pending"
    box = page.locator(f"{card} .wb-reason-text")
    box.fill(REASON)
    # a live update of the pending proposal while the person types: the text and the focus stay
    page.evaluate("""() => { const m = window.__model_review; const p = Object.assign({}, m.get('pending'), {validation: 0.5});
        m.update('pending', p); }""")
    page.evaluate("() => window.__frames(2)")
    assert page.locator(f"{card} .wb-reason-text").input_value() == REASON
    assert page.evaluate("() => document.activeElement.classList.contains('wb-reason-text')")
    page.locator(f"{card} button[data-action=reject]").click()
    assert sent(page, "decide")[-1] == {"type": "decide", "proposal_id": "p3", "action": "reject", "text": None,
                                        "reason": REASON}


def test_a_one_click_reject_still_works_without_a_reason(harness, taught):
    page = harness
    render(page, "review", taught["review"])
    page.locator(".harness-review .wb-pending button[data-action=reject]").click()
    assert sent(page, "decide")[-1] == {"type": "decide", "proposal_id": "p3", "action": "reject", "text": None}


def test_history_gradient_summary_and_your_feedback_mark_the_persons_words(harness, taught):
    page = harness
    render(page, "review", taught["review"])
    view = ".harness-review"
    hist = page.locator(f'{view} .wb-hist[data-proposal="p1x"]')
    assert hist.locator(".wb-person-reason .wb-person-badge").text_content() == "person"
    assert REASON in hist.locator(".wb-person-reason").text_content()  # the payload as typed, as text
    assert hist.locator("summary .wb-person-badge").count() == 1
    mark = page.locator(f"{view} .wb-pending .wb-gradsum mark.wb-person-text")
    assert mark.count() == 1 and "param feedback" in mark.text_content()
    assert mark.locator(".wb-person-badge").count() == 1
    assert "engine text" not in mark.text_content()
    mine = page.locator(f"{view} .wb-mine .wb-person-note")
    assert mine.count() == 4
    refused = page.locator(f'{view} .wb-mine .wb-person-note[data-status="refused"]')
    assert "leaks a training target" in refused.text_content()
    assert f"node feedback {RLO}kcatta" in page.locator(f"{view} .wb-mine").text_content()  # free text, isolated
    assert page.locator(f"{view} img, {view} script").count() == 0
    no_script_ran(page)


def test_feedback_on_a_parameter_goes_to_the_pending_proposals_parameter(harness, taught):
    page = harness
    render(page, "review", taught["review"])
    view = ".harness-review"
    page.locator(f"{view} .wb-teach > summary").click()
    assert page.locator(f"{view} .wb-feedback-param").input_value() == "answer.instruction"
    page.locator(f"{view} .wb-param-feedback .wb-feedback-text").fill("Prefer the country's name")
    page.locator(f"{view} .wb-param-feedback button.wb-send-feedback").click()
    msg = sent(page, "feedback")[-1]
    assert {k: msg[k] for k in ("text", "parameter")} == {"text": "Prefer the country's name", "parameter": "answer.instruction"}
    assert "sample_id" not in msg and "node" not in msg


def test_samples_feedback_box_sends_shows_a_refusal_keeps_the_text_and_stays_on_its_sample(harness, taught):
    page = harness
    render(page, "samples", taught["samples"])
    view = ".harness-samples"
    row = page.locator(f'{view} tr[data-sample="s1"]')
    assert row.locator(".wb-person-note .wb-person-badge").count() == 2
    assert f"row feedback {PAYLOAD}" in row.locator(".wb-person-note").first.text_content()
    label = page.locator(f"{view} .wb-sample-feedback .wb-feedback-label")
    assert "sample s1" in label.text_content()
    area = page.locator(f"{view} .wb-sample-feedback .wb-feedback-text")
    area.fill("The output should name the country alone")
    # the run moves the selection while the person writes: the box stays on s1
    page.evaluate("() => window.__model_samples.update('selected_sample', 's2')")
    page.evaluate("() => window.__frames(2)")
    assert "sample s1" in label.text_content()
    page.locator(f"{view} .wb-sample-feedback button.wb-send-feedback").click()
    msg = sent(page, "feedback")[-1]
    assert msg["sample_id"] == "s1" and msg["text"] == "The output should name the country alone"
    assert page.locator(f"{view} .wb-sample-feedback button.wb-send-feedback").is_disabled()  # one request at a time
    page.evaluate("""(id) => window.__model_samples.custom({type: 'feedback_result', request_id: id, ok: false,
        reason: 'feedback refused: leaks a training target: <b>x</b>'})""", msg["request_id"])
    status = page.locator(f"{view} .wb-sample-feedback .wb-feedback-status")
    assert "Refused: feedback refused: leaks a training target: <b>x</b>" in status.text_content()
    assert area.input_value() == "The output should name the country alone"  # never lost
    page.locator(f"{view} .wb-sample-feedback button.wb-send-feedback").click()
    msg = sent(page, "feedback")[-1]
    page.evaluate("""(id) => window.__model_samples.custom({type: 'feedback_result', request_id: id, ok: true,
        reason: '', where: 'on the output of sample s1'})""", msg["request_id"])
    assert "Sent" in status.text_content() and area.input_value() == ""
    page.evaluate("() => window.__frames(2)")
    assert "sample s2" in label.text_content()  # free again: it follows the selection
    assert page.locator(f"{view} img, {view} script, {view} b").count() == 0
    no_script_ran(page)


def test_node_panel_feedback_targets_the_node_and_sample_and_marks_a_persons_gradient(harness, taught):
    page = harness
    render(page, "graph", taught["graph"])
    panel = ".harness-graph .wb-panel"
    page.wait_for_selector(panel + ":not([hidden])")
    assert "query#2's output for sample s1" in page.locator(f"{panel} .wb-node-feedback .wb-feedback-label").text_content()
    call = page.locator(f'{panel} .wb-call[data-node-id="query#2"]')
    assert call.locator(".wb-person-note .wb-person-badge").count() == 1
    assert "kcatta" in call.locator(".wb-person-note").text_content()
    area = page.locator(f"{panel} .wb-node-feedback .wb-feedback-text")
    area.fill("this query should name the city")
    area.focus()
    # a live update of the panel while the person writes: text and focus stay
    page.evaluate("""() => { const m = window.__model_graph; m.update('panel', Object.assign({}, m.get('panel'), {note: 'moved on'})); }""")
    page.evaluate("() => window.__frames(2)")
    assert area.input_value() == "this query should name the city"
    assert page.evaluate("() => document.activeElement.classList.contains('wb-feedback-text')")
    area.press("Control+Enter")  # sends, as in a notebook cell
    msg = sent(page, "feedback")[-1]
    assert (msg["sample_id"], msg["node"], msg["text"]) == ("s1", "query#2", "this query should name the city")
    no_script_ran(page)


def test_a_persons_gradient_in_the_panel_has_the_badge(harness):
    def run(emit, funnel):
        emit_step(emit, 1, proposal=False)
        emit("gradient", sample_id="s1", node_id="answer", component="answer", call_index=1,
             target="answer.instruction", target_kind="parameter", score=0.0, text=f"mine {PAYLOAD}", source="person")
        return {"node_id": "answer", "sample_id": "s1"}
    page = harness
    render(page, "graph", traits_after(run)["graph"])
    person = page.locator(".harness-graph .wb-grad.wb-grad-person")
    assert person.count() == 1
    assert person.locator(".wb-person-badge").text_content() == "person"
    assert f"mine {PAYLOAD}" in person.locator(".wb-grad-text").text_content()
    assert page.locator(".harness-graph .wb-grad:not(.wb-grad-person)").count() >= 1  # the engine's stay plain
    no_script_ran(page)


# -- the whole loop in JupyterLab, against the HTTP test server --------------------------------------------

XSS = '<img src=x onerror="window.__wbXss=(window.__wbXss||0)+1"><script>window.__wbXss=1</script>'
LAB_REASON = f"Rejected: too terse for a person {XSS}"
SAMPLE_FEEDBACK = "Name only the country, with no sentence around it"
NODE_FEEDBACK = f"The answer node wrapped the name in a sentence {XSS}"
PARAM_FEEDBACK = "The instruction should ask for the country's name alone"
LEAKING_FEEDBACK = "The right reply here is France"  # a training target: refused


def notebook(cells: list[str]) -> str:
    return json.dumps({"cells": [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {},
                                  "outputs": [], "source": src} for i, src in enumerate(cells)],
                       "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
                       "nbformat": 4, "nbformat_minor": 5})


@pytest.fixture
def endpoint():
    from workbench.testing import OpenAITestServer
    from teaching_app import Responder
    with OpenAITestServer(responder=Responder(), latency_s=0.02) as server:
        yield server


def requests_of(server, model: str) -> list[str]:
    """The text of each request `model` received, in order."""
    return ["\n".join(str(m.get("content") or "") for m in body.get("messages") or [])
            for body in list(server.requests) if body.get("model") == model]


def send_feedback_in(page, box, text):
    """Type into a feedback box and send; return the answer the kernel gave (the status line)."""
    box.locator(".wb-feedback-text").fill(text)
    box.locator("button.wb-send-feedback").click()
    status = box.locator(".wb-feedback-status")
    page.wait_for_function("(el) => /^(Sent|Refused)/.test(el.textContent)", arg=status.element_handle(), timeout=SLOW)
    return status.text_content()


def test_the_person_teaches_from_the_dashboard_and_the_endpoint_reads_it(page, lab, workdir, endpoint):
    base, token = lab
    (workdir / "teaching.ipynb").write_text(notebook([
        f"import sys\nsys.path.insert(0, {str(HERE)!r})\nfrom teaching_app import make_trainer\n"
        f"from workbench.ui import Workbench\ntrainer = make_trainer({endpoint.base_url!r}, 'runs/teaching')",
        "wb = Workbench(trainer)\nwb",
    ]))
    # a reset workspace of its own: the lab server is shared by the session's browser tests
    page.goto(f"{base}/lab/workspaces/teaching/tree/teaching.ipynb?reset&token={token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=SLOW)
    page.wait_for_function(
        """() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                   const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
                   return !!k && k.status === 'idle'; }""", timeout=SLOW)
    dash = ".jp-NotebookPanel:not(.lm-mod-hidden) .wb-dashboard"
    for attempt in range(4):  # a loaded machine may drop a run-all issued while the panel settles
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        try:
            page.wait_for_selector(f"{dash} .wb-controls-view button[data-action=start]", timeout=60_000)
            break
        except Exception:
            if attempt == 3:
                raise
    page.click(f"{dash} .wb-controls-view button[data-action=start]")
    card = page.wait_for_selector(f"{dash} .wb-pending[data-proposal]", timeout=SLOW)
    pid1 = card.get_attribute("data-proposal")
    optimizer_before = len(requests_of(endpoint, "optimizer-model"))
    assert optimizer_before >= 1

    # while the run waits for a decision: feedback on a sample's output, from the samples table
    page.locator(f'{dash} .wb-samples-view tr[data-sample="q2"]').click()
    samples_box = page.locator(f"{dash} .wb-samples-view .wb-sample-feedback")
    page.wait_for_function("(el) => el.textContent.includes('sample q2')",
                           arg=samples_box.locator(".wb-feedback-label").element_handle(), timeout=SLOW)
    assert send_feedback_in(page, samples_box, SAMPLE_FEEDBACK).startswith("Sent")
    # a leaking feedback is refused, the person is told why, the text stays
    answer = send_feedback_in(page, samples_box, LEAKING_FEEDBACK)
    assert answer.startswith("Refused") and "leaks a training target" in answer and "france" in answer
    assert samples_box.locator(".wb-feedback-text").input_value() == LEAKING_FEEDBACK
    samples_box.locator(".wb-feedback-text").fill("")
    # on a node's output for that sample, from the graph panel
    page.locator(f'{dash} .wb-graph-view g.node[data-node-id="answer"]').click()
    node_box = page.locator(f"{dash} .wb-graph-view .wb-node-feedback")
    page.wait_for_function("(el) => el.textContent.includes(\"answer's output for sample q2\")",
                           arg=node_box.locator(".wb-feedback-label").element_handle(), timeout=SLOW)
    assert send_feedback_in(page, node_box, NODE_FEEDBACK).startswith("Sent")
    # on the parameter, from review
    page.locator(f"{dash} .wb-review-view .wb-teach > summary").click()
    assert send_feedback_in(page, page.locator(f"{dash} .wb-review-view .wb-param-feedback"),
                            PARAM_FEEDBACK).startswith("Sent")

    # type a reason and reject
    page.locator(f'{dash} .wb-pending[data-proposal="{pid1}"] .wb-reason-text').fill(LAB_REASON)
    page.click(f'{dash} .wb-pending[data-proposal="{pid1}"] button[data-action=reject]')
    page.wait_for_selector(f'{dash} .wb-history [data-proposal="{pid1}"] .wb-person-reason', state="attached", timeout=SLOW)
    card = page.wait_for_selector(f'{dash} .wb-pending[data-proposal]:not([data-proposal="{pid1}"])', timeout=SLOW)
    pid2 = card.get_attribute("data-proposal")

    # the next optimizer request the endpoint received reads the reason and the parameter feedback
    later = requests_of(endpoint, "optimizer-model")[optimizer_before:]
    assert later, "no optimizer request after the rejection"
    assert LAB_REASON in later[0] and PARAM_FEEDBACK in later[0]
    assert not any(LAB_REASON in r for r in requests_of(endpoint, "optimizer-model")[:optimizer_before])
    # review marks the person's words in the gradient summary of the proposal that read them
    mark = page.locator(f'{dash} .wb-pending[data-proposal="{pid2}"] .wb-gradsum mark.wb-person-text')
    assert PARAM_FEEDBACK in mark.first.text_content()
    assert mark.first.locator(".wb-person-badge").text_content() == "person"
    shot(page, "teaching-1-after-reject", dash)

    # the rest by validation alone; the next step's backward reads the sample's and the node's feedback
    page.click(f"{dash} .wb-review-view input.wb-auto")
    page.wait_for_selector(f"{dash} .wb-controls-view .wb-badge-finished", timeout=SLOW)
    backward = requests_of(endpoint, "backward-model")
    assert any(SAMPLE_FEEDBACK in r for r in backward), "the sample's feedback never reached a backward request"
    assert any(NODE_FEEDBACK in r for r in backward), "the node's feedback never reached a backward request"

    # the views show each as the person's
    hist = page.locator(f'{dash} .wb-history [data-proposal="{pid1}"]')
    assert LAB_REASON in hist.locator(".wb-person-reason").text_content()
    assert hist.locator("summary .wb-person-badge").count() == 1
    row = page.locator(f'{dash} .wb-samples-view tr[data-sample="q2"]')
    notes = row.locator(".wb-person-note")
    assert any(SAMPLE_FEEDBACK in notes.nth(i).text_content() for i in range(notes.count()))
    used = row.locator('.wb-person-note[data-status="used"]')
    assert used.count() >= 1
    page.locator(f'{dash} .wb-samples-view tr[data-sample="q2"]').click()
    page.locator(f'{dash} .wb-graph-view g.node[data-node-id="answer"]').click()
    page.wait_for_selector(f"{dash} .wb-graph-view .wb-panel .wb-grad.wb-grad-person .wb-person-badge", timeout=SLOW)
    mine = page.locator(f"{dash} .wb-review-view .wb-mine").text_content()
    for text in (SAMPLE_FEEDBACK, NODE_FEEDBACK, PARAM_FEEDBACK, LEAKING_FEEDBACK):
        assert text in mine
    # hostile text in a reason and a feedback: text, never markup
    assert page.locator(f"{dash} img, {dash} .wb-view script").count() == 0
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.__wbXss === undefined")
    errors = [m for m in page.console_messages if m.startswith("pageerror")]
    assert not errors, errors
    shot(page, "teaching-2-finished", dash)
