"""What the person contributed to a run, folded from its event log: `open_run(...).contributions`.

`Contributions` is part of the one fold (`records.fold.RunFold.contributions`), applied event by event.

One row per contribution: a decision that carried the person's words (a reject's reason, an accept's
reason, an edit with the optimizer's text beside it) and every piece of feedback (`trainer.feedback`),
accepted or refused. Each row says its step, what it was about, and whether the run used it: a
reason or an edit is used once a later optimizer call for that parameter has run (every later call
sees it); feedback once a backward pass or an optimizer call took it (`feedback_used`).

A resumed run replays the step it was killed in: decisions recorded after the checkpoint it resumed
from are dropped (the replay asks again), and feedback used in that lost step counts as pending again,
as the trainer treats it.

A branch starts with what its parent's person gave up to the branch point (the optimizer's memory and the
pending feedback are in the checkpoint it starts from): those rows come first, `from_run` naming the run
they were given in (records/branch_contributions.py); the branch's own rows have none.
"""
from __future__ import annotations

from .events import Event

CONTRIBUTION_COLUMNS = ["step", "kind", "target_kind", "parameter", "sample_id", "node_id", "proposal_id", "text",
                        "reason", "proposed", "accepted", "refused", "used", "used_at_step", "outcome", "from_run", "time"]
CONTRIBUTION_TYPES = frozenset({"run_started", "proposal", "decision", "update", "feedback", "feedback_used"})


class Contributions:
    """The person's contributions as the event log tells them so far, one event at a time
    (`records.fold.RunFold` applies it to the events of `CONTRIBUTION_TYPES`)."""

    def __init__(self) -> None:
        self.rows: list[dict] = []  # in the order the person gave them
        self._feedback: dict[str, dict] = {}  # feedback id -> its row
        self._proposals: dict[str, dict] = {}  # proposal id -> {"parameter", "optimizer": the optimizer's text}
        self._decisions: dict[str, dict] = {}  # proposal id -> its row

    def apply(self, event: Event) -> None:
        data = event.data
        if event.type == "run_started" and data.get("resumed_from") is not None:
            self._forget_after(data["resumed_from"])
        elif event.type == "proposal":
            entry = self._proposals.setdefault(data["proposal_id"], {"parameter": data["parameter"], "optimizer": None})
            if data["source"] != "human" and entry["optimizer"] is None:
                entry["optimizer"] = data["new"]
            self._mark_reasons_used(data["parameter"], data["proposal_id"], data["source"], event.step)
        elif event.type == "decision" and data.get("by") == "person" and (data.get("reason") or
                                                                         data["action"] == "edit"):
            entry = self._proposals.get(data["proposal_id"], {"parameter": None, "optimizer": None})
            row = _row(event, kind=data["action"], target_kind="parameter", parameter=entry["parameter"],
                       proposal_id=data["proposal_id"], text=data.get("text"), reason=data.get("reason"),
                       proposed=entry["optimizer"], accepted=True, used=False)
            self._decisions[data["proposal_id"]] = row
            self.rows.append(row)
        elif event.type == "update" and data["proposal_id"] in self._decisions:
            verdict = "kept: " if data["accepted"] else "not kept: "
            self._decisions[data["proposal_id"]]["outcome"] = verdict + data["reason"]
        elif event.type == "feedback":
            row = _row(event, kind="feedback", target_kind=data["target_kind"], parameter=data.get("parameter"),
                       sample_id=data.get("sample_id"), node_id=data.get("node_id"), text=data["text"],
                       accepted=data["accepted"], refused=data.get("reason"), used=False,
                       outcome=None if data["accepted"] else "refused")
            self._feedback[data["feedback_id"]] = row
            self.rows.append(row)
        elif event.type == "feedback_used" and data["feedback_id"] in self._feedback:
            applied = data.get("applied", True)
            self._feedback[data["feedback_id"]].update({"used": applied, "used_at_step": event.step,
                                                        "outcome": data.get("note") or data["used_in"]})

    def feedback_rows(self) -> dict[str, dict]:
        """Feedback id -> its row (a live reader matches them with the feedback it already shows)."""
        return dict(self._feedback)

    def inherit(self, carried: "Contributions") -> None:
        """Put what a branch inherits (`branch_contributions.inherited`) before this fold's own rows, so its
        own `feedback_used` events go on to mark the inherited feedback, as `contributions_of` reads them."""
        self.rows[:0] = carried.rows
        self._feedback = {**carried._feedback, **self._feedback}
        self._decisions = {**carried._decisions, **self._decisions}
        self._proposals = {**carried._proposals, **self._proposals}

    def given_in(self, run_id: str) -> "Contributions":
        """These contributions as a branch inherits them: each row not already marked names `run_id`."""
        for row in self.rows:
            row["from_run"] = row["from_run"] or run_id
        return self

    def _mark_reasons_used(self, parameter: str, proposal_id: str, source: str, step: int) -> None:
        """An optimizer's proposal for `parameter` after a person's words on it: those words were in its prompt."""
        if source != "optimizer":
            return
        for pid, row in self._decisions.items():
            if pid != proposal_id and row["parameter"] == parameter and not row["used"]:
                row.update({"used": True, "used_at_step": step})

    def _forget_after(self, step: int) -> None:
        for pid in [pid for pid, row in self._decisions.items() if row["step"] > step]:
            self.rows.remove(self._decisions.pop(pid))  # the replayed step asks again
        for row in list(self._decisions.values()) + list(self._feedback.values()):
            if row["used_at_step"] is not None and row["used_at_step"] > step:
                row.update({"used": False, "used_at_step": None})
                if row["kind"] == "feedback":
                    row["outcome"] = "pending again: the step that used it did not finish"


def _row(event: Event, **values) -> dict:
    row = {c: None for c in CONTRIBUTION_COLUMNS}
    row.update(values, step=event.step, time=event.time)
    return row
