"""Eval functions and the loss node.

An eval function maps (prediction, target) to a score in [0, 1] and says in one line what it
measures: the loss feedback quotes that line, so the backward engine knows whether "wrong" means
"not the same words" or "not the same number". Built-ins carry their description; wrap your own
with `EvalFn(fn, "what it measures")` (else its docstring's first line is used). `judge(criteria)`
is an LLM judge for open-ended answers: its reasoning becomes the loss feedback.
"""
from __future__ import annotations

import functools
import math
import numbers
import re
import string
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable

from ..errors import ConfigError, WorkbenchError
from .graph import Graph, LossRecord
from ..llm.types import ask
from .tracing import current_model, find_sources

if TYPE_CHECKING:
    from ..llm.types import ChatModel


class EvalFunctionError(WorkbenchError):
    """An eval function returned something that is not a finite number in [0, 1]."""


class Score(float):
    """A score that carries the eval function's own explanation (an LLM judge's reasoning)."""

    feedback: str

    def __new__(cls, value: float, feedback: str = "") -> "Score":
        obj = super().__new__(cls, value)
        obj.feedback = feedback
        return obj


class EvalFn:
    """An eval function with a one-line description of what it measures."""

    def __init__(self, fn: Callable[[Any, Any], Any], description: str | None = None, *,
                 name: str | None = None) -> None:
        if not callable(fn):
            raise ConfigError(f"eval function must be callable(prediction, target), got {fn!r}")
        self.fn = fn
        functools.update_wrapper(self, fn, updated=())  # __module__/__qualname__ identify it (eval memo)
        self.name = name or getattr(fn, "__name__", type(fn).__name__)
        if name:
            self.__name__ = self.__qualname__ = name
        self.description = description or _first_doc_line(fn) or f"the score `{self.name}` gives"

    def __call__(self, prediction: Any, target: Any) -> Any:
        return self.fn(prediction, target)

    def __repr__(self) -> str:
        return f"EvalFn({self.name!r}, {self.description!r})"


def _first_doc_line(fn: Any) -> str:
    doc = getattr(fn, "__doc__", None) if not isinstance(fn, type) else None
    return doc.strip().splitlines()[0].strip() if isinstance(doc, str) and doc.strip() else ""


def describe(eval_fn: Any) -> str:
    """What an eval function measures, in one line."""
    if isinstance(eval_fn, EvalFn):
        return eval_fn.description
    return _first_doc_line(eval_fn) or f"the score `{getattr(eval_fn, '__name__', 'eval function')}` gives"


def check_score(value: Any, sample_id: str) -> float:
    """The eval function's result as a float in [0, 1]; anything else stops with an error."""
    if isinstance(value, numbers.Real) or _is_numpy_bool(value):  # bool, int, float, numpy numbers and bools
        number = float(value)
        if math.isfinite(number) and 0.0 <= number <= 1.0:
            return value if isinstance(value, Score) else number
    raise EvalFunctionError(f"the eval function returned {value!r} ({type(value).__name__}) for sample "
                            f"{sample_id!r}: it must return a finite number in [0, 1]")


def _is_numpy_bool(value: Any) -> bool:
    """`np.int64(3) == 3` gives a numpy bool, which is no `numbers.Real` (numpy is not imported for this)."""
    return type(value).__module__ == "numpy" and type(value).__name__ in ("bool_", "bool")


def normalize(text: Any) -> str:
    """Lower case, no punctuation or articles, single spaces (SQuAD-style)."""
    text = str(text).lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _exact_match(prediction: Any, target: Any) -> float:
    return float(normalize(prediction) == normalize(target))


def _numeric_match(prediction: Any, target: Any) -> float:
    numbers_found = re.findall(r"-?\d+(?:\.\d+)?", str(prediction).replace(",", ""))
    if not numbers_found:
        return 0.0
    try:
        return float(abs(float(numbers_found[-1]) - float(str(target).strip())) < 1e-9)
    except ValueError:
        return 0.0


def _f1_score(prediction: Any, target: Any) -> float:
    pred, gold = normalize(prediction).split(), normalize(target).split()
    common = Counter(pred) & Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def _contains_match(prediction: Any, target: Any) -> float:
    return float(normalize(target) in normalize(prediction))


exact_match = EvalFn(_exact_match, "1 if the answer equals the expected answer once lower-cased, without "
                     "punctuation and articles (a/an/the); else 0", name="exact_match")
numeric_match = EvalFn(_numeric_match, "1 if the last number in the answer equals the expected number; else 0",
                       name="numeric_match")
f1_score = EvalFn(_f1_score, "word overlap (F1) between the answer and the expected answer, from 0 to 1",
                  name="f1_score")
contains_match = EvalFn(_contains_match, "1 if the answer contains the expected answer (lower-cased, without "
                        "punctuation and articles); else 0", name="contains_match")

EVAL_FUNCTIONS: dict[str, EvalFn] = {"exact_match": exact_match, "numeric_match": numeric_match,
                                     "f1": f1_score, "contains": contains_match}


