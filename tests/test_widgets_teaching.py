"""The dashboard's side of issue 16, in Python: the browser's reason and feedback requests reach the
trainer's API and are answered; the views' traits carry a person's feedback, reasons and gradients,
marked as the person's. (In Chromium: tests/browser/test_dashboard_teaching.py.)"""
from __future__ import annotations

import time

import pytest

from workbench.errors import FeedbackRefused
from workbench.ui.reducers.person import mark_texts
from workbench.ui.teaching import send_feedback

from test_widgets import PAYLOAD, FakeTrainer, ask, browser, emit_step, rig, start_run  # noqa: F401  (rig: fixture)

RLO_REASON = "too long \u202e gnp.exe"


class TeachableTrainer(FakeTrainer):
    """FakeTrainer with the issue-16 API: decide(reason=), feedback() that refuses like the real one."""

    def __init__(self, refuse: str | None = None):
        super().__init__()
        self.refuse = refuse

    def decide(self, proposal_id, action, text=None, by="person", *, value=None, reason=None):
        self.calls.append(("decide", proposal_id, action, text, by, reason))
        return self.desk.answer(proposal_id, action, text, by, reason=reason)

    def feedback(self, text, *, sample_id=None, node=None, parameter=None):
        self.calls.append(("feedback", text, sample_id, node, parameter))
        if self.refuse:
            raise FeedbackRefused(f"feedback refused: {self.refuse}")
        return object()


@pytest.fixture
def teach(rig):
    """The widgets' rig, its trainer swapped for one that takes reasons and feedback."""
    tr, funnel, views, sent, emit = rig
    teachable = TeachableTrainer()
    teachable.bus, teachable.desk = tr.bus, tr.desk
    funnel.trainer = teachable
    return teachable, funnel, views, sent, emit


# -- browser -> kernel ------------------------------------------------------------------------------

def test_a_reason_typed_beside_reject_goes_to_trainer_decide(teach):
    tr, funnel, views, sent, emit = teach
    from workbench.training.approval import PendingProposal
    pending = PendingProposal("p1", "answer.instruction", "a", "b")
    tr.desk.open(pending)
    browser(views["review"], type="decide", proposal_id="p1", action="reject", text=None, reason=RLO_REASON)
    assert tr.calls[-1] == ("decide", "p1", "reject", None, "person", RLO_REASON)
    assert pending.future.result(timeout=1).reason == RLO_REASON.strip()
    assert sent["review"][-1]["type"] == "decision_result" and sent["review"][-1]["ok"] is True


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_a_one_click_reject_sends_no_reason(teach, reason):
    tr, funnel, views, sent, emit = teach
    from workbench.training.approval import PendingProposal
    tr.desk.open(PendingProposal("p1", "answer.instruction", "a", "b"))
    msg = {"type": "decide", "proposal_id": "p1", "action": "reject", "text": None}
    if reason is not None:
        msg["reason"] = reason
    browser(views["review"], **msg)
    assert tr.calls[-1] == ("decide", "p1", "reject", None, "person", None)


@pytest.mark.parametrize("target,expected", [
    ({"sample_id": "s1"}, ("s1", None, None)),
    ({"sample_id": "s1", "node": "query#2"}, ("s1", "query#2", None)),
    ({"parameter": "answer.instruction"}, (None, None, "answer.instruction")),
])
def test_feedback_from_each_view_reaches_trainer_feedback_and_is_answered(teach, target, expected):
    tr, funnel, views, sent, emit = teach
    view = views["review" if "parameter" in target else "graph" if "node" in target else "samples"]
    browser(view, type="feedback", request_id="r7", text=PAYLOAD, **target)
    assert tr.calls[-1] == ("feedback", PAYLOAD, *expected)
    reply = sent[view.kind][-1]
    assert reply["type"] == "feedback_result" and reply["request_id"] == "r7" and reply["ok"] is True
    assert reply["where"]


def test_a_refused_feedback_tells_the_person_why(teach):
    tr, funnel, views, sent, emit = teach
    tr.refuse = "leaks a training target: 'denmark'"
    browser(views["samples"], type="feedback", request_id="r1", text="it should be Denmark", sample_id="s1")
    reply = sent["samples"][-1]
    assert reply == {"type": "feedback_result", "request_id": "r1", "ok": False,
                     "reason": "feedback refused: leaks a training target: 'denmark'", "where": ""}


