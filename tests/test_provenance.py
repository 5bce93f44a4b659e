"""Provenance survives the string handling people write, and the content fallback never over-links."""
import copy
import json
import pickle

import pytest

from workbench import BackwardEngine, LLMCall, Parameter, Pipeline, run_example, to_dot, tool, trace, use_model
from workbench.tasks.datasets import Example
from workbench.llm.scripted import ScriptedModel
from workbench.engine.loss import exact_match
from workbench.engine.tracing import TracedText

from scripted_tasks import backward_model


def shouting_model() -> ScriptedModel:
    """Replies '  <WORD>!  ' with padding and punctuation, as models do."""
    return ScriptedModel(lambda m: "  " + m[-1]["content"].split("Word: ")[-1].upper() + "!  \n", role="task")


class PostProcessed(Pipeline):
    """One LLM node whose output the user cleans up with ordinary string code."""

    def __init__(self, clean):
        self.instruction = Parameter("shout.instruction", "Repeat the word.", description="how to write it")
        self.node = LLMCall("shout", "{{instruction}}\nWord: {{word}}", [self.instruction])
        self.clean = clean

    def forward(self, word):
        return self.clean(self.node(word=word))


CLEANUPS = {
    "strip().lower()": lambda t: t.strip().lower(),
    "split()[0]": lambda t: t.split()[0],
    "[:-1] after strip": lambda t: t.strip()[:-1],
    "replace": lambda t: t.replace("!", "").strip(),
    "rstrip/lstrip/casefold": lambda t: t.rstrip().lstrip().casefold(),
    "title": lambda t: t.strip().title(),
    "splitlines": lambda t: t.splitlines()[0].strip(),
    "rsplit": lambda t: t.rsplit("!", 1)[0].strip(),
    "partition": lambda t: t.partition("!")[0].strip(),
    "removesuffix": lambda t: t.strip().removesuffix("!"),
    "indexing": lambda t: t.strip()[0],
    "plus on the right": lambda t: "Answer: " + t.strip(),
    "plus on the left": lambda t: t.strip() + " (final)",
    "percent on the right": lambda t: "Answer: %s" % t.strip(),
    "traced template percent": lambda t: (t.strip() + " %s") % "x",
    "traced join": lambda t: t.strip()[-1].join(["a", "b"]),
    "traced format": lambda t: (t.strip() + " {}").format("x"),
    "format()": lambda t: format(t.strip(), ">20"),
    "bare f-string": lambda t: f"{t.strip()}",
    "f-string with spec": lambda t: f"{t.strip():>12}".strip(),
    "str()": lambda t: str(t).strip(),
    "multiply": lambda t: t.strip() * 2,
}


@pytest.mark.parametrize("name", list(CLEANUPS))
def test_post_processed_output_keeps_its_node_and_the_parameter_gets_a_gradient(name):
    pipeline = PostProcessed(CLEANUPS[name])
    r = run_example(pipeline, Example("s", {"word": "apple"}, "pear", {}), exact_match, shouting_model())
    assert [(e.source, e.target, e.guess) for e in r.graph.edges] == [("shout", "loss", False)], name
    params = pipeline.named_parameters()
    BackwardEngine(backward_model()).backward(r.graph, params)
    assert [g.text for g in params["shout.instruction"].gradients] == ["feedback for shout.instruction"]
    assert r.graph.disconnected == []


def test_traced_text_is_still_plain_text_for_comparison_hashing_pickle_and_json():
    t = TracedText("Paris", "answer")
    assert t == "Paris" and hash(t) == hash("Paris") and {t: 1}["Paris"] == 1
    assert type(pickle.loads(pickle.dumps(t))) is str and type(copy.deepcopy(t)) is str
    assert json.dumps({"a": t.lower()}) == '{"a": "paris"}'
    assert t.node_id == "answer" and t.upper().sources == ("answer",)
    assert [p.sources for p in TracedText("a b", "n").split()] == [("n",), ("n",)]
    assert t.find("r") == 2 and t.startswith("P") and not isinstance(t.encode(), str)


