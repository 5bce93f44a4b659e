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

Prompt styles: "chat" (the prompts below, for instruction-following models) and "completion", a
short document a base model can complete (backward_completion.py); "auto" asks the model, and the
trainer picks it as it picks the optimizer's (`backward_style(models)`).
"""
from __future__ import annotations

import os
import re
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from .backward_completion import ECHO_ERROR, CompletionBackward, is_echo
from ..errors import BadArgumentError, EndpointUnreachableError, LLMCallError, WorkbenchError
from .graph import Disconnection, Gradient, Graph, NodeRecord
from ..llm.types import ask
from ..llm.types import completion_style_of
from .parameter import Parameter
from ..redact import redact

if TYPE_CHECKING:
    from ..llm.types import ChatModel

BACKWARD_SYSTEM = """You are the backward engine of a prompt optimizer. A pipeline of LLM calls and \
functions ran on one sample and was scored. You write feedback (a "textual gradient") for ONE target: \
either a prompt parameter, or a value an earlier step produced. Say concretely what about the target \
caused the problem and how it should change. Be brief (at most 5 sentences). Do not restate the \
expected answer word for word: describe what was missing or wrong, so the fix generalises."""

PARAMETER_PROMPT = """### Task
Give feedback on the parameter below, which is one part of the prompt of the LLM node `{node}`.

### Parameter: {name}
Role: {role}
Purpose: {description}
<VALUE>
{value}
</VALUE>

### Its peers in the same prompt (not your target; only context)
{peers}

### What the node received (inputs)
{inputs}

### What the node answered (output)
<OUTPUT>
{output}
</OUTPUT>

### Feedback that reached this node from downstream
{feedback}

### Score of the whole pipeline on this sample: {score}

Write feedback for the parameter `{name}` only."""

VALUE_PROMPT = """### Task
The LLM node `{node}` received the input `{input}` from the earlier node `{source}`. Give feedback on \
that input value: what about it made `{node}`'s output worse, and what the earlier node should have \
produced instead.

### Target value from node {source} (the input `{input}` of `{node}`)
<VALUE>
{value}
</VALUE>

### The prompt of `{node}` (context)
{prompt}

### What `{node}` answered (output)
<OUTPUT>
{output}
</OUTPUT>

### Feedback that reached `{node}` from downstream
{feedback}

### Score of the whole pipeline on this sample: {score}

Write feedback for the value from `{source}` only."""


@dataclass
class Feedback:
    """Text arriving at a node's output from one consumer."""

    from_node: str
    text: str


def _callers_level() -> int:
    """The `stacklevel` of the first frame outside the workbench package, seen from the function that
    calls this and then `warnings.warn`, so a warning names the user's line, not the package's."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the whole workbench package
    frame, level = sys._getframe(2), 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


def _join(feedbacks: list[Feedback]) -> str:
    return "\n".join(f"- from {f.from_node}: {f.text}" for f in feedbacks) or "- (none)"


def _one_line(answer: object) -> object:
    """A multi-line answer on one line: quoted with repr, its line breaks would read as a literal
    `\\n\\n` in the feedback that every upstream node and the dashboard show."""
    if isinstance(answer, str) and any(c in answer for c in "\n\r\t"):
        return " ".join(answer.split())
    return answer


def loss_feedback(graph: Graph) -> str:
    """What the loss says to the node that produced the prediction: score, measure, answer, target."""
    loss = graph.loss
    if loss is None:
        raise WorkbenchError(f"graph of sample {graph.sample_id!r} has no loss: score it before backward")
    verdict = "passed" if loss.passed else "FAILED"
    measure = f" (it measures: {loss.measure})" if loss.measure else ""
    text = f"The evaluation {verdict} with score {loss.score:g}{measure}. "
    if loss.error and not loss.prediction:
        text += f"The pipeline gave no final answer: it raised `{loss.error}` after this output"
    else:
        text += f"The pipeline's final answer was {_one_line(loss.prediction)!r}"
        if loss.error:
            text += f" ({loss.error})"
    text += f"; the expected answer was {_one_line(loss.target)!r}."
    if loss.feedback:
        text += f" The evaluator's reasoning: {loss.feedback}"
    return text


def hide_target(text: str, target: str) -> str:
    """`text` with the expected answer masked, for feedback that goes further upstream.

    Single characters are not distinctive enough to mask without garbling the text.
    """
    target = (target or "").strip()
    if len(target) < 2:
        return text
    pattern = re.escape(target)
    if target[0].isalnum():
        pattern = r"(?<!\w)" + pattern
    if target[-1].isalnum():
        pattern += r"(?!\w)"
    return re.sub(pattern, "[the expected answer]", text, flags=re.IGNORECASE if len(target) > 3 else 0)


RELAYED_AFTER_ECHO = " (relayed: the backward model wrote no feedback of its own)"  # after it: the first
# sentence (what a base model's optimizer prompt shows) stays the evaluation's own
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

    def emit(self, node: NodeRecord, target: str, kind: str, text: str) -> None:
        g = Gradient(self.graph.sample_id, node.id, node.component, node.call_index, target, kind, self.score, text,
                     position=self.graph.nodes.index(node))
        self.graph.add_gradient(g)
        if kind == "parameter" and target in self.parameters:
            self.parameters[target].add_gradient(g)
        if self.on_gradient:
            self.on_gradient(g)

    def send(self, node: NodeRecord, source: str, text: str) -> None:
        """Feedback from `node` about the value that `source` produced (a value gradient)."""
        self.emit(node, source, "value", text)
        self.arrived.setdefault(source, []).append(Feedback(node.id, text))

    def ask_all(self, node: NodeRecord, jobs: list[tuple[str, str, list[dict]]], relayed: str = "") -> list[Any]:
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
            if not is_echo(text, messages, relayed):
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
    relayed = f"(relayed through function `{node.id}`) " + " ".join(f.text for f in feedback)
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
    downstream = " ".join(f.text for f in feedback)
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
    for (name, kind, _), text in zip(jobs, bp.ask_all(node, jobs, downstream)):  # emitted in a fixed order: reproducible
        if text is None:
            continue
        if text is _ECHOED:
            text = downstream + RELAYED_AFTER_ECHO
        if kind == "parameter":
            bp.emit(node, name, kind, text)
        else:
            bp.send(node, name, hide_target(text, target))


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
                 on_skipped: Callable[[dict], None] | None = None) -> list[Gradient]:
        """Walk the graph from the loss back to the first node; return every gradient written."""
        loss_feedback(graph)  # raises when the graph was never scored
        bp = BackwardPass(self, graph, parameters, on_gradient, on_skipped)
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
