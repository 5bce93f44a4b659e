"""The person teaches (issue 16): a reject's reason, an edit and feedback become the optimizer's evidence.

Propagation is checked on the requests our OpenAI-compatible test server receives (real HTTP, the
openai SDK); the rest with in-process scripted models, whose replies depend only on their prompts.
"""
import re
import threading

import pytest

from workbench import LLMCall, Parameter, Pipeline
from workbench.engine.backward import BACKWARD_SYSTEM
from workbench.engine.backward_prompts import PERSON_LABEL
from workbench.errors import FeedbackRefused
from workbench.llm.models import Models
from workbench.optim.person_judgements import JUDGEMENTS_HEADING
from workbench.optim.text_optimizer import OPTIMIZER_SYSTEM, PERSON_HEADING, TextOptimizer
from workbench.records.report import render_report
from workbench.records.results import open_run
from workbench.records.store import RunStore
from workbench.tasks.datasets import Example
from workbench.testing import OpenAITestServer
from workbench.training.approval import HumanApproval
from workbench.training.trainer import TrainConfig, Trainer

from hostile_text import DOLLARS, RLO
from scripted_tasks import GOOD, TEST, TRAIN, VAL, Shout, backward, same_text, task

TIP = "Spell the word out in capital letters, the house style of this shop."


# -- a two-node pipeline: plan -> answer; the plan's parameter is upstream of the loss -----------------

class PlanThenAnswer(Pipeline):
    def __init__(self):
        self.plan_instruction = Parameter("plan.instruction", "Say which word to write.")
        self.answer_instruction = Parameter("answer.instruction", "Write the word named in the plan.")
        self.plan = LLMCall("plan", "{{instruction}}\nWord: {{word}}", [self.plan_instruction])
        self.answer = LLMCall("answer", "{{instruction}}\nPlan: {{plan}}", [self.answer_instruction])

    def forward(self, word):
        return self.answer(plan=self.plan(word=word))


def two_node_endpoint(optimizer_prompts: list):
    """Task: the plan names the word, the answer copies it (lower case: every sample fails). Backward:
    relays a person's words when its prompt holds them, else names its target. Optimizer: keeps its
    prompts and proposes the current value unchanged (so nothing is gated or kept)."""
    def respond(messages):
        system = messages[0]["content"] if messages[0]["role"] == "system" else ""
        text = messages[-1]["content"]
        if system.startswith(BACKWARD_SYSTEM[:40]):
            person = re.search(re.escape(PERSON_LABEL) + r": (.*)", text)
            if person:
                return f"A reviewer noted: {person.group(1)}"
            target = re.search(r"### Parameter: (\S+)", text) or re.search(r"### Target value from node (\S+)", text)
            return f"feedback for {target.group(1)}"
        if system.startswith(OPTIMIZER_SYSTEM[:40]):
            optimizer_prompts.append(text)
            value = re.search(r"<CURRENT_VALUE>\n(.*?)\n</CURRENT_VALUE>", text, re.S).group(1)
            return f"<PROPOSAL>{value}</PROPOSAL>"
        word = re.search(r"Word: (\w+)", text)
        if word:
            return f"the word is {word.group(1)}"
        return re.search(r"Plan: the word is (\w+)", text).group(1)
    return respond


