"""The two gates a proposal passes, comparing like with like.

Both compare a candidate with the current values on the *same* sample ids (paired): a sample that
errored in either run (the endpoint failed, so it says nothing about the prompt) is left out of
both means, and the count is reported. Comparing a mean over 9 samples with a mean over 10 is how
a prompt that made a hard sample error would look like a win.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Protocol


class Scored(Protocol):
    sample_id: str
    score: float | None
    status: str  # "ok" | "failed" | "errored"


def scores_by_id(results: Iterable[Scored]) -> dict[str, float | None]:
    """Sample id -> score, None for an errored sample (kept so pairing can leave it out)."""
    return {r.sample_id: (None if r.status == "errored" else float(r.score or 0.0)) for r in results}


@dataclass(frozen=True)
class Paired:
    before: float | None  # mean of the current values over the shared samples (None: no shared sample)
    after: float | None  # mean of the candidate over the same samples
    samples: tuple[str, ...]  # the shared, scored sample ids
    left_out: int  # samples errored in either run (or missing from one)
    all_passed_before: bool  # every shared sample already passed with the current values

    @property
    def n(self) -> int:
        return len(self.samples)


def pair(before: Mapping[str, float | None], after: Mapping[str, float | None], *,
         pass_threshold: float = 1.0) -> Paired:
    """Means of both runs over the samples both of them scored."""
    ids = list(dict.fromkeys([*before, *after]))
    shared = tuple(i for i in ids if before.get(i) is not None and after.get(i) is not None)
    if not shared:
        return Paired(None, None, (), len(ids), False)
    b = sum(before[i] for i in shared) / len(shared)
    a = sum(after[i] for i in shared) / len(shared)
    return Paired(b, a, shared, len(ids) - len(shared), all(before[i] >= pass_threshold for i in shared))


def minibatch_verdict(paired: Paired, *, rule: str = "strict") -> tuple[bool, str]:
    """Whether a candidate passes the minibatch gate, and why (shown to the optimizer and the user).

    `rule="strict"`: it must score strictly higher on the back-propagated samples, unless they all
    passed already (then it must not do worse). `rule="no_worse"`: a tie is enough.
    """
    if paired.before is None or paired.after is None:
        return False, f"no sample of the minibatch was scored in both runs ({paired.left_out} errored)"
    kept_out = f"; {paired.left_out} errored sample(s) left out of both" if paired.left_out else ""
    b, a = paired.before, paired.after
    if a > b:
        return True, f"minibatch score rose from {b:.3f} to {a:.3f}{kept_out}"
    if a == b and (rule == "no_worse" or paired.all_passed_before):
        why = "all samples already passed" if paired.all_passed_before else "a tie is allowed"
        return True, f"minibatch score stayed at {a:.3f} ({why}){kept_out}"
    if a < b:
        return False, f"minibatch score fell from {b:.3f} to {a:.3f}{kept_out}"
    return False, f"minibatch score stayed at {a:.3f} (a strict gain is required){kept_out}"


def can_still_win(candidate_so_far: Mapping[str, float | None], reference: Mapping[str, float | None],
                  remaining: Iterable[str], wins: Callable[[Paired], bool]) -> bool:
    """During validation: could the candidate still win if every remaining sample scored 1.0?"""
    optimistic = dict(candidate_so_far)
    optimistic.update({i: 1.0 for i in remaining})
    paired = pair(reference, optimistic)
    return paired.after is not None and wins(paired)
