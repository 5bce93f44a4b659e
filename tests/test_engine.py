"""The engine against hand-checked expectations: which nodes and parameters receive gradients."""
import re

import pytest

from workbench import (BackwardEngine, LLMCall, Parameter, Pipeline, run_batch, run_example,
                       select_for_backward, to_dot, tool, trace, use_model)
from workbench.tasks.datasets import Example
from workbench.errors import DuplicateParameterError, TemplateError
from workbench.engine.graph import Graph
from workbench.llm.scripted import ScriptedModel
from workbench.engine.loss import exact_match

from scripted_tasks import backward_model

DOCS = {"paris": "Paris is the capital of France.", "seine": "The Seine flows through Paris."}


def task_model() -> ScriptedModel:
    """Query writer copies the last word of the question; answerer answers the first word of the context."""
    def respond(messages):
        text = messages[-1]["content"]
        if text.startswith("Write a search query"):
            hop = text.count("Known:")
            return "paris" if hop == 0 else "seine"
        context = re.search(r"Context: (.*)", text, re.S).group(1)
        return context.split()[0]
    return ScriptedModel(respond, role="task")


@tool
def retrieve(query: str) -> list[str]:
    return [DOCS[query]] if query in DOCS else []


class RAG(Pipeline):
    def __init__(self, hops: int = 1):
        self.hops = hops
        self.query_instruction = Parameter("query.instruction", "Write a search query for the question.",
                                           description="tells the query writer what to search for")
        self.answer_instruction = Parameter("answer.instruction", "Answer in one word.",
                                            description="how to answer from the context")
        self.answer_format = Parameter("answer.format", "Reply with the answer only.", role="output_format",
                                       trainable=False)
        self.query = LLMCall("query", "Write a search query. {{instruction}}\n{{known}}Question: {{question}}",
                             [self.query_instruction])
        self.answer = LLMCall("answer", "{{instruction}} {{format}}\nQuestion: {{question}}\nContext: {{context}}",
                              [self.answer_instruction, self.answer_format])

    def forward(self, question):
        docs: list[str] = []
        for _ in range(self.hops):
            known = "".join(f"Known: {d}\n" for d in docs)
            docs += retrieve(self.query(question=question, known=known))
        return self.answer(question=question, context="\n".join(docs))


def run_and_backward(pipeline, target="Paris"):
    ex = Example("s1", {"question": "What is the capital of France?"}, target, {})
    result = run_example(pipeline, ex, exact_match, task_model())
    params = pipeline.named_parameters()
    BackwardEngine(backward_model()).backward(result.graph, params)
    return result, params


def test_three_node_pipeline_feedback_reaches_query_writer_through_retriever():
    pipeline = RAG(hops=1)
    result, params = run_and_backward(pipeline, target="Lyon")  # wrong on purpose
    g = result.graph
    assert [n.id for n in g.nodes] == ["query", "retrieve", "answer", "loss"]
    assert {(e.source, e.target, e.input) for e in g.edges} == {
        ("query", "retrieve", "query"), ("retrieve", "answer", "context"), ("answer", "loss", "prediction")}
    got = [(gr.node_id, gr.target, gr.target_kind) for gr in g.gradients]
    assert got == [
        ("loss", "answer", "value"),
        ("answer", "answer.instruction", "parameter"),  # answer.format is frozen: no gradient
        ("answer", "retrieve", "value"),
        ("retrieve", "query", "value"),  # passed through, no LLM call
        ("query", "query.instruction", "parameter"),
    ]
    relayed = g.gradients[3].text
    assert "relayed through function `retrieve`" in relayed and "feedback for retrieve" in relayed
    assert [x.text for x in params["query.instruction"].gradients] == ["feedback for query.instruction"]
    assert params["answer.format"].gradients == []


def test_backward_prompt_shows_peers_inputs_output_feedback_and_score():
    pipeline = RAG(hops=1)
    ex = Example("s1", {"question": "What is the capital of France?"}, "Lyon", {})
    result = run_example(pipeline, ex, exact_match, task_model())
    bw = backward_model()
    BackwardEngine(bw).backward(result.graph, pipeline.named_parameters())
    prompt = next(c[-1]["content"] for c in bw.calls if "### Parameter: answer.instruction" in c[-1]["content"])
    assert "answer.format (output_format): Reply with the answer only." in prompt  # peer
    assert "Context: Paris is the capital of France." in result.graph.node("answer").prompt[-1]["content"]
    assert "<INPUT name=context>" in prompt and "<OUTPUT>\nParis\n</OUTPUT>" in prompt
    assert "expected answer was 'Lyon'" in prompt and "score of the whole pipeline on this sample: 0" in prompt.lower()


