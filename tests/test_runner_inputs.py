"""Audit of issue 8.2/8.7: a dataset whose fields do not match `forward()` is a configuration error.

Before, every sample failed with the same `TypeError: forward() got an unexpected keyword argument`
(the pipeline's own code raising, so "failed", score 0), no call was made, and the run ended
`completed` with a validation score of 0.000: a silently wrong number. Now the run stops at once
with one line naming both the sample's fields and what `forward()` takes.
"""
from __future__ import annotations

import pytest

from workbench import FunctionPipeline, LLMCall, Parameter, trace, use_model
from workbench.tasks.datasets import Example
from workbench.errors import ConfigError, WorkbenchError
from workbench.llm.models import Models
from workbench.llm.scripted import ScriptedModel
from workbench.engine.loss import get_eval_fn
from workbench.engine.runner import run_example
from workbench.training.trainer import TrainConfig, Trainer

from scripted_tasks import TRAIN, VAL, Optimizer, Shout, backward, same_text, task


def renamed(examples):
    return [Example(e.id, {"question": e.input["word"]}, e.target, {}) for e in examples]


def test_a_run_whose_samples_do_not_fit_forward_stops_naming_both(tmp_path):
    models = Models.scripted(task, backward, Optimizer())
    trainer = Trainer(Shout(), renamed(TRAIN), renamed(VAL), [], same_text, models,
                      config=TrainConfig(max_steps=1), runs_root=tmp_path, progress=False)
    refused = r"Shout.forward\(\) cannot take the inputs of sample 'va-\w+', \['question'\]"
    with pytest.raises(ConfigError, match=refused) as caught:
        trainer.fit()
    assert "it takes ['word']" in str(caught.value)
    assert models.usage.total()["calls"] == 0


def test_one_sample_that_fits_is_run_as_before():
    result = run_example(Shout(), TRAIN[0], get_eval_fn(same_text), ScriptedModel(task))
    assert result.status == "failed" and result.error is None  # scored, not refused


def test_a_function_pipeline_is_checked_against_its_function():
    node = LLMCall("echo", "{{text}}")

    def answer(text, style="plain"):
        return node(text=text)

    pipeline = FunctionPipeline(answer, nodes=[node])
    model = ScriptedModel(lambda messages: "ok")
    ok = run_example(pipeline, Example("a", {"text": "hi"}, "ok", {}), get_eval_fn("exact_match"), model)
    assert ok.status == "ok"
    with pytest.raises(ConfigError, match=r"answer\(\) cannot take the inputs of sample 'b', \['prompt'\]"):
        run_example(pipeline, Example("b", {"prompt": "hi"}, "ok", {}), get_eval_fn("exact_match"), model)


def test_a_pipeline_taking_any_inputs_still_gets_them():
    class Anything(Shout):
        def forward(self, **inputs):
            return self.node(word=inputs["question"])

    result = run_example(Anything(), renamed(TRAIN)[0], get_eval_fn(same_text), ScriptedModel(task))
    assert result.status == "failed" and result.prediction == TRAIN[0].input["word"]


def test_an_input_with_no_slot_in_the_template_is_refused_naming_it():
    """`answer(question=q, contxt=docs)` (a typo) used to drop the documents from the prompt in silence,
    while the graph still linked the retriever to `answer` and sent it feedback."""
    instruction = Parameter("answer.instruction", "Answer from the context.")
    answer = LLMCall("answer", "{{instruction}}\nContext: {{context}}\nQuestion: {{question}}", [instruction])
    model = ScriptedModel(lambda messages: "Paris")
    with use_model(model), trace("s1") as graph:
        with pytest.raises(WorkbenchError, match=r"'answer': inputs \['contxt'\] have no \{\{slot\}\}") as caught:
            answer(question="Capital of France?", contxt="Paris is the capital of France.")
        assert "'context'" in str(caught.value)  # the slots it has, so the typo is plain
        assert model.calls == [] and graph.nodes == []  # refused before anything was sent or recorded
