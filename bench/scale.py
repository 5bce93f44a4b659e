"""Benchmark: how Workbench behaves on a run of the paper's size (not a test; prints measured numbers).

Trains HotpotQA (`get_task("hotpotqa")`, the shared dev-distractor file) with the paper's protocol:
100 train / 100 val / 200 test (seed 0), batch 4, --steps 12, up to 5 proposals per step, against our
OpenAI-compatible test server over real HTTP (never the embedded model). One responder answers all
three roles, told apart by the system prompt:

    task        query writer: the question's longest words; answerer: the gold answer for about
                40% of the questions, chosen by a hash of (question, instructions), so a new prompt
                changes which questions pass and some proposals win validation
    backward    two sentences of feedback naming its target
    optimizer   the current value plus a sentence that differs per call (never a repeat)

Then it measures what a person does with such a run:

    run         wall time, calls, events.jsonl size and lines, checkpoint sizes (first, last, total),
                peak RSS of this process (resource.getrusage)
    open_run    time of `workbench.open_run(folder)` and of building each DataFrame
    report      time and size of `workbench report` (the HTML file), and of the same without plotly.js
    runs        `workbench.runs(root)` and `workbench runs` (run_list.list_runs) on a folder of --copies runs
    dashboard   the Funnel (workbench/ui/funnel.py) with its reducers, headless (a view that records
                traits, no browser): every event of the log applied with a flush after each, the cost
                per event in the first and the last tenth of the log (equal means linear overall)

    python bench/scale.py [--steps 12] [--copies 40] [--keep DIR] [--reuse RUN_DIR]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import workbench
from workbench.tasks.datasets import HOTPOTQA_FILE, shared_data_dir
from workbench.tasks import get_task

SIZES = (100, 100, 200)


def _h(*parts: str) -> int:
    return int(hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:8], 16)


def responder(answers: dict[str, str]):
    """One endpoint for the task, backward and optimizer roles (the system prompt tells them apart)."""
    from workbench.engine.backward import BACKWARD_SYSTEM
    from workbench.optim.text_optimizer import OPTIMIZER_SYSTEM
    calls = {"n": 0}

    def respond(messages: list[dict]) -> str:
        system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
        user = messages[-1]["content"]
        if system.startswith(BACKWARD_SYSTEM[:40]):
            m = re.search(r"### Parameter: (\S+)", user) or re.search(r"### Target value from node (\S+)", user)
            target = m.group(1) if m else "the target"
            hints = ("the exact entity the question asks for", "the bridge entity linking both passages",
                     "a date or number when the question asks when or how many", "the full name from the passage")
            return (f"Here {target} falls short: it should single out {hints[_h(user) % len(hints)]}, "
                    f"and keep reply number {_h(user, 'n') % 997} free of extra words.")
        if system.startswith(OPTIMIZER_SYSTEM[:40]):
            calls["n"] += 1
            m = re.search(r"<CURRENT_VALUE>\n(.*?)\n</CURRENT_VALUE>", user, re.S)
            current = (m.group(1) if m else "Answer the question.").strip()
            current = re.sub(r" Variant \d+\..*$", "", current, flags=re.S)
            return f"<PROPOSAL>{current} Variant {calls['n']}. Name only the entity asked for.</PROPOSAL>"
        if user.rstrip().endswith("Search query:"):
            q = re.search(r"Question: (.*)", user).group(1)
            words = sorted(set(re.findall(r"[A-Za-z][A-Za-z'-]+", q)), key=len, reverse=True)
            return " ".join(words[:5]) or q
        q = re.search(r"Question: (.*)", user).group(1).strip()
        gold = answers.get(q, "unknown")
        if _h(q, system) % 100 < 40:
            return f"Answer: {gold}"
        return "Answer: " + ("the " + gold.split()[0] if gold.split() else "unknown")
    return respond


def kb(n: float) -> str:
    return f"{n / 1024:,.1f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:,.2f} MB"


def timed(fn, *args, **kwargs):
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - started


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train(root: Path, steps: int, proposals: int) -> tuple[Path, dict]:
    from workbench import TrainConfig, Trainer
    from workbench.llm.models import Models
    from workbench.testing import OpenAITestServer

    task = get_task("hotpotqa")
    splits = task.load(*SIZES, seed=0, source=shared_data_dir() / HOTPOTQA_FILE)
    print(f"data: {splits.describe()}")
    answers = {e.input["question"].strip(): e.target for e in splits.pool}
    with OpenAITestServer(responder=responder(answers)) as server:
        models = Models.from_endpoint(server.base_url, "test-model", api_key="sk-bench-not-a-secret", cache=None,
                                      max_retries=1, concurrency=8)
        config = TrainConfig(max_steps=steps, batch_size=4, max_proposals=proposals, seed=0, concurrency=8)
        trainer = Trainer(task.pipeline_for(splits), splits.train, splits.val, splits.test, task.eval_fn, models,
                          config=config, runs_root=root, task="hotpotqa", progress=False)
        rss_before = rss_mb()
        summary, wall = timed(trainer.fit)
        numbers = {"wall_s": wall, "calls": server.served_count, "status": summary.status, "steps": summary.steps,
                   "val": (summary.baseline.get("val"), summary.final.get("val")),
                   "test": (summary.baseline.get("test"), summary.final.get("test")),
                   "rss_before_mb": rss_before, "rss_after_mb": rss_mb()}
    return Path(summary.run_dir), numbers


def folder_numbers(folder: Path) -> None:
    log = folder / "events.jsonl"
    lines = log.read_bytes().count(b"\n")
    by_type: dict[str, list[int]] = {}
    with open(log, "rb") as f:
        for raw in f:
            t = json.loads(raw).get("type", "?")
            by_type.setdefault(t, [0, 0])
            by_type[t][0] += 1
            by_type[t][1] += len(raw)
    print(f"events.jsonl: {kb(log.stat().st_size)}, {lines} lines")
    top = sorted(by_type.items(), key=lambda kv: -kv[1][1])[:6]
    print("  biggest event types: " + ", ".join(f"{t} {n}x {kb(b)}" for t, (n, b) in top))
    cps = sorted((folder / "checkpoints").glob("step-*.json"))
    sizes = [p.stat().st_size for p in cps]
    if sizes:
        print(f"checkpoints: {len(cps)}, first {kb(sizes[0])}, last {kb(sizes[-1])}, total {kb(sum(sizes))}")
        last = json.loads(cps[-1].read_bytes())
        parts = sorted(((k, len(json.dumps(v))) for k, v in last.items()), key=lambda kv: -kv[1])[:5]
        print("  last checkpoint's biggest keys: " + ", ".join(f"{k} {kb(n)}" for k, n in parts))
    memo = folder / "eval_memo.jsonl"
    if memo.exists():
        print(f"eval_memo.jsonl: {kb(memo.stat().st_size)}")


def open_run_numbers(folder: Path) -> None:
    run, t_open = timed(workbench.open_run, folder)
    print(f"open_run: {t_open * 1000:.1f} ms")
    for name in ("curve", "proposals", "gradients", "samples", "usage", "notices"):
        frame, t = timed(getattr, run, name)
        print(f"  run.{name:<10} {t * 1000:8.1f} ms  {len(frame):6d} rows")
    _, t = timed(getattr, run, "samples")
    print(f"  run.samples again {t * 1000:6.1f} ms (log already folded)")
    _, t = timed(run.events)
    print(f"  run.events()      {t * 1000:6.1f} ms")


def report_numbers(folder: Path, out: Path) -> None:
    from workbench.records.report import render_report
    from workbench.records.results import open_run
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "workbench", "report", str(folder), "-o", str(out)],
                          capture_output=True, text=True)
    t_cli = time.perf_counter() - started
    if proc.returncode:
        print(f"workbench report failed: {proc.stderr.strip()[-300:]}")
    else:
        print(f"workbench report (CLI, new process): {t_cli:.2f} s, {kb(out.stat().st_size)}")
    text, t = timed(lambda: render_report(open_run(folder)))
    from plotly.offline import get_plotlyjs
    js = len(get_plotlyjs())
    rest = len(text.encode()) - js
    print(f"render_report (in process): {t:.2f} s, {kb(len(text.encode()))}; without plotly.js {kb(rest)}")
    for title in ("Scores and cost", "Final prompts", "Proposals", "Usage", "Notices"):
        start = text.find(f"<h2>{title}")
        if start >= 0:
            end = text.find("</section>", start)
            print(f"  section {title:<16} {kb(end - start)}")


def runs_numbers(folder: Path, root: Path, copies: int) -> None:
    many = root / "many"
    many.mkdir()
    for k in range(copies):
        # the evaluation memo (tens of MB) is not read by either listing: leave it out of the copies
        shutil.copytree(folder, many / f"{folder.name}-{k:03d}", ignore=shutil.ignore_patterns("eval_memo.jsonl"))
    frame, t = timed(workbench.runs, many)
    print(f"workbench.runs() on {copies} runs: {t:.2f} s ({t / copies * 1000:.0f} ms per run), {len(frame)} rows")
    from workbench.records.run_list import list_runs
    rows, t = timed(list_runs, many)
    print(f"run_list.list_runs() (behind `workbench runs`) on {copies} runs: {t:.2f} s ({t / copies * 1000:.0f} ms per run)")
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "workbench", "runs", "--runs-dir", str(many)], capture_output=True, text=True)
    print(f"`workbench runs` (CLI, new process): {time.perf_counter() - started:.2f} s, exit {proc.returncode}")


class RecordingView:
    """A view without a browser: records the traits the funnel sets, and their JSON size."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.bytes = 0
        self.sets = 0

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return None

    def __setattr__(self, name: str, value) -> None:
        if name in ("kind", "bytes", "sets"):
            object.__setattr__(self, name, value)
            return
        object.__setattr__(self, name, value)
        self.sets += 1
        self.bytes += len(json.dumps(value, default=str))

    def hold_sync(self):
        from contextlib import nullcontext
        return nullcontext()

    def reply(self, **_):
        pass