def test_two_hop_loop_gives_each_call_its_own_time_ordered_gradient():
    pipeline = RAG(hops=2)
    result, params = run_and_backward(pipeline, target="Lyon")
    g = result.graph
    assert [n.id for n in g.nodes] == ["query", "retrieve", "query#2", "retrieve#2", "answer", "loss"]
    assert ("retrieve", "query#2", "known") in {(e.source, e.target, e.input) for e in g.edges}
    grads = params["query.instruction"].gradients_in_order()
    assert [(x.node_id, x.call_index) for x in grads] == [("query", 1), ("query#2", 2)]
    # hop 1's output fed hop 2 and the answer: it received feedback from both consumers
    assert {x.node_id for x in g.gradients if x.target == "retrieve"} == {"answer", "query#2"}


def test_a_parameter_shared_by_two_nodes_of_a_loop_gets_its_gradients_in_the_order_the_calls_ran():
    """think, act, think#2, act#2: sorted by call number then node name, "act" came before "think"."""
    rules = Parameter("agent.rules", "Think, then act.", description="shared by both steps of the agent")

    class Agent(Pipeline):
        def __init__(self):
            self.rules = rules
            self.think = LLMCall("think", "{{rules}}\nThink about: {{state}}", [rules])
            self.act = LLMCall("act", "{{rules}}\nAct on: {{thought}}", [rules])

        def forward(self, question):
            state = question
            for _ in range(2):
                state = self.act(thought=self.think(state=state))
            return state

    model = ScriptedModel(lambda messages: "step " + str(len(messages[-1]["content"])), role="task")
    result = run_example(Agent(), Example("s1", {"question": "q?"}, "done", {}), exact_match, model)
    assert [n.id for n in result.graph.nodes] == ["think", "act", "think#2", "act#2", "loss"]
    params = {"agent.rules": rules}
    BackwardEngine(backward_model()).backward(result.graph, params)
    assert [g.node_id for g in rules.gradients_in_order()] == ["think", "act", "think#2", "act#2"]


def test_a_parser_error_is_caught_by_the_pipelines_own_except_value_error():
    """`parser=json.loads` raises what json.loads raises for a user's `except ValueError` fallback."""
    import json

    class Extract(Pipeline):
        def __init__(self):
            self.instruction = Parameter("extract.instruction", "Reply with JSON.")
            self.extract = LLMCall("extract", "{{instruction}} {{text}}", [self.instruction], parser=json.loads)

        def forward(self, text):
            try:
                return self.extract(text=text)["answer"]
            except ValueError:
                return "fallback"

    model = ScriptedModel(lambda messages: "not json", role="task")
    result = run_example(Extract(), Example("s1", {"text": "t"}, "fallback", {}), exact_match, model)
    assert (result.status, result.score) == ("ok", 1.0)


def test_only_failed_samples_are_back_propagated():
    pipeline = RAG(hops=1)
    examples = [Example(f"s{i}", {"question": "What is the capital of France?"}, t, {})
                for i, t in enumerate(["Paris", "Lyon", "Paris", "Nice", "Rome"])]
    batch = run_batch(pipeline, examples, exact_match, task_model(), concurrency=4)
    assert [r.status for r in batch.results] == ["ok", "failed", "ok", "failed", "failed"]
    sel = select_for_backward(batch.results, max_failed=2, max_correct=0)
    assert [s.selected for s in sel] == [False, True, False, True, False]
    assert sel[4].reason == "failed, but over the cap of 2"
    engine, params = BackwardEngine(backward_model()), pipeline.named_parameters()
    for r, s in zip(batch.results, sel):
        if s.selected:
            engine.backward(r.graph, params)
    assert sorted({x.sample_id for x in params["answer.instruction"].gradients}) == ["s1", "s3"]


