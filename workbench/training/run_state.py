"""`RunState`: what a run IS at one moment, the one object a checkpoint writes and restores whole.

Everything a resumed run needs to continue exactly where this one was: the parameters' values and
histories, the step, the best validation score and its step, the baseline, the curve (whose last
point carries the failed samples to the next step), the usage a resumed run spent before, the
proposal id sequence, the stale-step count, errored samples (and the baseline's, which a resume retries), the optimizer's memory, the demo pool,
the samples a person pinned or excluded, and the person's feedback (`FeedbackInbox`: pending or used).

The trainer's parts read and write it through its fields and methods; no part keeps a copy of any
of this on its own. The layout of a checkpoint (`to_checkpoint()`) is versioned by
`records.store.CHECKPOINT_SCHEMA_VERSION`; files of schema 0 (no version field) read the same way.
"""
from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from ..errors import WorkbenchError
from ..optim import ParameterMemory
from ..optim.demo_optimizer import Demo
from ..optim.person_feedback import FeedbackInbox
from ..records.store import CHECKPOINT_SCHEMA_VERSION

if TYPE_CHECKING:
    from ..engine.parameter import Parameter


def flag_sample(pinned: set[str], excluded: set[str], sample_id: str, flag: str, on: bool) -> None:
    """Pin (`flag="pin"`) or exclude a sample, or take the flag off; pinning and excluding exclude each
    other. The run's state and the dashboard's view of it both change by this one rule."""
    mine, other = (pinned, excluded) if flag == "pin" else (excluded, pinned)
    if on:
        mine.add(sample_id)
        other.discard(sample_id)
    else:
        mine.discard(sample_id)


@dataclass
class RunState:
    """The state of one run; `params` are the pipeline's own (live) parameters."""

    params: "dict[str, Parameter]"
    memory: dict[str, ParameterMemory] = field(default_factory=dict)
    demo_pool: dict[str, dict[str, Demo]] = field(default_factory=dict)  # parameter -> sample id -> demo
    step: int = 0
    best_val: float | None = None
    best_step: int = 0
    baseline: dict[str, float | None] = field(default_factory=dict)
    curve: list[dict] = field(default_factory=list)
    usage_before: dict[str, dict] = field(default_factory=dict)  # what a resumed run spent before
    proposal_counter: int = 0
    stale_steps: int = 0
    errored_samples: int = 0
    baseline_errored: dict[str, list[str]] = field(default_factory=dict)  # split -> baseline samples not answered
    pinned: set[str] = field(default_factory=set)
    excluded: set[str] = field(default_factory=set)
    person_feedback: FeedbackInbox = field(default_factory=FeedbackInbox)  # locked itself: any thread adds to it
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in self.params:
            self.memory.setdefault(name, ParameterMemory(name))

    # -- what the parts ask ---------------------------------------------------------------------------
    def values(self) -> dict[str, str]:
        """Every parameter's current value (the key of an evaluation in the memo)."""
        return {n: p.value for n, p in self.params.items()}

    def carried_samples(self) -> list[str]:
        """Failed samples carried to the next step (nothing was accepted since they failed).

        Kept in the curve's last point, so a checkpoint carries them without a field of its own."""
        return list(self.curve[-1].get("carried", [])) if self.curve else []

    def next_proposal_id(self, step: int) -> str:
        """The next id of the run's one proposal sequence (`p<step>-<n>`, n never reused)."""
        self.proposal_counter += 1
        return f"p{step}-{self.proposal_counter}"

    def sample_flags(self) -> tuple[frozenset[str], frozenset[str]]:
        """(pinned, excluded) as they are now: a consistent pair, whatever a control changes next."""
        with self._lock:
            return frozenset(self.pinned), frozenset(self.excluded)

    def set_sample_flag(self, sample_id: str, flag: str, on: bool) -> None:
        """Pin a sample into, or exclude it from, backward; pinning and excluding exclude each other."""
        with self._lock:
            flag_sample(self.pinned, self.excluded, sample_id, flag, on)

    # -- checkpoints ----------------------------------------------------------------------------------
    def to_checkpoint(self, usage: dict[str, dict]) -> dict:
        """The checkpoint of this state; `usage` is the run's usage so far (it is metered elsewhere)."""
        pinned, excluded = self.sample_flags()
        return {"schema": CHECKPOINT_SCHEMA_VERSION,
                "step": self.step, "best_val": self.best_val, "best_step": self.best_step,
                "baseline": self.baseline, "curve": self.curve, "usage": usage,
                "proposal_counter": self.proposal_counter, "stale_steps": self.stale_steps,
                "errored_samples": self.errored_samples,
                **({"baseline_errored": self.baseline_errored} if any(self.baseline_errored.values()) else {}),
                "parameters": {n: p.to_dict() for n, p in self.params.items()},
                "memory": {n: m.to_dict() for n, m in self.memory.items()},
                "demo_pool": {n: [asdict(d) for d in pool.values()] for n, pool in self.demo_pool.items()},
                "pinned": sorted(pinned), "excluded": sorted(excluded)} | self._person_feedback()

    def _person_feedback(self) -> dict:
        """The person's feedback, when there is any (a run without it writes what earlier versions did)."""
        items = self.person_feedback.to_list()
        return {"person_feedback": items} if items else {}

    def from_checkpoint(self, checkpoint: dict, *, keep_usage: bool = False) -> None:
        """Become the state a validated checkpoint holds (the live parameters included), in place, so
        every part that holds this object sees it.

        `keep_usage`: roll back within the same process (an interrupted step), where the money spent
        since the checkpoint was really spent and stays counted."""
        for name in checkpoint["parameters"]:
            if name not in self.params:
                raise WorkbenchError(f"checkpoint has parameter {name!r}, which this pipeline lacks")
        for name, saved in checkpoint["parameters"].items():
            self.params[name].load(saved)
        self.memory = {n: ParameterMemory.from_dict(m) for n, m in checkpoint["memory"].items()}
        for name in self.params:
            self.memory.setdefault(name, ParameterMemory(name))
        self.demo_pool.clear()  # the demo optimizer holds this very dict
        self.demo_pool.update({
            n: {d["sample_id"]: Demo(d["sample_id"], tuple(tuple(x) for x in d["inputs"]), d["output"], d["source"])
                for d in pool}
            for n, pool in checkpoint.get("demo_pool", {}).items()})
        self.step, self.best_val, self.best_step = checkpoint["step"], checkpoint["best_val"], checkpoint["best_step"]
        self.baseline, self.curve = checkpoint["baseline"], checkpoint["curve"]
        if not keep_usage:
            self.usage_before = checkpoint.get("usage", {})
        self.proposal_counter = checkpoint.get("proposal_counter", 0)
        self.stale_steps = checkpoint.get("stale_steps", 0)
        self.errored_samples = checkpoint.get("errored_samples", 0)
        self.baseline_errored = {split: list(ids) for split, ids in checkpoint.get("baseline_errored", {}).items()
                                 if isinstance(ids, list)}  # (counts in checkpoints of an older version: unknown ids)
        with self._lock:
            self.pinned, self.excluded = set(checkpoint.get("pinned", [])), set(checkpoint.get("excluded", []))
        self.person_feedback.restore(checkpoint.get("person_feedback", []))  # keeps feedback given after it, pending

