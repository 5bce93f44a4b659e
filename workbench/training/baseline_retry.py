"""A resume retries the baseline samples an outage errored, so before and after compare the same sets.

An errored sample (the endpoint could not answer) is kept out of the mean and out of the evaluation
memo. The baseline runs once per run, so without this an outage during it would leave its scores on
a subset for good, while the final test is scored on every sample. Each `fit()` after the baseline
(a resume, or `fit()` again) runs the errored ones again with the initial values (those of the step-0
checkpoint); the samples already scored come from the memo, free. The retried samples are logged at
step 0 (`forward` and `eval` with phase "baseline"); samples that error again stay out, named in the
run state (`baseline_errored`), counted in the eval event's `errored` and in the summary.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from ..records.events import Eval, EventData, Forward

if TYPE_CHECKING:
    from ..engine.example import Example
    from ..records.store import RunStore
    from .emitter import RunEmitter
    from .evaluation import Evaluator
    from .run_state import RunState


def retry_errored_baseline(state: "RunState", evaluator: "Evaluator", task_model: Any,
                           splits: dict[str, Sequence["Example"]], store: "RunStore", emit: "RunEmitter") -> None:
    """Score again, with the initial values, the baseline samples that errored (see the module docstring)."""
    if not any(state.baseline_errored.values()):
        return
    initial = initial_values(store, set(state.params))
    if initial is None:
        return  # no readable step-0 checkpoint: the baseline stays as it was, its errored samples say so

    def at_step_0(data: EventData) -> None:  # the baseline's events, whatever step the run is at
        emit.bus.emit(data.event(run_id=emit.run_id, step=0))

    with evaluator.trying(initial):
        for split, examples in splits.items():
            errored = set(state.baseline_errored.get(split) or [])
            if not errored:
                continue
            retried, _ = evaluator.run_memo(
                [e for e in examples if e.id in errored], task_model, keep_graphs=False,
                on_result=lambda r, split=split: at_step_0(Forward(split=split, phase="baseline", summary=r.summary(),
                                                                   graph=None)))
            state.errored_samples += len(retried.errored)
            full, _ = evaluator.run_memo(examples, task_model, keep_graphs=False)  # the rest: from the memo
            state.baseline[split] = full.mean_score
            state.baseline_errored[split] = [r.sample_id for r in full.errored]
            if split == "val" and state.curve:
                state.curve[0]["val"] = full.mean_score
                if state.best_step == 0:  # the best values are still the initial ones: scored on every sample
                    state.best_val = full.mean_score
            at_step_0(Eval(split=split, phase="baseline", score=full.mean_score, n=len(full.results),
                           errored=len(full.errored), proposal_id=None))


def initial_values(store: "RunStore", names: set[str]) -> dict[str, str] | None:
    """The parameter values of the step-0 checkpoint (the baseline's), or None when it cannot be read."""
    path = store.path / "checkpoints" / "step-0000.json"
    checkpoint = store.read_checkpoint(path) if path.is_file() else None
    saved = (checkpoint or {}).get("parameters")
    if not isinstance(saved, dict) or set(saved) != names:
        return None
    return {name: p["value"] for name, p in saved.items()}
