"""The one incremental fold of a run's event log: `RunFold.apply(event)`, one event at a time.

Every reader of a run takes its numbers from here, so each is computed once: the status, step and
epoch; usage per role with its token and cost totals (`usage_totals`); the baseline, the final and
the best validation score with its step; the curve per step; every proposal with its gates and
decision; the chart data (`charts.CurveData`, folded alongside); the person's contributions
(`contributions.Contributions`); and, unless `keep_rows=False`, the
gradients, samples and notices behind `open_run(...)`'s DataFrames.

It works the same on a live run (the dashboard's state, the CLI progress and the MLflow sink apply
each event as the bus delivers it) and on a stored log (`open_run` feeds it the lines appended
since its last look, through `fold_line`, which parses a forward line only when its row is asked
for). A resumed run may replay the step it was killed in; rows of a replayed step are replaced by
the replay's, so nothing is counted twice.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from . import events as ev
from . import forecast_frames, usage_totals
from .charts import CurveData
from .contributions import CONTRIBUTION_TYPES, Contributions
from .events import Event
from .store import parse_event_line

CURVE_COLUMNS = ["step", "minibatch", "val", "best_val", "test", "accepted", "rejected", "time"]
PROPOSAL_COLUMNS = ["proposal_id", "step", "parameter", "role", "old", "new", "source", "attempt", "group",
                    "minibatch_before", "minibatch_after", "minibatch_passed", "validation",
                    "validation_complete", "best_before", "gain", "gain_low", "gain_high", "confidence",
                    "won", "lost", "decision", "decided_by", "person_reason", "kept", "reason", "value_after",
                    "gradient_summary"]
NOTICE_COLUMNS = ["step", "type", "stage", "parameter", "node_id", "sample_id", "text"]

# the start of a line as the store writes it (json.dumps of Event.to_dict()); a line that does not
# match is parsed at once, so another writer's layout costs time, never rows
_LINE_HEAD = re.compile(rb'\{"type": "(\w+)", "run_id": "(?:[^"\\]|\\.)*", "step": (-?\d+), "time": '
                        rb'(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?), ')


@dataclass
class RunFold:
    """A run as its events tell it so far. Rows carry the step that produced them.

    `keep_rows=False` (the live readers: dashboard, progress, MLflow) keeps the numbers, the curve and
    the proposals but not the gradient, sample and notice rows only the DataFrames show."""

    keep_rows: bool = True
    step: int = 0  # the step of the newest event folded
    epoch: int = 0  # of the newest step started
    curve: list[dict] = field(default_factory=list)
    proposals: dict[tuple[str, str], dict] = field(default_factory=dict)  # (proposal id, parameter) -> row
    gradients: list[dict] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)
    usage_points: list[tuple[int, str, dict]] = field(default_factory=list)  # (step, stage, cumulative usage)
    started: dict | None = None
    finished: dict | None = None
    sessions: list[list[float]] = field(default_factory=list)  # [start, last event time] per fit() call
    notices: list[dict] = field(default_factory=list)  # what is missing from the other tables, and why
    curves: CurveData = field(default_factory=CurveData)  # the dashboard's and the report's chart data
    contributions: Contributions = field(default_factory=Contributions)  # the person's reasons, edits, feedback
    forecast: dict | None = None  # the last fit()'s `forecast` event data
    forecast_revisions: list[dict] = field(default_factory=list)  # its `forecast_revised` events (what remains)
    credits: list[dict] = field(default_factory=list)  # `credit` events: what each kept change earned
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
        # the final test runs after its step's checkpoint: a pass a kill cut short is run again in full
        self.samples = [r for r in self.samples if r["step"] < step or (r["step"] == step and r["phase"] != "final")]
        self.usage_points = [u for u in self.usage_points if u[0] <= step]
        self._selection = {k: v for k, v in self._selection.items() if k[0] <= step}
        self.notices = [r for r in self.notices if r["step"] <= step]
        self.finished = None

    # -- numbers every reader shows ------------------------------------------------------------------
    @property
    def run_id(self) -> str:
        return (self.finished or {}).get("run_id") or (self.started or {}).get("run_id") or ""

    @property
    def status(self) -> str:
        """run_finished's status (completed, stopped, budget, plateau, failed); before it `running`, or
        `not started` before run_started."""
        if self.finished:
            return self.finished.get("status") or "failed"
        return "running" if self.sessions else "not started"

    @property
    def usage(self) -> dict:
        """The newest cumulative usage `{role: {calls, prompt_tokens, completion_tokens, ...}}` events carried."""
        return dict(self.usage_points[-1][2] or {}) if self.usage_points else {}

    def _ordered_curve(self) -> list[dict]:
        return sorted(self.curve, key=lambda r: r["step"])

    @property
    def baseline(self) -> dict:
        """`{val, test}` before training (step 0)."""
        if self.finished and isinstance(self.finished.get("baseline"), dict):
            return {"val": None, "test": None} | self.finished["baseline"]
        first = next((r for r in self.curve if r["step"] == 0), {})
        return {"val": first.get("val"), "test": first.get("test")}

    @property
    def final(self) -> dict:
        """`{val, test}` after training: run_finished's; before the end the best validation so far."""
        if self.finished and isinstance(self.finished.get("final"), dict):
            return {"val": None, "test": None} | self.finished["final"]
        return {"val": self.best_val, "test": None}

    @property
    def best_val(self) -> float | None:
        """The best validation score so far (the baseline's until a candidate beats it)."""
        if self.finished:
            return self.finished.get("best_val")
        known = [r["best_val"] for r in self._ordered_curve() if r["best_val"] is not None]
        return known[-1] if known else None

    @property
    def best_step(self) -> int:
        """The step whose kept value gave the best validation score (0: the baseline's values)."""
        if self.finished and isinstance(self.finished.get("best_step"), int):
            return self.finished["best_step"]
        step, best = 0, None
        for row in self._ordered_curve():
            if row["best_val"] is not None and row["best_val"] != best:
                step, best = row["step"], row["best_val"]
        return step

    @property
    def last_step(self) -> int:
        """The newest step the curve has (0: only the baseline)."""
        return max((r["step"] for r in self.curve), default=0)

    @property
    def errored_samples(self) -> int | None:
        """Sample runs whose calls failed after retries; known when the run ends (else None)."""
        return self.finished.get("errored_samples") if self.finished else None

    def totals(self, prices: usage_totals.Prices | None = None, usage: dict | None = None) -> dict:
        """Calls, tokens and (with prices) cost of the newest usage (or of `usage`, a live snapshot)."""
        return usage_totals.totals(self.usage if usage is None else usage, prices)

    @property
    def forecast_revised(self) -> dict | None:
        """The newest re-estimate of this fit's forecast, or None."""
        return self.forecast_revisions[-1] if self.forecast_revisions else None

    def spent_vs_forecast(self, usage: dict | None = None) -> str:
        """`12 of ~40 forecast calls` (this fit() since its forecast, against its newest re-estimate), or ""."""
        return forecast_frames.spent_vs_forecast(self.usage if usage is None else usage, self.forecast,
                                                 self.forecast_revised)

    @property
    def wall_time_s(self) -> float:
        """Seconds spent training, summed over sessions (a resumed run's downtime is not counted)."""
        return sum(end - start for start, end in self.sessions)

    def fold_line(self, line: bytes) -> None:
        """Fold one line of events.jsonl. Of a forward event's line, or of an event no table reads,
        only the step and the time (for the session's length) are read; a forward line is kept as it
        is and parsed when the samples table is first asked for."""
        head = _LINE_HEAD.match(line)
        if head is not None and head.group(1) not in _FOLDED and line.rstrip().endswith(b"}"):
            if self.sessions:  # an event no table reads (node, checkpoint, ...) still extends its session
                self.sessions[-1][1] = max(self.sessions[-1][1], float(head.group(3)))
            self.step = int(head.group(2))
            if head.group(1) == b"forward" and self.keep_rows:
                self._deferred.append((line, self._proposal_now))
            return
        event, _ = parse_event_line(line)  # damaged lines: RunStore.events() warns about them
        if event is not None:
            self.apply(event)

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

    def apply(self, event: Event) -> None:
        """Fold one event (a delivered one, or one read back from the log)."""
        self.step = event.step
        if event.type == "run_started":
            self.materialize()  # rows of a replayed step are dropped below: parse what came before first
        elif self.sessions:
            self.sessions[-1][1] = max(self.sessions[-1][1], event.time)
        if event.type in CONTRIBUTION_TYPES:
            self.contributions.apply(ev.with_defaults(event))
        handler = getattr(self, "_on_" + event.type, None)
        if not self.keep_rows and event.type in _ROWS_ONLY:
            handler = None  # a live reader's fold skips what only builds rows (most events of a run)
        if handler is None and not hasattr(CurveData, "_on_" + event.type):
            return
        event = ev.with_defaults(event)
        self.curves.apply(event)
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
        self.finished = None  # running again: an earlier fit()'s end is not this one's status

    def _on_step_started(self, e: Event, d: ev.StepStarted) -> None:
        self.epoch = d.epoch

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
            p.update({"validation": d.score, "validation_complete": d.complete, "best_before": d.best,
                      "gain": d.diff, "gain_low": d.low, "gain_high": d.high, "confidence": d.confidence,
                      "won": len(d.won) if d.diff is not None else None,
                      "lost": len(d.lost) if d.diff is not None else None})

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

    def _on_forecast(self, e: Event, d: ev.ForecastMade) -> None:
        self.forecast, self.forecast_revisions = dataclass_dict(d), []

    def _on_forecast_revised(self, e: Event, d: ev.ForecastRevised) -> None:
        self.forecast_revisions.append(dataclass_dict(d))

    def _on_credit(self, e: Event, d: ev.Credit) -> None:
        self.credits = [c for c in self.credits if c["proposal_id"] != d.proposal_id] + [dataclass_dict(d)]

    def _on_run_finished(self, e: Event, d: ev.RunFinished) -> None:
        self.finished = dataclass_dict(d)
        self.usage_points.append((e.step, "final", d.usage))


# event types parsed as their line is read (forward lines wait for the samples table; other types
# no table or chart reads are not parsed at all)
_FOLDED = frozenset(name[4:].encode() for cls in (RunFold, CurveData) for name in dir(cls)
                    if name.startswith("_on_") and name != "_on_forward") | {t.encode() for t in CONTRIBUTION_TYPES}


# event types whose handlers only build the gradient, sample and notice rows (not kept with keep_rows=False)
_ROWS_ONLY = frozenset({"forward", "selection", "gradient", "skipped", "disconnected", "no_proposal",
                        "checkpoint_skipped"})


def dataclass_dict(d: Any) -> dict:
    return {k: getattr(d, k) for k in d.__dataclass_fields__}

