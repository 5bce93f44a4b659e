"""Graphviz gets every node name right: the real `dot` never fails and SVG ids are `node-<id>` exactly."""
import shutil
import xml.etree.ElementTree as ET

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from workbench import LLMCall, Parameter, Pipeline, run_example, tool
from workbench.tasks.datasets import Example
from workbench.engine.graph import Graph, layout_graph, render_svg, to_dot
from workbench.llm.scripted import ScriptedModel
from workbench.engine.loss import exact_match

ODD_NAMES = ["ends with \\", "prep\\N", "\\G and \\L", 'say "hi"', "<b>bold</b>", "a & b", "&lt;not an entity&gt;",
             "two\nlines", "crlf\r\nline", "tab\there", "café ☕ 😀", "  spaced  ", "[brackets] {braces}; -> edge"]


def svg_ids(graph_or_dict) -> set[str]:
    if shutil.which("dot") is None:
        pytest.fail("Graphviz `dot` is not installed: run the README's setup (apt-get install graphviz)")
    svg = render_svg(graph_or_dict)
    return {el.get("id") for el in ET.fromstring(svg.encode()).iter() if el.get("id")}


def test_odd_node_names_from_a_real_pipeline_render_with_exact_ids():
    tools = [tool(lambda text, i=i: text + str(i), name=name) for i, name in enumerate(ODD_NAMES)]
    first = LLMCall("first\\N", "{{instruction}} {{q}}", [Parameter("first.instruction", "Go.")])

    class Odd(Pipeline):
        def __init__(self):
            self.first, self.tools = first, tools

        def forward(self, q):
            text = self.first(q=q)
            for t in self.tools:
                text = t(text)
            return text

    r = run_example(Odd(), Example("s", {"q": "?"}, "x", {}), exact_match, ScriptedModel(lambda m: "start"))
    ids = svg_ids(r.graph)
    names = ["first\\N", *ODD_NAMES]
    assert {f"node-{n}" for n in names + ["loss"]} <= ids
    for a, b in zip(names, names[1:]):
        assert f"edge-{a}-{b}" in ids
    assert f"edge-{ODD_NAMES[-1]}-loss" in ids


def test_guessed_edges_are_dashed_and_stay_guesses_only_if_every_sample_guessed():
    def graph(guess: bool) -> Graph:
        g = Graph("s")
        g.new_node("a", "llm")
        g.new_node("b", "function")
        g.add_edge("a", "b", "x", guess=guess)
        return g
    assert layout_graph([graph(True), graph(True)])["edges"][0]["guess"] is True
    assert layout_graph([graph(True), graph(False)])["edges"][0]["guess"] is False
    assert "style=dashed" in to_dot(graph(True)) and "style=dashed" not in to_dot(graph(False))
    assert "edge-a-b" in svg_ids(graph(True))


def test_an_exact_link_replaces_a_guess_for_the_same_value():
    g = Graph("s")
    g.new_node("a", "llm")
    g.new_node("b", "llm")
    g.add_edge("a", "b", "x", guess=True)
    g.add_edge("a", "b", "x")
    g.add_edge("a", "b", "x", guess=True)
    assert [(e.source, e.guess) for e in g.edges] == [("a", False)]


# any printable text (no '#', which numbers repeated calls, no control characters but newline and tab)
node_names = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="#")
                     | st.sampled_from("\n\r\t\\\"<>&;"), min_size=1, max_size=20).filter(lambda s: s.strip())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(node_names, min_size=1, max_size=4, unique=True))
def test_any_node_name_renders_with_exact_ids(names):
    g = Graph("s")
    for name in names:
        g.new_node(name, "function")
        g.new_node(name, "llm", parameters=[f"{name[:3]}.x"])  # the second call: `name#2`
    for a, b in zip(names, names[1:]):
        g.add_edge(a, b, "x", guess=len(a) % 2 == 0)
    ids = svg_ids(g)
    for name in names:
        assert {f"node-{name}", f"node-{name}#2"} <= ids
    for a, b in zip(names, names[1:]):
        assert f"edge-{a}-{b}" in ids
