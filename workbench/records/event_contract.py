"""The event contract's machinery: `Event`, the typed definitions' base (`EventData`, `@defines`, `doc`,
`Shape`, `@shape`) and the checks `EventBus.emit` runs (`problems`, `with_defaults`).

The definitions themselves (one frozen dataclass per event type) are in `workbench.records.events`,
which re-exports everything here: import from there.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import time
import types
import typing
from dataclasses import MISSING, dataclass, field
from typing import Any, Callable, ClassVar, Literal

from ..errors import EventContractError

# The layout of one line of events.jsonl, versioned apart from checkpoints (store.CHECKPOINT_SCHEMA_VERSION).
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
    return text.replace("typing.", "").replace("workbench.records.events.", "").replace(f"{__name__}.", "")


def strict_by_default() -> bool:
    """WORKBENCH_STRICT_EVENTS=1/0 decides; unset, violations raise under pytest and are logged otherwise."""
    setting = os.environ.get("WORKBENCH_STRICT_EVENTS", "").strip().lower()
    if setting in ("1", "true", "yes", "on"):
        return True
    if setting in ("0", "false", "no", "off"):
        return False
    return "PYTEST_CURRENT_TEST" in os.environ
