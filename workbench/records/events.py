"""The event bus and the event contract: how the engine tells the world what it is doing.

The trainer emits small events; the run store, the CLI progress display, the notebook widgets and
exports read them. Every event type has ONE typed definition below (a frozen dataclass registered
with `@defines("type")`), and `EventBus.emit` checks each event's `data` against it: an unknown
type, a missing required field, an unknown field or a value of the wrong type is a contract
violation. Under pytest (or with WORKBENCH_STRICT_EVENTS=1) a violation raises `EventContractError`;
in production (or with WORKBENCH_STRICT_EVENTS=0) it is logged once and the event is still delivered,
because losing the record of a paid-for run is worse than an odd field.

Optional fields have defaults, and `emit` fills them in, so a consumer may read any defined field
of a delivered event with `event.data["field"]`. docs/EVENTS.md is generated from these definitions:
`python scripts/events_doc.py --write`.

A failing subscriber is logged, never allowed to kill training (unless it is `critical`).
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import os
import sys
import threading
import time
import types
import typing
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal

from ..errors import EventContractError

log = logging.getLogger(__name__)

# The layout of one line of events.jsonl, versioned apart from checkpoints (store.CHECKPOINT_SCHEMA_VERSION).
# 1: untyped dicts (logs written before the contract); 2: every type defined here, checked on emit
EVENTS_SCHEMA_VERSION = 2


@dataclass(frozen=True)
class Event:
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    run_id: str = ""
    step: int = 0
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "run_id": self.run_id, "step": self.step, "time": self.time,
                "schema": EVENTS_SCHEMA_VERSION, "data": self.data}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Event":
        return cls(type=d["type"], data=d.get("data", {}), run_id=d.get("run_id", ""), step=d.get("step", 0),
                   time=d.get("time", 0.0))


# -- the definitions ---------------------------------------------------------------------------------

EVENT_TYPES: dict[str, type["EventData"]] = {}


class EventData:
    """Base of every event definition: the fields of one event type's `data`."""

    TYPE: ClassVar[str] = ""

    def event(self, *, run_id: str = "", step: int = 0) -> Event:
        """This data as an `Event` to emit."""
        return Event(self.TYPE, dataclasses.asdict(self), run_id=run_id, step=step)

    @classmethod
    def of(cls, event: Event) -> Any:
        """Typed access to a received or stored event: `Proposal.of(e).parameter`, defaults filled in.

        Reading is forgiving where emitting is strict: fields this version does not define (a log
        written by another version) are ignored; a missing required field is an `EventContractError`.
        """
        if event.type != cls.TYPE:
            raise EventContractError(f"{cls.__name__} reads {cls.TYPE!r} events, not {event.type!r}")
        data = event.data if isinstance(event.data, dict) else {}
        fields = _fields(cls)
        missing = [name for name, f in fields.items() if _required(f) and name not in data]
        if missing:
            raise EventContractError(f"{event.type!r} event lacks required field(s) {missing}")
        return cls(**{k: v for k, v in data.items() if k in fields})


def defines(type_name: str) -> Callable[[type], type]:
    """Register a class as the definition of `type_name` (and make it a frozen, keyword-only dataclass)."""
    def register(cls: type) -> type:
        cls = dataclass(frozen=True, kw_only=True)(cls)
        cls.TYPE = type_name
        EVENT_TYPES[type_name] = cls
        return cls
    return register


def doc(text: str, default: Any = MISSING) -> Any:
    """A field with a description for docs/EVENTS.md (and a default when it is optional)."""
    if isinstance(default, (list, dict)):  # a fresh copy for each event, never one shared list
        return field(default_factory=lambda: type(default)(default), metadata={"doc": text})
    return field(default=default, metadata={"doc": text})


class Shape:
    """Base of the definitions of structured values inside an event's data, checked like the data."""


SHAPES: dict[str, type[Shape]] = {}


def shape(cls: type) -> type:
    """Register a class as the definition of a structured value (a frozen, keyword-only dataclass)."""
    cls = dataclass(frozen=True, kw_only=True)(cls)
    SHAPES[cls.__name__] = cls
    return cls


