"""HotpotQA's multi-hop RAG, as in the paper: the two-hop `MultiHopRAG` retrieving over HotpotQA's
own paragraphs, either each question's own 10 (the distractor setting: 2 gold + 8 distractors) or
all paragraphs of the dataset pooled into one corpus (harder: thousands of candidates).
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from ..datasets import Example
from .multihop_rag import MultiHopRAG


def paragraphs_of(example: Example) -> list[dict]:
    """An example's context paragraphs as retrieval documents (`{"id", "title", "text"}`).

    HotpotQA stores a paragraph as `[title, [sentences]]`, each sentence after the first starting
    with its own space, so the sentences are joined as they are.
    """
    return [{"id": f"{example.id}/{n}", "title": title, "text": "".join(sentences).strip()}
            for n, (title, sentences) in enumerate(example.meta.get("context") or [])]


def pooled_paragraphs(examples: Iterable[Example]) -> list[dict]:
    """Every distinct paragraph of `examples`, once (the same Wikipedia paragraph recurs across questions)."""
    seen: dict[tuple[str, str], dict] = {}
    for example in examples:
        for document in paragraphs_of(example):
            seen.setdefault((document["title"], document["text"]), document)
    return list(seen.values())


def hotpotqa_rag(examples: Sequence[Example], *, pooled: bool = False, **options: Any) -> MultiHopRAG:
    """The HotpotQA pipeline for `examples` (every question it will be asked, with their context)."""
    if pooled:
        return MultiHopRAG(pooled_paragraphs(examples), **options)
    corpora: dict[str, list[dict]] = {}
    for example in examples:
        corpora.setdefault(example.input["question"], paragraphs_of(example))
    return MultiHopRAG(corpora=corpora, **options)
