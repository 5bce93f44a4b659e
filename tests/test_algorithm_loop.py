"""The paper's proposal loop in the trainer, with scripted models: one rule per test.

Up to `max_proposals` attempts per parameter per step, each seeing the ones rejected before it;
strict, paired minibatch gate on the back-propagated samples; failed samples carried over until
something is accepted; later parameters gated against the new values; joint proposals; leaks
refused before any evaluation; a person's edit gated like a proposal; no evaluation paid twice.
"""
import re

import pytest
from scripted_tasks import BAD, GOOD, TEST, TRAIN, VAL, Optimizer, Shout, backward, same_text, task

from workbench import LLMCall, Parameter, Pipeline
from workbench.training.approval import CallbackApproval, Decision
from workbench.tasks.datasets import Example
from workbench.errors import ConfigError, LLMCallError
from workbench.llm.models import Models
from workbench.training.trainer import TrainConfig, Trainer


def make(tmp_path, optimizer, *, pipeline=None, task_fn=task, train=TRAIN, val=VAL, test=TEST, **config):
    models = Models.scripted(task_fn, backward, optimizer)
    approval = config.pop("approval", None)
    settings = {"max_steps": 2, "batch_size": 4, "concurrency": 2, **config}
    trainer = Trainer(pipeline or Shout(), train, val, test, same_text, models, config=TrainConfig(**settings),
                      run_dir=tmp_path / "run", approval=approval)
    events = []
    trainer.bus.subscribe(events.append)
    return trainer, models, events


def of(events, kind):
    return [e for e in events if e.type == kind]


def test_the_second_of_five_proposals_is_kept_and_its_prompt_shows_the_first_with_its_reason(tmp_path):
    opt = Optimizer()  # BAD until a failed proposal shows in its prompt, then GOOD
    trainer, _, events = make(tmp_path, opt, max_steps=1)
    summary = trainer.fit()
    assert trainer.params["shout.instruction"].value == GOOD and summary.best_step == 1
    proposals = [e.data for e in of(events, "proposal")]
    assert [(p["new"], p["attempt"]) for p in proposals] == [(BAD, 1), (GOOD, 2)]
    assert len(opt.prompts) == 2  # it stopped at the first candidate that passed both gates
    this_step = opt.prompts[1].split("Already tried in THIS step")[1]
    assert BAD in this_step and "minibatch score stayed at 0.000 (a strict gain is required)" in this_step
    # the history starts with the initial value and its baseline score
    assert "- score 0.000 (step 0, initial value): 'Repeat the word.'" in opt.prompts[0]
    gates = [e.data for e in of(events, "minibatch")]
    assert [(g["before"], g["after"], g["passed"]) for g in gates] == [(0.0, 0.0, False), (0.0, 1.0, True)]
    assert sorted(gates[0]["samples"]) == sorted(s["sample_id"] for s in of(events, "selection")[0].data["samples"]
                                                 if s["selected"])


def test_at_most_max_proposals_attempts_and_then_the_step_moves_on(tmp_path):
    tried = []

    def useless(messages):
        tried.append(1)
        return f"<PROPOSAL>Repeat the word, variant {len(tried)}.</PROPOSAL>"
    trainer, _, events = make(tmp_path, useless, max_steps=1, max_proposals=3)
    trainer.fit()
    assert len(tried) == 3 and [e.data["attempt"] for e in of(events, "proposal")] == [1, 2, 3]
    assert not any(e.data["accepted"] for e in of(events, "update"))
    assert of(events, "step_finished")[0].data["rejected"] == [e.data["proposal_id"] for e in of(events, "proposal")]


