"""The run that test_dashboard_teaching.py drives in JupyterLab: widget_review_demo's two-hop QA
pipeline, but every role is a real `LLMClient` talking HTTP to an `OpenAITestServer` that the test
process runs, so the test reads exactly the requests the endpoint received.

`responder` answers in the test process (the server's thread); `make_trainer` runs in the notebook's
kernel. Each role has its own model name ("task-model", "backward-model", "optimizer-model"), which
the server records with each request.
"""
from __future__ import annotations

import itertools
import re

DOCS = {
    "eiffel tower": "The Eiffel Tower is in Paris.", "paris": "Paris is in France.",
    "colosseum": "The Colosseum is in Rome.", "rome": "Rome is in Italy.",
    "big ben": "Big Ben is in London.", "london": "London is in England.",
    "sagrada familia": "The Sagrada Familia is in Barcelona.", "barcelona": "Barcelona is in Spain.",
    "atomium": "The Atomium is in Brussels.", "brussels": "Brussels is in Belgium.",
    "charles bridge": "The Charles Bridge is in Prague.", "prague": "Prague is in Czechia.",
}
FIRST_PROPOSAL = "Answer the question in one word."
# each optimizer call proposes the next of these, so a rejected proposal is followed by a new one
PROPOSALS = [FIRST_PROPOSAL, "Answer in one word: the country.", "Answer in one word, nothing else.",
             "Reply with one word only.", "One word: the country's name."]
BACKWARD_TEXT = "The reply wrapped the name in a sentence; it must be the bare name."


def _task(text: str) -> str:
    asked = re.search(r"Question: (.*)", text)
    if asked is None:
        return "nothing"
    question = asked.group(1)
    if "Context:" not in text:  # the query writer: the landmark, then the city the first hop found
        known = re.findall(r"Known: (.*)", text)
        if not known:
            found = [k for k in DOCS if k in question.lower()]
            return found[0] if found else "nothing"
        return known[-1].rstrip(".").split()[-1].lower()
    context = text.split("Context:", 1)[1].strip()
    if not context:
        return f"I found nothing about: {question}"
    word = context.splitlines()[-1].rstrip(".").split()[-1]
    instruction = text.split("\nQuestion:", 1)[0].lower()
    return word if "one word" in instruction else f"The answer is {word}, I believe."


class Responder:
    """The scripted endpoint: optimizer calls (they hold <CURRENT_VALUE>) propose the next of
    PROPOSALS, backward calls ("### Task", the backward engine's system prompt) give one feedback text,
    every other call is the pipeline's."""

    def __init__(self) -> None:
        self._next = itertools.count()

    def __call__(self, messages: list[dict]) -> str:
        text = "\n".join(str(m.get("content") or "") for m in messages)
        if "<CURRENT_VALUE>" in text:
            return f"<PROPOSAL>{PROPOSALS[next(self._next) % len(PROPOSALS)]}</PROPOSAL>"
        last = str(messages[-1].get("content") or "")
        if last.startswith("### Task") or "backward engine" in text:
            return BACKWARD_TEXT
        return _task(last)


def make_trainer(base_url: str, run_dir: str):
    """The trainer the notebook shows (HumanApproval: the run waits for the person)."""
    from workbench import LLMCall, Parameter, Pipeline, tool
    from workbench.engine.loss import exact_match
    from workbench.llm.models import Models
    from workbench.tasks.datasets import Example
    from workbench.training.approval import HumanApproval
    from workbench.training.trainer import TrainConfig, Trainer

    @tool
    def retrieve(query: str) -> list[str]:
        return [DOCS[query]] if query in DOCS else []

    class TwoHopQA(Pipeline):
        def __init__(self):
            self.query_instruction = Parameter("query.instruction", "Write a search query for the question.",
                                               trainable=False)
            self.answer_instruction = Parameter("answer.instruction", "Answer the question.",
                                                description="how to answer from the retrieved context")
            self.query = LLMCall("query", "{{instruction}}\n{{known}}Question: {{question}}", [self.query_instruction])
            self.answer = LLMCall("answer", "{{instruction}}\nQuestion: {{question}}\nContext: {{context}}",
                                  [self.answer_instruction])

        def forward(self, question):
            docs = []
            for _ in range(2):
                known = "".join(f"Known: {d}\n" for d in docs)
                docs += retrieve(self.query(question=question, known=known))
            return self.answer(question=question, context="\n".join(docs))

    def qa(i, landmark, country):
        return Example(f"q{i}", {"question": f"In which country is the {landmark}?"}, country)

    train = [qa(1, "Eiffel Tower", "France"), qa(2, "Colosseum", "Italy"), qa(3, "Big Ben", "England"),
             qa(4, "Sagrada Familia", "Spain")]
    val = [qa(11, "Atomium", "Belgium"), qa(12, "Charles Bridge", "Czechia")]
    test = [qa(21, "Eiffel Tower", "France")]
    models = Models.from_endpoint(base_url, "task-model", "backward-model", "optimizer-model", api_key="sk-test",
                                  cache=None, fold_system=False)
    return Trainer(TwoHopQA(), train, val, test, exact_match, models,
                   config=TrainConfig(max_steps=2, epochs=2, batch_size=4, concurrency=2, seed=0),
                   approval=HumanApproval(), run_dir=run_dir, task="teaching-demo")
