"""The two kinds of graph node a pipeline is built from.

`LLMCall` renders a template from its parameters (peers) and inputs and asks a model; `tool` marks
any Python function (retriever, parser, calculator) as a functional node. Both work outside a trace
as ordinary callables and record themselves when called inside `tracing.trace`.
"""
from __future__ import annotations

import functools
import inspect
import re
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable

from ..errors import ParseError, WorkbenchError
from ..llm.types import ask
from .parameter import Parameter, check_unique
from .prompt import PromptTemplate
from .tracing import current_graph, current_model, find_sources, output_texts, traced_output

if TYPE_CHECKING:
    from .graph import Graph, NodeRecord
    from ..llm.types import ChatModel


# Graph records (what the dashboard and events show) keep this much of a long input or output.
DISPLAY_LIMIT = 4000


def as_text(value: Any) -> str:
    """A value as it goes into a prompt, in full: text as is, a list one item per line, else repr."""
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, (list, tuple)):
        return "\n".join(str.__str__(str(v)) for v in value)
    return repr(value)


def display_text(value: Any, limit: int = DISPLAY_LIMIT) -> str:
    """`as_text`, clipped for display in graph records only (never in the prompt that is sent)."""
    return clip_text(as_text(value), limit)


def clip_text(text: str, limit: int) -> str:
    """Display only: a long text ends with a marker saying how much was left out (see `is_clipped`)."""
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more characters]"


def is_clipped(text: str) -> bool:
    """True when `text` is a graph record that `display_text` shortened (not the whole value)."""
    return bool(_CLIP_MARK.search(text or ""))


_CLIP_MARK = re.compile(r"\.\.\. \[\d+ more characters\]$")


def check_node_name(name: Any, what: str) -> str:
    """Node names become graph ids (`name`, `name#2`): text without `#` or control characters."""
    if not isinstance(name, str) or not name.strip():
        raise WorkbenchError(f"{what} name must be non-empty text, got {name!r}")
    bad = sorted({ch for ch in name if ch == "#" or (ord(ch) < 32 and ch not in "\n\r\t") or ord(ch) == 127
                  or 0xD800 <= ord(ch) <= 0xDFFF})
    if bad:
        raise WorkbenchError(f"{what} name {name!r} may not contain {bad}: '#' numbers repeated calls "
                             f"(`{name}#2`) and control characters cannot be shown")
    return name


def _link_inputs(graph: "Graph", node: "NodeRecord", inputs: dict[str, Any]) -> None:
    for name, value in inputs.items():
        if type(value) is str and value in graph.sample_inputs:
            continue  # the sample's own input passed along unchanged
        for source, guess in find_sources(graph, value, exclude=node.id):
            graph.add_edge(source, node.id, name, guess=guess)


def _finish(graph: "Graph", node: "NodeRecord", output: Any, *, raw: str | None = None) -> None:
    node.output = display_text(raw if raw is not None else output)
    node.status = "done"
    node.ended = time.time()
    graph.output_texts[node.id] = output_texts(output) + ([raw] if raw is not None else [])
    graph.notify(node)