def funnel_numbers(folder: Path) -> None:
    from workbench.records.events import EventBus
    from workbench.records.store import read_events
    import logging

    from workbench.ui.funnel import Funnel

    class Count(logging.Handler):
        def __init__(self):
            super().__init__()
            self.errors: dict[str, int] = {}

        def emit(self, record):
            key = record.getMessage()
            self.errors[key] = self.errors.get(key, 0) + 1

    counter = Count()
    funnel_log = logging.getLogger("workbench.ui.funnel")
    funnel_log.addHandler(counter)
    funnel_log.propagate = False

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        events = list(read_events(folder / "events.jsonl"))
    bus = EventBus(strict=False)
    funnel = Funnel(bus=bus, svg_renderer=lambda layout: "<svg/>", threaded=False)
    views = [RecordingView(k) for k in ("graph", "samples", "curves", "review", "controls")]
    for v in views:
        funnel.attach(v)
    per_event = []
    for e in events:
        started = time.perf_counter()
        funnel._on_event(e)
        funnel.flush()  # the worst case: a push after every event (the thread coalesces bursts)
        per_event.append(time.perf_counter() - started)
    funnel.close()
    n = len(per_event)
    tenth = max(1, n // 10)
    first, last = sum(per_event[:tenth]) / tenth, sum(per_event[-tenth:]) / tenth
    print(f"dashboard funnel, headless: {n} events, {sum(per_event):.2f} s in all, "
          f"{sum(per_event) / n * 1e6:.0f} us per event (apply + push after each)")
    print(f"  first tenth {first * 1e6:.0f} us/event, last tenth {last * 1e6:.0f} us/event; "
          f"traits sent {kb(sum(v.bytes for v in views))} in {sum(v.sets for v in views)} trait sets")
    by_type: dict[str, list[float]] = {}
    for e, t in zip(events, per_event):
        by_type.setdefault(e.type, []).append(t)
    top = sorted(by_type.items(), key=lambda kv: -sum(kv[1]))[:5]
    print("  most costly event types: " + ", ".join(f"{t} {len(v)}x {sum(v) / len(v) * 1e6:.0f} us"
                                                     for t, v in top))
    for v in views:
        print(f"  view {v.kind:<9} {kb(v.bytes)} sent")
    for every in (25, None):  # a push per 25 events (about 0.2 s of this run), and no view at all
        funnel = Funnel(bus=EventBus(strict=False), svg_renderer=lambda layout: "<svg/>", threaded=False)
        if every:
            for kind in ("graph", "samples", "curves", "review", "controls"):
                funnel.attach(RecordingView(kind))
        costs = []
        for i, e in enumerate(events, start=1):
            started = time.perf_counter()
            funnel._on_event(e)
            if not every or i % every == 0:
                funnel.flush()  # without views: the reducers fold, nothing is pushed
            costs.append(time.perf_counter() - started)
        funnel.close()
        first, last = sum(costs[:tenth]) / tenth, sum(costs[-tenth:]) / tenth
        what = f"a push per {every} events" if every else "reducers only, no view"
        print(f"  {what}: {sum(costs):.2f} s, first tenth {first * 1e6:.0f} us/event, last tenth {last * 1e6:.0f} us/event")
    for message, count in counter.errors.items():
        print(f"  dashboard error {count}x: {message}")
    funnel_log.removeHandler(counter)
    funnel_log.propagate = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--proposals", type=int, default=5)
    parser.add_argument("--copies", type=int, default=40, help="runs in the folder `workbench runs` lists")
    parser.add_argument("--keep", type=Path, help="write the runs here (kept) instead of a temp folder")
    parser.add_argument("--reuse", type=Path, help="measure this run folder instead of training a new one")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="workbench-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        print(f"protocol: hotpotqa {SIZES[0]}/{SIZES[1]}/{SIZES[2]}, seed 0, batch 4, {args.steps} steps, "
              f"up to {args.proposals} proposals; test server over HTTP")
        if args.reuse:
            folder = args.reuse
        else:
            folder, n = train(root / "runs", args.steps, args.proposals)
            print(f"training: {n['wall_s']:.1f} s wall, {n['calls']} calls, status {n['status']}, {n['steps']} steps, "
                  f"val {n['val'][0]} -> {n['val'][1]}, test {n['test'][0]} -> {n['test'][1]}")
            print(f"peak RSS: {n['rss_before_mb']:.0f} MB before fit, {n['rss_after_mb']:.0f} MB after")
        folder_numbers(folder)
        open_run_numbers(folder)
        report_numbers(folder, root / "report.html")
        funnel_numbers(folder)
        runs_numbers(folder, root, args.copies)
        print(f"peak RSS of this process at the end: {rss_mb():.0f} MB")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
