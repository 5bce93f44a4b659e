"""Running a pipeline on examples: one traced graph and one score per sample, in parallel.

A call that fails after its retries marks the sample *errored*: kept out of scores and backward,
counted, never a silent 0. A reply that cannot be parsed marks it *failed* with score 0 and the
raw text as the prediction: that is a real signal about the prompt's output format.
"""
from __future__ import annotations

import contextvars
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .errors import EndpointUnreachableError, LLMCallError, ParseError, WorkbenchError
from .graph import Graph
from .loss import EvalFn, add_loss
from .tracing import trace, use_model

if TYPE_CHECKING:
    from .datasets import Example
    from .graph import NodeRecord
    from .llm.types import ChatModel
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


def run_example(pipeline: "Pipeline", example: "Example", eval_fn: EvalFn, model: "ChatModel", *,
                pass_threshold: float = 1.0, on_node: NodeListener | None = None) -> SampleResult:
    """Run, trace and score one example; `on_node(sample_id, node)` sees nodes start and end."""
    start = time.perf_counter()
    with use_model(model), trace(example.id, example.input) as graph:
        if on_node is not None:
            graph.listener = lambda node: on_node(example.id, node)
        try:
            prediction = pipeline(**example.input)
        except (EndpointUnreachableError, LLMCallError) as exc:
            return SampleResult(example.id, example.input, example.target, None, None, "errored", graph,
                                error=str(exc), seconds=time.perf_counter() - start)
        except ParseError as exc:
            add_loss(graph, exc.raw, example.target, 0.0, pass_threshold=pass_threshold)
            return SampleResult(example.id, example.input, example.target, exc.raw, 0.0, "failed", graph,
                                error=str(exc), seconds=time.perf_counter() - start)
        except WorkbenchError:
            raise  # a configuration problem (template, model): every sample would hit it
        except Exception as exc:  # a bug in user code on this sample: errored, counted, shown
            where = traceback.extract_tb(exc.__traceback__)[-1]
            return SampleResult(example.id, example.input, example.target, None, None, "errored", graph,
                                error=f"{type(exc).__name__}: {exc} (at {where.filename}:{where.lineno})",
                                seconds=time.perf_counter() - start)
        score = float(eval_fn(prediction, example.target))
        add_loss(graph, prediction, example.target, score, pass_threshold=pass_threshold)
    status = "ok" if graph.loss and graph.loss.passed else "failed"
    return SampleResult(example.id, example.input, example.target, str(prediction), score, status, graph,
                        seconds=time.perf_counter() - start)


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
