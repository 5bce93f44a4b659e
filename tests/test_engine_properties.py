"""Property-based: templates, parameter and node names, traced text. Only documented errors, never a crash."""
from hypothesis import given, settings, strategies as st

from workbench import LLMCall, Parameter, PromptTemplate, trace, use_model
from workbench.errors import TemplateError, WorkbenchError
from workbench.engine.graph import Graph
from workbench.llm.scripted import ScriptedModel
from workbench.engine.prompt import placeholders
from workbench.engine.tracing import TracedText

any_text = st.text(max_size=60)
slot_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
template_text = st.lists(st.one_of(any_text, slot_names.map(lambda n: "{{" + n + "}}"),
                                   st.sampled_from(["{", "}", "{{", "}}", "{{ x }}", "{{1}}", "\\", "\\1", "$0"])),
                         max_size=8).map("".join)


@settings(max_examples=150, deadline=None)
@given(template_text, template_text, st.dictionaries(slot_names, any_text, max_size=6))
def test_templates_render_or_name_the_missing_variable(user, system, variables):
    template = PromptTemplate(user=user, system=system or None)
    try:
        messages = template.render(variables, node="n")
    except TemplateError as exc:
        assert exc.variable in template.variables() and exc.variable not in variables
        return
    assert set(template.variables()) <= set(variables)
    assert [m["role"] for m in messages] == (["system"] if system else []) + ["user"]


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(slot_names, any_text, min_size=1, max_size=4))
def test_values_are_inserted_verbatim_never_expanded_again(values):
    """A value holding `{{x}}`, backslashes or regex group references goes in as written."""
    template = PromptTemplate(user="|".join("{{" + k + "}}" for k in values))
    assert template.render(values, node="n")[0]["content"] == "|".join(values.values())


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30), any_text)
def test_parameter_names_are_accepted_or_refused_with_a_workbench_error(name, value):
    try:
        p = Parameter(name, value)
    except WorkbenchError:
        return
    assert p.name == name and p.to_dict()["value"] == value


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=20), template_text, st.lists(st.from_regex(r"[a-z]{1,3}(\.[a-z]{1,3})?", fullmatch=True),
                                                      max_size=3))
def test_llm_nodes_build_or_refuse_with_a_workbench_error_and_record_under_their_name(name, template, names):
    try:
        params = [Parameter(n, "v") for n in names]
        node = LLMCall(name, template, params, model=ScriptedModel(lambda m: "reply"))
    except WorkbenchError:
        return
    inputs = {v: "x" for v in node.template.variables() if v not in {p.name.split(".")[-1] for p in params}}
    with use_model(ScriptedModel(lambda m: "reply")), trace("s") as graph:
        out = node(**inputs)
    assert out == "reply" and out.sources == (name,) and [n.id for n in graph.nodes] == [name]
    assert Graph.from_dict(graph.to_dict()).to_dict() == graph.to_dict()


OPS = {
    "strip": lambda s: s.strip(), "lower": lambda s: s.lower(), "upper": lambda s: s.upper(),
    "title": lambda s: s.title(), "casefold": lambda s: s.casefold(), "replace": lambda s: s.replace("a", "b"),
    "slice": lambda s: s[1:-1], "index": lambda s: s[0] if s else s, "add": lambda s: s + "!",
    "radd": lambda s: "!" + s, "mod": lambda s: "<%s>" % s, "format": lambda s: format(s, "^9"),
    "fstring": lambda s: f"{s}", "mul": lambda s: s * 2, "str": lambda s: str(s),
}


@settings(max_examples=200, deadline=None)
@given(any_text, st.lists(st.sampled_from(sorted(OPS)), min_size=1, max_size=5))
def test_traced_text_gives_the_same_text_as_str_and_keeps_its_node(text, ops):
    traced, plain = TracedText(text, "node"), text
    for op in ops:
        traced, plain = OPS[op](traced), OPS[op](plain)
    assert traced == plain and type(plain) is str
    assert isinstance(traced, TracedText) and traced.sources == ("node",)


@settings(max_examples=100, deadline=None)
@given(any_text, st.sampled_from(["split", "rsplit", "splitlines", "partition"]))
def test_every_piece_of_a_split_keeps_its_node(text, how):
    pieces = getattr(TracedText(text, "n"), how)(*([" "] if how == "partition" else []))
    assert list(pieces) == list(getattr(text, how)(*([" "] if how == "partition" else [])))
    assert all(isinstance(p, TracedText) and p.sources == ("n",) for p in pieces)


values = st.recursive(st.one_of(st.none(), st.integers(), st.floats(allow_nan=True), any_text),
                      lambda inner: st.one_of(st.lists(inner, max_size=3), st.tuples(inner, inner),
                                              st.dictionaries(st.text(max_size=3), inner, max_size=3)), max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(st.lists(values, min_size=1, max_size=4))
def test_any_tool_outputs_and_inputs_link_without_crashing_and_only_backwards(outputs):
    """Tools returning odd values (None, floats, nested containers) feed each other; linking never fails."""
    from workbench import tool
    made = [tool(lambda x, out=out: out, name=f"t{i}") for i, out in enumerate(outputs)]
    with trace("s", {"x": "the input"}) as graph:
        previous = "the input"
        for t in made:
            previous = t(previous)
    order = [n.id for n in graph.nodes]
    assert graph.topological_order() and all(order.index(e.source) < order.index(e.target) for e in graph.edges)
