"""Eval functions and the loss node.

An eval function maps (prediction, target) to a score in [0, 1]. The loss node records the score
with prediction and ground truth as text, which is what the backward engine starts from.
"""
from __future__ import annotations

import re
import string
from collections import Counter
from typing import Any, Callable

from .graph import Graph, LossRecord
from .tracing import find_sources

EvalFn = Callable[[Any, Any], float]


def normalize(text: Any) -> str:
    """Lower case, no punctuation or articles, single spaces (SQuAD-style)."""
    text = str(text).lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: Any, target: Any) -> float:
    return float(normalize(prediction) == normalize(target))


def numeric_match(prediction: Any, target: Any) -> float:
    """1.0 when the last number in the prediction equals the target number."""
    numbers = re.findall(r"-?\d+(?:\.\d+)?", str(prediction).replace(",", ""))
    if not numbers:
        return 0.0
    try:
        return float(abs(float(numbers[-1]) - float(str(target).strip())) < 1e-9)
    except ValueError:
        return 0.0


def f1_score(prediction: Any, target: Any) -> float:
    pred, gold = normalize(prediction).split(), normalize(target).split()
    common = Counter(pred) & Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def contains_match(prediction: Any, target: Any) -> float:
    return float(normalize(target) in normalize(prediction))


EVAL_FUNCTIONS: dict[str, EvalFn] = {"exact_match": exact_match, "numeric_match": numeric_match,
                                     "f1": f1_score, "contains": contains_match}


def get_eval_fn(name_or_fn: str | EvalFn) -> EvalFn:
    if callable(name_or_fn):
        return name_or_fn
    try:
        return EVAL_FUNCTIONS[name_or_fn]
    except KeyError:
        raise ValueError(f"unknown eval function {name_or_fn!r}; choose one of {sorted(EVAL_FUNCTIONS)} "
                         f"or pass a callable(prediction, target) -> float") from None


def add_loss(graph: Graph, prediction: Any, target: Any, score: float, *, pass_threshold: float) -> LossRecord:
    """Append the loss node, linked to the node that produced the prediction."""
    node = graph.new_node("loss", "loss", inputs={"prediction": str(prediction), "target": str(target)})
    node.output, node.status = f"score {score:g}", "done"
    for source in find_sources(graph, prediction, {k: v for k, v in graph.output_texts.items() if k != node.id})[:1]:
        graph.add_edge(source, node.id, "prediction")
    graph.loss = LossRecord(score=float(score), prediction=str(prediction), target=str(target),
                            passed=score >= pass_threshold)
    graph.notify(node)
    return graph.loss
