"""A small task for the CLI tests, loaded by `workbench train --module tests/cli_task.py:shout_task`,
and the deterministic responders our OpenAI-compatible test server answers it with.

The task model writes a word in capitals only when the instruction holds enough "Rule" sentences
for that word's bucket (so accuracy climbs one rule at a time). The optimizer's first idea in each
step is useless ("in French"); each later attempt in the step adds one rule more than it has seen,
until one passes the minibatch gate. Every reply is a function of the messages alone, so a replayed
or resumed run makes exactly the same decisions.
"""
import re
import sys
from pathlib import Path

from workbench.tasks.datasets import Example
from workbench.llm.probe import PROBE_USER
from workbench.tasks import Task

sys.path.insert(0, str(Path(__file__).parent))  # loaded by file path from a CLI subprocess
from scripted_tasks import Shout, same_text  # noqa: E402

WORDS = ["apple", "river", "stone", "cloud", "maple", "tiger", "piano", "ocean", "lemon", "north", "candle",
         "garden", "silver", "forest", "rocket", "window", "bridge", "castle", "desert", "engine", "falcon",
         "glacier", "harbor", "island", "jungle", "kettle", "ladder", "magnet", "needle", "orange"]


def bucket(word: str) -> int:
    return sum(map(ord, word)) % 4


def sample(n, seed):
    return [Example(f"w-{w}", {"word": w}, w.upper(), {}) for w in WORDS[:n]]


def shout_task():
    return Task("shout", "Write the word in capitals.", Shout, same_text, 1.0, sample=sample,
                sample_sizes=(8, 8, 8), sample_name="cli_task.WORDS")


# -- responders of the test server ------------------------------------------------------------------

def _text(messages):
    return "\n".join(str(m.get("content") or "") for m in messages)


def task_reply(messages):
    text = _text(messages)
    word = re.search(r"Word: (\w+)", text).group(1)
    if "French" in text:
        return word[::-1]
    return word.upper() if bucket(word) < text.count("Rule ") else word


def backward_reply(messages):
    return "The word must be written in capital letters; add a rule that says so."


def optimizer_reply(messages):
    """The first idea of each step is useless ("in French"); after a rejection in the same step it adds
    one rule more than any value it has seen (so a step can climb, and the minibatch gate decides)."""
    text = _text(messages)
    current = re.search(r"<CURRENT_VALUE>\n(.*?)\n</CURRENT_VALUE>", text, re.S).group(1)
    this_step = text.split("in THIS step", 1)[-1].split("### Constraints", 1)[0]
    if "<FAILED" not in this_step:
        return f"<PROPOSAL>{current} Say it in French.</PROPOSAL>"
    have = current.count("Rule ")
    most = max([int(n) for n in re.findall(r"Rule (\d+)", text)] or [0])
    rules = " ".join(f"Rule {i}: use capitals." for i in range(have + 1, max(most, have) + 2))
    return f"<PROPOSAL>{current} {rules}</PROPOSAL>"


def respond(messages):
    """One endpoint serves all three roles; the system prompt tells them apart (and it answers the
    system-message probe of workbench.llm.probe)."""
    if messages and messages[-1].get("content") == PROBE_USER:
        return "OK"
    system = str(messages[0].get("content") or "") if messages else ""  # a system message, or one folded in
    if system.startswith("You are the backward engine"):
        return backward_reply(messages)
    if system.startswith("You improve one part of a prompt"):
        return optimizer_reply(messages)
    return task_reply(messages)