def test_failed_samples_of_a_step_with_nothing_accepted_are_back_propagated_next_step(tmp_path):
    proposals = iter([BAD, GOOD, GOOD])
    trainer, _, events = make(tmp_path, lambda m: f"<PROPOSAL>{next(proposals)}</PROPOSAL>", batch_size=2,
                              max_failed=1, max_correct=0, max_proposals=1, max_steps=3)
    trainer.fit()
    first, second = (e.data["samples"] for e in of(events, "backward_done")[:2])
    assert len(first) == 1 and first[0] in second  # carried into step 2 ...
    assert first[0] not in [e.id for e in trainer.batch_for(2)]  # ... though it is not in step 2's batch
    reasons = {s["sample_id"]: s["reason"] for s in of(events, "selection")[1].data["samples"]}
    assert reasons[first[0]].startswith("carried")
    assert [e.data["accepted"] for e in of(events, "update")] == [False, True]
    assert trainer.curve[1]["carried"] == first and trainer.curve[2]["carried"] == []  # reset once accepted


class Formatted(Pipeline):
    """Capital letters come out only when the instruction AND the format both ask for them."""
    def __init__(self):
        self.instruction = Parameter("shout.instruction", "Repeat the word.")
        self.format = Parameter("shout.format", "Plain text.", role="output_format")
        self.node = LLMCall("shout", "{{instruction}}\n{{format}}\nWord: {{word}}", [self.instruction, self.format])

    def forward(self, word):
        return self.node(word=word)


def both_needed(messages):
    text = messages[-1]["content"]
    word = re.search(r"Word: (\w+)", text).group(1)
    return word.upper() if "UPPERCASE" in text and "CAPS" in text else word


def test_a_joint_proposal_changes_two_parameters_that_only_work_together(tmp_path):
    def joint(messages):
        text = messages[-1]["content"]
        if '<PROPOSAL name="NAME">' in text:
            return ('<PROPOSAL name="shout.instruction">Repeat the word in UPPERCASE.</PROPOSAL>'
                    '<PROPOSAL name="shout.format">Letters in CAPS only.</PROPOSAL>')
        return "<PROPOSAL>Repeat the word in UPPERCASE.</PROPOSAL>" if "### Parameter: shout.instruction" in text \
            else "<PROPOSAL>Letters in CAPS only.</PROPOSAL>"
    alone, _, alone_events = make(tmp_path / "a", joint, pipeline=Formatted(), task_fn=both_needed, max_steps=1,
                                  max_proposals=1)
    alone.fit()  # one at a time, neither change helps on its own: both are reverted
    assert not any(e.data["accepted"] for e in of(alone_events, "update"))
    together, models, events = make(tmp_path / "j", joint, pipeline=Formatted(), task_fn=both_needed, max_steps=1,
                                    max_proposals=1, optimize="joint")
    summary = together.fit()
    assert len(models.optimizer.calls) == 1 and len(of(events, "validation")) == 1
    assert {e.data["parameter"] for e in of(events, "proposal")} == {"shout.instruction", "shout.format"}
    assert {e.data["group"] for e in of(events, "proposal")} == {"shout.instruction+shout.format"}
    updates = of(events, "update")
    assert [u.data["accepted"] for u in updates] == [True, True] and len({u.data["proposal_id"] for u in updates}) == 1
    assert summary.best_val == 1.0 and of(events, "step_finished")[0].data["mode"] == "joint"


def test_after_one_parameter_is_accepted_the_next_is_gated_against_the_new_values(tmp_path):
    def each(messages):
        text = messages[-1]["content"]
        if "### Parameter: shout.instruction" in text:
            return "<PROPOSAL>Repeat the word in UPPERCASE.</PROPOSAL>"
        return "<PROPOSAL>Letters in CAPS only.</PROPOSAL>"
    trainer, models, events = make(tmp_path, each, pipeline=Formatted(), task_fn=lambda m: both_needed(m).upper()
                                   if "UPPERCASE" in m[-1]["content"] else both_needed(m), max_steps=1)
    trainer.fit()
    gates = {e.data["proposal_id"]: e.data for e in of(events, "minibatch")}
    by_param = {}
    for e in of(events, "proposal"):
        by_param.setdefault(e.data["parameter"], gates.get(e.data["proposal_id"]))
    assert by_param["shout.instruction"]["before"] == 0.0 and by_param["shout.instruction"]["after"] == 1.0
    # the format's gate starts from the accepted instruction (1.0), not from the stale 0.0 of the batch
    assert by_param["shout.format"]["before"] == 1.0
    # the same text again in the same step is refused at once, without another evaluation
    reasons = [e.data["reason"] for e in of(events, "update") if e.data["parameter"] == "shout.format"]
    assert reasons[0].startswith("not validated: even every validation sample right (1.000) could not beat best 1.000")
    assert set(reasons[1:]) == {"already rejected in this step"} and len(of(events, "minibatch")) == 2
    # a stuck optimizer: after a second repeat in a row the step's attempts end (not all 5 are paid for)
    assert len(reasons) == 2
    stuck, = [e.data for e in of(events, "no_proposal") if e.data["parameter"] == "shout.format"]
    assert "repeated candidates already rejected in this step 2 times in a row" in stuck["reason"]
    format_calls = [m for m in models.optimizer.calls if "### Parameter: shout.format" in m[-1]["content"]]
    assert len(format_calls) == 3


