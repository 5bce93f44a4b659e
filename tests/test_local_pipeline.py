"""A 3-node pipeline forward and backward through the real openai SDK against the embedded
llama.cpp server (Gemma 3 270M) over HTTP: accounting matches the recorded calls, and a second run
on the same cache makes zero calls and reproduces every gradient."""
import pytest

from workbench import BackwardEngine, LLMCall, Parameter, Pipeline, run_example, tool
from workbench.tasks.datasets import Example
from workbench.llm import LocalServer, Models, ResponseCache
from workbench.engine.loss import contains_match

DOCS = ["The Orvel river flows through the town of Kestrin.",
        "Kestrin is famous for its glass bells.",
        "The glass bells of Kestrin were first cast by Mara Lune."]


@tool
def retrieve(query: str) -> list[str]:
    """Best document by word overlap: always returns one, so feedback can flow through it."""
    words = set(query.lower().split())
    return [max(DOCS, key=lambda d: len(words & set(d.lower().rstrip(".").split())))]


class SmallRAG(Pipeline):
    def __init__(self):
        self.query_instruction = Parameter("query.instruction", "Write a short search query.",
                                           description="what the query writer searches for")
        self.answer_instruction = Parameter("answer.instruction", "Answer in a few words.",
                                            description="how to answer from the context")
        self.query = LLMCall("query", "{{instruction}}\nQuestion: {{question}}\nQuery:", [self.query_instruction])
        self.answer = LLMCall("answer", "{{instruction}}\nContext: {{context}}\nQuestion: {{question}}\nAnswer:",
                              [self.answer_instruction])

    def forward(self, question):
        return self.answer(question=question, context="\n".join(retrieve(self.query(question=question))))


@pytest.fixture(scope="module")
def server():
    with LocalServer(startup_timeout_s=300) as srv:
        yield srv


def run_once(server, cache):
    # 24-token replies are cut by the cap; the cache keeps those only when asked to
    models = Models.local(server=server, cache=cache, max_tokens=24, cache_truncated=True)
    pipeline = SmallRAG()
    ex = Example("k1", {"question": "Who first cast the glass bells of the town on the Orvel river?"}, "Mara Lune", {})
    result = run_example(pipeline, ex, contains_match, models.task)
    grads = BackwardEngine(models.backward).backward(result.graph, pipeline.named_parameters())
    return result, grads, models.usage.snapshot()


@pytest.mark.local_model
def test_forward_backward_over_http_with_accounting_and_cache(server, tmp_path):
    cache = ResponseCache(tmp_path / "cache.sqlite")
    result, grads, usage = run_once(server, cache)
    g = result.graph
    assert [n.id for n in g.nodes] == ["query", "retrieve", "answer", "loss"]
    assert all(n.status == "done" for n in g.nodes), [(n.id, n.error) for n in g.nodes]
    # the task made 2 calls; the backward engine one per trained parameter and per upstream LLM/function value
    backward_calls = sum(1 for x in grads if x.node_id in ("query", "answer"))
    assert usage["task"]["calls"] == 2 and usage["backward"]["calls"] == backward_calls
    assert usage["task"]["prompt_tokens"] == sum(n.prompt_tokens for n in g.nodes)
    assert usage["task"]["completion_tokens"] == sum(n.completion_tokens for n in g.nodes)
    # feedback reaches the query writer through the retriever (backward runs whatever the score)
    targets = {(x.node_id, x.target) for x in grads}
    assert {("answer", "answer.instruction"), ("answer", "retrieve"), ("retrieve", "query"),
            ("query", "query.instruction")} <= targets
    assert all(x.text.strip() for x in grads)

    again, grads2, usage2 = run_once(server, cache)
    assert sum(u["calls"] for u in usage2.values()) == 0
    assert sum(u["cache_hits"] for u in usage2.values()) == sum(u["calls"] for u in usage.values())
    assert [x.text for x in grads2] == [x.text for x in grads]
    assert again.prediction == result.prediction
