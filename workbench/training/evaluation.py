"""Running the pipeline on samples for the trainer: forward passes, evaluations, the current values' scores.

Every evaluation goes through the run's `EvalMemo`, so the same values on the same sample are never
paid for twice (a final test pass of a run that kept nothing reuses the baseline's results, a gate
pays only for the candidate). A candidate is evaluated with `trying(values)`: its values are seen only
inside the block and only by the evaluating thread and the runner's workers (a context variable,
engine/parameter.py); a dashboard or an export reading the parameters meanwhile sees the committed values.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from ..engine.parameter import trying_values
from ..engine.runner import BatchResult, SampleResult
from ..errors import RunStopped, WorkbenchError
from ..optim.gates import scores_by_id
from ..records.eval_memo import MEMO_FILE, EvalMemo, run_batch_memo
from ..records.family import family_memo_files
from ..records.events import Eval, Forward, NodeStatus

if TYPE_CHECKING:
    from ..engine.example import Example
    from ..engine.graph import NodeRecord
    from ..engine.loss import EvalFn
    from ..engine.pipeline import Pipeline
    from .config import TrainConfig
    from .controls import ControlChannel
    from .emitter import RunEmitter
    from .run_state import RunState
    from .usage import RunMeter


class Evaluator:
    """Forward passes and evaluations of one run, through its memo (kept in the run folder)."""

    def __init__(self, pipeline: "Pipeline", eval_fn: "EvalFn", models: Any, config: "TrainConfig",
                 state: "RunState", run_dir: Path, controls: "ControlChannel", meter: "RunMeter",
                 emit: "RunEmitter") -> None:
        self._pipeline, self._eval_fn, self._models, self._config = pipeline, eval_fn, models, config
        self._state, self._run_dir, self._controls, self._meter, self._emit = state, run_dir, controls, meter, emit
        self._memo: EvalMemo | None = None

    @property
    def memo(self) -> EvalMemo:
        """Every evaluation of this run, by (all parameter values, model, sample); opened on first use."""
        if self._memo is None:
            # reading its family's memos too (a branch's parent and siblings): no run of a tree pays twice
            self._memo = EvalMemo(self._run_dir / MEMO_FILE, also_read=family_memo_files(self._run_dir))
        return self._memo

    @contextlib.contextmanager
    def trying(self, values: dict[str, str]) -> Iterator[None]:
        """Evaluate with candidate values, seen by this context only; nothing is written to the parameters."""
        with trying_values(self._state.params, values):
            yield

    def run_memo(self, examples: Sequence["Example"], model: Any, *, keep_graphs: bool = True,
                 **listeners: Any) -> tuple[BatchResult, int]:
        """(result, how many samples the memo answered) of `examples` with the values in place now;
        `keep_graphs=False` for validation and test, whose graphs nothing reads later."""
        return run_batch_memo(self.memo, self._pipeline, examples, self._eval_fn, model,
                              values=self._state.values(), concurrency=self._config.concurrency,
                              pass_threshold=self._config.pass_threshold, should_stop=self._controls.stop_requested,
                              keep_graphs=keep_graphs, **listeners)

    def forward(self, examples: Sequence["Example"], *, split: str, phase: str) -> BatchResult:
        """Run `examples` (events per sample; per node on the train split); stop on too many errored samples."""
        self._controls.obey()
        live = split == "train"

        def on_node(sample_id: str, node: "NodeRecord") -> None:
            if live:
                self._emit(NodeStatus(sample_id=sample_id, split=split, node_id=node.id, component=node.component,
                                      kind=node.kind, call_index=node.call_index, status=node.status))

        def on_result(r: SampleResult) -> None:
            self._emit(Forward(split=split, phase=phase, summary=r.summary(),
                               graph=r.graph.to_dict() if live else None))

        result, _ = self.run_memo(examples, self._models.task, keep_graphs=split not in ("val", "test"),
                                  on_result=on_result, on_node=on_node)
        self._state.errored_samples += len(result.errored)
        if self._controls.stop_requested():
            raise RunStopped("stopped during a forward pass")
        if examples and len(result.errored) / len(examples) > self._config.max_error_share:
            raise WorkbenchError(f"{len(result.errored)} of {len(examples)} samples errored on the task model "
                                 f"({split}); first error: {result.errored[0].error}")
        self._meter.check_budget()
        return result

    def evaluate(self, examples: Sequence["Example"], *, split: str, phase: str,
                 proposal_id: str | None = None) -> BatchResult:
        """Score `examples` with the current values, with an `eval` event."""
        result = self.forward(examples, split=split, phase=phase)
        self._emit(Eval(split=split, phase=phase, score=result.mean_score, n=len(result.results),
                        errored=len(result.errored), proposal_id=proposal_id))
        return result

    def scores_now(self, examples: Sequence["Example"], *, split: str) -> dict[str, float | None]:
        """Per-sample scores of the current values: the reference a candidate is paired with.

        The current values were scored on these samples already (baseline, the step's forward, or
        the accepted candidate's own gates), so the memo answers without a call; if it cannot (a
        person's value accepted without validation, a resumed in-process model) the samples run,
        with an `eval` event.
        """
        self._controls.obey()
        result, reused = self.run_memo(examples, self._models.task, keep_graphs=split not in ("val", "test"))
        if self._controls.stop_requested():
            raise RunStopped("stopped while scoring the current values")
        if reused < len(examples):
            self._state.errored_samples += len(result.errored)
            self._emit(Eval(split=split, phase="train" if split == "minibatch" else "baseline",
                            score=result.mean_score, n=len(result.results), errored=len(result.errored),
                            proposal_id=None))
            self._meter.check_budget()
        return scores_by_id(result.results)
