"""One training step of LLM-AutoDiff: a minibatch in, textual gradients out, then the proposal loop.

forward a minibatch (one graph per sample, plus failed samples carried over from steps where
nothing was accepted) -> select failed samples (+ a few passing ones) -> backward (textual
gradients) -> for each trained parameter (or, with `optimize="joint"`, each prompt's parameters
together) the proposal loop (proposals.py) -> a checkpoint. Every stage emits an event (docs/EVENTS.md).

Every evaluation goes through the run's `EvalMemo`, so the same values on the same sample are
never paid for twice (a final test pass of a run that kept nothing reuses the baseline's results).

`TrainingStep` is a mixin of `workbench.training.trainer.Trainer`: it reads the run's state (params, memory,
best_val, config, models, ...) from the trainer and leaves the proposal loop (`_optimize`),
lifecycle (`_obey_controls`, `_check_budget`, `_stop`) and persistence (`_checkpoint`) to the other parts.
"""
from __future__ import annotations

import math
import random
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Sequence

from ..errors import RunStopped, WorkbenchError
from ..records.eval_memo import MEMO_FILE, EvalMemo, run_batch_memo
from ..optim import LeakCheck
from ..engine.parameter import Parameter, Role
from ..engine.runner import BatchResult, SampleResult
from .selection import select_for_backward

if TYPE_CHECKING:
    from ..engine.example import Example
    from ..engine.graph import NodeRecord


