"""Who kept each exported value: a branch carries its parent's values with their history (step and
proposal id) but not the decisions, which are in the event log of the run that made them.

`makers_of(store)` lists the run itself, then its parent, and so on up the tree, each with the step after
which its own decisions start; `maker_of(step, makers)` picks the run whose own steps hold `step`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from ..errors import EventContractError
from .events import DecisionMade, Event
from .family import branch_record, parent_folder
from .store import RunStore


def _decisions(events: Iterable["Event"]) -> dict[str, DecisionMade]:
    """The decision on each proposal id; a resumed run may replay a step, and the last word counts.
    A decision line that lacks a required field (a damaged or foreign log) is passed over."""
    decisions = {}
    for e in events:
        if e.type == "decision":
            try:
                decision = DecisionMade.of(e)
            except EventContractError:
                continue
            decisions[decision.proposal_id] = decision
    return decisions


# (the steps after which a run made its own decisions, its run id, its decisions)
Maker = tuple[int, str, dict[str, DecisionMade]]


def makers_of(store: RunStore) -> list[Maker]:
    """Who kept a value at a step: the run itself after its branch point, its parent up to there (and so
    on up the tree), for a branch carries its parent's values with their history but not their decisions."""
    makers: list[Maker] = []
    folder: Path | None = store.path
    run_id, seen = store.run_id, set()
    while folder is not None and folder.resolve() not in seen:
        seen.add(folder.resolve())
        record = branch_record(folder)
        after = record["step"] if record and isinstance(record.get("step"), int) else -1
        makers.append((after, run_id, _decisions(RunStore(folder).events())))
        folder, run_id = (parent_folder(folder), record["parent"]) if after >= 0 else (None, run_id)
    return makers


def maker_of(step: Any, makers: list[Maker]) -> Maker | None:
    """The run that kept a value at `step`: the nearest whose own steps hold it (the root for step 0)."""
    if not makers:
        return None
    if not isinstance(step, int):
        return makers[0]
    return next((m for m in makers if step > m[0]), makers[-1])
