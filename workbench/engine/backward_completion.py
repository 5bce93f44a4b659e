"""A backward prompt that a small *base* model can complete, and the echo check for every style.

A base model (the embedded Gemma 3 270M) does not follow the backward engine's instructions: given
them, it writes them back, and that echo would reach the optimizer as "feedback". So for such a
model the backward prompt is a short document that ends where the feedback begins ("Feedback on
the instruction:"), sent with stop sequences and a short cap; the first line of the continuation
is the gradient text.

Served through a chat format (llama.cpp's `gemma`), Gemma 3 270M does not continue the user turn:
it rewrites the document from its first line, and what it writes after the cue of a rewrite is not
text ("mendatang", other scripts; measured). So the reply stops at the first line break: that line
is a copy of the document's first line, which `is_echo` catches and the engine reports as skipped
in a second or two. A model that does continue the text (a raw completion endpoint, a larger base
model) writes its feedback on that line; a reply that repeats the document and then the cue gives
what follows the cue.

`is_echo` is the cheap check every style runs on a backward reply: an empty reply, or one whose
words were all copied from the prompt (the prompt's lines, the parameter's value), is not a
gradient. The engine reports it as skipped instead of passing it to the optimizer.
"""
from __future__ import annotations

import re
from typing import Any

ECHO_ERROR = "the backward model echoed its prompt"
_NGRAM = 3  # a reply mostly made of 3-word runs of the prompt is a copy of it (one word changed in a
_COPIED_SHARE = 0.7  # 14-word line still leaves 75% of them)


def backward_style(models: Any) -> str:
    """The backward prompt style for a run's `Models`, chosen as the optimizer's is
    (`optimizer_style`): the embedded server runs a base model; otherwise the model says so."""
    from ..llm.types import completion_style_of

    if getattr(models, "server", None) is not None:
        return "completion"
    return completion_style_of(getattr(models, "backward", None))


def _words(text: str) -> list[str]:
    return re.sub(r"[^\w\s]", " ", text.lower()).split()


def is_echo(reply: str, messages: list[dict], relayed: str = "", person: str = "") -> bool:
    """True for an empty reply or one copied from `messages`: its words appear there as one run
    (a reply of one or two words: as a whole line or a line's label), or most of its 3-word
    runs do (a rewritten prompt with a few words changed). Repeating `relayed`, the feedback that
    reached the node from downstream, is passing it on, not an echo; so is quoting `person`, a
    person's feedback in the prompt (their words are what the gradient should carry on)."""
    said = _words(reply)
    if not said or not re.search(r"[^\W\d_]{2}", reply):
        return True
    if f" {' '.join(said)} " in f" {' '.join(_words(relayed))} ":
        return False
    text = "\n".join(str(m.get("content") or "") for m in messages)
    if len(said) < 3:  # a word or two ("fine") is copied only if it is a whole line or a label of the prompt
        lines = {tuple(_words(part)) for ln in text.splitlines() for part in (ln, ln.split(":", 1)[0])}
        return tuple(said) in lines
    prompt = _words(text)
    if f" {' '.join(said)} " in f" {' '.join(prompt)} ":
        return True
    if len(said) < _NGRAM:
        return False
    seen = {tuple(prompt[i:i + _NGRAM]) for i in range(len(prompt) - _NGRAM + 1)}
    quoted = _words(person)
    seen -= {tuple(quoted[i:i + _NGRAM]) for i in range(len(quoted) - _NGRAM + 1)}
    runs = [tuple(said[i:i + _NGRAM]) for i in range(len(said) - _NGRAM + 1)]
    return sum(r in seen for r in runs) >= _COPIED_SHARE * len(runs)


def _short(text: str | None, limit: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " ..."


class CompletionBackward:
    """Builds the short backward document, its sampling settings, and parses the continuation."""

    def __init__(self, *, max_tokens: int = 48, feedback_chars: int = 200, context_chars: int = 300) -> None:
        self.max_tokens = max_tokens
        self.feedback_chars = feedback_chars
        self.context_chars = context_chars

    def sampling(self) -> dict:
        """One line, short; greedy, so a replay from the cache sees the same gradient."""
        return {"stop": ["\n"], "max_tokens": self.max_tokens, "temperature": 0.0}

    @staticmethod
    def cue(label: str) -> str:
        return f"Feedback on the {label}:"

    def parameter_messages(self, *, role: str, value: str, inputs: dict[str, str], output: str | None,
                           feedback: str) -> list[dict]:
        """The parameter's value, what the node got and answered, what went wrong, then the cue."""
        label = role.replace("_", " ")
        lines = [f"{label[:1].upper()}{label[1:]}: {' '.join(value.split())}"]
        lines += [f"{name.replace('_', ' ').capitalize()}: {_short(text, self.context_chars)}" for name, text in inputs.items()]
        lines += [f"Answer: {_short(output, self.context_chars)}", f"Problem: {_short(feedback, self.feedback_chars)}",
                  self.cue(label)]
        return [{"role": "user", "content": "\n".join(lines)}]

    def value_messages(self, *, source: str, node: str, value: str | None, output: str | None,
                       feedback: str) -> list[dict]:
        """The upstream node's output, what the next node answered from it, what went wrong, then the cue."""
        lines = [f"Output of {source}: {_short(value, self.context_chars)}",
                 f"Answer of {node}: {_short(output, self.context_chars)}",
                 f"Problem: {_short(feedback, self.feedback_chars)}", self.cue(f"output of {source}")]
        return [{"role": "user", "content": "\n".join(lines)}]

    def parse(self, reply: str) -> str:
        """The first line written after the last cue, or the reply's first line (which `is_echo`
        rejects when it is a rewrite of the document)."""
        text = reply.strip()
        cues = list(re.finditer(r"feedback on the [^:\n]*:", text, flags=re.I))
        if cues:
            text = text[cues[-1].end():]
        line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
        return line.strip('"\'` ')
