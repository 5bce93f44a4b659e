"""Benchmark: train one of the paper's tasks on its public data and print the measured numbers.

Runs the paper's protocol on whatever endpoint is configured (WORKBENCH_BASE_URL etc., or the
embedded 270M model, which proves the path but cannot show the paper's gains): TREC 6-class question
classification (train from train_5500.label, val/test from TREC_10.label) or BIG-Bench Hard object
counting. Prints the split sizes and seed, baseline and final validation/test scores, steps, and
calls/tokens per role, as measured in the run.

    python bench/paper_tasks.py --task classification --train 120 --val 166 --test 334 --steps 12
    python bench/paper_tasks.py --task counting --train 50 --val 100 --test 100 --steps 12
    python bench/paper_tasks.py --task counting --train 8 --val 8 --test 8 --steps 2   # quick, embedded model
"""
from __future__ import annotations

import argparse
import json
import time

from workbench import Models, TrainConfig, Trainer
from workbench.datasets import shared_data_dir
from workbench.tasks import get_task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=["classification", "counting"], default="counting")
    ap.add_argument("--data", help="shared data folder (default: ../shared/data or $WORKBENCH_SHARED_DATA)")
    ap.add_argument("--train", type=int, default=None)
    ap.add_argument("--val", type=int, default=None)
    ap.add_argument("--test", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=256, help="completion cap per call")
    ap.add_argument("--runs-dir", default="runs")
    args = ap.parse_args()

    from pathlib import Path
    data = Path(args.data) if args.data else shared_data_dir()
    source = (data / "trec" / "train_5500.label", data / "trec" / "TREC_10.label") if args.task == "classification" \
        else data / "bbh" / "object_counting.json"
    task = get_task(args.task)
    splits = task.load(args.train, args.val, args.test, seed=args.seed, source=source)
    print(f"[data] {splits.describe()}")
    models = Models.from_env(max_tokens=args.max_tokens)
    print("[models] " + ", ".join(f"{r}={m.model}" for r, m in models.by_role().items()))
    start = time.monotonic()
    trainer = Trainer(task.make_pipeline(), splits.train, splits.val, splits.test, task.eval_fn, models,
                      config=TrainConfig(max_steps=args.steps, batch_size=args.batch, seed=args.seed),
                      runs_root=args.runs_dir, task=args.task)
    summary = trainer.fit()
    seconds = time.monotonic() - start
    print(f"[result] status {summary.status}, {summary.steps} steps in {seconds:.0f} s")
    fmt = lambda x: "n/a" if x is None else f"{x:.3f}"
    print(f"[result] validation {fmt(summary.baseline['val'])} -> {fmt(summary.final['val'])}; "
          f"test {fmt(summary.baseline['test'])} -> {fmt(summary.final['test'])}")
    for role, u in summary.usage.items():
        print(f"[usage] {role:9s} calls {u['calls']:5d}  prompt tokens {u['prompt_tokens']:8d}  "
              f"completion tokens {u['completion_tokens']:7d}  cache hits {u['cache_hits']}")
    print(f"[run] {summary.run_dir}")
    print(json.dumps({n: v for n, v in summary.parameters.items()}, indent=1))
    models.close()


if __name__ == "__main__":
    main()
