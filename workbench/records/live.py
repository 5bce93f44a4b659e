"""`LiveRun`: what the read side needs of a run that is still in memory (a trainer), so results, report,
export and sinks read a live run without importing the training layer above them."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..engine.parameter import Parameter
    from .events import EventBus
    from .store import RunStore


@runtime_checkable
class LiveRun(Protocol):
    """A trainer as the read side sees it: its run folder, its event bus, its parameters."""

    store: "RunStore"
    bus: "EventBus"
    params: "dict[str, Parameter]"
    run_id: str


def is_live_run(source: Any) -> bool:
    from .store import RunStore
    return isinstance(source, LiveRun) and isinstance(source.store, RunStore)
