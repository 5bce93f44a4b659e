"""The text optimizer: an LLM proposes a new parameter value from this step's gradients and history."""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING, Sequence

from ..errors import BadArgumentError
from ..engine.graph import Gradient
from ..llm.types import ask
from ..engine.parameter import Parameter
from ..engine.prompt import placeholders
from .optimizer_completion import CompletionPrompt, completion_style_of
from .memory import Attempt, ParameterMemory
from .person_judgements import JUDGEMENTS_HEADING, format_judgements, judgement_sentences

if TYPE_CHECKING:
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

{judgements}### Other parts of the same prompt (peers; do not move their content into this part)
{peers}

### Feedback from this step, per sample (textual gradients, in call order; samples marked PASSED
### show what already works: keep it)
{gradients}

### Earlier values and their validation scores (best first)
{history}

### Earlier proposals that failed (do not repeat them)
{failures}

### Already tried in THIS step and rejected (write something different that fixes their problem)
{rejected}

### Constraints
{constraints}

Write {count} between <PROPOSAL> and </PROPOSAL>, and nothing else inside the tags. If the feedback \
shows nothing in this part to change, write its current value unchanged."""


PERSON_HEADING = ("From the person reviewing this run, on this part (their own words: the strongest evidence; "
                  "follow it):")


def _by_person(g: "Gradient") -> bool:
    return getattr(g, "source", "backward") == "person"


def summarise_gradients(gradients: Sequence["Gradient"], *, max_samples: int = 6, max_chars: int = 600,
                        pass_threshold: float | None = None) -> str:
    """Group by sample, keep call order within a sample, clip long texts.

    With `pass_threshold`, samples that passed are framed as what works (to keep), not as errors.
    A person's feedback (source "person") comes first and is never clipped: on the parameter itself
    under its own heading, on a sample's nodes with that sample shown first.
    """
    direct = [g for g in gradients if _by_person(g) and not g.sample_id]
    by_sample: dict[str, list["Gradient"]] = {}
    for g in sorted((g for g in gradients if not (_by_person(g) and not g.sample_id)), key=Gradient.time_order):
        by_sample.setdefault(g.sample_id, []).append(g)
    if any(_by_person(g) for g in gradients):  # samples a person spoke about first: never hidden by the cap
        by_sample = dict(sorted(by_sample.items(), key=lambda kv: not any(_by_person(g) for g in kv[1])))

    def passing(grads: list["Gradient"]) -> bool:
        return pass_threshold is not None and grads[0].score is not None and grads[0].score >= pass_threshold

    parts = [PERSON_HEADING + "".join(f"\n  - {g.text}" for g in direct)] if direct else []
    for sample_id, grads in list(by_sample.items())[:max_samples]:
        score = grads[0].score
        if passing(grads):
            head = f"Sample {sample_id} PASSED (score {score:g}): what works here, keep it:"
        else:
            head = f"Sample {sample_id} (score {score:g}):" if score is not None else f"Sample {sample_id}:"
        lines = [head]
        for g in grads:
            text = g.text if len(g.text) <= max_chars or _by_person(g) else g.text[:max_chars] + " ..."
            who = " the person said" if _by_person(g) else ""
            lines.append(f"  - at {g.node_id} (call {g.call_index}){who}: {text}")
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


def format_attempt(a: Attempt) -> str:
    """A rejected value as the optimizer sees it: its text, scores and why it was refused."""
    scores = "".join([f" minibatch={a.minibatch:.3f}" if a.minibatch is not None else "",
                      f" validation={a.score:.3f}" if a.score is not None else ""])
    return f"<FAILED step={a.step}{scores} reason=\"{a.reason}\">\n{a.value}\n</FAILED>"


class TextOptimizer:
    """Proposes a value for a parameter, one call at a time; the trainer gates and decides.

    Each call sees the step's gradients, the history (the initial value with its baseline score
    first, then accepted values), earlier failures, and the candidates already rejected in this
    step, so the next attempt can differ from them (the paper's proposal loop).

    `style`: "chat" is the full protocol for instruction-following models; "completion" is a short
    prompt that a small *base* model can complete (it ends where the new value begins, and the
    reply is cut at the end of the line); "auto" asks the model (`completion_style` or
    `is_base_model` attributes) and falls back to "chat".
    """

    def __init__(self, model: "ChatModel", *, num_candidates: int | None = 1, history_size: int = 3,
                 failures_shown: int = 4, style: str = "auto", pass_threshold: float | None = None) -> None:
        if style not in ("auto", "chat", "completion"):
            raise BadArgumentError(f"TextOptimizer style must be 'auto', 'chat' or 'completion', not {style!r}")
        self.model = model
        self.num_candidates = num_candidates or 1  # values per call; the trainer's loop asks again for more
        self.history_size = history_size
        self.failures_shown = failures_shown
        self.style = completion_style_of(model) if style == "auto" else style
        self.pass_threshold = pass_threshold  # samples at or above it are framed as "what works"
        self.completion = CompletionPrompt()

    # -- prompts ----------------------------------------------------------------------------------
    def prompt(self, param: Parameter, peers: Sequence[Parameter], memory: ParameterMemory,
               gradients: Sequence["Gradient"], *, step: int | None = None, attempt: int = 1) -> list[dict]:
        judged = memory.person_judgements()
        if self.style == "completion":
            return self.completion.messages(param, gradients, self._this_step(memory, step), attempt,
                                            person=judgement_sentences(judged))
        history = "\n".join(f"- score {a.score:.3f} (step {a.step}{', initial value' if a.by == 'initial' else ''}): "
                            f"{a.value!r}" for a in memory.best_values(self.history_size)) or "(none yet)"
        rejected, this_step = self._rejected(memory, step), self._this_step(memory, step)
        earlier = [a for a in memory.failures(self.failures_shown + len(this_step)) if a not in this_step]
        failures = "\n".join(format_attempt(a) for a in earlier[-self.failures_shown:]) or "(none)"
        count = "one improved value" if self.num_candidates == 1 else \
            f"{self.num_candidates} different improved values, each in its own tags"
        user = OPTIMIZER_PROMPT.format(
            name=param.name, role=param.role.value, description=param.description or "(none)", value=param.value,
            judgements=f"{JUDGEMENTS_HEADING}\n{format_judgements(judged)}\n\n" if judged else "",
            peers="\n".join(f"- {p.name} ({p.role.value}): {p.value}" for p in peers) or "(none)",
            gradients=summarise_gradients(gradients, pass_threshold=self.pass_threshold), history=history,
            failures=failures, rejected="\n".join(format_attempt(a) for a in rejected) or "(none yet)",
            constraints=_rules(param), count=count)
        return [{"role": "system", "content": OPTIMIZER_SYSTEM}, {"role": "user", "content": user}]

    def joint_prompt(self, params: Sequence[Parameter], memory: dict[str, ParameterMemory],
                     step: int | None = None) -> list[dict]:
        """One prompt for all `params` of a prompt: changes that only work together are proposed together."""
        sections = []
        for p in params:
            mem = memory[p.name]
            history = "\n".join(f"- score {a.score:.3f} (step {a.step}): {a.value!r}"
                                for a in mem.best_values(self.history_size)) or "(none yet)"
            tried = self._rejected(mem, step) + [a for a in mem.failures(self.failures_shown)
                                                 if a not in self._this_step(mem, step)][-self.failures_shown:]
            judged = mem.person_judgements()
            sections.append(JOINT_PART.format(
                judgements=f"{JUDGEMENTS_HEADING}\n{format_judgements(judged)}\n" if judged else "",
                name=p.name, role=p.role.value, description=p.description or "(none)", value=p.value,
                gradients=summarise_gradients(p.gradients, pass_threshold=self.pass_threshold), history=history,
                failures="\n".join(format_attempt(a) for a in tried) or "(none)", constraints=_rules(p)))
        names = ", ".join(p.name for p in params)
        user = JOINT_PROMPT.format(parts="\n\n".join(sections), names=names)
        return [{"role": "system", "content": OPTIMIZER_SYSTEM}, {"role": "user", "content": user}]

    # -- proposing --------------------------------------------------------------------------------
    def propose(self, param: Parameter, peers: Sequence[Parameter], memory: ParameterMemory,
                gradients: Sequence["Gradient"], *, step: int | None = None) -> list[str]:
        return self.propose_with_reply(param, peers, memory, gradients, step=step)[0]

    @property
    def retry_when_empty(self) -> bool:
        """Whether asking again after an unusable reply can help: a base model samples a new line
        (another seed); a chat model at temperature 0 would repeat itself."""
        return self.style == "completion"

    def propose_with_reply(self, param: Parameter, peers: Sequence[Parameter], memory: ParameterMemory,
                           gradients: Sequence["Gradient"], *, step: int | None = None,
                           attempt: int | None = None) -> tuple[list[str], str]:
        """Candidates and the raw reply (shown to the user when it held no usable candidate)."""
        if self.style == "completion":
            attempt = attempt if attempt is not None else len(self._this_step(memory, step)) + 1
            messages = self.prompt(param, peers, memory, gradients, step=step, attempt=attempt)
            reply = ask(self.model, messages, **self.completion.sampling(param, step, attempt)).text
            found = self.completion.parse(reply, param, messages)
            return ([found] if found else []), reply
        reply = ask(self.model, self.prompt(param, peers, memory, gradients, step=step)).text
        return parse_proposals(reply)[: self.num_candidates], reply

    def propose_joint(self, params: Sequence[Parameter], memory: dict[str, ParameterMemory],
                      step: int | None = None) -> tuple[dict[str, str], str]:
        """New values by parameter name (only those the reply changed) and the raw reply."""
        reply = ask(self.model, self.joint_prompt(params, memory, step)).text
        values = parse_named_proposals(reply)
        return {p.name: values[p.name] for p in params
                if values.get(p.name) and values[p.name].strip() != p.value.strip()}, reply

    @staticmethod
    def _this_step(memory: ParameterMemory, step: int | None) -> list[Attempt]:
        """Candidates rejected in `step` (this step's earlier attempts), repeats included."""
        return [] if step is None else [a for a in memory.attempts if a.step == step and not a.accepted]

    @classmethod
    def _rejected(cls, memory: ParameterMemory, step: int | None) -> list[Attempt]:
        """This step's rejected candidates as the optimizer sees them: each value once, with its first
        verdict and how often it came back. A repeat says nothing new, yet shown in full it would cost
        its tokens again in every later attempt of the step."""
        firsts: dict[str, Attempt] = {}
        times: Counter[str] = Counter()
        for a in cls._this_step(memory, step):
            firsts.setdefault(a.value.strip(), a)
            times[a.value.strip()] += 1
        return [a if times[v] == 1 else replace(a, reason=f"{a.reason}; proposed {times[v]} times in this step")
                for v, a in firsts.items()]


def _rules(param: Parameter) -> str:
    rules = [f"- Keep the placeholders exactly: {', '.join('{{' + p + '}}' for p in placeholders(param.value))}"
             ] if placeholders(param.value) else []
    rules += [f"- Keep this text verbatim: {c!r}" for c in param.constraints]
    if param.max_length:
        rules.append(f"- At most {param.max_length} characters.")
    return "\n".join(rules) or "(none)"


JOINT_PART = """### Parameter: {name}
Role: {role}
Purpose: {description}
<CURRENT_VALUE name="{name}">
{value}
</CURRENT_VALUE>
{judgements}Feedback from this step:
{gradients}
Earlier values and their validation scores:
{history}
Proposals that failed (do not repeat them):
{failures}
Constraints:
{constraints}"""

JOINT_PROMPT = """These parts make up one prompt. Improve them TOGETHER: a change in one part may only work \
with a matching change in another.

{parts}

Write the new value of each part you change between <PROPOSAL name="NAME"> and </PROPOSAL> (names: {names}); \
leave out the parts you keep as they are."""


def parse_named_proposals(text: str) -> dict[str, str]:
    """`<PROPOSAL name="x">value</PROPOSAL>` blocks by name; echoes of the prompt are ignored."""
    found = {}
    for name, value in re.findall(r"<PROPOSAL\s+name=[\"']?([^\"'>\s]+)[\"']?\s*>(.*?)(?:</PROPOSAL>|(?=<PROPOSAL)|$)",
                                  text, re.S):
        value = value.strip()
        if value and not any(m in value for m in _ECHO_MARKERS):
            found[name] = value
    return found
