"""The notebook widgets, Python side: traits, browser messages, decisions, throttling.

Most tests feed the funnel a synthetic event stream built to docs/EVENTS.md (no trainer, no
kernel); the last ones drive a real Trainer with ScriptedModels and HumanApproval.
"""
from __future__ import annotations

import re
import subprocess
import sys
import time
from concurrent.futures import Future

import pytest
import traitlets

from workbench.training.approval import ApprovalDesk, HumanApproval, PendingProposal
from workbench.training.controls import AutoApprove, Exclude, Pause, Pin, Resume, Step, Stop, control_event
from workbench.training.run_state import flag_sample
from workbench.records.events import Event, EventBus
from workbench.engine.parameter import Parameter
from workbench.ui import (ControlsView, CurvesView, Funnel, GraphView, ReviewView, SamplesView, Workbench,
                          word_diff)
from workbench.ui import assets

PAYLOAD = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


# -- a synthetic run -----------------------------------------------------------------------------

def graph_dict(sid, *, hops=2, question="q?", prediction="Paris", target="Paris", score=1.0):
    """A recorded graph like Graph.to_dict(): query -> retrieve (looped `hops` times) -> answer -> loss."""
    nodes, edges, prev = [], [], None
    for i in range(1, hops + 1):
        q = "query" if i == 1 else f"query#{i}"
        r = "retrieve" if i == 1 else f"retrieve#{i}"
        nodes.append({"id": q, "component": "query", "kind": "llm", "call_index": i,
                      "parameters": ["query.instruction"], "inputs": {"question": question, "known": prev or ""},
                      "output": f"query {i} of {sid}", "prompt": None, "status": "done", "error": None,
                      "started": 0.0, "ended": 0.1, "prompt_tokens": 3, "completion_tokens": 2, "cached": False})
        nodes.append({"id": r, "component": "retrieve", "kind": "function", "call_index": i, "parameters": [],
                      "inputs": {"query": f"query {i} of {sid}"}, "output": f"doc {i}", "prompt": None,
                      "status": "done", "error": None, "started": 0.0, "ended": 0.1, "prompt_tokens": 0,
                      "completion_tokens": 0, "cached": False})
        edges.append({"source": q, "target": r, "input": "query"})
        prev = r
    nodes.append({"id": "answer", "component": "answer", "kind": "llm", "call_index": 1,
                  "parameters": ["answer.instruction"], "inputs": {"question": question, "context": "doc"},
                  "output": prediction, "prompt": None, "status": "done", "error": None, "started": 0.0,
                  "ended": 0.1, "prompt_tokens": 3, "completion_tokens": 1, "cached": False})
    nodes.append({"id": "loss", "component": "loss", "kind": "loss", "call_index": 1, "parameters": [],
                  "inputs": {"prediction": prediction, "target": target}, "output": f"score {score:g}",
                  "prompt": None, "status": "done", "error": None, "started": 0.0, "ended": None,
                  "prompt_tokens": 0, "completion_tokens": 0, "cached": False})
    edges += [{"source": prev, "target": "answer", "input": "context"},
              {"source": "answer", "target": "loss", "input": "prediction"}]
    return {"sample_id": sid, "nodes": nodes, "edges": edges, "gradients": [],
            "loss": {"score": score, "prediction": prediction, "target": target, "passed": score >= 1}}


class Emitter:
    def __init__(self, bus):
        self.bus, self.step = bus, 0

    def __call__(self, type, **data):
        self.bus.emit(Event(type, data, run_id="r1", step=self.step))


PARAMS = [Parameter("query.instruction", "Write a query."), Parameter("answer.instruction", "Answer.")]


def emit_step(emit, step, *, samples=("s1", "s2", "s3"), proposal=True, approve=True, hops=2):
    emit.step = step
    emit("step_started", epoch=0, batch=list(samples))
    for i, sid in enumerate(samples):
        g = graph_dict(sid, hops=hops, question=PAYLOAD if sid == "s2" else f"question {sid}",
                       prediction="wrong" if i < 2 else "Paris", score=0.0 if i < 2 else 1.0)
        for n in g["nodes"]:
            emit("node", sample_id=sid, split="train", node_id=n["id"], component=n["component"], kind=n["kind"],
                 call_index=n["call_index"], status="running")
            emit("node", sample_id=sid, split="train", node_id=n["id"], component=n["component"], kind=n["kind"],
                 call_index=n["call_index"], status="done")
        emit("forward", split="train", phase="train", graph=g,
             summary={"sample_id": sid, "inputs": {"question": g["nodes"][0]["inputs"]["question"]},
                      "target": "Paris", "prediction": g["loss"]["prediction"], "score": g["loss"]["score"],
                      "status": "ok" if g["loss"]["passed"] else "failed", "error": None, "seconds": 0.1})
    emit("selection", samples=[{"sample_id": "s1", "selected": True, "reason": "failed (score 0 < 1)"},
                               {"sample_id": "s2", "selected": False, "reason": "failed, but over the cap of 1"},
                               {"sample_id": "s3", "selected": True, "reason": "passed (score 1), kept for contrast"}])
    for sid in ("s1", "s3"):
        emit("gradient", sample_id=sid, node_id="loss", component="loss", call_index=1, target="answer",
             target_kind="value", score=0.0, text=f"loss says {sid} was wrong")
        emit("gradient", sample_id=sid, node_id="answer", component="answer", call_index=1,
             target="answer.instruction", target_kind="parameter", score=0.0, text=f"answer fix for {sid}")
        for i in range(hops, 0, -1):
            q = "query" if i == 1 else f"query#{i}"
            emit("gradient", sample_id=sid, node_id=q, component="query", call_index=i, target="query.instruction",
                 target_kind="parameter", score=0.0, text=f"call {i} feedback {sid}")
    emit("backward_done", samples=["s1", "s3"], gradients=8)
    accepted, rejected = [], []
    if proposal:
        pid = f"p{step}"
        old = "Answer." if step == 1 else "Answer in one word."
        emit("proposal", proposal_id=pid, parameter="answer.instruction", role="instruction", old=old,
             new="Answer in one word.", source="optimizer", gradient_summary="Sample s1: be brief")
        emit("minibatch", proposal_id=pid, before=0.33, after=0.66, passed=True)
        emit("approval_requested", proposal_id=pid, parameter="answer.instruction", old=old,
             new="Answer in one word.", minibatch_before=0.33, minibatch_after=0.66)
        if approve is not None:
            emit("decision", proposal_id=pid, action="accept" if approve else "reject", by="person", text=None,
                 at=time.time())
            if approve:
                emit("validation", proposal_id=pid, score=0.75, best=0.5, passed=True)
                emit("update", proposal_id=pid, parameter="answer.instruction", accepted=True,
                     value="Answer in one word.", reason="validation 0.750 beats best 0.500")
                accepted.append(pid)
            else:
                emit("update", proposal_id=pid, parameter="answer.instruction", accepted=False, value=old,
                     reason="rejected by person")
                rejected.append(pid)
    if approve is not None:
        emit("step_finished", epoch=0, train_score=0.33, val_score=0.75, best_val=0.75, accepted=accepted,
             rejected=rejected, usage={"task": {"calls": 10 * step, "prompt_tokens": 100 * step,
                                                "completion_tokens": 10 * step, "cache_hits": 0, "latency_s": 1.0}})


