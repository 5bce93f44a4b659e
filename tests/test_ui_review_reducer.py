"""Review view reducer: what the history and the parameter list say, checked on the traits the
browser gets (found by using the dashboard on a run with a router: one parameter got no feedback in
some steps, and the optimizer repeated proposals it had already tried)."""
from __future__ import annotations

from workbench.records.events import EventBus
from workbench.ui import Funnel, ReviewView

from test_widgets import Emitter, start_run


def review_after(events) -> ReviewView:
    bus = EventBus()
    funnel = Funnel(bus=bus, threaded=False)
    view = ReviewView(funnel)
    emit = Emitter(bus)
    start_run(emit)
    events(emit)
    funnel.flush()
    return view


def test_a_proposal_never_applied_is_not_called_reverted():
    """Only a proposal that was tried and undone reads 'reverted'; one that failed the minibatch
    check, or was refused before any check (a repeat), says so in its status."""
    def run(emit):
        emit.step = 2
        for pid in ("p2-1", "p2-2", "p2-3"):
            emit("proposal", proposal_id=pid, parameter="answer.instruction", role="instruction", old="Answer.",
                 new="Answer. Think step by step.", source="optimizer", gradient_summary="")
        emit("minibatch", proposal_id="p2-1", before=0.5, after=0.5, passed=False)
        emit("update", proposal_id="p2-1", parameter="answer.instruction", accepted=False, value="Answer.",
             reason="minibatch score stayed at 0.500 (a strict gain is required)")
        emit("update", proposal_id="p2-2", parameter="answer.instruction", accepted=False, value="Answer.",
             reason="already rejected in this step")
        emit("minibatch", proposal_id="p2-3", before=0.5, after=0.75, passed=True)
        emit("approval_requested", proposal_id="p2-3", parameter="answer.instruction", old="Answer.",
             new="Answer. Think step by step.", minibatch_before=0.5, minibatch_after=0.75)
        emit("decision", proposal_id="p2-3", action="reject", by="person", text=None, at=0.0)
        emit("update", proposal_id="p2-3", parameter="answer.instruction", accepted=False, value="Answer.",
             reason="rejected by person")
    status = {h["proposal_id"]: h["status"] for h in review_after(run).history}
    assert status == {"p2-1": "failed the minibatch", "p2-2": "refused", "p2-3": "reverted"}


def test_a_no_feedback_note_goes_once_the_parameter_gets_a_proposal():
    """'Why nothing was proposed' is about the latest steps: once a later step proposes something for
    the parameter, the old no-feedback note no longer holds and is not shown as if it did."""
    def run(emit):
        emit.step = 1
        emit("no_proposal", parameter="answer.instruction", source="feedback",
             reason="no feedback this step: no node using it ran on the back-propagated samples (q2, q6)")
        emit.step = 2
        emit("skipped", stage="backward", parameter="answer.instruction", node_id="answer", sample_id="q7",
             error="LLMCallError: timed out")
        emit("proposal", proposal_id="p2-1", parameter="answer.instruction", role="instruction", old="Answer.",
             new="Answer in one word.", source="optimizer", gradient_summary="")
    notes = {p["name"]: p["notes"] for p in review_after(run).parameters}
    assert [n["step"] for n in notes["answer.instruction"]] == [2]  # this step's skipped gradient stays
    assert notes["query.instruction"] == []


def test_a_joint_group_without_a_proposal_is_noted_on_each_of_its_parameters():
    def run(emit):
        emit.step = 1
        emit("no_proposal", parameter="query.instruction+answer.instruction", source="optimizer",
             reason="the optimizer's reply had no usable proposal", reply="...")
    notes = {p["name"]: [n["text"] for n in p["notes"]] for p in review_after(run).parameters}
    assert all("no usable proposal" in " ".join(notes[name]) for name in ("query.instruction", "answer.instruction"))


def test_the_same_reason_twice_in_one_step_is_one_note_that_counts_the_attempts():
    """A base model's empty optimizer reply is retried with the next attempt's seed, so one step can
    emit the same no_proposal twice: the parameter shows it once, with how many attempts it took."""
    reason = "the optimizer's reply held no usable value (empty, or it echoed its prompt)"

    def run(emit):
        emit.step = 2
        for _ in range(2):
            emit("no_proposal", parameter="answer.instruction", source="optimizer", reason=reason, reply="")
        emit.step = 3
        emit("no_proposal", parameter="answer.instruction", source="optimizer", reason=reason, reply="")
    notes = {p["name"]: p["notes"] for p in review_after(run).parameters}
    assert notes["answer.instruction"] == [
        {"step": 2, "kind": "no proposal", "text": f"no proposal: {reason} (2 attempts)"},
        {"step": 3, "kind": "no proposal", "text": f"no proposal: {reason}"}]
