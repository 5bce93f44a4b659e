"""The two gates as runs of the pipeline: a candidate on the minibatch, then on validation.

Gates are paired (optim/gates.py holds the comparisons): the candidate and the current values are
compared on the same sample ids, and a sample that errored in either run is left out of both means.
The current values' scores come from the run's `EvalMemo` (they were scored already), so a gate
pays only for the candidate. Validation runs in chunks and stops once even a perfect rest of the
split could no longer win.

`GateRuns` is the trainer's part for this; it runs the pipeline through the run's `Evaluator`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

from ..optim.gates import Paired, can_still_win, minibatch_verdict, pair, scores_by_id
from ..engine.runner import SampleResult
from ..records.events import Eval, Minibatch, Validation

if TYPE_CHECKING:
    from ..engine.example import Example
    from .config import TrainConfig
    from .emitter import RunEmitter
    from .evaluation import Evaluator

Values = dict[str, str]  # parameter name -> candidate value (one entry, or several for a joint proposal)


class GateRuns:
    """Minibatch and validation gates; see the module docstring. `selection_threshold`: a sample at or
    above it counts as passing when the minibatch gate pairs scores."""

    def __init__(self, evaluator: "Evaluator", config: "TrainConfig", val: Sequence["Example"],
                 selection_threshold: float, emit: "RunEmitter") -> None:
        self._evaluator, self._config, self._val = evaluator, config, list(val)
        self._selection_threshold, self._emit = selection_threshold, emit

    def minibatch_gate(self, values: Values, pid: str, gate_examples: list["Example"],
                       before: Mapping[str, float | None]) -> tuple[bool, str, Paired]:
        """The candidate against the current values on the back-propagated samples (paired)."""
        with self._evaluator.trying(values):
            result = self._evaluator.forward(gate_examples, split="minibatch", phase="proposal")
        paired = pair(before, scores_by_id(result.results), pass_threshold=self._selection_threshold)
        passed, why = minibatch_verdict(paired, rule=self._config.minibatch_gate)
        self._emit(Eval(split="minibatch", phase="proposal", score=result.mean_score, n=len(result.results),
                        errored=len(result.errored), proposal_id=pid, left_out=paired.left_out))
        self._emit(Minibatch(proposal_id=pid, before=paired.before, after=paired.after, passed=passed,
                             left_out=paired.left_out, samples=list(paired.samples)))
        return passed, why, paired

    def _wins(self, paired: Paired) -> bool:
        """The candidate beats the best values on the samples both were scored on (plus `min_gain`)."""
        if paired.after is None:
            return False
        margin = (paired.before if paired.before is not None else -1.0) + self._config.min_gain
        return paired.after > margin or (self._config.tie_rule == "equal" and paired.after >= margin)

    def validate(self, values: Values, pid: str, *, complete: bool = False) -> tuple[float | None, bool, str]:
        """Paired validation in chunks, stopping once even a perfect rest could not win (unless
        `complete`: a branch's decision is kept whatever it scores, so its whole score is measured).

        Returns (the candidate's mean over the samples it scored, keep?, reason); the score is None
        when the candidate was not run at all, because even a perfect score could not win.
        """
        reference = self._evaluator.scores_now(self._val, split="val")
        best = pair(reference, reference).before
        early_stop = self._config.early_stop_validation and not complete
        if early_stop and best is not None and \
                not can_still_win({}, reference, list(reference), self._wins):  # not even with every sample right
            self._emit(Eval(split="val", phase="proposal", score=None, n=0, errored=0, proposal_id=pid,
                            complete=False, left_out=0))
            self._emit(Validation(proposal_id=pid, score=None, best=best, passed=False, complete=False,
                                  left_out=0))
            return None, False, (f"not validated: even every validation sample right (1.000) could not beat "
                                 f"best {best:.3f} (stopped early: not run on any sample; "
                                 f"tie_rule={self._config.tie_rule!r}, min_gain={self._config.min_gain:g})")
        chunk = self._config.concurrency
        mine: dict[str, float | None] = {}
        results: list[SampleResult] = []
        complete = True
        with self._evaluator.trying(values):
            for start in range(0, len(self._val), chunk):
                batch = self._evaluator.forward(self._val[start:start + chunk], split="val", phase="proposal")
                results += batch.results
                mine.update(scores_by_id(batch.results))
                remaining = [e.id for e in self._val[start + chunk:]]
                if early_stop and remaining and not can_still_win(mine, reference, remaining, self._wins):
                    complete = False
                    break
        paired = pair({i: reference.get(i) for i in mine}, mine)
        scored = [s for s in mine.values() if s is not None]
        score = sum(scored) / len(scored) if scored else 0.0
        keep = complete and self._wins(paired)
        self._emit(Eval(split="val", phase="proposal", score=score, n=len(results),
                        errored=sum(r.status == "errored" for r in results), proposal_id=pid, complete=complete,
                        left_out=paired.left_out))
        self._emit(Validation(proposal_id=pid, score=paired.after, best=paired.before, passed=keep,
                              complete=complete, left_out=paired.left_out))
        b = paired.before if paired.before is not None else -1.0
        n = len(mine) - paired.left_out
        if complete and not paired.left_out:
            against = f"best {b:.3f}"
        else:  # a subset: the current prompt's score on it, not the best validation score
            against = f"the current prompt's {b:.3f} on the same {n} sample(s)"
        reason = f"validation {paired.after or 0.0:.3f} {'beats' if keep else 'does not beat'} {against}" + \
            (f" ({paired.left_out} errored sample(s) left out of both)" if paired.left_out else "") + \
            ("" if complete else " (stopped early: it could no longer win)")
        return score, keep, reason
