"""Audit of issue 9 ("a failure of the backward or optimizer model ... never a traceback") for
models people write themselves.

A ChatModel of one's own that raises (a RuntimeError from its HTTP library, a bug) was treated as an
endpoint failure in the task model only. As the backward model it escaped `fit()` as a raw
RuntimeError; as an LLM judge it made the sample "failed" (score 0, counted in the mean) although
the judge, not the pipeline, could not answer. Now each such call is an LLMCallError naming the
model: the gradient is skipped with a `skipped` event and the judged sample is "errored".
"""
from __future__ import annotations

import json

import pytest

from workbench.errors import BadArgumentError, LLMCallError, RunStopped
from workbench.llm.models import Models
from workbench.llm.scripted import ScriptedModel
from workbench.llm.types import ask
from workbench.engine.loss import judge
from workbench.engine.runner import run_batch
from workbench.training.trainer import TrainConfig, Trainer

from scripted_tasks import TEST, TRAIN, VAL, Optimizer, Shout, backward_model, same_text, task


def broken(messages):
    raise RuntimeError("connection pool is closed")


def test_ask_names_the_model_that_could_not_answer_and_keeps_workbench_errors():
    with pytest.raises(LLMCallError, match="model my-model failed: RuntimeError: connection pool is closed"):
        ask(ScriptedModel(broken, model="my-model"), [{"role": "user", "content": "hi"}])

    def stopped(messages):
        raise RunStopped("stopped by the user")
    with pytest.raises(RunStopped):  # the package's own errors keep their meaning
        ask(ScriptedModel(stopped), [{"role": "user", "content": "hi"}])


def skipped_after_one_step(models, tmp_path) -> list[dict]:
    """Train one step (it must complete) and return the data of its `skipped` events."""
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, models, config=TrainConfig(max_steps=1),
                      runs_root=tmp_path, progress=False)
    assert trainer.fit().status == "completed"
    events = [json.loads(line) for line in (trainer.store.path / "events.jsonl").read_text().splitlines()]
    return [e["data"] for e in events if e["type"] == "skipped"]


def test_a_backward_model_of_ones_own_that_raises_skips_gradients_instead_of_crashing(tmp_path):
    calls = []

    def broken_once(messages):  # the first call raises; a run where every call raises stops (test_trainer_faults)
        calls.append(1)
        return broken(messages) if len(calls) == 1 else backward_model().respond(messages)
    skipped = skipped_after_one_step(Models.scripted(task, broken_once, Optimizer()), tmp_path)
    assert skipped and {s["stage"] for s in skipped} == {"backward"}
    assert all("RuntimeError: connection pool is closed" in s["error"] for s in skipped)


def test_a_judge_model_that_raises_leaves_the_sample_out_of_the_mean():
    judged = judge("the word is in capitals", model=ScriptedModel(broken, model="judge-model"))
    batch = run_batch(Shout(), TRAIN[:3], judged, ScriptedModel(task), concurrency=1)
    assert [r.status for r in batch.results] == ["errored"] * 3
    assert "judge-model" in batch.results[0].error
    assert batch.mean_score is None  # not three zeros counted as the prompt's fault


def test_a_scripted_reply_that_is_not_text_stops_the_run_as_bad_use(tmp_path):
    """A test script's mistake is the caller's, not an endpoint that could not answer: it is not
    turned into errored samples or skipped gradients."""
    models = Models.scripted(lambda messages: None, lambda messages: "feedback", Optimizer())
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, models, config=TrainConfig(max_steps=1),
                      runs_root=tmp_path, progress=False)
    with pytest.raises(BadArgumentError, match="respond\\(\\) must return str, got NoneType"):
        trainer.fit()


def test_an_optimizer_model_of_ones_own_that_raises_skips_the_proposal_instead_of_crashing(tmp_path):
    models = Models(task=ScriptedModel(task), backward=backward_model(),
                    optimizer=ScriptedModel(broken, role="optimizer"))
    skipped = skipped_after_one_step(models, tmp_path)
    assert skipped and {s["stage"] for s in skipped} == {"optimizer"}
    assert all("connection pool is closed" in s["error"] for s in skipped)