def test_a_value_combining_several_traced_texts_links_to_all_of_them():
    a, b = TracedText("alpha", "first"), TracedText("beta", "second")
    assert (a + " and " + b).sources == ("first", "second")
    assert ("%s/%s" % (a, b)) == "alpha/beta"  # a tuple on the right: a plain str, found by content below
    assert TracedText(", ", "sep").join([a, b]).sources == ("sep", "first", "second")
    assert "{} {x}".format(a, x=b) == "alpha beta"
    assert TracedText("{} {x}", "t").format(a, x=b).sources == ("t", "first", "second")

    first = LLMCall("first", "{{instruction}} {{q}}", [Parameter("first.instruction", "One.")])
    second = LLMCall("second", "{{instruction}} {{q}}", [Parameter("second.instruction", "Two.")])
    final = LLMCall("final", "{{instruction}} {{both}}", [Parameter("final.instruction", "Join.")])

    class Both(Pipeline):
        def __init__(self):
            self.first, self.second, self.final = first, second, final

        def forward(self, q):
            x, y = self.first(q=q), self.second(q=q)
            return self.final(both=x.strip() + " | " + y.strip())

    replies = iter(["  red  ", " green ", "red | green"])
    r = run_example(Both(), Example("s", {"q": "colours?"}, "x", {}), exact_match,
                    ScriptedModel(lambda m: next(replies)))
    assert {(e.source, e.target, e.guess) for e in r.graph.edges} == {
        ("first", "final", False), ("second", "final", False), ("final", "loss", False)}


def test_fstring_with_text_around_a_long_value_links_by_content_through_derived_text():
    """Python rebuilds this f-string as a plain str; the stripped text was remembered, so it is found."""
    summarise = LLMCall("summarise", "{{instruction}} {{doc}}", [Parameter("summarise.instruction", "Sum up.")])
    answer = LLMCall("answer", "{{instruction}} {{context}}", [Parameter("answer.instruction", "Answer.")])

    class Sum(Pipeline):
        def __init__(self):
            self.summarise, self.answer = summarise, answer

        def forward(self, doc):
            summary = self.summarise(doc=doc).strip()
            return self.answer(context=f"Summary: {summary}\nAnswer briefly.")

    replies = {"summarise": "   the river floods every spring   ", "answer": "spring"}
    model = ScriptedModel(lambda m: replies["summarise" if "Sum up." in m[-1]["content"] else "answer"])
    r = run_example(Sum(), Example("s", {"doc": "a long text"}, "spring", {}), exact_match, model)
    assert ("summarise", "answer", "context", False) in {(e.source, e.target, e.input, e.guess) for e in r.graph.edges}


def test_content_fallback_links_one_producer_of_an_equal_text_and_marks_it_a_guess():
    """Three calls answer the same text; a plain copy of it is not linked to all three."""
    step = LLMCall("step", "{{instruction}} {{n}}", [Parameter("step.instruction", "Say yes.")])
    final = LLMCall("final", "{{instruction}} {{last}}", [Parameter("final.instruction", "Echo.")])

    class Same(Pipeline):
        def __init__(self):
            self.step, self.final = step, final

        def forward(self, q):
            outs = [self.step(n=i) for i in range(3)]
            plain = "".join(ch for ch in outs[-1])  # rebuilt char by char: a plain str equal to all three
            return self.final(last=plain)

    r = run_example(Same(), Example("s", {"q": "?"}, "x", {}), exact_match,
                    ScriptedModel(lambda m: "yes" if "Say yes." in m[-1]["content"] else "done"))
    into_final = [(e.source, e.guess) for e in r.graph.edges if e.target == "final"]
    assert into_final == [("step#3", True)]
    assert 'style=dashed' in to_dot(r.graph)


def test_a_disconnected_parameter_is_reported_with_the_node_where_the_path_ends():
    """An f-string around a short answer cannot be tracked: the backward pass says so, by name."""
    class Lost(Pipeline):
        def __init__(self):
            self.instruction = Parameter("shout.instruction", "Repeat the word.")
            self.node = LLMCall("shout", "{{instruction}}\nWord: {{word}}", [self.instruction])
            self.frozen = Parameter("shout.format", "One word.", role="output_format", trainable=False)

        def forward(self, word):
            w = self.node(word=word).strip()
            return f"The word is {w}"

    pipeline = Lost()
    r = run_example(pipeline, Example("s", {"word": "fig"}, "FIG", {}), exact_match, shouting_model())
    assert r.graph.edges == []
    seen = []
    grads = BackwardEngine(backward_model()).backward(r.graph, pipeline.named_parameters(), on_disconnected=seen.append)
    assert grads == [] and [d.to_dict() for d in seen] == [{
        "parameter": "shout.instruction", "node_id": "shout", "sample_id": "s", "reason": seen[0].reason}]
    assert "not linked to any later node" in seen[0].reason and "`+`" in seen[0].reason
    assert r.graph.to_dict()["disconnected"][0]["parameter"] == "shout.instruction"