@shape
class SampleSummary(Shape):
    """`SampleResult.summary()`: one sample's run, as `forward` and `teacher` events carry it."""
    sample_id: str
    inputs: dict = doc("input name -> text")
    target: Any
    prediction: str | None = doc("the pipeline's output as text; null when it raised or errored")
    score: float | None = doc("null when the sample errored")
    status: str = doc("`ok` / `failed` / `errored`")
    error: str | None = doc("why it failed or errored", None)
    seconds: float = doc("wall time of the sample", 0.0)


@shape
class SelectionEntry(Shape):
    """One sample of the step's minibatch and whether backward uses it."""
    sample_id: str
    selected: bool
    reason: str


@defines("run_started")
class RunStarted(EventData):
    """Once, at the start of `fit()` (also on resume)."""
    run_id: str
    config: dict = doc("`TrainConfig` as a dict")
    parameters: list = doc("`[Parameter.to_dict()]`")
    splits: dict = doc("`{train, val, test}`: sample counts")
    resumed_from: int | None = doc("the step a resumed run continues after; null for a new run")


@defines("node")
class NodeStatus(EventData):
    """A node starts or ends during a forward pass of the train split."""
    sample_id: str
    split: str
    node_id: str
    component: str
    kind: str = doc("`llm` / `function` / `loss`")
    call_index: int
    status: str = doc("`running` / `done` / `failed`")


@defines("forward")
class Forward(EventData):
    """A sample has been run and scored."""
    split: str = doc("`train` / `val` / `test` / `minibatch`")
    phase: str = doc("`baseline` / `train` / `proposal` / `final`")
    summary: SampleSummary
    graph: dict | None = doc("`Graph.to_dict()` for the train split; else null")


@defines("eval")
class Eval(EventData):
    """An evaluation of a split finished."""
    split: str
    phase: str
    score: float | None = doc("mean over the samples that were scored; null when none was")
    n: int = doc("samples run")
    errored: int = doc("samples the endpoint could not answer after retries (kept out of the mean)")
    proposal_id: str | None = doc("the candidate evaluated, or null for the current values")
    complete: bool | None = doc("for a candidate's validation: false when it stopped early (it could no "
                                "longer win); null otherwise", None)
    left_out: int = doc("samples left out of a paired comparison (errored in either run)", 0)


@defines("step_started")
class StepStarted(EventData):
    """A training step begins."""
    epoch: int
    batch: list[str] = doc("sample ids of the minibatch")


@defines("teacher")
class TeacherRan(EventData):
    """A teacher model ran the minibatch to bootstrap demos (only with `Trainer(teacher=...)`)."""
    samples: list[SampleSummary]


@defines("selection")
class Selection(EventData):
    """The backward subset is chosen."""
    samples: list[SelectionEntry]


@defines("gradient")
class GradientWritten(EventData):
    """One textual gradient is written (`Gradient.to_dict()`)."""
    sample_id: str
    node_id: str = doc("the node whose backward rule wrote it")
    component: str
    call_index: int
    target: str = doc("a parameter name, or the id of the upstream node whose output is criticised")
    target_kind: Literal["parameter", "value"]
    score: float | None
    text: str
    position: int = doc("the writing node's place in the sample's time order (0 in logs before it was recorded)", 0)
    source: Literal["backward", "person"] = doc("who wrote it: the backward engine (its rules and model) or a "
                                                "person (`trainer.feedback`)", "backward")


@defines("backward_done")
class BackwardDone(EventData):
    """Backward of the step finished."""
    samples: list[str]
    gradients: int = doc("textual gradients written")


@defines("disconnected")
class Disconnected(EventData):
    """A trainable parameter's node has no path to the loss, so it gets no gradient (backward pass)."""
    parameter: str
    node_id: str = doc("the node where the path to the loss ends")
    sample_id: str
    reason: str