@pytest.mark.parametrize("msg,why", [
    ({"text": "  ", "sample_id": "s1"}, "write some feedback first"),
    ({"text": 3, "sample_id": "s1"}, "write some feedback first"),
    ({"text": "fine"}, "choose a sample, a node or a parameter first"),
])
def test_malformed_feedback_is_answered_without_calling_the_trainer(teach, msg, why):
    tr, funnel, views, sent, emit = teach
    browser(views["samples"], type="feedback", request_id="r2", **msg)
    assert not [c for c in tr.calls if c[0] == "feedback"]
    assert sent["samples"][-1]["ok"] is False and sent["samples"][-1]["reason"] == why


def test_a_dashboard_without_a_trainer_or_a_broken_one_answers_instead_of_raising():
    assert send_feedback(None, {"text": "x", "sample_id": "s1"})["ok"] is False

    class Broken:
        def feedback(self, *a, **k):
            raise RuntimeError("disk full")
    answer = send_feedback(Broken(), {"text": "x", "sample_id": "s1", "request_id": "r"})
    assert answer["ok"] is False and "RuntimeError: disk full" in answer["reason"]


# -- kernel -> browser: what the views show ----------------------------------------------------------------

def given(emit, fid, text, *, kind="sample", sample_id="s1", node_id=None, parameter=None, accepted=True, reason=None):
    emit("feedback", feedback_id=fid, text=text, target_kind=kind, sample_id=sample_id, node_id=node_id,
         parameter=parameter, accepted=accepted, reason=reason)


def test_views_show_the_persons_feedback_where_it_was_given_and_what_became_of_it(teach):
    tr, funnel, views, sent, emit = teach
    start_run(emit)
    emit_step(emit, 1, approve=None)  # p1 waits for a decision
    given(emit, "f1", f"on the row {PAYLOAD}")
    given(emit, "f2", "the second query is vague", kind="node", node_id="query#2")
    given(emit, "f3", "keep it short", kind="parameter", sample_id=None, parameter="answer.instruction")
    given(emit, "f4", "it is Denmark", accepted=False, reason="leaks a training target: 'denmark'")
    funnel.flush()
    funnel.select(node_id="query#2", sample_id="s1")
    row = next(r for r in views["samples"].rows if r["sample_id"] == "s1")
    assert [(f["text"], f["status"]) for f in row["feedback"]] == [(f"on the row {PAYLOAD}", "queued"),
                                                                   ("it is Denmark", "refused")]
    assert row["feedback"][1]["reason"] == "leaks a training target: 'denmark'"
    call = next(c for c in views["graph"].panel["calls"] if c["node_id"] == "query#2")
    assert [f["text"] for f in call["person"]] == ["the second query is vague"]
    other = next(c for c in views["graph"].panel["calls"] if c["node_id"] == "query")
    assert other["person"] == []
    mine = views["review"].feedback
    assert [f["feedback_id"] for f in mine] == ["f4", "f3", "f2", "f1"]  # newest first
    assert mine[1]["where"] == "parameter answer.instruction"
    # the next backward uses the sample's feedback: its status says so
    emit.step = 2
    emit("feedback_used", feedback_id="f1", used_in="backward", sample_id="s1")
    emit("feedback_used", feedback_id="f2", used_in="backward", sample_id="s1", applied=False,
         note="query#2 is not in sample s1's graph")
    funnel.flush()
    by_id = {f["feedback_id"]: f for f in views["review"].feedback}
    assert by_id["f1"]["status"] == "used" and by_id["f1"]["label"] == "used (backward of step 2)"
    assert by_id["f2"]["status"] == "not applied" and "not in sample" in by_id["f2"]["reason"]


