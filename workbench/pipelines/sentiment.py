"""Review sentiment (positive / negative) as a prompt a small *base* model can continue.

A base model (the embedded Gemma 3 270M) does not follow instructions: it continues text. So the
prompt is a document that ends where the label begins (`Answer:`, as the demo optimizer writes its
examples), and what makes it right is the examples before it: the pattern the model copies. The demos are a trainable parameter, filled
by the demo optimizer from training samples; the instruction is trainable too, for a model that
reads it. The reply is one short line (a stop at the line break) and its first label word is the answer.
"""
from __future__ import annotations

import re

from ..nodes import LLMCall
from ..parameter import Parameter, Role
from ..pipeline import Pipeline
from ..prompt import PromptTemplate

SENTIMENTS = ("positive", "negative")
DEFAULT_INSTRUCTION = "Is each review positive or negative?"

TEMPLATE = PromptTemplate(user="{{instruction}}\n\n{{demos}}Review: {{review}}\nAnswer:")

_SENTIMENT = re.compile(r"\b(" + "|".join(SENTIMENTS) + r")\b", re.IGNORECASE)


def parse_sentiment(reply: str) -> str:
    """The first `positive` / `negative` in the reply's first non-empty line, lower-cased."""
    line = next((ln for ln in reply.splitlines() if ln.strip()), "")
    found = _SENTIMENT.search(line)
    if not found:
        raise ValueError("no sentiment (positive or negative) on the reply's first line")
    return found.group(1).lower()


class ReviewSentiment(Pipeline):
    """review -> positive | negative; scored with `exact_match`."""

    def __init__(self, instruction: str = DEFAULT_INSTRUCTION, demos: str = "") -> None:
        self.instruction = Parameter("sentiment.instruction", instruction, Role.INSTRUCTION,
                                     description="the line above the examples, saying what to label")
        self.demos = Parameter("sentiment.demos", demos, Role.DEMOS,
                               description="labelled reviews shown before the review: the pattern a base model continues")
        self.label = LLMCall("sentiment", TEMPLATE, [self.instruction, self.demos], parser=parse_sentiment,
                             stop=["\n"], max_tokens=6)

    def forward(self, review: str) -> str:
        return self.label(review=review)
