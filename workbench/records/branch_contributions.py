"""What a branch inherits of the person's words: its parent's contributions up to the branch point.

A branch goes on from its parent's checkpoint after step k, which holds the optimizer's memory (the
person's reasons and edits) and the feedback not used yet; so the branch's optimizer reads words its own
event log never recorded. `open_run(branch).contributions` starts from these rows (marked `from_run`),
and the branch's own `feedback_used` events then say when it used an inherited piece of feedback. Only
a branch's contributions are read this way (its log and its ancestors' logs, when asked for); a run
started from scratch has them in its one fold.
"""
from __future__ import annotations

import os
from pathlib import Path

from . import events as ev
from .contributions import CONTRIBUTION_TYPES, Contributions
from .family import branch_record, parent_folder
from .store import read_events


def contributions_of(folder: str | os.PathLike, up_to_step: int | None = None,
                     _seen: frozenset = frozenset()) -> Contributions:
    """A run's contributions as its log tells them (up to `up_to_step`), after, for a branch, those it
    inherited; a branch of a branch inherits its parent's inheritance too."""
    carried = _inherited(Path(folder), _seen)
    for event in read_events(Path(folder) / "events.jsonl"):
        if event.type in CONTRIBUTION_TYPES and (up_to_step is None or event.step <= up_to_step):
            carried.apply(ev.with_defaults(event))
    return carried


def inherited(folder: str | os.PathLike) -> Contributions:
    """Only what a branch inherits (its parent's person up to the branch point, each row's `from_run` set):
    the dashboard's live fold starts from it and folds the branch's own events on top."""
    return _inherited(Path(folder), frozenset())


def _inherited(folder: Path, seen: frozenset) -> Contributions:
    """What the checkpoint a branch starts from holds of its parent's person (none for a run started from
    scratch or a lost parent)."""
    record, parent = branch_record(folder), parent_folder(folder)
    if record is None or parent is None or not isinstance(record.get("step"), int) or parent.resolve() in seen:
        return Contributions()
    return contributions_of(parent, record["step"], seen | {folder.resolve()}).given_in(record["parent"])
