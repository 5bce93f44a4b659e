"""One training step of LLM-AutoDiff: a minibatch in, textual gradients out, then the proposal loop.

forward a minibatch (one graph per sample, plus failed samples carried over from steps where
nothing was accepted) -> select failed samples (+ a few passing) -> backward (textual gradients)
-> for each trained parameter (or, with `optimize="joint"`, each prompt's parameters together) the
proposal loop (proposals.py) -> a checkpoint. Every stage emits an event (docs/EVENTS.md).

`TrainingStep` is the trainer's part for this (and for the baseline before the first step); it is
given the parts it calls (evaluator, backward engine, proposal loop, fault reporter) and the run's
state, and writes only the state.
"""
from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..engine.backward import BackwardEngine
from ..engine.parameter import Parameter, Role
from ..engine.runner import BatchResult, SampleResult
from ..optim import DemoOptimizer
from ..records.events import BackwardDone, GradientWritten, Selection, StepFinished, StepStarted, TeacherRan
from .proposals import ProposalLoop, peers_of
from .selection import select_for_backward
from .teaching import Teaching

if TYPE_CHECKING:
    from ..engine.example import Example
    from ..engine.pipeline import Pipeline
    from .config import TrainConfig
    from .controls import ControlChannel
    from .emitter import RunEmitter
    from .evaluation import Evaluator
    from .faults import FaultReporter
    from .run_state import RunState
    from .schedule import Schedule
    from .usage import RunMeter


