"""A person's feedback waiting for the backward pass or the optimizer call that will use it.

`trainer.feedback(...)` may be called from any thread (a notebook cell, a dashboard click, the
terminal) while the run trains or waits for a decision, so the inbox is locked. An item stays
pending until a step uses it: sample and node feedback when that sample is back-propagated,
parameter feedback when the parameter's optimizer is next asked. Pending items carry to the next
step and are part of the checkpoint; items given after the last checkpoint are recovered from the
event log on resume (`FeedbackInbox.restore` keeps them pending).
"""
from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, fields
from typing import Iterable

TARGET_KINDS = ("sample", "node", "parameter")


@dataclass
class PersonFeedback:
    """One accepted piece of a person's feedback and where it acts."""

    feedback_id: str
    text: str
    target_kind: str  # sample | node | parameter
    sample_id: str | None = None
    node_id: str | None = None
    parameter: str | None = None
    given_at_step: int = 0
    used_at_step: int | None = None  # None while pending

    @property
    def pending(self) -> bool:
        return self.used_at_step is None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "PersonFeedback":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class FeedbackInbox:
    """Thread-safe store of a run's accepted person feedback, pending and used."""

    def __init__(self, items: Iterable[PersonFeedback] = ()) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, PersonFeedback] = {i.feedback_id: i for i in items}

    def add(self, item: PersonFeedback) -> None:
        with self._lock:
            self._items[item.feedback_id] = item

    def items(self) -> list[PersonFeedback]:
        with self._lock:
            return list(self._items.values())

    def pending(self, kind: str | None = None) -> list[PersonFeedback]:
        """Pending items in the order they were given (optionally of one target kind)."""
        return [i for i in self.items() if i.pending and (kind is None or i.target_kind == kind)]

    def take(self, predicate, step: int) -> list[PersonFeedback]:
        """Mark the pending items `predicate` selects as used in `step` and return them (atomically:
        a click arriving meanwhile is either taken now or stays pending for the next call)."""
        with self._lock:
            taken = [i for i in self._items.values() if i.pending and predicate(i)]
            for item in taken:
                item.used_at_step = step
        return taken

    def pending_samples(self) -> list[str]:
        """Training samples some pending sample or node feedback is about (they must be back-propagated)."""
        return list(dict.fromkeys(i.sample_id for i in self.pending() if i.target_kind != "parameter"
                                  and i.sample_id is not None))

    def to_list(self) -> list[dict]:
        return [i.to_dict() for i in self.items()]

    def restore(self, saved: Iterable[dict]) -> None:
        """Back to a checkpoint's items; items given after it (not in it) stay, pending again, and
        so does feedback the unfinished step had used (the checkpoint says it was pending)."""
        restored = {d["feedback_id"]: PersonFeedback.from_dict(d) for d in saved}
        with self._lock:
            for fid, item in self._items.items():
                if fid not in restored:
                    item.used_at_step = None
                    restored[fid] = item
            self._items = restored
