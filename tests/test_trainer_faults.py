"""A helper model that fails after its retries costs a gradient, a proposal or a demo trace, never
the run; a parameter that cannot learn is reported once per step, never silently."""
import re

import warnings

import pytest

from workbench import LLMCall, Models, Parameter, Pipeline, TrainConfig, Trainer
from workbench.errors import ConfigError, LLMCallError
from workbench.redact import register_secret
from workbench.records.store import RunStore
from workbench.tasks import get_task

from scripted_tasks import TEST, TRAIN, VAL, Optimizer, Shout, backward, same_text, task

SECRET = "sk-test-faults-0123456789abcdef"


def failing(message):
    def respond(messages):
        raise LLMCallError("http://127.0.0.1:9/v1", message, status=503)
    return respond


def run(tmp_path, models, pipeline=None, **kw):
    trainer = Trainer(pipeline or Shout(), TRAIN, VAL, TEST, same_text, models,
                      config=TrainConfig(max_steps=2, batch_size=4, concurrency=2), run_dir=tmp_path / "run", **kw)
    events = []
    trainer.bus.subscribe(events.append)
    return trainer, trainer.fit(), events


def failing_first(message):
    """The backward model fails on its first call and answers the others."""
    calls = []

    def respond(messages):
        calls.append(1)
        if len(calls) == 1:
            raise LLMCallError("http://127.0.0.1:9/v1", message, status=503)
        return backward(messages)
    return respond


def test_a_backward_model_that_fails_after_retries_skips_those_gradients_and_the_run_completes(tmp_path):
    register_secret(SECRET)
    models = Models.scripted(task, failing_first(f"upstream overloaded (key {SECRET})"), Optimizer())
    trainer, summary, events = run(tmp_path, models)
    assert summary.status == "completed" and summary.error is None
    skipped = [e.data for e in events if e.type == "skipped"]
    assert skipped and {s["stage"] for s in skipped} == {"backward"}
    assert {s["parameter"] for s in skipped} == {"shout.instruction"}
    assert len(skipped) == 1 and skipped[0]["sample_id"].startswith("tr-") and skipped[0]["node_id"]
    assert all("upstream overloaded" in s["error"] and SECRET not in s["error"] for s in skipped)
    assert [e for e in events if e.type == "gradient" and e.data["target_kind"] == "parameter"]  # the others
    # the record on disk says the same, without the key
    on_disk = [e.data for e in RunStore(tmp_path / "run").events() if e.type == "skipped"]
    assert len(on_disk) == len(skipped)
    assert SECRET not in (tmp_path / "run" / "events.jsonl").read_text()


def test_a_backward_model_that_fails_on_every_call_stops_the_run_in_one_line(tmp_path):
    models = Models.scripted(task, failing("upstream overloaded"), Optimizer())
    with pytest.raises(Exception, match=r"the backward model failed on all \d+ calls of step 1, so no parameter "
                                        r"can get feedback; first error: .*upstream overloaded"):
        run(tmp_path, models)
    summary = RunStore(tmp_path / "run").summary()
    assert summary["status"] == "failed" and "backward model failed on all" in summary["error"]
    assert summary["parameters"]["shout.instruction"] == "Repeat the word."  # nothing was learned from nothing


def test_an_endpoint_that_refuses_every_sample_alike_stops_before_training(tmp_path):
    def refuses(messages):
        raise LLMCallError("http://127.0.0.1:9/v1", "400 unsupported parameter: top_k", status=400)
    models = Models.scripted(refuses, backward, Optimizer())
    with pytest.raises(Exception, match="the endpoint refused every validation sample with the same error before "
                                        "training started: .*unsupported parameter: top_k"):
        run(tmp_path, models)
    assert RunStore(tmp_path / "run").summary()["status"] == "failed"


def test_an_optimizer_model_that_fails_after_retries_skips_the_proposal_and_the_run_completes(tmp_path):
    models = Models.scripted(task, backward, failing("bad gateway"))
    trainer, summary, events = run(tmp_path, models)
    assert summary.status == "completed" and summary.steps == 2
    skipped = [e.data for e in events if e.type == "skipped"]
    assert [s["stage"] for s in skipped] == ["optimizer", "optimizer"]  # one per step
    assert all(s["parameter"] == "shout.instruction" and "bad gateway" in s["error"] for s in skipped)
    assert not [e for e in events if e.type == "proposal"]
    assert [e.type for e in events].count("gradient") > 0  # the backward pass still ran


class Detour(Pipeline):
    """`aside` runs on every sample, but its output never reaches the answer."""

    def __init__(self):
        self.instruction = Parameter("shout.instruction", "Repeat the word.", description="how to write it")
        self.hint = Parameter("aside.instruction", "Say something about the word.", description="unused")
        self.node = LLMCall("shout", "{{instruction}}\nWord: {{word}}", [self.instruction])
        self.aside = LLMCall("aside", "{{instruction}}\nWord: {{word}}", [self.hint])

    def forward(self, word):
        self.aside(word=word)
        return self.node(word=word)


