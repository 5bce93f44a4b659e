"""What one sample costs, measured on the real prompts without calling a model (for `forecast.py`).

A few samples run through the pipeline on `DryModel`s (each answers from the response cache when it
holds the reply, else with a placeholder), their graphs go through the backward engine, and each
trained parameter's optimizer prompt is rendered from the gradients written: per role, calls per
sample and tokens per call. The trainer's parameters and gradients are left as they were.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from statistics import mean
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from ...engine.backward import BackwardEngine
from ...engine.nodes import LLMCall
from ...engine.parameter import Parameter, Role
from ...engine.runner import SampleResult, run_example
from ...llm.dry_run import DryCall, DryModel
from ...llm.token_count import token_counter
from ...optim import ParameterMemory, TextOptimizer

if TYPE_CHECKING:
    from ...engine.example import Example
    from ...engine.pipeline import Pipeline


@dataclass
class PerCall:
    """Requests of one kind: how many per unit (a sample, a backward sample), and their prompt tokens."""
    counts: list[int] = field(default_factory=list)  # requests per unit
    prompt: list[int] = field(default_factory=list)  # prompt tokens per request
    cached: int = 0  # requests the response cache answered
    cached_reply: list[int] = field(default_factory=list)  # reply tokens of those

    def add(self, calls: Sequence[DryCall]) -> None:
        self.counts.append(len(calls))
        self.prompt += [c.prompt_tokens for c in calls]
        self.cached += sum(c.cached for c in calls)
        self.cached_reply += [c.reply_tokens for c in calls if c.reply_tokens is not None]

    bound: int | None = None  # the most requests per unit, when the pipeline declares it (`max_calls_per_sample`)

    def per_unit(self, how: str) -> float:
        values = self.counts or [0]
        measured = float({"least": min, "expected": mean, "most": max}[how](values))
        return max(measured, self.bound) if how == "most" and self.bound else measured

    def tokens(self, how: str) -> float:
        values = self.prompt or [0]
        return float({"least": min, "expected": mean, "most": max}[how](values))

    @property
    def cache_share(self) -> float:
        return self.cached / len(self.prompt) if self.prompt else 0.0


@dataclass
class Probe:
    """Per role: requests and prompt sizes measured on the real prompts; replies' caps; how tokens were counted."""
    task: PerCall
    backward: PerCall  # units: back-propagated samples
    optimizer: PerCall  # units: one proposal of one group
    target_tokens: float  # mean tokens of the sampled targets (the expected size of a task reply)
    value_tokens: float  # mean tokens of the trained text parameters' values
    caps: dict[str, int | None]  # role -> the reply cap (max_tokens) of its model
    counting: dict[str, str]  # role -> how its tokens were counted
    text_groups: int  # proposal groups of text parameters per step
    demo_groups: int  # demo parameters trained per step
    text_params: int  # trainable text parameters


def probe(pipeline: "Pipeline", samples: Sequence["Example"], eval_fn: Any, models: Any,
          params: dict[str, Parameter], memory: dict[str, ParameterMemory], *, pass_threshold: float,
          backward_style: str, optimizer_style: str, optimize: str, peers_of: Any) -> Probe:
    """Run `samples` dry through forward, backward and one proposal per group (see the module docstring)."""
    dry = {role: DryModel(m, token_counter(m)) for role, m in models.by_role().items()}
    task, backward, optimizer = PerCall(bound=getattr(pipeline, "max_calls_per_sample", None)), PerCall(), PerCall()
    results: list[SampleResult] = []
    with _dry_nodes(pipeline), _gradients_kept(params):
        for example in samples:
            before = len(dry["task"].calls)
            results.append(run_example(pipeline, example, eval_fn, dry["task"], pass_threshold=pass_threshold))
            task.add(dry["task"].calls[before:])
        engine = BackwardEngine(dry["backward"], style=backward_style)
        for r in results:
            if r.status == "errored" or r.graph.loss is None:
                continue
            before = len(dry["backward"].calls)
            engine.backward(r.graph, params, on_skipped=lambda report: None)  # a placeholder reply says nothing
            backward.add(dry["backward"].calls[before:])
        text = [p for p in params.values() if p.trainable and p.role is not Role.DEMOS]
        text = [p for p in text if p.gradients] or text  # as a step does: only parameters that got feedback
        groups = _text_groups(text, optimize, peers_of)
        writer = TextOptimizer(dry["optimizer"], style=optimizer_style)
        for group in groups:
            before = len(dry["optimizer"].calls)
            if len(group) > 1:
                writer.propose_joint(group, memory, 1)
            else:
                p = group[0]
                writer.propose_with_reply(p, [params[n] for n in peers_of(p) if n != p.name],
                                          memory.get(p.name) or ParameterMemory(p.name), p.gradients, step=1)
            optimizer.add(dry["optimizer"].calls[before:])
    if task.bound and task.counts and backward.counts and 0 < max(task.counts) < task.bound:
        # the placeholder replies ended samples early: backward grows with the calls a sample may make
        backward.bound = math.ceil(max(backward.counts) * task.bound / max(task.counts))
    counter = dry["task"].counter
    demos = sum(p.trainable and p.role is Role.DEMOS for p in params.values())
    return Probe(task, backward, optimizer,
                 target_tokens=mean([counter.count_text(str(e.target)) for e in samples] or [0]),
                 value_tokens=mean([counter.count_text(p.value) for p in text] or [0]),
                 caps={role: d.reply_cap for role, d in dry.items()},
                 counting={role: d.counter.method for role, d in dry.items()},
                 text_groups=1 if optimize == "one" and (text or demos) else len(groups),
                 demo_groups=0 if optimize == "one" and text else demos, text_params=len(text))


def _text_groups(text: list[Parameter], optimize: str, peers_of: Any) -> list[list[Parameter]]:
    """The proposal groups of the text parameters, as `TrainingStep._groups_to_optimize` forms them."""
    if optimize != "joint":
        return [[p] for p in text]
    groups: dict[str, list[Parameter]] = {}
    for p in text:
        groups.setdefault("+".join(peers_of(p)) or p.name, []).append(p)
    return list(groups.values())


@contextlib.contextmanager
def _dry_nodes(pipeline: "Pipeline") -> Iterator[None]:
    """A node with a model of its own would call it: it gets a dry stand-in for the forecast."""
    own = {node: node.model for node in pipeline.components() if isinstance(node, LLMCall) and node.model}
    for node, model in own.items():
        node.model = DryModel(model, token_counter(model))
    try:
        yield
    finally:
        for node, model in own.items():
            node.model = model


@contextlib.contextmanager
def _gradients_kept(params: dict[str, Parameter]) -> Iterator[None]:
    """The dry backward pass writes gradients; the run's parameters get their own back."""
    saved = {name: list(p.gradients) for name, p in params.items()}
    try:
        yield
    finally:
        for name, p in params.items():
            p.zero_grad()
            p.gradients.extend(saved[name])
