"""Benchmark: what provenance tracking costs (prints measured numbers; not a test).

1. String handling on traced text vs plain str: `strip().lower().split()[0]` and `"Q: " + x`,
   inside a trace (so derived texts are remembered), in microseconds per expression.
2. Engine time per LLM call (scripted model, zero latency) in a chain of N calls, when every input
   is traced text (exact links) and when it is rebuilt as an f-string (content fallback), for
   N = 10, 50, 200: the content fallback compares each input with every text recorded before it.

    python bench/provenance.py
"""
from __future__ import annotations

import time
import timeit

from workbench import LLMCall, Parameter, trace, use_model
from workbench.llm.scripted import ScriptedModel
from workbench.engine.tracing import TracedText


def per_expression_us() -> None:
    plain, traced = "  Some Reply From A Model  ", TracedText("  Some Reply From A Model  ", "n")
    with trace("bench"):
        for name, expr in [("strip().lower().split()[0]", lambda s: s.strip().lower().split()[0]),
                           ('"Q: " + x', lambda s: "Q: " + s)]:
            n = 5000  # best of 7 runs: the machine is shared, the minimum is the cost
            t_plain = min(timeit.repeat(lambda: expr(plain), number=n, repeat=7)) / n * 1e6
            t_traced = min(timeit.repeat(lambda: expr(traced), number=n, repeat=7)) / n * 1e6
            print(f"{name:30s} str {t_plain:6.2f} us   TracedText {t_traced:6.2f} us")


def chain_ms_per_call(n: int, *, fstring: bool) -> float:
    model = ScriptedModel(lambda m: "reply " + str(len(m[-1]["content"]) % 97) + " with some words")
    node = LLMCall("step", "{{instruction}} {{previous}}", [Parameter("step.instruction", "Continue.")])
    start = time.perf_counter()
    with use_model(model), trace("bench") as graph:
        previous = "start"
        for _ in range(n):
            out = node(previous=f"Previous: {previous}" if fstring else previous)
            previous = out.strip()
    elapsed = (time.perf_counter() - start) / n * 1e3
    assert len(graph.edges) >= n - 1, "every call should link to the one before"
    return elapsed


def main() -> None:
    per_expression_us()
    for n in (10, 50, 200):
        exact, fallback = chain_ms_per_call(n, fstring=False), chain_ms_per_call(n, fstring=True)
        print(f"chain of {n:3d} calls: {exact:6.3f} ms/call with traced inputs, {fallback:6.3f} ms/call "
              f"with f-string inputs (content fallback)")


if __name__ == "__main__":
    main()
