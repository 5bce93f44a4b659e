"""The backward engine: textual gradients by a reverse walk over a recorded graph.

Each node kind carries its own backward rule, as micrograd's ops carry `_backward`; a rule reads
the feedback that arrived at its node's output and sends feedback on to the nodes its inputs came
from (`BACKWARD_RULES`, extended with `@backward_rule("kind")`: a new kind touches one place):
- `loss`: the score, what the eval function measures, the prediction and the expected answer go
  to the node(s) that produced the prediction (no LLM call);
- `function`: passes its feedback through to the nodes that produced its inputs;
- `llm`: one backward-engine call per trained parameter (with its role, description and peers)
  and one per input that came from an upstream node; the latter becomes that node's feedback.
A node called in a loop is its own graph node, so each call gets its own gradient, in time order.

Training targets stay out of upstream prompts: the raw expected answer reaches only the node that
produced the prediction (through pass-through functions); feedback an LLM node's backward call
writes for its inputs has the target text masked, so upstream nodes get feedback *about* it.

`backward(graph, parameters, on_gradient=, on_disconnected=, on_skipped=)` reports, besides the
gradients, each trainable parameter that cannot get one on this sample because its node has no
path to the loss: `on_disconnected(Disconnection)` with {parameter, node_id, sample_id, reason}
(`node_id` is where the path ends; also kept in `graph.disconnected`). The trainer forwards it as a
`disconnected` event. When the backward model fails after its retries on one gradient, that
gradient is skipped and `on_skipped({stage, parameter, node_id, sample_id, error})` is called
(without `on_skipped`, the error propagates). A reply that is empty or an echo of its prompt
(`backward_completion.is_echo`) is not a gradient either: it is reported the same way, with the
error "the backward model echoed its prompt" (without `on_skipped`, a warning says so), and, as a
function node does, the node passes on the feedback that reached it instead, marked as relayed
(`RELAYED_AFTER_ECHO`): the evaluation's own words, never the echo.

A person's feedback (`backward(..., person=[(node_id or None, text)])`, from `trainer.feedback`)
arrives at that node's output (None: where the loss's feedback enters) before the walk, is recorded
as a gradient with source "person", and travels upstream like any downstream feedback; every prompt
lists it first and marked as the person's.

The parts: the prompts and feedback texts (backward_prompts.py), the rules and the walk's state
(backward_rules.py), the engine and the disconnection check (here).

Prompt styles: "chat" (the prompts, for instruction-following models) and "completion", a
short document a base model can complete (backward_completion.py); "auto" asks the model, and the
trainer picks it as it picks the optimizer's (`backward_style(models)`) (the prompts are in backward_prompts.py).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

from .backward_completion import CompletionBackward
from .backward_prompts import (BACKWARD_SYSTEM, PARAMETER_PROMPT, RELAYED_AFTER_ECHO, VALUE_PROMPT,  # noqa: F401
                               Feedback, hide_target, loss_feedback)
from .backward_rules import BACKWARD_RULES, ORIGIN_KINDS, BackwardPass, backward_rule  # noqa: F401 (re-exported)
from ..errors import BadArgumentError, WorkbenchError
from .graph import Disconnection, Gradient, Graph, NodeRecord
from ..llm.types import ask
from ..llm.types import completion_style_of
from .parameter import Parameter

if TYPE_CHECKING:
    from ..llm.types import ChatModel


class BackwardEngine:
    """A frozen LLM that writes feedback; `backward(graph, parameters)` fills `graph.gradients`.

    Parameter gradients are also appended to each `Parameter.gradients`, for the optimizer.
    `on_gradient` is called for each gradient as soon as it exists (the trainer turns it into an
    event); `on_disconnected` and `on_skipped` are described in the module docstring.
    """

    def __init__(self, model: "ChatModel", *, style: str = "auto", max_parallel: int = 4,
                 max_chars: int = 3000) -> None:
        if style not in ("auto", "chat", "completion"):
            raise BadArgumentError(f"BackwardEngine style must be 'auto', 'chat' or 'completion', not {style!r}")
        self.model = model
        self.style = completion_style_of(model) if style == "auto" else style
        self.completion = CompletionBackward()
        self.max_parallel = max_parallel
        self.max_chars = max_chars

    def clip(self, text: str | None) -> str:
        """Context in the backward prompt is clipped (the parameter's own value never is)."""
        text = text or ""
        return text if len(text) <= self.max_chars else text[: self.max_chars] + " ...[clipped]"

    @staticmethod
    def chat_messages(prompt: str) -> list[dict]:
        return [{"role": "system", "content": BACKWARD_SYSTEM}, {"role": "user", "content": prompt}]

    def ask(self, messages: list[dict]) -> str:
        """The gradient text of one reply: the whole reply (chat), or its line after the cue (completion)."""
        if self.style == "completion":
            return self.completion.parse(ask(self.model, messages, **self.completion.sampling()).text)
        return ask(self.model, messages).text.strip()

    def backward(self, graph: Graph, parameters: dict[str, Parameter],
                 on_gradient: Callable[[Gradient], None] | None = None, *,
                 on_disconnected: Callable[[Disconnection], None] | None = None,
                 on_skipped: Callable[[dict], None] | None = None,
                 person: Sequence[tuple[str | None, str]] = ()) -> list[Gradient]:
        """Walk the graph from the loss back to the first node; return every gradient written.

        `person`: a person's feedback as `(node id, text)`, node id None for the sample's final output;
        it arrives at that output before the walk and travels upstream with the engine's feedback."""
        loss_feedback(graph)  # raises when the graph was never scored
        bp = BackwardPass(self, graph, parameters, on_gradient, on_skipped)
        for node_id, text in person:
            bp.seed(node_id, text)
        for node in reversed(graph.topological_order()):
            feedback = bp.arrived.get(node.id, [])
            if not feedback and node.kind not in ORIGIN_KINDS:
                continue  # nothing downstream depends on this node's output
            rule = BACKWARD_RULES.get(node.kind)
            if rule is None:
                raise WorkbenchError(f"node {node.id!r} is of kind {node.kind!r}, which has no backward rule; "
                                     f"register one with @workbench.engine.backward.backward_rule({node.kind!r})")
            rule(bp, node, feedback)
        graph.disconnected = find_disconnected(graph, parameters)
        if on_disconnected:
            for d in graph.disconnected:
                on_disconnected(d)
        return list(graph.gradients)


def find_disconnected(graph: Graph, parameters: dict[str, Parameter]) -> list[Disconnection]:
    """Trainable parameters none of whose nodes' outputs reach the loss, each with where it ends.

    (A parameter used in a loop whose other calls do reach the loss still gets gradients.)
    """
    position = {n.id: i for i, n in enumerate(graph.nodes)}
    connected: set[str] = set()
    lost: dict[str, Disconnection] = {}
    for node in graph.nodes:
        trainable = [n for n in node.parameters if n in parameters and parameters[n].trainable]
        if not trainable:
            continue
        reached, frontier, ends = {node.id}, [node.id], []
        while frontier:
            consumers = graph.consumers(current := frontier.pop())
            if not consumers:
                ends.append(current)
            for c in consumers:
                if c not in reached:
                    reached.add(c)
                    frontier.append(c)
        if any(graph.node(r).kind in ORIGIN_KINDS for r in reached):
            connected.update(trainable)  # a path exists (a gradient may still be skipped: reported as such)
            continue
        end = graph.node(max(ends, key=position.__getitem__))
        for name in trainable:
            lost.setdefault(name, Disconnection(name, end.id, graph.sample_id, _why_disconnected(graph, node, end)))
    return [d for name, d in lost.items() if name not in connected]


def _why_disconnected(graph: Graph, node: NodeRecord, end: NodeRecord) -> str:
    where = f"`{node.id}`" if end.id == node.id else f"`{node.id}` reaches `{end.id}`, but that"
    if end.status == "failed":
        return f"{where} failed ({end.error}), so its output never reached the loss"
    return (f"the output of {where} is not linked to any later node or to the loss: it was probably rebuilt "
            f"as plain text that tracing cannot see (an f-string with text around the value, a plain "
            f"separator's join, re.sub, json). Keep the link by building the text with `+`, or by doing "
            f"that step in the node's `parser=` or in a `@tool`")
