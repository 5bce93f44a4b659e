"""The training loop of LLM-AutoDiff, as a resumable, observable, stoppable process.

`Trainer` is the one public face. It composes parts, each an object given what it needs in its
constructor (no part reads another's private fields):

    RunState (run_state.py)        what the run is now; a checkpoint writes and restores it whole
    RunEmitter (emitter.py)        emits typed events with the run's id and step
    ControlChannel (controls.py)   pause / resume / step / stop / pin / exclude / auto-approve, into the run
    RunMeter (usage.py)            usage per role and the one budget of each fit()
    Schedule (schedule.py)         epochs, steps and the seeded minibatches
    Evaluator (evaluation.py)      forward passes and evaluations through the memo; candidates via trying()
    FaultReporter (faults.py)      a helper model that fails, a parameter cut off: an event, not a crash
    GateRuns (gate_runs.py)        the minibatch and validation gates
    ProposalLoop (proposals.py)    propose, check, gate, approve, keep (the one commit) or revert
    TrainingStep (step.py)         the baseline; forward -> select -> backward -> proposals -> checkpoint

Every stage emits an event (docs/EVENTS.md); the run store, the CLI and the widgets are subscribers.
A checkpoint after each step lets a killed run resume; with the LLM cache a resumed run ends exactly
where an uninterrupted one would.
"""
from __future__ import annotations

import copy
import threading
import warnings
from concurrent.futures import Future
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .approval import ApprovalDesk, AutoApproval, HumanApproval, PendingProposal
from ..engine.backward import BackwardEngine
from ..engine.backward_completion import backward_style
from ..errors import BudgetExceeded, ConfigError, DamagedFileWarning, RunStopped, WorkbenchError
from ..records.eval_memo import check_unique_ids
from ..records.events import (CheckpointSkipped, CheckpointWritten, EndpointProbe, EventBus, RunFinished, RunStarted,
                              StepFinished)
from ..engine.loss import EvalFn, get_eval_fn
from ..optim import DemoOptimizer, LeakCheck, TextOptimizer
from ..optim.person_feedback import PersonFeedback
from ..redact import redact
from ..optim.optimizer_completion import optimizer_style
from ..records.store import new_run_id
from .branch_decision import decisions_still_due
from .checkpoint import back_to_checkpoint, config_record, open_run_folder
from .config import RunSummary, TrainConfig
from .controls import Control, ControlChannel, Pause, Resume, Step, Stop
from .emitter import RunEmitter
from .evaluation import Evaluator
from .faults import FaultReporter
from .forecast_and_credit import ForecastAndCredit
from .gate_runs import GateRuns
from .baseline_retry import retry_errored_baseline
from .large_inputs import warn_of_large_inputs
from .lifecycle import RunThread, wants_progress_bar
from .paid_calls import usage_paid_before
from .proposals import ProposalLoop
from .resume_record import checkpoint_then_events, log_missing_events
from .run_state import RunState
from .schedule import Schedule
from .step import TrainingStep
from .teaching import Teaching
from .usage import RunMeter

if TYPE_CHECKING:
    from ..engine.example import Example
    from ..engine.runner import BatchResult
    from ..llm.models import Models
    from ..llm.types import ChatModel
    from ..engine.pipeline import Pipeline

__all__ = ["RunSummary", "TrainConfig", "Trainer"]


