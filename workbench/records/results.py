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
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import pandas as pd

from . import events as ev
from . import usage_totals
from .compare import Comparison, compare
from .family import branch_record
from ..errors import DamagedFileWarning, WorkbenchError
from .events import Event
from .branch_contributions import contributions_of
from .branch_curve import with_inherited
from .call_ledger import ledger_usage, most_of
from .contributions import CONTRIBUTION_COLUMNS
from .fold import CURVE_COLUMNS, NOTICE_COLUMNS, PROPOSAL_COLUMNS, RunFold
from .forecast_frames import (CREDIT_COLUMNS, FORECAST_COLUMNS, REVISION_COLUMNS, credit_rows, forecast_rows,
                              revision_rows)
from .frames import TextFrame
from .blobs import expand_line
from .report import write_report
from .run_list import INCOMPLETE_START, folder_problems, restart_note, run_folders
from .store import RunStore, read_events
from .value_makers import maker_of, makers_of

if TYPE_CHECKING:
    from .live import LiveRun

__all__ = ["Run", "RunFolderError", "open_run", "runs"]

GRADIENT_COLUMNS = ["step", "sample_id", "node_id", "component", "call_index", "target", "target_kind", "score",
                    "text", "source"]
SAMPLE_COLUMNS = ["step", "split", "phase", "proposal_id", "sample_id", "inputs", "prediction", "target", "score",
                  "status", "error", "seconds", "selected", "selection_reason"]
USAGE_COLUMNS = ["step", "stage", "role", "calls", "prompt_tokens", "completion_tokens", "tokens", "cache_hits",
                 "latency_s"]
RUNS_COLUMNS = ["run_id", "task", "status", "steps", "baseline_val", "best_val", "baseline_test", "test", "calls",
                "tokens", "wall_time_s", "started", "parent", "branch_step", "path", "error"]


class RunFolderError(WorkbenchError):
    """A path given to `open_run` is not a run folder (or a trainer was expected)."""


