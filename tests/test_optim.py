"""Optimizer pieces: parsing proposals, constraints, demo selection."""
from workbench import Parameter
from workbench.tasks.datasets import Example
from workbench.optim import DemoOptimizer, check_constraints
from workbench.optim.demo_optimizer import Demo, format_demos
from workbench.optim.text_optimizer import parse_proposals


def test_parse_proposals_takes_tagged_values_and_ignores_echoes_of_the_prompt():
    assert parse_proposals("ok <PROPOSAL> A </PROPOSAL> and <PROPOSAL>B</PROPOSAL>") == ["A", "B"]
    assert parse_proposals("Just a better instruction.") == ["Just a better instruction."]
    assert parse_proposals("### Parameter: x.instruction\nRole: instruction <CURRENT_VALUE> ...") == []
    assert parse_proposals("<PROPOSAL>cut off at the token limit") == ["cut off at the token limit"]


def test_constraints_keep_placeholders_required_text_and_length():
    p = Parameter("a.instruction", "Use {{style}} and cite sources.", constraints=["cite sources"], max_length=40)
    assert check_constraints(p, "Use a style and cite sources.") == "drops the placeholders ['style']"
    assert "must be kept" in check_constraints(p, "Use {{style}} always.")
    assert "over the limit of 40" in check_constraints(p, "Use {{style}} and cite sources. " + "x" * 30)
    assert check_constraints(p, p.value) == "identical to the current value"
    assert check_constraints(p, "Use {{style}}; cite sources.") is None


def test_demo_optimizer_prefers_demos_like_the_errors():
    p = Parameter("c.demos", "", role="demos")
    opt = DemoOptimizer(num_demos=1)
    opt.add_raw(p, [Example("e1", {"question": "How many apples and pears?"}, "NUM", {}),
                    Example("e2", {"question": "Who wrote Hamlet?"}, "HUM", {})])

    class Failed:
        sample_id, inputs = "f1", {"question": "Who painted the ceiling?"}
    text = opt.propose(p, [Failed()], step=1)
    assert text == "Example 1:\nQuestion: Who wrote Hamlet?\nAnswer: HUM\n\n"
    assert format_demos([]) == ""
    assert Demo("x", (("question", "q"),), "Answer: 3", "bootstrapped").render() == "Question: q\nAnswer: 3"


def test_a_demo_is_never_bootstrapped_from_an_output_clipped_for_display():
    from workbench.engine.nodes import DISPLAY_LIMIT, display_text, is_clipped
    from workbench.engine.graph import Graph

    long_output = "x" * (DISPLAY_LIMIT + 10)
    assert is_clipped(display_text(long_output)) and not is_clipped(display_text("short answer"))
    p = Parameter("c.demos", "", role="demos")

    class Passed:
        passed = True

        def __init__(self, sample_id, output):
            self.sample_id = sample_id
            self.graph = Graph(sample_id)
            node = self.graph.new_node("c", "llm", inputs={"question": "q?"}, parameters=["c.demos"])
            node.output, node.status = display_text(output), "done"

    opt = DemoOptimizer(num_demos=2)
    assert opt.collect(p, [Passed("long", long_output), Passed("short", "Answer: 3")]) == 1
    assert list(opt.pool["c.demos"]) == ["short"]
