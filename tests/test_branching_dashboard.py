""""Branch from here" in the dashboard, on the Python side: the review view's message makes the branch,
every view follows it, and the curves view gets the family chart with both runs' curves."""
import warnings

from scripted_tasks import GOOD, TEST, TRAIN, VAL, Optimizer, Shout, backward, same_text, task
from workbench.llm.models import Models
from workbench.records.family import branch_record
from workbench.training.approval import CallbackApproval, Decision
from workbench.training.trainer import TrainConfig, Trainer
from workbench.ui import Workbench


def person(pending):
    """Rejects the first proposal that reaches them (p1-2, the right one), accepts later ones."""
    return Decision("reject" if pending.proposal_id.startswith("p1-") else "accept", "person")


def dashboard(tmp_path):
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, Optimizer()),
                      config=TrainConfig(max_steps=2, batch_size=4, concurrency=2),
                      approval=CallbackApproval(person), run_dir=tmp_path / "runs" / "parent")
    wb = Workbench(trainer)
    wb.start().result()
    wb.flush()
    return wb, trainer


def test_branch_from_here_accepts_a_rejected_proposal_and_shows_both_curves(tmp_path):
    wb, parent = dashboard(tmp_path)
    history = {h["proposal_id"]: h for h in wb.review.history}
    assert history["p1-2"]["accepted"] is False and "family" not in wb.curves.figures  # no family yet
    replies = []
    wb.review.reply = lambda **content: replies.append(content)
    wb.funnel.handle(wb.review, {"type": "branch", "proposal_id": "p1-2", "decision": "accept"})
    assert replies[-1]["ok"], replies
    child = wb.trainer
    assert child is not parent and branch_record(child.store.path)["decision"]["proposal_id"] == "p1-2"
    summary = wb.funnel.future.result(timeout=60)
    wb.flush()
    assert summary.status == "completed" and child.params["shout.instruction"].value == GOOD
    assert wb.controls.run_id == child.run_id  # every view follows the branch
    shown = {h["proposal_id"]: h for h in wb.review.history}  # the branch's own history: step 1 replayed
    assert shown["p1-2"]["accepted"] is True and shown["p1-1"]["accepted"] is False
    family = wb.curves.figures["family"]
    lines = [t for t in family["data"] if t.get("showlegend", True)]
    assert [t["name"] for t in lines] == ["parent", child.run_id]
    assert lines[1]["x"][0] == 0 and lines[1]["y"][-1] == 1.0  # the branch kept p1-2 at step 1: validation 1.0
    assert "branch of parent after step 0, accept p1-2" in wb.controls.message


def test_a_branch_that_cannot_be_made_is_a_reply_not_a_crash(tmp_path):
    wb, parent = dashboard(tmp_path)
    replies = []
    wb.review.reply = lambda **content: replies.append(content)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wb.funnel.handle(wb.review, {"type": "branch", "proposal_id": "p2-4", "decision": "accept"})
    assert replies[-1]["ok"] is False and "kept in parent already" in replies[-1]["reason"]
    assert wb.trainer is parent


def test_branch_before_a_step_to_decide_again(tmp_path):
    from workbench.training.approval import HumanApproval

    wb, parent = dashboard(tmp_path)
    parent.approval = HumanApproval(timeout=0.5, default="accept")  # auto-approve was on; a person decides now
    parent.approval.auto = True
    replies = []
    wb.review.reply = lambda **content: replies.append(content)
    wb.funnel.handle(wb.review, {"type": "branch", "step": 0})
    assert replies[-1]["ok"], replies
    child = wb.trainer
    # the branch is already running in its worker thread, so its step may have moved on: read where it began
    assert child.resumed_from == 0 and branch_record(child.store.path)["step"] == 0
    assert child.approval.auto is False and parent.approval.auto is True
    assert not wb.review.auto_approve  # the review shows that a person decides again
    assert branch_record(child.store.path)["decision"] is None
    wb.funnel.future.result(timeout=60)
    wb.flush()
    assert "deciding again" in wb.controls.message


def test_the_dashboard_on_a_branch_shows_the_words_it_inherits_marked_as_inherited(tmp_path):
    """The parent's person rejected p1-2 with a reason and gave feedback; a branch after step 1 carries both
    (its optimizer still reads them). The dashboard following the branch shows them, marked with the parent,
    its live fold holds them as open_run does, and a person's text in a gradient summary is marked."""
    from workbench.records.results import open_run
    from workbench.ui.branching import follow
    from workbench.training.branching import branch
    reason = "Keep it <b>short</b>, please."

    def rejects_with_reason(pending):
        if pending.proposal_id == "p1-2":
            return Decision("reject", "person", reason=reason)
        return Decision("accept", "policy")

    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, Optimizer()),
                      config=TrainConfig(max_steps=2, batch_size=4, concurrency=2),
                      approval=CallbackApproval(rejects_with_reason), run_dir=tmp_path / "runs" / "parent")
    trainer.feedback("Capital letters, every time.", parameter="shout.instruction")
    wb = Workbench(trainer)
    wb.start().result()
    wb.flush()
    child = branch(trainer, at_step=1, run_dir=tmp_path / "runs" / "child")
    follow(wb, child)
    wb.flush()
    shown = {f["text"]: f for f in wb.review.feedback}
    assert set(shown) == {reason, "Capital letters, every time."}
    assert all(f["from_run"] == "parent" and "inherited from parent" in f["label"] for f in shown.values())
    assert "reject p1-2" in shown[reason]["where"]
    assert wb.funnel.state.person.segments(f"- {reason}")[-1] == ["person", reason]
    live = wb.funnel.state.fold.contributions.rows
    stored = open_run(child.store.path).contributions
    assert [(r["kind"], r["text"] or "", r["reason"] or "", r["from_run"]) for r in live] == \
        list(zip(stored["kind"], stored["text"].fillna(""), stored["reason"].fillna(""), stored["from_run"]))