def test_feedback_on_an_upstream_node_reaches_its_parameters_optimizer_over_http(tmp_path):
    prompts: list[str] = []
    train = [Example(f"tr-{w}", {"word": w}, w.upper(), {}) for w in ("apple", "river")]
    with OpenAITestServer(responder=two_node_endpoint(prompts)) as server:
        models = Models.from_endpoint(server.base_url, "test-model", api_key="sk-test", max_retries=0)
        trainer = Trainer(PlanThenAnswer(), train, VAL[:2], [], same_text, models,
                          config=TrainConfig(max_steps=1, batch_size=2, concurrency=1, max_proposals=1),
                          run_dir=tmp_path / "run")
        given = trainer.feedback(TIP, sample_id="tr-apple", node="plan")
        assert given.target_kind == "node" and given.pending
        trainer.fit()
        sent = [body["messages"][-1]["content"] for body in server.requests]
    # the backward call for the plan's own parameter got the person's words, first and marked as theirs
    backward_plan = [t for t in sent if "### Parameter: plan.instruction" in t and "apple\n</INPUT>" in t]
    assert backward_plan and f"- from {PERSON_LABEL}: {TIP}" in backward_plan[0]
    feedback_part = backward_plan[0].split("### Feedback that reached this node from downstream")[1]
    assert feedback_part.index(TIP) < feedback_part.index("from answer")  # before the engine's feedback
    # ... and what the backward model wrote from them reached the plan's optimizer, over HTTP
    optimizer_plan = [t for t in prompts if "### Parameter: plan.instruction" in t]
    assert optimizer_plan and optimizer_plan[0] in sent  # the optimizer's prompt as the endpoint received it
    assert f"A reviewer noted: {TIP}" in optimizer_plan[0]
    # the feedback on `plan` did not reach the answer node's parameter (it is downstream of it)
    assert all(TIP not in t for t in prompts if "### Parameter: answer.instruction" in t)
    run = open_run(tmp_path / "run")
    person = run.gradients[run.gradients.source == "person"]
    assert list(person.target) == ["plan"] and list(person.sample_id) == ["tr-apple"]
    row = run.contributions.iloc[0]
    assert (row.kind, row.node_id, row.used, row.used_at_step) == ("feedback", "plan", True, 1)
    assert trainer.teaching.inbox.pending() == []


def test_feedback_on_a_passing_sample_outside_the_batch_is_back_propagated(tmp_path):
    passes: list[str] = []  # the word the task model gets right

    def task_model(messages):
        answer = task(messages)
        return answer.upper() if answer in passes else answer
    models = Models.scripted(task_model, lambda m: "relayed: " + m[-1]["content"][-200:],
                             lambda m: "<PROPOSAL>x</PROPOSAL>")
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, models,
                      config=TrainConfig(max_steps=1, batch_size=2, concurrency=1, max_proposals=1),
                      run_dir=tmp_path / "run")
    outside = next(e.id for e in TRAIN if e.id not in {x.id for x in trainer.batch_for(1)})
    passes.append(outside[3:])
    trainer.feedback(TIP, sample_id=outside)
    events = []
    trainer.bus.subscribe(events.append)
    trainer.fit()
    selection = next(e.data["samples"] for e in events if e.type == "selection")
    assert {"sample_id": outside, "selected": True, "reason": "the person gave feedback on it"} in selection
    # on the sample's output: where the evaluation's feedback enters, beside it, marked as the person's
    person = [e.data for e in events if e.type == "gradient" and e.data["source"] == "person"]
    assert [(g["sample_id"], g["node_id"], g["target"]) for g in person] == [(outside, "loss", "shout")]
    backward_prompts = [c[-1]["content"] for c in models.backward.calls]
    assert any(f"- from {PERSON_LABEL}: {TIP}" in p and f"{outside[3:]}\n</INPUT>" in p for p in backward_prompts)
    scored = next(e.data["summary"] for e in events if e.type == "forward" and e.data["summary"]["sample_id"] == outside)
    assert scored["score"] == 1.0  # it passed, and was back-propagated because the person spoke about it


def test_feedback_on_a_parameter_goes_to_its_optimizer_first_and_unclipped(tmp_path):
    opt_prompts = []
    long_tip = TIP + " " + "Keep every letter. " * 60  # longer than the 600 characters a gradient is clipped to

    def optimizer(messages):
        opt_prompts.append(messages[-1]["content"])
        return f"<PROPOSAL>{GOOD}</PROPOSAL>"
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, optimizer),
                      config=TrainConfig(max_steps=1, batch_size=4, concurrency=1), run_dir=tmp_path / "run")
    trainer.feedback(long_tip, parameter="shout.instruction")
    trainer.fit()
    feedback = opt_prompts[0].split("### Feedback from this step")[1]
    assert feedback.index(PERSON_HEADING) < feedback.index("Sample ")  # the person's words first
    assert long_tip in feedback  # never clipped
    used = [e.data for e in RunStore(tmp_path / "run").events() if e.type == "feedback_used"]
    assert [(u["used_in"], u["parameter"]) for u in used] == [("optimizer", "shout.instruction")]


