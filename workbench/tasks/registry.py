"""Tasks: a pipeline, its data and its eval function under one name, for the CLI, demos and benchmarks.

`get_task("classification").load()` returns `Splits`, which unpacks as `(train, val, test)` and
says by `.describe()` exactly which sizes, seed and source it was drawn with, so every run and
benchmark can print it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from .datasets import (HOTPOTQA_FILE, Example, hotpotqa_path, load_bbh, load_hotpotqa, load_multihop, load_question_types,
                       load_review_sentiment, load_trec, make_counting, split)
from ..errors import ConfigError
from ..engine.loss import EvalFn, exact_match, f1_score, numeric_match
from ..engine.pipeline import Pipeline
from .pipelines import MultiHopRAG, ObjectCounter, QuestionClassifier, ReActAgent, hotpotqa_rag
from .pipelines.sentiment import ReviewSentiment

Source = str | os.PathLike | Sequence[str | os.PathLike]
Sizes = tuple[int, int, int]


@dataclass(frozen=True)
class Splits:
    """Train, validation and test examples, with how they were drawn."""

    train: list[Example]
    val: list[Example]
    test: list[Example]
    task: str
    source: str
    seed: int
    method: str
    pool: tuple[Example, ...] = ()  # every example read (a pooled retriever's corpus, for instance)

    def __iter__(self) -> Iterator[list[Example]]:
        return iter((self.train, self.val, self.test))

    def describe(self) -> str:
        return (f"{self.task}: {len(self.train)} train / {len(self.val)} val / {len(self.test)} test, "
                f"seed {self.seed}, from {self.source}; {self.method}")


@dataclass(frozen=True)
class Task:
    """A named pipeline + data + eval. `load` draws seeded splits from sample data or a file.

    `source` is "sample" (the packaged data, or generated questions for counting), a file path, or
    a pair of paths (train file, evaluation file) to draw train from the first and val/test from the
    second, as the paper does with TREC's training and test files.
    """

    name: str
    description: str
    make_pipeline: Callable[[], Pipeline]
    eval_fn: EvalFn
    pass_threshold: float
    sample: Callable[[int, int], list[Example]]  # (examples needed, seed) -> examples
    sample_sizes: Sizes
    sample_name: str
    read_file: Callable[[Path], list[Example]] | None = None
    file_sizes: Sizes | None = None
    stratify: bool = False
    # a pipeline that depends on the data read (HotpotQA's retrieval corpora): built by `pipeline_for`
    pipeline_from_examples: Callable[[Sequence[Example]], Pipeline] | None = None

    def pipeline_for(self, splits: Splits) -> Pipeline:
        """The task's pipeline for the data `splits` were drawn from (same as `make_pipeline()` for
        tasks whose pipeline does not depend on the data)."""
        if self.pipeline_from_examples is None:
            return self.make_pipeline()
        return self.pipeline_from_examples(list(splits.pool) or splits.train + splits.val + splits.test)

    def load(self, train: int | None = None, val: int | None = None, test: int | None = None, *,
             seed: int = 0, source: Source = "sample") -> Splits:
        from_sample = isinstance(source, str) and source == "sample"
        defaults = self.sample_sizes if from_sample else (self.file_sizes or self.sample_sizes)
        train, val, test = (d if s is None else s for s, d in zip((train, val, test), defaults))
        if from_sample:
            pools = [self.sample(train + val + test, seed)]
            where = f"{self.sample_name} ({len(pools[0])} examples)"
        else:
            if self.read_file is None:
                raise ConfigError(f"task {self.name!r} reads only source='sample', got {source!r}")
            paths = [Path(source)] if isinstance(source, (str, os.PathLike)) else [Path(p) for p in source]
            if len(paths) not in (1, 2):
                raise ConfigError(f"task {self.name!r}: source must be one file or a (train, eval) pair of files")
            pools = [self.read_file(p) for p in paths]
            where = " + ".join(f"{p} ({len(pool)} examples)" for p, pool in zip(paths, pools))
        train_pool, eval_pool = pools[0], pools[-1]
        if self.stratify:
            train_set = split(train_pool, train, 0, 0, seed, stratify_by_target=True)[0]
        else:
            train_set = split(train_pool, train, 0, 0, seed)[0]
        taken = {e.id for e in train_set}
        rest = [e for e in eval_pool if e.id not in taken]
        _, val_set, test_set = split(rest, 0, val, test, seed)
        method = ("train stratified by target" if self.stratify else "train at random") + \
            (", val and test at random from the second file" if len(pools) == 2 else
             ", val and test at random from the rest")
        pool = tuple({e.id: e for pool in pools for e in pool}.values())
        return Splits(train_set, val_set, test_set, self.name, where, seed, method, pool)


def _multihop_examples(n: int, seed: int) -> list[Example]:
    return load_multihop()[0]


def _hotpotqa_examples(n: int, seed: int) -> list[Example]:
    return load_hotpotqa(hotpotqa_path())


def _hotpotqa_task(name: str, pooled: bool) -> Task:
    where = "all paragraphs of the file pooled into one corpus" if pooled else \
        "each question's own 10 paragraphs (distractor setting)"
    return Task(name, f"HotpotQA multi-hop QA: two-hop query writer and BM25 retriever over {where}, answerer. "
                "Token F1; passing needs F1 = 1. Splits as in the paper: 100 / 100 / 200.",
                lambda: hotpotqa_rag(load_hotpotqa(hotpotqa_path()), pooled=pooled), f1_score, 1.0,
                sample=_hotpotqa_examples, sample_sizes=(100, 100, 200),
                sample_name=f"shared data {HOTPOTQA_FILE}",
                read_file=load_hotpotqa, file_sizes=(100, 100, 200),
                pipeline_from_examples=lambda examples: hotpotqa_rag(examples, pooled=pooled))


TASKS: dict[str, Task] = {t.name: t for t in [
    Task("classification", "Question type (TREC's 6 coarse classes) with one LLM call: instruction, output "
         "format and demos as peer parameters. Exact match on the label.",
         QuestionClassifier, exact_match, 1.0,
         sample=lambda n, seed: load_question_types(), sample_sizes=(24, 36, 72),
         sample_name="sample question_types.jsonl",
         read_file=load_trec, file_sizes=(120, 166, 334), stratify=True),
    Task("counting", "Object counting (BIG-Bench Hard style): reason step by step, answer with a number. "
         "Numeric match.", ObjectCounter, numeric_match, 1.0,
         sample=lambda n, seed: make_counting(n, seed), sample_sizes=(50, 100, 100),
         sample_name="questions generated by make_counting",
         read_file=load_bbh, file_sizes=(50, 100, 100)),
    Task("multihop", "Two-hop RAG over the sample documents: query writer (twice), BM25 retriever, answerer. "
         "Token F1; passing needs F1 = 1.", lambda: MultiHopRAG(load_multihop()[1]), f1_score, 1.0,
         sample=_multihop_examples, sample_sizes=(20, 20, 40), sample_name="sample multihop_qa.jsonl"),
    Task("agent", "ReAct agent answering the two-hop sample questions with lookup and calculator tools. "
         "Token F1; passing needs F1 = 1.", lambda: ReActAgent(load_multihop()[1]), f1_score, 1.0,
         sample=_multihop_examples, sample_sizes=(20, 20, 40), sample_name="sample multihop_qa.jsonl"),
    _hotpotqa_task("hotpotqa", pooled=False),
    _hotpotqa_task("hotpotqa-pooled", pooled=True),
    Task("sentiment", "Review sentiment (positive / negative) with few-shot demos as conversation turns, the "
         "pattern a small base model continues: instruction and demos as peer parameters; the demo optimizer "
         "picks the examples. Exact match.",
         ReviewSentiment, exact_match, 1.0,
         sample=lambda n, seed: load_review_sentiment(), sample_sizes=(16, 16, 24),
         sample_name="sample review_sentiment.jsonl", stratify=True),
]}


def task_names() -> list[str]:
    return list(TASKS)


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; available tasks: {', '.join(TASKS)}") from None
