"""Benchmark: the paper's table in one command (LLM-AutoDiff, Yin & Wang 2025, arXiv 2501.16673).

Trains BIG-Bench Hard object counting, TREC 6-class question classification and HotpotQA multi-hop
RAG on the public data in ../shared/data (or $WORKBENCH_SHARED_DATA, or --data) with the paper's
protocol by default, on whatever endpoint is configured (WORKBENCH_BASE_URL etc., or --base-url;
with none, the embedded Gemma 3 270M model, which proves the path but cannot show the paper's gains):

    splits      BBH 50/100/100, TREC 120/166/334 (train stratified, from train_5500; val/test from
                TREC_10), HotpotQA 100/100/200 (each question's own 10 paragraphs); seeded
    training    batch 4, 12 steps, up to 5 proposals per step, 2 failed + 2 passing samples back-propagated
    repeats     --repeats 4 seeds (seed, seed+1, ...): mean and standard deviation, as the paper reports

It prints and writes a Markdown and a CSV table (`--out`, default bench-results/paper_tasks): per
task, validation and test before and after, and calls, tokens and call seconds per role, plus the
wall time; `<out>-runs.csv` has one row per run. `--small` runs a small version (8/8/8, 2 steps,
1 repeat unless --repeats is given) for the embedded model.

    python bench/paper_tasks.py                                   # the paper's protocol, all three tasks
    python bench/paper_tasks.py --tasks counting hotpotqa --repeats 2
    python bench/paper_tasks.py --small                           # on the embedded model, minutes
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from workbench import Models, TrainConfig, Trainer
from workbench.tasks.datasets import HOTPOTQA_FILE, shared_data_dir
from workbench.tasks import get_task

ROLES = ("task", "backward", "optimizer")
# task -> (workbench task, data files under the shared folder, the paper's train/val/test sizes)
PROTOCOL = {
    "counting": ("counting", ["bbh/object_counting.json"], (50, 100, 100)),
    "classification": ("classification", ["trec/train_5500.label", "trec/TREC_10.label"], (120, 166, 334)),
    "hotpotqa": ("hotpotqa", [HOTPOTQA_FILE], (100, 100, 200)),
}
SMALL_SIZES, SMALL_STEPS = (8, 8, 8), 2
MAX_PROPOSALS = 5


def train_config(steps: int, batch: int, seed: int, proposals: int) -> tuple[TrainConfig, str]:
    """The paper's training settings, with the proposal cap the TrainConfig of this version offers."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    knobs: dict[str, Any] = {"max_steps": steps, "batch_size": batch, "seed": seed, "max_failed": 2, "max_correct": 2}
    if "max_proposals" in known:
        knobs["max_proposals"] = proposals
        note = f"up to {proposals} proposals per step (max_proposals)"
    else:
        knobs["num_candidates"] = proposals
        note = f"{proposals} candidates per parameter per step (num_candidates; this version has no max_proposals)"
    return TrainConfig(**knobs), note


def run_once(name: str, models: Models, data: Path, sizes: Sequence[int], steps: int, batch: int, seed: int,
             proposals: int, runs_dir: Path) -> dict:
    """Train one task once; returns the row of measured numbers."""
    task_name, files, _ = PROTOCOL[name]
    task = get_task(task_name)
    paths = [data / f for f in files]
    splits = task.load(*sizes, seed=seed, source=paths[0] if len(paths) == 1 else paths)
    config, _ = train_config(steps, batch, seed, proposals)
    models.usage.reset()
    started = time.monotonic()
    trainer = Trainer(task.pipeline_for(splits), splits.train, splits.val, splits.test, task.eval_fn, models,
                      config=config, runs_root=runs_dir, task=task_name)
    trainer.bus.subscribe(lambda e: print(_progress(name, e), flush=True), {"eval", "step_finished"})
    summary = trainer.fit()
    row = {"task": name, "seed": seed, "split": f"{len(splits.train)}/{len(splits.val)}/{len(splits.test)}",
           "status": summary.status, "steps": summary.steps,
           "val_before": summary.baseline.get("val"), "val_after": summary.final.get("val"),
           "test_before": summary.baseline.get("test"), "test_after": summary.final.get("test"),
           "wall_s": round(time.monotonic() - started, 2), "errored_samples": summary.errored_samples,
           "run_dir": summary.run_dir}
    for role in ROLES:
        u = summary.usage.get(role) or {}
        row[f"{role}_calls"] = u.get("calls", 0)
        row[f"{role}_tokens"] = (u.get("prompt_tokens", 0) or 0) + (u.get("completion_tokens", 0) or 0)
        row[f"{role}_call_s"] = round(u.get("latency_s", 0.0) or 0.0, 2)
    others = [u for role, u in summary.usage.items() if role not in ROLES and isinstance(u, dict)]
    row["other_calls"] = sum(u.get("calls", 0) for u in others)  # e.g. a teacher model's
    row["other_tokens"] = sum((u.get("prompt_tokens", 0) or 0) + (u.get("completion_tokens", 0) or 0) for u in others)
    return row