def test_feedback_that_leaks_a_training_target_is_refused_and_the_person_is_told(tmp_path):
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, lambda m: ""),
                      run_dir=tmp_path / "run")
    events = []
    trainer.bus.subscribe(events.append)
    with pytest.raises(FeedbackRefused, match=r"leaks a training target: 'apple'"):
        trainer.feedback("The right answer here is APPLE.", sample_id="tr-apple")
    with pytest.raises(FeedbackRefused, match=r"leaks a training target: 'river'"):
        trainer.feedback("Always answer RIVER.", parameter="shout.instruction")
    refused = [e.data for e in events if e.type == "feedback"]
    assert [(r["accepted"], r["reason"]) for r in refused] == [
        (False, "leaks a training target: 'apple'"), (False, "leaks a training target: 'river'")]
    assert trainer.teaching.inbox.items() == []
    contributions = open_run(trainer).contributions
    assert list(contributions.refused) == ["leaks a training target: 'apple'", "leaks a training target: 'river'"]
    assert not contributions.used.any()


@pytest.mark.parametrize("kwargs, problem", [
    ({"text": "  ", "sample_id": "tr-apple"}, "it holds no text"),
    ({"text": "ok", "sample_id": "va-lemon"}, "is not a training sample of this run"),
    ({"text": "ok", "sample_id": "tr-nope"}, "is not a training sample of this run"),
    ({"text": "ok", "sample_id": "tr-apple", "node": "nowhere"}, "the pipeline has no node 'nowhere'"),
    ({"text": "ok", "parameter": "no.such"}, "the pipeline has no parameter 'no.such'"),
    ({"text": "ok", "node": "shout"}, "say what it is about"),
    ({"text": "ok", "parameter": "shout.instruction", "sample_id": "tr-apple"}, "not both"),
])
def test_feedback_naming_what_the_run_lacks_is_refused_with_the_problem(tmp_path, kwargs, problem):
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, lambda m: ""),
                      run_dir=tmp_path / "run")
    text = kwargs.pop("text")
    with pytest.raises(FeedbackRefused, match=re.escape(problem)):
        trainer.feedback(text, **kwargs)
    (event,) = [e for e in RunStore(tmp_path / "run").events() if e.type == "feedback"]
    assert event.data["accepted"] is False and problem in event.data["reason"]


def test_feedback_given_after_the_last_checkpoint_survives_a_kill_and_is_used_on_resume(tmp_path):
    def make(max_steps, resume=False):
        models = Models.scripted(task, backward, lambda m: "<PROPOSAL>Repeat the word.  Twice.</PROPOSAL>")
        return Trainer(Shout(), TRAIN, VAL, TEST, same_text, models, resume=resume, run_dir=tmp_path / "run",
                       config=TrainConfig(max_steps=max_steps, epochs=2, batch_size=4, concurrency=1,
                                          max_proposals=1)), models
    first, _ = make(1)
    first.fit()
    step_two = {e.id for e in first.batch_for(2)}
    sample = next(e.id for e in TRAIN if e.id not in step_two)
    first.feedback(TIP, sample_id=sample, node="shout")
    first.feedback(TIP + " (on the parameter)", parameter="shout.instruction")
    del first  # "killed": no checkpoint holds the feedback; only the event log does

    resumed, models = make(2, resume=True)
    assert {i.target_kind for i in resumed.teaching.inbox.pending()} == {"node", "parameter"}
    resumed.fit()
    assert any(TIP in c[-1]["content"] and f"{sample[3:]}\n</INPUT>" in c[-1]["content"]
               for c in models.backward.calls)
    assert any(f"{TIP} (on the parameter)" in c[-1]["content"] for c in models.optimizer.calls)
    assert resumed.teaching.inbox.pending() == []
    saved = RunStore(tmp_path / "run").latest_checkpoint()["person_feedback"]
    assert sorted(f["used_at_step"] for f in saved) == [2, 2]
    assert list(open_run(tmp_path / "run").contributions.used) == [True, True]


