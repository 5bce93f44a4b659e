"""A run's lifecycle: the worker thread, pause/resume/step/stop, and obeying the controls between LLM calls.

The trainer's algorithm calls `_obey_controls()` between stages: it waits while paused, raises `RunStopped`
when asked to stop and `BudgetExceeded` once the run's budget is spent. Controls may be called from
any thread (a notebook button, a terminal, a test).

Budgets are limits, not reports: each `fit()` attaches ONE `workbench.llm.budget.Budget` to every
role (task, backward, optimizer, teacher), checked before each call is sent, so the overshoot is at
most the calls already in flight. Usage counts from this trainer's first `fit()` (plus what a resumed
run spent before), never what the same `Models` did earlier in the notebook.

`Lifecycle` is a mixin of `workbench.training.trainer.Trainer`; `_init_lifecycle()` sets up its state.
"""
from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import Future
from typing import Callable

from .approval import PendingProposal
from ..errors import RunStopped, WorkbenchError
from ..llm.budget import Budget
from .config import RunSummary


class Lifecycle:
    """Thread, controls and budget of a run; see the module docstring."""

    def _init_lifecycle(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._pause_after_step = False
        self._started_at = 0.0
        self._future: Future | None = None
        self._budget: Budget | None = None
        self._usage_origin: dict[str, dict] | None = None
        self._detach_progress: Callable[[], None] | None = None
        self.concurrency_applied: int | None = None  # what the endpoint's clients were set to

    # -- public control (any thread) ---------------------------------------------------------------
    def start(self, *, paused: bool = False) -> Future:
        """Run `fit()` in a worker thread and return at once; errors land in the returned Future."""
        if self._future is not None and not self._future.done():
            raise WorkbenchError("this trainer is already running")
        if paused:
            self._running.clear()
        self._future = Future()

        def work() -> None:
            try:
                self._future.set_result(self.fit())
            except BaseException as exc:  # reaches the caller through the Future
                self._future.set_exception(exc)
        threading.Thread(target=work, name=f"workbench-{self.run_id}", daemon=True).start()
        return self._future

    def pause(self) -> None:
        self._running.clear()
        self._emit("control", action="pause")

    def resume(self) -> None:
        self._pause_after_step = False
        self._running.set()
        self._emit("control", action="resume")

    def step_once(self) -> None:
        """Run exactly one more step, then pause (for teaching)."""
        self._pause_after_step = True
        self._running.set()
        self._emit("control", action="step")

    def stop(self) -> None:
        """Stop at the next point between LLM calls; the last checkpoint stays valid."""
        self._stop.set()
        self._running.set()
        self._emit("control", action="stop")

    @property
    def is_paused(self) -> bool:
        return not self._running.is_set()

    @property
    def is_running(self) -> bool:
        """True while a `start()`ed run has not finished."""
        return self._future is not None and not self._future.done()

    @property
    def future(self) -> Future | None:
        """The Future of the last `start()`, or None."""
        return self._future

    @property
    def pending(self) -> PendingProposal | None:
        return self.desk.pending

    def decide(self, proposal_id: str, action: str, text: str | None = None, by: str = "person", *,
               value: str | None = None, reason: str | None = None) -> bool:
        """Answer the pending proposal; False (and no effect) when `proposal_id` is not pending.

        `value` (or `text`): the person's value for "edit". `reason`: the person's words on the
        proposed value (on reject above all); every later optimizer call for the parameter sees them,
        the remaining attempts of this step included."""
        return self.desk.answer(proposal_id, action, value if value is not None else text, by, reason=reason)

    def wait(self, timeout: float | None = None) -> RunSummary:
        if self._future is None:
            raise WorkbenchError("start() the trainer first")
        return self._future.result(timeout)

    def _obey_controls(self) -> None:
        """Between LLM calls: wait while paused, stop when asked, stop at the budget."""
        while not self._running.wait(0.2):
            if self._stop.is_set():
                break
        if self._stop.is_set():
            raise RunStopped("stop requested")
        self._check_budget()

    # -- opening and closing a run: usage origin, budget, concurrency, progress -----------------------
    def _open_run(self) -> None:
        """At the start of each `fit()`: count usage from here, attach one budget to every role."""
        self._stop.clear()  # a stopped run continues when fit() is called again
        self._warn_if_epochs_end_first()
        self._started_at = time.monotonic()
        if self._usage_origin is None:  # the first fit(): what the same Models did before is not ours
            self._usage_origin = self._meter_usage()
        self._budget = self._new_budget()
        self.models.use_budget(self._budget)
        if self.teacher is not None:
            self.teacher.budget = self._budget
        if hasattr(self.models, "set_concurrency"):
            self.concurrency_applied = self.models.set_concurrency(self.config.concurrency)
        self._detach_progress = self._attach_progress()

    def _close_run(self) -> None:
        self.models.use_budget(None)
        if self.teacher is not None:
            self.teacher.budget = None
        if self._detach_progress is not None:
            self._detach_progress()
            self._detach_progress = None

    def _new_budget(self) -> Budget:
        """One Budget for this fit(), already charged with what the run spent before (resume, earlier fits)."""
        cfg = self.config
        budget = Budget(max_calls=cfg.max_calls, max_tokens=cfg.max_tokens, max_seconds=cfg.max_seconds)
        spent = spent_totals(self.usage())
        budget.calls, budget.tokens = spent["calls"], spent["tokens"]
        return budget

    def _attach_progress(self) -> Callable[[], None] | None:
        """A tqdm bar for fit() in a notebook without a dashboard (`progress=None`), or as forced."""
        wanted = self.progress
        if wanted is None:
            wanted = in_notebook() and not getattr(self, "has_dashboard", False)
        if not wanted:
            return None
        from ..records.progress import attach_progress
        return attach_progress(self, mode="bar")

    # -- usage and budget ---------------------------------------------------------------------------
    def _meter_usage(self) -> dict[str, dict]:
        """What the meters say now, per role (a teacher with its own meter counts as "teacher")."""
        now = self.models.usage.snapshot()
        teacher_meter = getattr(self.teacher, "usage", None)
        if teacher_meter is not None and teacher_meter is not self.models.usage:
            now["teacher"] = teacher_meter.total()
        return now

    def usage(self) -> dict[str, dict]:
        """This run's usage: since this trainer's first fit(), plus what a resumed run spent before."""
        now = self._meter_usage()
        origin = self._usage_origin if self._usage_origin is not None else now
        merged: dict[str, dict] = {}
        for role in set(now) | set(self.usage_before):
            a, o, b = now.get(role, {}), origin.get(role, {}), self.usage_before.get(role, {})
            merged[role] = {k: a.get(k, 0) - o.get(k, 0) + b.get(k, 0) for k in set(a) | set(b)}
        return merged

    def _check_budget(self) -> None:
        """Between stages: stop once one more call would pass a limit (each call is checked as well)."""
        if self._budget is not None:
            self._budget.check()


def spent_totals(usage: dict[str, dict]) -> dict[str, int]:
    """Calls and tokens (prompt + completion) summed over roles."""
    return {"calls": sum(u.get("calls", 0) for u in usage.values()),
            "tokens": sum(u.get("prompt_tokens", 0) + u.get("completion_tokens", 0) for u in usage.values())}


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where a tqdm.auto bar is a widget)."""
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    return bool(get and type(get()).__name__ == "ZMQInteractiveShell")
