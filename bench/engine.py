"""Benchmark: the engine's own cost per LLM call, and batch wall time under latency.

Prints measured numbers (not a test). Both parts use our OpenAI-compatible test server on 127.0.0.1,
over real HTTP through the openai SDK.

1. Overhead per call at zero latency: a traced LLM node through LLMClient (graph recording, usage
   accounting, cache lookup + store in a fresh SQLite cache) minus a bare openai SDK call to the same
   server. Target <= 2 ms.
2. Wall time of a batch of 32 samples at 300 ms latency with concurrency 8, through run_batch.
   The floor is 32/8 x 300 ms = 1.2 s; target <= 1.3x that.
3. Sustained concurrency: --inflight-calls calls through one Models (set_concurrency N) from N
   threads at --inflight-latency seconds each. Prints the most calls in flight at the server and
   the throughput against the ideal N / latency; target >= 256 in flight and >= 0.9x the ideal.

    python bench/engine.py [--calls 300] [--latency 0.3] [--batch 32] [--concurrency 8]
                           [--inflight 256] [--inflight-latency 1.0] [--inflight-calls 2048]
    python bench/engine.py --only inflight
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai

from workbench import LLMCall, Parameter, Pipeline, exact_match, run_batch, trace, use_model
from workbench.tasks.datasets import Example
from workbench.llm import LLMClient, Models, ResponseCache, UsageMeter
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
        warm_up = [Example(f"w{i}", {"text": f"warm {i}"}, "x", {}) for i in range(concurrency)]
        run_batch(Echo(), warm_up, exact_match, client, concurrency=concurrency)  # open the connections once
        t = time.perf_counter()
        result = run_batch(Echo(), examples, exact_match, client, concurrency=concurrency)
        wall = time.perf_counter() - t
        assert len(result.results) == batch and not result.errored
        in_flight = server.max_in_flight
    floor = batch / concurrency * latency
    print(f"[batch] {batch} samples x 1 call, latency {latency * 1000:.0f} ms, concurrency {concurrency}")
    print(f"  wall time {wall:.3f} s; floor {floor:.3f} s; ratio {wall / floor:.3f}x (target <= 1.3x); "
          f"max in flight at the server {in_flight}")


def server_stats(base_url: str, action: str = "_stats") -> dict:
    root = base_url.rsplit("/v1", 1)[0]
    request = urllib.request.Request(f"{root}/{action}", method="POST" if action == "_reset" else "GET", data=b"" if action == "_reset" else None)
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


def in_flight(concurrency: int, latency: float, calls: int) -> None:
    """Many calls at once through one Models: does the configured concurrency reach the endpoint?

    The test server runs in its own process, as a real endpoint would, so its request handling does
    not compete with the client for this interpreter's lock.
    """
    server = subprocess.Popen([sys.executable, "-m", "workbench.testing", "--latency", str(latency)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        base_url = server.stdout.readline().strip()
        models = Models.from_endpoint(base_url, "test-model", api_key="x", cache=None)
        applied = models.set_concurrency(concurrency)
        prompts = [[{"role": "user", "content": f"question {i}"}] for i in range(calls)]
        finished: list[float] = []

        def call(prompt):
            result = models.task.complete(prompt)
            finished.append(time.perf_counter())  # list.append is atomic
            return result
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(models.task.complete, prompts[:concurrency]))  # warm up: open the connections
            server_stats(base_url, "_reset")
            started = time.perf_counter()
            results = list(pool.map(call, prompts))
            wall = time.perf_counter() - started
        peak = server_stats(base_url)["max_in_flight"]
        models.close()
    finally:
        server.stdin.close()
        server.wait(timeout=10)
    assert len(results) == calls and all(r.text for r in results)
    ideal = applied / latency
    throughput = calls / wall
    finished.sort()
    quarter, three_quarters = finished[len(finished) // 4], finished[3 * len(finished) // 4]
    sustained = (3 * len(finished) // 4 - len(finished) // 4) / (three_quarters - quarter)
    print(f"[in flight] {calls} calls, latency {latency * 1000:.0f} ms, set_concurrency({concurrency}) -> {applied}, "
          f"test server in its own process")
    print(f"  max in flight at the server {peak} (target >= {concurrency}); wall {wall:.2f} s")
    print(f"  ideal concurrency/latency {ideal:.1f} calls/s")
    print(f"  whole run  {throughput:.1f} calls/s, ratio {throughput / ideal:.3f} (includes the first wave's ramp-up)")
    print(f"  sustained  {sustained:.1f} calls/s, ratio {sustained / ideal:.3f} (middle half of completions; target >= 0.9)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--latency", type=float, default=0.3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--inflight", type=int, default=256, help="concurrency of the in-flight part")
    ap.add_argument("--inflight-latency", type=float, default=1.0)
    ap.add_argument("--inflight-calls", type=int, default=2048)
    ap.add_argument("--only", choices=("overhead", "batch", "inflight"), help="run one part")
    args = ap.parse_args()
    if args.only in (None, "overhead"):
        overhead(args.calls)
    if args.only in (None, "batch"):
        batch_wall(args.batch, args.latency, args.concurrency)
    if args.only in (None, "inflight"):
        in_flight(args.inflight, args.inflight_latency, args.inflight_calls)


if __name__ == "__main__":
    main()