class TrainingStep:
    """The baseline and each step; see the module docstring. `checkpoint()` writes the state after each."""

    def __init__(self, *, state: "RunState", schedule: "Schedule", pipeline: "Pipeline",
                 splits: "tuple[Sequence[Example], Sequence[Example], Sequence[Example]]", config: "TrainConfig",
                 evaluator: "Evaluator", backward_engine: BackwardEngine, proposals: ProposalLoop,
                 demo_optimizer: DemoOptimizer, teacher: Any, faults: "FaultReporter", controls: "ControlChannel",
                 meter: "RunMeter", selection_threshold: float, emit: "RunEmitter",
                 checkpoint: Callable[..., None], teaching: Teaching) -> None:
        self._state, self._schedule, self._pipeline, self._config = state, schedule, pipeline, config
        self._train, self._val, self._test = (list(split) for split in splits)
        self._evaluator, self._backward_engine, self._proposals = evaluator, backward_engine, proposals
        self._demo_optimizer, self._teacher, self._faults = demo_optimizer, teacher, faults
        self._controls, self._meter, self._emit, self._checkpoint = controls, meter, emit, checkpoint
        self._selection_threshold = selection_threshold
        self._teaching = teaching  # a person's feedback: its samples are run and sent backward with it

    def baseline(self) -> None:
        """The current values on validation (and test) before any step, checkpointed as step 0."""
        state = self._state
        val = self._evaluator.evaluate(self._val, split="val", phase="baseline")
        self._faults.stop_if_the_endpoint_refused_every_sample(val, "validation")
        self._warn_of_parameters_no_node_uses(val)
        test = self._evaluator.evaluate(self._test, split="test", phase="baseline") if self._test else None
        state.baseline = {"val": val.mean_score, "test": test.mean_score if test else None}
        state.baseline_errored = {"val": [r.sample_id for r in val.errored],
                                  "test": [r.sample_id for r in test.errored] if test else []}
        state.best_val, state.best_step = val.mean_score, 0
        for name, p in state.params.items():  # the optimizer's history starts with the initial value
            if p.trainable:
                state.memory[name].record_initial(p.value, val.mean_score)
        state.curve.append({"step": 0, "train": None, "val": val.mean_score, "accepted": [], "rejected": []})
        self._checkpoint()

    def _warn_of_parameters_no_node_uses(self, val: BatchResult) -> None:
        """A trainable parameter that no LLM node fills (read by a tool through `.value`, or never
        passed to an LLMCall) can get no feedback and no `disconnected` event: say so once."""
        used = {p.name for c in self._pipeline.components() for p in c.parameters()}
        used |= {name for r in val.results for node in r.graph.nodes for name in node.parameters}
        unused = [name for name, p in self._state.params.items() if p.trainable and name not in used]
        if unused:
            warnings.warn(f"trainable parameters {unused} are in no LLMCall of {type(self._pipeline).__name__}, so "
                          f"they can never get feedback and will not change: pass each in an LLMCall's parameters "
                          f"(with its {{{{slot}}}} in the template), or set trainable=False", UserWarning,
                          stacklevel=2)

    def run(self, step: int) -> None:
        """forward -> select -> backward -> demo candidates -> the proposal loop per group -> checkpoint."""
        cfg, state = self._config, self._state
        state.step = step
        batch_examples = self._schedule.batch_for(step)
        batch_ids = {e.id for e in batch_examples}
        carried_ids = [i for i in state.carried_samples() + self._teaching.samples_to_backpropagate()
                       if i not in batch_ids]
        carried = [e for e in self._train if e.id in set(carried_ids)]
        epoch = self._schedule.epoch_of(step)
        self._emit(StepStarted(epoch=epoch, batch=[e.id for e in batch_examples]))
        everything = self._evaluator.forward(batch_examples + carried, split="train", phase="train")
        batch = BatchResult([r for r in everything.results if r.sample_id in batch_ids])
        chosen = self._select(everything, step)
        for p in state.params.values():
            p.zero_grad()
        self._backward(chosen)
        self._faults.report_parameters_without_feedback(chosen)
        self._collect_demos(batch_examples, batch)
        accepted, rejected, optimized = [], [], []
        failed = [r for r in batch.results if r.status == "failed"]
        gate_examples = [self._example(r) for r in chosen]
        if chosen:
            for group in self._groups_to_optimize(step):
                optimized += group
                kept, ids = self._proposals.optimize(group, gate_examples, failed, step)
                accepted += ids[-1:] if kept else []
                rejected += ids[:-1] if kept else ids
        state.stale_steps = 0 if accepted else state.stale_steps + 1
        point = {"step": step, "train": batch.mean_score, "val": state.best_val,
                 "accepted": accepted, "rejected": rejected, "carried": self._to_carry(chosen, bool(accepted))}
        state.curve.append(point)
        self._checkpoint(StepFinished(epoch=epoch, train_score=batch.mean_score, val_score=state.best_val,
                                      best_val=state.best_val, accepted=accepted, rejected=rejected,
                                      optimized=[p.name for p in optimized], mode=cfg.optimize,
                                      usage=self._meter.usage()))  # the checkpoint first, then this event

    def _select(self, everything: BatchResult, step: int) -> list[SampleResult]:
        """The samples to back-propagate: failed first (carried ones included, capped), a few passing."""
        cfg = self._config
        pinned, excluded = self._state.sample_flags()
        selection = select_for_backward(everything.results, pass_threshold=self._selection_threshold,
                                        max_failed=cfg.max_failed, max_correct=cfg.max_correct,
                                        seed=cfg.seed * 1_000_003 + step, pinned=pinned, excluded=excluded,
                                        carried=self._state.carried_samples(), max_carried=cfg.max_carried,
                                        taught=self._teaching.samples_to_backpropagate())
        self._emit(Selection(samples=[{"sample_id": s.sample_id, "selected": s.selected, "reason": s.reason}
                                      for s in selection]))
        return [r for r, s in zip(everything.results, selection) if s.selected]

    def _collect_demos(self, batch_examples: list["Example"], batch: BatchResult) -> None:
        """Demo candidates for trained demo parameters: what the node (or the teacher) did on passing samples."""
        demo_params = [p for p in self._state.params.values() if p.role is Role.DEMOS and p.trainable]
        traces = batch.results
        if demo_params and self._teacher is not None:
            traces = self._evaluator.run_memo(batch_examples, self._teacher)[0].results
            self._emit(TeacherRan(samples=[r.summary() for r in traces]))
            traces = self._faults.report_teacher_failures(traces)
        _, excluded = self._state.sample_flags()
        for p in demo_params:
            self._demo_optimizer.collect(p, traces, slots=[s.split(".")[-1] for s in self._state.params])
            self._demo_optimizer.add_raw(p, [e for e in batch_examples if e.id not in excluded])

    def _to_carry(self, chosen: list[SampleResult], accepted: bool) -> list[str]:
        """Failed samples for the next step's backward subset: until something is accepted (capped), as in AdalFlow."""
        if accepted or self._config.max_carried < 1:
            return []
        still_failing = [r.sample_id for r in chosen if (r.score or 0.0) < self._selection_threshold]
        return list(dict.fromkeys(self._state.carried_samples() + still_failing))[-self._config.max_carried:]

    def _params_to_optimize(self, step: int) -> list[Parameter]:
        taught = self._teaching.parameters_with_feedback()  # a person's words on a parameter go to its optimizer
        candidates = [p for p in self._state.params.values()
                      if p.trainable and (p.gradients or p.role is Role.DEMOS or p.name in taught)]
        if self._config.optimize == "one" and candidates:
            return [candidates[(step - 1) % len(candidates)]]
        return candidates

    def _groups_to_optimize(self, step: int) -> list[list[Parameter]]:
        """One parameter per group; with `optimize="joint"`, a prompt's text parameters form one group."""
        params = self._params_to_optimize(step)
        if self._config.optimize != "joint":
            return [[p] for p in params]
        groups: dict[str, list[Parameter]] = {}
        for p in params:
            key = p.name if p.role is Role.DEMOS else "+".join(peers_of(self._pipeline, p)) or p.name
            groups.setdefault(key, []).append(p)
        return list(groups.values())

    # -- backward -----------------------------------------------------------------------------------
    def _backward(self, chosen: list[SampleResult]) -> None:
        self._controls.obey()
        skipped: list[dict] = []

        def on_skipped(report: dict) -> None:
            skipped.append(report)
            self._faults.on_skipped(report)

        def one(r: SampleResult) -> tuple[int, int]:
            self._controls.obey()
            grads = self._backward_engine.backward(
                r.graph, self._state.params, on_gradient=lambda g: self._emit(GradientWritten(**g.to_dict())),
                on_disconnected=self._faults.on_disconnected, on_skipped=on_skipped,
                person=self._teaching.notes_for(r.graph, self._state.step))
            return len(grads), sum(g.target_kind == "parameter" for g in grads)
        with ThreadPoolExecutor(max_workers=max(1, min(self._config.concurrency, len(chosen) or 1))) as pool:
            counts = list(pool.map(one, chosen))
        self._emit(BackwardDone(samples=[r.sample_id for r in chosen], gradients=sum(n for n, _ in counts)))
        self._faults.stop_if_backward_failed_entirely(sum(p for _, p in counts), skipped)
        self._meter.check_budget()

    def _example(self, r: SampleResult) -> "Example":
        return next(e for e in self._train if e.id == r.sample_id)

