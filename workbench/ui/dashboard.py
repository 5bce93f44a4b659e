"""`Workbench(trainer)`: the five views as one dashboard, fed by one funnel.

    wb = Workbench(trainer)      # display it: the last expression of a cell
    wb.start()                   # returns at once; the run goes on in the trainer's worker thread

Each view is also a widget of its own: `wb.graph`, `wb.samples`, `wb.curves`, `wb.review`,
`wb.controls` can be displayed alone (in another cell, or in your own layout).
"""
from __future__ import annotations

from typing import Any

import ipywidgets

from .funnel import Funnel
from .widgets import ControlsView, CurvesView, GraphView, ReviewView, SamplesView

VIEWS = ("controls", "graph", "review", "samples", "curves")


class Workbench(ipywidgets.GridBox):
    """The dashboard. `prices` (per role: USD per million prompt and completion tokens) enables
    the cost estimate; `interval` is the minimum time between two pushes to the browser."""

    def __init__(self, trainer: Any, *, views: tuple[str, ...] = VIEWS, interval: float = 0.2,
                 prices: dict[str, tuple[float, float]] | None = None, **kwargs: Any) -> None:
        unknown = sorted(set(views) - set(VIEWS))
        if unknown:
            raise ValueError(f"unknown views {unknown}; choose from {VIEWS}")
        self.trainer = trainer
        self.funnel = Funnel(trainer, interval=interval, prices=prices)
        self.controls = ControlsView(self.funnel, layout=ipywidgets.Layout(grid_area="controls"))
        self.graph = GraphView(self.funnel, layout=ipywidgets.Layout(grid_area="graph"))
        self.review = ReviewView(self.funnel, layout=ipywidgets.Layout(grid_area="review"))
        self.samples = SamplesView(self.funnel, layout=ipywidgets.Layout(grid_area="samples"))
        self.curves = CurvesView(self.funnel, layout=ipywidgets.Layout(grid_area="curves"))
        shown = [getattr(self, name) for name in VIEWS if name in views]
        areas = ['"controls controls"', '"graph review"', '"samples curves"']
        layout = ipywidgets.Layout(
            grid_template_columns="minmax(0, 3fr) minmax(0, 2fr)",
            grid_template_areas="\n".join(areas),
            grid_gap="10px", width="100%")
        super().__init__(children=shown, layout=layout, **kwargs)
        self.add_class("wb-dashboard")

    # -- the run ----------------------------------------------------------------------------------
    def start(self) -> Any:
        """Start training in the trainer's worker thread; returns its Future at once."""
        self.funnel.control("start")
        return self.funnel.future

    def pause(self) -> None:
        self.funnel.control("pause")

    def resume(self) -> None:
        self.funnel.control("resume")

    def stop(self) -> None:
        self.funnel.control("stop")

    def step(self) -> None:
        """Run one step, then pause (for teaching)."""
        self.funnel.control("step")

    def export(self, path: str = "tuned_prompts.json", fmt: str = "json") -> str:
        return self.funnel.export(path, fmt)

    def decide(self, proposal_id: str, action: str, text: str | None = None) -> bool:
        """What the Review buttons do, from Python."""
        return self.funnel.decide(proposal_id, action, text)[0]

    @property
    def auto_approve(self) -> bool:
        return self.funnel.state.auto_approve

    @auto_approve.setter
    def auto_approve(self, value: bool) -> None:
        self.funnel.set_auto_approve(value)

    def flush(self) -> None:
        """Bring every view up to date now (normally the funnel does it, throttled)."""
        self.funnel.flush()

    def close(self) -> None:
        self.funnel.close()
        for name in VIEWS:
            getattr(self, name).close()
        super().close()
