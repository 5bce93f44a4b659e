"""Benchmark: does a training run survive a faulty endpoint, and end exactly as without faults?

Prints measured numbers (not a test). A small scripted task (tests/scripted_tasks.py: the Shout
pipeline, whose replies are functions of the prompt alone) is trained through the real openai SDK
against our OpenAI-compatible test server, once without faults (the reference) and then once per
seed with a fault plan: each request, with probability --rate, gets a fault drawn uniformly from
429 with Retry-After, 500, 503, a reply slower than the client's timeout, a 200 with a truncated
JSON body, and a connection reset. For each seed it compares the run's final parameters and scores
with the reference's and counts events:

- runs completed: status "completed";
- identical: final parameters and final scores equal the fault-free run's;
- events lost: events the fault-free run recorded that the faulty run did not (by type), plus
  events emitted on the bus that never reached events.jsonl;
- calls retried: failed attempts the clients retried (and faults the server injected).

    python bench/faults.py [--seeds 20] [--rate 0.2] [--timeout 1.0] [--kinds 429 truncated ...]
"""
from __future__ import annotations

import argparse
import collections
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from scripted_tasks import TEST, TRAIN, VAL, Optimizer, Shout, route, same_text  # noqa: E402

from workbench.llm import Models  # noqa: E402
from workbench.testing import FAULT_KINDS, FaultPlan, OpenAITestServer  # noqa: E402
from workbench.training.trainer import TrainConfig, Trainer  # noqa: E402


def train_once(faults: FaultPlan | None, run_dir: Path, timeout: float) -> dict:
    """One training run; what it ended with, the events it emitted and recorded, and its retries."""
    with OpenAITestServer(responder=route(Optimizer()), faults=faults) as server:
        models = Models.from_endpoint(server.base_url, "test-model", api_key="bench-key", cache=None,
                                      timeout=timeout, backoff_initial_s=0.05, backoff_max_s=0.5)
        trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, models, run_dir=run_dir,
                          config=TrainConfig(max_steps=2, batch_size=4, concurrency=4))
        emitted = collections.Counter()
        trainer.bus.subscribe(lambda event: emitted.update([event.type]))
        started = time.perf_counter()
        try:
            summary = trainer.fit()
            status, parameters, final, error = summary.status, summary.parameters, summary.final, summary.error
        except Exception as exc:  # the benchmark reports a crash instead of stopping
            status, parameters, final, error = "crashed", {}, {}, f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - started
        retried = sum(getattr(model, "retries", 0) for model in models.by_role().values())
        models.close()
        injected = dict(server.faults_injected)
    recorded = collections.Counter()
    events_file = run_dir / "events.jsonl"
    if events_file.exists():
        for line in events_file.read_text().splitlines():
            if line.strip():
                recorded.update([json.loads(line).get("type")])
    return {"status": status, "parameters": parameters, "final": final, "error": error, "emitted": emitted,
            "recorded": recorded, "retried": retried, "injected": injected, "seconds": seconds}


def events_lost(run: dict, reference: dict) -> int:
    missing_by_type = sum(max(0, count - run["recorded"].get(kind, 0)) for kind, count in reference["recorded"].items())
    never_written = sum(max(0, count - run["recorded"].get(kind, 0)) for kind, count in run["emitted"].items())
    return missing_by_type + never_written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--rate", type=float, default=0.2, help="share of requests that get a fault")
    ap.add_argument("--timeout", type=float, default=1.0, help="client timeout; slow replies take 1.5x this")
    ap.add_argument("--kinds", nargs="+", choices=FAULT_KINDS, default=list(FAULT_KINDS),
                    help="fault kinds to draw from (default: all)")
    ap.add_argument("--verbose", action="store_true", help="show the clients' retry warnings")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING if args.verbose else logging.ERROR)

    with tempfile.TemporaryDirectory() as tmp:
        reference = train_once(None, Path(tmp) / "reference", args.timeout)
        print(f"fault-free run: {reference['status']} in {reference['seconds']:.1f} s, "
              f"{sum(reference['recorded'].values())} events, final {reference['final']}")
        rows = []
        for seed in range(args.seeds):
            plan = FaultPlan(rate=args.rate, kinds=args.kinds, seed=seed, retry_after="1", slow_s=1.5 * args.timeout)
            run = train_once(plan, Path(tmp) / f"seed-{seed}", args.timeout)
            identical = run["parameters"] == reference["parameters"] and run["final"] == reference["final"]
            lost = events_lost(run, reference)
            rows.append((seed, run, identical, lost))
            faults = ", ".join(f"{k} {v}" for k, v in sorted(run["injected"].items()))
            print(f"  seed {seed:2d}: {run['status']:9s} identical={'yes' if identical else 'NO '} events lost {lost} "
                  f"retried {run['retried']:3d} ({faults}) {run['seconds']:.1f} s"
                  + (f"  error: {run['error']}" if run["error"] else ""), flush=True)

    completed = sum(1 for _, run, _, _ in rows if run["status"] == "completed")
    identical = sum(1 for _, _, same, _ in rows if same)
    lost = sum(lost for _, _, _, lost in rows)
    retried = sum(run["retried"] for _, run, _, _ in rows)
    injected = collections.Counter()
    for _, run, _, _ in rows:
        injected.update(run["injected"])
    n = len(rows)
    print()
    print(f"faults: {args.rate:.0%} of requests, kinds {', '.join(args.kinds)}; {n} seeds")
    print("| measure | result |")
    print("|---|---|")
    print(f"| runs completed | {completed}/{n} |")
    print(f"| final parameters and scores equal the fault-free run's | {identical}/{n} |")
    print(f"| events lost | {lost} |")
    print(f"| calls retried | {retried} |")
    print(f"| faults injected | {sum(injected.values())} ({', '.join(f'{k}: {v}' for k, v in sorted(injected.items()))}) |")


if __name__ == "__main__":
    main()