def test_feedback_given_while_a_step_runs_and_then_stopped_stays_pending(tmp_path):
    """A stop in the middle of a step goes back to the last checkpoint; feedback given meanwhile stays."""
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, reject_optimizer()),
                      approval=HumanApproval(), run_dir=tmp_path / "run",
                      config=TrainConfig(max_steps=2, batch_size=4, concurrency=1))
    future = trainer.start()
    pending = wait_for_pending(trainer)
    trainer.feedback(TIP, sample_id="tr-apple")  # backward of step 1 is over: it waits for step 2
    trainer.stop()
    assert future.result(timeout=30).status == "stopped" and pending is not None
    assert [i.text for i in trainer.teaching.inbox.pending()] == [TIP]
    resumed = Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, reject_optimizer()),
                      resume=True, run_dir=tmp_path / "run", config=TrainConfig(max_steps=2, batch_size=4))
    assert [i.text for i in resumed.teaching.inbox.pending()] == [TIP]


# -- a person's decisions: reasons and edits -------------------------------------------------------------

FRENCH = "Repeat the word in UPPERCASE letters, then translate it to French."
WHY = "Never translate: the shop's labels stay in English."


def reject_optimizer(prompts=None):
    """Proposes FRENCH (it passes the minibatch gate) until the person's reason is in its prompt."""
    def respond(messages):
        text = messages[-1]["content"]
        if prompts is not None:
            prompts.append(text)
        return f"<PROPOSAL>{GOOD if WHY in text else FRENCH}</PROPOSAL>"
    return respond


def wait_for_pending(trainer, seen=(), timeout=30.0):
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        pending = trainer.pending
        if pending is not None and pending.proposal_id not in seen:
            return pending
        done.wait(0.01)
    return None


def one_step_waiting_for_a_person(tmp_path, prompts: list[str]) -> Trainer:
    """One step whose proposals wait for a person's decision; the optimizer records its prompts."""
    return Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, reject_optimizer(prompts)),
                   approval=HumanApproval(timeout=60), run_dir=tmp_path / "run",
                   config=TrainConfig(max_steps=1, batch_size=4, concurrency=1))


def test_a_rejects_reason_reaches_the_next_attempt_and_every_later_optimizer_call(tmp_path):
    prompts: list[str] = []
    trainer = one_step_waiting_for_a_person(tmp_path, prompts)
    future = trainer.start()
    first = wait_for_pending(trainer)
    assert first.new == FRENCH
    assert trainer.decide(first.proposal_id, "reject", reason=f"  {WHY}  ") is True
    second = wait_for_pending(trainer, seen={first.proposal_id})
    assert second.new == GOOD  # the optimizer read the reason in the same step's next attempt
    trainer.decide(second.proposal_id, "accept")
    summary = future.result(timeout=60)
    assert summary.final["val"] == 1.0
    assert JUDGEMENTS_HEADING in prompts[1] and f"Their reason: {WHY}" in prompts[1] and FRENCH in prompts[1]
    memory = trainer.memory["shout.instruction"]
    judged = memory.person_judgements()
    assert [(a.person_action, a.person_reason, a.value) for a in judged] == [("reject", WHY, FRENCH)]
    # every later call, not only this step's: the next step's optimizer prompt shows it too
    later = trainer.text_optimizer.prompt(trainer.params["shout.instruction"], [], memory, [], step=5)
    assert f"Their reason: {WHY}" in later[-1]["content"]
    decisions = [e.data for e in RunStore(tmp_path / "run").events() if e.type == "decision"]
    assert decisions[0]["reason"] == WHY and decisions[1]["reason"] is None
    run = open_run(tmp_path / "run")
    assert run.proposals.person_reason.tolist()[:1] == [WHY]
    row = run.contributions.iloc[0]
    assert (row.kind, row.parameter, row.reason, row.proposed, row.used) == ("reject", "shout.instruction", WHY,
                                                                             FRENCH, True)
    assert row.outcome == f"not kept: rejected by person: {WHY}"