def start_run(emit):
    emit("run_started", run_id="r1", config={}, parameters=[p.to_dict() for p in PARAMS],
         splits={"train": 3, "val": 2, "test": 2}, resumed_from=None)
    emit("eval", split="val", phase="baseline", score=0.5, n=2, errored=0, proposal_id=None)


def ask(emit, pid, old, new, *, parameter="answer.instruction", before=0.3, after=0.6, source="optimizer"):
    """One proposal that passes the minibatch gate and waits for a person."""
    emit("proposal", proposal_id=pid, parameter=parameter, role="instruction", old=old, new=new, source=source,
         gradient_summary="")
    emit("minibatch", proposal_id=pid, before=before, after=after, passed=True)
    emit("approval_requested", proposal_id=pid, parameter=parameter, old=old, new=new, minibatch_before=before,
         minibatch_after=after)


class FakeTrainer:
    """Just what the funnel uses: bus, approval, decide through a real ApprovalDesk, and the control
    channel: each control is applied at once and recorded as the `control` event a real run emits."""

    def __init__(self):
        self.bus = EventBus()
        self.pinned, self.excluded = set(), set()
        self.approval = HumanApproval()
        self.desk = ApprovalDesk()
        self.calls = []
        self.future = None

        class P:
            def parameters(self_inner):
                return PARAMS
        self.pipeline = P()

    def decide(self, proposal_id, action, text=None, by="person"):
        self.calls.append(("decide", proposal_id, action, text, by))
        return self.desk.answer(proposal_id, action, text, by)

    def start(self):
        self.calls.append(("start",))
        self.future = Future()
        return self.future

    def control(self, control):
        self.calls.append(("control", control))
        if isinstance(control, (Pin, Exclude)):
            flag_sample(self.pinned, self.excluded, control.sample_id, "pin" if isinstance(control, Pin) else "exclude",
                        control.on)
        elif isinstance(control, AutoApprove):
            self.approval.auto = control.on
        self.bus.emit(control_event(control, auto_approve=self.approval.auto).event(run_id="r1"))

    def usage(self):
        return {"task": {"calls": 1, "prompt_tokens": 5, "completion_tokens": 1, "cache_hits": 0}}


def fake_svg(layout):
    return "<svg>" + "".join(f'<g id="node-{n["id"]}" class="node"></g>' for n in layout["nodes"]) + "</svg>"


@pytest.fixture
def rig():
    """A fake trainer, an unthreaded funnel (tests flush by hand) and one of each view."""
    tr = FakeTrainer()
    funnel = Funnel(tr, threaded=False, svg_renderer=fake_svg, prices={"task": (1.0, 2.0)})
    views = {"graph": GraphView(funnel), "samples": SamplesView(funnel), "curves": CurvesView(funnel),
             "review": ReviewView(funnel), "controls": ControlsView(funnel)}
    sent = {k: [] for k in views}
    for k, v in views.items():
        v.send = (lambda box: lambda content, buffers=None: box.append(content))(sent[k])
    emit = Emitter(tr.bus)
    yield tr, funnel, views, sent, emit
    funnel.close()


def browser(view, **msg):
    """What `model.send(msg)` in the browser arrives as in the kernel."""
    view._handle_custom_msg(msg, [])


# -- pure parts -----------------------------------------------------------------------------------

@pytest.mark.parametrize("old,new", [
    ("Answer the question.", "Answer the question in one word."),
    ("", "new text"), ("old text", ""),
    ("Line one.\n\nLine  two\twith tabs.", "Line one.\nLine two with tabs, changed."),
    (PAYLOAD, PAYLOAD.replace("alert", "confirm")),
])
def test_word_diff_rebuilds_both_texts(old, new):
    diff = word_diff(old, new)
    assert "".join(t for op, t in diff if op != "+") == old
    assert "".join(t for op, t in diff if op != "-") == new
    assert all(op in "=+-" for op, _ in diff)
    assert all(a[0] != b[0] for a, b in zip(diff, diff[1:]))  # neighbours merged


def test_word_diff_is_word_level():
    diff = word_diff("Answer the question.", "Answer the question briefly.")
    assert ["=", "Answer the "] == diff[0]
    assert ["-", "question."] in diff and ["+", "question briefly."] in diff


def test_each_view_module_is_one_self_contained_es_module():
    for name in ("graph.js", "samples.js", "curves.js", "review.js", "controls.js"):
        code = assets.esm(name)
        assert "export default" in code
        assert 'from "./util.js"' not in code and "import " not in code.split("// ----", 1)[0]
        assert "function safeSvg" in code and "export function" not in code
        assert not re.search(r"\.(innerHTML|outerHTML)\b|insertAdjacentHTML|document\.write|\beval\(|new Function",
                             code)
        assert "http://" not in code.replace("http://www.w3.org/2000/svg", "")  # nothing fetched
        assert "https://" not in code
    assert ".wb-view" in assets.css()


def test_front_end_files_are_found_from_an_override(tmp_path, monkeypatch):
    for f in assets.widgets_dir().iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    monkeypatch.setenv("WORKBENCH_WIDGETS_DIR", str(tmp_path))
    assert assets.widgets_dir() == tmp_path
    monkeypatch.setenv("WORKBENCH_WIDGETS_DIR", str(tmp_path / "missing"))
    assert assets.widgets_dir() != tmp_path / "missing"


@pytest.mark.parametrize("cls,names", [
    (GraphView, {"svg", "node_status", "badges", "caption", "selected_node", "selected_sample", "sample_ids", "panel"}),
    (SamplesView, {"rows", "selected_sample", "caption"}),
    (CurvesView, {"points", "marks", "usage", "totals", "figures"}),
    (ReviewView, {"pending", "history", "parameters", "auto_approve", "can_decide", "notice", "activity"}),
    (ControlsView, {"status", "step", "epoch", "detail", "run_id", "run_dir", "export_path", "export_formats",
                    "message", "summary"}),
])
def test_views_have_flat_synced_traits(cls, names):
    view = cls()
    synced = {n for n in view.trait_names(sync=True) if not n.startswith("_") and n not in
              set(traitlets.HasTraits().trait_names()) | {"layout", "tabbable", "tooltip", "comm", "keys", "log"}}
    assert names <= synced, names - synced
    simple = (traitlets.Unicode, traitlets.Int, traitlets.Bool, traitlets.Float, traitlets.List, traitlets.Dict)
    for n in names:
        assert isinstance(view.traits()[n], simple), n
    assert view.funnel is None  # usable on its own: a view without a funnel shows its traits


# -- the funnel with a synthetic stream --------------------------------------------------------------

