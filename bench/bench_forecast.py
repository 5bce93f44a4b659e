"""Benchmark: the cost forecast against the actual run, for the ready tasks, over HTTP. Prints numbers.

Each ready task (tasks/registry.py; HotpotQA when ../shared/data holds it) trains on our
OpenAI-compatible test server (the openai SDK over 127.0.0.1; tokens are whitespace words, and the
server's /tokenize route counts them the same way, so token counts are the endpoint's own). The
replies are the scripted ones of tests/test_pipelines_train.py: the task model answers right only
once its prompt says "Be precise."; the optimizer proposes a useless sentence for its first
2 x seed calls, then the precise one, so seeds differ in attempts, rejections and validations.

Per task, seed and role it prints three forecasts of the whole fit: the one made before the run
(`start`), and its re-estimates after the baseline and after step 1 (what was spent before the
re-estimate + what it expects of the rest); each with least / expected / most, the actual spend,
whether it fell inside the range and the expected value's error ((actual - expected) / expected), for
calls and for tokens; then per forecast and role the share inside and the mean absolute error. The
aim: actual inside the range every time, expected within 15%.

    python bench/bench_forecast.py [--seeds 3] [--steps 3] [--tasks classification counting]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the scripted replies of the tests

from test_forecast import http_responder  # noqa: E402

from workbench import Models, TrainConfig, Trainer  # noqa: E402
from workbench.tasks import get_task  # noqa: E402
from workbench.tasks.datasets import DatasetError, hotpotqa_path  # noqa: E402
from workbench.testing import OpenAITestServer  # noqa: E402

SIZES = {"classification": (12, 12, 12), "counting": (8, 8, 8), "multihop": (8, 8, 8), "agent": (8, 8, 8),
         "hotpotqa": (8, 8, 8)}
ROLES = ("task", "backward", "optimizer")
WHEN = ("start", "baseline", "step 1")  # the forecast before the run, its re-estimates after the baseline and step 1


def run_once(name: str, seed: int, steps: int, root: Path) -> list[dict]:
    task = get_task(name)
    train, val, test = task.load(*SIZES[name], seed=seed)
    targets = {e.input["question"].strip(): e.target for e in train + val + test}
    with OpenAITestServer(http_responder(targets, useless=2 * seed)) as server:
        models = Models.from_endpoint(server.base_url, "test-model", cache=None)
        config = TrainConfig(max_steps=steps, epochs=2, batch_size=4, seed=seed, max_failed=2, max_correct=1,
                             max_proposals=3)
        trainer = Trainer(task.make_pipeline(), train, val, test, task.eval_fn, models, config=config,
                          run_dir=root / f"{name}-{seed}", task=name)
        made = {}
        trainer.bus.subscribe(lambda e: made.setdefault(e.data.get("after", "start"), e.data),
                              {"forecast", "forecast_revised"})
        summary = trainer.fit()
        models.close()
    rows = []
    for when in WHEN:
        if when not in made:
            continue
        f = made[when]
        for role in ROLES:
            u, r = summary.usage.get(role) or {}, f["roles"][role]
            before = f.get("spent", {}).get(role) or {}  # what the run had spent when this forecast was made
            for measure, keys in (("calls", ("calls",)), ("tokens", ("prompt_tokens", "completion_tokens"))):
                actual = sum(u.get(k, 0) or 0 for k in keys)
                spent = sum(before.get(k, 0) or 0 for k in keys)
                rng = {how: None if any(r[k][how] is None for k in keys) else spent + sum(r[k][how] for k in keys)
                       for how in ("least", "expected", "most")}
                inside = rng["least"] <= actual + 1e-9 and (rng["most"] is None or actual <= rng["most"] + 1e-9)
                rows.append({"task": name, "seed": seed, "when": when, "role": role, "measure": measure, **rng,
                             "actual": actual, "inside": inside, "status": summary.status,
                             "error": (actual - rng["expected"]) / rng["expected"] if rng["expected"] else None})
    return rows


def _hotpotqa_here() -> bool:
    try:
        return hotpotqa_path().is_file()
    except DatasetError as exc:
        print(f"hotpotqa skipped: {exc}", file=sys.stderr)
        return False


def fmt(x) -> str:
    return "no cap" if x is None else f"{x:,.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--tasks", nargs="+", default=list(SIZES))
    args = parser.parse_args(argv)
    tasks = [t for t in args.tasks if not t.startswith("hotpotqa") or _hotpotqa_here()]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in tasks:
            for seed in range(args.seeds):
                rows += run_once(name, seed, args.steps, Path(tmp))
    print(f"{'task':<15}{'seed':>4} {'forecast':<9}{'role':<10}{'measure':<8}{'least':>9}{'expected':>10}{'most':>11}"
          f"{'actual':>9}  inside  error")
    for r in rows:
        error = "n/a" if r["error"] is None else f"{r['error']:+.0%}"
        print(f"{r['task']:<15}{r['seed']:>4} {r['when']:<9}{r['role']:<10}{r['measure']:<8}{fmt(r['least']):>9}"
              f"{fmt(r['expected']):>10}{fmt(r['most']):>11}{fmt(r['actual']):>9}  {'yes' if r['inside'] else 'NO':<6}"
              f"  {error}")
    print()
    for measure in ("calls", "tokens"):
        for when in WHEN:
            for role in ROLES:
                mine = [r for r in rows if r["role"] == role and r["measure"] == measure and r["when"] == when]
                errors = [abs(r["error"]) for r in mine if r["error"] is not None]
                within = sum(e <= 0.15 for e in errors)
                print(f"{measure:<7} {when:<9}{role:<10} inside {sum(r['inside'] for r in mine)}/{len(mine)}; "
                      f"expected within 15%: {within}/{len(errors)}; mean |error| {statistics.mean(errors):.0%}"
                      if errors else f"{measure:<7} {when:<9}{role:<10} inside {sum(r['inside'] for r in mine)}/{len(mine)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
