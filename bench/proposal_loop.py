"""Benchmark: what one step of the proposal loop costs, in calls and tokens per role.

Prints measured numbers (not a test). A run of the paper's protocol (batch 4, 2 failed + 2 passing
samples back-propagated, up to 5 proposals per parameter per step) over real HTTP against our
OpenAI-compatible test server, with the response cache OFF, so every call counted is one the
endpoint served. The task is scripted: the task model writes a word in capitals only when the
instruction holds enough "Rule" sentences for that word; the optimizer first proposes something
useless and, once it sees a rejection from the same step, one more rule.

For each step: calls and prompt tokens per role, proposals made, and evaluations the run's memo
answered instead of the endpoint. The whole run: baseline + steps + final test, and whether any
task prompt was sent twice (it must not be). Reference (issue 10, AdalFlow 1.1.3 on the embedded
model, 2 steps): 23 calls per step (4 forward, 4 backward, 5 x (1 optimizer + 2 minibatch)).

    python bench/proposal_loop.py [--steps 4] [--latency 0.0]
"""
from __future__ import annotations

import argparse
import re
import tempfile
from collections import Counter

from workbench import LLMCall, Parameter, Pipeline
from workbench.datasets import Example
from workbench.llm import Models
from workbench.testing import OpenAITestServer
from workbench.trainer import TrainConfig, Trainer

WORDS = ("apple river stone cloud maple tiger piano ocean lemon north candle garden silver forest rocket "
         "window bridge castle desert engine falcon glacier harbor island").split()


class Shout(Pipeline):
    def __init__(self) -> None:
        self.instruction = Parameter("shout.instruction", "Repeat the word.", description="how to write the word")
        self.node = LLMCall("shout", "{{instruction}}\nWord: {{word}}", [self.instruction])

    def forward(self, word):
        return self.node(word=word)


def respond(messages: list[dict]) -> str:
    text = "\n".join(str(m.get("content") or "") for m in messages)
    if text.startswith("You are the backward engine"):
        return "The word must be written in capital letters; add a rule that says so."
    if text.startswith("You improve one part of a prompt"):
        current = re.search(r"<CURRENT_VALUE>\n(.*?)\n</CURRENT_VALUE>", text, re.S).group(1)
        if "<FAILED" not in text.split("in THIS step", 1)[-1]:
            return f"<PROPOSAL>{current} Say it in French.</PROPOSAL>"
        return f"<PROPOSAL>{current} Rule {current.count('Rule ') + 1}: use capitals.</PROPOSAL>"
    word = re.search(r"Word: (\w+)", text).group(1)
    needed = sum(map(ord, word)) % 4
    return word[::-1] if "French" in text else word.upper() if needed < text.count("Rule ") else word


def same_text(prediction, target) -> float:
    return float(str(prediction).strip() == target)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--latency", type=float, default=0.0)
    args = ap.parse_args()
    examples = [Example(f"w-{w}", {"word": w}, w.upper(), {}) for w in WORDS]
    train, val, test = examples[:8], examples[8:16], examples[16:]
    sent: Counter[str] = Counter()

    def counted(messages):
        sent[repr(messages)] += 1
        return respond(messages)
    with OpenAITestServer(responder=counted, latency_s=args.latency) as server, \
            tempfile.TemporaryDirectory() as tmp:
        models = Models.from_endpoint(server.base_url, "test-model", api_key="x", cache=None)
        trainer = Trainer(Shout(), train, val, test, same_text, models, run_dir=f"{tmp}/run",
                          config=TrainConfig(max_steps=args.steps, epochs=-(-args.steps // 2), batch_size=4,
                                             concurrency=4, max_failed=2, max_correct=2, max_proposals=5))
        steps, last = [], {}
        proposals: Counter[int] = Counter()
        trainer.bus.subscribe(lambda e: proposals.update([e.step]), {"proposal"})

        def on_step(e) -> None:
            usage = e.data["usage"]
            steps.append((e.step, {r: {k: usage[r].get(k, 0) - last.get(r, {}).get(k, 0)
                                       for k in ("calls", "prompt_tokens")} for r in usage}, e.data["accepted"]))
            last.update({r: dict(u) for r, u in usage.items()})
        baseline_calls = {}
        trainer.bus.subscribe(lambda e: baseline_calls.update(
            {"calls": sum(u.get("calls", 0) for u in trainer.usage().values())}), {"checkpoint"})
        trainer.bus.subscribe(on_step, {"step_finished"})
        # what the endpoint served between two events belongs to the stage the second one closes
        closes = {"selection": "forward", "backward_done": "backward", "proposal": "optimizer",
                  "no_proposal": "optimizer", "minibatch": "minibatch", "validation": "validation"}
        stages: dict[int, Counter[str]] = {}
        served = [0]

        def on_event(e) -> None:
            now = server.request_count
            if e.type in closes and e.step > 0:
                stages.setdefault(e.step, Counter())[closes[e.type]] += now - served[0]
            served[0] = now
        trainer.bus.subscribe(on_event, {*closes, "step_started", "update", "decision", "step_finished"})
        summary = trainer.fit()
    roles = ("task", "backward", "optimizer")
    print(f"{'step':>4} " + " ".join(f"{r + ' calls':>15}" for r in roles) + f" {'all':>5} {'proposals':>9} "
          + " ".join(f"{r + ' tokens':>16}" for r in roles) + "  accepted")
    for step, usage, accepted in steps:
        calls = [usage.get(r, {}).get("calls", 0) for r in roles]
        tokens = [usage.get(r, {}).get("prompt_tokens", 0) for r in roles]
        print(f"{step:>4} " + " ".join(f"{c:>15}" for c in calls) + f" {sum(calls):>5} {proposals[step]:>9} "
              + " ".join(f"{t:>16,}" for t in tokens) + f"  {', '.join(accepted) or '-'}")
    names = ("forward", "backward", "optimizer", "minibatch", "validation")
    print("\ncalls per stage (served by the endpoint between the events that open and close it)")
    print(f"{'step':>4} " + " ".join(f"{n:>10}" for n in names))
    for step, counts in sorted(stages.items()):
        print(f"{step:>4} " + " ".join(f"{counts[n]:>10}" for n in names))
    total = sum(u.get("calls", 0) for u in summary.usage.values())
    task_prompts = [k for k in sent if "Word: " in k and "backward engine" not in k and "improve one part" not in k]
    print(f"\nwhole run: {total} calls ({server.request_count} served), baseline val+test {len(val) + len(test)}, "
          f"val {summary.baseline['val']:.3f} -> {summary.best_val:.3f}, test {summary.baseline['test']:.3f} -> "
          f"{summary.final['test']:.3f}")
    print(f"evaluations answered by the memo: {trainer.eval_memo.hits}; task prompts sent twice: "
          f"{sum(1 for k in task_prompts if sent[k] > 1)} of {len(task_prompts)}")


if __name__ == "__main__":
    main()