@defines("skipped")
class Skipped(EventData):
    """A gradient, proposal or teacher trace was skipped: its model failed after retries, or its reply
    only echoed the prompt (a base model's echo is not feedback)."""
    stage: Literal["backward", "optimizer", "teacher"]
    parameter: str | None = doc("the parameter it was for, if any")
    node_id: str | None = doc("the node it was for, if any")
    sample_id: str | None = doc("the sample it was for, if any")
    error: str = doc("the model's error (secrets redacted)")


@defines("proposal")
class Proposal(EventData):
    """The optimizer (or a person's edit, or the demo optimizer) proposes a value."""
    proposal_id: str
    parameter: str
    role: str
    old: str
    new: str
    source: Literal["optimizer", "demos", "human"]
    gradient_summary: str
    attempt: int | None = doc("attempt number of this parameter within the step", None)
    group: str | None = doc("the joint group proposed together, if any", None)


@defines("no_proposal")
class NoProposal(EventData):
    """Nothing to propose for a trainable parameter this step: the optimizer gave nothing usable, or the
    parameter got no feedback (source "feedback")."""
    parameter: str
    source: str = doc('"optimizer", "demos", or "feedback" (no gradient reached it this step)')
    reason: str
    reply: str = doc("the optimizer's raw reply, clipped (empty when no optimizer was asked)", "")


@defines("minibatch")
class Minibatch(EventData):
    """The cheap gate on the step's minibatch (paired: same sample ids before and after)."""
    proposal_id: str
    before: float | None
    after: float | None
    passed: bool
    left_out: int = doc("samples that errored in either run, left out of both means", 0)
    samples: list[str] = doc("sample ids compared", [])


@defines("approval_requested")
class ApprovalRequested(EventData):
    """A person must decide (human approval policy)."""
    proposal_id: str
    parameter: str
    old: str
    new: str
    minibatch_before: float | None
    minibatch_after: float | None


@defines("decision")
class DecisionMade(EventData):
    """A proposal was decided."""
    proposal_id: str
    action: Literal["accept", "reject", "edit"]
    by: str = doc("`policy` / `person` / `timeout`")
    text: str | None = doc("the person's text, for `edit`")
    at: float = doc("unix time of the decision")
    reason: str | None = doc("the person's reason (asked on reject; optional on accept and edit): every later "
                             "optimizer call for the parameter sees it", None)


@defines("feedback")
class FeedbackGiven(EventData):
    """A person wrote feedback (`trainer.feedback`): accepted as a gradient with source "person", or
    refused with the reason (a leaked training target, an unknown sample, node or parameter, no text)."""
    feedback_id: str
    text: str
    source: Literal["person"] = doc("always `person`", "person")
    target_kind: Literal["sample", "node", "parameter"] = doc("`sample`: the sample's final output; `node`: that "
                                                             "node's output for the sample; `parameter`: its optimizer")
    sample_id: str | None
    node_id: str | None
    parameter: str | None
    accepted: bool
    reason: str | None = doc("why it was refused; null when accepted")


@defines("feedback_used")
class FeedbackUsed(EventData):
    """A person's pending feedback reached a backward pass (sample, node) or an optimizer call (parameter)."""
    feedback_id: str
    used_in: Literal["backward", "optimizer"]
    sample_id: str | None = doc("the sample back-propagated with it", None)
    parameter: str | None = doc("the parameter whose optimizer got it", None)
    applied: bool = doc("false when it could not act (its node is not in that sample's graph)", True)
    note: str = doc("what happened, in words", "")


@defines("validation")
class Validation(EventData):
    """The candidate's validation score."""
    proposal_id: str
    score: float | None
    best: float | None = doc("the best validation score before this candidate")
    passed: bool
    complete: bool = doc("false when validation stopped early: the candidate could no longer win", True)
    left_out: int = doc("samples that errored in either run, left out of both means", 0)


@defines("update")
class Update(EventData):
    """A proposal was kept (accepted) or reverted."""
    proposal_id: str
    parameter: str
    accepted: bool
    value: str = doc("the parameter's value after the decision")
    reason: str