def test_a_proposal_that_leaks_a_training_target_is_refused_before_any_evaluation(tmp_path):
    trainer, models, events = make(tmp_path, lambda m: "<PROPOSAL>Repeat the word; for apple write APPLE.</PROPOSAL>",
                                   max_steps=1, max_proposals=1)
    calls = []
    trainer.bus.subscribe(lambda e: calls.append(len(models.task.calls)), {"proposal", "update"})
    trainer.fit()
    update = of(events, "update")[0].data
    assert not update["accepted"] and update["reason"] == "leaks a training target: 'apple'"
    assert calls[0] == calls[1]  # no task call between the proposal and its rejection
    assert not of(events, "minibatch") and not of(events, "validation")
    assert trainer.memory["shout.instruction"].failures()[-1].reason == "leaks a training target: 'apple'"


def test_a_persons_edit_goes_through_the_constraint_check_and_the_minibatch_gate(tmp_path):
    edits = iter(["Repeat the word, slowly.", "Repeat the word in UPPERCASE, please."])

    def person(pending):
        return Decision("edit", "person", text=next(edits))
    pipeline = Shout()
    pipeline.instruction.constraints = ["Repeat the word"]
    trainer, models, events = make(tmp_path, Optimizer(), pipeline=pipeline, max_steps=1, max_proposals=5,
                                   approval=CallbackApproval(person))
    trainer.fit()
    updates = [e.data for e in of(events, "update")]
    reasons = [u["reason"] for u in updates]
    assert reasons[0] == "minibatch score stayed at 0.000 (a strict gain is required)"  # BAD, before any person
    assert reasons[1].startswith("the edit failed the minibatch gate: minibatch score stayed at 0.000")
    assert updates[2]["accepted"] and updates[2]["value"] == "Repeat the word in UPPERCASE, please."
    sources = [e.data["source"] for e in of(events, "proposal")]
    assert sources == ["optimizer", "optimizer", "human", "optimizer", "human"]


def test_an_edit_that_breaks_a_constraint_is_refused_without_any_evaluation(tmp_path):
    pipeline = Shout()
    pipeline.instruction.constraints = ["Repeat the word"]
    trainer, models, events = make(tmp_path, lambda m: f"<PROPOSAL>{GOOD}</PROPOSAL>", pipeline=pipeline,
                                   max_steps=1, max_proposals=1,
                                   approval=CallbackApproval(lambda p: Decision("edit", "person", text="SHOUT IT.")))
    trainer.fit()
    update = of(events, "update")[0].data
    assert not update["accepted"] and "the edit breaks a constraint" in update["reason"]
    assert len(of(events, "minibatch")) == 1  # only the optimizer's own candidate was gated


def test_no_evaluation_of_the_same_values_on_the_same_sample_is_paid_twice(tmp_path):
    trainer, models, events = make(tmp_path, lambda m: f"<PROPOSAL>{BAD}</PROPOSAL>", max_steps=2, max_proposals=2,
                                   batch_size=4, epochs=1)
    summary = trainer.fit()
    assert summary.final["test"] == summary.baseline["test"] and summary.best_step == 0
    prompts = [str(m) for m in models.task.calls]
    assert len(prompts) == len(set(prompts))  # the cache is off: each prompt was sent exactly once
    # the final test pass reused the baseline's results: no task call after the last step
    finished = [e.data for e in events if e.type == "eval" and e.data["phase"] == "final"]
    assert finished and finished[0]["score"] == summary.baseline["test"]
    test_prompts = [p for p in prompts if any(f"Word: {e.input['word']}" in p for e in TEST)]
    assert len(test_prompts) == len(TEST)


