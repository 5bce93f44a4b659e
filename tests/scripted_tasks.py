"""A tiny task whose score depends on what the instruction says, for trainer tests.

The task model writes the word in capitals only when the instruction asks for UPPERCASE; the
backward model always says so; the optimizer first proposes a useless instruction and, once it sees
a failed proposal in its prompt, the right one. All replies are functions of the messages alone,
so a run replayed from the cache (or resumed) is identical.
"""
import re

from workbench import LLMCall, Parameter, Pipeline
from workbench.tasks.datasets import Example
from workbench.llm.scripted import ScriptedModel

WORDS = ["apple", "river", "stone", "cloud", "maple", "tiger", "piano", "ocean", "lemon", "north",
         "candle", "garden", "silver", "forest", "rocket", "window"]


def examples(prefix, words):
    return [Example(f"{prefix}-{w}", {"word": w}, w.upper(), {}) for w in words]


TRAIN, VAL, TEST = examples("tr", WORDS[:8]), examples("va", WORDS[8:12]), examples("te", WORDS[12:])
BAD, GOOD = "Repeat the word, in French.", "Repeat the word in UPPERCASE letters."


class Shout(Pipeline):
    def __init__(self):
        self.instruction = Parameter("shout.instruction", "Repeat the word.",
                                     description="tells the model how to write the word")
        self.node = LLMCall("shout", "{{instruction}}\nWord: {{word}}", [self.instruction])

    def forward(self, word):
        return self.node(word=word)


def same_text(prediction, target):
    """Case matters here, unlike exact_match."""
    return float(str(prediction).strip() == target)


def task(messages):
    text = messages[-1]["content"]
    word = re.search(r"Word: (\w+)", text).group(1)
    return word.upper() if "uppercase" in text.lower() else word


def backward(messages):
    return "The output must be in capital letters; the instruction never says so."


class Optimizer:
    """Bad proposal until a failure shows in its prompt, then the good one; keeps its prompts."""
    def __init__(self):
        self.prompts = []

    def __call__(self, messages):
        text = messages[-1]["content"]
        self.prompts.append(text)
        return f"<PROPOSAL>{GOOD if '<FAILED' in text else BAD}</PROPOSAL>"


def backward_model() -> ScriptedModel:
    """Names its target, so a test can see which prompt was sent for which target."""
    def respond(messages):
        text = messages[-1]["content"]
        m = re.search(r"### Parameter: (\S+)", text) or re.search(r"### Target value from node (\S+)", text)
        return f"feedback for {m.group(1)}"
    return ScriptedModel(respond, role="backward")


def route(optimizer):
    """One endpoint serving all three roles (for an HTTP test server); the system prompt tells them apart."""
    from workbench.engine.backward import BACKWARD_SYSTEM
    from workbench.optim.text_optimizer import OPTIMIZER_SYSTEM

    def respond(messages):
        system = messages[0]["content"] if messages[0]["role"] == "system" else ""
        if system.startswith(BACKWARD_SYSTEM[:40]):
            return backward(messages)
        if system.startswith(OPTIMIZER_SYSTEM[:40]):
            return optimizer(messages)
        return task(messages)
    return respond
