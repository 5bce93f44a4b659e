"""Recording a pipeline run without changing how the user writes it.

`trace(sample_id)` makes a fresh `Graph` current (per thread of execution, via contextvars) and
every LLM node or tool called inside adds itself. Which earlier node produced an input is found
from the value itself:

- Exactly, when the value is `TracedText`: a `str` that knows the node(s) it came from. Node
  outputs are `TracedText` (a tool's list/tuple/dict output holds `TracedText` items), and so is
  what ordinary string handling makes of them: `strip/lstrip/rstrip`, `lower/upper/title/casefold/
  capitalize/swapcase`, `replace`, `removeprefix/removesuffix`, `center/ljust/rjust/zfill/expandtabs`,
  `split/rsplit/splitlines/partition/rpartition` (each piece), indexing and slicing, `*`, `+` on either
  side (`"Q: " + answer`), `traced.join(...)`, `traced.format(...)`, `%` on either side
  (`"Q: %s" % answer`), `str(answer)`, `format(answer, spec)` and an f-string that is only the
  value (`f"{answer}"`). A value made of several traced texts links to all their nodes.
- By content, as a fallback, for text Python rebuilds as a plain `str` and a subclass cannot see:
  an f-string with literal text around the value (`f"Q: {answer}"`), `"plain".join(pieces)`,
  `"{}".format(answer)` on a plain template, `"%s %s" % (a, b)` with a tuple, `re.sub`, `json.dumps`.
  An input equal to a traced text, or quoting one of at least `MIN_QUOTED_LENGTH` characters, is
  linked to the newest node that produced it (one node per text); when several nodes (or the sample's own inputs)
  produced the same text, the edge is marked `guess=True`.

When neither finds the link, the backward pass reports the parameter as `disconnected` instead
of giving it no gradient in silence. The one-line ways to keep the link: build the text with `+`,
or do the post-processing in `LLMCall(..., parser=fn)` or a `@tool` function.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from .graph import Graph

if TYPE_CHECKING:
    from ..llm.types import ChatModel

_graph: contextvars.ContextVar[Graph | None] = contextvars.ContextVar("workbench_graph", default=None)
_model: contextvars.ContextVar["ChatModel | None"] = contextvars.ContextVar("workbench_model", default=None)

# Outputs shorter than this only link by equality; longer ones also link when quoted inside an input.
MIN_QUOTED_LENGTH = 12
NESTING = 3  # containers inside containers followed when tracing and matching text (list -> dict -> list)
# Derived texts remembered per graph for the content fallback (a bound, for loops that slice a lot).
MAX_DERIVED_TEXTS = 2000


def _merge(*values: Any) -> tuple[str, ...]:
    """The union of the sources of every traced text among `values` (one level into containers)."""
    merged: dict[str, None] = {}
    for v in values:
        items = v if isinstance(v, (list, tuple)) else v.values() if isinstance(v, dict) else (v,)
        for item in items:
            if isinstance(item, TracedText):
                merged.update(dict.fromkeys(item.sources))
    return tuple(merged)


def _wrap(result: Any, sources: tuple[str, ...]) -> Any:
    """Give a str result (or each str of a list/tuple result) the sources."""
    if not sources:
        return result
    if isinstance(result, str):
        return TracedText(result, sources)
    if isinstance(result, list):
        return [TracedText(r, sources) if isinstance(r, str) else r for r in result]
    if isinstance(result, tuple):
        return tuple(TracedText(r, sources) if isinstance(r, str) else r for r in result)
    return result


def _keeping(name: str):
    """A str method that returns its result with the sources of self and of any traced argument."""
    method = getattr(str, name)

    def kept(self: "TracedText", *args: Any, **kwargs: Any) -> Any:
        sources = _merge(self, *args, *kwargs.values()) if args or kwargs else self.sources
        return _wrap(method(self, *args, **kwargs), sources)
    kept.__name__ = kept.__qualname__ = name
    kept.__doc__ = method.__doc__
    return kept


class TracedText(str):
    """A string produced by graph node(s); behaves exactly like `str` and keeps its `sources`.

    `sources` are the ids of the nodes whose output this text carries (usually one); `node_id` is
    the first. Comparison, hashing, pickling and JSON are those of the plain text.
    """

    sources: tuple[str, ...]

    def __new__(cls, text: str, sources: "str | Iterable[str]") -> "TracedText":
        obj = super().__new__(cls, text)
        obj.sources = (sources,) if isinstance(sources, str) else tuple(dict.fromkeys(sources))
        if len(obj) >= MIN_QUOTED_LENGTH:
            graph = _graph.get()
            if graph is not None:
                graph.remember_text(str.__str__(obj), obj.sources, limit=MAX_DERIVED_TEXTS)
        return obj

    @property
    def node_id(self) -> str:
        return self.sources[0]

    def __reduce__(self):  # pickles and copies as plain text
        return (str, (str.__str__(self),))

    def __str__(self) -> "TracedText":
        return self

    def __format__(self, spec: str) -> "TracedText":
        return TracedText(str.__format__(self, spec), self.sources)

    def __add__(self, other: Any) -> Any:
        result = str.__add__(self, other)
        return result if result is NotImplemented else TracedText(result, _merge(self, other))

    def __radd__(self, other: Any) -> Any:
        if not isinstance(other, str):
            return NotImplemented
        return TracedText(str.__add__(other, self), _merge(other, self))

    def __mod__(self, args: Any) -> "TracedText":
        return TracedText(str.__mod__(self, args), _merge(self, args))

    def __rmod__(self, template: Any) -> Any:
        if not isinstance(template, str):
            return NotImplemented
        return TracedText(str.__mod__(template, self), _merge(template, self))

    def join(self, pieces: Iterable[Any]) -> "TracedText":
        pieces = list(pieces)
        return TracedText(str.join(self, pieces), _merge(self, pieces))



# the str methods whose results keep the sources (the rest return numbers, bools or bytes)
KEPT_METHODS = ("strip", "lstrip", "rstrip", "lower", "upper", "title", "casefold", "capitalize", "swapcase",
                "replace", "removeprefix", "removesuffix", "center", "ljust", "rjust", "zfill", "expandtabs",
                "split", "rsplit", "splitlines", "partition", "rpartition", "format", "format_map",
                "__getitem__", "__mul__", "__rmul__")
for _name in KEPT_METHODS:
    setattr(TracedText, _name, _keeping(_name))


def traced_output(value: Any, node_id: str, depth: int = 0) -> Any:
    """A node's output as the pipeline sees it: text made traced, also inside lists, tuples and dicts
    nested up to `NESTING` deep (a retriever's list of {"title", "text"} dicts)."""
    if isinstance(value, str):
        return TracedText(value, node_id)
    if depth < NESTING and type(value) in (list, tuple):
        return type(value)(traced_output(v, node_id, depth + 1) for v in value)
    if depth < NESTING and type(value) is dict:
        return {k: traced_output(v, node_id, depth + 1) for k, v in value.items()}
    return value


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
    if depth < NESTING and isinstance(value, (list, tuple, set)):
        return [t for item in value for t in _texts(item, depth + 1)]
    if depth < NESTING and isinstance(value, dict):
        return [t for item in value.values() for t in _texts(item, depth + 1)]
    return [str(value)] if value is not None else []


def output_texts(value: Any) -> list[str]:
    """What of a node's output may later show up in another node's input (as plain text)."""
    whole = [] if isinstance(value, str) else [str(value)]
    return [str.__str__(t) for t in _texts(value) + whole]


def find_sources(graph: Graph, value: Any, exclude: str | None = None) -> list[tuple[str, bool]]:
    """`(node_id, guess)` for each earlier node whose output this input value carries.

    Traced text gives its nodes exactly (`guess=False`). Other text is matched by content against
    the outputs (and derived texts) recorded so far: a matched text links to the newest node that
    produced it and is not linked yet, as a guess when several nodes or the sample's own inputs
    hold the same text (never to all of them).
    """
    found: dict[str, bool] = {}

    def visit(v: Any, depth: int = 0) -> None:
        if isinstance(v, TracedText):
            for s in v.sources:
                if s != exclude and s in graph.output_texts:
                    found[s] = False
        elif depth < NESTING and isinstance(v, (list, tuple, set)):
            for item in v:
                visit(item, depth + 1)
        elif depth < NESTING and isinstance(v, dict):
            for item in v.values():
                visit(item, depth + 1)

    visit(value)
    # text traced in another run (a value kept from an earlier trace) is matched like plain text
    pieces = [p for p in _texts(value)
              if not isinstance(p, TracedText) or not any(s in graph.output_texts for s in p.sources)]
    if not pieces:
        return list(found.items())
    matched: list[str] = []
    # unambiguous texts first, so that an ambiguous one goes to a producer not linked already
    for text, producers in sorted(graph.known_texts(exclude=exclude), key=lambda tp: (len(tp[1]) > 1, -len(tp[0]))):
        if not text.strip() or not any(text == p or (len(text) >= MIN_QUOTED_LENGTH and text in p) for p in pieces):
            continue
        if any(text in longer for longer in matched):
            continue  # part of a longer text already matched: that one is where it came from
        matched.append(text)
        unlinked = [n for n in producers if n not in found]
        if not unlinked:
            continue
        from_sample = any(text in s for s in graph.sample_inputs)
        found[unlinked[-1]] = len(producers) > 1 or from_sample
    return list(found.items())
