"""Benchmark: what one step of the proposal loop costs, in calls and tokens per role.

Prints measured numbers (not a test). A run of the paper's protocol (batch 4, 2 failed + 2 passing
samples back-propagated, up to 5 proposals per parameter per step) over real HTTP against our
OpenAI-compatible test server, with the response cache OFF, so every call counted is one the
endpoint served. The task is scripted: the task model writes a word in capitals only when the
instruction holds enough "Rule" sentences for that word; the optimizer first proposes something
useless and, once it sees a rejection from the same step, one more rule.

`--task counting` runs BIG-Bench Hard object counting from the shared data (../shared/data/bbh,
or --data) with issue 10's split (20 train / 20 val / 40 test, seeded), batch 4, 2 steps. Its task
model is simulated by the test server: it reasons in about 60 words and counts right when the
instruction holds enough rules for that question (so training has something to fix); backward
and optimizer replies are scripted the same way as above. The prompts are Workbench's real ones.

For each step: calls and tokens (prompt + completion) per role, proposals made, and calls per
stage. The whole run: baseline + steps + final test, evaluations the run's memo answered instead of
the endpoint, and whether any task prompt was sent twice (it must not be). Tokens are the test
server's whitespace word counts (a BPE tokenizer counts roughly 1.3 tokens per English word).
Reference (issue 10, AdalFlow 1.1.3 on the embedded model, 2 steps): 23 calls per step (4 forward,
4 backward, 5 x (1 optimizer + 2 minibatch)) and 14,946 prompt tokens in step 1.

    python bench/proposal_loop.py [--steps 4] [--latency 0.0]
    python bench/proposal_loop.py --task counting [--steps 2] [--data ../shared/data]
    python bench/proposal_loop.py --task counting --freeze count.output_format   # one trained prompt
"""
from __future__ import annotations

import argparse
import re
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Callable

from workbench import LLMCall, Parameter, Pipeline
from workbench.tasks.datasets import Example, shared_data_dir
from workbench.llm import Models
from workbench.testing import OpenAITestServer
from workbench.training.trainer import TrainConfig, Trainer

WORDS = ("apple river stone cloud maple tiger piano ocean lemon north candle garden silver forest rocket "
         "window bridge castle desert engine falcon glacier harbor island").split()


class Shout(Pipeline):
    def __init__(self) -> None:
        self.instruction = Parameter("shout.instruction", "Repeat the word.", description="how to write the word")
        self.node = LLMCall("shout", "{{instruction}}\nWord: {{word}}", [self.instruction])

    def forward(self, word):
        return self.node(word=word)


def helper_reply(text: str, feedback: str, useless: str, rule: str) -> str | None:
    """The backward and optimizer models' scripted replies (None: a task prompt).

    The optimizer first proposes something useless and, once it sees a rejection from the same
    step, one more rule."""
    if text.startswith("You are the backward engine"):
        return feedback
    if text.startswith("You improve one part of a prompt"):
        current = re.search(r"<CURRENT_VALUE>\n(.*?)\n</CURRENT_VALUE>", text, re.S).group(1)
        if "<FAILED" not in text.split("in THIS step", 1)[-1]:
            return f"<PROPOSAL>{current} {useless}</PROPOSAL>"
        return f"<PROPOSAL>{current} Rule {current.count('Rule ') + 1}: {rule}</PROPOSAL>"
    return None


def respond(messages: list[dict]) -> str:
    text = "\n".join(str(m.get("content") or "") for m in messages)
    helper = helper_reply(text, "The word must be written in capital letters; add a rule that says so.",
                          "Say it in French.", "use capitals.")
    if helper is not None:
        return helper
    word = re.search(r"Word: (\w+)", text).group(1)
    needed = sum(map(ord, word)) % 4
    return word[::-1] if "French" in text else word.upper() if needed < text.count("Rule ") else word


def same_text(prediction, target) -> float:
    return float(str(prediction).strip() == target)


COUNTING_FEEDBACK = ("The reply counted an item given with a quantity (such as 'four stoves') as one object, "
                     "and it also counted items that are not of the kind the question asks about. The "
                     "instruction should say to keep only items of the asked kind and to add their stated "
                     "quantities, written as words or digits, before giving the final number.")