def test_contrast_sample_is_added_and_errored_never_selected():
    class R:  # the minimal shape selection needs
        def __init__(self, sid, score, status):
            self.sample_id, self.score, self.status = sid, score, status
    rs = [R("a", 0.0, "failed"), R("b", 1.0, "ok"), R("c", None, "errored"), R("d", 1.0, "ok")]
    sel = {s.sample_id: s for s in select_for_backward(rs, max_failed=4, max_correct=1, seed=3)}
    assert sel["a"].selected and not sel["c"].selected and sel["c"].reason.startswith("errored")
    assert sum(sel[k].selected for k in "bd") == 1


def test_a_sample_on_which_the_pipeline_raised_never_passes_even_at_threshold_zero():
    """pass_threshold=0 makes every score pass; a raise is not a score: it fails, is back-propagated
    and never becomes a demo."""
    class Fragile(Pipeline):
        def __init__(self):
            self.instruction = Parameter("answer.instruction", "Answer.")
            self.answer = LLMCall("answer", "{{instruction}} {{question}}", [self.instruction])

        def forward(self, question):
            reply = self.answer(question=question)
            if question == "boom":
                raise KeyError("missing field")
            return reply

    model = ScriptedModel(lambda messages: "Paris", role="task")
    examples = [Example("ok", {"question": "q"}, "Paris", {}), Example("raised", {"question": "boom"}, "Paris", {})]
    batch = run_batch(Fragile(), examples, exact_match, model, pass_threshold=0.0)
    ok, raised = batch.results
    assert (ok.status, raised.status) == ("ok", "failed") and not raised.passed and "missing field" in raised.error
    sel = {s.sample_id: s for s in select_for_backward(batch.results, pass_threshold=0.0, max_correct=0)}
    assert sel["raised"].selected and sel["raised"].reason == "failed (the pipeline raised: score 0)"
    assert not sel["ok"].selected


def test_a_retriever_returning_a_list_of_dicts_is_linked_exactly_through_its_items():
    """[{"title", "text"}, ...] from a @tool: the texts inside the dicts are traced, so the answer's
    input links to the retriever exactly (not by a content guess), even for short passages."""
    @tool
    def search(query: str) -> list[dict]:
        return [{"title": "France", "text": "Paris."}, {"title": "Rivers", "text": "Seine."}]

    class RAG(Pipeline):
        def __init__(self):
            self.instruction = Parameter("answer.instruction", "Answer.")
            self.answer = LLMCall("answer", "{{instruction}} {{question}} {{context}}", [self.instruction])

        def forward(self, question):
            hits = search(question)
            return self.answer(question=question, context=hits[0]["text"] + " " + hits[1]["text"])

    model = ScriptedModel(lambda messages: "Lyon", role="task")
    result = run_example(RAG(), Example("s1", {"question": "capital?"}, "Paris", {}), exact_match, model)
    edges = {(e.source, e.target, e.guess) for e in result.graph.edges}
    assert ("search", "answer", False) in edges


def test_missing_template_variable_names_variable_and_node_and_records_nothing():
    p = Parameter("answer.instruction", "Answer.")
    node = LLMCall("answer", "{{instruction}} {{question}} {{context}}", [p])
    model = task_model()
    with use_model(model), trace("s1") as graph:
        with pytest.raises(TemplateError, match="node 'answer' needs variable 'context'"):
            node(question="q")
    assert graph.nodes == [] and model.calls == []


def test_duplicate_parameter_names_are_rejected():
    a, b = Parameter("x.instruction", "one"), Parameter("x.instruction", "two")
    with pytest.raises(DuplicateParameterError, match="x.instruction"):
        LLMCall("x", "{{instruction}}", [a, b])

    class Two(Pipeline):
        def __init__(self):
            self.one = LLMCall("one", "{{instruction}}", [a])
            self.two = LLMCall("two", "{{instruction}}", [b])
    with pytest.raises(DuplicateParameterError):
        Two().parameters()


def test_unparseable_answer_is_a_failed_sample_with_raw_text():
    def parse_int(text):
        return int(text)
    p = Parameter("count.instruction", "Count.")
    node = LLMCall("count", "{{instruction}} {{question}}", [p], parser=parse_int)

    class Count(Pipeline):
        def __init__(self):
            self.node = node
        def forward(self, question):
            return self.node(question=question)
    model = ScriptedModel(lambda m: "about seven", role="task")
    r = run_example(Count(), Example("s", {"question": "how many?"}, "7", {}), exact_match, model)
    assert (r.status, r.score, r.prediction) == ("failed", 0.0, "about seven")
    assert r.graph.node("count").status == "failed" and r.graph.node("count").output == "about seven"
    assert "could not parse" in r.graph.node("count").error