def test_gates_are_paired_an_errored_sample_is_left_out_of_both_means(tmp_path):
    def flaky(messages):
        text = messages[-1]["content"]
        if "UPPERCASE" in text and "Word: lemon" in text:
            raise LLMCallError("http://127.0.0.1:9/v1", "503 busy", status=503)
        return task(messages)
    val = [Example(f"va-{w}", {"word": w}, w.upper(), {}) for w in ["lemon", "north", "candle", "garden"]]
    trainer, _, events = make(tmp_path, lambda m: f"<PROPOSAL>{GOOD}</PROPOSAL>", task_fn=flaky, val=val,
                              max_steps=1, max_proposals=1)
    summary = trainer.fit()
    validation = of(events, "validation")[0].data
    assert validation["left_out"] == 1 and (validation["best"], validation["score"]) == (0.0, 1.0)
    assert "1 errored sample(s) left out of both" in of(events, "update")[0].data["reason"]
    assert summary.best_val == 1.0


def test_old_settings_with_num_candidates_still_load():
    assert TrainConfig.from_dict({"max_steps": 1, "num_candidates": 3}).max_proposals == 3
    with pytest.warns(DeprecationWarning, match="max_proposals"):
        assert TrainConfig(num_candidates=2).max_proposals == 2
    with pytest.raises(ConfigError, match="optimize must be 'all', 'one' or 'joint'"):
        TrainConfig(optimize="together")


def test_carried_samples_and_the_memo_survive_a_resume(tmp_path):
    settings = dict(batch_size=2, max_failed=1, max_correct=0, max_proposals=1)
    bad = lambda m: f"<PROPOSAL>{BAD}</PROPOSAL>"  # noqa: E731 -- nothing is ever accepted
    first, models, _ = make(tmp_path, bad, max_steps=1, **settings)
    models.task.identity = "scripted-task@v1"  # what names the model across processes (an endpoint + model)
    first.fit()
    carried = first.curve[-1]["carried"]
    assert len(carried) == 1
    # a new process: a new model object; only the run folder's memo file knows the earlier evaluations
    later = Models.scripted(task, backward, bad)
    later.task.identity = "scripted-task@v1"
    resumed = Trainer(Shout(), TRAIN, VAL, TEST, same_text, later, config=TrainConfig(max_steps=2, concurrency=2,
                                                                                       **settings),
                      run_dir=tmp_path / "run", resume=True)
    events = []
    resumed.bus.subscribe(events.append)
    summary = resumed.fit()
    reasons = {s["sample_id"]: s["reason"] for s in of(events, "selection")[0].data["samples"]}
    assert reasons[carried[0]].startswith("carried")
    # nothing was kept, so the final test pass is the baseline's, answered from the memo file
    assert summary.final["test"] == summary.baseline["test"]
    assert not [c for c in later.task.calls if any(f"Word: {e.input['word']}" in c[-1]["content"] for e in TEST)]


def test_an_optimizer_that_keeps_the_current_value_ends_the_attempts_with_a_no_proposal(tmp_path):
    """Returning the current text is the optimizer saying "nothing to change": it was refused as a broken
    constraint, then as a repeat, paying for optimizer calls that could only say the same again."""
    keep = lambda messages: "<PROPOSAL>Repeat the word.</PROPOSAL>"  # noqa: E731  (Shout's current value)
    trainer, models, events = make(tmp_path, keep, max_steps=1)
    trainer.fit()
    assert of(events, "proposal") == [] and len(models.optimizer.calls) == 1
    kept, = [e.data for e in of(events, "no_proposal")]
    assert kept["parameter"] == "shout.instruction" and "current value unchanged" in kept["reason"]

