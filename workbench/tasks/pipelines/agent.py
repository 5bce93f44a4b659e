"""A ReAct agent: the LLM alternates thoughts and tool calls until it gives a final answer.

Every step is its own graph node (`step`, `step#2`, ...) and so is every tool call, so the agent's
instruction gets one gradient per step, in order, and feedback reaches a step through the tool
whose argument it wrote.

Policy for replies that break the format: a reply with neither `Action: tool[argument]` nor
`Final Answer: ...` is a parse failure, which the engine records as a failed sample (score 0, the
raw reply as the prediction, feedback aimed at that step): the format is part of what is trained.
An unknown tool or a tool error is not a failure: it becomes the observation, as in ReAct, and the
agent may correct itself. Running out of steps is recorded like a parse failure of the last step.
"""
from __future__ import annotations

import ast
import math
import operator
import re
from typing import NamedTuple, Sequence

from ...errors import ParseError
from ...engine.nodes import LLMCall, tool
from ...engine.parameter import Parameter, Role
from ...engine.pipeline import Pipeline
from ...engine.prompt import PromptTemplate
from .retrieval import BM25, passage

# -- calculator ------------------------------------------------------------------------------------
_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
              ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
              ast.USub: operator.neg, ast.UAdd: operator.pos}
MAX_POWER_BITS = 4096  # keeps `9**9**9` from hanging the run
MAX_EXPRESSION_LENGTH = 200  # and deep nesting from exhausting the stack


def safe_eval(expression: str) -> float | int:
    """Evaluate arithmetic (numbers, + - * / // % **, parentheses) by walking the syntax tree.

    Names, calls, attributes and everything else are rejected, so model-written text never runs as code.
    `^` means a power, as models write it.
    """
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise ValueError(f"the expression is longer than {MAX_EXPRESSION_LENGTH} characters")
    def value(node: ast.AST) -> float | int:
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.operand))
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) * math.log2(abs(left) + 2) > MAX_POWER_BITS:
                raise ValueError("the power is too large")
            result = _OPERATORS[type(node.op)](left, right)
            if isinstance(result, complex):
                raise ValueError("the result is not a real number")
            return result
        raise ValueError(f"only arithmetic is allowed, not {type(node).__name__}")

    try:
        tree = ast.parse(expression.strip().replace("^", "**"), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"not an arithmetic expression: {exc.msg}") from None
    try:
        return value(tree.body)
    except ZeroDivisionError:
        raise ValueError("division by zero") from None
    except OverflowError:
        raise ValueError("the result is too large") from None


def _number_text(result: float | int) -> str:
    if isinstance(result, float) and math.isfinite(result) and result.is_integer():
        return str(int(result))
    return f"{result:.6g}" if isinstance(result, float) else str(result)


# -- the step's reply --------------------------------------------------------------------------------
class AgentStep(NamedTuple):
    """One parsed reply: either an action (tool and argument) or a final answer.

    A tuple on purpose: the engine links a tool call to this step because the argument is one of
    its items. `text` is the reply cut after the action, which is what the scratchpad keeps (models
    often go on to invent their own observation).
    """

    thought: str
    action: str | None
    argument: str | None
    answer: str | None
    text: str


_ACTION = re.compile(r"Action\s*:\s*([A-Za-z_]\w*)\s*\[([^\]\n]*)\]", re.IGNORECASE)
_FINAL = re.compile(r"Final\s+Answer\s*:\s*(\S[^\n]*)", re.IGNORECASE)
_THOUGHT = re.compile(r"Thought\s*:\s*(.*?)(?=\n\s*(?:Action|Final\s+Answer)\s*:|\Z)", re.IGNORECASE | re.DOTALL)


