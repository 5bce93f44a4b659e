"""Credit per kept change: the validation score with that change alone reverted.

A run keeps a handful of changes; the final score does not say which of them earned it. For each
kept change (one accepted proposal: one parameter, or a joint group under one id) we score the
validation split with the final values except that change's parameters, which go back to the value
they had just before it (a later change of the same parameter is undone with it: it was written on
top). Every evaluation goes through the run's memo, so values scored before (the baseline, a
candidate validated during the run) cost nothing; `new_calls` says what the rest cost. A change
whose removal costs nothing (`earned <= 0`) is flagged in the report.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from ..engine.parameter import Parameter
from ..optim.gates import pair

# values -> (sample id -> score or None when errored, task calls paid for them)
Scorer = Callable[[dict[str, str]], tuple[dict[str, float | None], int]]


@dataclass(frozen=True)
class Change:
    """One kept proposal: the values its parameters had just before it."""
    proposal_id: str
    step: int
    before: dict[str, str]  # parameter -> value before the change


def kept_changes(params: Mapping[str, Parameter]) -> list[Change]:
    """Every accepted revision after the initial value, grouped by proposal id, in the order they were kept."""
    found: dict[str, Change] = {}
    for name, p in params.items():
        for previous, revision in zip(p.history, p.history[1:]):
            pid = revision.note or f"step-{revision.step}-{name}"
            change = found.setdefault(pid, Change(pid, revision.step, {}))
            change.before.setdefault(name, previous.value)
    return sorted(found.values(), key=lambda c: (c.step, c.proposal_id))


def ablate(params: Mapping[str, Parameter], score: Scorer) -> list[dict]:
    """One credit per kept change (the `credit` event's data); see the module docstring."""
    changes = kept_changes(params)
    if not changes:
        return []
    final = {n: p.value for n, p in params.items()}
    with_all, _ = score(final)
    credits = []
    for change in changes:
        without, calls = score({**final, **change.before})
        paired = pair(without, with_all)
        earned = None if paired.after is None else paired.after - paired.before
        credits.append({"parameter": "+".join(sorted(change.before)), "proposal_id": change.proposal_id,
                        "step": change.step, "with_change": paired.after, "without_change": paired.before,
                        "earned": earned, "samples": paired.n, "new_calls": calls})
    return credits
