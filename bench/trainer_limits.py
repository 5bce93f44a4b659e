"""Benchmark: do a trainer's limits hold at the endpoint? Prints measured numbers (not a test).

Runs `Trainer.fit()` over real HTTP (the openai SDK against our test server on 127.0.0.1) on a
task whose task model answers after --latency seconds, for several `max_calls` budgets and
concurrency settings, and prints per run: the budget, the configured concurrency, chat requests
that reached the server, the most in flight at once, the run's status and the wall time.

A budget is a limit: requests reaching the server never exceed max_calls (a call is reserved
before it is sent). Concurrency reaches the endpoint: the most in flight equals the configured
number when there are that many samples to run.

    python bench/trainer_limits.py [--latency 0.1] [--val 32]
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the scripted task of the tests

from scripted_tasks import TEST, TRAIN, WORDS, Optimizer, Shout, backward, examples, same_text  # noqa: E402
from workbench import Models, TrainConfig, Trainer  # noqa: E402
from workbench.testing import OpenAITestServer  # noqa: E402


def respond(messages):
    """One endpoint for all roles: the backward engine and optimizer by their system prompts."""
    system = str(messages[0].get("content") or "")
    text = messages[-1]["content"]
    if system.startswith("You are the backward engine"):
        return backward(messages)
    if "Word:" not in text:
        return Optimizer()(messages) if "PROPOSAL" in text or "improve" in system else "OK"
    word = re.search(r"Word: (\w+)", text).group(1)
    return word.upper() if "uppercase" in text.lower() else word


def one_run(max_calls: int | None, concurrency: int, val: list, latency: float) -> dict:
    with OpenAITestServer(responder=respond, latency_s=latency) as server, tempfile.TemporaryDirectory() as tmp:
        models = Models.from_endpoint(server.base_url, "test-model", api_key="x", cache=None, fold_system=False)
        trainer = Trainer(Shout(), TRAIN, val, TEST, same_text, models, run_dir=Path(tmp) / "run",
                          config=TrainConfig(max_steps=2, batch_size=4, concurrency=concurrency, max_calls=max_calls))
        started = time.perf_counter()
        summary = trainer.fit()
        seconds = time.perf_counter() - started
        return {"max_calls": max_calls, "concurrency": concurrency, "requests": server.request_count,
                "max_in_flight": server.max_in_flight, "status": summary.status, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per chat request")
    parser.add_argument("--val", type=int, default=32, help="validation samples (at most 16 distinct words, repeated)")
    args = parser.parse_args(argv)
    words = (WORDS * (args.val // len(WORDS) + 1))[:args.val]
    val = [type(e)(f"{e.id}-{i}", e.input, e.target, e.meta) for i, e in enumerate(examples("va", words))]
    print(f"{'max_calls':>9} {'concurrency':>11} {'requests':>8} {'max in flight':>13} {'status':>9} {'seconds':>7}")
    for max_calls, concurrency in [(6, 8), (6, 32), (20, 8), (50, 16), (None, 8), (None, 32)]:
        r = one_run(max_calls, concurrency, val, args.latency)
        limit = "none" if r["max_calls"] is None else r["max_calls"]
        print(f"{limit:>9} {r['concurrency']:>11} {r['requests']:>8} {r['max_in_flight']:>13} {r['status']:>9} "
              f"{r['seconds']:>7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
