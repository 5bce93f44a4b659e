"""One training step of LLM-AutoDiff, from a minibatch to kept or reverted prompt values.

forward a minibatch (one graph per sample) -> select failed samples (+ a few passing ones) ->
backward (textual gradients) -> propose new values -> cheap minibatch gate -> approval (policy or
person) -> validation gate -> keep or revert. Every stage emits an event (docs/EVENTS.md).

`TrainingStep` is a mixin of `workbench.trainer.Trainer`: it reads the run's state (params, memory,
best_val, config, models, ...) from the trainer and leaves lifecycle (`_gate`, `_check_budget`,
`_stop`) and persistence (`_checkpoint`) to the other parts.
"""
from __future__ import annotations

import contextlib
import math
import random
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Iterator, Sequence

from ..approval import AutoApproval, Decision, PendingProposal
from ..errors import RunStopped, WorkbenchError
from ..optim import Attempt, check_constraints
from ..optim.text_optimizer import summarise_gradients
from ..parameter import Parameter, Role
from ..runner import BatchResult, SampleResult, run_batch
from ..selection import select_for_backward

if TYPE_CHECKING:
    from ..datasets import Example
    from ..graph import NodeRecord


class TrainingStep:
    """The step algorithm; see the module docstring."""

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
            traces = self._report_teacher_failures(traces)
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
                r.graph, self.params, on_gradient=lambda g: self._emit("gradient", **g.to_dict()),
                on_disconnected=self._on_disconnected, on_skipped=self._on_skipped)
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
            proposed = self._unless_model_fails("optimizer", lambda: self.text_optimizer.propose_with_reply(
                param, peers, self.memory[param.name], param.gradients), parameter=param.name)
            if proposed is None:  # the optimizer model failed after retries: skipped, with an event
                return False, []
            candidates, reply = proposed
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

