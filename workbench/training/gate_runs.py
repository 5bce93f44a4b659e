"""The two gates as runs of the pipeline: a candidate on the minibatch, then on validation.

Gates are paired (optim/gates.py holds the comparisons): the candidate and the current values are
compared on the same sample ids, and a sample that errored in either run is left out of both means.
The current values' scores come from the run's `EvalMemo` (they were scored already), so a gate
pays only for the candidate. Validation runs in chunks and stops once even a perfect rest of the
split could no longer win.

`GateRuns` is a mixin of `workbench.training.trainer.Trainer`.
"""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator, Mapping, Sequence

from ..errors import RunStopped
from ..records.eval_memo import run_batch_memo
from ..optim.gates import Paired, can_still_win, minibatch_verdict, pair, scores_by_id
from ..optim.paired_bootstrap import describe, paired_interval
from ..engine.runner import SampleResult

if TYPE_CHECKING:
    from ..engine.example import Example

Values = dict[str, str]  # parameter name -> candidate value (one entry, or several for a joint proposal)


class GateRuns:
    """Minibatch and validation gates; see the module docstring."""

    def _minibatch_gate(self, values: Values, pid: str, gate_examples: list["Example"],
                        before: Mapping[str, float | None]) -> tuple[bool, str, Paired]:
        with self._trying(values):
            result = self._forward(gate_examples, split="minibatch", phase="proposal")
        paired = pair(before, scores_by_id(result.results), pass_threshold=self.selection_threshold)
        passed, why = minibatch_verdict(paired, rule=self.config.minibatch_gate)
        self._emit("eval", split="minibatch", phase="proposal", score=result.mean_score, n=len(result.results),
                   errored=len(result.errored), proposal_id=pid, left_out=paired.left_out)
        self._emit("minibatch", proposal_id=pid, before=paired.before, after=paired.after, passed=passed,
                   left_out=paired.left_out, samples=list(paired.samples))
        return passed, why, paired

    def _wins(self, paired: Paired) -> bool:
        """The candidate beats the best values on the samples both were scored on (plus `min_gain`)."""
        if paired.after is None:
            return False
        margin = (paired.before if paired.before is not None else -1.0) + self.config.min_gain
        return paired.after > margin or (self.config.tie_rule == "equal" and paired.after >= margin)

    def _scores_now(self, examples: Sequence["Example"], *, split: str) -> dict[str, float | None]:
        """Per-sample scores of the current values: the reference a candidate is paired with.

        The current values were scored on these samples already (baseline, the step's forward, or
        the accepted candidate's own gates), so the memo answers without a call; if it cannot (a
        person's value accepted without validation, a resumed in-process model) the samples run,
        with an `eval` event.
        """
        self._obey_controls()
        result, reused = run_batch_memo(self.eval_memo, self.pipeline, examples, self.eval_fn, self.models.task,
                                        values=self._current_values(), concurrency=self.config.concurrency,
                                        pass_threshold=self.config.pass_threshold, should_stop=self._stop.is_set,
                                        keep_graphs=split not in ("val", "test"))
        if self._stop.is_set():
            raise RunStopped("stopped while scoring the current values")
        if reused < len(examples):
            self.errored_samples += len(result.errored)
            self._emit("eval", split=split, phase="train" if split == "minibatch" else "baseline",
                       score=result.mean_score, n=len(result.results), errored=len(result.errored), proposal_id=None)
            self._check_budget()
        return scores_by_id(result.results)

    def _validate(self, values: Values, pid: str) -> tuple[float | None, bool, str]:
        """Paired validation in chunks, stopping once even a perfect rest could not win.

        Returns (the candidate's mean over the samples it scored, keep?, reason); the score is None
        when the candidate was not run at all, because even a perfect score could not win.
        """
        reference = self._scores_now(self.val, split="val")
        best = pair(reference, reference).before
        if self.config.early_stop_validation and best is not None and \
                not can_still_win({}, reference, list(reference), self._wins):  # not even with every sample right
            self._emit("eval", split="val", phase="proposal", score=None, n=0, errored=0, proposal_id=pid,
                       complete=False, left_out=0)
            self._emit("validation", proposal_id=pid, score=None, best=best, passed=False, complete=False,
                       left_out=0)
            return None, False, (f"not validated: even every validation sample right (1.000) could not beat "
                                 f"best {best:.3f} (stopped early: not run on any sample; "
                                 f"tie_rule={self.config.tie_rule!r}, min_gain={self.config.min_gain:g})")
        chunk = self.config.concurrency
        mine: dict[str, float | None] = {}
        results: list[SampleResult] = []
        complete = True
        with self._trying(values):
            for start in range(0, len(self.val), chunk):
                batch = self._forward(self.val[start:start + chunk], split="val", phase="proposal")
                results += batch.results
                mine.update(scores_by_id(batch.results))
                remaining = [e.id for e in self.val[start + chunk:]]
                if self.config.early_stop_validation and remaining and \
                        not can_still_win(mine, reference, remaining, self._wins):
                    complete = False
                    break
        paired = pair({i: reference.get(i) for i in mine}, mine)
        interval = paired_interval({i: reference.get(i) for i in mine}, mine, confidence=self.config.confidence,
                                   seed=self.config.seed)
        scored = [s for s in mine.values() if s is not None]
        score = sum(scored) / len(scored) if scored else 0.0
        wins = complete and self._wins(paired)
        significant = interval is not None and interval.above_zero
        keep = wins and (self.config.accept == "better" or significant)
        self._emit("eval", split="val", phase="proposal", score=score, n=len(results),
                   errored=sum(r.status == "errored" for r in results), proposal_id=pid, complete=complete,
                   left_out=paired.left_out)
        spread = {k: v for k, v in interval.to_dict().items() if k in ("diff", "low", "high", "confidence",
                                                                        "won", "lost")} if interval else {}
        self._emit("validation", proposal_id=pid, score=paired.after, best=paired.before, passed=keep,
                   complete=complete, left_out=paired.left_out, rule=self.config.accept, **spread)
        b = paired.before if paired.before is not None else -1.0
        n = len(mine) - paired.left_out
        if complete and not paired.left_out:
            against = f"best {b:.3f}"
        else:  # a subset: the current prompt's score on it, not the best validation score
            against = f"the current prompt's {b:.3f} on the same {n} sample(s)"
        reason = f"validation {paired.after or 0.0:.3f} {'beats' if wins else 'does not beat'} {against}" + \
            (f" ({paired.left_out} errored sample(s) left out of both)" if paired.left_out else "") + \
            ("" if complete else " (stopped early: it could no longer win)") + f"; gain {describe(interval)}" + \
            (" (accept='significant': the interval does not lie above zero)" if wins and not keep else "")
        return score, keep, reason

    @contextlib.contextmanager
    def _trying(self, values: Values) -> Iterator[None]:
        """Run with candidate values in place, and put the current ones back whatever happens."""
        old = {name: self.params[name].value for name in values}
        for name, value in values.items():
            self.params[name].value = value
        try:
            yield
        finally:
            for name, value in old.items():
                self.params[name].value = value

