"""Review sentiment (positive / negative) with few-shot demos as conversation turns.

A small *base* model (the embedded Gemma 3 270M) does not follow instructions: it continues a
pattern. Served through a chat format, a document of examples in one user turn is not continued
but rewritten from its first line (measured: 0 of 30 labelled that way). The same examples as
turns, each review a user turn and its label the model's reply, set a pattern it does continue
(26 of 30 with four examples; bench/embedded_demo.py measures the whole demo). So the demos
parameter, filled by the demo optimizer from training samples, is rendered as turns; the
instruction is a system message (folded into the first turn where the server drops those).
Any chat model reads the same messages as a few-shot conversation.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ...engine.nodes import LLMCall
from ...engine.parameter import Parameter, Role
from ...engine.pipeline import Pipeline
from ...engine.prompt import PromptTemplate

SENTIMENTS = ("positive", "negative")
DEFAULT_INSTRUCTION = "Label each review positive or negative."

_ANSWER = re.compile(r"^\s*answer\s*:\s*", re.IGNORECASE)
_HEADER = re.compile(r"^\s*example\s+\d+\s*:\s*$", re.IGNORECASE)
_LEADING_LABEL = re.compile(r"^\W*(?:answer\s*:\s*)?\W*(" + "|".join(SENTIMENTS) + r")\b", re.IGNORECASE)


def demo_turns(demos: str) -> tuple[list[dict], str]:
    """Demos text (blocks of `Name: value` lines ending with `Answer: ...`, as the demo optimizer
    writes them) as user / assistant turns, and any text that is not such a block (a person's free
    edit), which stays in the final user turn."""
    turns: list[dict] = []
    loose: list[str] = []
    for block in re.split(r"\n\s*\n", demos.strip()):
        lines = [ln for ln in block.splitlines() if ln.strip() and not _HEADER.match(ln)]
        if len(lines) >= 2 and _ANSWER.match(lines[-1]):
            turns += [{"role": "user", "content": "\n".join(lines[:-1])},
                      {"role": "assistant", "content": _ANSWER.sub("", lines[-1]).strip()}]
        elif lines:
            loose.append("\n".join(lines))
    return turns, "\n\n".join(loose) + ("\n\n" if loose else "")


@dataclass(frozen=True)
class FewShotTemplate(PromptTemplate):
    """A PromptTemplate whose `demos` slot becomes conversation turns before the final user turn."""

    demos_slot: str = "demos"

    def render(self, variables: dict[str, object], *, node: str) -> list[dict]:
        turns, loose = demo_turns(str(variables.get(self.demos_slot, "")))
        messages = super().render({**variables, self.demos_slot: loose}, node=node)
        system = [m for m in messages if m["role"] == "system"]
        return system + turns + [m for m in messages if m["role"] != "system"]


TEMPLATE = FewShotTemplate(system="{{instruction}}", user="{{demos}}Review: {{review}}")


def parse_sentiment(reply: str) -> str:
    """The label the reply starts with (after an optional `Answer:`), lower-cased. A reply that only
    mentions a label later (a copy of the instruction, "positive or negative") has none."""
    found = _LEADING_LABEL.match(reply)
    if not found:
        raise ValueError("the reply does not start with positive or negative")
    return found.group(1).lower()


class ReviewSentiment(Pipeline):
    """review -> positive | negative; scored with `exact_match`."""

    def __init__(self, instruction: str = DEFAULT_INSTRUCTION, demos: str = "") -> None:
        self.instruction = Parameter("sentiment.instruction", instruction, Role.INSTRUCTION,
                                     description="the system line, saying what to label")
        self.demos = Parameter("sentiment.demos", demos, Role.DEMOS,
                               description="labelled reviews shown as earlier turns: the pattern a base model continues")
        self.label = LLMCall("sentiment", TEMPLATE, [self.instruction, self.demos], parser=parse_sentiment,
                             stop=["\n"], max_tokens=1)

    def forward(self, review: str) -> str:
        return self.label(review=review)


