"""Scores compare like with like: failed (the pipeline's fault, score 0) vs errored (the endpoint's)."""
import json
import math

import pytest

from workbench import BackwardEngine, LLMCall, Parameter, Pipeline, run_batch, run_example, tool
from workbench.tasks.datasets import Example
from workbench.errors import ConfigError, EndpointUnreachableError, LLMCallError, WorkbenchError
from workbench.llm.scripted import ScriptedModel
from workbench.engine.loss import EvalFn, EvalFunctionError, Score, exact_match, get_eval_fn, judge, parse_judgement

from scripted_tasks import backward_model


class JsonAnswer(Pipeline):
    """The model replies JSON; the pipeline's own code reads a key (and raises when it is missing)."""

    def __init__(self):
        self.instruction = Parameter("answer.instruction", "Reply as JSON with key 'answer'.")
        self.node = LLMCall("answer", "{{instruction}}\nWord: {{word}}", [self.instruction])

    def forward(self, word):
        return json.loads(self.node(word=word))["answer"]


def json_model(broken_words):
    def respond(messages):
        word = messages[-1]["content"].split("Word: ")[-1]
        return json.dumps({"wrong_key" if word in broken_words else "answer": word})
    return ScriptedModel(respond)


def test_pipeline_code_raising_on_some_samples_scores_them_zero_not_out_of_the_mean():
    words = [f"w{i}" for i in range(10)]
    examples = [Example(w, {"word": w}, w, {}) for w in words]
    batch = run_batch(JsonAnswer(), examples, exact_match, json_model({"w1", "w4", "w6", "w8"}), concurrency=3)
    assert batch.mean_score == pytest.approx(0.6)  # 6 of 10, not 6 of 6
    failed = [r for r in batch.results if r.status == "failed"]
    assert [r.sample_id for r in failed] == ["w1", "w4", "w6", "w8"] and batch.errored == []
    assert all(r.score == 0.0 and r.error.startswith("KeyError: 'answer' (at ") for r in failed)
    # the loss is linked (as a guess) to the node after whose output the code raised, so it gets feedback
    g = failed[0].graph
    assert [(e.source, e.target, e.guess) for e in g.edges] == [("answer", "loss", True)]
    pipeline = JsonAnswer()
    BackwardEngine(backward_model()).backward(g, pipeline.named_parameters())
    assert len(pipeline.instruction.gradients) == 1
    assert "raised `KeyError: 'answer'" in g.gradients[0].text


def test_a_tool_that_raises_fails_the_sample_and_feedback_passes_through_it():
    @tool
    def calculator(expression: str) -> str:
        return str(eval(expression, {"__builtins__": {}}))  # raises on bad model output

    class Calc(Pipeline):
        def __init__(self):
            self.instruction = Parameter("calc.instruction", "Write an arithmetic expression.")
            self.node = LLMCall("calc", "{{instruction}} {{question}}", [self.instruction])

        def forward(self, question):
            return calculator(self.node(question=question))

    pipeline = Calc()
    r = run_example(pipeline, Example("s", {"question": "two plus two"}, "4", {}), exact_match,
                    ScriptedModel(lambda m: "two + two"))
    assert (r.status, r.score, r.prediction) == ("failed", 0.0, None)
    assert r.error.startswith("NameError: name 'two' is not defined")
    assert {(e.source, e.target, e.guess) for e in r.graph.edges} == {("calc", "calculator", False),
                                                                   ("calculator", "loss", False)}
    BackwardEngine(backward_model()).backward(r.graph, pipeline.named_parameters())
    assert len(pipeline.instruction.gradients) == 1


@pytest.mark.parametrize("exc, status", [
    (LLMCallError("http://x/v1", "context length exceeded", status=400), "failed"),
    (LLMCallError("http://x/v1", "request too large", status=413), "failed"),
    (LLMCallError("http://x/v1", "rate limited after retries", status=429), "errored"),
    (LLMCallError("http://x/v1", "bad gateway", status=502), "errored"),
    (LLMCallError("http://x/v1", "invalid api key", status=401), "errored"),
    (LLMCallError("http://x/v1", "timed out"), "errored"),
    (EndpointUnreachableError("http://x/v1", "connection refused"), "errored"),
    (RuntimeError("a custom model object broke"), "errored"),
])
def test_endpoint_failures_are_errored_and_a_prompt_the_endpoint_refuses_is_failed(exc, status):
    def respond(messages):
        raise exc
    r = run_example(JsonAnswer(), Example("s", {"word": "w"}, "w", {}), exact_match, ScriptedModel(respond))
    assert r.status == status
    assert (r.score, r.error is not None) == ((0.0, True) if status == "failed" else (None, True))
    if status == "errored":
        assert r.graph.loss is None


def test_an_eval_function_that_raises_fails_that_sample_with_the_error():
    def fussy(prediction, target):
        if prediction == "w2":
            raise ValueError("cannot compare w2")
        return float(prediction == target)
    examples = [Example(w, {"word": w}, w, {}) for w in ("w1", "w2", "w3")]
    batch = run_batch(JsonAnswer(), examples, fussy, json_model(set()), concurrency=1)
    assert [(r.status, r.score) for r in batch.results] == [("ok", 1.0), ("failed", 0.0), ("ok", 1.0)]
    assert batch.results[1].error.startswith("the eval function raised on this prediction: ValueError: cannot compare")
    assert batch.results[1].prediction == "w2" and batch.mean_score == pytest.approx(2 / 3)


