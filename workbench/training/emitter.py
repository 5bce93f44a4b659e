"""`RunEmitter`: how every part of the trainer emits, with the run's id and current step filled in.

A part is given this callable in its constructor and calls it with an event's typed definition
(`emit(StepFinished(epoch=..., ...))`, from `workbench.records.events`), so a misspelled or missing
field fails where the event is written, not in a consumer.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import WrongTypeError
from ..records.events import EventBus, EventData

if TYPE_CHECKING:
    from .run_state import RunState


class RunEmitter:
    """`emitter(data)` puts `data` on the bus as an event of this run at the state's current step."""

    def __init__(self, bus: EventBus, state: "RunState") -> None:
        self.bus, self._state = bus, state
        self.run_id = ""  # set once the run folder exists

    def __call__(self, data: EventData) -> None:
        if not isinstance(data, EventData):
            raise WrongTypeError(f"emit takes an event definition from workbench.records.events, not {type(data).__name__}")
        self.bus.emit(data.event(run_id=self.run_id, step=self._state.step))