def parse_step(reply: str) -> AgentStep:
    """Read `Thought: ... / Action: tool[argument]` or `Final Answer: ...`; whichever comes first wins."""
    thought_match = _THOUGHT.search(reply)
    thought = thought_match.group(1).strip() if thought_match else ""
    final, action = _FINAL.search(reply), _ACTION.search(reply)
    if final and (action is None or final.start() < action.start()):
        return AgentStep(thought, None, None, final.group(1).strip().rstrip("."), reply[:final.end()].strip())
    if action:
        return AgentStep(thought, action.group(1).lower(), action.group(2).strip(), None,
                         reply[:action.end()].strip())
    raise ValueError("expected `Action: tool[argument]` or `Final Answer: ...`")


DEFAULT_INSTRUCTION = ("Answer the question. You can use tools: think about what you need, call one tool per "
                       "step, and read its observation before the next step.")
DEFAULT_OUTPUT_FORMAT = ("Each reply is either\nThought: <your reasoning>\nAction: <tool>[<argument>]\n"
                         "or, when you know the answer,\nThought: <your reasoning>\nFinal Answer: <a short answer>")
TOOLS_HELP = ("lookup[name or keywords]: finds the document with that title, or the best keyword match.\n"
              "calculator[arithmetic expression]: evaluates +, -, *, /, ** and parentheses.")

TEMPLATE = PromptTemplate(
    system="{{instruction}}\n\nTools:\n{{tools}}\n\n{{output_format}}",
    user="Question: {{question}}\n\n{{scratchpad}}")


class ReActAgent(Pipeline):
    """question -> answer, in at most `max_steps` LLM steps with `lookup` and `calculator` tools."""

    def __init__(self, documents: Sequence[dict], max_steps: int = 6, instruction: str = DEFAULT_INSTRUCTION,
                 output_format: str = DEFAULT_OUTPUT_FORMAT) -> None:
        self.max_steps = max_steps
        self.max_calls_per_sample = max_steps  # the cost forecast's bound (training/forecasting/probe.py)
        self.documents = list(documents)
        self.index = BM25(self.documents)
        self.instruction = Parameter(
            "step.instruction", instruction, Role.INSTRUCTION,
            description="the agent's strategy: how to decide which tool to call next and when to answer; "
                        "the same prompt runs at every step")
        self.output_format = Parameter(
            "step.output_format", output_format, Role.OUTPUT_FORMAT,
            description="the Thought/Action/Final Answer format each step must follow; a reply that breaks "
                        "it fails the sample. The final answer is scored by token F1 against a short gold answer")
        self.step = LLMCall("step", TEMPLATE, [self.instruction, self.output_format], parser=parse_step)

    @tool(name="lookup")
    def lookup(self, query: str) -> str:
        """The document whose title is the query, else the best BM25 match."""
        wanted = query.strip().strip("\"'").lower()
        exact = [d for d in self.documents if d["title"].lower() == wanted]
        found = exact or self.index.search(query, top_k=1)
        return passage(found[0]) if found else f"No document matches {query!r}."

    @tool(name="calculator")
    def calculator(self, expression: str) -> str:
        """Arithmetic; an invalid expression becomes an error observation, never an exception.

        The observation is a sentence, not a bare number: the engine links texts of 12 characters or
        more when they are quoted in a later prompt, and a bare "42" would lose its edge to the next step.
        """
        try:
            return f"The result of {expression} is {_number_text(safe_eval(expression))}."
        except ValueError as exc:
            return f"Error: cannot calculate {expression!r}: {exc}."

    def forward(self, question: str) -> str:
        tools = {"lookup": self.lookup, "calculator": self.calculator}
        scratchpad: list[str] = []
        for _ in range(self.max_steps):
            step = self.step(question=question, tools=TOOLS_HELP, scratchpad="\n".join(scratchpad))
            if step.answer is not None:
                return step.answer
            if step.action in tools:
                observation = tools[step.action](step.argument)
            else:
                observation = f"Error: there is no tool named {step.action!r}; use lookup or calculator."
            scratchpad.append(f"{step.text}\nObservation: {observation}")
        raise ParseError(step.text, f"no final answer after {self.max_steps} steps")
