"""What every view reducer shares: the dirty-part names, clipping for display, the dispatch."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...records.events import Event
from ...engine.nodes import clip_text

if TYPE_CHECKING:
    from ..state import RunState

# The parts of the dashboard; a change marks one or more of them dirty (the funnel pushes those).
LAYOUT, STATUS, PANEL, SAMPLES, CURVES, REVIEW, CONTROLS = (
    "layout", "status", "panel", "samples", "curves", "review", "controls")
ALL_PARTS = frozenset({LAYOUT, STATUS, PANEL, SAMPLES, CURVES, REVIEW, CONTROLS})

MAX_TEXT = 6000          # characters of one text shown in a view (never in a text a person may edit)


def clip(text: Any, limit: int = MAX_TEXT) -> str:
    """Display only: a long text ends with a marker saying how much was left out."""
    if text is None:
        return ""
    return clip_text(text if isinstance(text, str) else str(text), limit)


class Part:
    """One view's reducer. `_on_<event type>(event, data)` handlers fold events in; `traits(parts)`
    returns the view's trait values for the dirty `parts`."""

    view = ""

    def __init__(self, state: "RunState") -> None:
        self.state = state

    def apply(self, event: Event) -> None:
        handler = getattr(self, "_on_" + event.type, None)
        if handler is not None:
            handler(event, event.data or {})

    def mark(self, *parts: str) -> None:
        self.state.dirty.update(parts)

    def traits(self, parts: set[str]) -> dict[str, Any]:
        raise NotImplementedError
