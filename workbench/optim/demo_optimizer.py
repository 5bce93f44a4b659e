"""Few-shot demos from successful traces.

A demo is what one LLM node received and answered on a training sample the pipeline got right
(a *bootstrapped* demo, from the task model or a stronger teacher), or a raw training example.
Candidates that resemble the current errors are preferred, so the demos teach what is failing.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

from ..engine.nodes import is_clipped
from ..engine.parameter import Parameter

if TYPE_CHECKING:
    from ..engine.runner import SampleResult

_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


@dataclass(frozen=True)
class Demo:
    sample_id: str
    inputs: tuple[tuple[str, str], ...]
    output: str
    source: str  # "bootstrapped" | "raw"

    def render(self) -> str:
        """Input fields as `Name: value`, then the answer (a traced reply may already say `Answer:`)."""
        lines = [f"{k[:1].upper()}{k[1:]}: {v}" for k, v in self.inputs]
        answer = self.output if self.output.lower().startswith("answer:") else f"Answer: {self.output}"
        return "\n".join(lines + [answer])


def format_demos(demos: Sequence[Demo]) -> str:
    """Numbered examples, ending with a blank line so the prompt text that follows stays apart."""
    if not demos:
        return ""
    return "\n\n".join(f"Example {i}:\n{d.render()}" for i, d in enumerate(demos, 1)) + "\n\n"


class DemoOptimizer:
    """Keeps a pool of demo candidates and proposes a set of `num_demos` for a demos parameter."""

    def __init__(self, num_demos: int = 3, *, seed: int = 0, max_input_chars: int = 400) -> None:
        self.num_demos = num_demos
        self.seed = seed
        self.max_input_chars = max_input_chars
        self.pool: dict[str, dict[str, Demo]] = {}  # parameter name -> sample id -> demo

    def collect(self, param: Parameter, results: Iterable["SampleResult"], slots: Sequence[str] = ()) -> int:
        """Add bootstrapped demos from passing traces of the node that uses `param`. Returns how many."""
        pool = self.pool.setdefault(param.name, {})
        added = 0
        for r in results:
            if not r.passed or r.sample_id in pool and pool[r.sample_id].source == "bootstrapped":
                continue
            for node in r.graph.nodes:
                if param.name in node.parameters and node.status == "done" and node.output \
                        and not is_clipped(node.output):  # a demo shows a whole output, never a display clip
                    inputs = tuple((k, v[: self.max_input_chars]) for k, v in node.inputs.items() if k not in slots)
                    pool[r.sample_id] = Demo(r.sample_id, inputs, node.output.strip(), "bootstrapped")
                    added += 1
                    break
        return added

    def add_raw(self, param: Parameter, examples: Iterable) -> None:
        """Raw training examples (input fields and target) as a fallback pool."""
        pool = self.pool.setdefault(param.name, {})
        for ex in examples:
            if ex.id not in pool:
                inputs = tuple((k, str(v)[: self.max_input_chars]) for k, v in ex.input.items())
                pool[ex.id] = Demo(ex.id, inputs, str(ex.target), "raw")

    def propose(self, param: Parameter, failed: Sequence["SampleResult"], step: int) -> str | None:
        """Pick demos most like the failed samples (bootstrapped first); None when the pool is too small."""
        candidates = list(self.pool.get(param.name, {}).values())
        failed_ids = {r.sample_id for r in failed}
        candidates = [d for d in candidates if d.sample_id not in failed_ids]
        if not candidates:
            return None
        targets = [_words(" ".join(str(v) for v in r.inputs.values())) for r in failed]
        rng = random.Random(f"{self.seed}:{param.name}:{step}")
        rng.shuffle(candidates)  # breaks ties differently each step, reproducibly

        def likeness(d: Demo) -> float:
            words = _words(" ".join(v for _, v in d.inputs))
            sims = [len(words & t) / (len(words | t) or 1) for t in targets] or [0.0]
            return max(sims) + (0.5 if d.source == "bootstrapped" else 0.0)

        chosen = sorted(candidates, key=likeness, reverse=True)[: self.num_demos]
        text = format_demos(chosen)
        return None if text.strip() == param.value.strip() else text
