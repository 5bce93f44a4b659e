"""Benchmark: `workbench demo` on the embedded Gemma 3 270M, over several seeds.

Prints measured numbers (not a test). Each seed runs the real command, `workbench demo --seed N`,
in a fresh process with no endpoint configured and the response cache off, so every call is served
by the embedded llama.cpp server and the wall time includes starting it. The seed draws the splits
(train stratified, validation and test from the rest) and the batches. Read back from each run
folder: validation and test at baseline and at the end, the kept changes, calls per role, wall.

    python bench/embedded_demo.py [--seeds 0 1 2] [--runs-dir DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENDPOINT_VARIABLES = ("WORKBENCH_BASE_URL", "WORKBENCH_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL",
                      "WORKBENCH_TASK_MODEL", "WORKBENCH_BACKWARD_MODEL", "WORKBENCH_OPTIMIZER_MODEL")


def run_seed(seed: int, runs_dir: Path) -> dict:
    """One `workbench demo --seed N` and what its run folder recorded."""
    env = {k: v for k, v in os.environ.items() if k not in ENDPOINT_VARIABLES}
    before = set(runs_dir.glob("*")) if runs_dir.exists() else set()
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "workbench", "demo", "--seed", str(seed), "--no-cache", "--quiet",
                           "--runs-dir", str(runs_dir)], env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"seed {seed}: workbench demo exited with {done.returncode}:\n{done.stderr[-2000:]}")
    [run] = [p for p in runs_dir.glob("*") if p not in before]
    summary = json.loads((run / "summary.json").read_text())
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines() if line.strip()]
    kept = [e["data"]["parameter"] for e in events if e["type"] == "update" and e["data"]["accepted"]]
    proposed = sum(e["type"] == "proposal" for e in events)
    calls = {role: u.get("calls", 0) for role, u in (summary.get("usage") or {}).items()}
    return {"seed": seed, "baseline": summary["baseline"], "final": summary["final"], "kept": kept,
            "proposed": proposed, "calls": calls, "wall": wall, "status": summary.get("status"), "run": str(run)}


def fmt(x: float | None) -> str:
    return "  -  " if x is None else f"{x:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--runs-dir", help="keep the run folders here (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs_dir = Path(args.runs_dir or tmp)
        rows = []
        print(f"{'seed':>4}  {'val base':>8} {'val final':>9}  {'test base':>9} {'test final':>10}  "
              f"{'kept':>4}/{'prop':<4} {'calls (task/bwd/opt)':>20} {'wall s':>7}  status", flush=True)
        for seed in args.seeds:
            r = run_seed(seed, runs_dir)
            rows.append(r)
            c = r["calls"]
            roles = f"{sum(c.values())} ({c.get('task', 0)}/{c.get('backward', 0)}/{c.get('optimizer', 0)})"
            print(f"{seed:>4}  {fmt(r['baseline']['val']):>8} {fmt(r['final']['val']):>9}  "
                  f"{fmt(r['baseline']['test']):>9} {fmt(r['final']['test']):>10}  {len(r['kept']):>4}/{r['proposed']:<4} "
                  f"{roles:>20} {r['wall']:>7.1f}  {r['status']}", flush=True)
        n = len(rows)
        mean = lambda key, split: sum(r[key][split] or 0.0 for r in rows) / n  # noqa: E731
        improved = sum((r["final"]["val"] or 0) > (r["baseline"]["val"] or 0) for r in rows)
        print(f"mean  {mean('baseline', 'val'):8.3f} {mean('final', 'val'):9.3f}  {mean('baseline', 'test'):9.3f} "
              f"{mean('final', 'test'):10.3f}  validation rose on {improved} of {n} seeds; "
              f"wall {sum(r['wall'] for r in rows) / n:.1f} s per run (load average {os.getloadavg()[0]:.2f} at the end)")


if __name__ == "__main__":
    main()
