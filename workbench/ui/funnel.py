"""The one object between the trainer and the widgets.

Kernel -> browser: the trainer's worker thread emits events on `trainer.bus`; the funnel's
subscriber only appends them to a queue (never blocks training). The funnel's own thread wakes on
new events, folds them into a `RunState`, and pushes what changed to the attached views, at most
once per `interval` seconds (coalescing: a burst of 1000 node events is one push).

Browser -> kernel: views forward the person's messages to `Funnel.handle`, which answers a pending
proposal (`trainer.decide`) or sends a control into the run (`trainer.control(Pause())`, `Pin(...)`,
`AutoApprove(...)`, workbench.training.controls). The run records each control it applies as a
`control` event, and the views learn the run's status, pins and auto-approve from those events; a
person's own click is shown at once (the event then says the same).
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import WorkbenchError
from ..records.branch_contributions import inherited
from ..records.events import Event, EventBus
from ..records.family import branch_record
from ..redact import redact_obj, secrets_known
from ..training.controls import AutoApprove, Exclude, Pause, Pin, Resume, Step, Stop
from .reducers import ALL_PARTS, CONTROLS, PANEL, REVIEW, SAMPLES
from .state import RunState
from .teaching import decision_reason, send_feedback

if TYPE_CHECKING:
    from .widgets import View

log = logging.getLogger(__name__)

DECIDE_ACTIONS = ("accept", "reject", "edit")
CONTROL_ACTIONS = ("start", "pause", "resume", "stop", "step", "export")


def _default_svg(layout: dict) -> str:
    from ..engine.graph import render_svg
    return render_svg(layout)


class Funnel:
    """Subscribe to a trainer's events and keep any number of views up to date, throttled.

    `prices` ({role: (USD per 1M prompt tokens, USD per 1M completion tokens)}) enables the cost
    estimate; they are the dashboard's (`Workbench(trainer, prices=...)`), not the trainer's."""

    def __init__(self, trainer: Any = None, *, bus: EventBus | None = None, interval: float = 0.2,
                 prices: dict[str, tuple[float, float]] | None = None,
                 svg_renderer: Callable[[dict], str] | None = None, threaded: bool = True) -> None:
        if bus is None and trainer is None:
            raise WorkbenchError("Funnel needs a trainer or an event bus")
        self.trainer = trainer
        self.bus = bus if bus is not None else trainer.bus
        self.state = RunState(prices, svg_renderer or _default_svg)
        self.interval = interval
        self.views: list["View"] = []
        self.pushes = 0                      # how many throttled pushes happened (tests, diagnostics)
        self.future: Any = None              # trainer.start()'s Future, once started here
        self.on_branch: Callable[[str, str, int | None], str] | None = None  # "branch from here" (ui/branching.py)
        self._queue: deque[Event] = deque()
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._closed = False
        if trainer is not None:
            self._read_trainer()
        self._unsubscribe = self.bus.subscribe(self._on_event)
        self._thread: threading.Thread | None = None
        if threaded:
            self._thread = threading.Thread(target=self._loop, name="workbench-ui-funnel", daemon=True)
            self._thread.start()

    # -- initial state ----------------------------------------------------------------------------
    def _read_trainer(self) -> None:
        tr, st = self.trainer, self.state
        pipeline = getattr(tr, "pipeline", None)
        if pipeline is not None:
            for p in pipeline.parameters():
                st.run.parameters[p.name] = {"name": p.name, "value": p.value,
                                             "role": getattr(p.role, "value", p.role), "trainable": p.trainable,
                                             "description": p.description}
        st.samples.pinned = set(getattr(tr, "pinned", set()) or set())
        st.samples.excluded = set(getattr(tr, "excluded", set()) or set())
        st.review.auto_approve = bool(getattr(getattr(tr, "approval", None), "auto", True))
        inbox = getattr(getattr(tr, "teaching", None), "inbox", None)  # a resumed run's feedback, queued or used
        if inbox is not None:
            st.person.restore(item.to_dict() for item in inbox.items())
        st.run.run_id = str(getattr(tr, "run_id", "") or "")
        store_path = getattr(getattr(tr, "store", None), "path", None)  # the run folder
        if store_path and branch_record(store_path) is not None:  # what the branch's optimizer still reads
            carried = inherited(store_path)
            st.fold.contributions.inherit(carried)
            st.person.inherit(carried)
        st.run.run_dir = str(store_path) if store_path else ""

    @property
    def human_approval(self) -> bool:
        """True when a person may decide (the policy can wait for a button)."""
        approval = getattr(self.trainer, "approval", None)
        if approval is None:
            return self.trainer is None
        from ..training.approval import AutoApproval
        return not isinstance(approval, AutoApproval)

    # -- views ------------------------------------------------------------------------------------
    def attach(self, view: "View") -> None:
        with self._lock:
            if view not in self.views:
                self.views.append(view)
            self._push_view(view, set(ALL_PARTS))

    def detach(self, view: "View") -> None:
        with self._lock:
            if view in self.views:
                self.views.remove(view)

    # -- events in --------------------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        """Called in the trainer's thread: O(1), never blocks on the UI."""
        self._queue.append(event)
        self._wake.set()

    def _loop(self) -> None:
        while not self._closed:
            woke = self._wake.wait(timeout=1.0)
            if self._closed:
                break
            self._wake.clear()
            try:
                if woke:
                    self.flush()
            except Exception:  # a broken view must not stop the updates of the others
                log.exception("workbench dashboard update failed")
            if woke:
                time.sleep(self.interval)  # the throttle: at most one push per interval

    def running(self) -> bool:
        """Whether the trainer's worker thread is alive (started here or by `trainer.start()`)."""
        future = self.future if self.future is not None else getattr(self.trainer, "future", None)
        return future is not None and not future.done()

    def flush(self) -> None:
        """Apply every queued event and push the changes now (tests call this directly)."""
        with self._lock:
            while self._queue:
                event = self._queue.popleft()
                try:
                    self.state.apply(event)
                except Exception:
                    log.exception("workbench dashboard could not apply event %s", event.type)
            self._push()

    def _push(self) -> None:
        if self.running():
            usage = getattr(self.trainer, "usage", None)
            if callable(usage):
                try:
                    self.state.curves.set_live_usage(usage())
                except Exception:  # usage is a nicety; never let it stop an update
                    log.debug("could not read the trainer's usage", exc_info=True)
        parts = set(self.state.dirty)
        self.state.dirty.clear()
        if not parts:
            return
        self.pushes += 1
        for view in list(self.views):
            try:
                self._push_view(view, parts)
            except Exception:
                log.exception("workbench dashboard could not update the %s view", view.kind)

    # -- what each view shows -------------------------------------------------------------------------
    def _push_view(self, view: "View", parts: set[str]) -> None:
        values = self.state.traits(view.kind, parts)
        if view.kind == "review" and REVIEW in parts:
            values["can_decide"] = self.human_approval
        if secrets_known():  # an endpoint may echo a key inside an error, a reply or a prompt
            values = redact_obj(values)
        _set(view, values)

    def push_now(self, *parts: str) -> None:
        """Mark parts dirty and push at once (answers to a click should not wait for the throttle)."""
        with self._lock:
            self.state.dirty |= set(parts)
            self._push()

    # -- browser -> kernel ------------------------------------------------------------------------------
    def handle(self, view: "View", msg: dict) -> None:
        """One message from a view in the browser. Unknown or malformed messages are ignored."""
        kind = msg.get("type")
        try:
            if kind == "select_node":
                self.select(node_id=str(msg.get("node_id") or ""))
            elif kind == "select_sample":
                self.select(sample_id=str(msg.get("sample_id") or ""))
            elif kind in ("pin", "exclude"):
                self.set_sample_flag(str(msg.get("sample_id") or ""), kind, bool(msg.get("value")))
            elif kind == "decide":
                ok, reason = self.decide(str(msg.get("proposal_id") or ""), str(msg.get("action") or ""),
                                         msg.get("text"), reason=decision_reason(msg))
                view.reply(type="decision_result", proposal_id=msg.get("proposal_id"), action=msg.get("action"),
                           ok=ok, reason=reason)
            elif kind == "feedback":  # a person's feedback (issue 16): answered ok / refused with why
                view.reply(**send_feedback(self.trainer, msg))
            elif kind == "branch":
                step = msg.get("step")
                ok, reason = self.request_branch(str(msg.get("proposal_id") or ""), str(msg.get("decision") or ""),
                                                 step if isinstance(step, int) and not isinstance(step, bool) else None)
                view.reply(type="branch_result", proposal_id=msg.get("proposal_id"), ok=ok, reason=reason)
            elif kind == "auto":
                self.set_auto_approve(bool(msg.get("value")))
            elif kind == "control":
                self.control(str(msg.get("action") or ""), path=msg.get("path"), fmt=msg.get("format"))
            else:
                log.debug("ignored message from the %s view: %r", view.kind, msg)
        except Exception as exc:  # report to the person, never crash the kernel's comm handler
            log.exception("handling %r from the %s view failed", kind, view.kind)
            with self._lock:
                self.state.run.say(f"{kind} failed: {type(exc).__name__}: {exc}")
            self.push_now(CONTROLS)

    def select(self, *, node_id: str | None = None, sample_id: str | None = None) -> None:
        with self._lock:
            if node_id is not None:
                self.state.graph.selected_node = node_id
            if sample_id is not None:
                self.state.samples.pick(sample_id)
            self.push_now(PANEL, SAMPLES)

    def set_sample_flag(self, sample_id: str, flag: str, value: bool) -> None:
        """Pin a sample into, or exclude it from, backward in the next steps (a control into the run)."""
        if not sample_id:
            return
        with self._lock:
            self.state.samples.set_flag(sample_id, flag, value)  # shown at once; the run's event agrees
        if self.trainer is not None:
            self.trainer.control(Pin(sample_id, value) if flag == "pin" else Exclude(sample_id, value))
        self.flush()

    def decide(self, proposal_id: str, action: str, text: Any = None, *, reason: str | None = None) -> tuple[bool, str]:
        """Answer the pending proposal (with the person's `reason`, if any). False (with why) for a
        stale or unknown proposal id."""
        if action not in DECIDE_ACTIONS:
            return False, f"unknown action {action!r}"
        if action == "edit" and (not isinstance(text, str) or not text.strip()):
            return False, "an edit needs non-empty text"
        if self.trainer is None:
            return False, "no trainer"
        why = {"reason": reason} if reason else {}  # a trainer without reasons still takes a plain decision
        ok = bool(self.trainer.decide(proposal_id, action, text=text if action == "edit" else None, by="person", **why))
        if not ok:
            return False, f"proposal {proposal_id} is no longer waiting for a decision"
        return True, ""

    def request_branch(self, proposal_id: str, decision: str, step: int | None = None) -> tuple[bool, str]:
        """A branch that takes `decision` on `proposal_id`, or (no decision) one from after `step` where a
        person decides again; (False, why) when it cannot be made."""
        if self.on_branch is None:
            return False, "branching needs the dashboard (Workbench) that shows this run"
        try:
            return True, f"branch {self.on_branch(proposal_id, decision, step)} started"
        except WorkbenchError as exc:
            return False, str(exc)

    def set_auto_approve(self, value: bool) -> None:
        """Switch the approval policy's auto-approve (a control into the run; a person decides only when
        the policy can wait for one)."""
        with self._lock:
            self.state.review.auto_approve = bool(value) if self.human_approval else True
            self.state.review.mark(REVIEW)
        if self.trainer is not None and self.human_approval:
            self.trainer.control(AutoApprove(bool(value)))
        self.flush()

    def control(self, action: str, *, path: Any = None, fmt: Any = None) -> None:
        if action not in CONTROL_ACTIONS:
            raise WorkbenchError(f"unknown control {action!r}; choose from {', '.join(CONTROL_ACTIONS)}")
        tr = self.trainer
        if tr is None:
            raise WorkbenchError("no trainer to control: this funnel only follows an event bus")
        st = self.state.run
        message = ""
        if st.status == "finished" and action in ("pause", "resume", "stop", "step"):
            message = f"the run has finished ({st.finish_status}); nothing to {action}"
        elif action == "start":
            if self.running():
                message = "already running"
            else:
                with self._lock:
                    st.status, st.message = "starting", ""
                    self.push_now(CONTROLS)
                self.future = tr.start()
                self.future.add_done_callback(self._run_ended)
                message = "started"
        elif action == "pause":
            tr.control(Pause())
            message = "paused: the run stops at the next safe point"
        elif action == "resume":
            tr.control(Resume())
            message = "resumed"
        elif action == "stop":
            tr.control(Stop())
            message = "stopping after the current call"
        elif action == "step":
            running = self.running()
            tr.control(Step())  # run one more step, then pause
            if not running:
                with self._lock:
                    st.status = "starting"
                self.future = tr.start()
                self.future.add_done_callback(self._run_ended)
            message = "running one step, then pausing"
        elif action == "export":
            message = self.export(path or "tuned_prompts.json", fmt or "json")
        with self._lock:
            st.message = message
            st.mark(CONTROLS)
        self.flush()  # the control events the trainer emitted already

    def _run_ended(self, future: Any) -> None:
        """The worker thread ended. Its error is shown once, in the summary (with the run's last
        event's, if that came), never again as a message."""
        exc = future.exception() if not future.cancelled() else None
        with self._lock:
            self.state.run.finish("failed" if exc else "stopped", f"{type(exc).__name__}: {exc}" if exc else "")
        self._wake.set()

    def export(self, path: str, fmt: str) -> str:
        from ..records.export import export_prompts  # imported late: the engine's export module
        target = Path(path).expanduser()
        written = export_prompts(self.trainer, target, fmt)
        return f"exported the tuned prompts to {written or target}"

    # -- lifetime ------------------------------------------------------------------------------------
    def close(self) -> None:
        self._closed = True
        self._unsubscribe()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)


def _set(view: Any, values: dict[str, Any]) -> None:
    """Set only the traits that changed, in one message."""
    changed = {k: v for k, v in values.items() if getattr(view, k) != v}
    if not changed:
        return
    with view.hold_sync():
        for k, v in changed.items():
            setattr(view, k, v)