def test_a_parameter_with_no_path_to_the_loss_is_reported_once_per_step(tmp_path):
    trainer, summary, events = run(tmp_path, Models.scripted(task, backward, Optimizer()), Detour())
    found = [e for e in events if e.type == "disconnected"]
    reported = [(e.step, e.data["parameter"]) for e in found]
    assert reported[0] == (1, "aside.instruction") and len(reported) == len(set(reported))  # once per step
    assert found[0].data["node_id"].startswith("aside") and found[0].data["reason"]
    assert summary.status == "completed"


def test_a_teacher_that_fails_after_retries_skips_those_traces(tmp_path):
    task_ = get_task("classification")
    train, val, test = task_.load(8, 4, 4, seed=2)
    targets = {e.input["question"].strip(): e.target for e in train + val + test}

    def question(messages):
        return re.findall(r"Question: (.*)", messages[-1]["content"])[-1].strip()

    def teacher_reply(messages):
        q = question(messages)
        if sorted(targets).index(q) % 2:  # half the questions: the endpoint is down
            raise LLMCallError("http://127.0.0.1:9/v1", "connection reset", status=502)
        return f"Answer: {targets[q]}"
    models = Models.scripted(lambda m: f"Answer: {targets[question(m)]}", lambda m: "Show examples.",
                             lambda m: "<PROPOSAL>x</PROPOSAL>")
    pipeline = task_.make_pipeline()
    for p in pipeline.parameters():
        p.trainable = p.name == "classify.demos"
    trainer = Trainer(pipeline, train, val, test, task_.eval_fn, models, teacher=Models.scripted(teacher_reply).task,
                      config=TrainConfig(max_steps=1, batch_size=4), run_dir=tmp_path / "run")
    events = []
    trainer.bus.subscribe(events.append)
    summary = trainer.fit()
    assert summary.status == "completed"
    skipped = [e.data for e in events if e.type == "skipped"]
    teacher_ran = next(e.data["samples"] for e in events if e.type == "teacher")
    errored = {s["sample_id"] for s in teacher_ran if s["status"] == "errored"}
    assert errored and {s["sample_id"] for s in skipped} == errored
    assert {s["stage"] for s in skipped} == {"teacher"} and all("connection reset" in s["error"] for s in skipped)


class LeakyPipeline(Shout):
    def forward(self, word):
        raise ConfigError(f"endpoint refused key {SECRET}")


def test_a_failed_runs_error_reaches_subscribers_without_the_key(tmp_path):
    register_secret(SECRET)
    trainer = Trainer(LeakyPipeline(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, Optimizer()),
                      run_dir=tmp_path / "run")
    finished = []
    trainer.bus.subscribe(finished.append, {"run_finished"})
    with pytest.raises(ConfigError), warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        trainer.fit()
    assert finished[0].data["status"] == "failed" and "endpoint refused key" in finished[0].data["error"]
    assert SECRET not in finished[0].data["error"]
    # the forecast at the start of fit() meets the same error first: its warning must not show the key either
    assert any("no cost forecast" in str(w.message) for w in shown)
    assert not [str(w.message) for w in shown if SECRET in str(w.message)]


class Router(Pipeline):
    """Words starting with "z" go to a second node; no training word does, so it never runs."""
    def __init__(self):
        self.shout = Shout()
        self.rare = Parameter("rare.instruction", "Repeat the rare word.", description="for words starting with z")
        self.rare_node = LLMCall("rare", "{{instruction}}\nWord: {{word}}", [self.rare])

    def forward(self, word):
        return self.rare_node(word=word) if word.startswith("z") else self.shout(word=word)


def test_a_parameter_whose_node_did_not_run_on_the_backpropagated_samples_is_reported(tmp_path):
    """Not disconnected (its node never ran), and no gradient: the step says why it proposes nothing."""
    trainer, summary, events = run(tmp_path, Models.scripted(task, backward, Optimizer()), pipeline=Router())
    assert summary.status == "completed"
    silent = [e for e in events if e.type == "no_proposal" and e.data["source"] == "feedback"]
    assert {e.data["parameter"] for e in silent} == {"rare.instruction"}
    assert len(silent) == len({e.step for e in silent}) >= 1  # once per step
    assert "no node using it ran on the back-propagated samples (tr-" in silent[0].data["reason"]
    assert not [e for e in events if e.type == "disconnected"]
    on_disk = [e.data for e in RunStore(tmp_path / "run").events() if e.type == "no_proposal"]
    assert on_disk == [e.data for e in events if e.type == "no_proposal"]
    # the progress line and the CLI's last screen do not blame an optimizer that was never asked
    from workbench.cli.last_screen import proposal_stories
    from workbench.records.progress import describe_event
    assert describe_event("no_proposal", silent[0].data).startswith("nothing to propose for rare.instruction: no feedback this step")
    lines, _ = proposal_stories(events)
    assert any("nothing to propose for rare.instruction: no feedback" in line for line in lines)
