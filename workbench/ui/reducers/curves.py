"""The curves view: scores per step, every proposal's outcome, cost per step per role (plotly figures
built by ../charts.py from the same `CurveData` a report uses), and the run's usage totals."""
from __future__ import annotations

from typing import Any

from ...records.events import Event
from ...errors import WorkbenchError
from ...records.charts import CurveData, cost_spec, score_spec
from ...records.compare import compare
from .base import CURVES, Part


class CurvesPart(Part):
    view = "curves"

    def __init__(self, state: Any, prices: dict[str, tuple[float, float]] | None = None) -> None:
        super().__init__(state)
        self.prices = dict(prices or {})
        self.data = CurveData()
        self.usage: dict = {}           # the latest cumulative usage {role: {...}}
        self.family: dict | None = None  # the run's family chart (records/compare.py), when it has branches
        self._family_stale = True

    def apply(self, event: Event) -> None:
        if self.data.apply(event):
            self.mark(CURVES)
        if event.type in ("run_started", "checkpoint", "run_finished"):  # a family's curves come from checkpoints
            self._family_stale = True
            self.mark(CURVES)
        usage = (event.data or {}).get("usage") if event.type in ("step_finished", "run_finished") else None
        if usage:
            self.usage = usage
            self.mark(CURVES)

    def set_live_usage(self, usage: dict | None) -> None:
        """The trainer's usage right now (events carry it only at the end of a step)."""
        if usage and usage != self.usage:
            self.usage = usage
            self.mark(CURVES)

    def totals(self) -> dict:
        calls = tokens = 0
        cost = 0.0 if self.prices else None
        by_role = {}
        for role, u in (self.usage or {}).items():
            if not isinstance(u, dict):
                continue
            c = int(u.get("calls", 0) or 0)
            pt, ct = int(u.get("prompt_tokens", 0) or 0), int(u.get("completion_tokens", 0) or 0)
            calls += c
            tokens += pt + ct
            role_cost = None
            if role in self.prices:
                pin, pout = self.prices[role]
                role_cost = (pt * pin + ct * pout) / 1e6
                cost = (cost or 0.0) + role_cost
            by_role[role] = {"calls": c, "prompt_tokens": pt, "completion_tokens": ct,
                             "cache_hits": int(u.get("cache_hits", 0) or 0), "cost": role_cost}
        return {"calls": calls, "tokens": tokens, "cost": cost, "by_role": by_role}

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
