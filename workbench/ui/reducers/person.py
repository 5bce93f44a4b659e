"""What a person taught the run (issue 16), for every view that shows it: their feedback (on a
sample's output, a node's output, a parameter) with what became of it, and the texts of the
gradients a person wrote, so a gradient summary can mark them as the person's.

No view of its own: the samples table (feedback on a row), the graph panel (feedback on a node's
output for the sample) and the review (everything, and the marks in gradient summaries) read it.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterable

from ...records.events import Event
from .base import PANEL, REVIEW, SAMPLES, Part, clip

MAX_FEEDBACK = 300      # the person's feedback items kept for display (the log keeps all)
MAX_MARKED = 200        # the newest person texts looked for in a gradient summary
SUMMARY_CLIP = 600      # summarise_gradients clips each text to this many characters
PERSON = "person"

# what became of a person's feedback, as the views label it
QUEUED, USED, REFUSED, NOT_APPLIED = "queued", "used", "refused", "not applied"


def where(target_kind: str, sample_id: str | None, node_id: str | None, parameter: str | None) -> str:
    """The target of a feedback, in words."""
    if target_kind == "parameter":
        return f"parameter {parameter}"
    if target_kind == "node":
        return f"{node_id}'s output for sample {sample_id}"
    return f"the output of sample {sample_id}"


def _whole(summary: str, at: int, end: int) -> bool:
    """Whether summary[at:end] stands as a whole text there: after a line start, "- " or ": ", and
    before a line end or the summary's " ..." clip marker (so "no" is not found inside "know")."""
    before = at == 0 or summary[at - 1] == "\n" or summary[max(0, at - 2):at] in (": ", "- ")
    return before and (end == len(summary) or summary[end] == "\n" or summary.startswith(" ...", end))


def _first(summary: str, needle: str, start: int) -> int:
    at = summary.find(needle, start)
    while at >= 0 and not _whole(summary, at, at + len(needle)):
        at = summary.find(needle, at + 1)
    return at


def mark_texts(summary: str, texts: list[str]) -> list[list[str]]:
    """`summary` as segments [[source, text], ...]: each place one of `texts` (a person's) stands
    whole is a `"person"` segment, the rest `""`. A long text is found by its first SUMMARY_CLIP
    characters, as the summary holds it."""
    needles = sorted({t[:SUMMARY_CLIP] for t in texts if t.strip()}, key=len, reverse=True)
    out: list[list[str]] = []
    i = 0
    while i < len(summary) and needles:
        hits = [(at, n) for n in needles if (at := _first(summary, n, i)) >= 0]
        if not hits:
            break
        at, needle = min(hits, key=lambda h: (h[0], -len(h[1])))
        if at > i:
            out.append(["", summary[i:at]])
        out.append([PERSON, needle])
        i = at + len(needle)
    if i < len(summary):
        out.append(["", summary[i:]])
    return out


