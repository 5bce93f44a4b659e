"""How sure a validation decision is: the paired difference with a seeded bootstrap interval.

A candidate that beats the current prompt by one sample of twenty has a better mean, and the
paper's rule keeps it; whether that gain is real is another question. For each decision we take
the per-sample differences (candidate - current) over the samples both runs scored, resample them
with replacement `resamples` times (a seeded generator: the same scores and seed give the same
interval on a re-run) and report the central `confidence` share of the resampled means, plus the
samples the candidate won and lost. `accept="significant"` keeps a change only when the interval's
lower bound is above zero.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Mapping
from ..errors import BadArgumentError

RESAMPLES = 2000


@dataclass(frozen=True)
class PairedInterval:
    """The paired difference of one decision and its bootstrap interval."""

    diff: float  # mean of (candidate - current) over the shared samples
    low: float  # lower bound of the interval
    high: float  # upper bound
    confidence: float  # e.g. 0.9: the central 90% of the resampled means
    n: int  # shared, scored samples
    won: tuple[str, ...]  # sample ids where the candidate scored higher
    lost: tuple[str, ...]  # sample ids where it scored lower
    resamples: int
    seed: int

    @property
    def above_zero(self) -> bool:
        """The whole interval lies above zero: the gain holds on (almost) any resample of the samples."""
        return self.low > 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["won"], d["lost"] = list(self.won), list(self.lost)
        return d


def paired_interval(before: Mapping[str, float | None], after: Mapping[str, float | None], *,
                    confidence: float = 0.9, seed: int = 0, resamples: int = RESAMPLES) -> PairedInterval | None:
    """The interval of mean(after - before) over the samples both scored; None when none was."""
    if not 0.0 < confidence < 1.0:
        raise BadArgumentError(f"confidence must be between 0 and 1 (exclusive), not {confidence!r}")
    ids = [i for i in dict.fromkeys([*before, *after]) if before.get(i) is not None and after.get(i) is not None]
    if not ids:
        return None
    diffs = [float(after[i]) - float(before[i]) for i in ids]
    n = len(diffs)
    rng = random.Random(f"paired-bootstrap:{seed}")
    means = sorted(sum(rng.choices(diffs, k=n)) / n for _ in range(resamples))
    tail = (1.0 - confidence) / 2.0
    low = means[int(tail * (resamples - 1))]
    high = means[int(round((1.0 - tail) * (resamples - 1)))]
    return PairedInterval(diff=sum(diffs) / n, low=low, high=high, confidence=confidence, n=n,
                          won=tuple(i for i, d in zip(ids, diffs) if d > 0),
                          lost=tuple(i for i, d in zip(ids, diffs) if d < 0),
                          resamples=resamples, seed=seed)


def describe(interval: PairedInterval | None) -> str:
    """One line for reasons, review and the report: `+0.050 [+0.000, +0.150] 90%, won 1, lost 0 of 20`."""
    if interval is None:
        return "no sample scored in both runs"
    return gain_text(interval.to_dict())


def gain_text(validation: Mapping) -> str:
    """The same line from a `validation` event's data (or `PairedInterval.to_dict()`); "" without an interval."""
    if validation.get("diff") is None:
        return ""
    won, lost = list(validation.get("won") or ()), list(validation.get("lost") or ())
    n = validation.get("n")
    return (f"{validation['diff']:+.3f} [{validation['low']:+.3f}, {validation['high']:+.3f}] "
            f"{validation['confidence']:.0%}, won {len(won)}, lost {len(lost)}" + (f" of {n}" if n else ""))