def get_eval_fn(name_or_fn: "str | EvalFn | Callable[[Any, Any], Any]", *, describe: str | None = None) -> EvalFn:
    """A built-in by name, or your callable(prediction, target) with what it measures."""
    if callable(name_or_fn):
        if isinstance(name_or_fn, EvalFn) and describe is None:
            return name_or_fn
        return EvalFn(name_or_fn, describe or (name_or_fn.description if isinstance(name_or_fn, EvalFn) else None))
    fn = EVAL_FUNCTIONS.get(name_or_fn) if isinstance(name_or_fn, str) else None
    if fn is None:
        raise ConfigError(f"unknown eval function {name_or_fn!r}; choose one of {sorted(EVAL_FUNCTIONS)} "
                          f"or pass a callable(prediction, target) -> float")
    return fn if describe is None else EvalFn(fn.fn, describe, name=fn.name)


# -- an LLM judge -------------------------------------------------------------------------------
JUDGE_SYSTEM = """You grade one answer of an AI pipeline against criteria. Reply with your reasoning \
in at most 4 sentences, then a last line `SCORE: <a number from 0 to 1>` (1 = fully meets the criteria)."""

JUDGE_PROMPT = """### Criteria
{criteria}

### Reference answer (may be empty)
{target}

### Answer to grade
{prediction}"""

_SCORE = re.compile(r"score\s*[:=]\s*(-?\d+(?:\.\d+)?)\s*(/\s*(\d+(?:\.\d+)?)|%)?", re.I)


class JudgeError(WorkbenchError):
    """The judge's reply held no score in [0, 1], even after one reminder."""


def parse_judgement(reply: str) -> Score | None:
    """`SCORE: 0.7` (also `7/10`, `70%`) at the end of the reply, with the text before it as feedback."""
    matches = list(_SCORE.finditer(reply))
    if not matches:
        return None
    m = matches[-1]
    value = float(m.group(1))
    if m.group(3):
        value = value / float(m.group(3)) if float(m.group(3)) else math.nan
    elif m.group(2):
        value /= 100
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        return None
    return Score(value, reply[: m.start()].strip() or reply.strip())


def judge(criteria: str, *, model: "ChatModel | None" = None, name: str = "judge") -> EvalFn:
    """An eval function that asks an LLM to score an open-ended answer in [0, 1] against `criteria`.

    Its reasoning is the loss feedback. `model` defaults to the model the pipeline runs on (inside
    the trainer, the task model); a stronger, separate judge model is better.
    """
    if not isinstance(criteria, str) or not criteria.strip():
        raise ConfigError("judge(criteria): say in words what a good answer does")

    def score(prediction: Any, target: Any) -> Score:
        chat = model or current_model()
        if chat is None:
            raise ConfigError(f"LLM judge {name!r} has no model: pass judge(..., model=...)")
        messages = [{"role": "system", "content": JUDGE_SYSTEM},
                    {"role": "user", "content": JUDGE_PROMPT.format(criteria=criteria, target=target or "",
                                                                    prediction=prediction)}]
        reply = ask(chat, messages).text
        result = parse_judgement(reply)
        if result is None:  # one reminder, then give up on this sample
            messages += [{"role": "assistant", "content": reply},
                         {"role": "user", "content": "End with one line `SCORE: <number from 0 to 1>`."}]
            reply = ask(chat, messages).text
            result = parse_judgement(reply)
        if result is None:
            raise JudgeError(f"LLM judge {name!r} gave no score in [0, 1]: {reply[:200]!r}")
        return result

    score.__name__ = name
    score.__qualname__ = f"{name}({criteria.strip()!r})"  # a judge with other criteria is another eval function
    return EvalFn(score, f"an LLM judge's score from 0 to 1 for: {criteria.strip()}")


# -- the loss node ------------------------------------------------------------------------------
def add_loss(graph: Graph, prediction: Any, target: Any, score: float, *, pass_threshold: float,
             measure: str = "", error: str | None = None) -> LossRecord:
    """Append the loss node, linked to the node(s) that produced the prediction.

    With `error` (the pipeline or the eval function raised) and no node behind the prediction,
    the loss links to the node that failed, or else, as a guess, to the newest node: the error
    happened after its output.
    """
    node = graph.new_node("loss", "loss", inputs={"prediction": str.__str__(str(prediction)),
                                                  "target": str.__str__(str(target))})
    node.output, node.status = f"score {score:g}", "done"
    sources = find_sources(graph, prediction, exclude=node.id)
    exact = [(s, g) for s, g in sources if not g]
    for source, guess in exact or sources[:1]:
        graph.add_edge(source, node.id, "prediction", guess=guess)
    if error is not None and not sources:
        earlier = [n for n in graph.nodes if n.id != node.id and n.kind != "loss"]
        failed = [n for n in earlier if n.status == "failed"]
        if failed:
            graph.add_edge(failed[-1].id, node.id, "prediction")
        elif earlier:
            graph.add_edge(earlier[-1].id, node.id, "prediction", guess=True)
    graph.loss = LossRecord(score=float(score), prediction=str.__str__(str(prediction)), target=str.__str__(str(target)),
                            passed=error is None and score >= pass_threshold, measure=measure,  # a raise never passes
                            feedback=getattr(score, "feedback", None) or None, error=error)
    graph.notify(node)
    return graph.loss
