"""The real backward engine on the embedded Gemma 3 270M, on one counting sample.

Measured: served through llama.cpp's gemma chat format, the 270M base model writes its document's
first line back (`Instruction: <the current value>`) instead of feedback. So this test accepts the
model's gradient only if it is not an echo of its prompt; otherwise the echo must be reported as
skipped and the parameter gets the evaluation's words, marked as relayed: never echo text as "feedback".
"""
import pytest

from workbench import BackwardEngine, run_example
from workbench.engine.backward import RELAYED_AFTER_ECHO, loss_feedback
from workbench.engine.backward_completion import ECHO_ERROR, backward_style, is_echo
from workbench.tasks.datasets import make_counting
from workbench.llm import LocalServer, Models
from workbench.engine.loss import get_eval_fn
from workbench.tasks.pipelines.counting import ObjectCounter


@pytest.mark.local_model
def test_the_embedded_models_backward_replies_are_feedback_or_reported_as_echoes():
    with LocalServer(startup_timeout_s=300) as server:
        models = Models.local(server=server, cache=None)
        pipeline = ObjectCounter()
        example = make_counting(1, seed=0)[0]
        result = run_example(pipeline, example, get_eval_fn("numeric_match"), models.task)
        assert result.graph.loss is not None  # scored (failed or passed: both get feedback)

        engine = BackwardEngine(models.backward, style=backward_style(models))
        assert engine.style == "completion"
        sent: list[list[dict]] = []
        ask = engine.ask
        engine.ask = lambda messages: sent.append(messages) or ask(messages)
        params, skipped = pipeline.named_parameters(), []
        engine.backward(result.graph, params, on_skipped=skipped.append)

    assert len(sent) == 2 and all(m[-1]["content"].endswith(":") for m in sent)  # cue last, one per parameter
    usage = models.usage.snapshot()["backward"]
    assert usage["calls"] == 2 and usage["completion_tokens"] <= 2 * engine.completion.max_tokens
    for name in ("count.instruction", "count.output_format"):
        [gradient] = [g.text for g in params[name].gradients]
        reports = [s for s in skipped if s["parameter"] == name]
        if gradient.endswith(RELAYED_AFTER_ECHO):  # the model echoed: said so, and the evaluation's words relayed
            assert [(r["stage"], r["error"]) for r in reports] == [("backward", ECHO_ERROR)]
            assert gradient == loss_feedback(result.graph) + RELAYED_AFTER_ECHO
        else:  # the model's own line: not a copy of its prompt
            prompt = next(m for m in sent if params[name].value in m[-1]["content"])
            assert reports == [] and not is_echo(gradient, prompt)
        assert not gradient.startswith(("Instruction:", "Output format:"))
