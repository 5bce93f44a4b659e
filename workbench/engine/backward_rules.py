"""The backward rules, one per node kind, and the reverse walk's state (`BackwardPass`).

Each node kind carries its own backward rule, as micrograd's ops carry `_backward`; a rule reads
the feedback that arrived at its node's output and sends feedback on to the nodes its inputs came
from (`BACKWARD_RULES`, extended with `@backward_rule("kind")`: a new kind touches one place).
A person's feedback (`BackwardPass.seed`) arrives at a node's output before the walk, so the rules
carry it upstream like any downstream feedback; see `backward.py` for the whole contract.
"""
from __future__ import annotations

import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from .backward_completion import ECHO_ERROR, is_echo
from .backward_prompts import (PARAMETER_PROMPT, RELAYED_AFTER_ECHO, VALUE_PROMPT, Feedback, _join,
                               downstream_text, hide_target, loss_feedback)
from ..errors import EndpointUnreachableError, LLMCallError
from .graph import Gradient, Graph, NodeRecord
from .parameter import Parameter
from ..redact import redact

if TYPE_CHECKING:
    from .backward import BackwardEngine


def _callers_level() -> int:
    """The `stacklevel` of the first frame outside the workbench package, seen from the function that
    calls this and then `warnings.warn`, so a warning names the user's line, not the package's."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the whole workbench package
    frame, level = sys._getframe(2), 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


_ECHOED = object()  # ask_all's answer for a reply that echoed its prompt


Rule = Callable[["BackwardPass", NodeRecord, list[Feedback]], None]
BACKWARD_RULES: dict[str, Rule] = {}
ORIGIN_KINDS: set[str] = set()  # kinds whose rule runs without feedback: feedback starts there


def backward_rule(kind: str, *, origin: bool = False) -> Callable[[Rule], Rule]:
    """Register the backward rule of a node kind: `rule(bp, node, feedback_at_its_output)`.

    A rule runs when feedback has arrived at its node's output, or always for an `origin` kind
    (the loss, where feedback starts).
    """
    def register(rule: Rule) -> Rule:
        BACKWARD_RULES[kind] = rule
        (ORIGIN_KINDS.add if origin else ORIGIN_KINDS.discard)(kind)
        return rule
    return register


@dataclass
class BackwardPass:
    """One reverse walk over one graph: what the rules read (graph, parameters, score) and do
    (`send` feedback upstream, `ask` the backward model)."""

    engine: "BackwardEngine"
    graph: Graph
    parameters: dict[str, Parameter]
    on_gradient: Callable[[Gradient], None] | None = None
    on_skipped: Callable[[dict], None] | None = None
    arrived: dict[str, list[Feedback]] = field(default_factory=dict)

    @property
    def score(self) -> float:
        return self.graph.loss.score  # type: ignore[union-attr]

    def emit(self, node: NodeRecord, target: str, kind: str, text: str, source: str = "backward") -> None:
        g = Gradient(self.graph.sample_id, node.id, node.component, node.call_index, target, kind, self.score, text,
                     position=self.graph.nodes.index(node), source=source)
        self.graph.add_gradient(g)
        if kind == "parameter" and target in self.parameters:
            self.parameters[target].add_gradient(g)
        if self.on_gradient:
            self.on_gradient(g)

    def send(self, node: NodeRecord, source: str, text: str) -> None:
        """Feedback from `node` about the value that `source` produced (a value gradient)."""
        self.emit(node, source, "value", text)
        self.arrived.setdefault(source, []).append(Feedback(node.id, text))

    def seed(self, node_id: str | None, text: str) -> list[str]:
        """A person's feedback on a node's output (None: on the sample's final output, where the
        evaluation's feedback enters), arriving there before the walk; recorded as a gradient with
        source "person". Returns the node ids it reached (none when the node did not run)."""
        if node_id is None:
            losses = [n for n in self.graph.nodes if n.kind in ORIGIN_KINDS]
            pairs = [(loss, source) for loss in losses for source in dict.fromkeys(self.graph.sources(loss.id))]
        else:
            known = {n.id for n in self.graph.nodes}
            pairs = [(self.graph.node(node_id), node_id)] if node_id in known else []
        for at, target in pairs:
            self.emit(at, target, "value", text, source="person")
            self.arrived.setdefault(target, []).append(Feedback("person", text, source="person"))
        return [target for _, target in pairs]

    def ask_all(self, node: NodeRecord, jobs: list[tuple[str, str, list[dict]]], relayed: str = "",
                person: str = "") -> list[Any]:
        """Backward-model replies for `(target, kind, messages)` jobs, in parallel, in job order.

        A job whose model call fails after retries is None when `on_skipped` takes the report; one
        whose reply echoes its prompt is `_ECHOED` (reported to `on_skipped`, else warned about).
        Repeating `relayed` (the feedback that reached the node) is passing it on, not an echo.
        """
        def skip(target: str, kind: str, error: str) -> None:  # called only when on_skipped is set
            self.on_skipped({"stage": "backward", "parameter": target if kind == "parameter" else None,
                             "node_id": node.id, "sample_id": self.graph.sample_id, "error": error})

        def one(job: tuple[str, str, list[dict]]) -> Any:
            target, kind, messages = job
            try:
                text = self.engine.ask(messages)
            except (LLMCallError, EndpointUnreachableError) as exc:
                if self.on_skipped is None:
                    raise
                skip(target, kind, redact(str(exc)))
                return None
            if not is_echo(text, messages, relayed, person):
                return text
            if self.on_skipped is None:
                echoed.append(f"gradient for {target!r} at node {node.id!r} (sample {self.graph.sample_id!r}) "
                              f"skipped: {ECHO_ERROR}")
            else:
                skip(target, kind, ECHO_ERROR)
            return _ECHOED
        if not jobs:
            return []
        echoed: list[str] = []
        with ThreadPoolExecutor(max_workers=max(1, min(self.engine.max_parallel, len(jobs)))) as pool:
            texts = list(pool.map(one, jobs))
        for message in echoed:  # warned here, not in the pool's threads: the warning points at the caller's code
            warnings.warn(message, UserWarning, stacklevel=_callers_level())
        return texts


@backward_rule("loss", origin=True)
def loss_backward(bp: BackwardPass, node: NodeRecord, feedback: list[Feedback]) -> None:
    """The loss speaks to the node(s) that produced the prediction; it needs no LLM call."""
    text = loss_feedback(bp.graph)
    for source in dict.fromkeys(bp.graph.sources(node.id)):
        bp.send(node, source, text)


@backward_rule("function")
def function_backward(bp: BackwardPass, node: NodeRecord, feedback: list[Feedback]) -> None:
    """A function has no prompt to blame: its feedback passes through to where its inputs came from."""
    relayed = f"(relayed through function `{node.id}`) " + downstream_text(feedback)
    for source in dict.fromkeys(bp.graph.sources(node.id)):
        bp.send(node, source, relayed)


@backward_rule("llm")
def llm_backward(bp: BackwardPass, node: NodeRecord, feedback: list[Feedback]) -> None:
    """One backward call per trained parameter of the node and per input an upstream node produced."""
    engine, graph, clip = bp.engine, bp.graph, bp.engine.clip
    inputs = "\n".join(f"<INPUT name={k}>\n{clip(v)}\n</INPUT>" for k, v in node.inputs.items()) or "(none)"
    jobs: list[tuple[str, str, list[dict]]] = []  # (target, kind, messages)
    used = [bp.parameters[n] for n in node.parameters if n in bp.parameters]
    short = engine.completion if engine.style == "completion" else None
    downstream = downstream_text(feedback)
    for p in used:
        if not p.trainable:
            continue
        if short:
            jobs.append((p.name, "parameter", short.parameter_messages(
                role=p.role.value, value=p.value, inputs=node.inputs, output=node.output, feedback=downstream)))
            continue
        peers = "\n".join(f"- {q.name} ({q.role.value}): {clip(q.value)}" for q in used if q is not p) or "(none)"
        jobs.append((p.name, "parameter", engine.chat_messages(PARAMETER_PROMPT.format(
            node=node.id, name=p.name, role=p.role.value, description=p.description or "(none)",
            value=p.value, peers=peers, inputs=inputs, output=clip(node.output),
            feedback=_join(feedback), score=f"{bp.score:g}"))))
    prompt_text = "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in (node.prompt or []))
    for edge in graph.edges:
        if edge.target == node.id and short:
            jobs.append((edge.source, "value", short.value_messages(
                source=edge.source, node=node.id, value=graph.node(edge.source).output, output=node.output,
                feedback=downstream)))
        elif edge.target == node.id:
            jobs.append((edge.source, "value", engine.chat_messages(VALUE_PROMPT.format(
                node=node.id, input=edge.input, source=edge.source,
                value=clip(graph.node(edge.source).output), prompt=clip(prompt_text),
                output=clip(node.output), feedback=_join(feedback), score=f"{bp.score:g}"))))
    target = graph.loss.target if graph.loss else ""
    person = " ".join(f.text for f in feedback if f.source == "person")  # quoting it is no echo
    # emitted in a fixed order: reproducible
    for (name, kind, _), text in zip(jobs, bp.ask_all(node, jobs, downstream, person)):
        if text is None:
            continue
        if text is _ECHOED:
            text = downstream + RELAYED_AFTER_ECHO
        if kind == "parameter":
            bp.emit(node, name, kind, text)
        else:
            bp.send(node, name, hide_target(text, target))