def test_graph_view_lays_out_once_and_paints_status(rig):
    tr, funnel, v, sent, emit = rig
    calls = []
    funnel.state.graph._svg_renderer = lambda layout: calls.append(layout) or fake_svg(layout)
    start_run(emit)
    emit_step(emit, 1, approve=None)
    funnel.flush()
    g = v["graph"]
    ids = ["query", "retrieve", "query#2", "retrieve#2", "answer", "loss"]
    assert all(f'id="node-{i}"' in g.svg for i in ids)
    # gradients arrived: the nodes that received one are marked, the others are done
    assert g.node_status["answer"] == "gradient" and g.node_status["query#2"] == "gradient"
    assert len(calls) == 1  # three samples, one layout
    emit_step(emit, 2, approve=None)
    funnel.flush()
    assert len(calls) == 1  # same nodes: no new layout
    emit_step(emit, 3, approve=None, hops=3)  # a longer loop adds nodes: laid out again, once
    funnel.flush()
    assert len(calls) == 2 and 'id="node-query#3"' in g.svg


def test_node_status_follows_running_and_done_and_failures(rig):
    tr, funnel, v, sent, emit = rig
    start_run(emit)
    emit.step = 1
    emit("step_started", epoch=0, batch=["s1", "s2"])
    funnel.flush()
    g = graph_dict("s1")
    emit("forward", split="train", phase="train", graph=g, summary={"sample_id": "s1", "inputs": {}, "target": "",
                                                                     "prediction": "", "score": 1, "status": "ok"})
    funnel.flush()
    node = lambda sid, nid, st: emit("node", sample_id=sid, split="train", node_id=nid, component=nid, kind="llm",
                                     call_index=1, status=st)
    node("s1", "answer", "running")
    node("s2", "answer", "running")
    node("s1", "answer", "done")
    funnel.flush()
    assert v["graph"].node_status["answer"] == "running"  # s2 still runs it
    node("s2", "answer", "failed")
    funnel.flush()
    assert v["graph"].node_status["answer"] == "failed"
    node("s1", "loss", "running")  # the loss node announces its start only
    emit("forward", split="train", phase="train", graph=graph_dict("s1"),
         summary={"sample_id": "s1", "inputs": {}, "target": "", "prediction": "", "score": 1, "status": "ok"})
    funnel.flush()
    assert v["graph"].node_status["loss"] == "done"
    emit.step = 2
    emit("step_started", epoch=0, batch=["s1"])
    funnel.flush()
    assert v["graph"].node_status == {}  # everything waits again


def test_clicking_a_node_opens_its_panel_with_gradients_per_call(rig):
    tr, funnel, v, sent, emit = rig
    start_run(emit)
    emit_step(emit, 1, approve=None)
    funnel.flush()
    g = v["graph"]
    assert g.panel == {}
    browser(g, type="select_node", node_id="query#2")
    p = g.panel
    assert g.selected_node == "query#2" and p["component"] == "query" and p["multi_call"]
    assert p["sample_id"] == "s1"  # the first sample sent to backward
    assert [c["node_id"] for c in p["calls"]] == ["query", "query#2"]
    assert [c["current"] for c in p["calls"]] == [False, True]
    call2 = p["calls"][1]
    assert dict(call2["inputs"])["known"] == "retrieve" and call2["output"] == "query 2 of s1"
    texts = [gr["text"] for gr in call2["gradients"]]
    assert texts[0] == "call 2 feedback s1" and "call 2 feedback s3" in texts  # the selected sample first
    assert all("call 2" in t for t in texts)
    assert p["parameters"] == [{"name": "query.instruction", "role": "instruction", "value": "Write a query.",
                                "trainable": True, "description": "", "disconnected": ""}]
    # the answer node received feedback on its output (from loss) and on its parameter
    browser(g, type="select_node", node_id="answer")
    kinds = {(gr["kind"], gr["from"]) for gr in g.panel["calls"][0]["gradients"]}
    assert kinds == {("value", "loss"), ("parameter", "answer")}
    # clicking a sample row switches the panel's sample
    browser(v["samples"], type="select_sample", sample_id="s2")
    assert g.selected_sample == "s2" and v["samples"].selected_sample == "s2"
    assert dict(g.panel["calls"][0]["inputs"])["question"] == PAYLOAD  # text, untouched
    browser(g, type="select_node", node_id="")
    assert g.panel == {}


def test_samples_view_rows_selection_and_pin_exclude(rig):
    tr, funnel, v, sent, emit = rig
    start_run(emit)
    emit_step(emit, 1, approve=None)
    funnel.flush()
    rows = {r["sample_id"]: r for r in v["samples"].rows}
    assert list(rows) == ["s1", "s2", "s3"]
    assert rows["s1"]["selected"] is True and rows["s1"]["reason"].startswith("failed")
    assert rows["s2"]["selected"] is False and "cap" in rows["s2"]["reason"]
    assert rows["s2"]["input"] == PAYLOAD and rows["s1"]["score"] == 0.0 and rows["s3"]["status"] == "ok"
    browser(v["samples"], type="pin", sample_id="s2", value=True)
    assert tr.pinned == {"s2"} and {r["sample_id"]: r for r in v["samples"].rows}["s2"]["pinned"]
    browser(v["samples"], type="exclude", sample_id="s2", value=True)  # exclude wins over pin
    assert tr.pinned == set() and tr.excluded == {"s2"}
    browser(v["samples"], type="exclude", sample_id="s2", value=False)
    assert tr.excluded == set()
    browser(v["samples"], type="pin", sample_id="", value=True)  # malformed: ignored
    assert tr.pinned == set()
    assert "step 1" in v["samples"].caption


def test_curves_view_points_marks_usage_and_cost(rig):
    tr, funnel, v, sent, emit = rig
    start_run(emit)
    emit_step(emit, 1, approve=True)
    emit_step(emit, 2, approve=False)
    funnel.flush()
    c = v["curves"]
    assert [p["step"] for p in c.points] == [0, 1, 2]
    assert c.points[0] == {"step": 0, "minibatch": None, "best": 0.5}  # the baseline
    assert c.points[1] == {"step": 1, "minibatch": 0.33, "best": 0.75}
    # every proposal, with its own outcome; a rejected one was never validated and has no score
    assert [(m["proposal_id"], m["outcome"], m["validation"]) for m in c.marks] == [("p1", "kept", 0.75),
                                                                                    ("p2", "rejected", None)]
    # per step and role (not cumulative), priced
    assert [(u["step"], u["role"], u["calls"], u["tokens"]) for u in c.usage] == [(1, "task", 10, 110),
                                                                                  (2, "task", 10, 110)]
    assert c.usage[1]["cost"] == pytest.approx((100 * 1.0 + 10 * 2.0) / 1e6)
    assert c.totals["tokens"] == 220 and c.totals["calls"] == 20
    assert c.totals["cost"] == pytest.approx((200 * 1.0 + 20 * 2.0) / 1e6)
    assert set(c.figures) == {"score", "cost"} and c.figures["cost"]["layout"]["yaxis"]["title"]["text"] \
        == "cost (USD, estimated) per step"


