"""The event bus: synchronous fan-out of events to subscribers, checking each against its definition."""
from __future__ import annotations

import logging
import threading
from typing import Callable

from ..errors import EventContractError
from .event_contract import EVENT_TYPES, Event, problems, strict_by_default, with_defaults

log = logging.getLogger("workbench.records.events")  # the name warnings and failures were always logged under

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
