"""A run's lifecycle: the worker thread, pause/resume/step/stop, and the gate between LLM calls.

The trainer's algorithm calls `_gate()` before each LLM call: it waits while paused, raises
`RunStopped` when asked to stop and `BudgetExceeded` once the run's budget is spent. Controls may be
called from any thread (a notebook button, a terminal, a test).

`Lifecycle` is a mixin of `workbench.trainer.Trainer`; `_init_lifecycle()` sets up its state.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import Future

from ..approval import PendingProposal
from ..errors import BudgetExceeded, RunStopped, WorkbenchError
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

    def decide(self, proposal_id: str, action: str, text: str | None = None, by: str = "person") -> bool:
        """Answer the pending proposal; False (and no effect) when `proposal_id` is not pending."""
        return self.desk.answer(proposal_id, action, text, by)

    def wait(self, timeout: float | None = None) -> RunSummary:
        if self._future is None:
            raise WorkbenchError("start() the trainer first")
        return self._future.result(timeout)

    def _gate(self) -> None:
        """Between LLM calls: wait while paused, stop when asked, stop at the budget."""
        while not self._running.wait(0.2):
            if self._stop.is_set():
                break
        if self._stop.is_set():
            raise RunStopped("stop requested")
        self._check_budget()

    def usage(self) -> dict[str, dict]:
        """This run's usage, including what was spent before a resume."""
        now = self.models.usage.snapshot()
        merged: dict[str, dict] = {}
        for role in set(now) | set(self.usage_before):
            a, b = now.get(role, {}), self.usage_before.get(role, {})
            merged[role] = {k: a.get(k, 0) + b.get(k, 0) for k in set(a) | set(b)}
        return merged

    def _check_budget(self) -> None:
        cfg = self.config
        usage = self.usage().values()
        calls = sum(u.get("calls", 0) for u in usage)
        tokens = sum(u.get("prompt_tokens", 0) + u.get("completion_tokens", 0) for u in usage)
        if cfg.max_calls is not None and calls >= cfg.max_calls:
            raise BudgetExceeded(f"call budget reached: {calls} of {cfg.max_calls}")
        if cfg.max_tokens is not None and tokens >= cfg.max_tokens:
            raise BudgetExceeded(f"token budget reached: {tokens} of {cfg.max_tokens}")
        if cfg.max_seconds is not None and time.monotonic() - self._started_at >= cfg.max_seconds:
            raise BudgetExceeded(f"time budget reached: {cfg.max_seconds:g} s")

