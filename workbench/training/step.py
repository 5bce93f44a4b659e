"""One training step of LLM-AutoDiff, from a minibatch to kept or reverted prompt values.

forward a minibatch (one graph per sample, plus failed samples carried over from steps where
nothing was accepted) -> select failed samples (+ a few passing ones) -> backward (textual
gradients) -> for each trained parameter (or, with `optimize="joint"`, each prompt's parameters
together), up to `max_proposals` attempts, one at a time, each seeing the ones already rejected:
constraint check -> leak check -> minibatch gate -> approval (policy or person) -> validation gate.
The first candidate that passes is kept; the next parameter is gated against the new values.
Every stage emits an event (docs/EVENTS.md).

Gates are paired: the candidate and the current values are compared on the same sample ids, and a
sample that errored in either run is left out of both means. Every evaluation goes through the
run's `EvalMemo`, so the same values on the same sample are never paid for twice.

`TrainingStep` is a mixin of `workbench.trainer.Trainer`: it reads the run's state (params, memory,
best_val, config, models, ...) from the trainer and leaves lifecycle (`_gate`, `_check_budget`,
`_stop`) and persistence (`_checkpoint`) to the other parts.
"""
from __future__ import annotations

import contextlib
import math
import random
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Iterator, Mapping, Sequence

from ..approval import AutoApproval, Decision, PendingProposal
from ..errors import RunStopped, WorkbenchError
from ..eval_memo import MEMO_FILE, EvalMemo, run_batch_memo
from ..optim import Attempt, LeakCheck, check_constraints
from ..optim.gates import Paired, can_still_win, minibatch_verdict, pair, scores_by_id
from ..optim.text_optimizer import summarise_gradients
from ..parameter import Parameter, Role
from ..runner import BatchResult, SampleResult
from ..selection import select_for_backward

if TYPE_CHECKING:
    from ..datasets import Example
    from ..graph import NodeRecord

Values = dict[str, str]  # parameter name -> candidate value (one entry, or several for a joint proposal)


