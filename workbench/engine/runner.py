"""Running a pipeline on examples: one traced graph and one score per sample, in parallel.

Two ways a sample can go wrong, kept apart so that scores compare like with like:

- *errored*: the endpoint could not answer after its retries (no connection, timeouts, 429/5xx,
  auth). That says nothing about the prompt: the sample is kept out of every mean and out of
  backward, and counted, never a silent 0.
- *failed* with score 0: the pipeline failed on the sample. A reply that cannot be parsed (the raw
  text is the prediction), an exception raised by the pipeline's own code (a tool, a parser, a
  `KeyError` in post-processing, `json.loads` of a reply), a 400 the prompt caused (context too
  long), or the eval function raising on this prediction. The error text is kept and shown.

An eval function must return a finite number in [0, 1]; anything else stops the run with an
`EvalFunctionError` naming the sample and the value (a bug in the eval function, not a score).
"""
from __future__ import annotations

import contextvars
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..errors import (BudgetExceeded, ConfigError, EndpointUnreachableError, LLMCallError, ParseError, RunStopped,
                     WorkbenchError)
from .graph import Graph
from .loss import EvalFn, add_loss, check_score, describe
from ..redact import redact
from .tracing import trace, use_model

if TYPE_CHECKING:
    from .example import Example
    from .graph import NodeRecord
    from ..llm.types import ChatModel
    from .pipeline import Pipeline


@dataclass
class SampleResult:
    sample_id: str
    inputs: dict[str, Any]
    target: str
    prediction: str | None
    score: float | None
    status: str  # "ok" | "failed" | "errored"
    graph: Graph
    error: str | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.graph.loss is not None and self.graph.loss.passed

    def summary(self) -> dict[str, Any]:
        """The JSON-friendly part (no graph) that events and tables carry."""
        return {"sample_id": self.sample_id, "inputs": {k: str(v) for k, v in self.inputs.items()},
                "target": self.target, "prediction": self.prediction, "score": self.score,
                "status": self.status, "error": self.error, "seconds": round(self.seconds, 4)}


@dataclass
class BatchResult:
    results: list[SampleResult] = field(default_factory=list)

    @property
    def scored(self) -> list[SampleResult]:
        return [r for r in self.results if r.status != "errored"]

    @property
    def errored(self) -> list[SampleResult]:
        return [r for r in self.results if r.status == "errored"]

    @property
    def mean_score(self) -> float | None:
        scored = self.scored
        return sum(r.score or 0.0 for r in scored) / len(scored) if scored else None


NodeListener = Callable[[str, "NodeRecord"], None]


# HTTP statuses by which an endpoint refuses the prompt itself (too long, malformed for this model)
PROMPT_FAULT_STATUSES = frozenset({400, 413, 422})


def is_endpoint_failure(exc: BaseException) -> bool:
    """True when the endpoint could not answer (errored), false when the prompt was refused (failed)."""
    if isinstance(exc, EndpointUnreachableError):
        return True
    return isinstance(exc, LLMCallError) and exc.status not in PROMPT_FAULT_STATUSES


def _error_text(exc: BaseException) -> str:
    """The exception and the line of user code (or ours) it was raised at."""
    text = f"{type(exc).__name__}: {exc}"
    frames = traceback.extract_tb(exc.__traceback__)
    if frames and not isinstance(exc, WorkbenchError):
        text += f" (at {frames[-1].filename}:{frames[-1].lineno})"
    return redact(text)


def run_example(pipeline: "Pipeline", example: "Example", eval_fn: EvalFn, model: "ChatModel", *,
                pass_threshold: float = 1.0, on_node: NodeListener | None = None) -> SampleResult:
    """Run, trace and score one example; `on_node(sample_id, node)` sees nodes start and end."""
    start = time.perf_counter()
    measure = describe(eval_fn)

    def failed(prediction: Any, error: str) -> SampleResult:
        add_loss(graph, prediction if prediction is not None else "", example.target, 0.0,
                 pass_threshold=pass_threshold, measure=measure, error=error)
        return SampleResult(example.id, example.input, example.target,
                            None if prediction is None else str.__str__(str(prediction)), 0.0, "failed", graph,
                            error=error, seconds=time.perf_counter() - start)

    def errored(exc: BaseException) -> SampleResult:
        return SampleResult(example.id, example.input, example.target, None, None, "errored", graph,
                            error=_error_text(exc), seconds=time.perf_counter() - start)

    with use_model(model), trace(example.id, example.input) as graph:
        if on_node is not None:
            graph.listener = lambda node: on_node(example.id, node)
        try:
            prediction = pipeline(**example.input)
        except (EndpointUnreachableError, LLMCallError) as exc:
            if is_endpoint_failure(exc):
                return errored(exc)
            return failed(None, _error_text(exc))  # the endpoint refused this prompt: failed here
        except ParseError as exc:
            return failed(exc.raw, _error_text(exc))
        except WorkbenchError:
            raise  # a configuration problem (template, model, budget, stop): every sample would hit it
        except Exception as exc:  # the pipeline's own code raised on this sample: it failed here
            return failed(None, _error_text(exc))
        try:
            raw_score = eval_fn(prediction, example.target)
        except (BudgetExceeded, RunStopped, ConfigError):
            raise  # a budget, a stop or a judge without a model: not about this sample
        except Exception as exc:
            if isinstance(exc, (EndpointUnreachableError, LLMCallError)) and is_endpoint_failure(exc):
                return errored(exc)  # an LLM judge's endpoint could not answer
            return failed(prediction, f"the eval function raised on this prediction: {_error_text(exc)}")
        score = check_score(raw_score, example.id)
        add_loss(graph, prediction, example.target, score, pass_threshold=pass_threshold, measure=measure)
    status = "ok" if graph.loss and graph.loss.passed else "failed"
    return SampleResult(example.id, example.input, example.target, str.__str__(str(prediction)), float(score),
                        status, graph, seconds=time.perf_counter() - start)


def run_batch(pipeline: "Pipeline", examples: Sequence["Example"], eval_fn: EvalFn, model: "ChatModel", *,
              concurrency: int = 8, pass_threshold: float = 1.0,
              on_result: Callable[[SampleResult], None] | None = None,
              on_node: NodeListener | None = None,
              should_stop: Callable[[], bool] | None = None) -> BatchResult:
    """Run examples in parallel (up to `concurrency`); results keep the examples' order."""
    def one(example: "Example") -> SampleResult | None:
        if should_stop and should_stop():
            return None
        result = run_example(pipeline, example, eval_fn, model, pass_threshold=pass_threshold, on_node=on_node)
        if on_result:
            on_result(result)
        return result

    if concurrency <= 1 or len(examples) <= 1:
        results = [one(e) for e in examples]
    else:
        with ThreadPoolExecutor(max_workers=min(concurrency, len(examples))) as pool:
            futures = [pool.submit(contextvars.copy_context().run, one, e) for e in examples]
            results = [f.result() for f in futures]
    return BatchResult([r for r in results if r is not None])
