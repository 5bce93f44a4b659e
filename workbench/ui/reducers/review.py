"""The review view: the proposal waiting for a person (full texts, word diff), what is happening to
the proposal in flight, the decision history, and the parameters with why nothing was proposed."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

from ...optim.paired_bootstrap import gain_text
from ...records.events import Event
from ...records.diff import word_diff
from .base import REVIEW, Part, clip

MAX_HISTORY = 400        # proposals kept in the review history
DIFF_IN_HISTORY = 40     # the newest proposals whose diff and feedback are sent with the history
NOTES_PER_PARAMETER = 3  # the latest notes (no proposal, skipped, disconnected) kept per parameter

# where a proposal is, until it is kept or reverted
CHECKING, WAITING, VALIDATING = "checking on the minibatch", "waiting for you", "validating"
IN_FLIGHT = (CHECKING, "passed the minibatch", WAITING, VALIDATING)


def joined(values: dict[str, tuple[str, str]]) -> dict[str, str]:
    """parameter / old / new of a proposal; several parameters (a joint proposal) read as the
    trainer shows them to a person: `[name]` then the value, one block per parameter."""
    if len(values) == 1:
        (name, (old, new)), = values.items()
        return {"parameter": name, "old": old, "new": new}
    return {"parameter": "+".join(values),
            "old": "\n\n".join(f"[{n}]\n{old}" for n, (old, _) in values.items()),
            "new": "\n\n".join(f"[{n}]\n{new}" for n, (_, new) in values.items())}


class ReviewPart(Part):
    view = "review"

    def __init__(self, state: Any) -> None:
        super().__init__(state)
        self.proposals: "OrderedDict[str, dict]" = OrderedDict()
        self.pending_id = ""
        self.auto_approve = False
        self.notes: dict[str, list[dict]] = {}   # parameter -> [{step, kind, text}]

    def _proposal(self, pid: str, step: int) -> dict:
        p = self.proposals.get(pid)
        if p is None:
            p = {"proposal_id": pid, "step": step, "parameter": "", "role": "", "old": "", "new": "", "edited": "",
                 "source": "", "gradient_summary": "", "minibatch_before": None, "minibatch_after": None,
                 "minibatch_passed": None, "validation": None, "best": None, "gain": "", "action": "", "by": "", "text": "",
                 "accepted": None, "reason": "", "status": CHECKING, "value": "",
                 "decision_reason": ""}
            self.proposals[pid] = p
            while len(self.proposals) > MAX_HISTORY:
                self.proposals.popitem(last=False)
        return p

    def _note(self, parameter: str, step: int, kind: str, text: str) -> None:
        # a joint group's note ("a+b") belongs to each of its parameters
        known = self.state.run.parameters
        text = clip(text, 600)
        for name in [parameter] if parameter in known or "+" not in parameter else parameter.split("+"):
            notes = self.notes.setdefault(name, [])
            same = next((n for n in notes if (n["step"], n["kind"], n["base"]) == (step, kind, text)), None)
            if same is not None:  # a base model's empty reply is retried: one note says how many times
                same["times"] += 1
                same["text"] = f"{text} ({same['times']} attempts)"
                continue
            notes.append({"step": step, "kind": kind, "text": text, "base": text, "times": 1})
            del notes[:-NOTES_PER_PARAMETER]
        self.mark(REVIEW)

    # -- events ----------------------------------------------------------------------------------
    def _on_control(self, e: Event, d: dict) -> None:
        if d.get("action") == "auto_approve" and d.get("on") is not None:
            self.auto_approve = bool(d["on"])
            self.mark(REVIEW)

    def _on_proposal(self, e: Event, d: dict) -> None:
        p = self._proposal(d.get("proposal_id", ""), e.step)
        if p["action"] == "edit":  # the person's edit, re-announced as a human proposal: keep both texts
            p["edited"] = d.get("new") or ""
            p["status"] = CHECKING
        else:  # full texts: the edit box must start from the whole proposal, never a clipped one
            values = p.setdefault("values", {})  # a joint proposal announces each of its parameters
            values[d.get("parameter", "")] = (d.get("old") or "", d.get("new") or "")
            # why nothing was proposed in an earlier step no longer holds: something is proposed now
            notes = self.notes.get(d.get("parameter", ""), [])
            notes[:] = [n for n in notes if n["step"] >= e.step]
            p.update({"step": e.step, "role": d.get("role", ""), "source": d.get("source", ""),
                      "group": d.get("group"), "gradient_summary": clip(d.get("gradient_summary")),
                      "status": CHECKING}, **joined(values))
        self.mark(REVIEW)

    def _on_minibatch(self, e: Event, d: dict) -> None:
        p = self._proposal(d.get("proposal_id", ""), e.step)
        p.update({"minibatch_before": d.get("before"), "minibatch_after": d.get("after"),
                  "minibatch_passed": d.get("passed")})
        if not d.get("passed"):
            p["status"] = "failed the minibatch"
        else:  # a person's edit is checked after the decision: validation comes next
            p["status"] = VALIDATING if p["action"] else "passed the minibatch"
        self.mark(REVIEW)

    def _on_approval_requested(self, e: Event, d: dict) -> None:
        pid = d.get("proposal_id", "")
        p = self._proposal(pid, e.step)
        for key in ("parameter", "old", "new"):  # exactly what the person is asked to decide
            if d.get(key) is not None:
                p[key] = d[key]
        if d.get("minibatch_before") is not None:
            p["minibatch_before"] = d["minibatch_before"]
        if d.get("minibatch_after") is not None:
            p["minibatch_after"] = d["minibatch_after"]
        p["status"] = WAITING
        self.pending_id = pid
        self.mark(REVIEW)

    def _on_decision(self, e: Event, d: dict) -> None:
        pid = d.get("proposal_id", "")
        p = self._proposal(pid, e.step)
        action = d.get("action", "")
        p.update({"action": action, "by": d.get("by", ""), "text": clip(d.get("text")),
                  "decision_reason": clip(d.get("reason") or "", 2000)})  # the person's why (issue 16)
        p["status"] = "rejected" if action == "reject" else VALIDATING
        if action == "edit" and d.get("text"):
            p["edited"] = d["text"]
        if self.pending_id == pid:
            self.pending_id = ""
        self.mark(REVIEW)

    def _on_validation(self, e: Event, d: dict) -> None:
        p = self._proposal(d.get("proposal_id", ""), e.step)
        p.update({"validation": d.get("score"), "best": d.get("best"), "gain": gain_text(d)})
        self.mark(REVIEW)

    def _on_update(self, e: Event, d: dict) -> None:
        pid = d.get("proposal_id", "")
        p = self._proposal(pid, e.step)
        accepted = bool(d.get("accepted"))
        p.update({"accepted": accepted, "reason": clip(d.get("reason"), 600), "value": clip(d.get("value"))})
        if accepted:
            p["status"] = "kept"
        elif p["status"] == "failed the minibatch":
            pass  # never applied: nothing to revert
        elif p["minibatch_passed"] is None and not p["action"]:
            p["status"] = "refused"  # before any check (a repeat, a constraint, a leaked target)
        else:
            p["status"] = "reverted"
        if self.pending_id == pid:
            self.pending_id = ""
        self.mark(REVIEW)

    def _on_no_proposal(self, e: Event, d: dict) -> None:
        self._note(d.get("parameter", ""), e.step, "no proposal", f"no proposal: {d.get('reason', '')}")

    def _on_skipped(self, e: Event, d: dict) -> None:
        if not d.get("parameter"):
            return  # feedback about a value (no parameter to note it under); the controls line shows it
        where = ", ".join(x for x in (d.get("node_id"), d.get("sample_id")) if x)
        self._note(d["parameter"], e.step, "skipped",
                   f"{d.get('stage', '?')} skipped{f' ({where})' if where else ''}: {d.get('error', '')}")

    def _on_run_finished(self, e: Event, d: dict) -> None:
        self.pending_id = ""
        for p in self.proposals.values():
            if p["status"] in IN_FLIGHT:
                p["status"] = "not decided (run ended)"
        self.mark(REVIEW)

    # -- what the view shows -----------------------------------------------------------------------
    def pending(self) -> dict:
        """The proposal waiting for a person, with its FULL texts (the edit box starts from `new`)."""
        if not self.pending_id or self.pending_id not in self.proposals:
            return {}
        p = self.proposals[self.pending_id]
        pending = {k: v for k, v in p.items() if k != "values"}
        return dict(pending, diff=word_diff(p["old"], p["new"]), awaiting=True,
                    gradient_parts=self.state.person.segments(p["gradient_summary"]))

    def activity(self) -> str:
        """What happens to the newest undecided proposal when none waits for a person."""
        if self.pending_id:
            return ""
        for p in reversed(self.proposals.values()):
            if p["status"] in IN_FLIGHT:
                return f"{p['proposal_id']} for {p['parameter'] or '?'}: {p['status']}"
            break
        return ""

    def history(self) -> list[dict]:
        out = []
        for i, p in enumerate(reversed(self.proposals.values())):
            if p["proposal_id"] == self.pending_id:
                continue
            item = {k: v for k, v in p.items() if k not in ("old", "new", "value", "edited", "values",
                                                             "gradient_summary")}
            if i < DIFF_IN_HISTORY:  # older entries keep outcome and reason; open_run/report hold the rest
                item["gradient_summary"] = clip(p.get("gradient_summary"), 1500)
                item["gradient_parts"] = self.state.person.segments(item["gradient_summary"])
                item["diff"] = word_diff(clip(p["old"]), clip(p["new"]))
                if p["edited"]:
                    item["edited_diff"] = word_diff(clip(p["old"]), clip(p["edited"]))
            out.append(item)
        return out

    def parameters(self) -> list[dict]:
        graph = self.state.graph
        return [{"name": p["name"], "role": p.get("role", ""), "value": clip(p.get("value")),
                 "trainable": p.get("trainable", True), "description": p.get("description", ""),
                 "disconnected": graph.why_disconnected(p["name"]),
                 "notes": [{k: n[k] for k in ("step", "kind", "text")} for n in self.notes.get(p["name"], [])]}
                for p in self.state.run.parameters.values()]

    def traits(self, parts: set[str]) -> dict[str, Any]:
        if REVIEW not in parts:
            return {}
        return {"pending": self.pending(), "history": self.history(), "parameters": self.parameters(),
                "auto_approve": self.auto_approve, "activity": self.activity(),
                "feedback": self.state.person.everything()}