def _progress(name: str, event: Any) -> str:
    """One line per finished evaluation or step, so a long run shows it is moving."""
    d = event.data
    fmt = lambda x: "n/a" if x is None else f"{x:.3f}"
    if event.type == "eval":
        what = f"{d['phase']} {d['split']}" + (f" ({d['proposal_id']})" if d.get("proposal_id") else "")
        return f"[{name}] step {event.step}: {what} {fmt(d['score'])} on {d['n']} samples"
    calls = sum(u.get("calls", 0) for u in (d.get("usage") or {}).values() if isinstance(u, dict))
    return (f"[{name}] step {event.step} done: minibatch {fmt(d['train_score'])}, best val {fmt(d['best_val'])}, "
            f"{len(d['accepted'])} kept, {len(d['rejected'])} reverted, {calls} calls so far")


MEASURES = ["val_before", "val_after", "test_before", "test_after"] + \
    [f"{role}_{what}" for role in ROLES for what in ("calls", "tokens", "call_s")] + ["other_calls", "wall_s"]


def aggregate(rows: Sequence[dict]) -> list[dict]:
    """Mean and standard deviation per task over its repeats (sd 0 for one repeat; None-valued runs skipped)."""
    out = []
    for name in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == name]
        row: dict[str, Any] = {"task": name, "repeats": len(mine), "split": mine[0]["split"],
                               "statuses": ",".join(sorted({r["status"] for r in mine}))}
        for m in MEASURES:
            values = [float(r[m]) for r in mine if r.get(m) is not None]
            row[f"{m}_mean"] = statistics.fmean(values) if values else None
            row[f"{m}_sd"] = statistics.stdev(values) if len(values) > 1 else (0.0 if values else None)
        out.append(row)
    return out


def _cell(row: dict, m: str, digits: int) -> str:
    mean, sd = row[f"{m}_mean"], row[f"{m}_sd"]
    if mean is None:
        return "n/a"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}" if row["repeats"] > 1 else f"{mean:.{digits}f}"


def markdown(table: Sequence[dict], header: str) -> str:
    cols = [("val before", "val_before", 3), ("val after", "val_after", 3), ("test before", "test_before", 3),
            ("test after", "test_after", 3)]
    cols += [(f"{role} calls", f"{role}_calls", 0) for role in ROLES]
    cols += [(f"{role} tokens", f"{role}_tokens", 0) for role in ROLES]
    cols += [(f"{role} call s", f"{role}_call_s", 1) for role in ROLES] + [("wall s", "wall_s", 1)]
    lines = [header, "", "| task | split | runs | " + " | ".join(c[0] for c in cols) + " |",
             "|---|---|---|" + "---|" * len(cols)]
    for row in table:
        lines.append(f"| {row['task']} | {row['split']} | {row['repeats']} ({row['statuses']}) | "
                     + " | ".join(_cell(row, m, d) for _, m, d in cols) + " |")
    return "\n".join(lines) + "\n"


