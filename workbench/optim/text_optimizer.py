"""The text optimizer: an LLM proposes a new parameter value from this step's gradients and history."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Sequence

from ..parameter import Parameter
from ..prompt import placeholders
from .memory import ParameterMemory

if TYPE_CHECKING:
    from ..graph import Gradient
    from ..llm.types import ChatModel

OPTIMIZER_SYSTEM = """You improve one part of a prompt used by an LLM pipeline. You get the part's \
current text, what it is for, the other parts of the same prompt, feedback collected on failed \
samples, and the history of earlier attempts with their validation scores. Write an improved \
version that addresses the feedback and generalises beyond the samples shown. Keep what works. \
Never copy sample answers into the text."""

OPTIMIZER_PROMPT = """### Parameter: {name}
Role: {role}
Purpose: {description}
<CURRENT_VALUE>
{value}
</CURRENT_VALUE>

### Other parts of the same prompt (peers; do not move their content into this part)
{peers}

### Feedback from this step, per sample (textual gradients, in call order)
{gradients}

### Earlier values and their validation scores (best first)
{history}

### Earlier proposals that failed (do not repeat them)
{failures}

### Constraints
{constraints}

Write {count} between <PROPOSAL> and </PROPOSAL>, and nothing else inside the tags."""


def summarise_gradients(gradients: Sequence["Gradient"], *, max_samples: int = 6, max_chars: int = 600) -> str:
    """Group by sample, keep call order within a sample, clip long texts."""
    by_sample: dict[str, list["Gradient"]] = {}
    for g in sorted(gradients, key=lambda g: (g.sample_id, g.call_index, g.node_id)):
        by_sample.setdefault(g.sample_id, []).append(g)
    parts = []
    for sample_id, grads in list(by_sample.items())[:max_samples]:
        score = grads[0].score
        lines = [f"Sample {sample_id} (score {score:g}):" if score is not None else f"Sample {sample_id}:"]
        for g in grads:
            text = g.text if len(g.text) <= max_chars else g.text[:max_chars] + " ..."
            lines.append(f"  - at {g.node_id} (call {g.call_index}): {text}")
        parts.append("\n".join(lines))
    hidden = len(by_sample) - max_samples
    if hidden > 0:
        parts.append(f"(and {hidden} more samples with similar feedback)")
    return "\n".join(parts) or "(no feedback)"


def check_constraints(param: Parameter, candidate: str) -> str | None:
    """Why a candidate breaks the parameter's constraints, or None when it keeps them."""
    if not candidate.strip():
        return "empty proposal"
    if candidate.strip() == param.value.strip():
        return "identical to the current value"
    lost = [p for p in placeholders(param.value) if p not in placeholders(candidate)]
    if lost:
        return f"drops the placeholders {lost}"
    missing = [c for c in param.constraints if c not in candidate]
    if missing:
        return f"drops text that must be kept: {missing}"
    if param.max_length is not None and len(candidate) > param.max_length:
        return f"{len(candidate)} characters, over the limit of {param.max_length}"
    return None


# parts of our own prompt: a reply quoting them is an echo (small base models do this), not a value
_ECHO_MARKERS = ("<CURRENT_VALUE>", "### Parameter:", "### Constraints", "<FAILED")


def parse_proposals(text: str) -> list[str]:
    """Values between <PROPOSAL> tags; a reply without tags counts as one proposal unless it echoes the prompt."""
    found = [m.strip() for m in re.findall(r"<PROPOSAL>(.*?)(?:</PROPOSAL>|$)", text, re.S)]
    found = [f for f in found if f and not any(m in f for m in _ECHO_MARKERS)]
    if not found and text.strip() and "<PROPOSAL>" not in text and not any(m in text for m in _ECHO_MARKERS):
        found = [text.strip()]
    return found


class TextOptimizer:
    """Proposes `num_candidates` values for a parameter; the trainer validates them."""

    def __init__(self, model: "ChatModel", *, num_candidates: int = 1, history_size: int = 3,
                 failures_shown: int = 4) -> None:
        self.model = model
        self.num_candidates = num_candidates
        self.history_size = history_size
        self.failures_shown = failures_shown

    def prompt(self, param: Parameter, peers: Sequence[Parameter], memory: ParameterMemory,
               gradients: Sequence["Gradient"]) -> list[dict]:
        history = "\n".join(f"- score {a.score:.3f} (step {a.step}): {a.value!r}"
                            for a in memory.best_values(self.history_size)) or "(none yet)"
        failures = "\n".join(
            f"<FAILED step={a.step} reason=\"{a.reason}\">\n{a.value}\n</FAILED>"
            for a in memory.failures(self.failures_shown)) or "(none)"
        rules = [f"- Keep the placeholders exactly: {', '.join('{{' + p + '}}' for p in placeholders(param.value))}"
                 ] if placeholders(param.value) else []
        rules += [f"- Keep this text verbatim: {c!r}" for c in param.constraints]
        if param.max_length:
            rules.append(f"- At most {param.max_length} characters.")
        count = "one improved value" if self.num_candidates == 1 else \
            f"{self.num_candidates} different improved values, each in its own tags"
        user = OPTIMIZER_PROMPT.format(
            name=param.name, role=param.role.value, description=param.description or "(none)", value=param.value,
            peers="\n".join(f"- {p.name} ({p.role.value}): {p.value}" for p in peers) or "(none)",
            gradients=summarise_gradients(gradients), history=history, failures=failures,
            constraints="\n".join(rules) or "(none)", count=count)
        return [{"role": "system", "content": OPTIMIZER_SYSTEM}, {"role": "user", "content": user}]

    def propose(self, param: Parameter, peers: Sequence[Parameter], memory: ParameterMemory,
                gradients: Sequence["Gradient"]) -> list[str]:
        return self.propose_with_reply(param, peers, memory, gradients)[0]

    def propose_with_reply(self, param: Parameter, peers: Sequence[Parameter], memory: ParameterMemory,
                           gradients: Sequence["Gradient"]) -> tuple[list[str], str]:
        """Candidates and the raw reply (shown to the user when it held no usable candidate)."""
        reply = self.model.complete(self.prompt(param, peers, memory, gradients)).text
        return parse_proposals(reply)[: self.num_candidates], reply
