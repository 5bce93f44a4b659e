"""The training loop of LLM-AutoDiff, as a resumable, observable, stoppable process.

One step: forward a minibatch (one graph per sample) -> select failed samples (+ a few passing
ones) -> backward (textual gradients) -> propose new values -> cheap minibatch gate -> approval
(policy or person) -> validation gate -> keep or revert. Every stage emits an event (docs/EVENTS.md);
the run store, the CLI and the widgets are subscribers. A checkpoint after each step lets a killed
run resume; with the LLM cache a resumed run ends exactly where an uninterrupted one would.
"""
from __future__ import annotations

import contextlib
import math
import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from .approval import ApprovalDesk, AutoApproval, Decision, PendingProposal
from .backward import BackwardEngine
from .errors import BudgetExceeded, ConfigError, RunStopped, WorkbenchError
from .events import Event, EventBus
from .loss import EvalFn, get_eval_fn
from .optim import Attempt, DemoOptimizer, ParameterMemory, TextOptimizer, check_constraints
from .optim.demo_optimizer import Demo
from .optim.text_optimizer import summarise_gradients
from .parameter import Parameter, Role
from .runner import BatchResult, SampleResult, run_batch
from .selection import select_for_backward
from .store import RunStore, new_run_id

if TYPE_CHECKING:
    from .datasets import Example
    from .graph import NodeRecord
    from .llm.models import Models
    from .llm.types import ChatModel
    from .pipeline import Pipeline


@dataclass
class TrainConfig:
    """Every knob of a run; stored in the run folder and in each export's provenance."""

    max_steps: int = 12
    epochs: int = 1
    batch_size: int = 4
    seed: int = 0
    concurrency: int = 8
    pass_threshold: float = 1.0
    max_failed: int = 2  # failed samples back-propagated per step
    max_correct: int = 2  # passing samples added for contrast
    num_candidates: int = 1  # proposals per parameter per step
    optimize: str = "all"  # "all" trained parameters each step, or "one" at a time (round robin)
    tie_rule: str = "strict"  # "strict": validation must beat the best; "equal": a tie is kept
    min_gain: float = 0.0  # a win must beat the best by more than this (noise margin on small val sets)
    early_stop_validation: bool = True  # stop validating a candidate once it can no longer win
    num_demos: int = 3
    max_calls: int | None = None
    max_tokens: int | None = None
    max_seconds: float | None = None
    patience: int | None = None  # stop after this many steps without a validation improvement
    max_error_share: float = 0.5  # stop when more than this share of a batch errors

    def __post_init__(self) -> None:
        if self.optimize not in ("all", "one"):
            raise ConfigError(f"optimize must be 'all' or 'one', not {self.optimize!r}")
        if self.tie_rule not in ("strict", "equal"):
            raise ConfigError(f"tie_rule must be 'strict' or 'equal', not {self.tie_rule!r}")
        for name in ("max_steps", "epochs", "batch_size", "concurrency", "num_candidates"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, not {getattr(self, name)}")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown training settings {unknown}; known: {sorted(known)}")
        return cls(**d)


@dataclass
class RunSummary:
    run_id: str
    status: str
    steps: int
    baseline: dict[str, float | None]
    final: dict[str, float | None]
    best_val: float | None
    best_step: int
    usage: dict
    run_dir: str | None
    parameters: dict[str, str]
    error: str | None = None
    errored_samples: int = 0  # sample runs whose calls failed after retries: kept out of every score

    def to_dict(self) -> dict:
        return asdict(self)


