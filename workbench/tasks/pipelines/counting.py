"""Object counting (BIG-Bench Hard style): reason step by step, then give one number.

The deliberately plain default instruction leaves room to learn the usual pitfalls (items given
with a quantity, items that are not of the asked kind).
"""
from __future__ import annotations

import re

from ...engine.nodes import LLMCall
from ...engine.parameter import Parameter, Role
from ...engine.pipeline import Pipeline
from ...engine.prompt import PromptTemplate

DEFAULT_INSTRUCTION = "Read the question and count the objects it asks about. Think step by step."
DEFAULT_OUTPUT_FORMAT = "Finish with a last line of the form `Answer: N`, where N is a number written in digits."

TEMPLATE = PromptTemplate(system="{{instruction}}\n\n{{output_format}}", user="Question: {{question}}")

NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?|\b(?:" + "|".join(NUMBER_WORDS) + r")\b", re.IGNORECASE)
_ANSWER_MARKER = re.compile(r"\banswer\s*(?:is\b\s*:?|[:=])", re.IGNORECASE)


def _as_number(token: str) -> str:
    token = token.lower()
    if token in NUMBER_WORDS:
        return str(NUMBER_WORDS[token])
    return str(int(float(token))) if float(token).is_integer() else token


def parse_count(reply: str) -> str:
    """The final number of a reply, as digits.

    The first number after the last `Answer` marker wins; without one, the last number in the reply
    (the conclusion of the reasoning). Number words up to twenty count, since small models use them.
    """
    text = reply.replace(",", "")
    markers = list(_ANSWER_MARKER.finditer(text))
    if markers:
        found = _NUMBER.search(text, markers[-1].end())
        if found:
            return _as_number(found.group(0))
    numbers = _NUMBER.findall(text)
    if not numbers:
        raise ValueError("no number in the reply")
    return _as_number(numbers[-1])


class ObjectCounter(Pipeline):
    """question -> the count, as digits; scored with `numeric_match`."""

    def __init__(self, instruction: str = DEFAULT_INSTRUCTION, output_format: str = DEFAULT_OUTPUT_FORMAT) -> None:
        self.instruction = Parameter("count.instruction", instruction, Role.INSTRUCTION,
                                     description="how to reason about which objects to count and how")
        self.output_format = Parameter("count.output_format", output_format, Role.OUTPUT_FORMAT,
                                       description="how the reply ends with the number, so the parser can read it")
        self.count = LLMCall("count", TEMPLATE, [self.instruction, self.output_format], parser=parse_count)

    def forward(self, question: str) -> str:
        return self.count(question=question)