class Trainer:
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
        self._splits = (list(train), list(val), list(test))  # the parts get them now: read-only afterwards
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
        self.selection_threshold = min(self.config.pass_threshold, self.config.backprop_threshold)
        self.text_optimizer = TextOptimizer(models.optimizer, style=optimizer_style(models),
                                            pass_threshold=self.selection_threshold)
        self.demo_optimizer = DemoOptimizer(self.config.num_demos, seed=self.config.seed)
        self.forced_decisions: dict = {}  # proposal id -> the Decision a branch takes on it (training/branching.py)
        self.run_state = RunState(self.params, demo_pool=self.demo_optimizer.pool)
        self._emit = RunEmitter(self.bus, self.run_state)
        self.meter = RunMeter(models, teacher, self.config, self.run_state)
        self.controls = ControlChannel(self.run_state, self.approval, self._emit, self.meter.check_budget)
        self.schedule = Schedule(self.train, self.config)
        self.leak_check = LeakCheck(e.target for e in self.train)  # a candidate that copies a target is refused
        self.teaching = Teaching(self.params, [e.id for e in self.train], [c.name for c in pipeline.components()],
                                 self.leak_check, self._emit, lambda: self.run_state.step,
                                 inbox=self.run_state.person_feedback)
        self._thread = RunThread()
        self._fitting = threading.Lock()
        self._saved: dict | None = None  # the state of the last checkpoint written or resumed from
        self._detach_progress: Callable[[], None] | None = None
        self.concurrency_applied: int | None = None  # what the endpoint's clients were set to
        run_dir = Path(run_dir) if run_dir else Path(runs_root) / new_run_id(task or "run")
        self.store, saved, skipped = open_run_folder(run_dir, resume, config_record(
            task, pipeline, self.config, models, self._splits, self.approval))
        self.resumed_from: int | None = None
        self._resumed_state = saved  # whose missing events (a kill right after its file) fit() logs
        if saved is not None:
            self.run_state.from_checkpoint(saved)
            self.teaching.recover(self.store)  # feedback given after that checkpoint
            self._saved = copy.deepcopy(saved)
            self.resumed_from = self.step
            self.forced_decisions.update(decisions_still_due(self.store.config(), self.step))  # a branch resumed
        if resume:  # the calls paid after the checkpoint (or before a start again) count too
            self.run_state.usage_before = usage_paid_before(self.store.path, self.run_state.usage_before)
        self.run_id = self._emit.run_id = self.store.run_id
        self._build_parts()
        self.bus.subscribe(self.store.on_event, critical=True)
        self.bus.subscribe(self.teaching.saw_node, {"node"})  # node names the pipeline's attributes do not show
        self._probes_announced: list[dict] = []  # endpoint_probe data already on this bus (the CLI announces its own)
        self.bus.subscribe(lambda e: self._probes_announced.append(dict(e.data)), {"endpoint_probe"})
        for path, reason in skipped:
            warnings.warn(f"skipped damaged checkpoint {path}: {reason}", DamagedFileWarning, stacklevel=2)
            self._emit(CheckpointSkipped(path=path, reason=reason))

    def _build_parts(self) -> None:
        """The parts that run the algorithm, each given what it needs (the run folder exists now)."""
        state, emit, cfg = self.run_state, self._emit, self.config
        self.evaluator = Evaluator(self.pipeline, self.eval_fn, self.models, cfg, state, self.store.path,
                                   self.controls, self.meter, emit)
        self.faults = FaultReporter(state, emit)
        self.gates = GateRuns(self.evaluator, cfg, self.val, self.selection_threshold, emit)
        self.proposals = ProposalLoop(state=state, config=cfg, pipeline=self.pipeline,
                                      text_optimizer=self.text_optimizer, demo_optimizer=self.demo_optimizer,
                                      leak_check=self.leak_check, approval=self.approval, desk=self.desk,
                                      gates=self.gates, evaluator=self.evaluator, faults=self.faults,
                                      controls=self.controls, selection_threshold=self.selection_threshold, emit=emit,
                                      teaching=self.teaching, forced_decisions=self.forced_decisions)
        self.training_step = TrainingStep(state=state, schedule=self.schedule, pipeline=self.pipeline,
                                          splits=(self.train, self.val, self.test), config=cfg,
                                          evaluator=self.evaluator, backward_engine=self.backward_engine,
                                          proposals=self.proposals, demo_optimizer=self.demo_optimizer,
                                          teacher=self.teacher, faults=self.faults, controls=self.controls,
                                          meter=self.meter, selection_threshold=self.selection_threshold,
                                          emit=emit, checkpoint=self._checkpoint, teaching=self.teaching)
        self.costs = ForecastAndCredit(self.pipeline, self._splits, self.eval_fn, self.models, cfg, state,
                                       self.schedule, self.evaluator, self.meter, emit, self.teacher is not None,
                                       training_elsewhere=self._fitting.locked)

    train = property(lambda self: self._splits[0], doc="The training split (fixed at construction).")
    val = property(lambda self: self._splits[1], doc="The validation split (fixed at construction).")
    test = property(lambda self: self._splits[2], doc="The test split (fixed at construction).")

    # -- what the run is now (RunState), read-only here ---------------------------------------------
    step = property(lambda self: self.run_state.step, doc="The last step begun (0: none yet).")
    best_val = property(lambda self: self.run_state.best_val, doc="The best validation score so far.")
    best_step = property(lambda self: self.run_state.best_step, doc="The step that earned `best_val`.")
    baseline = property(lambda self: self.run_state.baseline, doc="`{val, test}` before any step.")
    curve = property(lambda self: self.run_state.curve, doc="One point per step: scores, kept, reverted.")
    memory = property(lambda self: self.run_state.memory, doc="The optimizer's memory, per parameter.")
    errored_samples = property(lambda self: self.run_state.errored_samples)
    usage_before = property(lambda self: self.run_state.usage_before, doc="What a resumed run spent before.")
    pinned = property(lambda self: self.run_state.sample_flags()[0], doc="Pinned samples (send `Pin` to change).")
    excluded = property(lambda self: self.run_state.sample_flags()[1], doc="Excluded samples (send `Exclude`).")
    eval_memo = property(lambda self: self.evaluator.memo, doc="Every evaluation of this run (records.eval_memo).")
    steps_per_epoch = property(lambda self: self.schedule.steps_per_epoch)
    total_steps = property(lambda self: self.schedule.total_steps)
    forecast, ablate = property(lambda self: self.costs.forecast), property(lambda self: self.costs.ablate)

    def batch_for(self, step: int) -> list["Example"]:
        """The minibatch of a step (a seeded shuffle per epoch, so resume sees the same batches)."""
        return self.schedule.batch_for(step)

    def carried_samples(self) -> list[str]:
        return self.run_state.carried_samples()

    def usage(self) -> dict[str, dict]:
        """This run's usage: since this trainer's first fit(), plus what a resumed run spent before."""
        return self.meter.usage()

    def evaluate(self, examples: Sequence["Example"], *, split: str, phase: str,
                 proposal_id: str | None = None) -> "BatchResult":
        """Score `examples` with the current values (through the memo), with an `eval` event."""
        return self.evaluator.evaluate(examples, split=split, phase=phase, proposal_id=proposal_id)

    # -- controls (any thread) ------------------------------------------------------------------------
    def control(self, control: Control) -> None:
        """Send a control (`workbench.training.controls`: Pause, Resume, Step, Stop, Pin, Exclude,
        AutoApprove) into the run; the run applies it between LLM calls and records a `control` event."""
        self.controls.send(control)

    def pause(self) -> None:
        self.control(Pause())

    def resume(self) -> None:
        self.control(Resume())

    def step_once(self) -> None:
        """Run exactly one more step, then pause (for teaching)."""
        self.control(Step())

    def stop(self) -> None:
        """Stop at the next point between LLM calls; the last checkpoint stays valid."""
        self.control(Stop())

    @property
    def is_paused(self) -> bool:
        return self.controls.paused

    @property
    def pending(self) -> PendingProposal | None:
        return self.desk.pending

    def decide(self, proposal_id: str, action: str, text: str | None = None, by: str = "person", *,
               value: str | None = None, reason: str | None = None) -> bool:
        """Answer the pending proposal; False (and no effect) when `proposal_id` is not pending.

        `value` (or `text`): the person's value for "edit". `reason`: the person's words on the
        proposed value (on reject above all); every later optimizer call for the parameter sees them,
        the remaining attempts of this step included."""
        return self.desk.answer(proposal_id, action, value if value is not None else text, by, reason=reason)

    def feedback(self, text: str, *, sample_id: str | None = None, node: str | None = None,
                 parameter: str | None = None) -> PersonFeedback:
        """A person's feedback as a gradient with source "person" (any thread; it acts from the next
        backward or optimizer call): on a training sample's output (`sample_id`), on a node's output
        for it (`node`), or on a `parameter`. Returns what was accepted; raises `FeedbackRefused`
        naming the problem (a leaked training target, an unknown sample / node / parameter, no text)."""
        return self.teaching.give(text, sample_id=sample_id, node=node, parameter=parameter)

    # -- the run --------------------------------------------------------------------------------------
    def start(self, *, paused: bool = False) -> Future:
        """Run `fit()` in a worker thread and return at once; errors land in the returned Future."""
        if self._thread.is_running:
            raise WorkbenchError("this trainer is already running")
        if paused:
            self.controls.hold()
        self.controls.open()  # controls sent from now on wait for the run's thread

        def fit_then_release() -> RunSummary:
            try:
                return self.fit()
            finally:
                self.controls.close()  # also when fit() refused to begin
        return self._thread.start(fit_then_release, name=f"workbench-{self.run_id}")

    @property
    def is_running(self) -> bool:
        """True while a `start()`ed run has not finished."""
        return self._thread.is_running

    @property
    def future(self) -> Future | None:
        """The Future of the last `start()`, or None."""
        return self._thread.future

    def wait(self, timeout: float | None = None) -> RunSummary:
        return self._thread.wait(timeout)

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
        self._emit(RunStarted(run_id=self.run_id, config=asdict(self.config),
                              parameters=[p.to_dict() for p in self.params.values()],
                              splits={"train": len(self.train), "val": len(self.val), "test": len(self.test)},
                              resumed_from=self.step if self.baseline else None))
        self._announce_probes()
        log_missing_events(self.store.path, self._resumed_state, self._emit)
        self._resumed_state = None
        if not self.baseline:  # once per run: its first fit() (or the start again of one that had no baseline)
            warn_of_large_inputs((self.train, self.val, self.test), self._emit)
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
                self.training_step.baseline()
                self.costs.revise("baseline")  # the forecast of what remains, from the baseline's scores
            else:  # an outage during the baseline: the same samples before and after
                retry_errored_baseline(self.run_state, self.evaluator, self.models.task,
                                       {"val": self.val, "test": self.test}, self.store, self._emit)
            while self.step < self.total_steps:
                self.controls.obey()
                self.training_step.run(self.step + 1)
                self.costs.revise(f"step {self.step}")  # ... and from what each step observed
                if self.config.patience is not None and self.run_state.stale_steps >= self.config.patience:
                    return "plateau", None
                self.controls.step_ended()
        except RunStopped:
            return "stopped", None
        except BudgetExceeded as exc:
            return "budget", str(exc)
        return "completed", None

    def _announce_probes(self) -> None:
        """Whether each endpoint keeps system messages (Models.notices), once per run record."""
        for notice in getattr(self.models, "notices", None) or []:
            if dict(notice) not in self._probes_announced:
                self._emit(EndpointProbe(**notice))

    def _finish(self, status: str, error: str | None, *, run_test: bool) -> RunSummary:
        back_to_checkpoint(self.run_state, self._saved, self._emit)  # a step left unfinished is reverted
        final = {"val": self.best_val, "test": None}
        if run_test and self.test:
            try:
                final["test"] = self.evaluate(self.test, split="test", phase="final").mean_score
            except (RunStopped, BudgetExceeded) as exc:
                error = error or f"final test skipped: {exc}"
        error = self.costs.credit_at_end(error) if run_test else error  # TrainConfig(credit=True)
        error = redact(error) if error else error  # an endpoint may echo a key in its error message
        summary = RunSummary(self.run_id, status, self.step, self.baseline, final, self.best_val, self.best_step,
                             self.usage(), str(self.store.path), {n: p.value for n, p in self.params.items()}, error,
                             self.errored_samples,
                             {split: len(ids) for split, ids in self.run_state.baseline_errored.items() if ids},
                             self.costs.error())
        self.store.write_summary(summary.to_dict())
        self._emit(RunFinished(**{k: v for k, v in summary.to_dict().items() if k != "parameters"}))
        return summary

    # -- opening and closing a run: controls, usage, budget, concurrency, progress ----------------------
    def _open_run(self) -> None:
        """At the start of each `fit()`: the run applies controls, counts usage, has one budget."""
        self.controls.open()  # a stopped run continues when fit() is called again
        self.schedule.warn_if_epochs_end_first()
        self.meter.open(self.store.path, self.costs.announce())  # the forecast: its event, and the budget relative to it
        if hasattr(self.models, "set_concurrency"):
            self.concurrency_applied = self.models.set_concurrency(self.config.concurrency)
        if wants_progress_bar(self.progress, self.has_dashboard):
            from ..records.progress import attach_progress
            self._detach_progress = attach_progress(self, mode="bar")

    def _close_run(self) -> None:
        self.meter.close()
        self.controls.close()
        if self._detach_progress is not None:
            self._detach_progress()
            self._detach_progress = None

    # -- events and persistence -------------------------------------------------------------------
    def state(self) -> dict:
        """The checkpoint of the run as it is now (`RunState.to_checkpoint`, run_state.py)."""
        return self.run_state.to_checkpoint(self.usage())

    def _checkpoint(self, finished: StepFinished | None = None) -> None:
        """The state as this step's checkpoint, then the step's events (in that order: resume_record.py)."""
        self._saved = checkpoint_then_events(self.store, self.step, self.state(), finished, self._emit)