def test_review_view_pending_diff_decisions_and_history(rig):
    tr, funnel, v, sent, emit = rig
    r = v["review"]
    start_run(emit)
    emit_step(emit, 1, approve=None)  # waits for a decision
    tr.desk.open(PendingProposal("p1", "answer.instruction", "Answer.", "Answer in one word."))
    funnel.flush()
    assert r.pending["proposal_id"] == "p1" and r.can_decide and not r.auto_approve
    assert r.pending["diff"] == [["-", "Answer."], ["+", "Answer in one word."]]
    assert r.pending["gradient_summary"] == "Sample s1: be brief"
    assert (r.pending["minibatch_before"], r.pending["minibatch_after"]) == (0.33, 0.66)
    # a decision for another proposal (a stale button) is refused and changes nothing
    browser(r, type="decide", proposal_id="p0", action="accept")
    assert sent["review"][-1] == {"type": "decision_result", "proposal_id": "p0", "action": "accept", "ok": False,
                                  "reason": "proposal p0 is no longer waiting for a decision"}
    assert not tr.desk.pending.future.done()
    # an edit without text is refused before it reaches the trainer
    browser(r, type="decide", proposal_id="p1", action="edit", text="  ")
    assert sent["review"][-1]["ok"] is False and not tr.desk.pending.future.done()
    browser(r, type="decide", proposal_id="p1", action="explode")
    assert sent["review"][-1]["ok"] is False
    # the real button
    browser(r, type="decide", proposal_id="p1", action="accept")
    assert sent["review"][-1]["ok"] is True
    assert tr.desk.pending.future.result(0).action == "accept"
    assert tr.calls[-1] == ("decide", "p1", "accept", None, "person")
    # a second click on the same (now answered) proposal does nothing
    browser(r, type="decide", proposal_id="p1", action="reject")
    assert sent["review"][-1]["ok"] is False and tr.desk.pending.future.result(0).action == "accept"
    tr.desk.close()
    emit("decision", proposal_id="p1", action="accept", by="person", text=None, at=0.0)
    emit("validation", proposal_id="p1", score=0.75, best=0.5, passed=True)
    emit("update", proposal_id="p1", parameter="answer.instruction", accepted=True, value="Answer in one word.",
         reason="validation 0.750 beats best 0.500")
    funnel.flush()
    assert r.pending == {}
    h = r.history[0]
    assert (h["proposal_id"], h["status"], h["action"], h["by"], h["validation"]) == \
        ("p1", "kept", "accept", "person", 0.75)
    assert h["diff"] == [["-", "Answer."], ["+", "Answer in one word."]]
    assert {p["name"]: p["value"] for p in r.parameters}["answer.instruction"] == "Answer in one word."


def test_review_edit_sends_the_text_and_history_shows_it(rig):
    tr, funnel, v, sent, emit = rig
    r = v["review"]
    start_run(emit)
    emit_step(emit, 1, approve=None)
    tr.desk.open(PendingProposal("p1", "answer.instruction", "Answer.", "Answer in one word."))
    funnel.flush()
    browser(r, type="decide", proposal_id="p1", action="edit", text="Answer with one word only.")
    assert tr.desk.pending.future.result(0).text == "Answer with one word only."
    emit("decision", proposal_id="p1", action="edit", by="person", text="Answer with one word only.", at=0.0)
    funnel.flush()
    h = r.history[0]
    assert (h["status"], h["action"]) == ("validating", "edit")
    assert h["edited_diff"] == [["-", "Answer."], ["+", "Answer with one word only."]]
    assert h["diff"] == [["-", "Answer."], ["+", "Answer in one word."]]  # what the optimizer proposed


def test_auto_approve_switch_sets_the_policy(rig):
    tr, funnel, v, sent, emit = rig
    browser(v["review"], type="auto", value=True)
    assert tr.approval.auto is True and v["review"].auto_approve is True
    browser(v["review"], type="auto", value=False)
    assert tr.approval.auto is False and v["review"].auto_approve is False


def test_controls_call_the_trainer_and_show_status(rig):
    tr, funnel, v, sent, emit = rig
    c = v["controls"]
    assert c.status == "idle"
    browser(c, type="control", action="start")
    assert tr.calls[-1] == ("start",) and c.status == "starting"
    start_run(emit)
    funnel.flush()
    assert c.status == "running" and c.run_id == "r1"
    browser(c, type="control", action="start")  # already running: nothing started twice
    assert tr.calls.count(("start",)) == 1 and c.message == "already running"
    browser(c, type="control", action="pause")
    assert tr.calls[-1] == ("control", Pause()) and c.status == "paused"
    browser(c, type="control", action="resume")
    assert tr.calls[-1] == ("control", Resume()) and c.status == "running"
    emit("control", action="pause")  # the run paused itself after a single step: its event says so
    funnel.flush()
    assert c.status == "paused"
    browser(c, type="control", action="step")
    assert tr.calls[-1] == ("control", Step()) and tr.calls.count(("start",)) == 1 and c.status == "running"
    browser(c, type="control", action="stop")
    assert tr.calls[-1] == ("control", Stop()) and c.status == "stopping"
    browser(c, type="control", action="explode")
    assert "explode" in c.message and tr.calls[-1] == ("control", Stop())
    emit("run_finished", status="stopped", baseline={"val": 0.5, "test": 0.5}, final={"val": 0.5, "test": None},
         best_val=0.5, best_step=0, usage={}, error=None, run_dir="runs/r1", run_id="r1", steps=1)
    funnel.flush()
    assert c.status == "finished" and c.summary["status"] == "stopped"
    tr.future.set_result(None)


def test_step_on_an_idle_trainer_starts_it_for_one_step(rig):
    tr, funnel, v, sent, emit = rig
    browser(v["controls"], type="control", action="step")
    assert tr.calls == [("control", Step()), ("start",)]


def test_unknown_or_malformed_messages_are_ignored(rig):
    tr, funnel, v, sent, emit = rig
    for msg in ({"type": "nope"}, {}, {"type": "decide"}, {"type": "select_node", "node_id": None}):
        browser(v["graph"], **msg)
    v["graph"]._handle_custom_msg("not a dict", [])
    assert [c for c in tr.calls if c[0] != "decide"] == []


def test_a_late_view_gets_the_whole_state(rig):
    tr, funnel, v, sent, emit = rig
    start_run(emit)
    emit_step(emit, 1, approve=True)
    funnel.flush()
    late = CurvesView(funnel)
    assert late.points == v["curves"].points and late.marks == v["curves"].marks


# -- throttling and scale ---------------------------------------------------------------------------

def test_updates_are_throttled_and_coalesced_and_never_block_the_emitter():
    bus = EventBus()
    funnel = Funnel(bus=bus, interval=0.2, svg_renderer=fake_svg)
    try:
        graph = GraphView(funnel)
        emit = Emitter(bus)
        start_run(emit)
        t0 = time.perf_counter()
        n = 0
        while time.perf_counter() - t0 < 1.2:  # a busy trainer: events as fast as it can
            emit("node", sample_id="s1", split="train", node_id="answer", component="answer", kind="llm",
                 call_index=1, status="running" if n % 2 == 0 else "done")
            n += 1
        elapsed = time.perf_counter() - t0
        time.sleep(0.5)
        assert n > 1000 and elapsed / n < 0.001  # emitting is an append to a queue
        assert funnel.pushes <= elapsed / 0.2 + 3, (funnel.pushes, elapsed)
        assert graph.node_status["answer"] == ("done" if n % 2 == 0 else "running")  # the last event won
    finally:
        funnel.close()


