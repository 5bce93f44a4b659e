"""Question-type classification (TREC coarse classes) with one LLM call and three peer parameters.

The instruction, the output format and the demos are separate parameters so feedback can say
"the format is wrong" without touching the instruction, and the demo optimizer can fill the demos
slot while the text optimizer rewrites the instruction.
"""
from __future__ import annotations

import re

from ...engine.nodes import LLMCall
from ...engine.parameter import Parameter, Role
from ...engine.pipeline import Pipeline
from ...engine.prompt import PromptTemplate

LABELS = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")

DEFAULT_INSTRUCTION = (
    "Classify the question by the type of answer it expects. The classes are: ABBR (an abbreviation "
    "or what one stands for), DESC (a description, definition, manner or reason), ENTY (an entity such "
    "as an animal, colour, food, product or term), HUM (a person or group), LOC (a place) and NUM (a "
    "number, date, amount or measure).")
DEFAULT_OUTPUT_FORMAT = "Reply with one line of the form `Answer: LABEL`, where LABEL is one of the six classes."

TEMPLATE = PromptTemplate(system="{{instruction}}\n\n{{output_format}}", user="{{demos}}Question: {{question}}")

_LABEL = re.compile(r"\b(" + "|".join(LABELS) + r")\b", re.IGNORECASE)
_ANSWER_MARKER = re.compile(r"(?:answer|label|class)\s*[:=]", re.IGNORECASE)


def parse_label(reply: str) -> str:
    """The class label in a reply, upper-cased.

    After an `Answer:` (or `Label:`/`Class:`) marker the first label wins, since it is the answer;
    without a marker the last label wins, since a reply that reasons ends with its conclusion.
    """
    markers = list(_ANSWER_MARKER.finditer(reply))
    if markers:
        found = _LABEL.search(reply, markers[-1].end())
        if found:
            return found.group(1).upper()
    labels = _LABEL.findall(reply)
    if not labels:
        raise ValueError(f"no class label ({', '.join(LABELS)}) in the reply")
    return labels[-1].upper()


class QuestionClassifier(Pipeline):
    """question -> one of the six TREC coarse labels."""

    def __init__(self, instruction: str = DEFAULT_INSTRUCTION, output_format: str = DEFAULT_OUTPUT_FORMAT,
                 demos: str = "") -> None:
        self.instruction = Parameter("classify.instruction", instruction, Role.INSTRUCTION,
                                     description="tells the classifier what each of the six classes means")
        self.output_format = Parameter("classify.output_format", output_format, Role.OUTPUT_FORMAT,
                                       description="how the reply states the label, so the parser can read it")
        self.demos = Parameter("classify.demos", demos, Role.DEMOS,
                               description="worked examples (question and label) shown before the question")
        self.classify = LLMCall("classify", TEMPLATE, [self.instruction, self.output_format, self.demos],
                                parser=parse_label)

    def forward(self, question: str) -> str:
        return self.classify(question=question)
