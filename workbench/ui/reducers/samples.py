"""The samples view: the current batch, its scores, the backward selection (and why), pin / exclude,
and which sample the graph panel shows."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

from ...records.events import Event
from ...records.fold import RunFold
from ...training.run_state import flag_sample
from .base import CONTROLS, PANEL, SAMPLES, Part, clip


def inputs_text(inputs: dict | None) -> str:
    if not inputs:
        return ""
    if len(inputs) == 1:
        return clip(next(iter(inputs.values())), 400)
    return clip("; ".join(f"{k}: {v}" for k, v in inputs.items()), 400)


class SamplesPart(Part):
    view = "samples"

    def __init__(self, state: Any, fold: RunFold) -> None:
        super().__init__(state)
        self.fold = fold  # applied before this view: the epoch comes from it
        self.step = 0
        self.epoch = 0
        self.batch: list[str] = []
        self.rows: "OrderedDict[str, dict]" = OrderedDict()
        self.pinned: set[str] = set()
        self.excluded: set[str] = set()
        self.selected_sample = ""
        self.user_picked_sample = False  # a person chose the sample: do not move it for them

    def _new_row(self, sid: str) -> dict:
        return {"sample_id": sid, "input": "", "prediction": "", "target": "", "score": None, "status": "running",
                "error": "", "selected": None, "reason": ""}

    def set_flag(self, sample_id: str, flag: str, on: bool) -> None:
        """Pinned or excluded (each takes the sample out of the other), as the run's control event says."""
        flag_sample(self.pinned, self.excluded, sample_id, flag, on)
        self.mark(SAMPLES)

    def _on_control(self, e: Event, d: dict) -> None:
        flags = {"pin": ("pin", True), "unpin": ("pin", False), "exclude": ("exclude", True),
                 "include": ("exclude", False)}
        if d.get("action") in flags and d.get("sample_id"):
            self.set_flag(d["sample_id"], *flags[d["action"]])

    def pick(self, sample_id: str) -> None:
        self.selected_sample = sample_id
        self.user_picked_sample = bool(sample_id)
        self.mark(PANEL, SAMPLES)

    def _on_step_started(self, e: Event, d: dict) -> None:
        self.step, self.epoch = e.step, self.fold.epoch
        self.batch = list(d.get("batch") or [])
        self.rows = OrderedDict((sid, self._new_row(sid)) for sid in self.batch)
        if self.selected_sample not in self.rows:
            self.selected_sample = self.batch[0] if self.batch else ""
            self.user_picked_sample = False
        self.mark(SAMPLES, PANEL, CONTROLS)

    def _on_forward(self, e: Event, d: dict) -> None:
        summary = d.get("summary") or {}
        if d.get("split") != "train":
            return
        sid = summary.get("sample_id") or (d.get("graph") or {}).get("sample_id")
        if not sid:
            return
        row = self.rows.get(sid)
        if row is None:
            row = self.rows[sid] = self._new_row(sid)
        row.update({"input": inputs_text(summary.get("inputs")), "prediction": clip(summary.get("prediction"), 400),
                    "target": clip(summary.get("target"), 400), "score": summary.get("score"),
                    "status": summary.get("status", ""), "error": clip(summary.get("error"), 400)})
        if not self.selected_sample:
            self.selected_sample = sid
            self.mark(PANEL)
        self.mark(SAMPLES)

    def _on_selection(self, e: Event, d: dict) -> None:
        first = ""
        for s in d.get("samples") or []:
            row = self.rows.get(s.get("sample_id"))
            if row is not None:
                row["selected"], row["reason"] = bool(s.get("selected")), s.get("reason", "")
                if s.get("selected") and not first:
                    first = s.get("sample_id")
        # show a back-propagated sample in the graph panel, unless the person picked one
        if first and not self.user_picked_sample and not (self.rows.get(self.selected_sample) or {}).get("selected"):
            self.selected_sample = first
            self.mark(PANEL)
        self.mark(SAMPLES, CONTROLS)

    def snapshot(self) -> list[dict]:
        person = self.state.person
        return [dict(row, pinned=sid in self.pinned, excluded=sid in self.excluded, feedback=person.on_sample(sid))
                for sid, row in self.rows.items()]

    def traits(self, parts: set[str]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if parts & {SAMPLES, PANEL}:
            values.update(rows=self.snapshot(), selected_sample=self.selected_sample)
        if parts & {SAMPLES, CONTROLS}:
            values["caption"] = (f"step {self.step} · epoch {self.epoch + 1} · {len(self.rows)} samples"
                                 if self.rows else "no batch yet")
        return values