def test_thirty_nodes_and_two_hundred_steps_stay_fast():
    """A 30-node pipeline and a 200-step run: folding events in and building the traits stays cheap."""
    bus = EventBus()
    funnel = Funnel(bus=bus, threaded=False)  # the real Graphviz layout
    views = [GraphView(funnel), SamplesView(funnel), CurvesView(funnel), ReviewView(funnel)]
    emit = Emitter(bus)
    start_run(emit)
    t0 = time.perf_counter()
    for step in range(1, 201):
        emit_step(emit, step, hops=14, approve=step % 3 != 0)  # 14 x 2 + answer + loss = 30 nodes
        if step % 10 == 0:
            funnel.flush()
    funnel.flush()
    elapsed = time.perf_counter() - t0
    g = views[0]
    assert g.svg.count('class="node') == 30
    assert len(views[2].points) == 201 and len(views[2].marks) == 200
    assert len(views[3].history) == 200
    browser(g, type="select_node", node_id="query#7")
    assert len(g.panel["calls"]) == 14
    assert elapsed < 20, elapsed  # ~60k events; generous for 2 busy cores


# -- with the real trainer ------------------------------------------------------------------------

def make_trainer(tmp_path, approval):
    from scripted_tasks import TEST, TRAIN, VAL, Optimizer, Shout, backward, same_text, task
    from workbench.llm.models import Models
    from workbench.training.trainer import TrainConfig, Trainer
    return Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, Optimizer()),
                   config=TrainConfig(max_steps=2, batch_size=4, concurrency=2), approval=approval,
                   run_dir=tmp_path / "run")


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_workbench_with_a_real_trainer_and_human_approval(tmp_path):
    trainer = make_trainer(tmp_path, HumanApproval(timeout=60))
    wb = Workbench(trainer, interval=0.05)
    sent = []
    wb.review.send = lambda content, buffers=None: sent.append(content)
    try:
        t0 = time.perf_counter()
        future = wb.start()
        assert time.perf_counter() - t0 < 1.0 and not future.done()  # returns at once
        first = wait_for(lambda: wb.review.pending.get("proposal_id"))
        assert wb.review.pending["new"] in ("Repeat the word, in French.", "Repeat the word in UPPERCASE letters.")
        assert wb.controls.status == "waiting" and "your decision on shout.instruction" in wb.controls.detail
        assert trainer.has_dashboard is True  # the trainer shows no progress bar of its own
        assert wb.controls.run_id == trainer.run_id and wb.controls.run_dir == str(trainer.store.path)
        assert 'id="node&#45;shout"' in wb.graph.svg or 'id="node-shout"' in wb.graph.svg
        # a stale id (as from a button drawn for an older proposal) is ignored
        browser(wb.review, type="decide", proposal_id="p0-0", action="accept")
        assert sent[-1]["ok"] is False and trainer.pending.proposal_id == first
        browser(wb.review, type="decide", proposal_id=first, action="reject")
        assert sent[-1]["ok"] is True
        second = wait_for(lambda: (wb.review.pending.get("proposal_id") or "") not in ("", first)
                          and wb.review.pending["proposal_id"])
        # the first proposal's button, clicked late, does nothing to the second
        browser(wb.review, type="decide", proposal_id=first, action="accept")
        assert sent[-1]["ok"] is False and trainer.pending.proposal_id == second
        second_text = wb.review.pending["new"]
        browser(wb.review, type="decide", proposal_id=second, action="accept")
        summary = future.result(timeout=60)
        assert summary.status == "completed"
        wait_for(lambda: wb.controls.status == "finished")
        wb.flush()
        statuses = {h["proposal_id"]: (h["status"], h["by"]) for h in wb.review.history}
        assert statuses[first] == ("reverted", "person") and statuses[second] == ("kept", "person")
        assert {p["name"]: p["value"] for p in wb.review.parameters}["shout.instruction"] == second_text
        outcomes = {m["proposal_id"]: m["outcome"] for m in wb.curves.marks}
        assert wb.curves.totals["calls"] > 0 and (outcomes[first], outcomes[second]) == ("rejected", "kept")
        # export from the controls
        path = tmp_path / "tuned.md"
        browser(wb.controls, type="control", action="export", path=str(path), format="md")
        assert path.exists() and "UPPERCASE" in path.read_text() and "exported" in wb.controls.message
    finally:
        trainer.stop()
        wb.close()


def test_auto_approve_switch_releases_a_waiting_proposal(tmp_path):
    trainer = make_trainer(tmp_path, HumanApproval())
    wb = Workbench(trainer, interval=0.05)
    try:
        future = wb.start()
        wait_for(lambda: wb.review.pending.get("proposal_id"))
        browser(wb.review, type="auto", value=True)
        assert future.result(timeout=60).status == "completed"
        wait_for(lambda: wb.controls.status == "finished")
        decided = [h for h in wb.review.history if h["action"]]  # (others may fail the minibatch gate first)
        assert decided and all(h["by"] == "policy" for h in decided)
    finally:
        trainer.stop()
        wb.close()


def test_stop_while_waiting_for_a_decision(tmp_path):
    trainer = make_trainer(tmp_path, HumanApproval())
    wb = Workbench(trainer, interval=0.05)
    try:
        future = wb.start()
        wait_for(lambda: wb.review.pending.get("proposal_id"))
        browser(wb.controls, type="control", action="stop")
        assert future.result(timeout=30).status == "stopped"
        wait_for(lambda: wb.controls.status == "finished" and wb.review.pending == {})
        assert wb.controls.summary["status"] == "stopped"
    finally:
        wb.close()


def test_the_engine_does_not_import_the_ui():
    code = ("import sys, workbench, workbench.training.trainer, workbench.training.approval, workbench.records.export; "
            "assert not [m for m in sys.modules if m.startswith(('workbench.ui', 'anywidget', 'ipywidgets'))]")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_sample_the_person_picked_stays_picked_through_backward(rig):
    tr, funnel, v, sent, emit = rig
    start_run(emit)
    emit.step = 1
    emit("step_started", epoch=0, batch=["s1", "s2", "s3"])
    funnel.flush()
    browser(v["samples"], type="select_sample", sample_id="s2")  # s2 is not sent to backward
    emit_step(emit, 1, approve=None)  # the same batch again, with selection and gradients
    funnel.flush()
    assert v["graph"].selected_sample == "s2"
    browser(v["graph"], type="select_node", node_id="answer")
    assert "not sent to backward" in v["graph"].panel["note"]
    emit_step(emit, 2, samples=("s7", "s8"), approve=None)  # a batch without s2: back to a backward sample
    funnel.flush()
    assert v["graph"].selected_sample == "s7"


def test_a_graph_that_cannot_be_laid_out_says_why():
    bus = EventBus()

    def broken(layout):
        raise FileNotFoundError("dot not found")
    funnel = Funnel(bus=bus, threaded=False, svg_renderer=broken)
    g = GraphView(funnel)
    emit = Emitter(bus)
    start_run(emit)
    emit_step(emit, 1, approve=None)
    funnel.flush()
    assert g.svg == "" and "could not draw the graph with Graphviz" in g.caption and "dot not found" in g.caption
    funnel.close()