def test_graph_json_round_trip_and_dot_has_stable_ids():
    result, _ = run_and_backward(RAG(hops=2), target="Lyon")
    data = result.graph.to_dict()
    again = Graph.from_dict(data).to_dict()
    assert again == data
    dot = to_dot(result.graph)
    for node_id in ["query", "query#2", "retrieve#2", "answer", "loss"]:
        assert f'id="node-{node_id}"' in dot


def test_graphviz_renders_svg_with_node_ids():
    import shutil
    if shutil.which("dot") is None:
        pytest.fail("Graphviz `dot` is not installed: run the README's setup (apt-get install graphviz)")
    from workbench.engine.graph import render_svg
    result, _ = run_and_backward(RAG(hops=2), target="Lyon")
    svg = render_svg(result.graph)
    import xml.etree.ElementTree as ET
    ids = {el.get("id") for el in ET.fromstring(svg.encode()).iter() if el.get("id")}
    assert {"node-query", "node-query#2", "node-retrieve#2", "node-answer", "node-loss"} <= ids
    assert "edge-query#2-retrieve#2" in ids


def test_sample_input_passed_along_is_not_linked_to_an_output_it_quotes():
    """A query that copies words of the question must not make the question look derived from it."""
    p = Parameter("query.instruction", "Copy the question's subject.")
    query = LLMCall("query", "{{instruction}} {{question}}", [p])
    answer = LLMCall("answer", "{{instruction}} {{question}} {{query}}", [Parameter("answer.instruction", "Answer.")])

    class Copy(Pipeline):
        def __init__(self):
            self.query, self.answer = query, answer
        def forward(self, question):
            return self.answer(question=question, query=self.query(question=question))
    model = ScriptedModel(lambda m: "capital of France", role="task")
    ex = Example("s", {"question": "What is the capital of France?"}, "Paris", {})
    r = run_example(Copy(), ex, exact_match, model)
    assert {(e.source, e.target, e.input) for e in r.graph.edges} == {
        ("query", "answer", "query"), ("answer", "loss", "prediction")}


def test_method_tools_are_components():
    class WithTool(Pipeline):
        @tool(name="lookup")
        def lookup(self, key: str) -> str:
            return key.upper()
    assert [c.name for c in WithTool().components()] == ["lookup"]


def test_traced_text_links_only_to_its_producer_even_when_an_earlier_output_is_equal():
    """Two hops writing the same query: hop 2's retrieval depends on hop 2 only."""
    p = Parameter("query.instruction", "Write a query.")
    query = LLMCall("query", "{{instruction}} {{question}} {{hop}}", [p])

    @tool
    def look(q: str) -> str:
        return "found: " + q

    class Twice(Pipeline):
        def __init__(self):
            self.query = query
        def forward(self, question):
            return [look(self.query(question=question, hop=h)) for h in (1, 2)][-1]
    model = ScriptedModel(lambda m: "little mermaid", role="task")
    r = run_example(Twice(), Example("s", {"question": "Where is it?"}, "x", {}), exact_match, model)
    assert ("query#2", "look#2", "q") in {(e.source, e.target, e.input) for e in r.graph.edges}
    assert ("query", "look#2", "q") not in {(e.source, e.target, e.input) for e in r.graph.edges}


def test_an_echoed_gradient_warns_at_the_callers_line_not_inside_a_thread_pool():
    """Without a trainer, an echo is a UserWarning; it named concurrent/futures/thread.py before."""
    import warnings

    from workbench.llm.models import Models
    from workbench.engine.loss import add_loss
    echo = lambda messages: messages[-1]["content"]  # noqa: E731
    models = Models.scripted(lambda messages: "hello", echo, echo)
    p = Parameter("a.instruction", "Say hi.")
    node = LLMCall("a", "{{instruction}} {{x}}", [p])
    with use_model(models.task), trace("s1") as graph:
        add_loss(graph, node(x="y"), "bye", 0.0, pass_threshold=1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        BackwardEngine(models.backward).backward(graph, {"a.instruction": p})
    assert caught and all(w.filename == __file__ for w in caught), [(w.filename, w.lineno) for w in caught]
    assert "skipped: the backward model echoed its prompt" in str(caught[0].message)
