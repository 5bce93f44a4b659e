"""Backward: targets stay out of upstream prompts, one rule per node kind, failures are skipped and said."""
import re

import pytest

from workbench import BackwardEngine, LLMCall, Parameter, Pipeline, run_example, tool
from workbench.engine.backward import BACKWARD_RULES, backward_rule, hide_target
from workbench.tasks.datasets import Example
from workbench.errors import LLMCallError, WorkbenchError
from workbench.engine.graph import Graph, LossRecord
from workbench.llm.scripted import ScriptedModel
from workbench.engine.loss import EvalFn, exact_match

TARGET = "Ostervale"


def leaky_backward_model() -> ScriptedModel:
    """The worst backward model: it repeats the expected answer verbatim whenever it has seen it."""
    def respond(messages):
        text = messages[-1]["content"]
        m = re.search(r"expected answer was '([^']*)'", text)
        return f"It should have led to {m.group(1)}." if m else "Be more specific."
    return ScriptedModel(respond, role="backward")


class QueryThenAnswer(Pipeline):
    def __init__(self):
        self.query = LLMCall("query", "{{instruction}} {{question}}", [Parameter("query.instruction", "Search.")])
        self.answer = LLMCall("answer", "{{instruction}} {{context}}", [Parameter("answer.instruction", "Answer.")])

    def forward(self, question):
        docs = lookup(self.query(question=question))
        return self.answer(context=docs)


@tool
def lookup(q: str) -> str:
    return f"Documents about {q}."


def run_failed_sample():
    pipeline = QueryThenAnswer()
    model = ScriptedModel(lambda m: "glass towns" if "Search." in m[-1]["content"] else "Pemberfall")
    r = run_example(pipeline, Example("s", {"question": "Where are the furnaces?"}, TARGET, {}), exact_match, model)
    assert r.status == "failed"
    return pipeline, r


def test_the_raw_target_reaches_only_the_node_that_produced_the_prediction():
    pipeline, r = run_failed_sample()
    bw = leaky_backward_model()
    BackwardEngine(bw).backward(r.graph, pipeline.named_parameters())
    prompts = {re.search(r"(### Parameter: \S+|### Target value from node \S+)", c[-1]["content"]).group(1):
               c[-1]["content"] for c in bw.calls}
    assert TARGET in prompts["### Parameter: answer.instruction"]  # the node that answered sees the target
    assert TARGET in prompts["### Target value from node lookup"]  # (the answer node's own backward call)
    upstream = prompts["### Parameter: query.instruction"]
    assert TARGET not in upstream and "[the expected answer]" in upstream  # feedback about it, not the text
    upstream_grads = [g for g in r.graph.gradients if g.node_id in ("lookup", "query")]
    assert upstream_grads and all(TARGET not in g.text for g in upstream_grads)


def test_hide_target_masks_whole_words_case_insensitively_and_leaves_single_characters():
    assert hide_target("it is OSTERVALE, not Pemberfall", TARGET) == "it is [the expected answer], not Pemberfall"
    assert hide_target("NUM, NUMBER", "NUM") == "[the expected answer], NUMBER"
    assert hide_target("A is a letter", "A") == "A is a letter"
    assert hide_target("costs 42 (42.5?)", "42") == "costs [the expected answer] ([the expected answer].5?)"


def test_loss_feedback_says_what_the_eval_function_measures():
    pipeline, _ = run_failed_sample()
    picky = EvalFn(lambda p, t: float(p == t), "1 only if the town name is spelled exactly")
    model = ScriptedModel(lambda m: "glass towns" if "Search." in m[-1]["content"] else "Pemberfall")
    r = run_example(pipeline, Example("s", {"question": "q"}, TARGET, {}), picky, model)
    bw = leaky_backward_model()
    BackwardEngine(bw).backward(r.graph, pipeline.named_parameters())
    answer_prompt = next(c[-1]["content"] for c in bw.calls if "### Parameter: answer.instruction" in c[-1]["content"])
    assert "it measures: 1 only if the town name is spelled exactly" in answer_prompt
    assert r.graph.loss.measure == "1 only if the town name is spelled exactly"


def test_a_new_node_kind_needs_only_its_rule():
    """An aggregator kind, registered in one place, routes feedback to every input's producer."""
    @backward_rule("vote")
    def vote_backward(bp, node, feedback):
        for source in bp.graph.sources(node.id):
            bp.send(node, source, "(the vote went wrong) " + feedback[0].text)

    try:
        g = Graph("s")
        for name in ("a", "b"):
            n = g.new_node(name, "llm", parameters=[f"{name}.instruction"], prompt=[], output="x")
            g.output_texts[n.id] = ["x"]
        g.new_node("vote", "vote", output="x")
        g.new_node("loss", "loss")
        for e in [("a", "vote", "x"), ("b", "vote", "y"), ("vote", "loss", "prediction")]:
            g.add_edge(*e)
        g.loss = LossRecord(0.0, "x", "y", False)
        params = {f"{k}.instruction": Parameter(f"{k}.instruction", "Do.") for k in "ab"}
        BackwardEngine(ScriptedModel(lambda m: "fb", role="backward")).backward(g, params)
        assert [(x.node_id, x.target) for x in g.gradients] == [
            ("loss", "vote"), ("vote", "a"), ("vote", "b"), ("b", "b.instruction"), ("a", "a.instruction")]
    finally:
        BACKWARD_RULES.pop("vote")


def test_a_node_kind_without_a_rule_is_a_clear_error():
    g = Graph("s")
    g.new_node("mystery", "oracle", output="x")
    g.new_node("loss", "loss")
    g.add_edge("mystery", "loss", "prediction")
    g.loss = LossRecord(0.0, "x", "y", False)
    with pytest.raises(WorkbenchError, match="kind 'oracle', which has no backward rule"):
        BackwardEngine(ScriptedModel(lambda m: "fb")).backward(g, {})


def test_backward_of_an_unscored_graph_names_the_sample():
    with pytest.raises(WorkbenchError, match="sample 'nope' has no loss"):
        BackwardEngine(ScriptedModel(lambda m: "fb")).backward(Graph("nope"), {})


def test_a_backward_call_that_fails_after_retries_is_skipped_and_reported():
    pipeline, r = run_failed_sample()

    def respond(messages):
        if "### Parameter: answer.instruction" in messages[-1]["content"]:
            raise LLMCallError("http://backward.example/v1", "503 after 4 retries", status=503)
        return "fine"
    skipped = []
    params = pipeline.named_parameters()
    BackwardEngine(ScriptedModel(respond, role="backward")).backward(r.graph, params, on_skipped=skipped.append)
    assert skipped == [{"stage": "backward", "parameter": "answer.instruction", "node_id": "answer",
                        "sample_id": "s", "error": skipped[0]["error"]}]
    assert "503 after 4 retries" in skipped[0]["error"]
    assert params["answer.instruction"].gradients == [] and len(params["query.instruction"].gradients) == 1
    assert r.graph.disconnected == []  # a path exists: skipped is not disconnected

    with pytest.raises(LLMCallError):  # without a callback the failure is not swallowed
        BackwardEngine(ScriptedModel(respond, role="backward")).backward(run_failed_sample()[1].graph, params)
