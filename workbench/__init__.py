"""Workbench: train the prompts of multi-step LLM pipelines with textual gradients (LLM-AutoDiff).

The engine in one look::

    instruction = Parameter("answer.instruction", "Answer the question.", role="instruction")
    answer = LLMCall("answer", "{{instruction}}\\n\\nQuestion: {{question}}", [instruction])
    with use_model(model), trace("s1") as graph:
        prediction = answer(question="...")
"""
from .backward import BackwardEngine, backward_rule
from .errors import WorkbenchError
from .events import Event, EventBus
from .graph import Gradient, Graph, render_svg, to_dot
from .loss import EvalFn, exact_match, f1_score, judge, numeric_match
from .nodes import LLMCall, Tool, tool
from .parameter import Parameter, Role
from .pipeline import FunctionPipeline, Pipeline
from .prompt import PromptTemplate
from .runner import SampleResult, run_batch, run_example
from .selection import select_for_backward
from .tracing import TracedText, trace, use_model
from .approval import AutoApproval, HumanApproval
from .llm import Models
from .trainer import TrainConfig, Trainer

__version__ = "0.1.0"

__all__ = [
    "open_run", "runs",
    "AutoApproval", "HumanApproval", "Models", "TrainConfig", "Trainer",
    "BackwardEngine", "EvalFn", "backward_rule", "judge", "Event", "EventBus", "FunctionPipeline", "Gradient", "Graph", "LLMCall", "Parameter",
    "Pipeline", "PromptTemplate", "Role", "SampleResult", "Tool", "TracedText", "WorkbenchError",
    "exact_match", "f1_score", "numeric_match", "render_svg", "run_batch", "run_example",
    "select_for_backward", "to_dot", "tool", "trace", "use_model",
]


def __getattr__(name: str):
    """`open_run` and `runs` load pandas, so they are imported on first use (a faster `import workbench`)."""
    if name in ("open_run", "runs"):
        from . import results
        return getattr(results, name)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")
