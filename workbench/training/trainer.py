"""The training loop of LLM-AutoDiff, as a resumable, observable, stoppable process.

`Trainer` is the one public face; its parts live in `workbench/training/`:
the step (step.py: forward, select, backward), the proposal loop (proposals.py: propose, checks,
approval, decide) and its gates (gate_runs.py: minibatch and validation), the run's lifecycle and
budget (lifecycle.py), and checkpoints (checkpoint.py). Every stage emits an event (docs/EVENTS.md); the run store, the CLI and the widgets
are subscribers. A checkpoint after each step lets a killed run resume; with the LLM cache a resumed
run ends exactly where an uninterrupted one would.
"""
from __future__ import annotations

import copy
import threading
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .approval import ApprovalDesk, AutoApproval, HumanApproval
from ..engine.backward import BackwardEngine
from ..engine.backward_completion import backward_style
from ..errors import BudgetExceeded, ConfigError, DamagedFileWarning, RunStopped, WorkbenchError
from ..records.eval_memo import check_unique_ids
from ..records.events import Event, EventBus, EventData
from ..engine.loss import EvalFn, get_eval_fn
from ..optim import DemoOptimizer, ParameterMemory, TextOptimizer
from ..optim.person_feedback import PersonFeedback
from ..redact import redact
from ..optim.optimizer_completion import optimizer_style
from ..records.store import RunStore, new_run_id
from .checkpoint import checkpoint_state, latest_valid_checkpoint, restore_checkpoint
from .config import RunSummary, TrainConfig
from .faults import FaultReporting
from .gate_runs import GateRuns
from .lifecycle import Lifecycle
from .proposals import ProposalLoop
from .step import TrainingStep
from .teaching import Teaching

if TYPE_CHECKING:
    from ..engine.example import Example
    from ..llm.models import Models
    from ..llm.types import ChatModel
    from ..engine.pipeline import Pipeline

__all__ = ["RunSummary", "TrainConfig", "Trainer"]


