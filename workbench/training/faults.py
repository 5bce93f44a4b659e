"""What the run does when a helper model fails or a parameter cannot learn: say so, and go on.

A backward, optimizer or teacher call that still fails after the client's retries costs one
gradient, one proposal or one demo trace, never the run: it is skipped with a `skipped` event
{stage, parameter, node_id, sample_id, error}. A trainable parameter whose node has no path to the
loss gets a `disconnected` event once per step (not once per sample), so "0 gradients" is never silent.

`FaultReporting` is a mixin of `workbench.trainer.Trainer` (it needs `_emit` and `step`).
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Callable, TypeVar

from ..errors import EndpointUnreachableError, LLMCallError
from ..redact import redact

if TYPE_CHECKING:
    from ..graph import Disconnection
    from ..runner import SampleResult

T = TypeVar("T")
MODEL_FAILURES = (LLMCallError, EndpointUnreachableError)  # raised only after the client's retries


class FaultReporting:
    """Skipped work and disconnected parameters, as events; see the module docstring."""

    def _init_fault_reporting(self) -> None:
        self._reported_lock = threading.Lock()
        self._disconnected_reported: set[tuple[int, str]] = set()

    def _on_disconnected(self, found: "Disconnection") -> None:
        """Forward the backward pass's report, once per parameter per step."""
        key = (self.step, found.parameter)
        with self._reported_lock:
            if key in self._disconnected_reported:
                return
            self._disconnected_reported.add(key)
        self._emit("disconnected", parameter=found.parameter, node_id=found.node_id, sample_id=found.sample_id,
                   reason=found.reason)

    def _on_skipped(self, report: dict) -> None:
        """A `skipped` event from the backward engine's report (or our own), error text redacted."""
        self._emit("skipped", stage=report["stage"], parameter=report.get("parameter"),
                   node_id=report.get("node_id"), sample_id=report.get("sample_id"),
                   error=redact(str(report.get("error", ""))))

    def _unless_model_fails(self, stage: str, call: Callable[[], T], *, parameter: str | None = None,
                            node_id: str | None = None, sample_id: str | None = None) -> T | None:
        """`call()`, or None (and a `skipped` event) when its model failed after retries."""
        try:
            return call()
        except MODEL_FAILURES as exc:
            self._on_skipped({"stage": stage, "parameter": parameter, "node_id": node_id, "sample_id": sample_id,
                              "error": f"{type(exc).__name__}: {exc}"})
            return None

    def _report_teacher_failures(self, traces: "list[SampleResult]") -> "list[SampleResult]":
        """Teacher samples its endpoint could not answer are skipped (with an event); the rest are kept."""
        for r in traces:
            if r.status == "errored":
                self._on_skipped({"stage": "teacher", "sample_id": r.sample_id, "error": r.error or "errored"})
        return [r for r in traces if r.status != "errored"]