class LLMCall:
    """An LLM node: `{{slots}}` in the template are filled from parameters and call inputs.

    `parser` turns the reply into the value the pipeline uses; when it raises, the node records
    the raw reply and a `ParseError` carrying it propagates, so the sample counts as failed.
    """

    def __init__(self, name: str, template: str | PromptTemplate, parameters: Iterable[Parameter] = (),
                 *, system: str | None = None, model: "ChatModel | None" = None,
                 parser: Callable[[str], Any] | None = None, **sampling: Any) -> None:
        iterable = isinstance(parameters, Iterable) and not isinstance(parameters, (str, dict, Parameter))
        parameters = list(parameters) if iterable else parameters
        if not iterable or not all(isinstance(p, Parameter) for p in parameters):
            raise WorkbenchError(f"LLM node {name!r}: parameters must be a list of Parameter, got {parameters!r}")
        if isinstance(template, str):
            template = PromptTemplate(user=template, system=system)
        elif not isinstance(template, PromptTemplate):
            raise WorkbenchError(f"LLM node {name!r}: template must be text or a PromptTemplate, "
                                 f"got {type(template).__name__}")
        elif system is not None:
            raise WorkbenchError(f"LLM node {name!r}: give `system` inside the PromptTemplate, not both")
        self.name = check_node_name(name, "LLM node")
        self.template = template
        self.params = check_unique(parameters)
        self.model = model
        self.parser = parser
        self.sampling = sampling
        by_slot: dict[str, list[str]] = {}
        for p in self.params.values():
            by_slot.setdefault(self._slot(p), []).append(p.name)
        shared = {slot: names for slot, names in by_slot.items() if len(names) > 1}
        if shared:
            slot, names = next(iter(shared.items()))
            raise WorkbenchError(f"LLM node {name!r}: parameters {names} would all fill the slot "
                                 f"{{{{{slot}}}}}; give each its own slot (the last part of its name)")
        missing = [p.name for p in self.params.values() if self._slot(p) not in template.variables()]
        unusable = [n for n in missing if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n.split(".")[-1])]
        if unusable:  # a name Parameter accepts ("answer.output-format") whose slot no {{...}} can hold
            bad = unusable[0]
            better = ".".join(bad.split(".")[:-1] + [re.sub(r"\W", "_", bad.split(".")[-1]) or "text"])
            raise WorkbenchError(f"LLM node {name!r}: parameter {bad!r} fills the slot named by the last part of "
                                 f"its name, {bad.split('.')[-1]!r}, but a {{{{slot}}}} holds only letters, digits "
                                 f"and '_': rename it, e.g. {better!r}, and write {{{{{better.split('.')[-1]}}}}}")
        if missing:
            raise WorkbenchError(f"LLM node {name!r}: parameters {missing} have no {{{{slot}}}} in its template "
                                 f"(slots: {template.variables()})")

    @staticmethod
    def _slot(p: Parameter) -> str:
        """The template slot of a parameter: the last part of its dotted name."""
        return p.name.split(".")[-1]

    def parameters(self) -> list[Parameter]:
        return list(self.params.values())

    def render(self, inputs: dict[str, Any]) -> list[dict]:
        variables = {self._slot(p): p.value for p in self.params.values()}
        overlap = set(variables) & set(inputs)
        if overlap:
            raise WorkbenchError(f"LLM node {self.name!r}: inputs {sorted(overlap)} clash with parameter slots")
        unused = sorted(set(inputs) - set(self.template.variables()))
        if unused:  # it would never reach the model, yet the graph would link (and send feedback to) its source
            raise WorkbenchError(f"LLM node {self.name!r}: inputs {unused} have no {{{{slot}}}} in its template "
                                 f"(slots: {self.template.variables()}), so the model would never see them")
        variables.update({k: as_text(v) for k, v in inputs.items()})
        return self.template.render(variables, node=self.name)

    def __call__(self, **inputs: Any) -> Any:
        model = self.model or current_model()
        if model is None:
            raise WorkbenchError(f"LLM node {self.name!r} has no model: pass model=... or run it inside "
                                 f"workbench.use_model(model). Called from a thread started inside forward() "
                                 f"(a thread pool)? A new thread sees neither the run's model nor its trace: "
                                 f"submit the call with contextvars.copy_context().run(fn, ...)")
        messages = self.render(inputs)  # template errors surface before anything is recorded
        graph = current_graph()
        node = None
        if graph is not None:
            node = graph.new_node(self.name, "llm", parameters=list(self.params),
                                  inputs={k: display_text(v) for k, v in inputs.items()}, prompt=messages,
                                  started=time.time())
            _link_inputs(graph, node, inputs)
        try:
            completion = ask(model, messages, **self.sampling)
        except WorkbenchError as exc:
            if node is not None:
                node.status, node.error, node.ended = "failed", f"{type(exc).__name__}: {exc}", time.time()
                graph.notify(node)
            raise
        text = completion.text
        if node is not None:
            node.prompt_tokens, node.completion_tokens = completion.prompt_tokens, completion.completion_tokens
            node.cached = completion.cached
        value: Any = text
        if self.parser is not None:
            try:
                value = self.parser(text)
            except Exception as exc:
                if node is not None:
                    node.output, node.status, node.ended = text, "failed", time.time()
                    node.error = f"could not parse the reply: {exc}"
                    graph.output_texts[node.id] = [text]
                    graph.notify(node)
                raise ParseError(text, f"node {self.name!r}: {exc}") from exc
        if node is not None:
            _finish(graph, node, value, raw=text if value != text else None)
            value = traced_output(value, node.id)
        return value

    def __repr__(self) -> str:
        return f"LLMCall({self.name!r}, parameters={list(self.params)})"


class Tool:
    """A functional node: ordinary Python whose call is recorded; feedback passes through it."""

    def __init__(self, fn: Callable, name: str | None = None) -> None:
        if not callable(fn):
            raise WorkbenchError(f"tool() needs a function, got {fn!r}")
        self.fn = fn
        self.name = check_node_name(getattr(fn, "__name__", type(fn).__name__) if name is None else name, "tool")
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    def parameters(self) -> list[Parameter]:
        return []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        graph = current_graph()
        if graph is None:
            return self.fn(*args, **kwargs)
        bound = self.signature.bind(*args, **kwargs)
        inputs = dict(bound.arguments)
        node = graph.new_node(self.name, "function", inputs={k: display_text(v) for k, v in inputs.items()},
                              started=time.time())
        _link_inputs(graph, node, inputs)
        try:
            output = self.fn(*args, **kwargs)
        except Exception as exc:
            node.status, node.error, node.ended = "failed", f"{type(exc).__name__}: {exc}", time.time()
            graph.notify(node)
            raise
        _finish(graph, node, output)
        return traced_output(output, node.id)

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        """Support decorating methods: bind `self` but keep recording."""
        if obj is None:
            return self
        bound = Tool(functools.partial(self.fn, obj), self.name)
        bound.signature = inspect.signature(bound.fn)
        return bound

    def __repr__(self) -> str:
        return f"Tool({self.name!r})"


def tool(fn: Callable | None = None, *, name: str | None = None) -> Any:
    """Mark a function as a functional graph node: `@tool` or `@tool(name="retrieve")`."""
    if fn is None:
        return lambda f: Tool(f, name)
    return Tool(fn, name)
