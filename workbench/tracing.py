"""Recording a pipeline run without changing how the user writes it.

`trace(sample_id)` makes a fresh `Graph` current (per thread of execution, via contextvars) and
every LLM node or tool called inside adds itself. Which earlier node produced an input is found
from the value itself: LLM outputs are `TracedText` (a `str` that knows its node), and any other
input is matched by content against earlier outputs, so f-strings, joins and lists keep their links.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import TYPE_CHECKING, Any, Iterator

from .graph import Graph

if TYPE_CHECKING:
    from .llm.types import ChatModel

_graph: contextvars.ContextVar[Graph | None] = contextvars.ContextVar("workbench_graph", default=None)
_model: contextvars.ContextVar["ChatModel | None"] = contextvars.ContextVar("workbench_model", default=None)

# Outputs shorter than this only link by equality; longer ones also link when quoted inside an input.
MIN_QUOTED_LENGTH = 12


class TracedText(str):
    """A string produced by a graph node; behaves exactly like `str`."""

    node_id: str

    def __new__(cls, text: str, node_id: str) -> "TracedText":
        obj = super().__new__(cls, text)
        obj.node_id = node_id
        return obj

    def __reduce__(self):  # pickles and copies as plain text
        return (str, (str(self),))


def current_graph() -> Graph | None:
    return _graph.get()


@contextlib.contextmanager
def trace(sample_id: str, inputs: dict[str, Any] | None = None) -> Iterator[Graph]:
    """Record every node called inside the block into a new graph for `sample_id`.

    `inputs` are the sample's own inputs: a node input equal to one of them came from the sample,
    not from an earlier node, even when an earlier output happens to be quoted inside it.
    """
    graph = Graph(sample_id)
    graph.sample_inputs = {v for v in (inputs or {}).values() if isinstance(v, str)}
    token = _graph.set(graph)
    try:
        yield graph
    finally:
        _graph.reset(token)


def current_model() -> "ChatModel | None":
    return _model.get()


@contextlib.contextmanager
def use_model(model: "ChatModel") -> Iterator["ChatModel"]:
    """Run LLM nodes that were built without a model on `model` (the trainer's task model)."""
    token = _model.set(model)
    try:
        yield model
    finally:
        _model.reset(token)


def _texts(value: Any, depth: int = 0) -> list[str]:
    """The text pieces a value is made of: itself, or the items of a list/tuple/dict."""
    if isinstance(value, str):
        return [value]
    if depth < 2 and isinstance(value, (list, tuple, set)):
        return [t for item in value for t in _texts(item, depth + 1)]
    if depth < 2 and isinstance(value, dict):
        return [t for item in value.values() for t in _texts(item, depth + 1)]
    return [str(value)] if value is not None else []


def output_texts(value: Any) -> list[str]:
    """What of a node's output may later show up in another node's input."""
    whole = [] if isinstance(value, str) else [str(value)]
    return _texts(value) + whole


def find_sources(graph: Graph, value: Any, outputs: dict[str, list[str]]) -> list[str]:
    """Ids of earlier nodes whose output this input value carries, newest first."""
    found: list[str] = []

    def visit(v: Any, depth: int = 0) -> None:
        if isinstance(v, TracedText) and v.node_id not in found and v.node_id in outputs:
            found.append(v.node_id)
        elif depth < 2 and isinstance(v, (list, tuple, set)):
            for item in v:
                visit(item, depth + 1)
        elif depth < 2 and isinstance(v, dict):
            for item in v.values():
                visit(item, depth + 1)

    visit(value)
    # a TracedText's producer is known exactly; only other text is matched by content
    pieces = [p for p in _texts(value) if not isinstance(p, TracedText)]
    for node_id in reversed(list(outputs)):
        if node_id in found:
            continue
        for out in outputs[node_id]:
            if not out.strip():
                continue
            if any(out == p or (len(out) >= MIN_QUOTED_LENGTH and out in p) for p in pieces):
                found.append(node_id)
                break
    return found
