"""Benchmark: what the event contract and the run store cost per event (not a test; prints numbers).

Each event a trainer emits is checked against its definition (`EventBus.emit`), its optional fields
filled in, redacted by value and appended to events.jsonl. This measures, for a small event (`node`)
and a large one (`forward` with a 12-node graph), the time per event of:
  check   the contract check alone (`events.problems`)
  emit    a bus with no subscriber (check + defaults)
  store   a bus with the run store subscribed (check + defaults + redaction + JSON + append)
with 0 and 3 registered secrets. A training step emits a few hundred events and makes a few dozen LLM
calls of 100+ ms each, so anything well under a millisecond per event is noise.

    python bench/events_store.py [--events 5000]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from workbench.records.events import Event, EventBus, problems
from workbench.redact import forget_secrets, register_secret
from workbench.records.store import RunStore


def node_event(i: int) -> Event:
    return Event("node", {"sample_id": f"s{i}", "split": "train", "node_id": "answer", "component": "answer",
                          "kind": "llm", "call_index": 1, "status": "done"}, run_id="bench", step=1)


def forward_event(i: int) -> Event:
    nodes = [{"id": f"n{k}", "component": f"n{k}", "kind": "llm", "call_index": 1, "parameters": [f"n{k}.instruction"],
              "inputs": {"question": "What is the capital of France? " * 8}, "output": "Paris. " * 30,
              "prompt": [{"role": "user", "content": "Answer the question. " * 40}], "status": "done",
              "error": None, "started": 0.0, "ended": 0.1, "prompt_tokens": 120, "completion_tokens": 30,
              "cached": False} for k in range(12)]
    graph = {"sample_id": f"s{i}", "nodes": nodes,
             "edges": [{"source": f"n{k}", "target": f"n{k + 1}", "input": "x"} for k in range(11)],
             "gradients": [], "loss": {"score": 0.0, "prediction": "Lyon", "target": "Paris", "passed": False}}
    summary = {"sample_id": f"s{i}", "inputs": {"question": "q"}, "target": "Paris", "prediction": "Lyon",
               "score": 0.0, "status": "failed", "error": None, "seconds": 0.2}
    return Event("forward", {"split": "train", "phase": "train", "summary": summary, "graph": graph},
                 run_id="bench", step=1)


def per_event_us(fn, events: list[Event]) -> float:
    started = time.perf_counter()
    for e in events:
        fn(e)
    return (time.perf_counter() - started) / len(events) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    args = parser.parse_args()
    print(f"{'event':<8} {'secrets':>7} {'bytes':>7} {'check us':>9} {'emit us':>9} {'store us':>9}")
    for name, make in (("node", node_event), ("forward", forward_event)):
        events = [make(i) for i in range(args.events)]
        size = len(str(events[0].to_dict()))
        for secrets in (0, 3):
            forget_secrets()
            for k in range(secrets):
                register_secret(f"sk-bench-secret-{k}-0123456789")
            check = per_event_us(problems, events)
            emit = per_event_us(EventBus(strict=True).emit, events)
            with tempfile.TemporaryDirectory() as tmp:
                store = RunStore.create(Path(tmp) / "run", {"task": "bench"})
                bus = EventBus(strict=True)
                bus.subscribe(store.on_event, critical=True)
                stored = per_event_us(bus.emit, events)
            print(f"{name:<8} {secrets:>7} {size:>7} {check:>9.1f} {emit:>9.1f} {stored:>9.1f}")
    forget_secrets()


if __name__ == "__main__":
    main()