def test_an_edit_is_kept_with_the_optimizers_text_beside_it(tmp_path):
    edited = "Write the word in UPPERCASE."
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, reject_optimizer()),
                      approval=HumanApproval(timeout=60), run_dir=tmp_path / "run",
                      config=TrainConfig(max_steps=1, batch_size=4, concurrency=1))
    future = trainer.start()
    pending = wait_for_pending(trainer)
    trainer.decide(pending.proposal_id, "edit", value=edited, reason="shorter, and no French")
    future.result(timeout=60)
    (judged,) = trainer.memory["shout.instruction"].person_judgements()
    assert (judged.person_action, judged.value, judged.proposed, judged.accepted) == ("edit", edited, FRENCH, True)
    prompt = trainer.text_optimizer.prompt(trainer.params["shout.instruction"], [],
                                           trainer.memory["shout.instruction"], [], step=2)[-1]["content"]
    section = prompt.split(JUDGEMENTS_HEADING)[1]
    assert section.index(FRENCH) < section.index(edited) and "EDITED" in section and "no French" in section
    row = open_run(tmp_path / "run").contributions.iloc[0]
    assert (row.kind, row.text, row.proposed, row.reason) == ("edit", edited, FRENCH, "shorter, and no French")


def test_a_checkpoint_of_the_version_before_loads_without_the_new_fields(tmp_path):
    from workbench.optim.memory import ParameterMemory
    old = {"name": "p", "attempts": [{"value": "v", "step": 1, "score": None, "accepted": False, "reason": "r",
                                      "minibatch": None, "by": "person"}]}
    assert ParameterMemory.from_dict(old).attempts[0].person_reason is None
    future = {"name": "p", "attempts": [dict(old["attempts"][0], some_later_field=1)]}
    assert ParameterMemory.from_dict(future).attempts[0].value == "v"


# -- hostile text in the person's words ---------------------------------------------------------------------

HOSTILE = f'<img src=x onerror="window.__xss=9"> {DOLLARS} {RLO}gnp.exe'


def test_hostile_reasons_and_feedback_render_as_text_in_frames_and_report(tmp_path):
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, reject_optimizer()),
                      approval=HumanApproval(timeout=60), run_dir=tmp_path / "run",
                      config=TrainConfig(max_steps=1, batch_size=4, concurrency=1))
    trainer.feedback(HOSTILE, sample_id="tr-apple")
    trainer.feedback(HOSTILE, parameter="shout.instruction")
    future = trainer.start()
    pending = wait_for_pending(trainer)
    trainer.decide(pending.proposal_id, "reject", reason=HOSTILE)
    future.result(timeout=60)  # the optimizer repeats its rejected value until the step gives up
    with pytest.raises(FeedbackRefused):
        trainer.feedback(HOSTILE, sample_id=f"va-{RLO}")  # refused: its row has no step of use
    run = open_run(tmp_path / "run")
    frame = run.contributions
    assert frame.kind.tolist() == ["feedback", "feedback", "reject", "feedback"]
    assert frame.text.tolist()[:2] == [HOSTILE] * 2 and frame.reason.tolist()[2] == HOSTILE  # exactly as written
    assert frame.used.tolist() == [True, True, True, False]  # the next attempts read the reason
    assert run.proposals.person_reason.tolist()[0] == HOSTILE
    assert "tex2jax_ignore" in frame._repr_html_()  # MathJax leaves the dollars alone
    page = render_report(run)
    assert "The person&#x27;s contributions (4)" in page
    assert "window.__xss=9\"> " not in page and page.count("&lt;img src=x onerror=&quot;window.__xss=9&quot;&gt;") >= 3
    # each override stays inside an isolated element, where it cannot reorder the page around it
    assert page.count(RLO) == len(re.findall(f"<bdi>[^<]*{RLO}[^<]*</bdi>", page)) > 0
    assert "<b>the person</b>" in page  # the person's gradient is marked as theirs under its proposal
    section = re.search(r"<h2>The person&#x27;s contributions \(4\)</h2>(.*?)</section>", page, re.S).group(1)
    cells = re.findall(r"<td>(.*?)</td>", section, re.S)
    assert cells and not [c for c in cells if "NA" in c or c in ("NaN", "nan", "None", "")]  # a missing cell is "–"


