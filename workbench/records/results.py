"""A run's results as pandas DataFrames, for notebooks: `open_run(path_or_trainer)` and `runs(root)`.

Everything is rebuilt from the run folder's event log (docs/EVENTS.md), read through the typed
event definitions in `workbench.records.events`, so a finished folder and a live trainer (whose store is
appending to the same log) give the same rows, up to now:

    run = open_run("runs/classification-2026...")     # or open_run(trainer) while it trains
    run.proposals[["step", "parameter", "decision", "validation", "kept", "reason"]]
    run.curve.plot(x="step", y=["minibatch", "best_val"])
    runs("runs").sort_values("best_val")

A resumed run may replay the step it was killed in; rows of a replayed step are replaced by the
replay's, so nothing is counted twice.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import pandas as pd

from . import events as ev
from ..errors import WorkbenchError
from .events import Event
from .frames import TextFrame
from .store import RunStore, folder_problems, parse_event_line, read_events, run_folders
from .charts import CurveData
from .contributions import CONTRIBUTION_COLUMNS, contribution_rows

if TYPE_CHECKING:
    from .live import LiveRun

__all__ = ["Run", "RunFolderError", "open_run", "runs"]

USAGE_FIELDS = ("calls", "prompt_tokens", "completion_tokens", "cache_hits", "latency_s")

CURVE_COLUMNS = ["step", "minibatch", "val", "best_val", "test", "accepted", "rejected", "time"]
PROPOSAL_COLUMNS = ["proposal_id", "step", "parameter", "role", "old", "new", "source", "attempt", "group",
                    "minibatch_before", "minibatch_after", "minibatch_passed", "validation",
                    "validation_complete", "best_before", "decision", "decided_by", "person_reason", "kept", "reason",
                    "value_after", "gradient_summary"]
GRADIENT_COLUMNS = ["step", "sample_id", "node_id", "component", "call_index", "target", "target_kind", "score",
                    "text", "source"]
SAMPLE_COLUMNS = ["step", "split", "phase", "proposal_id", "sample_id", "inputs", "prediction", "target", "score",
                  "status", "error", "seconds", "selected", "selection_reason"]
NOTICE_COLUMNS = ["step", "type", "stage", "parameter", "node_id", "sample_id", "text"]
USAGE_COLUMNS = ["step", "stage", "role", "calls", "prompt_tokens", "completion_tokens", "tokens", "cache_hits",
                 "latency_s"]
RUNS_COLUMNS = ["run_id", "task", "status", "steps", "baseline_val", "best_val", "baseline_test", "test", "calls",
                "tokens", "wall_time_s", "started", "path", "error"]


# the start of a forward event's line as the store writes it (json.dumps of Event.to_dict()); a line
# that does not match is parsed at once, so another writer's layout costs time, never rows
_LINE_HEAD = re.compile(rb'\{"type": "(\w+)", "run_id": "(?:[^"\\]|\\.)*", "step": -?\d+, "time": '
                        rb'(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?), ')


class RunFolderError(WorkbenchError):
    """A path given to `open_run` is not a run folder (or a trainer was expected)."""


# -- folding the event log into rows ------------------------------------------------------------------

@dataclass
class _Tables:
    """Rows per table, built by one pass over the events; rows carry the step that produced them."""

    curve: list[dict] = field(default_factory=list)
    proposals: dict[tuple[str, str], dict] = field(default_factory=dict)  # (proposal id, parameter) -> row
    gradients: list[dict] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)
    usage_points: list[tuple[int, str, dict]] = field(default_factory=list)  # (step, stage, cumulative usage)
    started: dict | None = None
    finished: dict | None = None
    sessions: list[list[float]] = field(default_factory=list)  # [start, last event time] per fit() call
    notices: list[dict] = field(default_factory=list)  # what is missing from the other tables, and why
    curve_data: CurveData = field(default_factory=CurveData)  # the dashboard's and the report's chart fold
    _proposal_now: str | None = None
    _selection: dict[tuple[int, str], tuple[bool, str]] = field(default_factory=dict)
    _proposal_keys: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # proposal id -> its rows' keys
    # forward lines (most of a log's bytes) are parsed only when the samples table is asked for:
    # (raw line, the proposal in flight when it was written)
    _deferred: list[tuple[bytes, str | None]] = field(default_factory=list)

    def forget_after(self, step: int) -> None:
        """A resume continues after `step`: what a killed run recorded after it is replayed, so drop it."""
        self.curve = [r for r in self.curve if r["step"] <= step]
        self.proposals = {k: p for k, p in self.proposals.items() if p["step"] <= step}
        self._proposal_keys = {}
        for key in self.proposals:
            self._proposal_keys.setdefault(key[0], []).append(key)
        self.gradients = [r for r in self.gradients if r["step"] <= step]
        self.samples = [r for r in self.samples if r["step"] <= step]
        self.usage_points = [u for u in self.usage_points if u[0] <= step]
        self._selection = {k: v for k, v in self._selection.items() if k[0] <= step}
        self.notices = [r for r in self.notices if r["step"] <= step]
        self.finished = None

    def fold_line(self, line: bytes) -> None:
        """Fold one line of events.jsonl. Of a forward event's line, or of an event no table reads,
        only the time is read (for the session's length); a forward line is kept as it is and parsed
        when the samples table is first asked for."""
        head = _LINE_HEAD.match(line)
        if head is not None and head.group(1) not in _FOLDED and line.rstrip().endswith(b"}"):
            if self.sessions:  # an event no table reads (node, checkpoint, ...) still extends its session
                self.sessions[-1][1] = max(self.sessions[-1][1], float(head.group(2)))
            if head.group(1) == b"forward":
                self._deferred.append((line, self._proposal_now))
            return
        event, _ = parse_event_line(line)  # damaged lines: RunStore.events() warns about them
        if event is not None:
            self.fold(event)

    def materialize(self) -> None:
        """Parse the forward lines kept aside (before a resume drops rows, and for the samples table)."""
        deferred, self._deferred = self._deferred, []
        for line, proposal_now in deferred:
            event, _ = parse_event_line(line)
            if event is None or event.type != "forward":
                continue
            event = ev.with_defaults(event)
            try:
                data = ev.Forward.of(event)
            except (TypeError, ev.EventContractError):
                continue
            self._add_sample(event, data, proposal_now)

    def fold(self, event: Event) -> None:
        event = ev.with_defaults(event)
        if event.type == "run_started":
            self.materialize()  # rows of a replayed step are dropped below: parse what came before first
        if self.sessions and event.type != "run_started":
            self.sessions[-1][1] = max(self.sessions[-1][1], event.time)
        self.curve_data.apply(event)
        handler = getattr(self, "_on_" + event.type, None)
        if handler is None or event.type not in ev.EVENT_TYPES:
            return
        try:
            data = ev.EVENT_TYPES[event.type].of(event)
        except (TypeError, ev.EventContractError):  # a line missing a required field (an older or damaged log)
            return
        handler(event, data)

    def _on_run_started(self, e: Event, d: ev.RunStarted) -> None:
        if d.resumed_from is not None:
            self.forget_after(d.resumed_from)
        self.started = self.started or {"run_id": d.run_id, "config": d.config, "parameters": d.parameters,
                                        "splits": d.splits}
        self.started["parameters"] = d.parameters if d.resumed_from is None else self.started["parameters"]
        self.sessions.append([e.time, e.time])

    def _on_forward(self, e: Event, d: ev.Forward) -> None:
        self.materialize()  # keep the order of the rows
        self._add_sample(e, d, self._proposal_now)

    def _add_sample(self, e: Event, d: ev.Forward, proposal_now: str | None) -> None:
        s = d.summary or {}
        self.samples.append({
            "step": e.step, "split": d.split, "phase": d.phase,
            "proposal_id": proposal_now if d.phase == "proposal" else None,
            "sample_id": s.get("sample_id"), "inputs": s.get("inputs") or {}, "prediction": s.get("prediction"),
            "target": s.get("target"), "score": s.get("score"), "status": s.get("status"), "error": s.get("error"),
            "seconds": s.get("seconds"), "selected": None, "selection_reason": None})

    def _on_selection(self, e: Event, d: ev.Selection) -> None:
        for s in d.samples:
            self._selection[(e.step, s.get("sample_id"))] = (bool(s.get("selected")), s.get("reason", ""))

    def _on_eval(self, e: Event, d: ev.Eval) -> None:
        if d.phase == "baseline" and d.split in ("val", "test"):
            row = self._curve_row(0, e.time)
            row[d.split] = d.score
            if d.split == "val":
                row["best_val"] = d.score
        if d.phase == "final" and d.split == "test":
            self._curve_row(e.step, e.time)["test"] = d.score

    def _curve_row(self, step: int, time: float) -> dict:
        for row in self.curve:
            if row["step"] == step:
                return row
        row = {"step": step, "minibatch": None, "val": None, "best_val": None, "test": None, "accepted": 0,
               "rejected": 0, "time": time}
        self.curve.append(row)
        return row

    def _on_gradient(self, e: Event, d: ev.GradientWritten) -> None:
        self.gradients.append({"step": e.step, "sample_id": d.sample_id, "node_id": d.node_id,
                               "component": d.component, "call_index": d.call_index, "target": d.target,
                               "target_kind": d.target_kind, "score": d.score, "text": d.text, "source": d.source})

    def _proposal(self, pid: str, parameter: str, step: int) -> dict:
        """The row of one parameter of a proposal (a joint proposal changes several under one id)."""
        key = (pid, parameter)
        if key not in self.proposals:
            self.proposals[key] = {c: None for c in PROPOSAL_COLUMNS} | {"proposal_id": pid, "step": step,
                                                                         "parameter": parameter}
            self._proposal_keys.setdefault(pid, []).append(key)
        return self.proposals[key]

    def _rows_of(self, pid: str, step: int) -> list[dict]:
        """Every parameter's row of a proposal (its gates and decision are shared)."""
        return [self.proposals[key] for key in self._proposal_keys.get(pid, ())] or [self._proposal(pid, "", step)]

    def _on_proposal(self, e: Event, d: ev.Proposal) -> None:
        p = self._proposal(d.proposal_id, d.parameter, e.step)
        if d.source == "human" and p["new"] is not None:  # a person's edit replaces the optimizer's text
            p.update({"new": d.new, "source": "human"})
        else:
            p.update({"parameter": d.parameter, "role": d.role, "old": d.old, "new": d.new, "source": d.source,
                      "attempt": d.attempt, "group": d.group, "gradient_summary": d.gradient_summary})
        self._proposal_now = d.proposal_id

    def _on_minibatch(self, e: Event, d: ev.Minibatch) -> None:
        for p in self._rows_of(d.proposal_id, e.step):
            p.update({"minibatch_before": d.before, "minibatch_after": d.after, "minibatch_passed": d.passed})

    def _on_decision(self, e: Event, d: ev.DecisionMade) -> None:
        for p in self._rows_of(d.proposal_id, e.step):
            p.update({"decision": d.action, "decided_by": d.by, "person_reason": d.reason})

    def _on_validation(self, e: Event, d: ev.Validation) -> None:
        for p in self._rows_of(d.proposal_id, e.step):
            p.update({"validation": d.score, "validation_complete": d.complete, "best_before": d.best})

    def _on_update(self, e: Event, d: ev.Update) -> None:
        self._proposal(d.proposal_id, d.parameter, e.step).update(
            {"kept": d.accepted, "reason": d.reason, "value_after": d.value})
        self._proposal_now = None

    def _on_step_finished(self, e: Event, d: ev.StepFinished) -> None:
        row = self._curve_row(e.step, e.time)
        row.update({"minibatch": d.train_score, "val": d.val_score, "best_val": d.best_val,
                    "accepted": len(d.accepted), "rejected": len(d.rejected), "time": e.time})
        self.usage_points.append((e.step, "step", d.usage))

    def _notice(self, e: Event, **row: Any) -> None:
        self.notices.append({c: None for c in NOTICE_COLUMNS} | {"step": e.step, "type": e.type} | row)

    def _on_skipped(self, e: Event, d: ev.Skipped) -> None:
        self._notice(e, stage=d.stage, parameter=d.parameter, node_id=d.node_id, sample_id=d.sample_id, text=d.error)

    def _on_disconnected(self, e: Event, d: ev.Disconnected) -> None:
        self._notice(e, stage="backward", parameter=d.parameter, node_id=d.node_id, sample_id=d.sample_id,
                     text=d.reason)

    def _on_no_proposal(self, e: Event, d: ev.NoProposal) -> None:
        self._notice(e, stage=d.source, parameter=d.parameter, text=d.reason)

    def _on_checkpoint_skipped(self, e: Event, d: ev.CheckpointSkipped) -> None:
        self._notice(e, stage="resume", text=f"{d.path}: {d.reason}")

    def _on_run_finished(self, e: Event, d: ev.RunFinished) -> None:
        self.finished = dataclass_dict(d)
        self.usage_points.append((e.step, "final", d.usage))


# event types parsed as their line is read (forward lines wait for the samples table; other types
# no table or chart reads are not parsed at all)
_FOLDED = frozenset(name[4:].encode() for cls in (_Tables, CurveData) for name in dir(cls)
                    if name.startswith("_on_") and name != "_on_forward")


def dataclass_dict(d: Any) -> dict:
    return {k: getattr(d, k) for k in d.__dataclass_fields__}


def usage_rows(points: Iterable[tuple[int, str, dict]], baseline: dict | None = None) -> list[dict]:
    """Per-step usage from cumulative snapshots: each row is what was spent since the previous one.

    `baseline` is the cumulative usage after the baseline evaluation (step 0), when known.
    """
    rows, before = [], {}
    points = ([(0, "baseline", baseline)] if baseline else []) + list(points)
    for step, stage, usage in points:
        for role, now in sorted((usage or {}).items()):
            if not isinstance(now, dict):
                continue
            prev = before.get(role, {})
            delta = {k: (now.get(k) or 0) - (prev.get(k) or 0) for k in USAGE_FIELDS}
            if not any(delta.values()):
                continue  # this role spent nothing in this stretch
            delta["latency_s"] = round(delta["latency_s"], 6)
            rows.append({"step": step, "stage": stage, "role": role, **delta,
                         "tokens": delta["prompt_tokens"] + delta["completion_tokens"]})
        before = {role: dict(u) for role, u in (usage or {}).items() if isinstance(u, dict)} | \
            {r: u for r, u in before.items() if r not in (usage or {})}
    return rows


# -- one run -----------------------------------------------------------------------------------------

class Run:
    """One run's results as DataFrames. Built by `open_run`; re-reads the log when it has grown."""

    def __init__(self, path: Path, trainer: "LiveRun | None" = None) -> None:
        self.path = Path(path)
        self.trainer = trainer
        self._offset = 0  # bytes of events.jsonl folded into the tables so far
        self._tables = _Tables()

    def __repr__(self) -> str:
        t = self.tables
        status = (t.finished or {}).get("status") or ("running" if self.is_live else "running or interrupted")
        return f"Run({self.run_id!r}, {status}, {len(t.curve) - 1 if t.curve else 0} steps, " \
               f"{len(t.proposals)} proposals, path={str(self.path)!r})"

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def is_live(self) -> bool:
        return self.trainer is not None and getattr(self.trainer, "is_running", False)

    @property
    def tables(self) -> _Tables:
        """The folded event log, read incrementally: complete lines appended since the last look."""
        log = self.path / "events.jsonl"
        try:
            size = log.stat().st_size
        except FileNotFoundError:
            size = 0
        if size < self._offset:  # the log was replaced: start over
            self._tables, self._offset = _Tables(), 0
        if size > self._offset:
            with open(log, "rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read(size - self._offset)
            complete = chunk.rfind(b"\n") + 1  # a line still being written waits for its end
            for line in chunk[:complete].splitlines():
                if line.strip():
                    self._tables.fold_line(line)
            self._offset += complete
        return self._tables

    def events(self) -> list[Event]:
        """The raw events, in order (optional fields filled in)."""
        return [ev.with_defaults(e) for e in read_events(self.path / "events.jsonl")]

    # -- the tables ------------------------------------------------------------------------------
    @property
    def curve(self) -> pd.DataFrame:
        """One row per step (0 = baseline): minibatch score, validation score and best so far, test
        (baseline at step 0, final at the last step), proposals accepted and rejected, unix time."""
        rows = sorted(self.tables.curve, key=lambda r: r["step"])
        return _frame(rows, CURVE_COLUMNS)

    @property
    def proposals(self) -> pd.DataFrame:
        """One row per proposal (per parameter, for a joint proposal of several under one id): what
        changed, both gates' scores, the decision, who made it, and why it was kept or reverted."""
        return _frame(list(self.tables.proposals.values()), PROPOSAL_COLUMNS)

    @property
    def gradients(self) -> pd.DataFrame:
        """Every textual gradient: the sample, the node that wrote it (and its call index), its target, and
        its source: "backward" (the backward engine) or "person" (`trainer.feedback`)."""
        return _frame(self.tables.gradients, GRADIENT_COLUMNS)

    @property
    def contributions(self) -> pd.DataFrame:
        """What the person contributed (records/contributions.py): reasons, edits and feedback, each
        with its step, what it was about, whether it was accepted, and whether the run used it."""
        frame = _frame(contribution_rows(self.events()), CONTRIBUTION_COLUMNS)
        frame["used_at_step"] = frame["used_at_step"].astype("Int64")  # a step, not 1.0 beside a missing one
        return frame

    @property
    def samples(self) -> pd.DataFrame:
        """Every sample run, per step and split: inputs, prediction, target, score, status, and for the
        training minibatch whether it was back-propagated and why."""
        t = self.tables
        t.materialize()
        rows = []
        for r in t.samples:
            if r["split"] == "train" and r["phase"] == "train":
                chosen = t._selection.get((r["step"], r["sample_id"]))
                if chosen is not None:
                    r = dict(r, selected=chosen[0], selection_reason=chosen[1])
            rows.append(r)
        return _frame(rows, SAMPLE_COLUMNS)

    @property
    def notices(self) -> pd.DataFrame:
        """What the other tables lack, and why: gradients or proposals skipped because a model failed,
        parameters disconnected from the loss, optimizer replies with no usable value, damaged
        checkpoints passed over on resume."""
        return _frame(self.tables.notices, NOTICE_COLUMNS)

    @property
    def usage(self) -> pd.DataFrame:
        """Calls, tokens, cache hits and latency per role and step (baseline = step 0; `final` is the
        test run after the last step; `in progress` what a live run has spent since its last step)."""
        points = list(self.tables.usage_points)
        if self.trainer is not None and self.tables.finished is None:
            points.append((getattr(self.trainer, "step", 0), "in progress", self.trainer.usage()))
        return _frame(usage_rows(points, self._baseline_usage()), USAGE_COLUMNS)

    def _baseline_usage(self) -> dict | None:
        first = self.path / "checkpoints" / "step-0000.json"
        try:
            return json.loads(first.read_text(encoding="utf-8")).get("usage")
        except (OSError, json.JSONDecodeError, AttributeError):
            return None

    # -- the run as a whole ---------------------------------------------------------------------
    @property
    def config(self) -> dict:
        try:
            return RunStore(self.path).config()
        except WorkbenchError:
            return {}

    @property
    def summary(self) -> dict:
        """run_finished's data (status, baseline, final, best, usage), else summary.json's when the
        event log is lost (no run_started in it), else what is known so far."""
        t = self.tables
        if t.finished:
            return dict(t.finished)
        if not t.sessions and not self.is_live:  # a resumed run's old summary.json is not its status
            try:
                written = RunStore(self.path).summary()
            except WorkbenchError:
                written = None  # damaged: `workbench runs` says so
            if written:
                return {k: v for k, v in written.items() if k != "parameters"}
        curve = sorted(t.curve, key=lambda r: r["step"])
        base = curve[0] if curve and curve[0]["step"] == 0 else {}
        return {"run_id": self.run_id, "status": "running" if self.is_live else "running or interrupted",
                "steps": curve[-1]["step"] if curve else 0,
                "baseline": {"val": base.get("val"), "test": base.get("test")},
                "final": {"val": curve[-1]["best_val"] if curve else None, "test": None},
                "best_val": curve[-1]["best_val"] if curve else None}

    @property
    def parameters(self) -> dict[str, str]:
        """The current (best) value of every parameter: the newest checkpoint's, else the start's."""
        if self.trainer is not None:
            return {n: (p.history[-1].value if p.history else p.value) for n, p in self.trainer.params.items()}
        state = RunStore(self.path).latest_checkpoint() or {}
        if state.get("parameters"):
            return {n: p.get("value", "") for n, p in state["parameters"].items()}
        return {p["name"]: p.get("value", "") for p in (self.tables.started or {}).get("parameters") or []}

    @property
    def wall_time_s(self) -> float:
        """Seconds spent training, summed over sessions (a resumed run's downtime is not counted)."""
        return sum(end - start for start, end in self.tables.sessions)

    def report(self, path: str | os.PathLike = "report.html") -> Path:
        """Write the self-contained HTML report of this run (see `workbench.records.report`)."""
        from .report import write_report
        return write_report(self, path)


def _frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    return TextFrame([{c: r.get(c) for c in columns} for r in rows], columns=columns)


def open_run(source: "str | os.PathLike | LiveRun | RunStore | Run") -> Run:
    """A run's results as DataFrames, from its folder or from a (possibly live) trainer."""
    if isinstance(source, Run):
        return source
    if isinstance(source, RunStore):
        return open_run(source.path)
    store = getattr(source, "store", None)
    if isinstance(store, RunStore):
        return Run(store.path, trainer=source)
    if not isinstance(source, (str, os.PathLike)):
        raise RunFolderError(f"open_run expects a run folder or a Trainer, got {type(source).__name__}")
    path = Path(source)
    if not path.is_dir():
        raise RunFolderError(f"open_run: {path} is not a folder")
    if not (path / "config.json").exists() and not (path / "events.jsonl").exists():
        raise RunFolderError(f"open_run: {path} is not a run folder (it has neither config.json nor events.jsonl)")
    return Run(path)


# -- many runs -----------------------------------------------------------------------------------------

def runs(root: str | os.PathLike = "runs") -> pd.DataFrame:
    """One row per run folder under `root`, newest first; a damaged folder is a row with status
    `damaged` and the reason in `error`, never an exception."""
    root = Path(root)
    if not root.is_dir():
        raise RunFolderError(f"runs: {root} is not a folder")
    rows = [_run_row(folder) for folder in run_folders(root)]
    frame = TextFrame(rows, columns=RUNS_COLUMNS)
    return frame.sort_values("started", ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def _run_row(folder: Path) -> dict:
    row: dict[str, Any] = {c: None for c in RUNS_COLUMNS} | {"run_id": folder.name, "path": str(folder)}
    problems = folder_problems(folder)  # the same verdict as `workbench runs`
    try:
        row["task"] = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("task") or None
    except (OSError, ValueError, AttributeError):
        pass  # already among the problems
    run = Run(folder)
    try:
        summary, curve = run.summary, run.curve
        usage = run.tables.finished.get("usage") if run.tables.finished else None
        if usage is None:
            state = RunStore(folder).latest_checkpoint() or {}
            usage = state.get("usage") or (run.tables.usage_points[-1][2] if run.tables.usage_points else {})
    except Exception as exc:  # a damaged folder is a row, not a crash
        problems.append(f"{type(exc).__name__}: {exc}")
        summary, curve, usage = {}, pd.DataFrame(columns=CURVE_COLUMNS), {}
    totals = [u for u in (usage or {}).values() if isinstance(u, dict)]
    row.update({
        "status": "damaged" if problems else summary.get("status"),
        "steps": summary.get("steps"),
        "baseline_val": (summary.get("baseline") or {}).get("val"),
        "best_val": summary.get("best_val"),
        "baseline_test": (summary.get("baseline") or {}).get("test"),
        "test": (summary.get("final") or {}).get("test"),
        "calls": sum(int(u.get("calls") or 0) for u in totals),
        "tokens": sum(int(u.get("prompt_tokens") or 0) + int(u.get("completion_tokens") or 0) for u in totals),
        "wall_time_s": round(run.wall_time_s, 3) if run.tables.sessions else None,
        "started": pd.to_datetime(run.tables.sessions[0][0], unit="s", utc=True) if run.tables.sessions else None,
        "error": "; ".join(problems) or summary.get("error"),
    })
    if len(curve) and row["steps"] is None:
        row["steps"] = int(curve["step"].max())
    return row