class PersonPart(Part):
    view = PERSON  # not a view: see the module docstring

    def __init__(self, state: Any) -> None:
        super().__init__(state)
        self.feedback: "OrderedDict[str, dict]" = OrderedDict()
        self.texts: "OrderedDict[str, None]" = OrderedDict()  # a person's gradient texts, newest last

    # -- events ----------------------------------------------------------------------------------
    def _keep(self, fid: str, text: Any, kind: str, sample_id: str | None, node_id: str | None,
              parameter: str | None, *, status: str, reason: Any = "", step: int = 0, used_in: str = "",
              from_run: str = "") -> None:
        self.feedback[fid] = {
            "feedback_id": fid, "text": clip(text, 2000), "target_kind": kind, "sample_id": sample_id or "",
            "node_id": node_id or "", "parameter": parameter or "", "where": where(kind, sample_id, node_id, parameter),
            "status": status, "reason": clip(reason, 600), "step": step, "used_in": used_in, "from_run": from_run}
        while len(self.feedback) > MAX_FEEDBACK:
            self.feedback.popitem(last=False)
        if status != REFUSED:
            self._remember(text)
        self.mark(SAMPLES, PANEL, REVIEW)

    def _on_feedback(self, e: Event, d: dict) -> None:
        accepted = bool(d.get("accepted"))
        self._keep(d.get("feedback_id") or f"f{len(self.feedback) + 1}", d.get("text"), d.get("target_kind") or "sample",
                   d.get("sample_id"), d.get("node_id"), d.get("parameter"), status=QUEUED if accepted else REFUSED,
                   reason="" if accepted else d.get("reason"), step=e.step)

    def restore(self, items: Iterable[dict]) -> None:
        """What the trainer already holds when the dashboard opens (a resumed run's feedback, from its
        checkpoint): `PersonFeedback.to_dict()` items, queued or used."""
        for item in items:
            used = item.get("used_at_step")
            if item.get("feedback_id") and item["feedback_id"] not in self.feedback:
                self._keep(item["feedback_id"], item.get("text"), item.get("target_kind") or "sample",
                           item.get("sample_id"), item.get("node_id"), item.get("parameter"),
                           status=QUEUED if used is None else USED, step=item.get("given_at_step") or 0,
                           used_in="" if used is None else f"step {used}")

    def inherit(self, carried: Any) -> None:
        """What a branch inherits of its parent's person (`records.branch_contributions.inherited`): its
        feedback (matched with what the checkpoint's inbox restored) and its reasons and edits, each marked
        with the run it was given in, so the branch's views show the words its optimizer still reads."""
        for fid, row in carried.feedback_rows().items():
            item = self.feedback.get(fid)
            if item is not None:
                item["from_run"] = row["from_run"] or ""
                continue
            used = row["used_at_step"]
            status = REFUSED if not row["accepted"] else USED if row["used"] else QUEUED
            self._keep(fid, row["text"], row["target_kind"] or "sample", row["sample_id"], row["node_id"],
                       row["parameter"], status=status, reason=row["refused"] or "", step=row["step"] or 0,
                       used_in="" if used is None else f"step {used}", from_run=row["from_run"] or "")
        for row in carried.rows:
            if row["kind"] == "feedback":
                continue
            said = row["reason"] or row["text"]  # a reason, or an edit's text
            self._keep(f"{row['from_run']}:{row['proposal_id']}", said, "parameter", None, None, row["parameter"],
                       status=USED if row["used"] else QUEUED, step=row["step"] or 0,
                       used_in="" if row["used_at_step"] is None else f"step {row['used_at_step']}",
                       from_run=row["from_run"] or "")
            self.feedback[f"{row['from_run']}:{row['proposal_id']}"]["where"] += f" ({row['kind']} {row['proposal_id']})"

    def _on_feedback_used(self, e: Event, d: dict) -> None:
        item = self.feedback.get(d.get("feedback_id", ""))
        if item is None:
            return
        applied = d.get("applied", True)
        item["status"] = USED if applied else NOT_APPLIED
        item["reason"] = "" if applied else clip(d.get("note"), 600)
        item["used_in"] = f"{d.get('used_in', '')} of step {e.step}"
        self.mark(SAMPLES, PANEL, REVIEW)

    def _on_gradient(self, e: Event, d: dict) -> None:
        if d.get("source") == PERSON:
            self._remember(d.get("text"))
            self.mark(REVIEW)

    def _remember(self, text: Any) -> None:
        if isinstance(text, str) and text.strip():
            self.texts.pop(text, None)
            self.texts[text] = None
            while len(self.texts) > MAX_MARKED:
                self.texts.popitem(last=False)

    # -- what the views read -------------------------------------------------------------------------
    @staticmethod
    def _shown(item: dict) -> dict:
        status = item["status"] + (f" ({item['used_in']})" if item["status"] == USED and item.get("used_in") else "")
        if item.get("from_run"):
            status += f", inherited from {item['from_run']}"
        return {"feedback_id": item["feedback_id"], "text": item["text"], "status": item["status"], "label": status,
                "where": item["where"], "reason": item["reason"], "step": item["step"],
                "from_run": item.get("from_run", "")}

    def on_sample(self, sample_id: str) -> list[dict]:
        """Feedback on the sample's final output."""
        return [self._shown(f) for f in self.feedback.values()
                if f["target_kind"] == "sample" and f["sample_id"] == sample_id]

    def on_node(self, sample_id: str, node_id: str) -> list[dict]:
        """Feedback on one node's output for the sample."""
        return [self._shown(f) for f in self.feedback.values()
                if f["target_kind"] == "node" and f["sample_id"] == sample_id and f["node_id"] == node_id]

    def everything(self) -> list[dict]:
        """All of it, newest first (the review's "Your feedback")."""
        return [self._shown(f) for f in reversed(self.feedback.values())]

    def segments(self, summary: str) -> list[list[str]]:
        """A gradient summary with the person's texts marked (see `mark_texts`)."""
        return mark_texts(summary or "", list(self.texts))

    def traits(self, parts: set[str]) -> dict[str, Any]:
        return {}
