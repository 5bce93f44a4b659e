"""The curves view: scores per step, every proposal's outcome, cost per step per role (plotly figures
built by records/charts.py from the run's fold, `RunFold.curves`, the same data a report draws), and
the run's usage totals (`RunFold.totals`)."""
from __future__ import annotations

from typing import Any

from ...errors import WorkbenchError
from ...records.charts import CurveData, cost_spec, score_spec
from ...records.compare import compare
from ...records.events import Event
from ...records.fold import RunFold
from .base import CURVES, Part


class CurvesPart(Part):
    view = "curves"

    def __init__(self, state: Any, fold: RunFold, prices: dict[str, tuple[float, float]] | None = None) -> None:
        super().__init__(state)
        self.fold = fold                    # applied by RunState before the views: numbers come from it
        self.prices = dict(prices or {})
        self.live_usage: dict | None = None  # the trainer's usage between events (view-only)
        self.drawn = -1                      # the chart data's version the view was last marked for
        self.family: dict | None = None      # the run's family chart (records/compare.py), when it has branches
        self._family_stale = True

    @property
    def data(self) -> CurveData:
        return self.fold.curves

    def apply(self, event: Event) -> None:
        if self.data.version != self.drawn:  # the fold changed what the charts show
            self.drawn = self.data.version
            self.mark(CURVES)
        if event.type in ("run_started", "checkpoint", "run_finished"):  # a family's curves come from checkpoints
            self._family_stale = True
            self.mark(CURVES)
        if event.type in ("step_finished", "run_finished") and (event.data or {}).get("usage"):
            self.live_usage = None  # the event's usage is the newest
            self.mark(CURVES)

    def set_live_usage(self, usage: dict | None) -> None:
        """The trainer's usage right now (events carry it only at the end of a step)."""
        shown = self.live_usage if self.live_usage is not None else self.fold.usage
        if usage and usage != shown:
            self.live_usage = usage
            self.mark(CURVES)

    def totals(self) -> dict:
        return self.fold.totals(self.prices, usage=self.live_usage)

    def traits(self, parts: set[str]) -> dict[str, Any]:
        if CURVES not in parts:
            return {}
        figures = {"score": score_spec(self.data), "cost": cost_spec(self.data, self.prices)}
        family = self.family_spec()
        if family is not None:  # a run with a parent or branches
            figures["family"] = family
        return {"points": list(self.data.steps.values()), "marks": list(self.data.proposals.values()),
                "usage": self.data.usage_per_step(self.prices), "totals": self.totals(), "figures": figures}

    def family_spec(self) -> dict | None:
        """Every run of this run's tree on one chart, or None for a run without branches or parent."""
        run_dir = self.state.run.run_dir
        if self._family_stale and run_dir:
            self._family_stale = False
            try:
                family = compare(run_dir)
                self.family = family.spec() if len(family.members) > 1 else None
            except (OSError, ValueError, WorkbenchError):  # a folder being written or damaged: the next event
                self._family_stale = True
        return self.family