def test_step_button_runs_one_step_then_shows_paused(tmp_path):
    from workbench.training.approval import AutoApproval
    trainer = make_trainer(tmp_path, AutoApproval())
    wb = Workbench(trainer, interval=0.05)
    try:
        browser(wb.controls, type="control", action="step")
        wait_for(lambda: wb.controls.status == "paused" and wb.controls.step == 1, timeout=30)
        assert trainer.step == 1 and trainer.is_paused and not wb.review.can_decide
        browser(wb.controls, type="control", action="resume")
        assert wb.funnel.future.result(timeout=30).status == "completed"
        wait_for(lambda: wb.controls.status == "finished")
    finally:
        trainer.stop()
        wb.close()


def test_no_proposal_is_reported_in_the_controls_message():
    from workbench.records.events import Event
    from workbench.ui.state import RunState
    st = RunState()
    st.apply(Event("no_proposal", {"parameter": "count.instruction", "source": "optimizer",
                                   "reason": "the optimizer's reply held no usable value", "reply": "..."}, step=2))
    assert st.run.message == "step 2: no proposal for count.instruction: the optimizer's reply held no usable value"


# -- defects found in the browser (issue 11), truthful views (issue 8) ---------------------------------

def test_a_rewritten_sentence_is_one_removal_and_one_addition():
    diff = word_diff("Add an answer in JSON. Be brief.", "Reply with the answer as JSON. Be brief.")
    assert diff == [["-", "Add an answer in"], ["+", "Reply with the answer as"], ["=", " JSON. Be brief."]]
    # two changes far apart stay two changes
    diff = word_diff("One two three four five six.", "Uno two three four five seis.")
    assert [op for op, _ in diff] == ["-", "+", "=", "-", "+"]


def test_the_edit_box_gets_the_full_proposal_and_the_history_a_clipped_one(rig):
    tr, funnel, v, sent, emit = rig
    long_new = "Answer in one word. " + "x" * 9000 + " END"
    start_run(emit)
    emit.step = 1
    ask(emit, "p1", "Answer.", long_new)
    funnel.flush()
    assert v["review"].pending["new"] == long_new and "more characters" not in v["review"].pending["new"]
    assert "".join(t for op, t in v["review"].pending["diff"] if op != "-") == long_new
    emit("decision", proposal_id="p1", action="reject", by="person", text=None, at=0.0)
    emit("update", proposal_id="p1", parameter="answer.instruction", accepted=False, value="Answer.",
         reason="rejected by person")
    funnel.flush()
    shown = "".join(t for op, t in v["review"].history[0]["diff"] if op != "-")
    assert shown.endswith("more characters]") and len(shown) < len(long_new)  # display only


def test_status_says_waiting_for_you_and_the_proposal_in_flight_is_named(rig):
    tr, funnel, v, sent, emit = rig
    start_run(emit)
    emit.step = 1
    emit("proposal", proposal_id="p1", parameter="answer.instruction", role="instruction", old="Answer.",
         new="Answer briefly.", source="optimizer", gradient_summary="")
    funnel.flush()
    # during the minibatch check: History and Review say the same thing
    assert v["review"].pending == {}
    assert v["review"].activity == "p1 for answer.instruction: checking on the minibatch"
    assert v["review"].history[0]["status"] == "checking on the minibatch"
    assert v["controls"].status == "running"
    emit("minibatch", proposal_id="p1", before=0.3, after=0.6, passed=True)
    emit("approval_requested", proposal_id="p1", parameter="answer.instruction", old="Answer.",
         new="Answer briefly.", minibatch_before=0.3, minibatch_after=0.6)  # (two steps of `ask`, watched apart)
    funnel.flush()
    # the badge says "waiting for you"; the line beside it says what for, without saying it twice
    assert v["controls"].status == "waiting" and v["controls"].detail == "your decision on answer.instruction"
    assert v["graph"].caption.startswith("waiting for you") and v["review"].activity == ""
    emit("decision", proposal_id="p1", action="accept", by="person", text=None, at=0.0)
    funnel.flush()
    assert v["controls"].status == "running" and v["review"].activity == "p1 for answer.instruction: validating"


def test_stop_message_goes_when_the_run_ends_and_an_error_shows_once(rig):
    tr, funnel, v, sent, emit = rig
    c = v["controls"]
    browser(c, type="control", action="start")
    start_run(emit)
    funnel.flush()
    browser(c, type="control", action="stop")
    assert c.message == "stopping after the current call"
    emit("run_finished", status="failed", baseline={"val": 0.5, "test": None}, final={"val": None, "test": None},
         best_val=0.5, best_step=0, usage={}, error="RuntimeError: the tool broke", run_dir="runs/r1", run_id="r1",
         steps=0)
    funnel.flush()
    tr.future.set_exception(RuntimeError("the tool broke"))  # the worker thread ends with the same error
    funnel.flush()
    assert c.status == "finished" and c.message == ""
    shown = [c.message, c.detail, str(c.summary)]
    assert sum(text.count("the tool broke") for text in shown) == 1
    browser(c, type="control", action="stop")  # after the end: says so, never "stopping" again
    assert c.status == "finished" and "has finished" in c.message


def test_a_thread_that_dies_without_its_last_event_still_shows_its_error(rig):
    tr, funnel, v, sent, emit = rig
    browser(v["controls"], type="control", action="start")
    start_run(emit)
    funnel.flush()
    tr.future.set_exception(KeyError("boom"))
    funnel.flush()
    assert v["controls"].summary == {"status": "failed", "error": "KeyError: 'boom'"}
    assert "boom" not in v["controls"].message


def test_disconnected_parameter_shows_on_the_graph_and_says_why_nothing_is_proposed(rig):
    tr, funnel, v, sent, emit = rig
    start_run(emit)
    emit_step(emit, 1, approve=None, proposal=False)
    emit("disconnected", parameter="query.instruction", node_id="query#2", sample_id="s1",
         reason="its output reached the loss only as a plain str (.strip())")
    emit("no_proposal", parameter="query.instruction", source="optimizer", reason="no gradients", reply="")
    emit("skipped", stage="backward", parameter="answer.instruction", node_id="answer", sample_id="s3",
         error="LLMCallError: 503 after 4 retries")
    funnel.flush()
    g, r = v["graph"], v["review"]
    assert "query.instruction: no path to the loss" in g.badges["query#2"]
    browser(g, type="select_node", node_id="query#2")
    why = g.panel["parameters"][0]["disconnected"]
    assert "no path to the loss" in why and "query#2" in why and "Nothing can be proposed" in why
    assert g.panel["broken"] == g.badges["query#2"]
    params = {p["name"]: p for p in r.parameters}
    assert params["query.instruction"]["disconnected"] == why
    assert params["query.instruction"]["notes"] == [{"step": 1, "kind": "no proposal", "text": "no proposal: no gradients"}]
    assert params["answer.instruction"]["notes"][0]["kind"] == "skipped"
    assert "503 after 4 retries" in params["answer.instruction"]["notes"][0]["text"]
    assert "skipped" in v["controls"].message
    # feedback reaches it in a later step: the badge and the warning go
    emit("gradient", sample_id="s1", node_id="query#2", component="query", call_index=2,
         target="query.instruction", target_kind="parameter", score=0.0, text="now it arrives")
    funnel.flush()
    assert g.badges == {} and {p["name"]: p for p in r.parameters}["query.instruction"]["disconnected"] == ""


