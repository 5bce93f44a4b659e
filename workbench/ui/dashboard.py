"""`Workbench(trainer)`: the five views as one dashboard, fed by one funnel.

    wb = Workbench(trainer)      # display it: the last expression of a cell
    wb.start()                   # returns at once; the run goes on in the trainer's worker thread

Each view is also a widget of its own: `wb.graph`, `wb.samples`, `wb.curves`, `wb.review`,
`wb.controls` can be displayed alone (in another cell, or in your own layout).
"""
from __future__ import annotations

from typing import Any

import ipywidgets

from ..errors import WorkbenchError
from .funnel import Funnel
from .widgets import ControlsView, CurvesView, GraphView, ReviewView, SamplesView

VIEWS = ("controls", "graph", "review", "samples", "curves")


# How the views share the width: each pair sits side by side while both fit at their minimum width,
# and wraps onto its own row in a narrow notebook (plain flex-wrap: no media query can see the
# width of a notebook's output area).
_FLEX = {"controls": ("1 1 100%", "0"), "graph": ("3 1 55%", "min(100%, 440px)"),
         "review": ("2 1 38%", "min(100%, 300px)"), "samples": ("3 1 55%", "min(100%, 440px)"),
         "curves": ("2 1 38%", "min(100%, 300px)")}


class Workbench(ipywidgets.Box):
    """The dashboard. `prices` (per role: USD per million prompt and completion tokens) enables
    the cost estimate; `interval` is the minimum time between two pushes to the browser.

    Setting it up tells the trainer a dashboard shows the run (`trainer.has_dashboard = True`), so
    the trainer draws no progress bar of its own."""

    def __init__(self, trainer: Any, *, views: tuple[str, ...] = VIEWS, interval: float = 0.2,
                 prices: dict[str, tuple[float, float]] | None = None, **kwargs: Any) -> None:
        unknown = sorted(set(views) - set(VIEWS))
        if unknown:
            raise WorkbenchError(f"unknown views {unknown}; choose from {VIEWS}")
        self.trainer = trainer
        trainer.has_dashboard = True
        self.funnel = Funnel(trainer, interval=interval, prices=prices)
        make = {"controls": ControlsView, "graph": GraphView, "review": ReviewView, "samples": SamplesView,
                "curves": CurvesView}
        for name in VIEWS:
            flex, min_width = _FLEX[name]
            setattr(self, name, make[name](self.funnel, layout=ipywidgets.Layout(flex=flex, min_width=min_width)))
        shown = [getattr(self, name) for name in VIEWS if name in views]
        layout = ipywidgets.Layout(display="flex", flex_flow="row wrap", align_items="stretch", grid_gap="10px",
                                   width="100%", overflow="visible")
        super().__init__(children=shown, layout=layout, **kwargs)
        self.add_class("wb-dashboard")
        self.funnel.on_branch = self._branch_clicked

    def all_views(self) -> list[Any]:
        return [getattr(self, name) for name in VIEWS]

    # -- branches -----------------------------------------------------------------------------------
    def branch(self, proposal_id: str | None = None, decision: str | None = None, *, at_step: int | None = None,
               start: bool = True, **settings: Any) -> Any:
        """Branch this run and show the branch here (with both curves together); what "branch from here"
        in the review history does. Arguments as `workbench.branch`. Returns the branch's trainer."""
        from .branching import branch_and_follow
        return branch_and_follow(self, proposal_id, decision, at_step=at_step, start=start, **settings)

    def _branch_clicked(self, proposal_id: str, decision: str, step: int | None = None) -> str:
        if not decision:  # "decide again from step k+1": a person answers every proposal of the branch
            from .branching import deciding_again
            return self.branch(at_step=step, approval=deciding_again(self.trainer.approval)).run_id
        return self.branch(proposal_id, decision).run_id

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

    def decide(self, proposal_id: str, action: str, text: str | None = None, *, reason: str | None = None) -> bool:
        """What the Review buttons do, from Python (`reason`: the text of the box beside them)."""
        return self.funnel.decide(proposal_id, action, text, reason=reason)[0]

    @property
    def auto_approve(self) -> bool:
        return self.funnel.state.review.auto_approve

    @auto_approve.setter
    def auto_approve(self, value: bool) -> None:
        self.funnel.set_auto_approve(value)

    def flush(self) -> None:
        """Bring every view up to date now (normally the funnel does it, throttled)."""
        self.funnel.flush()

    def close(self) -> None:
        self.funnel.close()
        for view in self.all_views():
            view.close()
        super().close()