class TrainingStep:
    """Forward, select, backward; see the module docstring."""

    # -- run-scoped helpers (created on first use, so the trainer needs no extra wiring) ------------
    @property
    def eval_memo(self) -> EvalMemo:
        """Every evaluation of this run, by (all parameter values, model, sample); kept in the run folder."""
        if getattr(self, "_eval_memo", None) is None:
            self._eval_memo = EvalMemo(self.store.path / MEMO_FILE)
        return self._eval_memo

    @property
    def leak_check(self) -> LeakCheck:
        """Refuses candidates that copy a training target into the prompt (they would not generalise)."""
        if getattr(self, "_leak_check", None) is None:
            self._leak_check = LeakCheck(e.target for e in self.train)
        return self._leak_check

    def carried_samples(self) -> list[str]:
        """Failed samples carried to the next step (nothing was accepted since they failed).

        Kept in the curve's last point, so a checkpoint carries them without a field of its own.
        """
        return list(self.curve[-1].get("carried", [])) if self.curve else []

    @property
    def selection_threshold(self) -> float:
        """A sample at or above this counts as passing for selection (graded scores: 0.95 F1 is fine)."""
        return min(self.config.pass_threshold, self.config.backprop_threshold)

    @property
    def steps_per_epoch(self) -> int:
        """Minibatches in one pass over the training set (the last may be short): the one place it is computed."""
        return math.ceil(len(self.train) / self.config.batch_size)

    def epoch_of(self, step: int) -> int:
        """The 0-based epoch a 1-based step belongs to."""
        return (step - 1) // self.steps_per_epoch

    @property
    def total_steps(self) -> int:
        return min(self.config.max_steps, self.steps_per_epoch * self.config.epochs)

    def _warn_if_epochs_end_first(self) -> None:
        """`max_steps` is a ceiling: the `epochs` passes over the training set may end the run first
        (also when `max_steps` is raised to train further), so say so at each fit()."""
        cfg = self.config
        if self.total_steps < cfg.max_steps:
            per_epoch = self.steps_per_epoch
            warnings.warn(f"max_steps={cfg.max_steps}, but epochs={cfg.epochs} over {len(self.train)} training "
                          f"samples at batch_size={cfg.batch_size} is {self.total_steps} steps, so training stops "
                          f"after step {self.total_steps}: set epochs={math.ceil(cfg.max_steps / per_epoch)} to "
                          f"reach {cfg.max_steps}", UserWarning, stacklevel=2)

    def batch_for(self, step: int) -> list["Example"]:
        """The minibatch of a step: a seeded shuffle per epoch, so resume sees the same batches."""
        epoch, index = divmod(step - 1, self.steps_per_epoch)
        order = list(self.train)
        random.Random(f"{self.config.seed}:epoch:{epoch}").shuffle(order)
        return order[index * self.config.batch_size:(index + 1) * self.config.batch_size]

    def _baseline(self) -> None:
        val = self.evaluate(self.val, split="val", phase="baseline")
        self._stop_if_the_endpoint_refused_every_sample(val, "validation")
        self._warn_of_parameters_no_node_uses(val)
        test = self.evaluate(self.test, split="test", phase="baseline") if self.test else None
        self.baseline = {"val": val.mean_score, "test": test.mean_score if test else None}
        self.best_val, self.best_step = val.mean_score, 0
        for name, p in self.params.items():  # the optimizer's history starts with the initial value
            if p.trainable:
                self.memory[name].record_initial(p.value, val.mean_score)
        self.curve.append({"step": 0, "train": None, "val": val.mean_score, "accepted": [], "rejected": []})
        self._checkpoint()

    def _warn_of_parameters_no_node_uses(self, val: BatchResult) -> None:
        """A trainable parameter that no LLM node fills (read by a tool through `.value`, or never
        passed to an LLMCall) can get no feedback and no `disconnected` event: say so once."""
        used = {p.name for c in self.pipeline.components() for p in c.parameters()}
        used |= {name for r in val.results for node in r.graph.nodes for name in node.parameters}
        unused = [name for name, p in self.params.items() if p.trainable and name not in used]
        if unused:
            warnings.warn(f"trainable parameters {unused} are in no LLMCall of {type(self.pipeline).__name__}, so "
                          f"they can never get feedback and will not change: pass each in an LLMCall's parameters "
                          f"(with its {{{{slot}}}} in the template), or set trainable=False", UserWarning,
                          stacklevel=2)

    def _train_step(self, step: int) -> None:
        """forward -> select -> backward -> demo candidates -> the proposal loop per group -> checkpoint."""
        cfg = self.config
        self.step = step
        batch_examples = self.batch_for(step)
        batch_ids = {e.id for e in batch_examples}
        carried_ids = [i for i in self.carried_samples() + self.teaching.samples_to_backpropagate()
                       if i not in batch_ids]
        carried = [e for e in self.train if e.id in set(carried_ids)]
        epoch = self.epoch_of(step)
        self._emit("step_started", epoch=epoch, batch=[e.id for e in batch_examples])
        everything = self._forward(batch_examples + carried, split="train", phase="train")
        batch = BatchResult([r for r in everything.results if r.sample_id in batch_ids])
        chosen = self._select(everything, step)
        for p in self.params.values():
            p.zero_grad()
        self._backward(chosen)
        self._report_parameters_without_feedback(chosen)
        self._collect_demos(batch_examples, batch)
        accepted, rejected, optimized = [], [], []
        failed = [r for r in batch.results if r.status == "failed"]
        gate_examples = [self._example(r) for r in chosen]
        if chosen:
            for group in self._groups_to_optimize(step):
                optimized += group
                kept, ids = self._optimize(group, gate_examples, failed, step)
                accepted += ids[-1:] if kept else []
                rejected += ids[:-1] if kept else ids
        self._stale_steps = 0 if accepted else self._stale_steps + 1
        point = {"step": step, "train": batch.mean_score, "val": self.best_val,
                 "accepted": accepted, "rejected": rejected, "carried": self._to_carry(chosen, bool(accepted))}
        self.curve.append(point)
        self._emit("step_finished", epoch=epoch, train_score=batch.mean_score, val_score=self.best_val,
                   best_val=self.best_val, accepted=accepted, rejected=rejected,
                   optimized=[p.name for p in optimized], mode=cfg.optimize, usage=self.usage())
        self._checkpoint()

    def _select(self, everything: BatchResult, step: int) -> list[SampleResult]:
        """The samples to back-propagate: failed first (carried ones included, capped), a few passing."""
        cfg = self.config
        selection = select_for_backward(everything.results, pass_threshold=self.selection_threshold,
                                        max_failed=cfg.max_failed, max_correct=cfg.max_correct,
                                        seed=cfg.seed * 1_000_003 + step, pinned=self.pinned, excluded=self.excluded,
                                        carried=self.carried_samples(), max_carried=cfg.max_carried,
                                        taught=self.teaching.samples_to_backpropagate())
        self._emit("selection", samples=[{"sample_id": s.sample_id, "selected": s.selected, "reason": s.reason}
                                         for s in selection])
        return [r for r, s in zip(everything.results, selection) if s.selected]

    def _collect_demos(self, batch_examples: list["Example"], batch: BatchResult) -> None:
        """Demo candidates for trained demo parameters: what the node (or the teacher) did on passing samples."""
        demo_params = [p for p in self.params.values() if p.role is Role.DEMOS and p.trainable]
        traces = batch.results
        if demo_params and self.teacher is not None:
            traces = self._run_memo(batch_examples, self.teacher).results
            self._emit("teacher", samples=[r.summary() for r in traces])
            traces = self._report_teacher_failures(traces)
        for p in demo_params:
            self.demo_optimizer.collect(p, traces, slots=[s.split(".")[-1] for s in self.params])
            self.demo_optimizer.add_raw(p, [e for e in batch_examples if e.id not in self.excluded])

    def _to_carry(self, chosen: list[SampleResult], accepted: bool) -> list[str]:
        """Failed samples for the next step's backward subset: until something is accepted (capped), as in AdalFlow."""
        if accepted or self.config.max_carried < 1:
            return []
        still_failing = [r.sample_id for r in chosen if (r.score or 0.0) < self.selection_threshold]
        return list(dict.fromkeys(self.carried_samples() + still_failing))[-self.config.max_carried:]

    def _params_to_optimize(self, step: int) -> list[Parameter]:
        taught = self.teaching.parameters_with_feedback()  # a person's words on a parameter go to its optimizer
        candidates = [p for p in self.params.values()
                      if p.trainable and (p.gradients or p.role is Role.DEMOS or p.name in taught)]
        if self.config.optimize == "one" and candidates:
            return [candidates[(step - 1) % len(candidates)]]
        return candidates

    def _groups_to_optimize(self, step: int) -> list[list[Parameter]]:
        """One parameter per group; with `optimize="joint"`, a prompt's text parameters form one group."""
        params = self._params_to_optimize(step)
        if self.config.optimize != "joint":
            return [[p] for p in params]
        groups: dict[str, list[Parameter]] = {}
        for p in params:
            key = p.name if p.role is Role.DEMOS else "+".join(self._peers_of(p)) or p.name
            groups.setdefault(key, []).append(p)
        return list(groups.values())

    # -- forward / backward -----------------------------------------------------------------------
    def evaluate(self, examples: Sequence["Example"], *, split: str, phase: str,
                 proposal_id: str | None = None) -> BatchResult:
        """Score `examples` with the current values (through the memo: the final test pass of a run
        that kept nothing reuses the baseline's results)."""
        result = self._forward(examples, split=split, phase=phase)
        self._emit("eval", split=split, phase=phase, score=result.mean_score, n=len(result.results),
                   errored=len(result.errored), proposal_id=proposal_id)
        return result

    def _current_values(self) -> dict[str, str]:
        return {n: p.value for n, p in self.params.items()}

    def _run_memo(self, examples: Sequence["Example"], model, *, keep_graphs: bool = True,
                  **listeners) -> BatchResult:
        """Run examples with the current values, through the memo (never twice for the same values);
        `keep_graphs=False` for validation and test, whose graphs nothing reads later."""
        result, _ = run_batch_memo(self.eval_memo, self.pipeline, examples, self.eval_fn, model,
                                   values=self._current_values(), concurrency=self.config.concurrency,
                                   pass_threshold=self.config.pass_threshold, should_stop=self._stop.is_set,
                                   keep_graphs=keep_graphs, **listeners)
        return result

    def _forward(self, examples: Sequence["Example"], *, split: str, phase: str) -> BatchResult:
        self._obey_controls()
        live = split == "train"

        def on_node(sample_id: str, node: "NodeRecord") -> None:
            if live:
                self._emit("node", sample_id=sample_id, split=split, node_id=node.id, component=node.component,
                           kind=node.kind, call_index=node.call_index, status=node.status)

        def on_result(r: SampleResult) -> None:
            self._emit("forward", split=split, phase=phase, summary=r.summary(),
                       graph=r.graph.to_dict() if live else None)

        result = self._run_memo(examples, self.models.task, keep_graphs=split not in ("val", "test"),
                                on_result=on_result, on_node=on_node)
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
        self._obey_controls()
        skipped: list[dict] = []

        def on_skipped(report: dict) -> None:
            skipped.append(report)
            self._on_skipped(report)

        def one(r: SampleResult) -> tuple[int, int]:
            self._obey_controls()
            grads = self.backward_engine.backward(
                r.graph, self.params, on_gradient=lambda g: self._emit("gradient", **g.to_dict()),
                on_disconnected=self._on_disconnected, on_skipped=on_skipped,
                person=self.teaching.notes_for(r.graph, self.step))
            return len(grads), sum(g.target_kind == "parameter" for g in grads)
        with ThreadPoolExecutor(max_workers=max(1, min(self.config.concurrency, len(chosen) or 1))) as pool:
            counts = list(pool.map(one, chosen))
        self._emit("backward_done", samples=[r.sample_id for r in chosen], gradients=sum(n for n, _ in counts))
        self._stop_if_backward_failed_entirely(sum(p for _, p in counts), skipped)
        self._check_budget()

    def _peers_of(self, param: Parameter) -> list[str]:
        for component in self.pipeline.components():
            names = [p.name for p in component.parameters()]
            if param.name in names:
                return names
        return []

    def _example(self, r: SampleResult) -> "Example":
        return next(e for e in self.train if e.id == r.sample_id)

