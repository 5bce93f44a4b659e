"""The backward engine: textual gradients by a reverse walk over a recorded graph.

Each rule is local to its node, as in micrograd:
- loss node: states the score, the prediction and the expected answer to the node that produced
  the prediction (no LLM call);
- LLM node: one backward-engine call per trained parameter (with its role, description and peers)
  and one per input that came from an upstream node; the latter becomes that node's feedback;
- functional node: passes its feedback through to the nodes that produced its inputs.
A node called in a loop is its own graph node, so each call gets its own gradient, in time order.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from .graph import Gradient, Graph, NodeRecord
from .parameter import Parameter

if TYPE_CHECKING:
    from .llm.types import ChatModel

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


def _join(feedbacks: list[Feedback]) -> str:
    return "\n".join(f"- from {f.from_node}: {f.text}" for f in feedbacks) or "- (none)"


def loss_feedback(graph: Graph) -> str:
    loss = graph.loss
    assert loss is not None
    verdict = "passed" if loss.passed else "FAILED"
    return (f"The evaluation {verdict} with score {loss.score:g}. The pipeline's final answer was "
            f"{loss.prediction!r}; the expected answer was {loss.target!r}.")


class BackwardEngine:
    """A frozen LLM that writes feedback; `backward(graph, parameters)` fills `graph.gradients`.

    Parameter gradients are also appended to each `Parameter.gradients`, for the optimizer.
    `on_gradient` is called for each gradient as soon as it exists (the trainer turns it into an event).
    """

    def __init__(self, model: "ChatModel", *, max_parallel: int = 4, max_chars: int = 3000) -> None:
        self.model = model
        self.max_parallel = max_parallel
        self.max_chars = max_chars

    def _clip(self, text: str | None) -> str:
        text = text or ""
        return text if len(text) <= self.max_chars else text[: self.max_chars] + " ...[clipped]"

    def _ask(self, prompt: str) -> str:
        messages = [{"role": "system", "content": BACKWARD_SYSTEM}, {"role": "user", "content": prompt}]
        return self.model.complete(messages).text.strip()

    def backward(self, graph: Graph, parameters: dict[str, Parameter],
                 on_gradient: Callable[[Gradient], None] | None = None) -> list[Gradient]:
        if graph.loss is None:
            raise ValueError(f"graph of sample {graph.sample_id!r} has no loss: score it before backward")
        score = graph.loss.score
        arrived: dict[str, list[Feedback]] = {}

        def emit(g: Gradient) -> None:
            graph.add_gradient(g)
            if g.target_kind == "parameter" and g.target in parameters:
                parameters[g.target].add_gradient(g)
            if on_gradient:
                on_gradient(g)

        for node in reversed(graph.topological_order()):
            if node.kind == "loss":
                for source in graph.sources(node.id):
                    text = loss_feedback(graph)
                    arrived.setdefault(source, []).append(Feedback(node.id, text))
                    emit(Gradient(graph.sample_id, node.id, node.component, node.call_index, source, "value",
                                  score, text))
                continue
            feedback = arrived.get(node.id)
            if not feedback:
                continue  # nothing downstream depends on this node's output
            if node.kind == "function":
                relayed = f"(relayed through function `{node.id}`) " + " ".join(f.text for f in feedback)
                for source in dict.fromkeys(graph.sources(node.id)):
                    arrived.setdefault(source, []).append(Feedback(node.id, relayed))
                    emit(Gradient(graph.sample_id, node.id, node.component, node.call_index, source, "value",
                                  score, relayed))
                continue
            self._llm_node(graph, node, feedback, parameters, score, arrived, emit)
        return list(graph.gradients)

    def _llm_node(self, graph: Graph, node: NodeRecord, feedback: list[Feedback],
                  parameters: dict[str, Parameter], score: float, arrived: dict[str, list[Feedback]],
                  emit: Callable[[Gradient], None]) -> None:
        inputs = "\n".join(f"<INPUT name={k}>\n{self._clip(v)}\n</INPUT>" for k, v in node.inputs.items()) or "(none)"
        jobs: list[tuple[str, str, str]] = []  # (target, kind, prompt)
        used = [parameters[n] for n in node.parameters if n in parameters]
        for p in used:
            if not p.trainable:
                continue
            peers = "\n".join(f"- {q.name} ({q.role.value}): {self._clip(q.value)}" for q in used if q is not p) or "(none)"
            jobs.append((p.name, "parameter", PARAMETER_PROMPT.format(
                node=node.id, name=p.name, role=p.role.value, description=p.description or "(none)",
                value=p.value, peers=peers, inputs=inputs, output=self._clip(node.output),
                feedback=_join(feedback), score=f"{score:g}")))
        prompt_text = "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in (node.prompt or []))
        for edge in graph.edges:
            if edge.target != node.id:
                continue
            jobs.append((edge.source, "value", VALUE_PROMPT.format(
                node=node.id, input=edge.input, source=edge.source,
                value=self._clip(graph.node(edge.source).output), prompt=self._clip(prompt_text),
                output=self._clip(node.output), feedback=_join(feedback), score=f"{score:g}")))
        if not jobs:
            return
        with ThreadPoolExecutor(max_workers=max(1, min(self.max_parallel, len(jobs)))) as pool:
            texts = list(pool.map(lambda job: self._ask(job[2]), jobs))
        for (target, kind, _), text in zip(jobs, texts):  # emitted in a fixed order: reproducible
            emit(Gradient(graph.sample_id, node.id, node.component, node.call_index, target, kind, score, text))
            if kind == "value":
                arrived.setdefault(target, []).append(Feedback(node.id, text))
