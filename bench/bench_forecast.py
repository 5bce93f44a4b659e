"""Benchmark: the cost forecast against the actual run, for the ready tasks, over HTTP. Prints numbers.

Each ready task (tasks/registry.py; HotpotQA when ../shared/data holds it) trains on our
OpenAI-compatible test server (the openai SDK over 127.0.0.1; tokens are whitespace words, and the
server's /tokenize route counts them the same way, so token counts are the endpoint's own). The
replies are the scripted ones of tests/test_pipelines_train.py: the task model answers right only
once its prompt says "Be precise."; the optimizer proposes a useless sentence for its first
2 x seed calls, then the precise one, so seeds differ in attempts, rejections and validations.

Per task, seed and role it prints the forecast (least / expected / most), the actual spend, whether
it fell inside the range and the expected value's error ((actual - expected) / expected), for calls
and for tokens; then the share inside and the mean absolute error per role. The aim: actual inside
the range every time, expected within 15%.

    python bench/bench_forecast.py [--seeds 3] [--steps 3] [--tasks classification counting]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the scripted replies of the tests

from workbench import Models, TrainConfig, Trainer  # noqa: E402
from workbench.engine.backward import BACKWARD_SYSTEM  # noqa: E402
from workbench.optim.text_optimizer import OPTIMIZER_SYSTEM  # noqa: E402
from workbench.tasks import get_task  # noqa: E402
from workbench.tasks.datasets import DatasetError, hotpotqa_path  # noqa: E402
from workbench.testing import OpenAITestServer  # noqa: E402

SIZES = {"classification": (12, 12, 12), "counting": (8, 8, 8), "multihop": (8, 8, 8), "agent": (8, 8, 8),
         "hotpotqa": (8, 8, 8)}
ROLES = ("task", "backward", "optimizer")


def responder(targets: dict[str, str], useless: int):
    """One endpoint for the three roles (told apart by their system prompts), as the tests script them."""
    from test_pipelines_train import scripted_models
    from test_forecast import stubborn_optimizer
    scripted = scripted_models(targets)
    optimizer = stubborn_optimizer(useless)

    def respond(messages):
        system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
        if system.startswith(BACKWARD_SYSTEM[:40]):
            return scripted.backward.respond(messages)
        if system.startswith(OPTIMIZER_SYSTEM[:40]):
            return optimizer(messages)
        return scripted.task.respond(messages)
    return respond


def run_once(name: str, seed: int, steps: int, root: Path) -> list[dict]:
    task = get_task(name)
    train, val, test = task.load(*SIZES[name], seed=seed)
    targets = {e.input["question"].strip(): e.target for e in train + val + test}
    with OpenAITestServer(responder(targets, useless=2 * seed)) as server:
        models = Models.from_endpoint(server.base_url, "test-model", cache=None)
        config = TrainConfig(max_steps=steps, epochs=2, batch_size=4, seed=seed, max_failed=2, max_correct=1,
                             max_proposals=3)
        trainer = Trainer(task.make_pipeline(), train, val, test, task.eval_fn, models, config=config,
                          run_dir=root / f"{name}-{seed}", task=name)
        forecast = trainer.forecast()
        summary = trainer.fit()
        models.close()
    rows = []
    for role in ROLES:
        f, u = forecast.roles[role], summary.usage.get(role) or {}
        tokens = (u.get("prompt_tokens", 0) or 0) + (u.get("completion_tokens", 0) or 0)
        for measure, rng, actual in (("calls", f.calls, u.get("calls", 0)), ("tokens", f.tokens, tokens)):
            rows.append({"task": name, "seed": seed, "role": role, "measure": measure, "least": rng.least,
                         "expected": rng.expected, "most": rng.most, "actual": actual, "inside": rng.holds(actual),
                         "error": (actual - rng.expected) / rng.expected if rng.expected else None,
                         "status": summary.status})
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
    print(f"{'task':<15}{'seed':>4} {'role':<10}{'measure':<8}{'least':>9}{'expected':>10}{'most':>11}"
          f"{'actual':>9}  inside  error")
    for r in rows:
        error = "n/a" if r["error"] is None else f"{r['error']:+.0%}"
        print(f"{r['task']:<15}{r['seed']:>4} {r['role']:<10}{r['measure']:<8}{fmt(r['least']):>9}"
              f"{fmt(r['expected']):>10}{fmt(r['most']):>11}{fmt(r['actual']):>9}  {'yes' if r['inside'] else 'NO':<6}"
              f"  {error}")
    print()
    for measure in ("calls", "tokens"):
        for role in ROLES:
            mine = [r for r in rows if r["role"] == role and r["measure"] == measure]
            errors = [abs(r["error"]) for r in mine if r["error"] is not None]
            within = sum(e <= 0.15 for e in errors)
            print(f"{measure:<7} {role:<10} inside {sum(r['inside'] for r in mine)}/{len(mine)}; expected within 15%: "
                  f"{within}/{len(errors)}; mean |error| {statistics.mean(errors):.0%}" if errors else
                  f"{measure:<7} {role:<10} inside {sum(r['inside'] for r in mine)}/{len(mine)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
