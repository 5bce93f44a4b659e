"""Who decides whether a proposed prompt is tried: a policy, or a person.

The protocol is plain Python: a `PendingProposal` holds a `Future`; whoever answers it (a notebook
widget, a terminal prompt, a test thread) calls `accept()`, `reject()` or `edit(text)`. Training waits
in its worker thread, so the notebook kernel stays free to deliver the button click.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import Future, TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Callable

from ..errors import BadArgumentError, RunStopped

ACTIONS = ("accept", "reject", "edit")


@dataclass(frozen=True)
class Decision:
    action: str  # accept | reject | edit
    by: str  # policy | person | timeout
    text: str | None = None  # the person's text, for "edit"
    at: float = field(default_factory=time.time)
    reason: str | None = None  # the person's words on the value (asked on reject): later optimizer calls see them

    def to_dict(self) -> dict:
        return {"action": self.action, "by": self.by, "text": self.text, "at": self.at, "reason": self.reason}


@dataclass
class PendingProposal:
    """A proposal waiting for a decision; answer it from any thread."""

    proposal_id: str
    parameter: str
    old: str
    new: str
    minibatch_before: float | None = None
    minibatch_after: float | None = None
    future: Future = field(default_factory=Future, repr=False)

    def resolve(self, decision: Decision) -> bool:
        """Answer with `decision`; False when it was answered already (the first answer wins)."""
        if self.future.done():
            return False
        try:
            self.future.set_result(decision)
        except Exception:  # lost a race with another answer
            return False
        return True

    def accept(self, by: str = "person", *, reason: str | None = None) -> bool:
        return self.resolve(Decision("accept", by, reason=_reason(reason)))

    def reject(self, by: str = "person", *, reason: str | None = None) -> bool:
        return self.resolve(Decision("reject", by, reason=_reason(reason)))

    def edit(self, text: str, by: str = "person", *, reason: str | None = None) -> bool:
        if not isinstance(text, str) or not text.strip():
            raise BadArgumentError(f"proposal {self.proposal_id}: an edit needs non-empty text")
        return self.resolve(Decision("edit", by, text=text, reason=_reason(reason)))


def _reason(reason: object) -> str | None:
    """A person's reason as kept: stripped text, or None when there is none (an empty box)."""
    if reason is None:
        return None
    if not isinstance(reason, str):
        raise BadArgumentError(f"a reason is text, not {type(reason).__name__}")
    return reason.strip() or None


class AutoApproval:
    """Every proposal goes on to validation; validation alone decides."""

    auto = True

    def decide(self, pending: PendingProposal, stopped: Callable[[], bool] | None = None) -> Decision:
        return Decision("accept", "policy")


class HumanApproval:
    """A person decides each proposal; training waits for the answer.

    `timeout` (seconds) with `default` ("accept" or "reject") keeps an unattended run moving.
    Setting `auto = True` (the widget's auto-approve switch) makes it behave like `AutoApproval`.
    Accepted and edited proposals are still validated when `validate` is true (the default), so a
    person can veto but not slip in a regression unseen.
    """

    def __init__(self, timeout: float | None = None, default: str = "reject", validate: bool = True) -> None:
        if default not in ("accept", "reject"):
            raise BadArgumentError(f"HumanApproval default must be 'accept' or 'reject', not {default!r}")
        self.timeout, self.default, self.validate = timeout, default, validate
        self.auto = False

    def decide(self, pending: PendingProposal, stopped: Callable[[], bool] | None = None) -> Decision:
        """Block until answered; `stopped()` lets the trainer stop a run while it waits."""
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            if self.auto:
                pending.accept(by="policy")
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                pending.resolve(Decision(self.default, "timeout"))
            try:
                return pending.future.result(timeout=0.2 if remaining is None else max(0.0, min(0.2, remaining)))
            except FutureTimeout:
                if stopped is not None and stopped():
                    raise RunStopped(f"stopped while proposal {pending.proposal_id} waited for a decision")


class CallbackApproval:
    """Ask a function (a terminal prompt, a test) for each decision, synchronously."""

    def __init__(self, ask: Callable[[PendingProposal], Decision]) -> None:
        self.ask = ask
        self.auto = False

    def decide(self, pending: PendingProposal, stopped: Callable[[], bool] | None = None) -> Decision:
        return self.ask(pending)


class ApprovalDesk:
    """The one pending proposal of a run; `answer` ignores stale ids (buttons of an old proposal)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.pending: PendingProposal | None = None

    def open(self, pending: PendingProposal) -> None:
        with self._lock:
            self.pending = pending

    def close(self) -> None:
        with self._lock:
            self.pending = None

    def answer(self, proposal_id: str, action: str, text: str | None = None, by: str = "person", *,
               reason: str | None = None) -> bool:
        if action not in ACTIONS:
            raise BadArgumentError(f"unknown action {action!r}; expected one of {ACTIONS}")
        with self._lock:
            pending = self.pending
        if pending is None or pending.proposal_id != proposal_id:
            return False
        if action == "edit":
            return pending.edit(text or "", by=by, reason=reason)
        if action == "accept":
            return pending.accept(by, reason=reason)
        return pending.reject(by, reason=reason)