def test_disconnection_names_the_last_node_the_output_reaches():
    @tool
    def log_it(text: str) -> str:
        return "logged " + text

    class Sideline(Pipeline):
        def __init__(self):
            self.instruction = Parameter("note.instruction", "Write a note.")
            self.note = LLMCall("note", "{{instruction}} {{word}}", [self.instruction])
            self.answer = LLMCall("answer", "{{instruction}} {{word}}", [Parameter("answer.instruction", "Answer.")])

        def forward(self, word):
            log_it(self.note(word=word))  # the note goes to a log, never to the answer
            return self.answer(word=word)

    pipeline = Sideline()
    model = ScriptedModel(lambda m: "a note" if "note" in m[-1]["content"] else "ANSWER")
    r = run_example(pipeline, Example("s", {"word": "w"}, "x", {}), exact_match, model)
    BackwardEngine(backward_model()).backward(r.graph, pipeline.named_parameters())
    assert [(d.parameter, d.node_id) for d in r.graph.disconnected] == [("note.instruction", "log_it")]
    assert "`note` reaches `log_it`" in r.graph.disconnected[0].reason


def test_tool_list_output_items_are_traced_and_each_piece_links():
    @tool
    def search(q: str) -> list[str]:
        return ["doc one about " + q, "doc two"]

    picked = []

    class Pick(Pipeline):
        def forward(self, q):
            docs = search(q)
            picked.append(docs[1])
            return docs[1].upper()

    r = run_example(Pick(), Example("s", {"q": "rivers"}, "DOC TWO", {}), exact_match, ScriptedModel(lambda m: ""))
    assert isinstance(picked[0], TracedText) and picked[0].sources == ("search",)
    assert [(e.source, e.target, e.guess) for e in r.graph.edges] == [("search", "loss", False)]


def test_traced_text_outside_a_trace_is_harmless():
    t = TracedText("  Hello  ", "n")
    assert t.strip() == "Hello" and t.strip().sources == ("n",)
    with use_model(ScriptedModel(lambda m: "x")), trace("s") as graph:
        pass
    assert graph.derived_texts == {}


def test_a_parameter_is_disconnected_only_when_none_of_its_calls_reaches_the_loss():
    """Hop 1's query is used, hop 2's is thrown away: the parameter still learns from hop 1."""
    class Hops(Pipeline):
        def __init__(self):
            self.instruction = Parameter("query.instruction", "Write a query.")
            self.query = LLMCall("query", "{{instruction}} {{hop}}", [self.instruction])

        def forward(self, q):
            first = self.query(hop=1)
            self.query(hop=2)
            return first.upper()

    pipeline = Hops()
    r = run_example(pipeline, Example("s", {"q": "?"}, "x", {}), exact_match, ScriptedModel(lambda m: "a query"))
    BackwardEngine(backward_model()).backward(r.graph, pipeline.named_parameters())
    assert r.graph.disconnected == [] and len(pipeline.instruction.gradients) == 1


def test_text_traced_in_an_earlier_run_is_matched_by_content_in_this_one():
    kept = TracedText("a summary from yesterday's run", "old-node")  # its node is not in this graph
    summarise = LLMCall("summarise", "{{instruction}} {{doc}}", [Parameter("summarise.instruction", "Sum up.")])
    with use_model(ScriptedModel(lambda m: "a summary from yesterday's run")), trace("s") as graph:
        summarise(doc="x")
        summarise(doc=kept)
    assert [(e.source, e.target, e.guess) for e in graph.edges] == [("summarise", "summarise#2", False)]


def test_parameter_values_made_from_traced_text_are_stored_as_plain_text():
    import yaml
    p = Parameter("x.instruction", TracedText("Be brief.", "node"))
    p.update(TracedText("Be very brief.", "node").strip(), step=1, source="human")
    assert type(p.value) is str and all(type(r.value) is str for r in p.history)
    assert "Be very brief." in yaml.safe_dump(p.to_dict())  # PyYAML's safe dumper refuses str subclasses