def test_guessed_edges_reach_the_layout_marked(rig):
    tr, funnel, v, sent, emit = rig
    layouts = []
    funnel.state.graph._svg_renderer = lambda layout: layouts.append(layout) or fake_svg(layout)
    start_run(emit)
    g = graph_dict("s1")
    g["edges"][0]["guess"] = True
    emit.step = 1
    emit("step_started", epoch=0, batch=["s1"])
    emit("forward", split="train", phase="train", graph=g, summary={"sample_id": "s1", "inputs": {}, "target": "",
                                                                     "prediction": "", "score": 1, "status": "ok"})
    funnel.flush()
    assert [e["guess"] for e in layouts[-1]["edges"]][:2] == [True, False]


def test_the_run_folder_and_descriptions_are_shown_and_prices_come_from_the_dashboard(tmp_path):
    trainer = make_trainer(tmp_path, HumanApproval())
    wb = Workbench(trainer, interval=0.05, prices={"task": (1.0, 1.0)})
    try:
        assert trainer.has_dashboard is True
        assert wb.controls.run_dir == str(trainer.store.path) and wb.controls.run_id == trainer.run_id
        descriptions = {p["name"]: p["description"] for p in wb.review.parameters}
        assert descriptions == {p.name: p.description for p in trainer.pipeline.parameters()}
        assert wb.curves.totals["cost"] == 0.0  # priced (0 calls so far), not "n/a"
    finally:
        wb.close()


def test_a_reply_to_the_browser_masks_a_registered_key():
    """A refusal's reason may quote an endpoint's error with the key in it; replies are masked like traits."""
    from workbench.redact import register_secret
    secret = "sk-reply-0123456789abcdefghij"
    register_secret(secret)
    view = ReviewView()
    sent = []
    view.send = lambda content, buffers=None: sent.append(content)
    view.reply(type="branch_result", ok=False, reason=f"endpoint refused key {secret}", notes=[secret])
    assert sent == [{"type": "branch_result", "ok": False, "reason": "endpoint refused key <redacted>",
                     "notes": ["<redacted>"]}]


def test_curves_view_sends_plotly_js_from_the_installed_package():
    view = CurvesView()
    sent = []
    view.send = lambda content, buffers=None: sent.append((content, buffers))
    view._handle_custom_msg({"type": "plotly_js"}, [])
    (content, buffers), = sent
    assert content == {"type": "plotly_js"} and buffers[0].startswith(b"/**") and b"plotly.js v" in buffers[0][:200]
    assert len(buffers[0]) > 1_000_000  # the whole library: nothing is fetched from a CDN


def test_charts_never_draw_an_unvalidated_proposal_at_a_score():
    from workbench.records.charts import CurveData, cost_figure, score_figure, score_spec
    bus, events = EventBus(), []
    bus.subscribe(events.append)
    emit = Emitter(bus)
    start_run(emit)
    emit_step(emit, 1, approve=True)    # validated and kept
    emit_step(emit, 2, approve=False)   # rejected by a person: never validated
    emit.step = 3
    emit("proposal", proposal_id="p3", parameter=PAYLOAD, role="instruction", old="a", new="b", source="optimizer",
         gradient_summary="")
    emit("minibatch", proposal_id="p3", before=0.5, after=0.2, passed=False)
    emit("update", proposal_id="p3", parameter=PAYLOAD, accepted=False, value="a",
         reason="minibatch score fell from 0.500 to 0.200")
    spec = score_spec(CurveData.from_events(events))
    on_score_axis = [t for t in spec["data"] if t.get("yaxis") != "y2"]
    names = [t["name"] for t in on_score_axis]
    assert names == ["minibatch score", "best validation so far", "candidate kept", "candidate not kept"]
    candidates = {t["name"]: list(zip(t["x"], t["y"])) for t in on_score_axis}
    assert candidates["candidate kept"] == [(1, 0.75)] and candidates["candidate not kept"] == []
    assert candidates["best validation so far"] == [(0, 0.5), (1, 0.75), (2, 0.75)]
    strip = {t["name"]: t for t in spec["data"] if t.get("yaxis") == "y2"}
    assert set(strip) == {"proposal kept", "proposal rejected by a person", "proposal failed the minibatch check"}
    hover = strip["proposal failed the minibatch check"]["text"][0]
    assert "validation: not validated" in hover and "minibatch: 0.500 → 0.200" in hover
    assert "&lt;img src=x" in hover and "<img" not in hover and "<script>" not in hover  # shown as text
    assert spec["layout"]["xaxis"]["tickfont"]["size"] >= 11 and spec["layout"]["yaxis"]["tickfont"]["size"] >= 11
    # plotly itself accepts both figures; the same builder reads a finished run's events.jsonl dicts
    assert len(score_figure([e.to_dict() for e in events]).data) == len(spec["data"])
    assert [t.name for t in cost_figure(events, prices={"task": (1.0, 2.0)}).data] == ["task"]
    # the final evaluation after the last step is its own bar, never counted as another step
    emit("run_finished", status="completed", baseline={"val": 0.5, "test": 0.5}, final={"val": 0.75, "test": 0.7},
         best_val=0.75, best_step=1, usage={"task": {"calls": 30, "prompt_tokens": 250, "completion_tokens": 25}},
         error=None, run_dir="runs/r1", run_id="r1", steps=3)
    bars = cost_figure(events).data[0]
    assert list(bars.x) == ["1", "2", "end"] and list(bars.y) == [110, 110, 55]
    # the held-out test score: before training at step 0, after it at the last step, labelled
    test, = [t for t in score_spec(CurveData.from_events(events))["data"] if t["name"] == "test score (held out)"]
    assert list(zip(test["x"], test["y"])) == [(0, 0.5), (3, 0.7)]
    assert test["text"] == ["test 0.500", "test 0.700"] and "after training" in test["customdata"][1]


def test_a_joint_proposal_shows_every_parameter_it_changes(rig):
    tr, funnel, v, sent, emit = rig
    start_run(emit)
    emit.step = 1
    for name, old, new in (("query.instruction", "Write a query.", "Write a short query."),
                           ("answer.instruction", "Answer.", "Answer in one word.")):
        emit("proposal", proposal_id="p1-1", parameter=name, role="instruction", old=old, new=new,
             source="optimizer", gradient_summary="", attempt=1, group="query.instruction+answer.instruction")
    funnel.flush()
    h = v["review"].history[0]
    assert h["parameter"] == "query.instruction+answer.instruction"
    old = "[query.instruction]\nWrite a query.\n\n[answer.instruction]\nAnswer."
    new = "[query.instruction]\nWrite a short query.\n\n[answer.instruction]\nAnswer in one word."
    assert "".join(t for op, t in h["diff"] if op != "+") == old
    assert "".join(t for op, t in h["diff"] if op != "-") == new
    emit("minibatch", proposal_id="p1-1", before=0.3, after=0.6, passed=True)
    emit("approval_requested", proposal_id="p1-1", parameter="query.instruction+answer.instruction", old=old,
         new=new, minibatch_before=0.3, minibatch_after=0.6)
    funnel.flush()
    assert (v["review"].pending["parameter"], v["review"].pending["new"]) == ("query.instruction+answer.instruction",
                                                                              new)
    for name in ("query.instruction", "answer.instruction"):
        emit("update", proposal_id="p1-1", parameter=name, accepted=False, value="x", reason="rejected by person")
    funnel.flush()
    assert [m["parameter"] for m in v["curves"].marks] == ["query.instruction+answer.instruction"]


