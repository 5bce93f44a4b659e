"""What a branch inherits of the person's words: its parent's contributions up to the branch point.

A branch goes on from its parent's checkpoint after step k, which holds the optimizer's memory (the
person's reasons and edits) and the feedback not used yet; so the branch's optimizer reads words its own
event log never recorded. `open_run(branch).contributions` starts from these rows (marked `from_run`),
and the branch's own `feedback_used` events then say when it used an inherited piece of feedback.
"""
from __future__ import annotations

import os
from pathlib import Path

from . import events as ev
from .contributions import CONTRIBUTION_TYPES, Contributions
from .family import branch_record, parent_folder
from .store import read_events


def inherited_contributions(folder: str | os.PathLike, _seen: frozenset = frozenset()) -> Contributions:
    """The contributions a branch starts with (none for a run started from scratch or a lost parent);
    a branch of a branch inherits its parent's inheritance too."""
    record, parent = branch_record(folder), parent_folder(folder)
    if record is None or parent is None or parent.resolve() in _seen:
        return Contributions()
    step = record.get("step")
    if not isinstance(step, int):
        return Contributions()
    carried = inherited_contributions(parent, _seen | {Path(folder).resolve()})
    for event in read_events(parent / "events.jsonl"):
        if event.type in CONTRIBUTION_TYPES and event.step <= step:  # what the checkpoint after `step` holds
            carried.apply(ev.with_defaults(event))
    return carried.given_in(record["parent"])
