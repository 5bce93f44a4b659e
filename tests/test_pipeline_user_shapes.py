"""Pipelines as users write them in a notebook (audit 2): fan-out, odd names, loops."""
import contextvars
from concurrent.futures import ThreadPoolExecutor

import pytest

from workbench import LLMCall, Parameter, Pipeline, run_batch
from workbench.tasks.datasets import Example
from workbench.errors import WorkbenchError
from workbench.llm.scripted import ScriptedModel


class FanOut(Pipeline):
    """Asks the same node about each part of the question at once, in a thread pool."""

    def __init__(self, keep_context: bool):
        self.keep_context = keep_context
        self.instruction = Parameter("part.instruction", "Answer the part.", description="how to answer a part")
        self.part = LLMCall("part", "{{instruction}}\nPart: {{part}}", [self.instruction])

    def forward(self, question):
        with ThreadPoolExecutor(2) as pool:
            if self.keep_context:
                futures = [pool.submit(contextvars.copy_context().run, lambda p: self.part(part=p), p)
                           for p in question.split(";")]
            else:
                futures = [pool.submit(lambda p: self.part(part=p), p) for p in question.split(";")]
            answers = [f.result() for f in futures]
        return answers[0] + " and " + answers[1]


def test_a_thread_pool_inside_forward_is_named_as_the_cause_with_its_remedy():
    """A node called in a thread the pipeline started sees neither the trainer's model nor the
    trace; the run stopped with 'has no model: pass model=... or use_model', which the user had
    never had to do, so the message named the wrong cause."""
    model = ScriptedModel(lambda messages: messages[-1]["content"].split("Part: ")[1].upper())
    sample = [Example("s1", {"question": "rome;paris"}, "ROME and PARIS", {})]
    with pytest.raises(WorkbenchError, match=r"thread.*contextvars\.copy_context\(\)\.run"):
        run_batch(FanOut(keep_context=False), sample, lambda p, t: float(p == t), model)
    # the remedy it names: each call is recorded as its own node and linked to the loss
    result = run_batch(FanOut(keep_context=True), sample, lambda p, t: float(p == t), model).results[0]
    assert result.status == "ok"
    assert sorted(n.id for n in result.graph.nodes) == ["loss", "part", "part#2"]
    assert sorted(e.source for e in result.graph.edges if e.target == "loss") == ["part", "part#2"]


def test_a_parameter_name_whose_last_part_cannot_be_a_slot_says_so():
    """`answer.output-format` is a valid Parameter name, but its slot `output-format` can never be
    written as a {{slot}}; the node said only 'have no {{slot}} in its template (slots: [...])',
    although the user had written {{output-format}} in it."""
    fmt = Parameter("answer.output-format", "", role="output_format")
    with pytest.raises(WorkbenchError, match=r"'output-format'.*letters, digits and '_'.*'answer\.output_format'"):
        LLMCall("answer", "{{output-format}}\nQuestion: {{question}}", [fmt])


def test_a_parameter_name_with_a_non_ascii_letter_is_refused_as_such():
    """'réponse' starts with a letter and holds only letters, yet the refusal said names 'must start
    with a letter and use letters, digits, ...'."""
    with pytest.raises(WorkbenchError, match="ASCII letter"):
        Parameter("réponse.instruction", "Réponds.")
