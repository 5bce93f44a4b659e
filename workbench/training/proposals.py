"""The proposal loop of one parameter (or a joint group) within a step: propose, check, gate, decide.

Up to `max_proposals` attempts, one at a time; each optimizer call sees the candidates already
rejected in this step (the memory holds them with their reason). A candidate goes through
constraint check -> leak check -> minibatch gate -> approval (policy or person) -> validation gate,
and the first one that passes is kept; the next parameter is then gated against the new values.
A person's edit goes through the same checks and minibatch gate as a proposal.

`ProposalLoop` is the trainer's part for this; the gates' runs are in gate_runs.py. A kept value is
committed in one place, `_commit`, after validation; until then a candidate only ever runs inside
`Evaluator.trying`, which puts the current values back.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from .approval import ApprovalDesk, AutoApproval, Decision, PendingProposal
from ..optim import Attempt, DemoOptimizer, LeakCheck, TextOptimizer, check_constraints
from ..optim.gates import Paired
from ..optim.text_optimizer import summarise_gradients
from ..engine.parameter import Parameter, Role
from ..engine.runner import SampleResult
from ..records.events import ApprovalRequested, DecisionMade, NoProposal, Proposal, Update
from .gate_runs import GateRuns, Values
from .teaching import Teaching, person_judgement, rejection_reason

if TYPE_CHECKING:
    from ..engine.example import Example
    from ..engine.pipeline import Pipeline
    from .config import TrainConfig
    from .controls import ControlChannel
    from .emitter import RunEmitter
    from .evaluation import Evaluator
    from .faults import FaultReporter
    from .run_state import RunState


REPEAT = "already rejected in this step"
STUCK_AFTER_REPEATS = 2  # repeats in a row that end a step's attempts (each one costs an optimizer call)


def peers_of(pipeline: "Pipeline", param: Parameter) -> list[str]:
    """The names of the parameters of the component (prompt) that holds `param`, itself included."""
    for component in pipeline.components():
        names = [p.name for p in component.parameters()]
        if param.name in names:
            return names
    return []


class ProposalLoop:
    """Propose, check, gate and decide; see the module docstring."""

    def __init__(self, *, state: "RunState", config: "TrainConfig", pipeline: "Pipeline",
                 text_optimizer: TextOptimizer, demo_optimizer: DemoOptimizer, leak_check: LeakCheck,
                 approval: Any, desk: ApprovalDesk, gates: GateRuns, evaluator: "Evaluator",
                 faults: "FaultReporter", controls: "ControlChannel", selection_threshold: float,
                 emit: "RunEmitter", teaching: Teaching, forced_decisions: dict | None = None) -> None:
        self._state, self._config, self._pipeline = state, config, pipeline
        self._text_optimizer, self._demo_optimizer, self._leak_check = text_optimizer, demo_optimizer, leak_check
        self._approval, self._desk, self._gates, self._evaluator = approval, desk, gates, evaluator
        self._faults, self._controls, self._emit = faults, controls, emit
        self._selection_threshold = selection_threshold
        self._teaching = teaching  # a person's feedback on a parameter joins its next optimizer call
        # proposal id -> the Decision a branch takes on it (training/branching.py); the trainer's dict, filled later
        self._forced_decisions = forced_decisions if forced_decisions is not None else {}

    def optimize(self, group: list[Parameter], gate_examples: list["Example"], failed: list[SampleResult],
                  step: int) -> tuple[bool, list[str]]:
        """Up to `max_proposals` attempts for a parameter (or a joint group), one at a time.

        Each optimizer call sees the candidates already rejected in this step (they are in the
        memory with their reason); the first candidate that passes both gates is kept.
        """
        self._controls.obey()
        # the gate's baseline: the current values on the back-propagated samples. When an earlier
        # parameter was accepted in this step these are new values (the accepted candidate's own
        # minibatch run covered them, so the memo answers).
        before = self._evaluator.scores_now(gate_examples, split="minibatch")
        ids: list[str] = []
        demos = group[0].role is Role.DEMOS
        attempts = 1 if demos else self._config.max_proposals
        joint = len(group) > 1
        names = "+".join(p.name for p in group)
        repeats = 0  # candidates in a row that repeat one already rejected in this step
        for attempt in range(1, attempts + 1):
            self._controls.obey()
            values, source, why, reply = self._propose(group, failed, step, attempt)
            if source == "skipped":
                break  # already reported as a `skipped` event
            if not values:
                self._emit(NoProposal(parameter=names, source=source, reason=why, reply=reply[:2000]))
                if source == "optimizer" and self._text_optimizer.retry_when_empty and not joint:
                    continue  # a base model samples another line with the next attempt's seed
                break  # the same prompt would get the same useless reply
            if all(new.strip() == self._state.params[name].value.strip() for name, new in values.items()):
                self._emit(NoProposal(parameter=names, source=source,
                                      reason="the optimizer proposed the current value unchanged: it sees nothing "
                                             "to change", reply=reply[:2000]))
                break  # asking again would get the same answer
            refused = self._refusal(values)
            if refused == REPEAT:
                repeats += 1
                if repeats >= STUCK_AFTER_REPEATS:  # it is stuck: more calls would only repeat again
                    self._emit(NoProposal(parameter=names, source=source,
                                          reason=f"the optimizer repeated candidates already rejected in this step "
                                                 f"{repeats} times in a row: no more attempts this step",
                                          reply=reply[:2000]))
                    break
            else:
                repeats = 0
            pid = self._state.next_proposal_id(step)
            ids.append(pid)
            if self._try_candidate(values, pid, source, gate_examples, before, step, attempt,
                                   names if joint else None, refused):
                return True, ids
        return False, ids

    def _propose(self, group: list[Parameter], failed: list[SampleResult], step: int,
                 attempt: int) -> tuple[Values, str, str, str]:
        """(candidate values, source, why there is none, raw reply)."""
        param = group[0]
        if param.role is Role.DEMOS:
            demo = self._demo_optimizer.propose(param, failed, step)
            return ({param.name: demo} if demo else {}), "demos", \
                "no demo candidates different from the current demos yet", ""
        why = "the optimizer's reply held no usable value (empty, or it echoed its prompt)"
        names = "+".join(p.name for p in group)
        if len(group) > 1:
            self._teaching.give_to_optimizer([p.name for p in group], step)
            proposed = self._faults.unless_model_fails(
                "optimizer", lambda: self._text_optimizer.propose_joint(group, self._state.memory, step),
                parameter=names)
            if proposed is None:  # the optimizer model failed after retries: skipped, with an event
                return {}, "skipped", "", ""
            values, reply = proposed
            return values, "optimizer", why, reply
        self._teaching.give_to_optimizer([param.name], step)  # a person's feedback given since the last call
        peers = [self._state.params[n] for n in peers_of(self._pipeline, param) if n != param.name]
        proposed = self._faults.unless_model_fails("optimizer", lambda: self._text_optimizer.propose_with_reply(
            param, peers, self._state.memory[param.name], param.gradients, step=step, attempt=attempt),
            parameter=names)
        if proposed is None:
            return {}, "skipped", "", ""
        candidates, reply = proposed
        return ({param.name: candidates[0]} if candidates else {}), "optimizer", why, reply

    def _emit_proposal(self, values: Values, pid: str, source: str, attempt: int, group: str | None) -> None:
        """One `proposal` event per parameter of the candidate, with the feedback it answers."""
        for name, new in values.items():
            p = self._state.params[name]
            grads = summarise_gradients(p.gradients, pass_threshold=self._selection_threshold) if p.gradients else ""
            self._emit(Proposal(proposal_id=pid, parameter=name, role=p.role.value, old=p.value, new=new,
                                source=source, gradient_summary=grads, attempt=attempt, group=group))

    def _refusal(self, values: Values) -> str | None:
        """Why values are refused before any evaluation: a repeat, a broken constraint or a leaked target."""
        for name, new in values.items():
            p = self._state.params[name]
            if len(values) == 1 and any(not a.accepted and a.step == self._state.step and
                                        a.value.strip() == new.strip() for a in self._state.memory[name].attempts):
                return REPEAT  # (a joint proposal differs if any of its parts does)
            broken = check_constraints(p, new)
            if broken:
                return f"breaks a constraint{'' if len(values) == 1 else f' ({name})'}: {broken}"
            if p.role is not Role.DEMOS:  # demos are built from training samples on purpose
                leak = self._leak_check.reason(new, p.value)
                if leak:
                    return leak if len(values) == 1 else f"{leak} ({name})"
        return None

    def _try_candidate(self, values: Values, pid: str, source: str, gate_examples: list["Example"],
                       before: Mapping[str, float | None], step: int, attempt: int, group: str | None,
                       refused: str | None) -> bool:
        """One candidate through the checks, the minibatch gate, approval and validation; True if kept.
        `refused`: what `_refusal` found for the values (the loop asked already)."""
        self._emit_proposal(values, pid, source, attempt, group)
        # a branch's decision on this proposal (training/branching.py) is final: no check, gate or person overrules it
        forced = self._forced_decisions.get(pid)  # kept until its step ends: a step redone after a stop takes it too
        if refused and forced is None:
            return self._reject(values, pid, step, refused, by=source)
        passed, why, paired = self._gates.minibatch_gate(values, pid, gate_examples, before)
        if not passed and forced is None:
            return self._reject(values, pid, step, why, minibatch=paired.after, by=source)
        decision = forced or self._ask(self._pending(values, pid, paired))
        self._emit(DecisionMade(proposal_id=pid, **decision.to_dict()))
        person = person_judgement(decision)  # what the optimizer's memory keeps of the person's words
        if decision.action == "reject":
            return self._reject(values, pid, step, rejection_reason(decision), minibatch=paired.after,
                                by=decision.by, **person)
        by = source
        if decision.action == "edit" and decision.text is not None:
            if len(values) > 1:
                return self._reject(values, pid, step, "a joint proposal cannot be edited as one text; "
                                    "reject it and edit the parameters one at a time", by=decision.by, **person)
            # a person's edit goes through the same checks and minibatch gate as a proposal; the memory
            # keeps the optimizer's text beside it
            person["proposed"] = next(iter(values.values()))
            values, by = {next(iter(values)): decision.text}, "human"
            self._emit_proposal(values, pid, "human", attempt, group)
            refused = self._refusal(values)
            if refused and forced is None:
                return self._reject(values, pid, step, f"the edit {refused}", by=by, **person)
            passed, why, paired = self._gates.minibatch_gate(values, pid, gate_examples, before)
            if not passed and forced is None:
                return self._reject(values, pid, step, f"the edit failed the minibatch gate: {why}",
                                    minibatch=paired.after, by=by, **person)
        if not getattr(self._approval, "validate", True) and decision.by == "person" and forced is None:
            score, keep, reason = None, True, "accepted by a person without validation"
        else:  # a branch's decision is validated in full, so its curve shows what it kept, and kept whatever it scores
            score, keep, reason = self._gates.validate(values, pid, complete=forced is not None)
            if forced is not None and not keep:
                keep, reason = True, f"{reason}; kept anyway: the decision this branch was made with"
        if not keep:
            return self._reject(values, pid, step, reason, minibatch=paired.after, score=score, by=by, **person)
        self._commit(values, pid, step, by=by, score=score, reason=reason, minibatch=paired.after, person=person)
        return True

    def _commit(self, values: Values, pid: str, step: int, *, by: str, score: float | None, reason: str,
                minibatch: float | None, person: Mapping[str, str | None]) -> None:
        """Keep `values`: the one place a kept value becomes the parameter's (with its history, the
        optimizer's memory with a person's words on it, an `update` event and, when validated, the
        new best score)."""
        for name, new in values.items():
            self._state.params[name].update(new, step=step, source=by, score=score, note=pid)
            self._state.memory[name].record(Attempt(new, step, score, True, reason, minibatch, by, **person))
            self._emit(Update(proposal_id=pid, parameter=name, accepted=True, value=new, reason=reason))
        if score is not None:
            self._state.best_val, self._state.best_step = score, step

    def _pending(self, values: Values, pid: str, paired: Paired) -> PendingProposal:
        """What a person is asked to decide: one parameter's old and new text, or a joint group's."""
        if len(values) == 1:
            name, new = next(iter(values.items()))
            old = self._state.params[name].value
        else:
            name = "+".join(values)
            old = "\n\n".join(f"[{n}]\n{self._state.params[n].value}" for n in values)
            new = "\n\n".join(f"[{n}]\n{v}" for n, v in values.items())
        return PendingProposal(pid, name, old, new, paired.before or 0.0, paired.after or 0.0)

    def _reject(self, values: Values, pid: str, step: int, reason: str, *,
                minibatch: float | None = None, score: float | None = None, by: str = "optimizer",
                **person: str | None) -> bool:
        """Record the rejection in each parameter's memory (the next attempt sees it, with a person's
        words in `person`: person_action, person_reason, proposed) and say why."""
        for name, new in values.items():
            self._state.memory[name].record(Attempt(new, step, score, False, reason, minibatch, by, **person))
            self._emit(Update(proposal_id=pid, parameter=name, accepted=False, value=self._state.params[name].value,
                              reason=reason))
        return False

    def _ask(self, pending: PendingProposal) -> Decision:
        """The approval decision: at once under a policy, else wait for a person (widget, CLI, test)."""
        if isinstance(self._approval, AutoApproval) or getattr(self._approval, "auto", False):
            return Decision("accept", "policy")
        self._desk.open(pending)
        self._emit(ApprovalRequested(proposal_id=pending.proposal_id, parameter=pending.parameter,
                                     old=pending.old, new=pending.new, minibatch_before=pending.minibatch_before,
                                     minibatch_after=pending.minibatch_after))
        try:  # while it waits, controls (stop, auto-approve) still reach the run
            return self._approval.decide(pending, stopped=self._controls.poll_stop)
        finally:
            self._desk.close()
