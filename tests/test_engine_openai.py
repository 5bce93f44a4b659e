"""The engine over real HTTP: the `openai` SDK against our OpenAI-compatible test server."""
import re

from workbench import BackwardEngine, LLMCall, Parameter, Pipeline, run_batch, tool
from workbench.tasks.datasets import Example
from workbench.llm.client import LLMClient
from workbench.engine.loss import exact_match
from workbench.testing import OpenAITestServer


@tool
def lookup(name: str) -> str:
    return {"rome": "Rome is the capital of Italy."}.get(name, "nothing found")


class Cleaned(Pipeline):
    """Two LLM calls whose replies are cleaned with everyday string code before they are used."""

    def __init__(self):
        self.query_instruction = Parameter("query.instruction", "Name the city in one word.")
        self.answer_instruction = Parameter("answer.instruction", "Answer with the country.")
        self.query = LLMCall("query", "{{instruction}}\nQuestion: {{question}}", [self.query_instruction])
        self.answer = LLMCall("answer", "{{instruction}}\nFacts: {{facts}}", [self.answer_instruction])

    def forward(self, question):
        city = self.query(question=question).strip().lower().split()[0].replace("!", "")
        facts = "Known: " + lookup(city)
        return self.answer(facts=facts).strip()[:-1]  # drop the full stop


def respond(messages):
    text = messages[-1]["content"]
    if text.startswith("Name the city"):
        return "  Rome!  \n"
    if text.startswith("Answer with"):
        return " Italy. " if "Rome is" in text else " Unknown. "
    m = re.search(r"### Parameter: (\S+)|### Target value from node (\S+)", text)
    return f"feedback for {m.group(1) or m.group(2)}" if m else "?"


def test_post_processed_outputs_get_gradients_over_real_http_and_statuses_follow_the_cause():
    with OpenAITestServer(responder=respond) as server:
        task = LLMClient("test-model", base_url=server.base_url, api_key="k-test", max_retries=0, backoff_initial_s=0.01)
        backward = LLMClient("test-model", base_url=server.base_url, api_key="k-test", role="backward", max_retries=0)
        examples = [Example("s1", {"question": "Which country is Rome in?"}, "France", {}),
                    Example("s2", {"question": "Which country is Rome in?"}, "Italy", {}),
                    Example("s3", {"question": "too long"}, "x", {}),
                    Example("s4", {"question": "down"}, "x", {})]
        pipeline = Cleaned()
        batch = run_batch(pipeline, examples[:2], exact_match, task, concurrency=1)
        assert [(r.prediction, r.status) for r in batch.results] == [("Italy", "failed"), ("Italy", "ok")]
        g = batch.results[0].graph
        assert {(e.source, e.target, e.guess) for e in g.edges} == {
            ("query", "lookup", False), ("lookup", "answer", False), ("answer", "loss", False)}

        params = pipeline.named_parameters()
        BackwardEngine(backward).backward(g, params)
        assert [x.text for x in params["query.instruction"].gradients] == ["feedback for query.instruction"]
        assert [x.text for x in params["answer.instruction"].gradients] == ["feedback for answer.instruction"]
        assert g.disconnected == []

        server.fail_next((400, {}, "This model's maximum context length is 8 tokens"))
        refused = run_batch(pipeline, examples[2:3], exact_match, task).results[0]
        assert (refused.status, refused.score) == ("failed", 0.0) and "maximum context length" in refused.error

        server.fail_next(503)
        down = run_batch(pipeline, examples[3:], exact_match, task).results[0]
        assert (down.status, down.score) == ("errored", None) and "503" in down.error