def usage_rows(points: Iterable[tuple[int, str, dict]], baseline: dict | None = None) -> list[dict]:
    """Per-step usage from cumulative snapshots: each row is what was spent since the previous one.

    `baseline` is the cumulative usage after the baseline evaluation (step 0), when known.
    """
    rows, before = [], {}
    points = ([(0, "baseline", baseline)] if baseline else []) + list(points)
    for step, stage, usage in points:
        for role, now in sorted(usage_totals.role_usages(usage)):
            spent = usage_totals.delta(now, before.get(role, {}))
            if not any(spent.values()):
                continue  # this role spent nothing in this stretch
            rows.append({"step": step, "stage": stage, "role": role, **spent, "tokens": usage_totals.tokens(spent)})
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
        self._tables = RunFold()

    def __repr__(self) -> str:
        summary = self.summary  # the status and step open_run, runs() and `workbench runs` agree on
        return f"Run({self.run_id!r}, {summary.get('status')}, {summary.get('steps') or 0} steps, " \
               f"{len(self.tables.proposals)} proposals, path={str(self.path)!r})"

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def is_live(self) -> bool:
        return self.trainer is not None and getattr(self.trainer, "is_running", False)

    @property
    def tables(self) -> RunFold:
        """The folded event log, read incrementally: complete lines appended since the last look."""
        log = self.path / "events.jsonl"
        try:
            size = log.stat().st_size
        except FileNotFoundError:
            size = 0
        if size < self._offset:  # the log was replaced: start over
            self._tables, self._offset = RunFold(), 0
        if size > self._offset:
            with open(log, "rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read(size - self._offset)
            complete = chunk.rfind(b"\n") + 1  # a line still being written waits for its end
            for line in chunk[:complete].splitlines():
                if line.strip():
                    self._tables.fold_line(expand_line(line, self.path))
            self._offset += complete
        return self._tables

    def events(self) -> list[Event]:
        """The raw events, in order (optional fields filled in)."""
        return [ev.with_defaults(e) for e in read_events(self.path / "events.jsonl")]

    # -- the tables ------------------------------------------------------------------------------
    @property
    def curve(self) -> pd.DataFrame:
        """One row per step (0 = baseline): minibatch score, validation score and best so far, test
        (baseline at step 0, final at the last step), proposals accepted and rejected, unix time. A branch's
        starts with the rows it inherits up to its branch point, `from_run` naming the run that made them."""
        rows = sorted(self.tables.curve, key=lambda r: r["step"])
        if branch_record(self.path) is not None:
            rows = with_inherited(self.path, rows)
        return _frame(rows, [*CURVE_COLUMNS, "from_run"])

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
        own = branch_record(self.path) is None  # a branch's include what its parent's person gave before it
        frame = _frame((self.tables.contributions if own else contributions_of(self.path)).rows, CONTRIBUTION_COLUMNS)
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
    def forecast(self) -> pd.DataFrame:
        """The last fit()'s forecast per role and measure (least / expected / most) and, once it ended,
        the actual spend, the expected value's relative error and whether the actual fell inside."""
        finished = self.tables.finished or {}
        return _frame(forecast_rows(self.tables.forecast, finished.get("forecast_error")), FORECAST_COLUMNS)

    @property
    def forecast_revisions(self) -> pd.DataFrame:
        """The last fit()'s re-estimates (after the baseline, after each step) per role, calls and tokens: the
        whole fit as each saw it (spent before it + its range of the rest) and, once it ended, the actual spend."""
        finished = self.tables.finished or {}
        return _frame(revision_rows(self.tables.forecast, self.tables.forecast_revisions,
                                    finished.get("usage") if finished else None), REVISION_COLUMNS)

    @property
    def credit(self) -> pd.DataFrame:
        """What each kept change earned: validation with and without it (`Trainer.ablate`), and the run that
        kept it (`kept_by`: on a branch, its parent for the changes before the branch point)."""
        credits = self.tables.credits
        makers = makers_of(RunStore(self.path)) if credits else []
        return _frame(credit_rows(credits, lambda step: (maker_of(step, makers) or (None, None))[1]), CREDIT_COLUMNS)

    @property
    def usage(self) -> pd.DataFrame:
        """Calls, tokens, cache hits and latency per role and step (baseline = step 0; `final` is the
        test run after the last step; `in progress` what a live run has spent since its last step;
        `unfinished` what a killed run, or one running in another process, paid after it: calls.jsonl)."""
        points = list(self.tables.usage_points)
        if self.trainer is not None and self.tables.finished is None:
            points.append((getattr(self.trainer, "step", 0), "in progress", self.trainer.usage()))
        elif self.tables.finished is None:  # killed, or running elsewhere: calls.jsonl has what the step paid
            last = points[-1][2] if points else self._baseline_usage()
            step = self.tables.last_step + 1 if last is not None else 0  # (none yet: killed in its baseline)
            points.append((step, "unfinished", most_of(last or {}, ledger_usage(self.path))))
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
        status = "running" if self.is_live else "running or interrupted"
        if not self.is_live and not t.sessions and RunStore(self.path).never_started():
            status = INCOMPLETE_START  # as `workbench runs` and runs() say
        known = {"run_id": self.run_id, "status": status,
                 "steps": t.last_step, "baseline": t.baseline, "final": t.final, "best_val": t.best_val}
        return known if self.is_live else known | self._checkpointed_beyond_the_log(t.last_step)

    def _checkpointed_beyond_the_log(self, logged_step: int) -> dict:
        """A kill between a step's checkpoint file and its events leaves the log a step behind; resume,
        `workbench runs` and export go on from the checkpoint, so its step and best score are the run's."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DamagedFileWarning)  # damage is `workbench runs`' to report
            try:
                state = RunStore(self.path).latest_checkpoint() or {}
            except WorkbenchError:
                return {}
        if not isinstance(state.get("step"), int) or state["step"] <= logged_step:
            return {}
        return {"steps": state["step"], "best_val": state.get("best_val"),
                "final": {"val": state.get("best_val"), "test": None}}

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
        return self.tables.wall_time_s

    @property
    def family(self) -> Comparison:
        """This run's tree (parent, branches, their branches) side by side: curves on one chart, final
        prompts as diffs (records/compare.py)."""
        return compare(self.path)

    def report(self, path: str | os.PathLike = "report.html", *,
               prices: dict[str, tuple[float, float]] | None = None) -> Path:
        """Write the self-contained HTML report of this run (see `workbench.records.report`)."""
        return write_report(self, path, prices=prices)


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
    if not problems and RunStore(folder).never_started():
        return row | {"status": INCOMPLETE_START, "error": restart_note(folder)}
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        row["task"] = config.get("task") or None
        branch = config.get("branch") if isinstance(config.get("branch"), dict) else {}
        row["parent"], row["branch_step"] = branch.get("parent"), branch.get("step")  # a branch: where it began
    except (OSError, ValueError, AttributeError):
        pass  # already among the problems
    run = Run(folder)
    try:
        summary = run.summary  # the run's own curve rows (a branch's inherited ones would read its parent's log)
        curve = _frame(run.tables.curve, CURVE_COLUMNS)
        usage = run.tables.finished.get("usage") if run.tables.finished else None
        if usage is None:  # not finished: the ledger also holds the calls paid after the last checkpoint
            state = RunStore(folder).latest_checkpoint() or {}
            usage = most_of(state.get("usage") or run.tables.usage, ledger_usage(folder))
    except Exception as exc:  # a damaged folder is a row, not a crash
        problems.append(f"{type(exc).__name__}: {exc}")
        summary, curve, usage = {}, pd.DataFrame(columns=CURVE_COLUMNS), {}
    totals = usage_totals.totals(usage)
    row.update({
        "status": "damaged" if problems else summary.get("status"),
        "steps": summary.get("steps"),
        "baseline_val": (summary.get("baseline") or {}).get("val"),
        "best_val": summary.get("best_val"),
        "baseline_test": (summary.get("baseline") or {}).get("test"),
        "test": (summary.get("final") or {}).get("test"),
        "calls": totals["calls"],
        "tokens": totals["tokens"],
        "wall_time_s": round(run.wall_time_s, 3) if run.tables.sessions else None,
        "started": pd.to_datetime(run.tables.sessions[0][0], unit="s", utc=True) if run.tables.sessions else None,
        "error": "; ".join(problems) or summary.get("error"),
    })
    if len(curve) and row["steps"] is None:
        row["steps"] = int(curve["step"].max())
    return row
