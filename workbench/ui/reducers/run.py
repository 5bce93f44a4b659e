"""The run as a whole (the controls view): id, folder, status, step, phase, messages, parameters."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

from ...records.events import Event
from ...records.fold import RunFold
from ...records.forecast_frames import forecast_line
from .base import CONTROLS, PANEL, REVIEW, STATUS, Part, clip

# Messages that describe a control in progress; they mean nothing once the run has ended.
TRANSIENT = ("started", "paused: ", "resumed", "stopping after the current call", "running one step")


class RunPart(Part):
    view = "controls"

    def __init__(self, state: Any, fold: RunFold) -> None:
        super().__init__(state)
        self.fold = fold              # applied before this view: the run's numbers come from it
        self.run_id = ""
        self.run_dir = ""
        self.status = "idle"          # idle | starting | running | paused | stopping | finished
        self.finish_status = ""       # completed | stopped | budget | plateau | failed
        self.finished: dict = {}
        self.error = ""               # the exception that ended the run, if any (shown once)
        self.waiting = ""             # the proposal a person is asked to decide, while the run waits
        self.step = 0
        self.epoch = 0
        self.phase = ""
        self.splits: dict = {}
        self.message = ""
        self.message_step = 0         # the step a message from an event is about (0: a control's message)
        self.parameters: "OrderedDict[str, dict]" = OrderedDict()

    # -- what a person sees ------------------------------------------------------------------------
    def shown_status(self) -> str:
        """`waiting` (for you) while the run waits for a person's decision; else the run's status."""
        return "waiting" if self.status == "running" and self.waiting else self.status

    def caption(self, with_status: bool = True) -> str:
        """What the run is doing now; `with_status=False` where a badge already shows the status."""
        status = self.shown_status()
        bits = [f"finished ({self.finish_status})" if status == "finished" else
                "waiting for you" if status == "waiting" else status] if with_status else []
        if self.step:
            bits.append(f"step {self.step}")
        if self.phase and status != "finished":
            bits.append(self.phase)
        return " · ".join(bits)

    def say(self, message: str, step: int = 0) -> None:
        self.message, self.message_step = message, step
        self.mark(CONTROLS)

    def summary(self) -> dict:
        summary = dict(self.finished)
        if self.error and not summary.get("error"):
            summary.update(status=summary.get("status") or "failed", error=self.error)
        return summary

    def parameter(self, name: str) -> dict:
        return self.parameters.setdefault(name, {"name": name, "value": "", "role": "", "trainable": True,
                                                 "description": ""})

    def finish(self, status: str = "", error: str = "") -> None:
        """The run ended (its last event, or its thread's end when that event never came)."""
        if self.status != "finished":
            self.status = "finished"
            self.finish_status = self.finish_status or status
        if error:
            self.error = error
        self.waiting = ""
        if self.message.startswith(TRANSIENT):
            self.message = ""
        self.phase = f"finished: {self.finish_status}"
        self.mark(CONTROLS, REVIEW, STATUS)

    # -- events ----------------------------------------------------------------------------------
    def _on_run_started(self, e: Event, d: dict) -> None:
        self.run_id = d.get("run_id") or e.run_id
        self.status = "running"
        self.finish_status, self.finished, self.error, self.waiting = "", {}, "", ""
        self.splits = d.get("splits") or {}
        self.step = e.step
        for p in d.get("parameters") or []:
            self.parameters[p["name"]] = {"name": p["name"], "value": p.get("value", ""), "role": p.get("role", ""),
                                          "trainable": p.get("trainable", True),
                                          "description": p.get("description", "")}
        self.phase = "resumed from step %s" % d["resumed_from"] if d.get("resumed_from") else "started"
        self.mark(CONTROLS, REVIEW, PANEL)

    def _on_control(self, e: Event, d: dict) -> None:
        """The run applied a pause, resume, step or stop (the only way the view learns the run's status)."""
        status = {"pause": "paused", "resume": "running", "step": "running", "stop": "stopping"}.get(d.get("action"))
        if status is None or self.status == "finished":
            return
        if status == "running" and self.status in ("idle", "starting"):
            return  # a step sent before the run started: run_started says when it runs
        self.status = status
        self.mark(CONTROLS)

    def _on_node(self, e: Event, d: dict) -> None:
        split = d.get("split", "")
        self.phase = f"forward · {split}" if split else "forward"

    def _on_step_started(self, e: Event, d: dict) -> None:
        self.step, self.epoch = e.step, self.fold.epoch
        if self.message_step and self.message_step < e.step:  # an earlier step's news is not the run's now
            self.say("")
        self.phase = "forward · train"
        self.mark(CONTROLS)

    def _on_selection(self, e: Event, d: dict) -> None:
        self.phase = "backward"
        self.mark(CONTROLS)

    def _on_backward_done(self, e: Event, d: dict) -> None:
        self.phase = "proposing"
        self.mark(CONTROLS)

    def _on_proposal(self, e: Event, d: dict) -> None:
        self.phase = f"proposal for {d.get('parameter', '')}: checking it on the minibatch"
        self.mark(CONTROLS)

    def _on_eval(self, e: Event, d: dict) -> None:
        if d.get("split") == "val" and d.get("proposal_id"):
            self.phase = "validating proposal"
            self.mark(CONTROLS)

    def _on_approval_requested(self, e: Event, d: dict) -> None:
        self.waiting = d.get("proposal_id", "")
        self.phase = f"your decision on {d.get('parameter') or self.waiting}"
        self.mark(CONTROLS)

    def _on_decision(self, e: Event, d: dict) -> None:
        if self.waiting == d.get("proposal_id", ""):
            self.waiting = ""
        self.phase = "validating" if d.get("action", "") != "reject" else "reverting"
        self.mark(CONTROLS)

    def _on_update(self, e: Event, d: dict) -> None:
        name = d.get("parameter")
        if name and d.get("value") is not None:
            self.parameter(name)["value"] = d["value"]
        if self.waiting == d.get("proposal_id", ""):
            self.waiting = ""
        self.mark(PANEL, REVIEW, CONTROLS)

    def _on_no_proposal(self, e: Event, d: dict) -> None:
        """Say so when the optimizer gave nothing usable (tiny base models echo their prompt), or the
        parameter got no feedback this step (source "feedback")."""
        self.say(clip(f"step {e.step}: no proposal for {d.get('parameter', '?')}: {d.get('reason', '')}", 300), e.step)

    def _on_skipped(self, e: Event, d: dict) -> None:
        about = d.get("parameter") or (f"the value of {d['node_id']}" if d.get("node_id") else "a call")
        self.say(clip(f"step {e.step}: {d.get('stage', '?')} skipped for {about}: "
                      f"{d.get('error', '')}", 300), e.step)

    def _on_forecast(self, e: Event, d: dict) -> None:
        self.mark(CONTROLS)

    def _on_forecast_revised(self, e: Event, d: dict) -> None:  # the header's spend against the newest estimate
        self.mark(CONTROLS)

    def _on_step_finished(self, e: Event, d: dict) -> None:
        self.phase = f"step {e.step} finished"
        self.mark(CONTROLS)

    def forecast_line(self) -> str:
        """The header's forecast line (the fold's), with what was spent against it at the last finished step."""
        forecast = self.fold.forecast
        if not forecast:
            return ""
        spent = self.fold.spent_vs_forecast(self.fold.usage or forecast.get("spent"))
        return forecast_line(forecast) + (f" · spent {spent}" if spent else "")

    def _on_run_finished(self, e: Event, d: dict) -> None:
        fold = self.fold
        self.finish_status = fold.status
        self.finished = {"status": fold.status, "baseline": fold.baseline, "final": fold.final,
                         "best_val": fold.best_val, "best_step": fold.best_step,
                         "error": (fold.finished or {}).get("error"), "run_dir": (fold.finished or {}).get("run_dir")}
        self.run_dir = d.get("run_dir") or self.run_dir
        self.finish(self.finish_status)

    # -- the view -----------------------------------------------------------------------------------
    def traits(self, parts: set[str]) -> dict[str, Any]:
        if not parts & {CONTROLS, REVIEW, STATUS}:
            return {}
        return {"status": self.shown_status(), "step": self.step, "epoch": self.epoch, "detail": self.caption(with_status=False),
                "run_id": self.run_id, "run_dir": self.run_dir, "summary": self.summary(),
                "message": self.message, "forecast": self.forecast_line()}