def counting_responder(answers: dict[str, str]) -> Callable[[list[dict]], str]:
    """A simulated counting model: about 60 words of reasoning, right when the prompt has enough rules."""
    def respond_counting(messages: list[dict]) -> str:
        text = "\n".join(str(m.get("content") or "") for m in messages)
        helper = helper_reply(text, COUNTING_FEEDBACK, "Be concise.",
                              "add the stated quantity of each item of the asked kind.")
        if helper is not None:
            return helper
        question = text.split("Question: ", 1)[1].strip()
        target = int(answers[question])
        right = sum(map(ord, question)) % 4 < 1 + text.count("Rule ")
        items = question.split("?")[0].split(". How many")[0].removeprefix("I have ")
        return (f"Let me list the items one by one: {items}. I keep only the ones the question asks about "
                f"and add them up, one at a time, checking each quantity. "
                f"Answer: {target if right else target + 1}")
    return respond_counting


class GemmaTokens:
    """Real tokens of every request, by the embedded Gemma 3 270M's tokenizer (the model of issue 10's
    AdalFlow comparison), per phase ("baseline", a step number, "final") and role.

    A chat turn is its content plus 5 tokens of turn markers (<start_of_turn>role\n ... <end_of_turn>\n).
    """

    TURN = 5

    def __init__(self) -> None:
        from llama_cpp import Llama

        from workbench.llm.embedded_server import ensure_model_file
        self._vocab = Llama(str(ensure_model_file()), vocab_only=True, verbose=False)
        self.phase: str | int = "baseline"
        self._lock = threading.Lock()
        self.counts: dict[str | int, Counter[str]] = {}

    def count(self, text: str) -> int:
        return len(self._vocab.tokenize(text.encode("utf-8", "replace"), add_bos=False, special=False))

    def record(self, messages: list[dict], reply: str) -> None:
        text = "\n".join(str(m.get("content") or "") for m in messages)
        role = "backward" if "backward engine" in text[:200] else "optimizer" if "improve one part" in text[:200] \
            else "task"
        prompt = sum(self.count(str(m.get("content") or "")) + self.TURN for m in messages) + 1
        completion = self.count(reply)
        with self._lock:  # the server answers from several threads
            counts = self.counts.setdefault(self.phase, Counter())
            counts[f"{role} prompt"] += prompt
            counts[f"{role} completion"] += completion

    def table(self) -> str:
        roles = ("task", "backward", "optimizer")
        lines = ["\nGemma 3 tokens (prompt + completion) per phase and role, counted with the model's tokenizer",
                 f"{'phase':>8} " + " ".join(f"{r:>18}" for r in roles) + f" {'all':>18}"]
        for phase, c in self.counts.items():
            cells = [f"{c[r + ' prompt']:>8,}+{c[r + ' completion']:<7,}" for r in roles]
            prompt, completion = sum(c[r + " prompt"] for r in roles), sum(c[r + " completion"] for r in roles)
            lines.append(f"{phase:>8} " + " ".join(f"{x:>18}" for x in cells) + f" {prompt:>9,}+{completion:<8,}")
        return "\n".join(lines)


def bbh_counting(data: Path, sizes: tuple[int, int, int], seed: int):
    """The counting task on BBH object counting, with issue 10's split sizes."""
    from workbench.tasks import get_task
    task = get_task("counting")
    splits = task.load(*sizes, seed=seed, source=data / "bbh" / "object_counting.json")
    answers = {e.input["question"].strip(): e.target for e in splits.train + splits.val + splits.test}
    return task.pipeline_for(splits), splits.train, splits.val, splits.test, task.eval_fn, counting_responder(answers)


