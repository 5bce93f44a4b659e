"""An optimizer prompt that a small *base* model can complete.

A base model (the embedded Gemma 3 270M) has no chat template and does not follow instructions: it
continues text. Given the full optimizer protocol it echoes it. So for such a model the prompt is a
short document that ends where the new value begins ("Better instruction:"); the reply is cut at
the end of its first line (a stop sequence) with a short cap, and that line is the proposal.

Served through a chat format (llama.cpp's `gemma`), such a model does not continue the user turn:
it rewrites the document from its first line, `Instruction: <current value>`, changing it as it
goes (more so at a higher temperature, with a wider top-k, and when the first line's label differs:
"Old instruction:", "Draft instruction:" in later attempts). That rewritten line is a proposal too,
taken the same way (the label is stripped). A line that repeats the current value, the problem text or a
label (or the start of one, cut mid-sentence) is an echo, not a proposal. Rejected values are shown without their
reasons: a small model copies whatever text it sees into its line. Each attempt of a step gets its own seed, so attempts differ and
a replay from the cache (or a resumed run) sees the same replies.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Sequence

from ..llm.types import completion_style_of
from ..engine.parameter import Parameter, Role

if TYPE_CHECKING:
    from ..engine.graph import Gradient
    from .memory import Attempt

_LABEL = {Role.INSTRUCTION: "instruction", Role.OUTPUT_FORMAT: "output format", Role.TEXT: "text",
          Role.DEMOS: "examples"}

# how the current value is introduced, by attempt: a base model copies a familiar line word for word,
# and a different first word is what most often makes it write the line differently
_ATTEMPT_PREFIXES = ("", "Old ", "Current ", "Draft ")
# a label the model may put before its line ("Better instruction:", "draft output format:", "Rule:")
_LABEL_RE = re.compile(r"^\s*(?:[a-z]+\s+){0,2}(?:instruction|output format|format rule|format|text|examples|rule|"
                       r"note|problem|already tried)\s*:\s*", re.I)
_NOT_A_VALUE = re.compile(r"^\s*(?:problem|already tried)\s*:", re.I)  # the model rewrote the feedback instead


def optimizer_style(models: Any) -> str:
    """The optimizer prompt style for a run's `Models`: the embedded server runs a base model."""
    if getattr(models, "server", None) is not None:
        return "completion"
    return completion_style_of(getattr(models, "optimizer", None))


def _first_sentence(text: str, limit: int) -> str:
    text = " ".join(text.split())
    cut = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return cut if len(cut) <= limit else cut[:limit].rsplit(" ", 1)[0] + "..."


def _strip_label(line: str) -> str:
    return _LABEL_RE.sub("", line, count=1).strip()


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


class CompletionPrompt:
    """Builds the short document prompt, its sampling settings, and parses the continuation."""

    def __init__(self, *, max_tokens: int = 64, temperature: float = 1.0, top_k: int = 100,
                 max_feedback_chars: int = 240, rejected_shown: int = 2) -> None:
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.top_k = top_k  # wider than llama.cpp's default 40 (with min_p 0): a small model's copies vary more
        self.max_feedback_chars = max_feedback_chars
        self.rejected_shown = rejected_shown

    def sampling(self, param: Parameter, step: int | None, attempt: int) -> dict:
        """End at the line, short (about twice the current value), varied per attempt but reproducible."""
        cap = min(self.max_tokens, 16 + 2 * len(param.value.split()))
        return {"stop": ["\n"], "max_tokens": cap, "temperature": self.temperature, "top_k": self.top_k,
                "min_p": 0.0, "seed": 1000 * (step or 0) + attempt}

    def problem(self, gradients: Sequence["Gradient"], person: Sequence[str] = ()) -> str:
        """The feedback of the failed samples, first sentence of each, deduplicated and short; a
        person's words (their reasons, their feedback on the parameter) first, so a cut keeps them."""
        seen: list[str] = [_first_sentence(t, self.max_feedback_chars) for t in person if t.strip()]
        for g in sorted(gradients, key=lambda g: (getattr(g, "source", "") != "person",
                                                  g.score if g.score is not None else 0.0, g.sample_id)):
            if g.target_kind == "parameter":
                sentence = _first_sentence(g.text, self.max_feedback_chars)
                if sentence and sentence not in seen:
                    seen.append(sentence)
        text = " ".join(seen) or "Some answers were wrong."
        return text if len(text) <= self.max_feedback_chars else text[:self.max_feedback_chars].rsplit(" ", 1)[0] + "..."

    def messages(self, param: Parameter, gradients: Sequence["Gradient"], rejected: Sequence["Attempt"],
                 attempt: int = 1, person: Sequence[str] = ()) -> list[dict]:
        label = _LABEL.get(param.role, "instruction")
        first = f"{_ATTEMPT_PREFIXES[(attempt - 1) % len(_ATTEMPT_PREFIXES)]}{label}"
        lines = [f"{first[:1].upper()}{first[1:]}: {' '.join(param.value.split())}",
                 f"Problem: {self.problem(gradients, person)}"]
        for a in list(rejected)[-self.rejected_shown:]:
            lines.append(f"Already tried: {' '.join(a.value.split())}")  # a small model copies reasons into values
        lines.append(f"Better {label}:")
        return [{"role": "user", "content": "\n".join(lines)}]

    def parse(self, reply: str, param: Parameter, messages: Sequence[dict]) -> str | None:
        """The proposal in a reply (its first line, label stripped), or None for an empty line or an echo."""
        line = next((ln.strip() for ln in reply.strip().splitlines() if ln.strip()), "")
        if _NOT_A_VALUE.match(line) or not _strip_label(line.rstrip(":") + ":"):
            return None  # the feedback rewritten, or a bare label ("instruction")
        line = _strip_label(line)
        line = re.split(r"\s(?:problem|already tried|better \w+|new \w+|instruction)\s*:", line, flags=re.I)[0]
        line = line.strip().strip('"\'`').strip()
        if not line or not re.search(r"[^\W\d_]{2}", line):
            return None
        echoes = {_norm(_strip_label(ln)) for m in messages for ln in str(m["content"]).splitlines()}
        echoes |= {_norm(param.value), ""}
        said = _norm(line)
        if said in echoes:
            return None  # a copy of a prompt line
        if not line.endswith((".", "!", "?", ":")) and any(e.startswith(said) for e in echoes):
            return None  # the beginning of one, cut short (a whole first sentence is a shorter value)
        return line