@defines("step_finished")
class StepFinished(EventData):
    """A step ended."""
    epoch: int
    train_score: float | None
    val_score: float | None
    best_val: float | None
    accepted: list[str] = doc("proposal ids kept")
    rejected: list[str] = doc("proposal ids reverted")
    optimized: list[str] = doc("parameters the optimizer worked on", [])
    mode: Literal["all", "one", "joint"] = doc("`TrainConfig.optimize`", "all")
    usage: dict = doc("`{role: {calls, prompt_tokens, completion_tokens, cache_hits, latency_s}}`")


@defines("checkpoint")
class CheckpointWritten(EventData):
    """Parameters and trainer state were written (the step is the event's `step`)."""
    path: str


@defines("checkpoint_skipped")
class CheckpointSkipped(EventData):
    """A damaged checkpoint was skipped on resume; an older one is used."""
    path: str
    reason: str


@defines("control")
class Control(EventData):
    """Someone paused, resumed, asked for one step or stopped; `pause` also when a single step ends."""
    action: Literal["pause", "resume", "step", "stop"]


@defines("endpoint_probe")
class EndpointProbe(EventData):
    """Whether an endpoint drops system messages (then they are folded into the user turn)."""
    role: str = doc("the model's role: task / backward / optimizer / teacher")
    base_url: str | None = doc("without credentials")
    model: str
    system_messages: Literal["kept", "dropped", "unknown"]
    fold_system: bool
    source: Literal["probe", "config"]


@defines("run_finished")
class RunFinished(EventData):
    """Once, at the end (`RunSummary.to_dict()` without the parameters)."""
    run_id: str
    status: Literal["completed", "stopped", "budget", "plateau", "failed"]
    steps: int
    baseline: dict = doc("`{val, test}`")
    final: dict = doc("`{val, test}`")
    best_val: float | None
    best_step: int
    usage: dict
    run_dir: str | None
    error: str | None
    errored_samples: int = doc("sample runs whose calls failed after retries", 0)


# -- checking ------------------------------------------------------------------------------------------

