"""What the dashboard knows about a run, rebuilt from trainer events (docs/EVENTS.md).

Plain Python, no widgets. `RunState` holds the run's fold (`records.fold.RunFold`: the numbers every
reader shares) and one reducer per view (./reducers/): `run` (controls),
`graph`, `samples`, `curves`, `review`. `apply(event)` hands the event to each of them; they mark
which parts of the dashboard changed in `dirty`, and `traits(view, parts)` returns the JSON that
view's traits carry. The funnel applies events in its own thread, so the trainer only ever appends
to a queue.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from ..records.events import Event, strict_by_default
from ..records.fold import RunFold
from .reducers import ALL_PARTS, CurvesPart, GraphPart, PersonPart, ReviewPart, RunPart, SamplesPart

log = logging.getLogger(__name__)


class RunState:
    """The dashboard's model of one run. Not thread-safe: the funnel serialises access."""

    def __init__(self, prices: dict[str, tuple[float, float]] | None = None,
                 svg_renderer: Callable[[dict], str] | None = None) -> None:
        self.dirty: set[str] = set(ALL_PARTS)
        self.fold = RunFold(keep_rows=False)  # the run's numbers; the views keep only what they show
        self.run = RunPart(self, self.fold)
        self.person = PersonPart(self)  # what a person taught: read by samples, graph panel and review
        self.samples = SamplesPart(self, self.fold)
        self.graph = GraphPart(self, svg_renderer)
        self.curves = CurvesPart(self, self.fold, prices)
        self.review = ReviewPart(self)
        self.parts = (self.run, self.person, self.samples, self.graph, self.curves, self.review)
        self._by_view = {part.view: part for part in self.parts}

    def apply(self, event: Event) -> None:
        """The fold first (the views read its numbers), then each view on its own: one view that cannot
        must not blank the others."""
        for part in (self.fold, *self.parts):
            try:
                part.apply(event)
            except Exception:
                if strict_by_default():
                    raise  # under tests a reducer's bug fails the test
                log.exception("the %s view could not apply a %s event", getattr(part, "view", "fold"), event.type)

    def traits(self, view: str, parts: set[str]) -> dict[str, Any]:
        """The trait values of `view` ("graph", "samples", "curves", "review", "controls") for `parts`."""
        part = self._by_view.get(view)
        return part.traits(parts) if part is not None else {}
