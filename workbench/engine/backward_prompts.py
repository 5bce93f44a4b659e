"""The texts of the backward engine: its prompts, the loss's feedback, and how feedback is joined.

`Feedback` is text arriving at a node's output from one consumer, or from a person
(`source="person"`, `trainer.feedback`): a person's feedback is listed first and marked as theirs,
so a prompt cut for length never loses it before the backward engine's own text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import WorkbenchError
from .graph import Graph

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
    """Text arriving at a node's output from one consumer (or from a person, `source="person"`)."""

    from_node: str
    text: str
    source: str = "backward"  # "backward" | "person"


PERSON_LABEL = "the person reviewing this run (their own words: the strongest evidence)"


def person_first(feedbacks: list[Feedback]) -> list[Feedback]:
    """A person's feedback before the engine's: a prompt cut for length keeps it."""
    return sorted(feedbacks, key=lambda f: f.source != "person")


def _join(feedbacks: list[Feedback]) -> str:
    return "\n".join(f"- from {PERSON_LABEL if f.source == 'person' else f.from_node}: {f.text}"
                     for f in person_first(feedbacks)) or "- (none)"


def downstream_text(feedbacks: list[Feedback]) -> str:
    """The feedback at a node as one line (the base-model prompt's "Problem:"), a person's first."""
    return " ".join(f"(from the person) {f.text}" if f.source == "person" else f.text
                    for f in person_first(feedbacks))

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