def _type_ok(value: Any, hint: Any) -> bool:
    """A shallow, forgiving type check (an int is a float; list items are checked one level deep)."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if origin is Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        return isinstance(value, (list, tuple)) and all(_type_ok(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if isinstance(hint, type) and issubclass(hint, Shape):
        return isinstance(value, dict)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (list, tuple):
        return isinstance(value, (list, tuple))
    return isinstance(value, hint)


def fields_of(type_name: str) -> set[str]:
    """The field names an event type defines (an unknown type is a contract error)."""
    if type_name not in EVENT_TYPES:
        raise EventContractError(f"unknown event type {type_name!r}")
    return {f.name for f in dataclasses.fields(EVENT_TYPES[type_name])}


@functools.lru_cache(maxsize=None)
def _hints(definition: type) -> dict[str, Any]:
    return typing.get_type_hints(definition)


@functools.lru_cache(maxsize=None)
def _fields(definition: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(definition)}


def _required(f: dataclasses.Field) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def shape_of(hint: Any) -> type[Shape] | None:
    """The Shape a field holds, itself or as the items of a list; None for plain values."""
    if isinstance(hint, type) and issubclass(hint, Shape):
        return hint
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint) or (Any,)
        return item if isinstance(item, type) and issubclass(item, Shape) else None
    return None


def _mapping_problems(where: str, value: dict, definition: type) -> list[str]:
    """Unknown, missing and mistyped fields of `value` (event data, or a structured value inside it)."""
    fields, hints = _fields(definition), _hints(definition)
    found = [f"{where} has unknown field {k!r} (defined: {', '.join(fields)})" for k in value if k not in fields]
    found += [f"{where} lacks required field {name!r}"
              for name, f in fields.items() if _required(f) and name not in value]
    found += [f"{where} field {k!r} = {v!r:.80} is not {_type_name(hints[k])}"
              for k, v in value.items() if k in fields and not _type_ok(v, hints[k])]
    for k, v in value.items():
        nested = shape_of(hints[k]) if k in fields else None
        if nested is None:
            continue
        if isinstance(v, dict):
            found += _mapping_problems(f"{where} field {k!r}", v, nested)
        elif isinstance(v, (list, tuple)):
            for i, item in enumerate(v):
                if isinstance(item, dict):
                    found += _mapping_problems(f"{where} field {k!r}[{i}]", item, nested)
    return found


def problems(event: Event) -> list[str]:
    """Every way `event` breaks its definition (empty when it conforms)."""
    definition = EVENT_TYPES.get(event.type)
    if definition is None:
        return [f"unknown event type {event.type!r}; define it in workbench/records/events.py "
                f"(known: {', '.join(sorted(EVENT_TYPES))})"]
    data = event.data or {}
    if not isinstance(data, dict):
        return [f"{event.type!r} event data must be a dict, not {type(data).__name__}"]
    return _mapping_problems(f"{event.type!r} event", data, definition)


def with_defaults(event: Event) -> Event:
    """`event` with every optional field its definition has (and its shapes have), at its default, filled in."""
    definition = EVENT_TYPES.get(event.type)
    if definition is None or not isinstance(event.data, dict):
        return event
    data = _filled(event.data, definition)
    hints = _hints(definition)
    for name in _fields(definition):
        nested, value = shape_of(hints[name]), data.get(name)
        if nested is None or not isinstance(value, (dict, list, tuple)):
            continue
        filled = _filled(value, nested) if isinstance(value, dict) else \
            [_filled(item, nested) if isinstance(item, dict) else item for item in value]
        if filled is not value and filled != value:
            data = {**data, name: filled}
    return event if data is event.data else dataclasses.replace(event, data=data)


def _filled(value: dict, definition: type) -> dict:
    """`value`, or a copy with the optional fields of `definition` it lacks at their defaults."""
    missing = {f.name: (f.default if f.default_factory is MISSING else f.default_factory())
               for f in _fields(definition).values() if not _required(f) and f.name not in value}
    return {**value, **missing} if missing else value


def _type_name(hint: Any) -> str:
    text = str(hint) if not isinstance(hint, type) else hint.__name__
    return text.replace("typing.", "").replace(f"{__name__}.", "")


def strict_by_default() -> bool:
    """WORKBENCH_STRICT_EVENTS=1/0 decides; unset, violations raise under pytest and are logged otherwise."""
    setting = os.environ.get("WORKBENCH_STRICT_EVENTS", "").strip().lower()
    if setting in ("1", "true", "yes", "on"):
        return True
    if setting in ("0", "false", "no", "off"):
        return False
    return "PYTEST_CURRENT_TEST" in os.environ


# -- the bus ---------------------------------------------------------------------------------------------

Subscriber = Callable[[Event], None]


class EventBus:
    """Synchronous fan-out to subscribers, safe to emit from worker threads.

    `strict=None` follows `strict_by_default()`: True raises `EventContractError` on an event that
    breaks its definition; False logs it (once per problem) and delivers the event anyway.
    """

    def __init__(self, *, strict: bool | None = None) -> None:
        self._subscribers: list[tuple[Subscriber, frozenset[str] | None, bool]] = []
        self._lock = threading.Lock()
        self.strict = strict
        self._logged: set[str] = set()

    def subscribe(self, fn: Subscriber, types: set[str] | None = None, *, critical: bool = False) -> Callable[[], None]:
        """Call `fn` for each event (of `types`, if given). Returns a function that unsubscribes.

        A `critical` subscriber (the run store) re-raises its errors: losing the record of a run is
        worse than stopping it. Others (views) are logged and skipped.
        """
        unknown = sorted(set(types or ()) - set(EVENT_TYPES))
        if unknown:
            self._violation([f"subscribed to unknown event types {unknown}"])
        entry = (fn, frozenset(types) if types else None, critical)
        with self._lock:
            self._subscribers.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._subscribers:
                    self._subscribers.remove(entry)
        return unsubscribe

    def emit(self, event: Event) -> None:
        found = problems(event)
        if found:
            self._violation(found)
        event = with_defaults(event)
        with self._lock:
            subscribers = list(self._subscribers)
        for fn, types, critical in subscribers:
            if types is None or event.type in types:
                try:
                    fn(event)
                except Exception:
                    if critical:
                        raise
                    log.exception("event subscriber %r failed on %s", fn, event.type)

    def _violation(self, found: list[str]) -> None:
        strict = strict_by_default() if self.strict is None else self.strict
        if strict:
            raise EventContractError("; ".join(found))
        for problem in found:
            kind = problem.split(" = ")[0]  # once per event type and field, whatever the wrong value
            with self._lock:
                first = kind not in self._logged
                self._logged.add(kind)
            if first:
                log.warning("event contract: %s (logged once; WORKBENCH_STRICT_EVENTS=1 makes it an error)", problem)


# -- docs/EVENTS.md ---------------------------------------------------------------------------------------

DOC_BEGIN = "<!-- generated by `python scripts/events_doc.py --write`: edit workbench/records/events.py, not this part -->"
DOC_END = "<!-- end of generated part -->"


def render_reference() -> str:
    """The generated part of docs/EVENTS.md: a summary table, each type's fields, then the shapes."""
    lines = [DOC_BEGIN, "", f"Schema version: **{EVENTS_SCHEMA_VERSION}** (each line of `events.jsonl` carries it as "
             "`schema`; lines without it are version 1).", "",
             "| type | when |", "|---|---|"]
    lines += [f"| [`{name}`](#{name}) | {_one_line(cls.__doc__)} |" for name, cls in EVENT_TYPES.items()]
    for name, cls in EVENT_TYPES.items():
        lines += ["", f"### {name}", "", f"{_one_line(cls.__doc__)} Definition: `workbench.records.events.{cls.__name__}`.",
                  ""] + _field_table(cls)
    lines += ["", "## Shapes", "", "Structured values inside an event's data, checked like the data itself."]
    for name, cls in SHAPES.items():
        lines += ["", f"### {name}", "", _one_line(cls.__doc__), ""] + _field_table(cls)
    lines += ["", DOC_END]
    return "\n".join(lines)