@pytest.mark.parametrize("typed, reason", [("r\n  Too vague for new words.  \n", "Too vague for new words."),
                                           ("reject\n\n", None), ("r\n", None)])
def test_terminal_approval_asks_why_on_reject_and_an_empty_answer_is_no_reason(typed, reason):
    import io

    from workbench.cli.terminal_approval import terminal_approval
    from workbench.training.approval import PendingProposal

    err = io.StringIO()
    approval = terminal_approval(None, stdin=io.StringIO(typed), err=err)
    decision = approval.decide(PendingProposal("p1-1", "shout.instruction", "old", "new"))
    assert (decision.action, decision.by, decision.reason) == ("reject", "person", reason)
    assert "Why? (the optimizer reads it; Enter to skip) " in err.getvalue()


def test_feedback_given_while_the_run_waits_for_a_decision_reaches_the_next_attempt(tmp_path):
    prompts: list[str] = []
    trainer = one_step_waiting_for_a_person(tmp_path, prompts)
    future = trainer.start()
    first = wait_for_pending(trainer)
    given = trainer.feedback(WHY, parameter="shout.instruction")  # from another thread, mid-decision
    trainer.decide(first.proposal_id, "reject")  # no reason: the feedback alone must carry the point
    second = wait_for_pending(trainer, seen={first.proposal_id})
    assert second is not None and second.new == GOOD
    trainer.decide(second.proposal_id, "accept")
    assert future.result(timeout=60).final["val"] == 1.0
    assert WHY not in prompts[0] and prompts[1].index(PERSON_HEADING) < prompts[1].index(WHY)
    assert trainer.teaching.inbox.items()[0].used_at_step == 1 and given.feedback_id == \
        trainer.teaching.inbox.items()[0].feedback_id
    (reject,) = [e.data for e in RunStore(tmp_path / "run").events() if e.type == "decision"
                 and e.data["action"] == "reject"]
    assert reject["reason"] is None and reject["by"] == "person"
    assert open_run(tmp_path / "run").contributions.kind.tolist() == ["feedback"]  # a reject without words is no row


def test_a_base_models_short_prompts_put_the_persons_words_first():
    """The base-model prompts cut their feedback to a few hundred characters: the person's words lead."""
    from workbench.engine.backward_prompts import Feedback, downstream_text
    from workbench.engine.graph import Gradient
    from workbench.optim.memory import Attempt, ParameterMemory
    from workbench.optim.optimizer_completion import CompletionPrompt

    engine_says = "The answer was wrong in a long and winding way. " * 10
    line = downstream_text([Feedback("loss", engine_says), Feedback("person", TIP, source="person")])
    assert line.startswith(f"(from the person) {TIP}")
    param = Parameter("shout.instruction", "Repeat the word.")
    grads = [Gradient("tr-apple", "shout", "shout", 1, param.name, "parameter", 0.0, engine_says),
             Gradient("", "", "", 0, param.name, "parameter", None, TIP, source="person")]
    memory = ParameterMemory(param.name, [Attempt(FRENCH, 1, None, False, "rejected by person", None, "person",
                                                  person_action="reject", person_reason=WHY)])
    optimizer = TextOptimizer(Models.scripted(task).task, style="completion")
    problem = optimizer.prompt(param, [], memory, grads, step=2)[0]["content"].split("Problem: ")[1]
    assert problem.startswith(f"{WHY} {TIP}")
    assert CompletionPrompt().problem(grads).startswith(TIP)


