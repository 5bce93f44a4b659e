"""What a checkpoint holds, how it is checked, and how a trainer is restored from it.

A checkpoint is the trainer's state after a step (parameters with their history, the optimizer's
memory, scores, the curve, usage so far), written by the run store as JSON. `schema` says which
layout it follows; files written before the field existed are schema 0 and read the same way.

On resume, a checkpoint that does not validate (binary, `{}`, a missing key, an unknown schema) is
skipped and the previous one is used: a damaged newest file costs one step, never the run.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from ..errors import WorkbenchError
from ..optim import ParameterMemory
from ..optim.demo_optimizer import Demo
from ..engine.parameter import Revision
from ..records.store import CHECKPOINT_SCHEMA_VERSION, READABLE_VERSIONS, REQUIRED_KEYS, checkpoint_problem  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from ..records.store import RunStore



def checkpoint_state(trainer: Any) -> dict:
    """Everything a resumed run needs to continue exactly where this one is."""
    return {"schema": CHECKPOINT_SCHEMA_VERSION,
            "step": trainer.step, "best_val": trainer.best_val, "best_step": trainer.best_step,
            "baseline": trainer.baseline, "curve": trainer.curve, "usage": trainer.usage(),
            "proposal_counter": trainer._proposal_counter, "stale_steps": trainer._stale_steps,
            "errored_samples": trainer.errored_samples,
            "parameters": {n: p.to_dict() for n, p in trainer.params.items()},
            "memory": {n: m.to_dict() for n, m in trainer.memory.items()},
            "demo_pool": {n: [asdict(d) for d in pool.values()]
                          for n, pool in trainer.demo_optimizer.pool.items()},
            "pinned": sorted(trainer.pinned), "excluded": sorted(trainer.excluded),
            "person_feedback": trainer.teaching.inbox.to_list()}


def latest_valid_checkpoint(store: "RunStore") -> tuple[dict | None, list[tuple[str, str]]]:
    """The newest checkpoint that validates, and the (path, reason) of each newer one skipped."""
    skipped: list[tuple[str, str]] = []
    return store.latest_checkpoint(skipped=skipped), skipped


def restore_checkpoint(trainer: Any, state: dict, *, keep_usage: bool = False) -> None:
    """Put a validated checkpoint's state back into `trainer` (its pipeline's parameters included).

    `keep_usage`: roll back within the same process (an interrupted step), where the money spent
    since the checkpoint was really spent and stays counted."""
    for name, saved in state["parameters"].items():
        if name not in trainer.params:
            raise WorkbenchError(f"checkpoint has parameter {name!r}, which this pipeline lacks")
        p = trainer.params[name]
        p.value = saved["value"]
        p.history = [Revision(**r) for r in saved.get("history", [])]
    trainer.memory = {n: ParameterMemory.from_dict(m) for n, m in state["memory"].items()}
    trainer.demo_optimizer.pool = {
        n: {d["sample_id"]: Demo(d["sample_id"], tuple(tuple(x) for x in d["inputs"]), d["output"], d["source"])
            for d in pool}
        for n, pool in state.get("demo_pool", {}).items()}
    trainer.step, trainer.best_val, trainer.best_step = state["step"], state["best_val"], state["best_step"]
    trainer.baseline, trainer.curve = state["baseline"], state["curve"]
    if not keep_usage:
        trainer.usage_before = state.get("usage", {})
    trainer._proposal_counter = state.get("proposal_counter", 0)
    trainer._stale_steps = state.get("stale_steps", 0)
    trainer.errored_samples = state.get("errored_samples", 0)
    trainer.pinned, trainer.excluded = set(state.get("pinned", [])), set(state.get("excluded", []))
    trainer.teaching.inbox.restore(state.get("person_feedback", []))  # keeps feedback given after it, pending