def _field_table(definition: type) -> list[str]:
    hints = _hints(definition)
    lines = ["| field | type | | meaning |", "|---|---|---|---|"]
    for f in _fields(definition).values():
        need = "required" if _required(f) else f"optional, default `{_default_text(f)}`"
        lines.append(f"| `{f.name}` | `{_type_name(hints[f.name])}` | {need} | {f.metadata.get('doc', '')} |")
    return lines


def _default_text(f: dataclasses.Field) -> str:
    value = f.default if f.default_factory is MISSING else f.default_factory()
    return {None: "null", True: "true", False: "false"}.get(value, repr(value)) \
        if isinstance(value, (bool, type(None))) else repr(value)


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def updated_doc(current: str) -> str:
    """`current` (the text of docs/EVENTS.md) with its generated part replaced by `render_reference()`."""
    start, end = current.find(DOC_BEGIN), current.find(DOC_END)
    if start < 0 or end < start:
        return current.rstrip("\n") + "\n\n" + render_reference() + "\n"
    return current[:start] + render_reference() + current[end + len(DOC_END):]


DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "EVENTS.md"


def main(argv: list[str] | None = None) -> int:
    """Print the generated reference; `--write` updates docs/EVENTS.md; `--check` fails when it is stale."""
    argv = sys.argv[1:] if argv is None else argv
    if "--write" in argv or "--check" in argv:
        current = DOC_PATH.read_text(encoding="utf-8") if DOC_PATH.exists() else "# Events\n"
        wanted = updated_doc(current)
        if "--check" in argv:
            if wanted != current:
                print(f"{DOC_PATH} is out of date: run python scripts/events_doc.py --write", file=sys.stderr)
                return 1
            return 0
        DOC_PATH.write_text(wanted, encoding="utf-8")
        print(f"wrote {DOC_PATH}")
        return 0
    print(render_reference())
    return 0
