"""Every exception the package raises on bad use derives from WorkbenchError and names the bad input."""
import ast
from pathlib import Path

import pytest

from workbench import Parameter, Pipeline
from workbench.training.approval import HumanApproval, PendingProposal
from workbench.errors import BadArgumentError, NotFoundError, WorkbenchError
from workbench.optim import TextOptimizer
from workbench.testing import OpenAITestServer
from workbench.testing.openai_test_server import FaultPlan

PACKAGE = Path(__file__).resolve().parent.parent / "workbench"
# (AttributeError is left out: a module's or class's __getattr__ must raise it)
BUILTIN_ERRORS = {"ValueError", "KeyError", "TypeError", "AssertionError", "RuntimeError", "IndexError",
                  "LookupError", "Exception"}
# Raised on purpose, and not a misuse of the package: the ready-made pipelines' parsers and tools
# raise ValueError on a bad *reply*, which fails that sample (score 0) like any user pipeline's code;
# a ScriptedModel's responder returning a non-str fails that sample the same way.
NOT_BAD_USE = {"tasks/pipelines/classification.py", "tasks/pipelines/counting.py", "tasks/pipelines/multihop_rag.py",
               "tasks/pipelines/agent.py", "tasks/pipelines/sentiment.py", "llm/scripted.py"}


def builtin_raises(tree: ast.AST) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id in BUILTIN_ERRORS:
                found.append((exc.id, node.lineno))
        elif isinstance(node, ast.Assert):
            found.append(("assert", node.lineno))
    return sorted(found, key=lambda f: f[1])


def test_the_audit_finds_builtin_raises_and_asserts():
    source = "def f(x):\n    assert x\n    if x > 1:\n        raise ValueError('no')\n    raise KeyError\n"
    assert builtin_raises(ast.parse(source)) == [("assert", 2), ("ValueError", 4), ("KeyError", 5)]


def test_the_package_raises_no_builtin_exception_on_bad_use():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(PACKAGE).as_posix()
        if where in NOT_BAD_USE:
            continue
        bad += [f"workbench/{where}:{line}: {kind}" for kind, line in builtin_raises(ast.parse(path.read_text()))]
    assert bad == [], "raise a WorkbenchError subclass (errors.py) instead"


class Two(Pipeline):
    def __init__(self):
        self.a = Parameter("two.a", "A")
        self.b = Parameter("two.b", "B")

    def forward(self, x):
        return x


def test_loading_an_unknown_parameter_name_is_a_not_found_error_that_lists_the_known_ones():
    with pytest.raises(NotFoundError) as caught:
        Two().load_state({"two.c": "C"})
    assert isinstance(caught.value, (WorkbenchError, KeyError))
    assert str(caught.value) == "Two has no parameters named ['two.c']; it has ['two.a', 'two.b']"
    with pytest.raises(KeyError):  # old `except KeyError` clauses still catch it
        Two().load_state({"x": "y"})


@pytest.mark.parametrize("call, words", [
    (lambda: TextOptimizer(None, style="poem"), "'poem'"),
    (lambda: HumanApproval(default="maybe"), "'maybe'"),
    (lambda: PendingProposal("p1", "a.b", "old", "new").edit(""), "p1"),
    (lambda: FaultPlan(rate=2.0), "2.0"),
    (lambda: FaultPlan(kinds=["418"]), "418"),
])
def test_bad_arguments_are_workbench_errors_and_value_errors_naming_the_value(call, words):
    with pytest.raises(BadArgumentError, match=words) as caught:
        call()
    assert isinstance(caught.value, WorkbenchError) and isinstance(caught.value, ValueError)


def test_an_unknown_approval_action_names_it():
    from workbench.training.approval import ApprovalDesk
    desk = ApprovalDesk()
    desk.open(PendingProposal("p1", "a.b", "old", "new"))
    with pytest.raises(BadArgumentError, match="'maybe'"):
        desk.answer("p1", "maybe")


def test_a_test_server_that_was_never_started_says_so():
    with pytest.raises(WorkbenchError, match="not running"):
        OpenAITestServer().port


def test_a_pipeline_without_forward_stops_the_run_with_one_clear_error(tmp_path):
    from scripted_tasks import TEST, TRAIN, VAL, backward, same_text, task
    from workbench.errors import NotDefinedError
    from workbench.llm.models import Models
    from workbench.training.trainer import TrainConfig, Trainer

    class NoForward(Pipeline):
        def __init__(self):
            self.instruction = Parameter("nf.instruction", "Repeat the word.")

    trainer = Trainer(NoForward(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward),
                      config=TrainConfig(max_steps=1, batch_size=4, concurrency=2), run_dir=tmp_path / "run")
    with pytest.raises(NotDefinedError, match="NoForward must define forward"):
        trainer.fit()  # not 4 "failed" samples scored 0 and a run that trains on nothing
    with pytest.raises(NotImplementedError):
        NoForward()(word="x")
