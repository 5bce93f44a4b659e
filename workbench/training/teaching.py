"""The person teaches: feedback written during a run becomes textual gradients with source "person".

`Teaching` is the trainer's part behind `trainer.feedback(...)`. It checks a person's text (not
empty, names a sample / node / parameter the run has, leaks no training target), records it with a
`feedback` event (refusals too, with the reason, and raises `FeedbackRefused`), keeps it pending in
a `FeedbackInbox`, and hands it out where a backward-engine gradient would act:

- on a sample's output (`sample_id`): to the node(s) that produced the prediction, beside the
  evaluation's feedback, when that sample is next back-propagated (it is, even when it passed);
- on a node's output for a sample (`sample_id` + `node`): arrives at that node's output, so the
  backward engine propagates it to the node's parameters and upstream like any downstream feedback;
- on a parameter (`parameter`): a gradient given straight to the parameter's next optimizer call.

Each use is a `feedback_used` event. Everything here may be called from any thread.
"""
from __future__ import annotations

import uuid
import warnings
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from ..engine.graph import Gradient, Graph
from ..engine.parameter import Parameter, Role
from ..errors import DamagedFileWarning, FeedbackRefused
from ..optim.person_feedback import FeedbackInbox, PersonFeedback
from ..records.events import FeedbackGiven, FeedbackUsed, GradientWritten

if TYPE_CHECKING:
    from ..optim.leak import LeakCheck
    from ..records.store import RunStore
    from .approval import Decision

PERSON = "person"


class Teaching:
    """Checks, records and routes a person's feedback; see the module docstring.

    `params`: the pipeline's parameters by name; `train_ids`: the training samples (only those are
    back-propagated); `components`: names of the pipeline's components (a node id is a component
    name, `#n` for its n-th call; empty: not checked); `leak_check`: the run's LeakCheck;
    `emit(event_data)`: the trainer's emitter; `step()`: the run's current step; `inbox`: where
    accepted feedback waits (the run state's, so a checkpoint holds it).
    """

    def __init__(self, params: Mapping[str, Parameter], train_ids: Iterable[str], components: Iterable[str],
                 leak_check: "LeakCheck", emit: Callable[[Any], None], step: Callable[[], int],
                 inbox: FeedbackInbox | None = None) -> None:
        self.params = params
        self.train_ids = set(train_ids)
        self.components = frozenset(components)
        self.leak_check = leak_check
        self.emit = emit
        self.step = step
        self.inbox = inbox if inbox is not None else FeedbackInbox()

    # -- giving ---------------------------------------------------------------------------------
    def give(self, text: Any, *, sample_id: str | None = None, node: str | None = None,
             parameter: str | None = None) -> PersonFeedback:
        """Accept feedback (returned, pending) or refuse it (`FeedbackRefused`, with a `feedback` event)."""
        kind = "parameter" if parameter is not None else "node" if node is not None else "sample"
        item = PersonFeedback(f"f-{uuid.uuid4().hex[:10]}", text if isinstance(text, str) else repr(text), kind,
                              sample_id, node, parameter, given_at_step=self.step())
        problem = self._problem(text, sample_id, node, parameter)
        self.emit(FeedbackGiven(feedback_id=item.feedback_id, text=item.text, target_kind=kind,
                                sample_id=sample_id, node_id=node, parameter=parameter,
                                accepted=problem is None, reason=problem))
        if problem is not None:
            raise FeedbackRefused(f"feedback refused: {problem}")
        self.inbox.add(item)
        return item

    def _problem(self, text: Any, sample_id: str | None, node: str | None, parameter: str | None) -> str | None:
        """Why the feedback cannot be used, or None."""
        if not isinstance(text, str) or not text.strip():
            return "it holds no text"
        if parameter is not None:
            if sample_id is not None or node is not None:
                return ("give feedback on a parameter, or on a sample (and one of its nodes), not both: "
                        "feedback on a sample reaches the parameters through the backward engine")
            p = self.params.get(parameter)
            if p is None:
                return f"the pipeline has no parameter {parameter!r}; it has {sorted(self.params)}"
            if not p.trainable:
                return f"parameter {parameter!r} is not trained (trainable=False)"
            if p.role is Role.DEMOS:
                return f"parameter {parameter!r} holds demos, which are chosen from traces, not written from feedback"
            return self.leak_check.reason(text, p.value)
        if sample_id is None:
            return ("say what it is about: sample_id= (its output), sample_id= with node= (that node's output "
                    "for the sample), or parameter=")
        if sample_id not in self.train_ids:
            return (f"{sample_id!r} is not a training sample of this run: only training samples are "
                    f"back-propagated (validation and test samples judge the prompts)")
        known = self.components
        if node is not None and known and node.split("#")[0] not in known:
            return f"the pipeline has no node {node!r}; its components are {sorted(known)}"
        return self.leak_check.reason(text)

    def recover(self, store: "RunStore") -> list[PersonFeedback]:
        """On resume: accepted feedback of the run's log that the checkpoint does not hold (given after
        it), pending again; returns what was recovered."""
        found = given_after_checkpoint(store, {i.feedback_id for i in self.inbox.items()})
        for item in found:
            self.inbox.add(item)
        return found

    def saw_node(self, event: Any) -> None:
        """A `node` event's component is a node name too (a tool the pipeline calls without holding it
        as an attribute is found only when it runs)."""
        if self.components and event.data["component"] not in self.components:
            self.components = self.components | {event.data["component"]}  # a new set: readers hold the old one

    # -- using ----------------------------------------------------------------------------------
    def samples_to_backpropagate(self) -> list[str]:
        """Training samples with pending sample or node feedback: the next step runs them and sends
        them backward, even when they pass."""
        return self.inbox.pending_samples()

    def parameters_with_feedback(self) -> set[str]:
        """Parameters with pending feedback of their own: their optimizer is asked this step."""
        return {i.parameter for i in self.inbox.pending("parameter") if i.parameter}

    def notes_for(self, graph: Graph, step: int) -> list[tuple[str | None, str]]:
        """The pending feedback on this sample as `(node id or None for its output, text)` for the
        backward engine; marks it used. A node the sample's graph lacks cannot take it: said so."""
        taken = self.inbox.take(lambda i: i.target_kind != "parameter" and i.sample_id == graph.sample_id, step)
        node_ids = {n.id for n in graph.nodes}
        notes: list[tuple[str | None, str]] = []
        for item in taken:
            applied = item.node_id is None or item.node_id in node_ids
            where = "the sample's output" if item.node_id is None else f"the output of node {item.node_id!r}"
            note = (f"propagated from {where} by the backward engine" if applied else
                    f"not applied: node {item.node_id!r} did not run on sample {graph.sample_id!r} in step {step}")
            self.emit(FeedbackUsed(feedback_id=item.feedback_id, used_in="backward", sample_id=graph.sample_id,
                                   applied=applied, note=note))
            if applied:
                notes.append((item.node_id, item.text))
        return notes

    def give_to_optimizer(self, names: Iterable[str], step: int) -> list[Gradient]:
        """Pending feedback on these parameters, as gradients (source "person") added to each
        parameter's gradients for its next optimizer call; marks it used."""
        wanted = set(names)
        taken = self.inbox.take(lambda i: i.target_kind == "parameter" and i.parameter in wanted, step)
        gradients = []
        for item in taken:
            g = Gradient("", "", "", 0, item.parameter or "", "parameter", None, item.text, source=PERSON)
            self.params[g.target].add_gradient(g)
            gradients.append(g)
            self.emit(GradientWritten(**g.to_dict()))
            self.emit(FeedbackUsed(feedback_id=item.feedback_id, used_in="optimizer", parameter=item.parameter,
                                   note="given to the parameter's optimizer as a person's gradient"))
        return gradients


