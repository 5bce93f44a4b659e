"""A spending limit shared by every model of a run, checked before each call is sent.

Limits that are only reported after the fact are not limits: with 16 validation samples in
flight, a check between steps lets ``max_calls=6`` spend 16. So every chat model that holds a
:class:`Budget` asks it for a reservation *before* sending a request, and settles the reservation
with the tokens the reply reported. Calls in flight count against ``max_calls`` while they run,
so the call limit is never exceeded; the token and time limits can be overshot by at most the
calls already in flight when they were reached (their cost is not known until they return).

Cache hits are free and never blocked. Usage is counted from the moment the budget is created
(or :meth:`Budget.restart` is called), not from whatever the same models did earlier.

Wiring (for the trainer)::

    budget = Budget(max_calls=cfg.max_calls, max_tokens=cfg.max_tokens, max_seconds=cfg.max_seconds)
    models.use_budget(budget)          # task, backward and optimizer share it
    teacher.budget = budget            # a single LLMClient / ScriptedModel takes it as an attribute
    ...                                # any call that would pass a limit raises BudgetExceeded
    models.use_budget(None)            # detach when the run ends
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from workbench.errors import BudgetExceeded, ConfigError


@dataclass
class Reservation:
    """One call that was allowed to go out; settle or release it exactly once."""

    budget: "Budget"
    done: bool = False

    def settle(self, prompt_tokens: int, completion_tokens: int) -> None:
        """The call was answered: charge one call and its tokens."""
        self.budget._finish(self, prompt_tokens + completion_tokens, answered=True)

    def release(self) -> None:
        """The call got no reply (it failed after retries): free its slot, charge nothing."""
        self.budget._finish(self, 0, answered=False)


class Budget:
    """Limits on calls, tokens (prompt + completion) and wall seconds. Thread safe.

    ``None`` means "no limit". :meth:`reserve` raises :class:`~workbench.errors.BudgetExceeded`
    naming the limit that would be passed.
    """

    def __init__(self, max_calls: int | None = None, max_tokens: int | None = None,
                 max_seconds: float | None = None) -> None:
        for name, value in (("max_calls", max_calls), ("max_tokens", max_tokens), ("max_seconds", max_seconds)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not value >= 0):  # NaN too: no comparison with it is ever true
                raise ConfigError(f"Budget {name} must be a non-negative number or None, not {value!r}")
        self.max_calls = max_calls
        self.max_tokens = max_tokens
        self.max_seconds = max_seconds
        self._lock = threading.Lock()
        self.restart()

    def restart(self) -> None:
        """Start counting from zero now (calls still in flight are forgotten)."""
        with self._lock:
            self.calls = 0
            self.tokens = 0
            self.in_flight = 0
            self.refused = 0
            self.started = time.monotonic()

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def check(self) -> None:
        """Raise :class:`BudgetExceeded` if one more call would pass a limit (reserves nothing)."""
        with self._lock:
            self._check_locked()

    def reserve(self) -> Reservation:
        """Permission to send one call; raises :class:`BudgetExceeded` when a limit is reached."""
        with self._lock:
            try:
                self._check_locked()
            except BudgetExceeded:
                self.refused += 1
                raise
            self.in_flight += 1
        return Reservation(self)

    def snapshot(self) -> dict:
        """Spent so far and the limits, as a plain dict (for events and summaries)."""
        with self._lock:
            return {"calls": self.calls, "tokens": self.tokens, "in_flight": self.in_flight,
                    "seconds": round(self.elapsed_s, 3), "refused": self.refused,
                    "max_calls": self.max_calls, "max_tokens": self.max_tokens, "max_seconds": self.max_seconds}

    def _check_locked(self) -> None:
        if self.max_calls is not None and self.calls + self.in_flight >= self.max_calls:
            raise BudgetExceeded(f"call budget reached: {self.calls} calls answered and {self.in_flight} in flight "
                                 f"of max_calls={self.max_calls}")
        if self.max_tokens is not None and self.tokens >= self.max_tokens:
            raise BudgetExceeded(f"token budget reached: {self.tokens} tokens of max_tokens={self.max_tokens}")
        if self.max_seconds is not None and self.elapsed_s >= self.max_seconds:
            raise BudgetExceeded(f"time budget reached: {self.elapsed_s:.1f} s of max_seconds={self.max_seconds:g}")

    def _finish(self, reservation: Reservation, tokens: int, answered: bool) -> None:
        with self._lock:
            if reservation.done:
                return
            reservation.done = True
            self.in_flight = max(0, self.in_flight - 1)
            if answered:
                self.calls += 1
                self.tokens += int(tokens)

    def __repr__(self) -> str:
        return (f"Budget(max_calls={self.max_calls}, max_tokens={self.max_tokens}, max_seconds={self.max_seconds}; "
                f"spent {self.calls} calls, {self.tokens} tokens)")


def reserve(budget: Budget | None) -> Reservation | None:
    """``budget.reserve()``, or None when there is no budget (so callers need no branch)."""
    return budget.reserve() if budget is not None else None
