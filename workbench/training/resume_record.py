"""What a resume adds to the log so that every checkpoint written has its events, once.

A step ends by writing its checkpoint, then `step_finished`, then `checkpoint` (trainer._checkpoint).
A kill between the file and the events leaves a step that is done but not logged as done: the resume
continues after it (it never redoes a checkpointed step) and logs the missing events from the
checkpoint, which carries the `step_finished` data. So each step is logged as finished exactly once,
and the MLflow mirror, which logs a step's metrics on `step_finished`, never logs one twice.
"""
from __future__ import annotations

import copy
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..records.events import CheckpointWritten, EventData, StepFinished
from ..records.kill_points import kill_point

if TYPE_CHECKING:
    from ..records.store import RunStore

# the store writes `{"type": "<type>", ...`: only lines of these types are parsed
_WANTED = (b'{"type": "step_finished"', b'{"type": "checkpoint"')
_STARTED = b'{"type": "run_started"'


def checkpoint_then_events(store: "RunStore", step: int, state: dict, finished: StepFinished | None,
                           emit: Callable[[EventData], None]) -> dict:
    """Write `state` as the checkpoint of `step`, then log `finished` (the step's `step_finished`, which
    the checkpoint carries without its usage: the state has its own) and the `checkpoint` event.
    Returns a copy of what was written (the state a run that ends mid-step goes back to)."""
    if finished is not None:
        state["step_finished"] = {k: v for k, v in asdict(finished).items() if k != "usage"}
    path = store.write_checkpoint(step, state)
    kill_point("checkpoint.files")
    saved = copy.deepcopy(state)
    if finished is not None:
        emit(finished)
    emit(CheckpointWritten(path=str(path)))
    return saved


def logged_steps(log: Path) -> tuple[set[int], set[int], int]:
    """(steps with a `step_finished`, steps with a `checkpoint` event, `run_started` events) in an events.jsonl."""
    finished, checkpointed, started = set(), set(), 0
    if not log.is_file():
        return finished, checkpointed, started
    with open(log, "rb") as f:
        for raw in f:
            started += raw.startswith(_STARTED)
            if not raw.startswith(_WANTED):
                continue
            try:
                event = json.loads(raw)
            except ValueError:
                continue  # a torn line: the event it was is missing
            if isinstance(event, dict) and isinstance(event.get("step"), int):
                (finished if event.get("type") == "step_finished" else checkpointed).add(event["step"])
    return finished, checkpointed, started


def missing_events(run_dir: Path, state: dict, checkpoint_path: Path) -> list[EventData]:
    """The events of the checkpointed step `state` that the log lacks (a kill right after the file).

    Only for a checkpoint an earlier session of this folder wrote: with one `run_started` in the log
    (this session's), the checkpoint came from elsewhere (a branch starts from its parent's state)."""
    step = state["step"]
    finished, checkpointed, started = logged_steps(run_dir / "events.jsonl")
    if started < 2:
        return []
    missing: list[EventData] = []
    stored = state.get("step_finished")
    if step >= 1 and step not in finished and isinstance(stored, dict):
        missing.append(StepFinished(**stored, usage=state.get("usage", {})))
    if step not in checkpointed:
        missing.append(CheckpointWritten(path=str(checkpoint_path)))
    return missing


def log_missing_events(run_dir: Path, state: dict | None, emit: Callable[[EventData], None]) -> None:
    """Emit what `missing_events` finds (on the trainer's bus: the log and every mirror get it)."""
    if state is None:
        return
    path = run_dir / "checkpoints" / f"step-{state['step']:04d}.json"
    for data in missing_events(run_dir, state, path):
        emit(data)
