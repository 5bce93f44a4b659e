"""One channel for every control of a run: pause, resume, step, stop, pin, exclude, auto-approve.

Whoever controls a run (the dashboard, the CLI, a notebook cell, a test) sends a typed `Control` to
`Trainer.control(...)`; nothing else writes the run's flags or sets from another thread. The
channel queues it, and the run's own thread applies what is queued between LLM calls (`obey()`,
and while it waits: paused, or for a person's decision), each recorded as one `control` event, so
the dashboard learns the run's state from the log like everything else. When no run is in progress
a control is applied at once, in the sender's thread (nobody else is reading the state then).

One exception, on purpose: `Stop` is applied (and recorded) at once, in the sender's thread, because
a forward pass in flight polls its flag (`stop_requested`) to stop between samples rather than after
the whole batch; it only ever sets flags, which are safe across threads.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Union

from ..errors import BadArgumentError, RunStopped
from ..records.events import ControlApplied, EventData
from .approval import AutoApproval

if TYPE_CHECKING:
    from .run_state import RunState


@dataclass(frozen=True)
class Pause:
    """Wait at the next point between LLM calls until `Resume` (or `Step`)."""


@dataclass(frozen=True)
class Resume:
    """Go on after a pause (and forget a pending `Step`'s pause)."""


@dataclass(frozen=True)
class Step:
    """Run exactly one more step, then pause (for teaching)."""


@dataclass(frozen=True)
class Stop:
    """Stop at the next point between LLM calls; the last checkpoint stays valid."""


@dataclass(frozen=True)
class Pin:
    """Always back-propagate this sample (`on=False` unpins it); pinning a sample un-excludes it."""
    sample_id: str
    on: bool = True


@dataclass(frozen=True)
class Exclude:
    """Never back-propagate this sample (`on=False` includes it again); excluding it unpins it."""
    sample_id: str
    on: bool = True


@dataclass(frozen=True)
class AutoApprove:
    """Let the approval policy accept every proposal (validation still decides), or stop doing so."""
    on: bool


Control = Union[Pause, Resume, Step, Stop, Pin, Exclude, AutoApprove]
CONTROLS = (Pause, Resume, Step, Stop, Pin, Exclude, AutoApprove)


def control_event(control: Control, *, auto_approve: bool | None = None) -> ControlApplied:
    """The `control` event that records `control` (`auto_approve`: what the policy does now)."""
    if isinstance(control, Pin):
        return ControlApplied(action="pin" if control.on else "unpin", sample_id=control.sample_id)
    if isinstance(control, Exclude):
        return ControlApplied(action="exclude" if control.on else "include", sample_id=control.sample_id)
    if isinstance(control, AutoApprove):
        return ControlApplied(action="auto_approve", on=control.on if auto_approve is None else auto_approve)
    return ControlApplied(action=type(control).__name__.lower())


class ControlChannel:
    """The queue of controls into one run, and the flags the run obeys; see the module docstring.

    `approval` is the run's approval policy (auto-approve sets its `auto`); `emit` records an event;
    `check_budget` raises `BudgetExceeded` once the run's budget is spent (obeyed like a stop).
    """

    def __init__(self, state: "RunState", approval: Any, emit: Callable[[EventData], None],
                 check_budget: Callable[[], None]) -> None:
        self._state, self._approval, self._emit, self._check_budget = state, approval, emit, check_budget
        self._queue: deque[Control] = deque()
        self._apply_lock = threading.RLock()
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._pause_after_step = False
        self._in_run = False

    # -- any thread ---------------------------------------------------------------------------------
    def send(self, control: Control) -> None:
        """Queue `control` for the run (or apply it now when no run is in progress)."""
        if not isinstance(control, CONTROLS):
            raise BadArgumentError(f"not a control: {control!r}; send one of "
                                   f"{', '.join(c.__name__ for c in CONTROLS)} (workbench.training.controls)")
        if isinstance(control, (Pin, Exclude)) and (not isinstance(control.sample_id, str) or not control.sample_id):
            raise BadArgumentError(f"{type(control).__name__} needs a sample id, got {control.sample_id!r}")
        if isinstance(control, Stop):  # at once: a forward pass in flight polls this flag
            with self._apply_lock:
                self._apply(control)
            return
        self._queue.append(control)
        if not self._in_run:
            self.apply_pending()

    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    # -- the run's thread ---------------------------------------------------------------------------
    def apply_pending(self) -> None:
        """Apply every queued control, in order, each with its `control` event."""
        with self._apply_lock:
            while self._queue:
                self._apply(self._queue.popleft())

    def _apply(self, control: Control) -> None:
        """Change the run's flags or state as `control` says, and record it."""
        if isinstance(control, Pause):
            self._running.clear()
        elif isinstance(control, Resume):
            self._pause_after_step = False
            self._running.set()
        elif isinstance(control, Step):
            self._pause_after_step = True
            self._running.set()
        elif isinstance(control, Stop):
            self._stop.set()
            self._running.set()
        elif isinstance(control, Pin):
            self._state.set_sample_flag(control.sample_id, "pin", control.on)
        elif isinstance(control, Exclude):
            self._state.set_sample_flag(control.sample_id, "exclude", control.on)
        elif isinstance(control, AutoApprove):
            if self._approval is not None and not isinstance(self._approval, AutoApproval):
                self._approval.auto = bool(control.on)  # an AutoApproval policy always approves
        self._emit(control_event(control, auto_approve=getattr(self._approval, "auto", None)))

    def obey(self) -> None:
        """Between LLM calls: apply what was sent, wait while paused, raise `RunStopped` when asked to
        stop and `BudgetExceeded` once the budget is spent."""
        self.apply_pending()
        while not self._running.wait(0.2):
            self.apply_pending()
            if self._stop.is_set():
                break
        if self._stop.is_set():
            raise RunStopped("stop requested")
        self._check_budget()

    def poll_stop(self) -> bool:
        """While the run waits (for a person's decision): apply what was sent; True once asked to stop."""
        self.apply_pending()
        return self._stop.is_set()

    def step_ended(self) -> None:
        """After each step: pause here if a `Step` asked for exactly one more (recorded as a pause)."""
        self.apply_pending()
        if self._pause_after_step:
            self._pause_after_step = False
            self._running.clear()
            self._emit(ControlApplied(action="pause"))

    def hold(self) -> None:
        """Start paused (`Trainer.start(paused=True)`): the run waits for `Resume` or `Step` before its first call."""
        self._running.clear()

    def open(self) -> None:
        """A run begins (`start()`, or `fit()` itself): from now on the run applies the queue. A run that
        was stopped may go on; a stop sent after this (even before the worker thread runs) stops it."""
        with self._apply_lock:
            if not self._in_run:
                self._in_run = True
                self._stop.clear()

    def close(self) -> None:
        """The run ended: apply what it left queued (from now on a control is applied as it is sent)."""
        with self._apply_lock:
            self._in_run = False
            self.apply_pending()