def shout(_data: Path, _sizes, _seed: int):
    examples = [Example(f"w-{w}", {"word": w}, w.upper(), {}) for w in WORDS]
    return Shout(), examples[:8], examples[8:16], examples[16:], same_text, respond


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=("shout", "counting"), default="shout")
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: 4 shout, 2 counting)")
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--data", type=Path, default=None, help="the shared data folder (default: ../shared/data)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--freeze", nargs="*", default=[], metavar="NAME",
                    help="parameters not to train (e.g. count.output_format: one trained prompt, as AdalFlow's)")
    ap.add_argument("--gemma-tokens", action="store_true",
                    help="also count real tokens with the embedded Gemma 3 270M's tokenizer (needs llama-cpp-python)")
    args = ap.parse_args()
    steps_wanted = args.steps or (2 if args.task == "counting" else 4)
    build = bbh_counting if args.task == "counting" else shout
    pipeline, train, val, test, eval_fn, responder = build(args.data or shared_data_dir(), (20, 20, 40), args.seed)
    for name in args.freeze:
        pipeline.named_parameters()[name].trainable = False
    sent: Counter[str] = Counter()
    gemma = GemmaTokens() if args.gemma_tokens else None

    def counted(messages):
        sent[repr(messages)] += 1
        reply = responder(messages)
        if gemma is not None:
            gemma.record(messages, reply)
        return reply
    with OpenAITestServer(responder=counted, latency_s=args.latency) as server, \
            tempfile.TemporaryDirectory() as tmp:
        models = Models.from_endpoint(server.base_url, "test-model", api_key="x", cache=None)
        trainer = Trainer(pipeline, train, val, test, eval_fn, models, run_dir=f"{tmp}/run",
                          config=TrainConfig(max_steps=steps_wanted, epochs=-(-steps_wanted * 4 // len(train)),
                                             batch_size=4, concurrency=4, max_failed=2, max_correct=2,
                                             max_proposals=5, seed=args.seed))
        steps, last = [], {}
        proposals: Counter[int] = Counter()
        trainer.bus.subscribe(lambda e: proposals.update([e.step]), {"proposal"})
        fields = ("calls", "prompt_tokens", "completion_tokens")

        def on_step(e) -> None:
            usage = e.data["usage"]
            steps.append((e.step, {r: {k: usage[r].get(k, 0) - last.get(r, {}).get(k, 0) for k in fields}
                                   for r in usage}, e.data["accepted"]))
            last.update({r: dict(u) for r, u in usage.items()})
        trainer.bus.subscribe(on_step, {"step_finished"})
        # a step's usage counts from its start (step 1's would otherwise include the baseline)
        trainer.bus.subscribe(lambda e: last.update({r: dict(u) for r, u in trainer.usage().items()}),
                              {"step_started"})
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
        if gemma is not None:
            trainer.bus.subscribe(lambda e: setattr(gemma, "phase", e.step if e.type == "step_started" else "final"),
                                  {"step_started", "step_finished"})
        summary = trainer.fit()
    report(steps, proposals, stages, summary, trainer, server, sent, n_baseline=len(val) + len(test))
    if gemma is not None:
        print(gemma.table())


def report(steps, proposals, stages, summary, trainer, server, sent, *, n_baseline: int) -> None:
    """Print the tables: per step and role, per stage, and the whole run."""
    roles = ("task", "backward", "optimizer")
    print("per step: calls and tokens (prompt + completion) per role")
    print(f"{'step':>4} " + " ".join(f"{r:>22}" for r in roles) + f" {'all calls':>9} {'all tokens':>20} "
          f"{'proposals':>9}  accepted")
    for step, usage, accepted in steps:
        cells, total = [], Counter()
        for r in roles:
            u = usage.get(r, {})
            total.update(u)
            cells.append(f"{u.get('calls', 0):>3} {u.get('prompt_tokens', 0):>8,}+{u.get('completion_tokens', 0):<7,}")
        print(f"{step:>4} " + " ".join(f"{c:>22}" for c in cells) + f" {total['calls']:>9} "
              f"{total['prompt_tokens']:>11,}+{total['completion_tokens']:<8,} {proposals[step]:>9}  "
              f"{', '.join(accepted) or '-'}")
    names = ("forward", "backward", "optimizer", "minibatch", "validation")
    print("\ncalls per stage (served by the endpoint between the events that open and close it)")
    print(f"{'step':>4} " + " ".join(f"{n:>10}" for n in names))
    for step, counts in sorted(stages.items()):
        print(f"{step:>4} " + " ".join(f"{counts[n]:>10}" for n in names))
    total = sum(u.get("calls", 0) for u in summary.usage.values())
    task_prompts = [k for k in sent if "backward engine" not in k and "improve one part" not in k]
    print(f"\nwhole run: {total} calls ({server.request_count} served), baseline val+test {n_baseline}, "
          f"val {summary.baseline['val']:.3f} -> {summary.best_val:.3f}, test {summary.baseline['test']:.3f} -> "
          f"{summary.final['test']:.3f}")
    print(f"evaluations answered by the memo: {trainer.eval_memo.hits}; task prompts sent twice: "
          f"{sum(1 for k in task_prompts if sent[k] > 1)} of {len(task_prompts)}")


if __name__ == "__main__":
    main()
