"""What the person contributed to a run, folded from its event log: `open_run(...).contributions`.

One row per contribution: a decision that carried the person's words (a reject's reason, an accept's
reason, an edit with the optimizer's text beside it) and every piece of feedback (`trainer.feedback`),
accepted or refused. Each row says its step, what it was about, and whether the run used it: a
reason or an edit is used once a later optimizer call for that parameter has run (every later call
sees it); feedback once a backward pass or an optimizer call took it (`feedback_used`).

A resumed run replays the step it was killed in: decisions recorded after the checkpoint it resumed
from are dropped (the replay asks again), and feedback used in that lost step counts as pending again,
as the trainer treats it.
"""
from __future__ import annotations

from typing import Iterable

from . import events as ev
from .events import Event

CONTRIBUTION_COLUMNS = ["step", "kind", "target_kind", "parameter", "sample_id", "node_id", "proposal_id", "text",
                        "reason", "proposed", "accepted", "refused", "used", "used_at_step", "outcome", "time"]


def contribution_rows(events: Iterable[Event]) -> list[dict]:
    """The rows (see the module docstring), in the order the person gave them."""
    rows: list[dict] = []
    feedback: dict[str, dict] = {}
    proposals: dict[str, dict] = {}  # proposal id -> {"parameter", "optimizer": the optimizer's text}
    decisions: dict[str, dict] = {}  # proposal id -> its row
    for event in events:
        event = ev.with_defaults(event)
        data = event.data
        if event.type == "run_started" and data.get("resumed_from") is not None:
            _forget_after(rows, decisions, feedback, data["resumed_from"])
        elif event.type == "proposal":
            entry = proposals.setdefault(data["proposal_id"], {"parameter": data["parameter"], "optimizer": None})
            if data["source"] != "human" and entry["optimizer"] is None:
                entry["optimizer"] = data["new"]
            _mark_reasons_used(decisions, data["parameter"], data["proposal_id"], data["source"], event.step)
        elif event.type == "decision" and data.get("by") == "person" and (data.get("reason") or
                                                                         data["action"] == "edit"):
            entry = proposals.get(data["proposal_id"], {"parameter": None, "optimizer": None})
            row = _row(event, kind=data["action"], target_kind="parameter", parameter=entry["parameter"],
                       proposal_id=data["proposal_id"], text=data.get("text"), reason=data.get("reason"),
                       proposed=entry["optimizer"], accepted=True, used=False)
            decisions[data["proposal_id"]] = row
            rows.append(row)
        elif event.type == "update" and data["proposal_id"] in decisions:
            verdict = "kept: " if data["accepted"] else "not kept: "
            decisions[data["proposal_id"]]["outcome"] = verdict + data["reason"]
        elif event.type == "feedback":
            row = _row(event, kind="feedback", target_kind=data["target_kind"], parameter=data.get("parameter"),
                       sample_id=data.get("sample_id"), node_id=data.get("node_id"), text=data["text"],
                       accepted=data["accepted"], refused=data.get("reason"), used=False,
                       outcome=None if data["accepted"] else "refused")
            feedback[data["feedback_id"]] = row
            rows.append(row)
        elif event.type == "feedback_used" and data["feedback_id"] in feedback:
            row = feedback[data["feedback_id"]]
            row.update({"used": True, "used_at_step": event.step, "outcome": data.get("note") or data["used_in"]})
            if not data.get("applied", True):
                row["used"] = False
    return rows


def _row(event: Event, **values) -> dict:
    row = {c: None for c in CONTRIBUTION_COLUMNS}
    row.update(values, step=event.step, time=event.time)
    return row


def _mark_reasons_used(decisions: dict[str, dict], parameter: str, proposal_id: str, source: str, step: int) -> None:
    """An optimizer's proposal for `parameter` after a person's words on it: those words were in its prompt."""
    if source != "optimizer":
        return
    for pid, row in decisions.items():
        if pid != proposal_id and row["parameter"] == parameter and not row["used"]:
            row.update({"used": True, "used_at_step": step})


def _forget_after(rows: list[dict], decisions: dict[str, dict], feedback: dict[str, dict], step: int) -> None:
    lost = [pid for pid, row in decisions.items() if row["step"] > step]
    for pid in lost:
        rows.remove(decisions.pop(pid))
    for row in list(decisions.values()) + list(feedback.values()):
        if row["used_at_step"] is not None and row["used_at_step"] > step:
            row.update({"used": False, "used_at_step": None})
            if row["kind"] == "feedback":
                row["outcome"] = "pending again: the step that used it did not finish"