class Trainer:
    """Trains a pipeline's parameters. `fit()` blocks; `start()` runs it in a worker thread."""

    def __init__(self, pipeline: "Pipeline", train: Sequence["Example"], val: Sequence["Example"],
                 test: Sequence["Example"], eval_fn: EvalFn | str, models: "Models", *,
                 config: TrainConfig | None = None, approval: Any = None, run_dir: str | Path | None = None,
                 runs_root: str | Path = "runs", task: str = "", bus: EventBus | None = None,
                 resume: bool = False, teacher: "ChatModel | None" = None) -> None:
        if not train:
            raise ConfigError("the training set is empty")
        if not val:
            raise ConfigError("the validation set is empty: proposals are accepted only on validation")
        self.pipeline = pipeline
        self.train, self.val, self.test = list(train), list(val), list(test)
        self.eval_fn = get_eval_fn(eval_fn)
        self.models = models
        self.config = config or TrainConfig()
        self.approval = approval or AutoApproval()
        self.task = task
        self.teacher = teacher  # a stronger model whose correct traces become demos (default: the task model's)
        self.bus = bus or EventBus()
        self.desk = ApprovalDesk()
        self.params = pipeline.named_parameters()  # also checks names are unique
        if not any(p.trainable for p in self.params.values()):
            raise ConfigError(f"{type(pipeline).__name__} has no trainable parameters")
        self.backward_engine = BackwardEngine(models.backward)
        self.text_optimizer = TextOptimizer(models.optimizer, num_candidates=self.config.num_candidates)
        self.demo_optimizer = DemoOptimizer(self.config.num_demos, seed=self.config.seed)
        self.memory = {name: ParameterMemory(name) for name in self.params}
        self.pinned: set[str] = set()
        self.excluded: set[str] = set()
        # state that a checkpoint carries
        self.step = 0
        self.best_val: float | None = None
        self.best_step = 0
        self.baseline: dict[str, float | None] = {}
        self.curve: list[dict] = []
        self.usage_before: dict[str, dict] = {}
        self._proposal_counter = 0
        self._stale_steps = 0
        self.errored_samples = 0
        # control
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._pause_after_step = False
        self._started_at = 0.0
        self._future: Future | None = None
        # run folder
        run_dir = Path(run_dir) if run_dir else Path(runs_root) / new_run_id(task or "run")
        self.resumed_from: int | None = None
        if resume:
            self.store = RunStore(run_dir)
            state = self.store.latest_checkpoint()
            if state is None:
                raise WorkbenchError(f"cannot resume {run_dir}: it has no checkpoint yet")
            self._restore(state)
            self.resumed_from = self.step
        else:
            self.store = RunStore.create(run_dir, self._config_record())
        self.run_id = self.store.run_id
        self.bus.subscribe(self.store.on_event, critical=True)

    # -- public control (any thread) ---------------------------------------------------------------
    def start(self, *, paused: bool = False) -> Future:
        """Run `fit()` in a worker thread and return at once; errors land in the returned Future."""
        if self._future is not None and not self._future.done():
            raise WorkbenchError("this trainer is already running")
        if paused:
            self._running.clear()
        self._future = Future()

        def work() -> None:
            try:
                self._future.set_result(self.fit())
            except BaseException as exc:  # reaches the caller through the Future
                self._future.set_exception(exc)
        threading.Thread(target=work, name=f"workbench-{self.run_id}", daemon=True).start()
        return self._future

    def pause(self) -> None:
        self._running.clear()
        self._emit("control", action="pause")

    def resume(self) -> None:
        self._pause_after_step = False
        self._running.set()
        self._emit("control", action="resume")

    def step_once(self) -> None:
        """Run exactly one more step, then pause (for teaching)."""
        self._pause_after_step = True
        self._running.set()
        self._emit("control", action="step")

    def stop(self) -> None:
        """Stop at the next point between LLM calls; the last checkpoint stays valid."""
        self._stop.set()
        self._running.set()
        self._emit("control", action="stop")

    @property
    def is_paused(self) -> bool:
        return not self._running.is_set()

    @property
    def is_running(self) -> bool:
        """True while a `start()`ed run has not finished."""
        return self._future is not None and not self._future.done()

    @property
    def future(self) -> Future | None:
        """The Future of the last `start()`, or None."""
        return self._future

    @property
    def pending(self) -> PendingProposal | None:
        return self.desk.pending

    def decide(self, proposal_id: str, action: str, text: str | None = None, by: str = "person") -> bool:
        """Answer the pending proposal; False (and no effect) when `proposal_id` is not pending."""
        return self.desk.answer(proposal_id, action, text, by)

    def wait(self, timeout: float | None = None) -> RunSummary:
        if self._future is None:
            raise WorkbenchError("start() the trainer first")
        return self._future.result(timeout)

    # -- the loop ---------------------------------------------------------------------------------
    def fit(self) -> RunSummary:
        self._started_at = time.monotonic()
        status, error = "completed", None
        self._emit("run_started", run_id=self.run_id, config=asdict(self.config),
                   parameters=[p.to_dict() for p in self.params.values()],
                   splits={"train": len(self.train), "val": len(self.val), "test": len(self.test)},
                   resumed_from=self.resumed_from)
        try:
            if self.resumed_from is None:
                self._baseline()
            while self.step < self.total_steps:
                self._gate()
                self._train_step(self.step + 1)
                if self.config.patience is not None and self._stale_steps >= self.config.patience:
                    status = "plateau"
                    break
                if self._pause_after_step:
                    self._pause_after_step = False
                    self._running.clear()
                    self._emit("control", action="pause")
        except RunStopped:
            status = "stopped"
        except BudgetExceeded as exc:
            status, error = "budget", str(exc)
        except KeyboardInterrupt:
            self._finish("stopped", "interrupted (Ctrl-C)", run_test=False)
            raise
        except Exception as exc:
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            self._finish(status, error, run_test=False)
            raise
        return self._finish(status, error, run_test=status in ("completed", "plateau"))

    @property
    def total_steps(self) -> int:
        per_epoch = math.ceil(len(self.train) / self.config.batch_size)
        return min(self.config.max_steps, per_epoch * self.config.epochs)

    def batch_for(self, step: int) -> list["Example"]:
        """The minibatch of a step: a seeded shuffle per epoch, so resume sees the same batches."""
        per_epoch = math.ceil(len(self.train) / self.config.batch_size)
        epoch, index = divmod(step - 1, per_epoch)
        order = list(self.train)
        random.Random(f"{self.config.seed}:epoch:{epoch}").shuffle(order)
        return order[index * self.config.batch_size:(index + 1) * self.config.batch_size]

    def _baseline(self) -> None:
        val = self.evaluate(self.val, split="val", phase="baseline")
        test = self.evaluate(self.test, split="test", phase="baseline") if self.test else None
        self.baseline = {"val": val.mean_score, "test": test.mean_score if test else None}
        self.best_val, self.best_step = val.mean_score, 0
        self.curve.append({"step": 0, "train": None, "val": val.mean_score, "accepted": [], "rejected": []})
        self._checkpoint()

    def _train_step(self, step: int) -> None:
        cfg = self.config
        self.step = step
        batch_examples = self.batch_for(step)
        epoch = (step - 1) // math.ceil(len(self.train) / cfg.batch_size)
        self._emit("step_started", epoch=epoch, batch=[e.id for e in batch_examples])
        batch = self._forward(batch_examples, split="train", phase="train")
        selection = select_for_backward(batch.results, pass_threshold=cfg.pass_threshold, max_failed=cfg.max_failed,
                                        max_correct=cfg.max_correct, seed=cfg.seed * 1_000_003 + step,
                                        pinned=self.pinned, excluded=self.excluded)
        self._emit("selection", samples=[{"sample_id": s.sample_id, "selected": s.selected, "reason": s.reason}
                                         for s in selection])
        chosen = [r for r, s in zip(batch.results, selection) if s.selected]
        for p in self.params.values():
            p.zero_grad()
        self._backward(chosen)
        demo_params = [p for p in self.params.values() if p.role is Role.DEMOS and p.trainable]
        traces = batch.results
        if demo_params and self.teacher is not None:
            traces = run_batch(self.pipeline, batch_examples, self.eval_fn, self.teacher,
                               concurrency=self.config.concurrency, pass_threshold=self.config.pass_threshold,
                               should_stop=self._stop.is_set).results
            self._emit("teacher", samples=[r.summary() for r in traces])
        for p in demo_params:  # demo candidates: what the node did on passing samples
            self.demo_optimizer.collect(p, traces, slots=[s.split(".")[-1] for s in self.params])
            self.demo_optimizer.add_raw(p, [e for e in batch_examples if e.id not in self.excluded])
        accepted, rejected, optimized = [], [], []
        failed = [r for r in batch.results if r.status == "failed"]
        if failed or chosen:
            optimized = self._params_to_optimize(step)
            for param in optimized:
                kept, ids = self._optimize(param, batch, failed, step)
                accepted += ids[-1:] if kept else []
                rejected += ids[:-1] if kept else ids
        improved = bool(accepted)
        self._stale_steps = 0 if improved else self._stale_steps + 1
        point = {"step": step, "train": batch.mean_score, "val": self.best_val,
                 "accepted": accepted, "rejected": rejected}
        self.curve.append(point)
        self._emit("step_finished", epoch=epoch, train_score=batch.mean_score, val_score=self.best_val,
                   best_val=self.best_val, accepted=accepted, rejected=rejected,
                   optimized=[p.name for p in optimized], mode=cfg.optimize, usage=self.usage())
        self._checkpoint()

    def _params_to_optimize(self, step: int) -> list[Parameter]:
        candidates = [p for p in self.params.values() if p.trainable and (p.gradients or p.role is Role.DEMOS)]
        if self.config.optimize == "one" and candidates:
            return [candidates[(step - 1) % len(candidates)]]
        return candidates

    # -- forward / backward -----------------------------------------------------------------------
    def evaluate(self, examples: Sequence["Example"], *, split: str, phase: str,
                 proposal_id: str | None = None) -> BatchResult:
        result = self._forward(examples, split=split, phase=phase)
        self._emit("eval", split=split, phase=phase, score=result.mean_score, n=len(result.results),
                   errored=len(result.errored), proposal_id=proposal_id)
        return result

    def _forward(self, examples: Sequence["Example"], *, split: str, phase: str) -> BatchResult:
        self._gate()
        live = split == "train"

        def on_node(sample_id: str, node: "NodeRecord") -> None:
            if live:
                self._emit("node", sample_id=sample_id, split=split, node_id=node.id, component=node.component,
                           kind=node.kind, call_index=node.call_index, status=node.status)

        def on_result(r: SampleResult) -> None:
            self._emit("forward", split=split, phase=phase, summary=r.summary(),
                       graph=r.graph.to_dict() if live else None)

        result = run_batch(self.pipeline, examples, self.eval_fn, self.models.task,
                           concurrency=self.config.concurrency, pass_threshold=self.config.pass_threshold,
                           on_result=on_result, on_node=on_node, should_stop=self._stop.is_set)
        self.errored_samples += len(result.errored)
        if self._stop.is_set():
            raise RunStopped("stopped during a forward pass")
        if examples and len(result.errored) / len(examples) > self.config.max_error_share:
            first = result.errored[0].error
            raise WorkbenchError(f"{len(result.errored)} of {len(examples)} samples errored on the task model "
                                 f"({split}); first error: {first}")
        self._check_budget()
        return result

    def _backward(self, chosen: list[SampleResult]) -> None:
        self._gate()
        def one(r: SampleResult) -> int:
            self._gate()
            grads = self.backward_engine.backward(
                r.graph, self.params, on_gradient=lambda g: self._emit("gradient", **g.to_dict()))
            return len(grads)
        with ThreadPoolExecutor(max_workers=max(1, min(self.config.concurrency, len(chosen) or 1))) as pool:
            counts = list(pool.map(one, chosen))
        self._emit("backward_done", samples=[r.sample_id for r in chosen], gradients=sum(counts))
        self._check_budget()

    # -- proposals --------------------------------------------------------------------------------
    def _optimize(self, param: Parameter, batch: BatchResult, failed: list[SampleResult], step: int) -> tuple[bool, list[str]]:
        """Propose, gate and decide values for one parameter; True when one was kept."""
        self._gate()
        if param.role is Role.DEMOS:
            demo = self.demo_optimizer.propose(param, failed, step)
            candidates, source = ([demo] if demo else []), "demos"
            why, reply = "no demo candidates different from the current demos yet", ""
        else:
            peers = [self.params[n] for n in self._peers_of(param) if n != param.name]
            candidates, reply = self.text_optimizer.propose_with_reply(param, peers, self.memory[param.name],
                                                                       param.gradients)
            source, why = "optimizer", "the optimizer's reply held no usable value (empty, or it echoed its prompt)"
        if not candidates:
            self._emit("no_proposal", parameter=param.name, source=source, reason=why, reply=reply[:2000])
        ids = []
        for candidate in candidates:
            self._gate()
            pid = self._next_proposal_id(step)
            ids.append(pid)
            if self._try_candidate(param, candidate, pid, source, batch, step):
                return True, ids
        return False, ids

    def _try_candidate(self, param: Parameter, candidate: str, pid: str, source: str, batch: BatchResult,
                       step: int) -> bool:
        grads = summarise_gradients(param.gradients) if param.gradients else ""
        self._emit("proposal", proposal_id=pid, parameter=param.name, role=param.role.value, old=param.value,
                   new=candidate, source=source, gradient_summary=grads)
        broken = check_constraints(param, candidate)
        if broken:
            return self._reject(param, candidate, pid, step, f"breaks a constraint: {broken}", by=source)
        before = batch.mean_score or 0.0
        after = self._score_with(param, candidate, [self._example(r) for r in batch.scored], "minibatch", pid)
        passed = after >= before
        self._emit("minibatch", proposal_id=pid, before=before, after=after, passed=passed)
        if not passed:
            return self._reject(param, candidate, pid, step, f"minibatch score fell from {before:.3f} to {after:.3f}",
                                minibatch=after, by=source)
        pending = PendingProposal(pid, param.name, param.value, candidate, before, after)
        decision = self._ask(pending)
        self._emit("decision", proposal_id=pid, **decision.to_dict())
        if decision.action == "reject":
            return self._reject(param, candidate, pid, step, f"rejected by {decision.by}", minibatch=after,
                                by=decision.by)
        by = source
        if decision.action == "edit":
            candidate, by = decision.text or candidate, "human"
            self._emit("proposal", proposal_id=pid, parameter=param.name, role=param.role.value, old=param.value,
                       new=candidate, source="human", gradient_summary=grads)
        if not getattr(self.approval, "validate", True) and decision.by == "person":
            score = None
            keep, reason = True, "accepted by a person without validation"
        else:
            best = self.best_val if self.best_val is not None else -1.0
            score, complete = self._validate(param, candidate, pid)
            keep = complete and self._wins(score)
            self._emit("validation", proposal_id=pid, score=score, best=self.best_val, passed=keep,
                       complete=complete)
            reason = f"validation {score:.3f} {'beats' if keep else 'does not beat'} best {best:.3f}" + \
                ("" if complete else " (stopped early: it could no longer win)")
        if not keep:
            return self._reject(param, candidate, pid, step, reason, minibatch=after, score=score, by=by)
        param.update(candidate, step=step, source=by, score=score, note=pid)
        if score is not None:
            self.best_val, self.best_step = score, step
        self.memory[param.name].record(Attempt(candidate, step, score, True, reason, after, by))
        self._emit("update", proposal_id=pid, parameter=param.name, accepted=True, value=candidate, reason=reason)
        return True

    def _reject(self, param: Parameter, candidate: str, pid: str, step: int, reason: str, *,
                minibatch: float | None = None, score: float | None = None, by: str = "optimizer") -> bool:
        self.memory[param.name].record(Attempt(candidate, step, score, False, reason, minibatch, by))
        self._emit("update", proposal_id=pid, parameter=param.name, accepted=False, value=param.value, reason=reason)
        return False

    def _ask(self, pending: PendingProposal) -> Decision:
        if isinstance(self.approval, AutoApproval) or getattr(self.approval, "auto", False):
            return Decision("accept", "policy")
        self.desk.open(pending)
        self._emit("approval_requested", proposal_id=pending.proposal_id, parameter=pending.parameter,
                   old=pending.old, new=pending.new, minibatch_before=pending.minibatch_before,
                   minibatch_after=pending.minibatch_after)
        try:
            return self.approval.decide(pending, stopped=self._stop.is_set)
        finally:
            self.desk.close()

    def _wins(self, score: float) -> bool:
        margin = (self.best_val if self.best_val is not None else -1.0) + self.config.min_gain
        return score > margin or (self.config.tie_rule == "equal" and score >= margin)

    def _validate(self, param: Parameter, value: str, pid: str) -> tuple[float, bool]:
        """A candidate's validation score, in chunks; stops once even a perfect rest could not win.

        Returns (mean score of the samples run, whether all of validation ran).
        """
        chunk = self.config.concurrency
        total, scored, results = 0.0, 0, []
        complete = True
        with self._trying(param, value):
            for start in range(0, len(self.val), chunk):
                batch = self._forward(self.val[start:start + chunk], split="val", phase="proposal")
                results += batch.results
                total += sum(r.score or 0.0 for r in batch.scored)
                scored += len(batch.scored)
                remaining = len(self.val) - start - chunk
                if self.config.early_stop_validation and remaining > 0 and \
                        not self._wins((total + remaining) / (scored + remaining)):
                    complete = False
                    break
        score = total / scored if scored else 0.0
        self._emit("eval", split="val", phase="proposal", score=score, n=len(results),
                   errored=sum(r.status == "errored" for r in results), proposal_id=pid, complete=complete)
        return score, complete

    def _score_with(self, param: Parameter, value: str, examples: Sequence["Example"], split: str, pid: str) -> float:
        with self._trying(param, value):
            result = self.evaluate(examples, split=split, phase="proposal", proposal_id=pid)
        return result.mean_score or 0.0

    @contextlib.contextmanager
    def _trying(self, param: Parameter, value: str) -> Iterator[None]:
        old = param.value
        param.value = value
        try:
            yield
        finally:
            param.value = old

    def _peers_of(self, param: Parameter) -> list[str]:
        for component in self.pipeline.components():
            names = [p.name for p in component.parameters()]
            if param.name in names:
                return names
        return []

    def _example(self, r: SampleResult) -> "Example":
        return next(e for e in self.train if e.id == r.sample_id)

    def _next_proposal_id(self, step: int) -> str:
        self._proposal_counter += 1
        return f"p{step}-{self._proposal_counter}"

    # -- limits, events, checkpoints ---------------------------------------------------------------
    def _gate(self) -> None:
        """Between LLM calls: wait while paused, stop when asked, stop at the budget."""
        while not self._running.wait(0.2):
            if self._stop.is_set():
                break
        if self._stop.is_set():
            raise RunStopped("stop requested")
        self._check_budget()

    def usage(self) -> dict[str, dict]:
        """This run's usage, including what was spent before a resume."""
        now = self.models.usage.snapshot()
        merged: dict[str, dict] = {}
        for role in set(now) | set(self.usage_before):
            a, b = now.get(role, {}), self.usage_before.get(role, {})
            merged[role] = {k: a.get(k, 0) + b.get(k, 0) for k in set(a) | set(b)}
        return merged

    def _check_budget(self) -> None:
        cfg = self.config
        usage = self.usage().values()
        calls = sum(u.get("calls", 0) for u in usage)
        tokens = sum(u.get("prompt_tokens", 0) + u.get("completion_tokens", 0) for u in usage)
        if cfg.max_calls is not None and calls >= cfg.max_calls:
            raise BudgetExceeded(f"call budget reached: {calls} of {cfg.max_calls}")
        if cfg.max_tokens is not None and tokens >= cfg.max_tokens:
            raise BudgetExceeded(f"token budget reached: {tokens} of {cfg.max_tokens}")
        if cfg.max_seconds is not None and time.monotonic() - self._started_at >= cfg.max_seconds:
            raise BudgetExceeded(f"time budget reached: {cfg.max_seconds:g} s")

    def _emit(self, type: str, **data: Any) -> None:
        self.bus.emit(Event(type, data, run_id=getattr(self, "run_id", ""), step=self.step))

    def _config_record(self) -> dict:
        return {"task": self.task, "pipeline": type(self.pipeline).__name__, "config": asdict(self.config),
                "models": {role: getattr(m, "model", "?") for role, m in self.models.by_role().items()},
                "splits": {"train": [e.id for e in self.train], "val": [e.id for e in self.val],
                           "test": [e.id for e in self.test]},
                "approval": type(self.approval).__name__}

    def state(self) -> dict:
        return {"step": self.step, "best_val": self.best_val, "best_step": self.best_step,
                "baseline": self.baseline, "curve": self.curve, "usage": self.usage(),
                "proposal_counter": self._proposal_counter, "stale_steps": self._stale_steps,
                "errored_samples": self.errored_samples,
                "parameters": {n: p.to_dict() for n, p in self.params.items()},
                "memory": {n: m.to_dict() for n, m in self.memory.items()},
                "demo_pool": {n: [asdict(d) for d in pool.values()] for n, pool in self.demo_optimizer.pool.items()},
                "pinned": sorted(self.pinned), "excluded": sorted(self.excluded)}

    def _checkpoint(self) -> None:
        path = self.store.write_checkpoint(self.step, self.state())
        self._emit("checkpoint", path=str(path))

    def _restore(self, state: dict) -> None:
        from .parameter import Revision
        for name, saved in state["parameters"].items():
            if name not in self.params:
                raise WorkbenchError(f"checkpoint has parameter {name!r}, which this pipeline lacks")
            p = self.params[name]
            p.value = saved["value"]
            p.history = [Revision(**r) for r in saved["history"]]
        self.memory = {n: ParameterMemory.from_dict(m) for n, m in state["memory"].items()}
        self.demo_optimizer.pool = {n: {d["sample_id"]: Demo(d["sample_id"], tuple(tuple(x) for x in d["inputs"]),
                                                             d["output"], d["source"]) for d in pool}
                                    for n, pool in state.get("demo_pool", {}).items()}
        self.step, self.best_val, self.best_step = state["step"], state["best_val"], state["best_step"]
        self.baseline, self.curve = state["baseline"], state["curve"]
        self.usage_before = state.get("usage", {})
        self._proposal_counter = state.get("proposal_counter", 0)
        self._stale_steps = state.get("stale_steps", 0)
        self.errored_samples = state.get("errored_samples", 0)
        self.pinned, self.excluded = set(state.get("pinned", [])), set(state.get("excluded", []))

    def _finish(self, status: str, error: str | None, *, run_test: bool) -> RunSummary:
        final = {"val": self.best_val, "test": None}
        if run_test and self.test:
            try:
                final["test"] = self.evaluate(self.test, split="test", phase="final").mean_score
            except (RunStopped, BudgetExceeded) as exc:
                error = error or f"final test skipped: {exc}"
        summary = RunSummary(self.run_id, status, self.step, self.baseline, final, self.best_val, self.best_step,
                             self.usage(), str(self.store.path), {n: p.value for n, p in self.params.items()}, error,
                             self.errored_samples)
        self.store.write_summary(summary.to_dict())
        self._emit("run_finished", **{k: v for k, v in summary.to_dict().items() if k != "parameters"})
        return summary
