"""An optimizer prompt that a small *base* model can complete.

A base model (the embedded Gemma 3 270M) has no chat template and does not follow instructions: it
continues text. Given the full optimizer protocol it echoes it. So for such a model the prompt is a
short pattern (one worked example, then the real case) that ends exactly where the new value
begins ("Better instruction:"); the reply is cut at the end of the line (a stop sequence) with a
short cap, and its first line is the proposal. A reply that repeats the prompt (the current value,
the worked example, or one of the pattern's labels) is an echo, not a proposal.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Sequence

from ..parameter import Parameter, Role

if TYPE_CHECKING:
    from ..graph import Gradient
    from .memory import Attempt

_LABEL = {Role.INSTRUCTION: "instruction", Role.OUTPUT_FORMAT: "output format", Role.TEXT: "text",
          Role.DEMOS: "examples"}

EXAMPLE_VALUE = "Answer the question."
EXAMPLE_PROBLEM = "The answers were long sentences, but a single number was expected."
EXAMPLE_BETTER = "Answer the question with a single number and nothing else."
_PATTERN_LABELS = ("instruction:", "problem:", "better ", "already tried", "rejected:", "rewrite ")


def completion_style_of(model: Any) -> str:
    """"completion" for a base model (it says so with `completion_style` or `is_base_model`), else "chat"."""
    style = getattr(model, "completion_style", None)
    if style in ("chat", "completion"):
        return style
    return "completion" if getattr(model, "is_base_model", False) is True else "chat"


def _first_sentence(text: str, limit: int) -> str:
    text = " ".join(text.split())
    cut = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return cut if len(cut) <= limit else cut[:limit].rsplit(" ", 1)[0] + "..."


class CompletionPrompt:
    """Builds the short pattern prompt, its sampling settings, and parses the continuation."""

    def __init__(self, *, max_tokens: int = 48, max_feedback_chars: int = 240, rejected_shown: int = 3) -> None:
        self.max_tokens = max_tokens
        self.max_feedback_chars = max_feedback_chars
        self.rejected_shown = rejected_shown

    @property
    def sampling(self) -> dict:
        """Sampling settings for the optimizer call: end at the line, short."""
        return {"stop": ["\n"], "max_tokens": self.max_tokens}

    def problem(self, gradients: Sequence["Gradient"]) -> str:
        """The feedback of the failed samples, first sentence of each, deduplicated and short."""
        seen: list[str] = []
        for g in sorted(gradients, key=lambda g: (g.score if g.score is not None else 0.0, g.sample_id)):
            if g.target_kind == "parameter":
                sentence = _first_sentence(g.text, self.max_feedback_chars)
                if sentence and sentence not in seen:
                    seen.append(sentence)
        text = " ".join(seen) or "Some answers were wrong."
        return text if len(text) <= self.max_feedback_chars else text[:self.max_feedback_chars].rsplit(" ", 1)[0] + "..."

    def messages(self, param: Parameter, gradients: Sequence["Gradient"], rejected: Sequence["Attempt"]) -> list[dict]:
        label = _LABEL.get(param.role, "instruction")
        lines = [f"Rewrite each {label} so that it fixes the problem.", "",
                 f"{label.capitalize()}: {EXAMPLE_VALUE}", f"Problem: {EXAMPLE_PROBLEM}",
                 f"Better {label}: {EXAMPLE_BETTER}", "",
                 f"{label.capitalize()}: {' '.join(param.value.split())}", f"Problem: {self.problem(gradients)}"]
        for a in list(rejected)[-self.rejected_shown:]:
            lines.append(f"Already tried, rejected: {' '.join(a.value.split())} ({_first_sentence(a.reason, 80)})")
        lines.append(f"Better {label}:")
        return [{"role": "user", "content": "\n".join(lines)}]

    def parse(self, reply: str, param: Parameter, messages: Sequence[dict]) -> str | None:
        """The proposal in a continuation, or None when it is empty or an echo of the prompt."""
        line = next((ln.strip() for ln in reply.strip().splitlines() if ln.strip()), "")
        line = line.strip().strip('"\'`').strip()
        if not line:
            return None
        low = line.lower()
        prompt_lines = {ln.split(":", 1)[-1].strip().lower() for m in messages for ln in str(m["content"]).splitlines()}
        if low.startswith(_PATTERN_LABELS) or low in prompt_lines or low == EXAMPLE_BETTER.lower() \
                or " ".join(low.split()) == " ".join(param.value.lower().split()):
            return None
        return line
