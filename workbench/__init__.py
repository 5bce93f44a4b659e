"""Workbench: train the prompts of multi-step LLM pipelines with textual gradients (LLM-AutoDiff).

The engine in one look::

    instruction = Parameter("answer.instruction", "Answer the question.", role="instruction")
    answer = LLMCall("answer", "{{instruction}}\\n\\nQuestion: {{question}}", [instruction])
    with use_model(model), trace("s1") as graph:
        prediction = answer(question="...")
"""
from .engine.backward import BackwardEngine, backward_rule
from .errors import FeedbackRefused, WorkbenchError
from .records.events import Event, EventBus
from .engine.graph import Gradient, Graph, render_svg, to_dot
from .engine.loss import EvalFn, exact_match, f1_score, judge, numeric_match
from .engine.nodes import LLMCall, Tool, tool
from .engine.parameter import Parameter, Role
from .engine.pipeline import FunctionPipeline, Pipeline
from .engine.prompt import PromptTemplate
from .engine.runner import SampleResult, run_batch, run_example
from .training.selection import select_for_backward
from .engine.tracing import TracedText, trace, use_model
from .training.approval import AutoApproval, HumanApproval
from .llm import Models
from .training.trainer import TrainConfig, Trainer

__version__ = "0.1.0"

__all__ = [
    "branch", "compare", "open_run", "runs",
    "AutoApproval", "HumanApproval", "Models", "TrainConfig", "Trainer",
    "BackwardEngine", "EvalFn", "FeedbackRefused", "backward_rule", "judge", "Event", "EventBus", "FunctionPipeline", "Gradient", "Graph", "LLMCall", "Parameter",
    "Pipeline", "PromptTemplate", "Role", "SampleResult", "Tool", "TracedText", "WorkbenchError",
    "exact_match", "f1_score", "numeric_match", "render_svg", "run_batch", "run_example",
    "select_for_backward", "to_dot", "tool", "trace", "use_model",
]


def branch(run, at_step=None, **options):
    """A new Trainer that goes on from `run`'s state after step `at_step`, with changed settings or the other
    decision on a proposal (workbench.training.branching.branch). A folder `workbench train` started is
    rebuilt from its cli.json when no pipeline= is given."""
    from pathlib import Path

    from .training.branching import branch as branch_run
    if isinstance(run, (str, Path)) and "pipeline" not in options and (Path(run) / "cli.json").is_file():
        from .cli.branch_command import branch_from_cli_json
        return branch_from_cli_json(run, at_step, **options)
    return branch_run(run, at_step, **options)


def compare(runs):
    """Runs side by side: one run gives its whole family (workbench.records.compare.compare)."""
    from .records.compare import compare as compare_runs
    return compare_runs(runs)


def __getattr__(name: str):
    """`open_run` and `runs` load pandas, so they are imported on first use (a faster `import workbench`)."""
    if name in ("open_run", "runs"):
        from .records import results
        return getattr(results, name)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")
