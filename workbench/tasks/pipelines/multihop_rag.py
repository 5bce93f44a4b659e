"""Two-hop retrieval-augmented QA: write a query, retrieve, write a second query that knows what was
found, retrieve again, answer.

The retriever is a functional node, so feedback on missing evidence passes through it to the query
writer, and the query writer's two calls (`query`, `query#2`) each get their own gradient.
Scored with token F1 (SQuAD-normalised): partial answers earn partial credit, and only an answer
with exactly the right words scores 1.0, which is what passing means.
"""
from __future__ import annotations

import re
import threading
from typing import Mapping, Sequence

from ...errors import WorkbenchError
from ...engine.nodes import LLMCall, tool
from ...engine.parameter import Parameter, Role
from ...engine.pipeline import Pipeline
from ...engine.prompt import PromptTemplate
from .retrieval import BM25, passage, tokenize

__all__ = ["BM25", "MultiHopRAG", "parse_answer", "parse_query", "passage", "tokenize"]

DEFAULT_QUERY_INSTRUCTION = "Write a search query that finds a passage needed to answer the question."
DEFAULT_ANSWER_INSTRUCTION = "Answer the question using the passages."
DEFAULT_ANSWER_FORMAT = "Reply with `Answer: ` followed by a short answer of a few words, without explanation."

QUERY_TEMPLATE = PromptTemplate(
    system="{{instruction}}\nReply with the search query only.",
    user="Question: {{question}}\n\nPassages found so far:\n{{passages}}\n\nSearch query:")
ANSWER_TEMPLATE = PromptTemplate(
    system="{{instruction}}\n\n{{output_format}}",
    user="Passages:\n{{context}}\n\nQuestion: {{question}}")

NO_PASSAGES = "(none)"


def parse_query(reply: str) -> str:
    """The query without a `Search query:`/`Query:` prefix or quotes; an empty one is a failure."""
    text = reply.strip().splitlines()[0] if reply.strip() else ""
    text = re.sub(r"^(?:search\s+)?query\s*:\s*", "", text, flags=re.IGNORECASE).strip().strip('"\'`')
    if not text:
        raise ValueError("the reply holds no search query")
    return text


def parse_answer(reply: str) -> str:
    """The text after the last `Answer:` (first line of it), or the whole first line without one."""
    parts = re.split(r"answer\s*:", reply, flags=re.IGNORECASE)
    text = parts[-1].strip() if len(parts) > 1 else reply.strip()
    text = text.splitlines()[0].strip().rstrip(".") if text else ""
    if not text:
        raise ValueError("the reply holds no answer")
    return text


class MultiHopRAG(Pipeline):
    """question -> answer, by `hops` rounds of query writing and BM25 retrieval (`top_k` per hop).

    The retriever searches `documents` (one corpus for every question), or, given `corpora`
    (question text -> its own documents, as in HotpotQA's distractor setting), the asking question's
    corpus; then the question is also an input of the `retrieve` node.
    """

    def __init__(self, documents: Sequence[dict] = (), hops: int = 2, top_k: int = 2,
                 query_instruction: str = DEFAULT_QUERY_INSTRUCTION,
                 answer_instruction: str = DEFAULT_ANSWER_INSTRUCTION,
                 answer_format: str = DEFAULT_ANSWER_FORMAT, *,
                 corpora: Mapping[str, Sequence[dict]] | None = None) -> None:
        if corpora is not None and documents:
            raise WorkbenchError("MultiHopRAG: give documents (one corpus) or corpora (one per question), not both")
        self.hops, self.top_k = hops, top_k
        self.index = BM25(documents)
        self.corpora = dict(corpora) if corpora is not None else None
        self._indexes: dict[str, BM25] = {}
        self._indexes_lock = threading.Lock()
        self.query_instruction = Parameter(
            "query.instruction", query_instruction, Role.INSTRUCTION,
            description="tells the query writer what to search for; it is called once per hop and sees the "
                        "passages found so far, so later hops should look for the missing piece")
        self.answer_instruction = Parameter(
            "answer.instruction", answer_instruction, Role.INSTRUCTION,
            description="how to combine the retrieved passages into the answer")
        self.answer_format = Parameter(
            "answer.output_format", answer_format, Role.OUTPUT_FORMAT,
            description="the form of the answer; scored by token F1 against a short gold answer")
        self.query = LLMCall("query", QUERY_TEMPLATE, [self.query_instruction], parser=parse_query)
        self.answer = LLMCall("answer", ANSWER_TEMPLATE, [self.answer_instruction, self.answer_format],
                              parser=parse_answer)

    @tool(name="retrieve")
    def retrieve(self, query: str, question: str | None = None) -> list[str]:
        """BM25 search (in the question's own corpus, with `corpora`); returns passages as `Title: text`."""
        return [passage(d) for d in self.index_for(question).search(query, self.top_k)]

    def index_for(self, question: str | None) -> BM25:
        """The index a question searches: the shared one, or its own (built on first use)."""
        if self.corpora is None:
            return self.index
        if question not in self.corpora:
            raise WorkbenchError(f"MultiHopRAG has no corpus for the question {str(question)[:200]!r}: build it "
                                 f"with corpora for every question it will be asked ({len(self.corpora)} known)")
        with self._indexes_lock:
            if question not in self._indexes:
                self._indexes[question] = BM25(self.corpora[question])
            return self._indexes[question]

    def forward(self, question: str) -> str:
        passages: list[str] = []
        for _ in range(self.hops):
            query = self.query(question=question, passages="\n".join(passages) or NO_PASSAGES)
            found = self.retrieve(query) if self.corpora is None else self.retrieve(query, question)
            passages += [p for p in found if p not in passages]
        return self.answer(question=question, context="\n".join(passages) or NO_PASSAGES)