def test_a_persons_gradient_is_marked_in_the_panel_and_in_the_gradient_summary(teach):
    tr, funnel, views, sent, emit = teach
    start_run(emit)
    emit_step(emit, 1, proposal=False)
    emit.step = 2
    emit("step_started", epoch=0, batch=["s1"])
    emit("gradient", sample_id="s1", node_id="answer", component="answer", call_index=1, target="answer.instruction",
         target_kind="parameter", score=0.0, text=f"say it shorter {PAYLOAD}", source="person")
    emit("gradient", sample_id="s1", node_id="answer", component="answer", call_index=1, target="answer.instruction",
         target_kind="parameter", score=0.0, text="the engine's view", source="backward")
    summary = f"Sample s1 (score 0):\n  - at answer (call 1): say it shorter {PAYLOAD}\n  - at answer (call 1): the engine's view"
    emit("proposal", proposal_id="p2", parameter="answer.instruction", role="instruction", old="Answer.",
         new="Answer briefly.", source="optimizer", gradient_summary=summary)
    emit("minibatch", proposal_id="p2", before=0.0, after=1.0, passed=True)
    emit("approval_requested", proposal_id="p2", parameter="answer.instruction", old="Answer.", new="Answer briefly.",
         minibatch_before=0.0, minibatch_after=1.0)
    funnel.flush()
    funnel.select(node_id="answer", sample_id="s1")
    grads = next(c for c in views["graph"].panel["calls"] if c["node_id"] == "answer")["gradients"]
    assert [(g["source"], g["text"]) for g in grads] == [("person", f"say it shorter {PAYLOAD}"),
                                                          ("backward", "the engine's view")]
    parts = views["review"].pending["gradient_parts"]
    assert "".join(t for _, t in parts) == summary  # nothing lost or reordered
    assert [t for s, t in parts if s == "person"] == [f"say it shorter {PAYLOAD}"]


def rejected_with(teach, reason):
    """Proposal p1 waited and was rejected by a person who gave `reason`; returns the views."""
    tr, funnel, views, sent, emit = teach
    start_run(emit)
    emit.step = 1
    ask(emit, "p1", "Answer.", "Answer in one word.")
    emit("decision", proposal_id="p1", action="reject", by="person", text=None, at=time.time(), reason=reason)
    emit("update", proposal_id="p1", parameter="answer.instruction", accepted=False, value="Answer.",
         reason="rejected by person")
    funnel.flush()
    return views


def test_the_decision_reason_shows_in_the_history_as_the_persons(teach):
    views = rejected_with(teach, RLO_REASON)
    item = next(h for h in views["review"].history if h["proposal_id"] == "p1")
    assert item["decision_reason"] == RLO_REASON and item["reason"] == "rejected by person"


@pytest.mark.parametrize("summary,texts,expected", [
    ("at a: X\n  - X", ["X"], [["", "at a: "], ["person", "X"], ["", "\n  - "], ["person", "X"]]),
    ("no mark here", ["absent"], [["", "no mark here"]]),
    ("I know: no", ["no"], [["", "I know: "], ["person", "no"]]),  # a short text only where it stands whole
    ("- ab", ["a", "ab"], [["", "- "], ["person", "ab"]]),         # the longer text wins at one place
    ("", ["x"], []),
    ("- " + "x" * 600 + " ...", ["x" * 600 + "y" * 300], [["", "- "], ["person", "x" * 600], ["", " ..."]]),  # clipped
])
def test_mark_texts_keeps_every_character_and_marks_the_persons(summary, texts, expected):
    assert mark_texts(summary, texts) == expected
    assert "".join(t for _, t in mark_texts(summary, texts)) == summary


def test_the_curves_hover_gives_the_persons_reason_escaped(teach):
    views = rejected_with(teach, PAYLOAD)
    assert views["curves"].marks[-1]["person_reason"] == PAYLOAD
    hovers = [t for trace in views["curves"].figures["score"]["data"] for t in (trace.get("text") or [])
              if isinstance(t, str) and "p1" in t]
    assert any("the person's reason: &lt;img src=x" in t for t in hovers), hovers
    assert not any("<img" in t for t in hovers)


def test_a_dashboard_opened_on_a_resumed_run_shows_the_feedback_its_checkpoint_holds():
    from workbench.optim.person_feedback import FeedbackInbox, PersonFeedback
    from workbench.ui import Funnel, ReviewView
    tr = TeachableTrainer()

    class Teaching:
        inbox = FeedbackInbox([PersonFeedback("f1", "still to use", "sample", "s1", given_at_step=2),
                               PersonFeedback("f2", "used already", "parameter", parameter="answer.instruction",
                                              given_at_step=1, used_at_step=2)])
    tr.teaching = Teaching()
    funnel = Funnel(tr, threaded=False)
    review = ReviewView(funnel)
    try:
        shown = {f["feedback_id"]: (f["status"], f["label"], f["text"]) for f in review.feedback}
        assert shown == {"f1": ("queued", "queued", "still to use"), "f2": ("used", "used (step 2)", "used already")}
    finally:
        funnel.close()