class TrainingStep:
    """The step algorithm; see the module docstring."""

    # -- run-scoped helpers (created on first use, so the trainer needs no extra wiring) ------------
    @property
    def eval_memo(self) -> EvalMemo:
        """Every evaluation of this run, by (all parameter values, model, sample); kept in the run folder."""
        if getattr(self, "_eval_memo", None) is None:
            self._eval_memo = EvalMemo(self.store.path / MEMO_FILE)
        return self._eval_memo

    @property
    def leak_check(self) -> LeakCheck:
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
        for name, p in self.params.items():  # the optimizer's history starts with the initial value
            if p.trainable:
                self.memory[name].record_initial(p.value, val.mean_score)
        self.curve.append({"step": 0, "train": None, "val": val.mean_score, "accepted": [], "rejected": []})
        self._checkpoint()

    def _train_step(self, step: int) -> None:
        cfg = self.config
        self.step = step
        batch_examples = self.batch_for(step)
        batch_ids = {e.id for e in batch_examples}
        carried_ids = [i for i in self.carried_samples() if i not in batch_ids]
        carried = [e for e in self.train if e.id in set(carried_ids)]
        epoch = (step - 1) // math.ceil(len(self.train) / cfg.batch_size)
        self._emit("step_started", epoch=epoch, batch=[e.id for e in batch_examples])
        everything = self._forward(batch_examples + carried, split="train", phase="train")
        batch = BatchResult([r for r in everything.results if r.sample_id in batch_ids])
        selection = select_for_backward(everything.results, pass_threshold=self.selection_threshold,
                                        max_failed=cfg.max_failed, max_correct=cfg.max_correct,
                                        seed=cfg.seed * 1_000_003 + step, pinned=self.pinned, excluded=self.excluded,
                                        carried=self.carried_samples(), max_carried=cfg.max_carried)
        self._emit("selection", samples=[{"sample_id": s.sample_id, "selected": s.selected, "reason": s.reason}
                                         for s in selection])
        chosen = [r for r, s in zip(everything.results, selection) if s.selected]
        for p in self.params.values():
            p.zero_grad()
        self._backward(chosen)
        demo_params = [p for p in self.params.values() if p.role is Role.DEMOS and p.trainable]
        traces = batch.results
        if demo_params and self.teacher is not None:
            traces = self._run_memo(batch_examples, self.teacher).results
            self._emit("teacher", samples=[r.summary() for r in traces])
            traces = self._report_teacher_failures(traces)
        for p in demo_params:  # demo candidates: what the node did on passing samples
            self.demo_optimizer.collect(p, traces, slots=[s.split(".")[-1] for s in self.params])
            self.demo_optimizer.add_raw(p, [e for e in batch_examples if e.id not in self.excluded])
        accepted, rejected, optimized = [], [], []
        failed = [r for r in batch.results if r.status == "failed"]
        gate_examples = [self._example(r) for r in chosen]
        if chosen:
            for group in self._groups_to_optimize(step):
                optimized += group
                kept, ids = self._optimize(group, gate_examples, failed, step)
                accepted += ids[-1:] if kept else []
                rejected += ids[:-1] if kept else ids
        still_failing = [r.sample_id for r in chosen if (r.score or 0.0) < self.selection_threshold]
        carry = [] if accepted or cfg.max_carried < 1 else \
            list(dict.fromkeys(self.carried_samples() + still_failing))[-cfg.max_carried:]
        improved = bool(accepted)
        self._stale_steps = 0 if improved else self._stale_steps + 1
        point = {"step": step, "train": batch.mean_score, "val": self.best_val,
                 "accepted": accepted, "rejected": rejected, "carried": carry}
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

    def _run_memo(self, examples: Sequence["Example"], model, **listeners) -> BatchResult:
        """Run examples with the current values, through the memo (never twice for the same values)."""
        result, _ = run_batch_memo(self.eval_memo, self.pipeline, examples, self.eval_fn, model,
                                   values=self._current_values(), concurrency=self.config.concurrency,
                                   pass_threshold=self.config.pass_threshold, should_stop=self._stop.is_set,
                                   **listeners)
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

        result = self._run_memo(examples, self.models.task, on_result=on_result, on_node=on_node)
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
    def _optimize(self, group: list[Parameter], gate_examples: list["Example"], failed: list[SampleResult],
                  step: int) -> tuple[bool, list[str]]:
        """Up to `max_proposals` attempts for a parameter (or a joint group), one at a time.

        Each optimizer call sees the candidates already rejected in this step (they are in the
        memory with their reason); the first candidate that passes both gates is kept.
        """
        self._gate()
        # the gate's baseline: the current values on the back-propagated samples. When an earlier
        # parameter was accepted in this step these are new values (the accepted candidate's own
        # minibatch run covered them, so the memo answers).
        before = self._scores_now(gate_examples, split="minibatch")
        ids: list[str] = []
        demos = group[0].role is Role.DEMOS
        attempts = 1 if demos else self.config.max_proposals
        joint = len(group) > 1
        for attempt in range(1, attempts + 1):
            self._gate()
            values, source, why, reply = self._propose(group, failed, step, attempt)
            if source == "skipped":
                break  # already reported as a `skipped` event
            if not values:
                self._emit("no_proposal", parameter="+".join(p.name for p in group), source=source, reason=why,
                           reply=reply[:2000])
                if source == "optimizer" and self.text_optimizer.retry_when_empty and not joint:
                    continue  # a base model samples another line with the next attempt's seed
                break  # the same prompt would get the same useless reply
            pid = self._next_proposal_id(step)
            ids.append(pid)
            if self._try_candidate(values, pid, source, gate_examples, before, step, attempt,
                                   "+".join(p.name for p in group) if joint else None):
                return True, ids
        return False, ids

    def _propose(self, group: list[Parameter], failed: list[SampleResult], step: int,
                 attempt: int) -> tuple[Values, str, str, str]:
        """(candidate values, source, why there is none, raw reply)."""
        param = group[0]
        if param.role is Role.DEMOS:
            demo = self.demo_optimizer.propose(param, failed, step)
            return ({param.name: demo} if demo else {}), "demos", \
                "no demo candidates different from the current demos yet", ""
        why = "the optimizer's reply held no usable value (empty, or it echoed its prompt)"
        names = "+".join(p.name for p in group)
        if len(group) > 1:
            proposed = self._unless_model_fails(
                "optimizer", lambda: self.text_optimizer.propose_joint(group, self.memory, step), parameter=names)
            if proposed is None:  # the optimizer model failed after retries: skipped, with an event
                return {}, "skipped", "", ""
            values, reply = proposed
            return values, "optimizer", why, reply
        peers = [self.params[n] for n in self._peers_of(param) if n != param.name]
        proposed = self._unless_model_fails("optimizer", lambda: self.text_optimizer.propose_with_reply(
            param, peers, self.memory[param.name], param.gradients, step=step, attempt=attempt), parameter=names)
        if proposed is None:
            return {}, "skipped", "", ""
        candidates, reply = proposed
        return ({param.name: candidates[0]} if candidates else {}), "optimizer", why, reply

    def _emit_proposal(self, values: Values, pid: str, source: str, attempt: int, group: str | None) -> None:
        for name, new in values.items():
            p = self.params[name]
            grads = summarise_gradients(p.gradients, pass_threshold=self.selection_threshold) if p.gradients else ""
            self._emit("proposal", proposal_id=pid, parameter=name, role=p.role.value, old=p.value, new=new,
                       source=source, gradient_summary=grads, attempt=attempt, group=group)

    def _refusal(self, values: Values) -> str | None:
        """Why values are refused before any evaluation: a repeat, a broken constraint or a leaked target."""
        for name, new in values.items():
            p = self.params[name]
            if len(values) == 1 and any(not a.accepted and a.step == self.step and a.value.strip() == new.strip()
                                        for a in self.memory[name].attempts):
                return "already rejected in this step"  # (a joint proposal differs if any of its parts does)
            broken = check_constraints(p, new)
            if broken:
                return f"breaks a constraint{'' if len(values) == 1 else f' ({name})'}: {broken}"
            if p.role is not Role.DEMOS:  # demos are built from training samples on purpose
                leak = self.leak_check.reason(new, p.value)
                if leak:
                    return leak if len(values) == 1 else f"{leak} ({name})"
        return None

    def _minibatch_gate(self, values: Values, pid: str, gate_examples: list["Example"],
                        before: Mapping[str, float | None]) -> tuple[bool, str, Paired]:
        with self._trying(values):
            result = self._forward(gate_examples, split="minibatch", phase="proposal")
        paired = pair(before, scores_by_id(result.results), pass_threshold=self.selection_threshold)
        passed, why = minibatch_verdict(paired, rule=self.config.minibatch_gate)
        self._emit("eval", split="minibatch", phase="proposal", score=result.mean_score, n=len(result.results),
                   errored=len(result.errored), proposal_id=pid, left_out=paired.left_out)
        self._emit("minibatch", proposal_id=pid, before=paired.before, after=paired.after, passed=passed,
                   left_out=paired.left_out, samples=list(paired.samples))
        return passed, why, paired

    def _try_candidate(self, values: Values, pid: str, source: str, gate_examples: list["Example"],
                       before: Mapping[str, float | None], step: int, attempt: int, group: str | None) -> bool:
        self._emit_proposal(values, pid, source, attempt, group)
        refused = self._refusal(values)
        if refused:
            return self._reject(values, pid, step, refused, by=source)
        passed, why, paired = self._minibatch_gate(values, pid, gate_examples, before)
        if not passed:
            return self._reject(values, pid, step, why, minibatch=paired.after, by=source)
        decision = self._ask(self._pending(values, pid, paired))
        self._emit("decision", proposal_id=pid, **decision.to_dict())
        if decision.action == "reject":
            return self._reject(values, pid, step, f"rejected by {decision.by}", minibatch=paired.after,
                                by=decision.by)
        by = source
        if decision.action == "edit" and decision.text is not None:
            if len(values) > 1:
                return self._reject(values, pid, step, "a joint proposal cannot be edited as one text; "
                                    "reject it and edit the parameters one at a time", by=decision.by)
            # a person's edit goes through the same checks and minibatch gate as a proposal
            values, by = {next(iter(values)): decision.text}, "human"
            self._emit_proposal(values, pid, "human", attempt, group)
            refused = self._refusal(values)
            if refused:
                return self._reject(values, pid, step, f"the edit {refused}", by=by)
            passed, why, paired = self._minibatch_gate(values, pid, gate_examples, before)
            if not passed:
                return self._reject(values, pid, step, f"the edit failed the minibatch gate: {why}",
                                    minibatch=paired.after, by=by)
        if not getattr(self.approval, "validate", True) and decision.by == "person":
            score, keep, reason = None, True, "accepted by a person without validation"
        else:
            score, keep, reason = self._validate(values, pid)
        if not keep:
            return self._reject(values, pid, step, reason, minibatch=paired.after, score=score, by=by)
        for name, new in values.items():
            self.params[name].update(new, step=step, source=by, score=score, note=pid)
            self.memory[name].record(Attempt(new, step, score, True, reason, paired.after, by))
            self._emit("update", proposal_id=pid, parameter=name, accepted=True, value=new, reason=reason)
        if score is not None:
            self.best_val, self.best_step = score, step
        return True

    def _pending(self, values: Values, pid: str, paired: Paired) -> PendingProposal:
        if len(values) == 1:
            name, new = next(iter(values.items()))
            old = self.params[name].value
        else:
            name = "+".join(values)
            old = "\n\n".join(f"[{n}]\n{self.params[n].value}" for n in values)
            new = "\n\n".join(f"[{n}]\n{v}" for n, v in values.items())
        return PendingProposal(pid, name, old, new, paired.before or 0.0, paired.after or 0.0)

    def _reject(self, values: Values, pid: str, step: int, reason: str, *,
                minibatch: float | None = None, score: float | None = None, by: str = "optimizer") -> bool:
        for name, new in values.items():
            self.memory[name].record(Attempt(new, step, score, False, reason, minibatch, by))
            self._emit("update", proposal_id=pid, parameter=name, accepted=False, value=self.params[name].value,
                       reason=reason)
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

    def _wins(self, paired: Paired) -> bool:
        """The candidate beats the best values on the samples both were scored on (plus `min_gain`)."""
        if paired.after is None:
            return False
        margin = (paired.before if paired.before is not None else -1.0) + self.config.min_gain
        return paired.after > margin or (self.config.tie_rule == "equal" and paired.after >= margin)

    def _scores_now(self, examples: Sequence["Example"], *, split: str) -> dict[str, float | None]:
        """Per-sample scores of the current values: the reference a candidate is paired with.

        The current values were scored on these samples already (baseline, the step's forward, or
        the accepted candidate's own gates), so the memo answers without a call; if it cannot (a
        person's value accepted without validation, a resumed in-process model) the samples run,
        with an `eval` event.
        """
        self._gate()
        result, reused = run_batch_memo(self.eval_memo, self.pipeline, examples, self.eval_fn, self.models.task,
                                        values=self._current_values(), concurrency=self.config.concurrency,
                                        pass_threshold=self.config.pass_threshold, should_stop=self._stop.is_set)
        if self._stop.is_set():
            raise RunStopped("stopped while scoring the current values")
        if reused < len(examples):
            self.errored_samples += len(result.errored)
            self._emit("eval", split=split, phase="train" if split == "minibatch" else "baseline",
                       score=result.mean_score, n=len(result.results), errored=len(result.errored), proposal_id=None)
            self._check_budget()
        return scores_by_id(result.results)

    def _validate(self, values: Values, pid: str) -> tuple[float, bool, str]:
        """Paired validation in chunks, stopping once even a perfect rest could not win.

        Returns (the candidate's mean over the samples it scored, keep?, reason).
        """
        reference = self._scores_now(self.val, split="val")
        chunk = self.config.concurrency
        mine: dict[str, float | None] = {}
        results: list[SampleResult] = []
        complete = True
        with self._trying(values):
            for start in range(0, len(self.val), chunk):
                batch = self._forward(self.val[start:start + chunk], split="val", phase="proposal")
                results += batch.results
                mine.update(scores_by_id(batch.results))
                remaining = [e.id for e in self.val[start + chunk:]]
                if self.config.early_stop_validation and remaining and \
                        not can_still_win(mine, reference, remaining, self._wins):
                    complete = False
                    break
        paired = pair({i: reference.get(i) for i in mine}, mine)
        scored = [s for s in mine.values() if s is not None]
        score = sum(scored) / len(scored) if scored else 0.0
        keep = complete and self._wins(paired)
        self._emit("eval", split="val", phase="proposal", score=score, n=len(results),
                   errored=sum(r.status == "errored" for r in results), proposal_id=pid, complete=complete,
                   left_out=paired.left_out)
        self._emit("validation", proposal_id=pid, score=paired.after, best=paired.before, passed=keep,
                   complete=complete, left_out=paired.left_out)
        b = paired.before if paired.before is not None else -1.0
        reason = f"validation {paired.after or 0.0:.3f} {'beats' if keep else 'does not beat'} best {b:.3f}" + \
            (f" ({paired.left_out} errored sample(s) left out of both)" if paired.left_out else "") + \
            ("" if complete else " (stopped early: it could no longer win)")
        return score, keep, reason

    @contextlib.contextmanager
    def _trying(self, values: Values) -> Iterator[None]:
        old = {name: self.params[name].value for name in values}
        for name, value in values.items():
            self.params[name].value = value
        try:
            yield
        finally:
            for name, value in old.items():
                self.params[name].value = value

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
