"""Trainable prompt text.

A `Parameter` is one piece of prompt text the optimizer may change: an instruction, an output
format, a set of few-shot demos, or free-form text. It carries a one-line description because the
backward engine and the optimizer reason about *what the text is for*, not only what it says.
"""
from __future__ import annotations

import contextlib
import contextvars
import copy
import re
import threading
from dataclasses import dataclass, field
from enum import Enum
from typing import Iterable, Iterator, Mapping

from ..errors import DuplicateParameterError, WorkbenchError
from .graph import Gradient

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")

# Candidate values being tried (`trying_values`), per context: the thread that evaluates a candidate (and
# the runner's workers, which copy its context) read them; every other thread (a dashboard, an export)
# keeps reading the committed value.
_TRYING: contextvars.ContextVar[Mapping["Parameter", str]] = contextvars.ContextVar("workbench_trying", default={})


class Role(str, Enum):
    """What part of a prompt a parameter plays; the optimizer treats each differently."""

    INSTRUCTION = "instruction"
    OUTPUT_FORMAT = "output_format"
    DEMOS = "demos"
    TEXT = "text"


@dataclass
class Revision:
    """One value a parameter has held, and where it came from."""

    value: str
    step: int
    source: str = "initial"  # initial | optimizer | human | demo | loaded
    score: float | None = None  # validation score when accepted, if known
    note: str = ""

    def to_dict(self) -> dict:
        return {"value": self.value, "step": self.step, "source": self.source,
                "score": self.score, "note": self.note}


@dataclass(eq=False)
class Parameter:
    """Trainable text with a stable name, a role and a purpose.

    `gradients` collects the textual feedback of the current step (cleared by `zero_grad`);
    `history` keeps every accepted value so exports and the optimizer can cite it.
    """

    name: str
    value: str
    role: Role | str = Role.INSTRUCTION
    description: str = ""
    trainable: bool = True
    history: list[Revision] = field(default_factory=list)
    gradients: list["Gradient"] = field(default_factory=list, repr=False)
    constraints: list[str] = field(default_factory=list)  # user rules the optimizer must keep
    max_length: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise WorkbenchError(
                f"parameter name {self.name!r} must start with an ASCII letter or '_' and use ASCII letters, "
                f"digits, '_', '.' or '-' (the part after the last '.' names its {{{{slot}}}}: no '-' there)")
        if not isinstance(self.value, str):
            raise WorkbenchError(f"parameter {self.name!r}: value must be text, got {type(self.value).__name__}")
        self.value = str.__str__(self.value)  # plain text, even when made from a traced node output
        if self.role not in {r.value for r in Role}:
            raise WorkbenchError(f"parameter {self.name!r}: role must be one of {[r.value for r in Role]}, "
                                 f"not {self.role!r}")
        self.role = Role(self.role)
        self._lock = threading.Lock()
        if not self.history:
            self.history.append(Revision(self.value, step=0, source="initial"))

    def __deepcopy__(self, memo: dict) -> "Parameter":
        """A copy with its own lock (a branch of a run copies its parent's pipeline)."""
        clone = object.__new__(type(self))
        memo[id(self)] = clone
        for key, value in vars(self).items():
            setattr(clone, key, threading.Lock() if key == "_lock" else copy.deepcopy(value, memo))
        return clone

    # -- gradients ---------------------------------------------------------------------------
    def add_gradient(self, gradient: "Gradient") -> None:
        with self._lock:
            self.gradients.append(gradient)

    def zero_grad(self) -> None:
        with self._lock:
            self.gradients.clear()

    def gradients_in_order(self) -> list["Gradient"]:
        """Gradients grouped by sample, then in call order, so loops read as a sequence."""
        with self._lock:
            grads = list(self.gradients)
        return sorted(grads, key=Gradient.time_order)

    # -- values ------------------------------------------------------------------------------
    def update(self, value: str, *, step: int, source: str, score: float | None = None, note: str = "") -> None:
        """Set a new accepted value and remember it in the history."""
        if not isinstance(value, str):
            raise WorkbenchError(f"parameter {self.name!r}: new value must be text")
        value = str.__str__(value)
        self.value = value
        self.history.append(Revision(value, step=step, source=source, score=score, note=note))

    def load(self, saved: dict) -> None:
        """Take the value and history a checkpoint saved (`to_dict()`); the resume's counterpart of `update`."""
        self.value = str(saved["value"])
        self.history = [Revision(**r) for r in saved.get("history", [])]

    def to_dict(self) -> dict:
        return {"name": self.name, "value": self.value, "role": self.role.value,
                "description": self.description, "trainable": self.trainable,
                "constraints": list(self.constraints), "max_length": self.max_length,
                "history": [r.to_dict() for r in self.history]}

    def __str__(self) -> str:
        return self.value


def _value(self: Parameter) -> str:
    """The candidate this context is trying, else the committed value."""
    tried = _TRYING.get()
    return tried[self] if self in tried else self.__dict__["_committed"]


def _commit(self: Parameter, value: str) -> None:
    self.__dict__["_committed"] = value


# `value` is a dataclass field (Parameter("name", "text")) read through the context's candidates
Parameter.value = property(_value, _commit, doc="the text: the committed value, or the candidate this context tries")


@contextlib.contextmanager
def trying_values(params: Mapping[str, Parameter], values: Mapping[str, str]) -> Iterator[None]:
    """Run the pipeline with candidate `values` in place of the current ones, in this context only: the
    thread that evaluates (and the runner's workers, which copy its context) reads them, every other
    thread reads the committed values, which nothing here changes. The one place a value is set only
    for a while: a kept value is committed with `Parameter.update`, a checkpoint's with `Parameter.load`."""
    tried = dict(_TRYING.get())
    tried.update({params[name]: str.__str__(value) for name, value in values.items()})
    token = _TRYING.set(tried)
    try:
        yield
    finally:
        _TRYING.reset(token)


def check_unique(parameters: Iterable[Parameter]) -> dict[str, Parameter]:
    """Map names to parameters; two *different* parameters with one name is an error."""
    seen: dict[str, Parameter] = {}
    for p in parameters:
        other = seen.get(p.name)
        if other is not None and other is not p:
            raise DuplicateParameterError(p.name)
        seen[p.name] = p
    return seen
