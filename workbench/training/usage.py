"""What a run spent, and the one budget that limits it.

Budgets are limits, not reports: each `fit()` attaches ONE `workbench.llm.budget.Budget` to every
role (task, backward, optimizer, teacher), checked before each call is sent, so the overshoot is at
most the calls already in flight. Usage counts from this trainer's first `fit()` (plus what a resumed
run spent before), never what the same `Models` did earlier in the notebook.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..llm.budget import Budget
from ..records import usage_totals
from .paid_calls import keep_ledger
from .forecasting.forecast import budget_limits, limit

if TYPE_CHECKING:
    from .forecasting.forecast import Forecast
    from .config import TrainConfig
    from .run_state import RunState


class RunMeter:
    """The run's usage per role and its budget; `open()` / `close()` bracket each `fit()`."""

    def __init__(self, models: Any, teacher: Any, config: "TrainConfig", state: "RunState") -> None:
        self._models, self._teacher, self._config, self._state = models, teacher, config, state
        self._origin: dict[str, dict] | None = None
        self._budget: Budget | None = None
        self._stop_ledger: Callable[[], None] | None = None

    def open(self, run_dir: Path, forecast: "Forecast | None" = None) -> None:
        """At the start of each `fit()`: count usage from here, attach one budget to every role (with
        `max_cost_vs_forecast`, limited relative to this fit()'s `forecast`), and append every counted
        answer to the run's ledger (paid_calls.py: usage that survives a kill)."""
        if self._origin is None:  # the first fit(): what the same Models did before is not ours
            self._origin = self._meters()
        self._stop_ledger = keep_ledger(run_dir, self._models.usage, getattr(self._teacher, "usage", None))
        self._budget = self._new_budget(forecast)
        self._models.use_budget(self._budget)
        if self._teacher is not None:
            self._teacher.budget = self._budget

    def close(self) -> None:
        if self._stop_ledger is not None:
            self._stop_ledger()
            self._stop_ledger = None
        self._models.use_budget(None)
        if self._teacher is not None:
            self._teacher.budget = None

    def check_budget(self) -> None:
        """Between stages: stop once one more call would pass a limit (each call is checked as well)."""
        if self._budget is not None:
            self._budget.check()

    def usage(self) -> dict[str, dict]:
        """This run's usage: since this trainer's first fit(), plus what a resumed run spent before."""
        now = self._meters()
        origin = self._origin if self._origin is not None else now
        before = self._state.usage_before
        merged: dict[str, dict] = {}
        for role in set(now) | set(before):
            a, o, b = now.get(role, {}), origin.get(role, {}), before.get(role, {})
            merged[role] = {k: a.get(k, 0) - o.get(k, 0) + b.get(k, 0) for k in set(a) | set(b)}
        return merged

    def _meters(self) -> dict[str, dict]:
        """What the meters say now, per role (a teacher with its own meter counts as "teacher")."""
        now = self._models.usage.snapshot()
        teacher_meter = getattr(self._teacher, "usage", None)
        if teacher_meter is not None and teacher_meter is not self._models.usage:
            now["teacher"] = teacher_meter.total()
        return now

    def _new_budget(self, forecast: "Forecast | None" = None) -> Budget:
        """One Budget for this fit(), already charged with what the run spent before (resume, earlier fits)."""
        cfg = self._config
        budget = Budget(max_calls=cfg.max_calls, max_tokens=cfg.max_tokens, max_seconds=cfg.max_seconds)
        spent = usage_totals.totals(self.usage())
        budget.calls, budget.tokens = spent["calls"], spent["tokens"]
        if cfg.max_cost_vs_forecast is not None and forecast is not None:  # a limit relative to the forecast
            limits = budget_limits(forecast, cfg.max_cost_vs_forecast, spent)
            budget.max_calls = limit(budget.max_calls, limits["max_calls"])
            budget.max_tokens = limit(budget.max_tokens, limits["max_tokens"])
        return budget