def write_csv(path: Path, rows: Sequence[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main(argv: Sequence[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", choices=list(PROTOCOL), default=list(PROTOCOL))
    ap.add_argument("--data", help="shared data folder (default: ../shared/data or $WORKBENCH_SHARED_DATA)")
    ap.add_argument("--repeats", type=int, default=None, help="seeds per task (default 4; 1 with --small)")
    ap.add_argument("--seed", type=int, default=0, help="first seed; repeat r uses seed + r")
    ap.add_argument("--small", action="store_true", help="8/8/8 splits and 2 steps: a quick run on the embedded model")
    ap.add_argument("--sizes", type=int, nargs=3, metavar=("TRAIN", "VAL", "TEST"), help="override the split sizes")
    ap.add_argument("--steps", type=int, default=None, help="training steps (default 12; 2 with --small)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--proposals", type=int, default=MAX_PROPOSALS, help="proposals per step, at most")
    ap.add_argument("--base-url", help="OpenAI-compatible endpoint (default: $WORKBENCH_BASE_URL, else embedded)")
    ap.add_argument("--model", help="task model (default: $WORKBENCH_TASK_MODEL or the endpoint's first model)")
    ap.add_argument("--max-tokens", type=int, default=None, help="reply cap per call (default: per role)")
    ap.add_argument("--no-cache", action="store_true", help="do not reuse cached replies (measure every call)")
    ap.add_argument("--out", default="bench-results/paper_tasks", help="table path without extension")
    ap.add_argument("--runs-dir", default=None, help="run folders (default: <out>-runs/)")
    args = ap.parse_args(argv)

    repeats = args.repeats or (1 if args.small else 4)
    steps = args.steps or (SMALL_STEPS if args.small else 12)
    data = Path(args.data) if args.data else shared_data_dir()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    runs_dir = Path(args.runs_dir) if args.runs_dir else out.parent / f"{out.name}-runs"
    _, proposals_note = train_config(steps, args.batch, args.seed, args.proposals)
    extra = {"cache": None} if args.no_cache else {}
    models = Models.from_env(base_url=args.base_url, model=args.model, max_tokens=args.max_tokens,
                             say=lambda m: print(f"[models] {m}", flush=True), **extra)
    print("[models] " + ", ".join(f"{r}={m.model}" for r, m in models.by_role().items()), flush=True)
    print(f"[protocol] batch {args.batch}, {steps} steps, {proposals_note}, 2 failed + 2 passing back-propagated, "
          f"{repeats} repeat(s) from seed {args.seed}", flush=True)
    rows = []
    try:
        for name in args.tasks:
            sizes = args.sizes or (SMALL_SIZES if args.small else PROTOCOL[name][2])
            for r in range(repeats):
                seed = args.seed + r
                print(f"[run] {name} seed {seed}, split {sizes[0]}/{sizes[1]}/{sizes[2]} ...", flush=True)
                row = run_once(name, models, data, sizes, steps, args.batch, seed, args.proposals, runs_dir)
                rows.append(row)
                fmt = lambda x: "n/a" if x is None else f"{x:.3f}"
                print(f"[run] {name} seed {seed}: {row['status']}, val {fmt(row['val_before'])} -> "
                      f"{fmt(row['val_after'])}, test {fmt(row['test_before'])} -> {fmt(row['test_after'])}, "
                      f"{sum(row[f'{x}_calls'] for x in ROLES)} calls, {row['wall_s']:.0f} s", flush=True)
    finally:
        models.close()
    table = aggregate(rows)
    header = (f"Paper tasks on {models.task.model} (backward {models.backward.model}, optimizer "
              f"{models.optimizer.model}); batch {args.batch}, {steps} steps, {proposals_note}; "
              f"seeds {args.seed}..{args.seed + repeats - 1}; mean ± sd over runs.")
    text = markdown(table, header)
    (out.with_suffix(".md")).write_text(text, encoding="utf-8")
    write_csv(out.with_suffix(".csv"), table)
    write_csv(out.parent / f"{out.name}-runs.csv", rows)
    print(text)
    print(f"[tables] {out.with_suffix('.md')}, {out.with_suffix('.csv')}, {out.parent / (out.name + '-runs.csv')}")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
