"""Benchmark: the LLM calls a family of three branches pays, against the same three what-ifs as runs of
their own. Prints measured numbers (not a test).

Every run talks over HTTP (the real openai SDK) to our OpenAI-compatible test server, whose replies are
functions of the messages (tests/cli_task.py: the shout task, rules added one at a time). The parent
trains 6 steps (8 training words, batches of 2, two epochs); a person rejects whatever reaches them in
step 3. The three what-ifs:

    A  accept p3-7 (the first proposal the person rejected in step 3)   branch after step 2
    B  two proposals per step instead of five                            branch after step 4
    C  train on to step 8                                               branch after step 6 (the last)

and, to show the floor, D: the parent again at its last step with nothing changed (no call expected).

Columns: what the branch paid (family: the branches read the family's evaluation memo and share the
parent's response cache); the same what-if as a new run from step 0 with a fresh cache (what a person
did before branching existed); and as a new run from step 0 sharing one response cache with the parent
(the default user cache does this across runs, but a new run still pays the evaluations the memo
would have saved and every call a changed prompt makes).

    python bench/bench_branch_family.py
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import cli_task  # noqa: E402
from scripted_tasks import Shout, same_text  # noqa: E402

from workbench.llm.cache import ResponseCache  # noqa: E402
from workbench.llm.models import Models  # noqa: E402
from workbench.testing import OpenAITestServer  # noqa: E402
from workbench.training.approval import CallbackApproval, Decision  # noqa: E402
from workbench.training.branching import branch  # noqa: E402
from workbench.training.trainer import TrainConfig, Trainer  # noqa: E402

TRAIN = cli_task.sample(8, 0)
VAL = [cli_task.Example(f"v-{w}", {"word": w}, w.upper(), {}) for w in cli_task.WORDS[12:18]]
TEST = [cli_task.Example(f"t-{w}", {"word": w}, w.upper(), {}) for w in cli_task.WORDS[18:24]]
CONFIG = {"max_steps": 6, "epochs": 2, "batch_size": 2, "concurrency": 4}


class Person(CallbackApproval):
    """Rejects what reaches them in step 3, accepts the rest; `keep` is accepted without validation."""

    def __init__(self, keep: str | None = None) -> None:
        super().__init__(self.answer)
        self.keep, self.last = keep, None

    def answer(self, pending):
        self.last = pending.proposal_id
        if pending.proposal_id == self.keep:
            return Decision("accept", "person")
        return Decision("reject" if pending.proposal_id.startswith("p3-") else "accept", "person")

    @property
    def validate(self) -> bool:
        return self.last != self.keep


def calls(server: OpenAITestServer, work) -> tuple[int, object]:
    before = server.request_count
    result = work()
    return server.request_count - before, result


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-branch-"))
    with OpenAITestServer(responder=cli_task.respond) as server:
        def models(cache):
            return Models.from_endpoint(server.base_url, "test-model", api_key="k", cache=cache, max_concurrency=4,
                                        max_retries=1, fold_system=False)

        def run(folder, cache, approval=None, **changes):
            trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, models(cache),
                              config=TrainConfig(**{**CONFIG, **changes}), approval=approval or Person(),
                              run_dir=root / folder)
            return trainer.fit()

        family_cache = ResponseCache(root / "family-cache.sqlite")
        parent_calls, _ = calls(server, lambda: run("family/parent", family_cache))
        parent = root / "family" / "parent"
        family_models = models(family_cache)
        what_ifs = {
            "A accept p3-7 after step 2": ({"proposal": "p3-7", "decision": "accept"}, {"keep": "p3-7"}),
            "B max_proposals=2 after step 4": ({"at_step": 4, "max_proposals": 2}, {"max_proposals": 2}),
            "C on to step 8 after step 6": ({"at_step": 6, "max_steps": 8}, {"max_steps": 8}),
            "D last step, nothing changed": ({"at_step": 6}, {}),
        }
        shared_cache = ResponseCache(root / "shared-cache.sqlite")
        calls(server, lambda: run("shared/parent", shared_cache))  # the parent, filling the shared cache
        rows = []
        for i, (label, (branch_args, scratch)) in enumerate(what_ifs.items()):
            def make_branch():
                child = branch(parent, pipeline=Shout(), train=TRAIN, val=VAL, test=TEST, eval_fn=same_text,
                               models=family_models, approval=Person(), **branch_args)
                return child.fit()
            paid, _ = calls(server, make_branch)
            keep = scratch.pop("keep", None)
            fresh, _ = calls(server, lambda: run(f"fresh/{i}", ResponseCache(root / f"fresh-{i}.sqlite"),
                                                 Person(keep), **scratch))
            shared, _ = calls(server, lambda: run(f"shared/{i}", shared_cache, Person(keep), **scratch))
            rows.append((label, paid, fresh, shared))

    print(f"parent run (6 steps): {parent_calls} calls\n")
    print(f"{'what-if':<34} {'branch':>7} {'new run, fresh cache':>21} {'new run, shared cache':>22}")
    for label, paid, fresh, shared in rows:
        print(f"{label:<34} {paid:>7} {fresh:>21} {shared:>22}")
    three = rows[:3]
    print(f"{'A+B+C':<34} {sum(r[1] for r in three):>7} {sum(r[2] for r in three):>21} "
          f"{sum(r[3] for r in three):>22}")
    print(f"\nfamily of three branches with the parent: {parent_calls + sum(r[1] for r in three)} calls; "
          f"parent + three new runs: {parent_calls + sum(r[2] for r in three)} (fresh caches), "
          f"{parent_calls + sum(r[3] for r in three)} (one shared cache)")
    print("(A: the branch validates the proposal it keeps in full, which the new runs' person, accepting without\n"
          " validation, does not pay)")
    print(f"(run folders under {root})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