def test_a_joint_prompt_shows_each_parameters_judgements():
    from workbench.optim.memory import Attempt, ParameterMemory

    a, b = Parameter("x.instruction", "Do it."), Parameter("x.format", "One word.")
    memory = {a.name: ParameterMemory(a.name, [Attempt("Do it in French.", 1, None, False, "rejected by person",
                                                       None, "person", person_action="reject", person_reason=WHY)]),
              b.name: ParameterMemory(b.name)}
    prompt = TextOptimizer(Models.scripted(task).task, style="chat").joint_prompt([a, b], memory, step=2)[-1]["content"]
    part_a, part_b = prompt.split("### Parameter: x.format")
    assert f"Their reason: {WHY}" in part_a and JUDGEMENTS_HEADING not in part_b


def test_terminal_feedback_reaches_the_trainer_and_a_refusal_is_shown():
    import io

    from workbench.cli.terminal_approval import terminal_approval
    from workbench.training.approval import PendingProposal

    given = []

    def feedback(text, parameter):
        if "APPLE" in text:
            raise FeedbackRefused("feedback refused: leaks a training target: 'apple'")
        given.append((text, parameter))
    err = io.StringIO()
    typed = f"f\n{TIP}\nf\nSay APPLE.\nr\n\n"
    approval = terminal_approval(None, stdin=io.StringIO(typed), err=err, feedback=feedback)
    decision = approval.decide(PendingProposal("p1-1", "shout.instruction", "old", "new"))
    assert decision.action == "reject" and given == [(TIP, "shout.instruction")]
    shown = err.getvalue()
    assert "[a]ccept, [r]eject, [e]dit or [f]eedback? f\nFeedback on shout.instruction (its optimizer reads it): " \
           in shown
    assert "noted: the next proposal for shout.instruction reads it" in shown
    assert "feedback refused: leaks a training target: 'apple'" in shown


def test_feedback_on_a_tool_nodes_output_passes_through_it_to_the_llm_node_upstream():
    """engine level: seeded at `lookup` (a function), relayed to `query`, whose parameter's backward
    prompt holds it; the answer node downstream of it never sees it."""
    from test_engine_backward import run_failed_sample
    from workbench import BackwardEngine
    from workbench.llm.scripted import ScriptedModel

    pipeline, r = run_failed_sample()
    model = ScriptedModel(lambda m: "Search for the town's name.", role="backward")
    grads = BackwardEngine(model).backward(r.graph, pipeline.named_parameters(), person=[("lookup", TIP)])
    person = [g for g in grads if g.source == "person"]
    assert [(g.node_id, g.target, g.target_kind) for g in person] == [("lookup", "lookup", "value")]
    relayed = [g for g in grads if g.node_id == "lookup" and g.target == "query" and g.source == "backward"]
    assert relayed and f"(from the person) {TIP}" in relayed[0].text
    to_query = [c[-1]["content"] for c in model.calls if "### Parameter: query.instruction" in c[-1]["content"]]
    assert to_query and TIP in to_query[0]
    assert all(TIP not in c[-1]["content"] for c in model.calls if "### Parameter: answer.instruction" in
               c[-1]["content"])
    # a node the sample's graph lacks takes nothing (the trainer reports it as not applied)
    pipeline, r = run_failed_sample()
    grads = BackwardEngine(model).backward(r.graph, pipeline.named_parameters(), person=[("nowhere", TIP)])
    assert grads and not [g for g in grads if g.source == "person" or TIP in g.text]