def person_judgement(decision: "Decision") -> dict[str, str | None]:
    """The `Attempt` fields a person's decision fills (`person_action`, `person_reason`): the optimizer's
    memory keeps them as the strongest evidence. A policy's or a timeout's decision fills none."""
    if decision.by != PERSON:
        return {}
    return {"person_action": decision.action, "person_reason": decision.reason}


def rejection_reason(decision: "Decision") -> str:
    """Why a rejected proposal was rejected, in the update event and the history: who, and their words."""
    return f"rejected by {decision.by}" + (f": {decision.reason}" if decision.reason else "")


def given_after_checkpoint(store: "RunStore", known: set[str], up_to_step: int | None = None) -> list[PersonFeedback]:
    """Accepted feedback of `store`'s log whose id is not in `known` (a checkpoint's), given at or before
    `up_to_step`: what a resume (or a branch from that checkpoint) carries, pending."""
    with warnings.catch_warnings():  # a torn line is reported where the log is read for results
        warnings.simplefilter("ignore", DamagedFileWarning)
        events = list(store.events())
    found, known = [], set(known)
    for e in events:
        if e.type != FeedbackGiven.TYPE or (up_to_step is not None and e.step > up_to_step):
            continue
        given = FeedbackGiven.of(e)
        if given.accepted and given.feedback_id not in known:
            known.add(given.feedback_id)
            found.append(PersonFeedback(given.feedback_id, given.text, given.target_kind, given.sample_id,
                                        given.node_id, given.parameter, given_at_step=e.step))
    return found
