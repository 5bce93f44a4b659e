"""The event bus: how the engine tells the world what it is doing.

The trainer emits small, documented events (docs/EVENTS.md); the run store, the CLI progress
display and the notebook widgets subscribe. A failing subscriber is logged, never allowed to kill
training.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    run_id: str = ""
    step: int = 0
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "run_id": self.run_id, "step": self.step, "time": self.time, "data": self.data}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Event":
        return cls(type=d["type"], data=d.get("data", {}), run_id=d.get("run_id", ""), step=d.get("step", 0),
                   time=d.get("time", 0.0))


Subscriber = Callable[[Event], None]


class EventBus:
    """Synchronous fan-out to subscribers, safe to emit from worker threads."""

    def __init__(self) -> None:
        self._subscribers: list[tuple[Subscriber, frozenset[str] | None, bool]] = []
        self._lock = threading.Lock()

    def subscribe(self, fn: Subscriber, types: set[str] | None = None, *, critical: bool = False) -> Callable[[], None]:
        """Call `fn` for each event (of `types`, if given). Returns a function that unsubscribes.

        A `critical` subscriber (the run store) re-raises its errors: losing the record of a run is
        worse than stopping it. Others (views) are logged and skipped.
        """
        entry = (fn, frozenset(types) if types else None, critical)
        with self._lock:
            self._subscribers.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._subscribers:
                    self._subscribers.remove(entry)
        return unsubscribe

    def emit(self, event: Event) -> None:
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