@pytest.mark.parametrize("value", [math.nan, math.inf, None, 3.0, -0.5, "1", [1.0]])
def test_an_eval_function_must_return_a_finite_number_in_0_1(value):
    with pytest.raises(EvalFunctionError, match=r"returned .* for sample 's'.*finite number in \[0, 1\]") as info:
        run_example(JsonAnswer(), Example("s", {"word": "w"}, "w", {}), lambda p, t: value, json_model(set()))
    assert repr(value) in str(info.value)
    assert isinstance(info.value, WorkbenchError)


def test_eval_functions_accept_bools_ints_and_numpy_numbers():
    import numpy as np
    for value, expected in [(True, 1.0), (0, 0.0), (np.float64(0.25), 0.25)]:
        r = run_example(JsonAnswer(), Example("s", {"word": "w"}, "w", {}), lambda p, t, v=value: v, json_model(set()))
        assert r.score == expected and type(r.score) is float


def test_eval_functions_say_what_they_measure():
    assert "expected answer" in get_eval_fn("exact_match").description
    def mine(prediction, target):
        """1 when the colour matches."""
        return 1.0
    assert get_eval_fn(mine).description == "1 when the colour matches."
    assert get_eval_fn(lambda p, t: 1.0, describe="the same digits").description == "the same digits"
    assert EvalFn(mine, "custom").description == "custom" and EvalFn(mine)("a", "b") == 1.0
    with pytest.raises(ConfigError, match="unknown eval function 'exactmatch'"):
        get_eval_fn("exactmatch")


class Echo(Pipeline):
    def __init__(self):
        self.instruction = Parameter("answer.instruction", "Say where.")
        self.node = LLMCall("answer", "{{instruction}}\nWord: {{word}}", [self.instruction])

    def forward(self, word):
        return self.node(word=word).strip()


def test_llm_judge_scores_in_0_1_and_its_reasoning_is_the_loss_feedback():
    replies = iter(["Vague, it never names the town.\nSCORE: 3/10"])
    grader = ScriptedModel(lambda m: next(replies), role="judge")
    criteria = judge("names the town where the furnaces are", model=grader)
    model = ScriptedModel(lambda m: " somewhere ")
    r = run_example(Echo(), Example("s", {"word": "w"}, "Ostervale", {}), criteria, model)
    assert r.score == pytest.approx(0.3) and r.status == "failed"
    assert r.graph.loss.feedback == "Vague, it never names the town."
    assert "names the town" in r.graph.loss.measure
    assert "names the town" in grader.calls[0][-1]["content"] and "somewhere" in grader.calls[0][-1]["content"]
    pipeline = Echo()
    BackwardEngine(backward_model()).backward(r.graph, pipeline.named_parameters())
    assert "The evaluator's reasoning: Vague, it never names the town." in r.graph.gradients[0].text


def test_a_judge_without_a_score_is_reminded_once_then_the_sample_fails():
    grader = ScriptedModel(lambda m: "I like it.", role="judge")
    r = run_example(JsonAnswer(), Example("s", {"word": "w"}, "w", {}), judge("is nice", model=grader),
                    json_model(set()))
    assert r.status == "failed" and "gave no score" in r.error and len(grader.calls) == 2


@pytest.mark.parametrize("reply, score", [("ok\nSCORE: 0.8", 0.8), ("Score = 1", 1.0), ("score: 70%", 0.7),
                                          ("SCORE: 7", None), ("no number", None), ("score: 0/0", None)])
def test_parse_judgement(reply, score):
    got = parse_judgement(reply)
    assert (got is None) if score is None else (isinstance(got, Score) and got == pytest.approx(score))


def test_two_parameters_for_one_slot_are_refused_when_the_call_is_built():
    a, b = Parameter("first.instruction", "one"), Parameter("second.instruction", "two")
    with pytest.raises(WorkbenchError, match=r"\['first.instruction', 'second.instruction'\] would all fill the slot "
                                             r"\{\{instruction\}\}"):
        LLMCall("x", "{{instruction}} {{question}}", [a, b])


def test_long_list_and_dict_inputs_reach_the_prompt_in_full():
    docs = [f"passage {i}: " + "word " * 200 for i in range(10)]  # ~10,000 characters
    seen = []
    node = LLMCall("answer", "{{instruction}}\n{{docs}}\n{{meta}}", [Parameter("answer.instruction", "Answer.")],
                   model=ScriptedModel(lambda m: seen.append(m[-1]["content"]) or "ok"))
    meta = {"k": "v" * 5000}
    node(docs=docs, meta=meta)
    assert "\n".join(docs) in seen[0] and repr(meta) in seen[0]
    assert "more characters" not in seen[0]


@pytest.mark.parametrize("name", ["a#2", "", "tab\x01", "\ud800"])
def test_node_names_that_cannot_be_graph_ids_are_refused(name):
    with pytest.raises(WorkbenchError):
        LLMCall(name, "{{q}}")
    with pytest.raises(WorkbenchError):
        tool(lambda q: q, name=name)