class Trainer(TrainingStep, ProposalLoop, GateRuns, Lifecycle, FaultReporting):
    """Trains a pipeline's parameters. `fit()` blocks; `start()` runs it in a worker thread."""

    def __init__(self, pipeline: "Pipeline", train: Sequence["Example"], val: Sequence["Example"],
                 test: Sequence["Example"], eval_fn: EvalFn | str, models: "Models", *,
                 config: TrainConfig | None = None, approval: Any = None, run_dir: str | Path | None = None,
                 runs_root: str | Path = "runs", task: str = "", bus: EventBus | None = None,
                 resume: bool = False, teacher: "ChatModel | None" = None, progress: bool | None = None) -> None:
        if not train:
            raise ConfigError("the training set is empty")
        if not val:
            raise ConfigError("the validation set is empty: proposals are accepted only on validation")
        self.pipeline = pipeline
        self.train, self.val, self.test = list(train), list(val), list(test)
        for split, examples in (("train", self.train), ("val", self.val), ("test", self.test)):
            check_unique_ids(examples, split)  # before a run folder exists
        self.eval_fn = get_eval_fn(eval_fn)
        self.models = models
        self.config = config or TrainConfig()
        self.approval = approval or AutoApproval()
        self.task = task
        self.teacher = teacher  # a stronger model whose correct traces become demos (default: the task model's)
        if teacher is not None and hasattr(models, "adopt"):
            models.adopt("teacher", teacher)  # its endpoint may drop system messages too: probed like the others
        self.bus = bus or EventBus()
        self.progress = progress  # None: a tqdm bar for fit() in a notebook without a dashboard; True/False force it
        self.has_dashboard = False  # set by the dashboard that shows this run
        self.desk = ApprovalDesk()
        self.params = pipeline.named_parameters()  # also checks names are unique
        if not any(p.trainable for p in self.params.values()):
            raise ConfigError(f"{type(pipeline).__name__} has no trainable parameters")
        self.backward_engine = BackwardEngine(models.backward, style=backward_style(models))
        self.text_optimizer = TextOptimizer(models.optimizer, style=optimizer_style(models),
                                            pass_threshold=min(self.config.pass_threshold, self.config.backprop_threshold))
        self.demo_optimizer = DemoOptimizer(self.config.num_demos, seed=self.config.seed)
        self.memory = {name: ParameterMemory(name) for name in self.params}
        self.teaching = Teaching(self.params, [e.id for e in self.train], [c.name for c in pipeline.components()],
                                 lambda: self.leak_check, self._emit, lambda: self.step)
        self.pinned: set[str] = set()
        self.excluded: set[str] = set()
        # state that a checkpoint carries (training/checkpoint.py)
        self.step = 0
        self.best_val: float | None = None
        self.best_step = 0
        self.baseline: dict[str, float | None] = {}
        self.curve: list[dict] = []
        self.usage_before: dict[str, dict] = {}
        self._proposal_counter = 0
        self._stale_steps = 0
        self.errored_samples = 0
        self._init_lifecycle()
        self._init_fault_reporting()
        self._fitting = threading.Lock()
        self._saved: dict | None = None  # the state of the last checkpoint written or resumed from
        # run folder
        run_dir = Path(run_dir) if run_dir else Path(runs_root) / new_run_id(task or "run")
        self.resumed_from: int | None = None
        skipped: list[tuple[str, str]] = []
        if resume:
            self.store = RunStore(run_dir)
            state, skipped = latest_valid_checkpoint(self.store)
            if state is None and not skipped and self.store.ended_before_its_baseline():
                moved = self.store.restart(self._config_record())  # nothing to restore: start it again
                warnings.warn(f"{run_dir} ended before its baseline was checkpointed, so it starts again "
                              f"(its earlier log is kept as {', '.join(p.name for p in moved) or 'nothing'})",
                              UserWarning, stacklevel=2)
            elif state is None:
                why = "".join(f"; {Path(p).name}: {reason}" for p, reason in skipped)
                raise WorkbenchError(f"cannot resume {run_dir}: it has no usable checkpoint{why or ' yet'}")
            else:
                self._restore(state)
                self.teaching.recover(self.store.events())  # feedback given after that checkpoint
                self._saved = copy.deepcopy(state)
                self.resumed_from = self.step
        else:
            self.store = RunStore.create(run_dir, self._config_record())
        self.run_id = self.store.run_id
        self.bus.subscribe(self.store.on_event, critical=True)
        self._probes_announced: list[dict] = []  # endpoint_probe data already on this bus (the CLI announces its own)
        self.bus.subscribe(lambda e: self._probes_announced.append(dict(e.data)), {"endpoint_probe"})
        for path, reason in skipped:
            warnings.warn(f"skipped damaged checkpoint {path}: {reason}", DamagedFileWarning, stacklevel=2)
            self._emit("checkpoint_skipped", path=path, reason=reason)

    # -- the run ----------------------------------------------------------------------------------
    def fit(self) -> RunSummary:
        """Run (or continue) training until done, stopped, out of budget or plateaued; blocks.

        Calling it again continues the same run from where it ended: the baseline is never
        recomputed with trained prompts.
        """
        if isinstance(self.approval, HumanApproval) and self.approval.timeout is None and not self.approval.auto \
                and threading.current_thread() is threading.main_thread():
            raise WorkbenchError("fit() with HumanApproval() and no timeout would block this cell, so no click "
                                 "could ever answer it: use trainer.start() (or the dashboard's Start) and decide "
                                 "in the dashboard, or give HumanApproval a timeout")
        if not self._fitting.acquire(blocking=False):
            raise WorkbenchError("this trainer is already running (fit() or start()); wait for it or stop() it")
        try:
            return self._run()
        finally:
            self._fitting.release()

    def _run(self) -> RunSummary:
        self._emit("run_started", run_id=self.run_id, config=asdict(self.config),
                   parameters=[p.to_dict() for p in self.params.values()],
                   splits={"train": len(self.train), "val": len(self.val), "test": len(self.test)},
                   resumed_from=self.step if self.baseline else None)
        self._announce_probes()
        try:
            self._open_run()
            status, error = self._train_until_done()
        except KeyboardInterrupt:
            self._finish("stopped", "interrupted (Ctrl-C)", run_test=False)
            raise
        except Exception as exc:
            self._finish("failed", f"{type(exc).__name__}: {exc}", run_test=False)
            raise
        else:
            return self._finish(status, error, run_test=status in ("completed", "plateau"))
        finally:
            self._close_run()

    def _train_until_done(self) -> tuple[str, str | None]:
        """(status, error): the baseline once per run, then steps until the last, a plateau, a stop or the budget."""
        try:
            if not self.baseline:
                self._baseline()
            while self.step < self.total_steps:
                self._obey_controls()
                self._train_step(self.step + 1)
                if self.config.patience is not None and self._stale_steps >= self.config.patience:
                    return "plateau", None
                if self._pause_after_step:
                    self._pause_after_step = False
                    self._running.clear()
                    self._emit("control", action="pause")
        except RunStopped:
            return "stopped", None
        except BudgetExceeded as exc:
            return "budget", str(exc)
        return "completed", None

    def _announce_probes(self) -> None:
        """Whether each endpoint keeps system messages (Models.notices), once per run record."""
        for notice in getattr(self.models, "notices", None) or []:
            if dict(notice) not in self._probes_announced:
                self._emit("endpoint_probe", **notice)

    def _finish(self, status: str, error: str | None, *, run_test: bool) -> RunSummary:
        self._back_to_last_checkpoint()
        final = {"val": self.best_val, "test": None}
        if run_test and self.test:
            try:
                final["test"] = self.evaluate(self.test, split="test", phase="final").mean_score
            except (RunStopped, BudgetExceeded) as exc:
                error = error or f"final test skipped: {exc}"
        error = redact(error) if error else error  # an endpoint may echo a key in its error message
        summary = RunSummary(self.run_id, status, self.step, self.baseline, final, self.best_val, self.best_step,
                             self.usage(), str(self.store.path), {n: p.value for n, p in self.params.items()}, error,
                             self.errored_samples)
        self.store.write_summary(summary.to_dict())
        self._emit("run_finished", **{k: v for k, v in summary.to_dict().items() if k != "parameters"})
        return summary

    def feedback(self, text: str, *, sample_id: str | None = None, node: str | None = None,
                 parameter: str | None = None) -> PersonFeedback:
        """A person's feedback, used as a gradient with source "person" (any thread, while the run
        trains or waits for a decision; it acts from the next backward or optimizer call).

        `sample_id`: on that training sample's final output; with `node`: on that node's output for
        the sample (propagated upstream by the backward engine); `parameter`: straight to its
        optimizer. Returns the accepted record; raises `FeedbackRefused` naming the problem (a leaked
        training target, an unknown sample / node / parameter, no text), also recorded as an event.
        """
        return self.teaching.give(text, sample_id=sample_id, node=node, parameter=parameter)

    # -- events and persistence -------------------------------------------------------------------
    def _emit(self, type: "str | EventData", **data: Any) -> None:
        """Emit one event: preferably its typed definition (`self._emit(StepFinished(...))`), so a
        misspelled field fails where it is written; the older form is a type string and keywords."""
        run_id = getattr(self, "run_id", "")
        if isinstance(type, EventData):
            self.bus.emit(type.event(run_id=run_id, step=self.step))
        else:
            self.bus.emit(Event(type, data, run_id=run_id, step=self.step))

    def _config_record(self) -> dict:
        return {"task": self.task, "pipeline": type(self.pipeline).__name__, "config": asdict(self.config),
                "models": {role: getattr(m, "model", "?") for role, m in self.models.by_role().items()},
                "splits": {"train": [e.id for e in self.train], "val": [e.id for e in self.val],
                           "test": [e.id for e in self.test]},
                "approval": type(self.approval).__name__}

    def state(self) -> dict:
        """The checkpoint of the run as it is now (training/checkpoint.py says what it holds)."""
        return checkpoint_state(self)

    def _checkpoint(self) -> None:
        state = self.state()
        path = self.store.write_checkpoint(self.step, state)
        self._saved = copy.deepcopy(state)
        self._emit("checkpoint", path=str(path))

    def _back_to_last_checkpoint(self) -> None:
        """A run that ends in the middle of a step (stop, budget, error) goes back to its last checkpoint.

        So the summary, the checkpoint, `workbench runs` and an export name the same step, and the best
        score is one the exported values earned. What the unfinished step kept is reverted, with an
        `update` event each; a resume redoes the step (from the response cache where it was paid for).
        """
        if self._saved is None or self._saved["step"] == self.step:
            return
        unfinished = self.step
        before = {name: p.value for name, p in self.params.items()}
        restore_checkpoint(self, self._saved, keep_usage=True)
        for name, p in self.params.items():
            if p.value != before[name]:
                self._emit("update", proposal_id=f"step-{unfinished}-unfinished", parameter=name, accepted=False,
                           value=p.value, reason=f"step {unfinished} did not finish; back to the checkpoint of "
                                                 f"step {self.step}")

    def _restore(self, state: dict) -> None:
        restore_checkpoint(self, state)
