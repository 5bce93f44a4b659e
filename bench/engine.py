"""Benchmark: the engine's own cost per LLM call, and batch wall time under latency.

Prints measured numbers (not a test). Both parts use our OpenAI-compatible test server on 127.0.0.1,
over real HTTP through the openai SDK.

1. Overhead per call at zero latency: a traced LLM node through LLMClient (graph recording, usage
   accounting, cache lookup + store in a fresh SQLite cache) minus a bare openai SDK call to the same
   server. Target <= 2 ms.
2. Wall time of a batch of 32 samples at 300 ms latency with concurrency 8, through run_batch.
   The floor is 32/8 x 300 ms = 1.2 s; target <= 1.3x that.

    python bench/engine.py [--calls 300] [--latency 0.3] [--batch 32] [--concurrency 8]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import openai

from workbench import LLMCall, Parameter, Pipeline, exact_match, run_batch, trace, use_model
from workbench.datasets import Example
from workbench.llm import LLMClient, ResponseCache, UsageMeter
from workbench.testing import OpenAITestServer


def reply(messages):
    return "ok " + messages[-1]["content"][-12:]


def per_call_ms(fn, n):
    samples = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples), statistics.mean(samples)


def overhead(calls: int) -> None:
    with OpenAITestServer(responder=reply) as server, tempfile.TemporaryDirectory() as tmp:
        raw = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        msg = lambda i: [{"role": "user", "content": f"Answer briefly.\nQuestion number {i}"}]
        for i in range(20):  # warm up both paths
            raw.chat.completions.create(model="test-model", messages=msg(-i - 1))
        raw_med, raw_mean = per_call_ms(
            lambda i: raw.chat.completions.create(model="test-model", messages=msg(i), temperature=0.0,
                                                  max_tokens=512), calls)

        client = LLMClient("test-model", base_url=server.base_url, api_key="x",
                           cache=ResponseCache(Path(tmp) / "cache.sqlite"), usage=UsageMeter())
        p = Parameter("answer.instruction", "Answer briefly.")
        node = LLMCall("answer", "{{instruction}}\nQuestion number {{i}}", [p])

        def traced(i):
            with use_model(client), trace(f"s{i}"):
                node(i=i + calls + 100)  # always a cache miss: new prompt
        for i in range(20):
            traced(-1000 - i)
        eng_med, eng_mean = per_call_ms(traced, calls)

        def cache_hit(i):
            with use_model(client), trace(f"h{i}"):
                node(i=i + calls + 100)
        hit_med, _ = per_call_ms(cache_hit, calls)
    print(f"[overhead] {calls} calls, zero latency, test server on 127.0.0.1")
    print(f"  bare openai SDK call           median {raw_med:.3f} ms  mean {raw_mean:.3f} ms")
    print(f"  traced LLM node via LLMClient  median {eng_med:.3f} ms  mean {eng_mean:.3f} ms")
    print(f"  engine overhead per call       median {eng_med - raw_med:.3f} ms  mean {eng_mean - raw_mean:.3f} ms"
          f"  (target <= 2 ms)")
    print(f"  cache hit (no HTTP), all in    median {hit_med:.3f} ms")


class Echo(Pipeline):
    def __init__(self):
        self.instruction = Parameter("echo.instruction", "Echo the text.")
        self.node = LLMCall("echo", "{{instruction}}\n{{text}}", [self.instruction])

    def forward(self, text):
        return self.node(text=text)


def batch_wall(batch: int, latency: float, concurrency: int) -> None:
    examples = [Example(f"b{i}", {"text": f"sample {i}"}, "x", {}) for i in range(batch)]
    with OpenAITestServer(responder=reply, latency_s=latency) as server:
        client = LLMClient("test-model", base_url=server.base_url, api_key="x", max_concurrency=concurrency)
        t = time.perf_counter()
        result = run_batch(Echo(), examples, exact_match, client, concurrency=concurrency)
        wall = time.perf_counter() - t
        assert len(result.results) == batch and not result.errored
        in_flight = server.max_in_flight
    floor = batch / concurrency * latency
    print(f"[batch] {batch} samples x 1 call, latency {latency * 1000:.0f} ms, concurrency {concurrency}")
    print(f"  wall time {wall:.3f} s; floor {floor:.3f} s; ratio {wall / floor:.3f}x (target <= 1.3x); "
          f"max in flight at the server {in_flight}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--latency", type=float, default=0.3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    overhead(args.calls)
    batch_wall(args.batch, args.latency, args.concurrency)


if __name__ == "__main__":
    main()
