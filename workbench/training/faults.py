"""What the run does when a helper model fails or a parameter cannot learn: say so, and go on.

A backward, optimizer or teacher call that still fails after the client's retries costs one
gradient, one proposal or one demo trace, never the run: it is skipped with a `skipped` event
{stage, parameter, node_id, sample_id, error}. A trainable parameter whose node has no path to the
loss gets a `disconnected` event once per step (not once per sample), so "0 gradients" is never silent.
Any other trainable parameter left without feedback in a step where samples were back-propagated (a
router's branch that did not run on them, gradients that were all skipped) gets a `no_proposal`
event with source "feedback" that says why, rather than being passed over in silence.

`FaultReporter` is the trainer's part for this; it is given the run's state and its emitter.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Callable, TypeVar

from ..errors import EndpointUnreachableError, LLMCallError, WorkbenchError
from ..engine.parameter import Role
from ..records.events import Disconnected, NoProposal, Skipped
from ..redact import redact

if TYPE_CHECKING:
    from ..engine.graph import Disconnection
    from ..engine.runner import BatchResult, SampleResult
    from .emitter import RunEmitter
    from .run_state import RunState

T = TypeVar("T")
MODEL_FAILURES = (LLMCallError, EndpointUnreachableError)  # raised only after the client's retries


class FaultReporter:
    """Skipped work and disconnected parameters, as events; see the module docstring."""

    def __init__(self, state: "RunState", emit: "RunEmitter") -> None:
        self._state, self._emit = state, emit
        self._reported_lock = threading.Lock()
        self._disconnected_reported: set[tuple[int, str]] = set()

    def on_disconnected(self, found: "Disconnection") -> None:
        """Forward the backward pass's report, once per parameter per step."""
        key = (self._state.step, found.parameter)
        with self._reported_lock:
            if key in self._disconnected_reported:
                return
            self._disconnected_reported.add(key)
        self._emit(Disconnected(parameter=found.parameter, node_id=found.node_id, sample_id=found.sample_id,
                                reason=found.reason))

    def report_parameters_without_feedback(self, chosen: "list[SampleResult]") -> None:
        """Why each trainable text parameter that got no gradient this step has nothing to propose."""
        if not chosen:
            return  # nothing was back-propagated (the selection event says why): no parameter expected any
        disconnected = {d.parameter for r in chosen for d in r.graph.disconnected}
        for name, p in self._state.params.items():
            if not p.trainable or p.role is Role.DEMOS or p.gradients or name in disconnected:
                continue  # a disconnected parameter already has its own event
            ran = [r.sample_id for r in chosen if any(name in n.parameters for n in r.graph.nodes)]
            if not ran:
                ids = ", ".join(r.sample_id for r in chosen[:5]) + (", ..." if len(chosen) > 5 else "")
                reason = f"no feedback this step: no node using it ran on the back-propagated samples ({ids})"
            else:
                reason = "no feedback this step: the backward pass wrote no gradient for it (see skipped events)"
            self._emit(NoProposal(parameter=name, source="feedback", reason=reason))

    def on_skipped(self, report: dict) -> None:
        """A `skipped` event from the backward engine's report (or our own), error text redacted."""
        self._emit(Skipped(stage=report["stage"], parameter=report.get("parameter"),
                           node_id=report.get("node_id"), sample_id=report.get("sample_id"),
                           error=redact(str(report.get("error", "")))))

    def unless_model_fails(self, stage: str, call: Callable[[], T], *, parameter: str | None = None,
                            node_id: str | None = None, sample_id: str | None = None) -> T | None:
        """`call()`, or None (and a `skipped` event) when its model failed after retries."""
        try:
            return call()
        except MODEL_FAILURES as exc:
            self.on_skipped({"stage": stage, "parameter": parameter, "node_id": node_id, "sample_id": sample_id,
                              "error": f"{type(exc).__name__}: {exc}"})
            return None

    def report_teacher_failures(self, traces: "list[SampleResult]") -> "list[SampleResult]":
        """Teacher samples its endpoint could not answer are skipped (with an event); the rest are kept."""
        for r in traces:
            if r.status == "errored":
                self.on_skipped({"stage": "teacher", "sample_id": r.sample_id, "error": r.error or "errored"})
        return [r for r in traces if r.status != "errored"]

    def stop_if_backward_failed_entirely(self, parameter_gradients: int, skipped: list[dict]) -> None:
        """Skipping some gradients costs little; a step where the backward model failed so that no
        parameter got any feedback would train on nothing and end "completed" at the baseline, so
        the run stops and says why."""
        if parameter_gradients == 0 and skipped:
            raise WorkbenchError(f"the backward model failed on all {len(skipped)} calls of step {self._state.step}, so "
                                 f"no parameter can get feedback; first error: {redact(str(skipped[0].get('error')))}")

    def stop_if_the_endpoint_refused_every_sample(self, batch: "BatchResult", split: str) -> None:
        """Every sample refused by the endpoint with one and the same error (a sampling setting it
        rejects, a model name it does not serve) is a setup problem no prompt change can fix: stop
        before training, in one line, instead of "completing" at 0."""
        errors = {r.error for r in batch.results}
        if batch.results and len(errors) == 1 and all(
                r.status == "failed" and (r.error or "").startswith("LLMCallError") for r in batch.results):
            raise WorkbenchError(f"the endpoint refused every {split} sample with the same error before training "
                                 f"started: {errors.pop()}")
