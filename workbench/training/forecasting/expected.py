"""The forecast's expected value: the remaining steps walked one by one with expected counts.

The certain parts are counted exactly from what the schedule and the memo say: the baseline still to
run, each step's minibatch samples the memo does not hold with the current values (`fresh`: paid
whatever happens). The uncertain parts carry the rates in `Priors` (stated or observed, see
revision.py):

- a step's fresh samples fail independently with the failing share f, so P(some fail) = 1 - (1 - f)^b
  and the failed ones chosen are E[min(max_failed, Binomial(b, f))]; carried samples are chosen first;
  passing ones join for contrast only when something is chosen. No sample chosen: no backward, no proposal.
- per proposal group, attempts stop at the first kept one (kept with `keep_chance`), each runs the
  minibatch gate on the chosen samples, a share `minibatch_pass` is validated on `validated_share` of
  the split;
- a kept change fixes `fix_share` of the failing samples (f shrinks); nothing kept carries the failed
  chosen samples to the next step (capped), whose forward the memo answers;
- a sample run again (a later epoch, or one the memo holds now) is paid only if a change was kept since;
  the final test likewise; a best validation score no candidate can beat (1.0 under the strict rule)
  means nothing is validated or kept; with `patience`, a step runs only if fewer than `patience` steps in a row kept nothing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence


@dataclass(frozen=True)
class Remaining:
    """The schedule of the steps still to run, as the memo sees it now."""
    batches: Sequence[int]  # minibatch size per step
    fresh: Sequence[int]  # per step: samples paid whatever happens (not in the memo now, not run earlier in it)
    repeats: Sequence[Sequence[int]]  # per step: for each other sample, the step index it last ran in (-1: now)
    val: int
    test: int
    test_held: int  # test samples the memo holds (or the baseline will hold) with the current values
    carried: int = 0  # samples carried now
    stale: int = 0  # steps in a row that kept nothing, now
    can_win: bool = True  # False: the best validation score is such that no candidate can beat it (no validation runs)
    sure: Sequence[int] | None = None  # per step: of its fresh samples, those no run the memo reads evaluated under
    # any values (a branch's later step may run the values its parent kept, which the family memo answers); None: all


@dataclass(frozen=True)
class ExpectedCounts:
    task_samples: float  # pipeline runs (forwards, gates, validations, final test), baseline excluded
    backward_samples: float
    optimizer_calls: float


def expected_counts(prior: Any, cfg: Any, remaining: Remaining, *, text_groups: int, demo_groups: int) -> ExpectedCounts:
    """Walk the remaining steps with expected counts (see the module docstring)."""
    f, carried = prior.failing_share, float(remaining.carried)
    p, m = (prior.keep_chance, cfg.max_proposals) if remaining.can_win else (0.0, cfg.max_proposals)
    validated = prior.validated_share if remaining.can_win else 0.0
    attempts = sum((1 - p) ** i for i in range(m))  # per text group, in a step with chosen samples
    nothing_kept = (1 - p) ** (m * text_groups + demo_groups)  # no group keeps, given chosen samples
    all_attempts = text_groups * attempts + demo_groups
    patience = cfg.patience
    stale = [0.0] * (patience or 1)
    stale[min(remaining.stale, len(stale) - 1)] = 1.0  # P(alive, k stale steps in a row)
    keep_chances: list[float] = []  # per step index walked: P(a change is kept in that step)
    task = backward = optimizer = 0.0
    for t, (b, fresh) in enumerate(zip(remaining.batches, remaining.fresh)):
        alive = sum(stale) if patience else 1.0
        any_fails = 1 - (1 - f) ** b
        has_carried = min(1.0, carried)
        p_chosen = 1 - (1 - any_fails) * (1 - has_carried)
        failed = _mean_min(cfg.max_failed, b, f)
        contrast = any_fails * _mean_min_passing(cfg.max_correct, b, f) + \
            (1 - any_fails) * has_carried * min(cfg.max_correct, b)
        chosen = carried + failed + contrast
        redone = sum(1 - _no_change(keep_chances, max(j, 0)) for j in remaining.repeats[t])
        gates = all_attempts * chosen
        validations = all_attempts * p_chosen * prior.minibatch_pass
        task += alive * (fresh + redone + gates + validations * validated * remaining.val)
        backward += alive * chosen
        optimizer += alive * text_groups * attempts * p_chosen
        q = p_chosen * (1 - nothing_kept) if all_attempts else 0.0
        keep_chances.append(q)
        f *= 1 - q * prior.fix_share
        carried = nothing_kept * min(cfg.max_carried, carried + failed) if cfg.max_carried > 0 else 0.0
        if patience:  # a step that kept nothing adds to the stale count; patience of them stop the run
            stale = [q * alive] + [(1 - q) * s for s in stale[:-1]]
    task += remaining.test - remaining.test_held * _no_change(keep_chances, 0)  # the final test
    return ExpectedCounts(task, backward, optimizer)


def _no_change(keep_chances: list[float], start: int) -> float:
    """P(no change kept in the steps from index `start` on, of those walked so far)."""
    return math.prod(1 - q for q in keep_chances[start:])


def _binomial(n: int, f: float) -> list[float]:
    return [math.comb(n, k) * f ** k * (1 - f) ** (n - k) for k in range(n + 1)]


def _mean_min(cap: int, n: int, f: float) -> float:
    """E[min(cap, X)] for X ~ Binomial(n, f): the failed samples a step chooses."""
    return sum(pk * min(cap, k) for k, pk in enumerate(_binomial(n, f)))


def _mean_min_passing(cap: int, n: int, f: float) -> float:
    """E[min(cap, n - X) | X > 0]: the passing samples chosen for contrast when some failed."""
    pmf = _binomial(n, f)
    some = 1 - pmf[0]
    return sum(pk * min(cap, n - k) for k, pk in enumerate(pmf) if k) / some if some > 0 else 0.0
