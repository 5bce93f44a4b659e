"""A resume retries the baseline samples an outage errored, so before and after compare the same sets.

An errored sample (the endpoint could not answer) is kept out of the mean and out of the evaluation
memo. The baseline runs once per run, so without this an outage during it would leave its scores on
a subset for good, while the final test is scored on every sample. Each `fit()` after the baseline
(a resume, or `fit()` again) runs the errored ones again with the initial values (those of the step-0
checkpoint); the samples already scored come from the memo, free. The retried samples are logged at
step 0 (`forward` and `eval` with phase "baseline"); samples that error again stay out, counted in
the eval event's `errored` and in the summary's `baseline_errored`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from ..records.eval_memo import run_batch_memo
from ..records.events import Eval, Forward

if TYPE_CHECKING:
    from ..engine.example import Example


def retry_errored_baseline(trainer: Any) -> None:
    """Score again, with the initial values, the baseline samples that errored (see the module docstring)."""
    if not any(trainer.baseline_errored.values()):
        return
    initial = initial_values(trainer)
    if initial is None:
        return  # no readable step-0 checkpoint: the baseline stays as it was, its errored count says so
    current = {n: p.value for n, p in trainer.params.items()}
    try:
        for name, value in initial.items():
            trainer.params[name].value = value
        for split, examples in (("val", trainer.val), ("test", trainer.test)):
            if trainer.baseline_errored.get(split):
                _rescore(trainer, split, examples, initial)
    finally:
        for name, value in current.items():
            trainer.params[name].value = value


def initial_values(trainer: Any) -> dict[str, str] | None:
    path = trainer.store.path / "checkpoints" / "step-0000.json"
    state = trainer.store.read_checkpoint(path) if path.is_file() else None
    saved = (state or {}).get("parameters")
    if not isinstance(saved, dict) or set(saved) != set(trainer.params):
        return None
    return {name: p["value"] for name, p in saved.items()}


def _rescore(trainer: Any, split: str, examples: Sequence["Example"], values: dict[str, str]) -> None:
    def run(batch, on_result=None):
        result, _ = run_batch_memo(trainer.eval_memo, trainer.pipeline, batch, trainer.eval_fn, trainer.models.task,
                                   values=values, concurrency=trainer.config.concurrency,
                                   pass_threshold=trainer.config.pass_threshold, keep_graphs=False,
                                   on_result=on_result)
        return result
    keys = {e.id: trainer.eval_memo.key(values, trainer.models.task, trainer.eval_fn, e, trainer.config.pass_threshold)
            for e in examples}
    missing = [e for e in examples if trainer.eval_memo.get(keys[e.id], need_graph=False) is None]
    log = lambda data: trainer.bus.emit(data.event(run_id=trainer.run_id, step=0))  # noqa: E731
    retried = run(missing, on_result=lambda r: log(Forward(split=split, phase="baseline", summary=r.summary(),
                                                           graph=None)))
    trainer.errored_samples += len(retried.errored)
    full = run(examples)  # every sample now: from the memo, the ones that errored again left out
    trainer.baseline[split] = full.mean_score
    trainer.baseline_errored[split] = len(full.errored)
    if split == "val" and trainer.curve:
        trainer.curve[0]["val"] = full.mean_score
        if trainer.best_step == 0:  # the best values are still the initial ones: their score on every sample
            trainer.best_val = full.mean_score
    log(Eval(split=split, phase="baseline", score=full.mean_score, n=len(full.results), errored=len(full.errored),
             proposal_id=None))
