"""What users subclass: a pipeline is ordinary Python that calls LLM nodes and tools.

Like `torch.nn.Module`, a `Pipeline` finds its parameters by walking its attributes, so nothing
has to be registered by hand. Loops and branches in `forward` are fine: each call is recorded.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable

from ..errors import ConfigError, NotDefinedError, NotFoundError
from .nodes import LLMCall, Tool
from .parameter import Parameter, check_unique
from .tracing import current_graph


def _walk(value: Any, seen: set[int]) -> Iterable[Any]:
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, (Parameter, LLMCall, Tool)):
        yield value
        if isinstance(value, LLMCall):
            yield from value.parameters()
    elif isinstance(value, Pipeline):
        for item in vars(value).values():
            yield from _walk(item, seen)
        for klass in type(value).__mro__:  # tools written as decorated methods live on the class
            for item in vars(klass).values():
                if isinstance(item, Tool) and id(item) not in seen:
                    seen.add(id(item))
                    yield item
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _walk(item, seen)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk(item, seen)


def check_inputs(fn: Callable[..., Any], inputs: dict[str, Any], what: str) -> None:
    """Inputs that `fn` cannot take (a dataset field named differently) would fail every sample
    with the same TypeError and score 0; say so once instead, naming both sides."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # a builtin or C function: let the call speak for itself
    try:
        signature.bind(**inputs)
    except TypeError as exc:
        graph = current_graph()
        sample = f"sample {graph.sample_id!r}" if graph is not None else "the sample"
        raise ConfigError(f"{what} cannot take the inputs of {sample}, {sorted(inputs)} ({exc}); "
                          f"it takes {list(signature.parameters)}: rename the dataset's fields or "
                          f"the function's arguments") from None


class Pipeline:
    """Subclass and write `forward(**inputs)`; call the instance with an example's inputs."""

    def forward(self, **inputs: Any) -> Any:  # pragma: no cover - the subclass's job
        raise NotDefinedError(f"{type(self).__name__} must define forward(**inputs)")

    def __call__(self, **inputs: Any) -> Any:
        check_inputs(self.forward, inputs, f"{type(self).__name__}.forward()")
        return self.forward(**inputs)

    def parameters(self) -> list[Parameter]:
        """Every parameter reachable from the pipeline, each once, in attribute order."""
        found = [v for v in _walk(self, set()) if isinstance(v, Parameter)]
        return list(check_unique(found).values())

    def trainable(self) -> list[Parameter]:
        return [p for p in self.parameters() if p.trainable]

    def named_parameters(self) -> dict[str, Parameter]:
        return {p.name: p for p in self.parameters()}

    def components(self) -> list[LLMCall | Tool]:
        return [v for v in _walk(self, set()) if isinstance(v, (LLMCall, Tool))]

    def state(self) -> dict[str, str]:
        """Current parameter values by name: what a checkpoint or export stores."""
        return {p.name: p.value for p in self.parameters()}

    def load_state(self, values: dict[str, str], *, step: int = 0, source: str = "loaded") -> None:
        """Set parameter values by name; unknown names are an error, so typos don't pass silently."""
        params = self.named_parameters()
        unknown = sorted(set(values) - set(params))
        if unknown:
            raise NotFoundError(f"{type(self).__name__} has no parameters named {unknown}; it has {sorted(params)}")
        for name, value in values.items():
            if params[name].value != value:
                params[name].update(value, step=step, source=source)


class FunctionPipeline(Pipeline):
    """Wrap a plain function as a pipeline: `FunctionPipeline(fn, nodes=[answer, retrieve])`."""

    def __init__(self, fn: Callable[..., Any], nodes: Iterable[Any] = ()) -> None:
        self.fn = fn
        self.nodes = list(nodes)

    def forward(self, **inputs: Any) -> Any:
        check_inputs(self.fn, inputs, f"{getattr(self.fn, '__qualname__', 'the function')}()")
        return self.fn(**inputs)