def test_an_edit_is_checked_on_the_minibatch_then_validated(rig):
    tr, funnel, v, sent, emit = rig
    start_run(emit)
    emit.step = 1
    ask(emit, "p1", "Answer.", "Answer briefly.")
    emit("decision", proposal_id="p1", action="edit", by="person", text="Answer in one word.", at=0.0)
    emit("proposal", proposal_id="p1", parameter="answer.instruction", role="instruction", old="Answer.",
         new="Answer in one word.", source="human", gradient_summary="")
    funnel.flush()
    assert v["review"].activity == "p1 for answer.instruction: checking on the minibatch"
    emit("minibatch", proposal_id="p1", before=0.3, after=0.9, passed=True)
    funnel.flush()
    assert v["review"].activity == "p1 for answer.instruction: validating"
    h = v["review"].history[0]
    assert h["diff"] == [["-", "Answer."], ["+", "Answer briefly."]]  # the optimizer's text stays visible
    assert h["edited_diff"] == [["-", "Answer."], ["+", "Answer in one word."]]


def test_a_real_run_whose_output_loses_its_link_says_so_on_the_graph_and_in_review(tmp_path):
    from scripted_tasks import TEST, TRAIN, VAL, Optimizer, Shout, backward, same_text, task
    from workbench.training.approval import AutoApproval
    from workbench.llm.models import Models
    from workbench.training.trainer import TrainConfig, Trainer

    class Rebuilt(Shout):
        def forward(self, word):  # the reply rebuilt character by character: tracing cannot follow it
            return "".join(chr(ord(c)) for c in str(self.node(word=word))) + "!"

    trainer = Trainer(Rebuilt(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, Optimizer()),
                      config=TrainConfig(max_steps=1, batch_size=4, concurrency=2), approval=AutoApproval(),
                      run_dir=tmp_path / "run")
    wb = Workbench(trainer, interval=0.05)
    try:
        assert wb.start().result(timeout=60).status == "completed"
        wait_for(lambda: wb.controls.status == "finished")
        wb.flush()
        assert "shout.instruction: no path to the loss" in wb.graph.badges["shout"]
        why = {p["name"]: p["disconnected"] for p in wb.review.parameters}["shout.instruction"]
        assert why.startswith("No feedback reaches this parameter") and why.endswith("Nothing can be proposed for it.")
    finally:
        wb.close()


def test_the_baseline_alone_is_drawn_and_an_empty_cost_chart_says_why():
    """Before step 1 ends the best-validation series is one point: a line without markers drew nothing.
    The cost chart had empty axes and no word."""
    from workbench.records.charts import CurveData, cost_spec, score_spec
    data = CurveData.from_events([Event("run_started", {"resumed_from": None}),
                                  Event("eval", {"phase": "baseline", "split": "val", "score": 0.25})])
    best, = [t for t in score_spec(data)["data"] if t["name"] == "best validation so far"]
    assert list(zip(best["x"], best["y"])) == [(0, 0.25)] and "markers" in best["mode"]
    cost = cost_spec(data)
    assert cost["data"] == [] and "appears when the first step ends" in cost["layout"]["annotations"][0]["text"]


def test_a_skipped_value_gradient_is_folded_by_every_view(rig):
    """A backward call about an upstream value (no parameter) is `skipped` with parameter null: the
    review view raised on it, and the funnel dropped the event for every view."""
    tr, funnel, v, sent, emit = rig
    start_run(emit)
    emit.step = 1
    emit("skipped", stage="backward", parameter=None, node_id="retrieve", sample_id="s1",
         error="the backward model echoed its prompt")
    funnel.flush()
    assert "skipped for the value of retrieve" in v["controls"].message
    assert v["review"].parameters and not [n for p in v["review"].parameters for n in p["notes"] if n["kind"] == "skipped"]


def test_the_proposals_of_one_step_sit_side_by_side_in_the_strip():
    """Five attempts at one step were drawn on one spot: a person could not count them or hover each."""
    from workbench.records.charts import CurveData, score_spec
    events = [Event("run_started", {"resumed_from": None})]
    for i in range(5):
        events.append(Event("proposal", {"proposal_id": f"p1-{i}", "parameter": "a.b", "source": "optimizer"}, step=1))
        events.append(Event("update", {"proposal_id": f"p1-{i}", "accepted": False, "reason": "no"}, step=1))
    events.append(Event("proposal", {"proposal_id": "p2-5", "parameter": "a.b", "source": "optimizer"}, step=2))
    strip = [t for t in score_spec(CurveData.from_events(events))["data"] if t.get("yaxis") == "y2"]
    xs = sorted(x for t in strip for x in t["x"])
    assert len(xs) == 6 and len(set(xs)) == 6 and 2.0 in xs
    assert all(0.6 < x < 1.4 for x in xs[:5]) and xs[:5] == sorted(xs[:5])


def test_the_history_sends_feedback_only_with_the_newest_proposals(rig):
    """Every push sent every proposal's 1,500-character feedback: 82 MB over a paper-sized run's pushes.
    The newest 40 keep diff and feedback; older entries keep their outcome and reason."""
    from workbench.ui.reducers.review import DIFF_IN_HISTORY
    tr, funnel, v, sent, emit = rig
    start_run(emit)
    emit.step = 1
    for i in range(DIFF_IN_HISTORY + 5):
        emit("proposal", proposal_id=f"p{i}", parameter="answer.instruction", role="instruction", old="Answer.",
             new=f"Answer {i}.", source="optimizer", gradient_summary="feedback " * 100)
        emit("update", proposal_id=f"p{i}", parameter="answer.instruction", accepted=False, value="Answer.",
             reason=f"reason {i}")
    funnel.flush()
    history = v["review"].history
    assert len(history) == DIFF_IN_HISTORY + 5 and all(h["reason"] for h in history)
    assert all(h.get("gradient_summary") and h.get("diff") for h in history[:DIFF_IN_HISTORY])
    assert not any("gradient_summary" in h or "diff" in h for h in history[DIFF_IN_HISTORY:])


def test_workbench_auto_approve_reads_and_writes(tmp_path):
    """`wb.auto_approve` raised AttributeError (it read a field the state does not have)."""
    trainer = make_trainer(tmp_path, HumanApproval(timeout=60))
    wb = Workbench(trainer, interval=0.05)
    try:
        assert wb.auto_approve is False
        wb.auto_approve = True
        assert wb.auto_approve is True and trainer.approval.auto is True
        wb.auto_approve = False
        assert wb.auto_approve is False and trainer.approval.auto is False
    finally:
        wb.close()
