"""Keyword retrieval for the RAG and agent pipelines: Okapi BM25 by the `bm25s` library.

`bm25s` does the indexing and scoring (sparse matrices, fast enough to pool all 5,000 HotpotQA
paragraphs); this module only decides what a word is (`tokenize`: lower case, no stopwords,
hyphenated names split) and what a search returns: the best `top_k` documents with a positive
score, ties in corpus order, so a query sharing no word with the corpus finds nothing.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from typing import Sequence

import bm25s
import numpy as np

STOPWORDS = frozenset(
    "a an and are as at be by did do does for from had has have he her his how in is it its of on or "
    "she that the their there these this to was were what when where which who whom whose why with".split())


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens without stopwords; hyphenated names split into their parts."""
    return [t for t in re.findall(r"[a-z0-9]+", text.lower()) if t not in STOPWORDS]


def passage(document: dict) -> str:
    """How a document is shown to the LLM: its title, then its text."""
    return f"{document['title']}: {document['text']}"


class BM25:
    """BM25 (Lucene variant, as `bm25s` computes it) over `{"id", "title", "text"}` documents.

    The index is built once. The idf log(1 + (N - df + 0.5) / (df + 0.5)) is non-negative, so a word
    found in most documents still counts a little instead of pulling the score down.
    """

    def __init__(self, documents: Sequence[dict], k1: float = 1.5, b: float = 0.75) -> None:
        self.documents = list(documents)
        self.k1, self.b = k1, b
        corpus = [tokenize(f"{d['title']} {d['text']}") for d in self.documents]
        self._index = bm25s.BM25(k1=k1, b=b, method="lucene")
        # bm25s cannot index an empty corpus or empty documents; a placeholder token matches no query
        self._index.index([tokens or ["\x00"] for tokens in corpus] or [["\x00"]], show_progress=False)
        self._vocabulary = set(self._index.vocab_dict)
        n = len(self.documents)
        document_frequency = Counter(term for tokens in corpus for term in set(tokens))
        self.idf = {t: math.log(1 + (n - df + 0.5) / (df + 0.5)) for t, df in document_frequency.items()}

    def scores(self, query: str) -> np.ndarray:
        """The BM25 score of every document for `query` (zeros when no query word is in the corpus)."""
        terms = [t for t in tokenize(query) if t in self._vocabulary]
        if not terms or not self.documents:
            return np.zeros(len(self.documents))
        return np.asarray(self._index.get_scores(terms))[:len(self.documents)]

    def search(self, query: str, top_k: int = 2) -> list[dict]:
        """The best `top_k` documents with a positive score, best first (ties keep corpus order)."""
        scores = self.scores(query)
        order = np.lexsort((np.arange(len(scores)), -scores))  # by score descending, then position
        return [self.documents[i] for i in order[:top_k] if scores[i] > 0]
