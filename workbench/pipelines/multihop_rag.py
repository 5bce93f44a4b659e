"""Two-hop retrieval-augmented QA: write a query, retrieve, write a second query that knows what was
found, retrieve again, answer.

The retriever is a functional node, so feedback on missing evidence passes through it to the query
writer, and the query writer's two calls (`query`, `query#2`) each get their own gradient.
Scored with token F1 (SQuAD-normalised): partial answers earn partial credit, and only an answer
with exactly the right words scores 1.0, which is what passing means.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from typing import Sequence

from ..nodes import LLMCall, tool
from ..parameter import Parameter, Role
from ..pipeline import Pipeline
from ..prompt import PromptTemplate

STOPWORDS = frozenset(
    "a an and are as at be by did do does for from had has have he her his how in is it its of on or "
    "she that the their there these this to was were what when where which who whom whose why with".split())


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens without stopwords; hyphenated names split into their parts."""
    return [t for t in re.findall(r"[a-z0-9]+", text.lower()) if t not in STOPWORDS]


class BM25:
    """Okapi BM25 over `{"id", "title", "text"}` documents; the index is built once.

    The idf is the non-negative variant log(1 + (N - df + 0.5) / (df + 0.5)), so a word found in
    most documents still counts a little instead of pulling the score down.
    """

    def __init__(self, documents: Sequence[dict], k1: float = 1.5, b: float = 0.75) -> None:
        self.documents = list(documents)
        self.k1, self.b = k1, b
        self.term_counts = [Counter(tokenize(f"{d['title']} {d['text']}")) for d in self.documents]
        self.lengths = [sum(c.values()) for c in self.term_counts]
        self.average_length = sum(self.lengths) / max(1, len(self.lengths))
        document_frequency = Counter(term for counts in self.term_counts for term in counts)
        n = len(self.documents)
        self.idf = {t: math.log(1 + (n - df + 0.5) / (df + 0.5)) for t, df in document_frequency.items()}

    def score(self, query: str, index: int) -> float:
        counts, length = self.term_counts[index], self.lengths[index]
        total = 0.0
        for term in tokenize(query):
            tf = counts.get(term, 0)
            if tf:
                norm = self.k1 * (1 - self.b + self.b * length / self.average_length)
                total += self.idf[term] * tf * (self.k1 + 1) / (tf + norm)
        return total

    def search(self, query: str, top_k: int = 2) -> list[dict]:
        """The best `top_k` documents with a positive score, best first (ties keep corpus order)."""
        scored = [(self.score(query, i), i) for i in range(len(self.documents))]
        ranked = sorted((s for s in scored if s[0] > 0), key=lambda s: (-s[0], s[1]))
        return [self.documents[i] for _, i in ranked[:top_k]]


def passage(document: dict) -> str:
    """How a document is shown to the LLM: its title, then its text."""
    return f"{document['title']}: {document['text']}"


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
    """question -> answer, by `hops` rounds of query writing and BM25 retrieval (`top_k` per hop)."""

    def __init__(self, documents: Sequence[dict], hops: int = 2, top_k: int = 2,
                 query_instruction: str = DEFAULT_QUERY_INSTRUCTION,
                 answer_instruction: str = DEFAULT_ANSWER_INSTRUCTION,
                 answer_format: str = DEFAULT_ANSWER_FORMAT) -> None:
        self.hops, self.top_k = hops, top_k
        self.index = BM25(documents)
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
    def retrieve(self, query: str) -> list[str]:
        """BM25 search; returns passages as `Title: text`."""
        return [passage(d) for d in self.index.search(query, self.top_k)]

    def forward(self, question: str) -> str:
        passages: list[str] = []
        for _ in range(self.hops):
            query = self.query(question=question, passages="\n".join(passages) or NO_PASSAGES)
            passages += [p for p in self.retrieve(query) if p not in passages]
        return self.answer(question=question, context="\n".join(passages) or NO_PASSAGES)
