"""The ready pipelines and tasks: they run, get scored, and every trainable parameter gets feedback."""
import json
import re

import pytest

from workbench import BackwardEngine, run_batch, run_example
from workbench.tasks.datasets import Example, load_multihop, load_question_types
from workbench.errors import ConfigError
from workbench.llm.scripted import ScriptedModel
from workbench.engine.loss import exact_match, f1_score, numeric_match
from workbench.tasks.pipelines import (BM25, MultiHopRAG, ObjectCounter, QuestionClassifier, ReActAgent, parse_answer,
                                 parse_count, parse_label, parse_query, parse_step, safe_eval, tokenize)
from workbench.tasks import get_task, task_names

from scripted_tasks import backward_model

DOCUMENTS = load_multihop()[1]


def backward(result, pipeline):
    params = pipeline.named_parameters()
    BackwardEngine(backward_model()).backward(result.graph, params)
    return params


def assert_every_trainable_parameter_has_a_gradient(params):
    assert {name for name, p in params.items() if p.trainable and not p.gradients} == set()


# -- classification ----------------------------------------------------------------------------------
def classifier_model() -> ScriptedModel:
    """'Where' -> LOC, 'Who' -> a lower-case 'hum' in a sentence, 'photosynthesis' -> no label at all
    (a parse failure), anything else -> ENTY (so 'How many' questions come out wrong)."""
    def respond(messages):
        question = messages[-1]["content"].split("Question:")[-1]
        if "Where" in question:
            return "Answer: LOC"
        if "Who" in question:
            return "This asks for a person, so the class is hum."
        if "photosynthesis" in question:
            return "I am not sure."
        return "Answer: ENTY"
    return ScriptedModel(respond)


def test_classifier_scores_batch_records_parse_failure_and_gets_gradients_on_all_three_peers():
    by_id = {e.id: e for e in load_question_types()}
    examples = [by_id[i] for i in ("qt-001", "qt-002", "qt-003", "qt-004", "qt-005")]
    assert [e.target for e in examples] == ["LOC", "NUM", "HUM", "ENTY", "DESC"]
    pipeline = QuestionClassifier()
    batch = run_batch(pipeline, examples, exact_match, classifier_model(), concurrency=3)
    assert [(r.prediction, r.status) for r in batch.results] == [
        ("LOC", "ok"), ("ENTY", "failed"), ("HUM", "ok"), ("ENTY", "ok"), ("I am not sure.", "failed")]
    assert batch.mean_score == pytest.approx(3 / 5)
    assert "could not parse" in batch.results[4].graph.node("classify").error

    for failed in (batch.results[1], batch.results[4]):  # a wrong label and an unparseable reply
        pipeline.named_parameters()["classify.instruction"].zero_grad()
        params = backward(failed, pipeline)
        assert sorted(params) == ["classify.demos", "classify.instruction", "classify.output_format"]
        assert_every_trainable_parameter_has_a_gradient(params)


def test_classifier_prompt_keeps_peers_apart_and_demos_slot_before_the_question():
    pipeline = QuestionClassifier(demos="Question: Where is Rome?\nAnswer: LOC\n\n")
    assert pipeline.demos.role.value == "demos" and pipeline.output_format.role.value == "output_format"
    messages = pipeline.classify.render({"question": "Who wrote Hamlet?"})
    assert messages[0]["content"] == f"{pipeline.instruction.value}\n\n{pipeline.output_format.value}"
    assert messages[1]["content"] == "Question: Where is Rome?\nAnswer: LOC\n\nQuestion: Who wrote Hamlet?"
    assert QuestionClassifier().classify.render({"question": "Q?"})[1]["content"] == "Question: Q?"


@pytest.mark.parametrize("reply, label", [
    ("LOC", "LOC"), ("Answer: num", "NUM"), ("answer = Desc.", "DESC"), ("It is about a person: HUM", "HUM"),
    ("Answer: LOC (not HUM)", "LOC"), ("Could be ENTY or HUM; I think HUM", "HUM"), ("abbr", "ABBR"),
])
def test_parse_label_is_tolerant(reply, label):
    assert parse_label(reply) == label


@pytest.mark.parametrize("reply", ["", "I don't know", "LOCATION", "numbers"])
def test_parse_label_rejects_replies_without_a_label(reply):
    with pytest.raises(ValueError, match="no class label"):
        parse_label(reply)


# -- counting ----------------------------------------------------------------------------------------
def naive_counter() -> ScriptedModel:
    """Counts every listed item as one, ignoring quantities and categories (the classic mistake)."""
    def respond(messages):
        listed = messages[-1]["content"].split("I have ")[1].split(". How many")[0]
        items = [x for x in re.split(r",\s*(?:and\s+)?|\s+and\s+", listed) if x.strip()]
        return f"Let me count step by step: {', '.join(items)}.\nAnswer: {len(items)}"
    return ScriptedModel(respond)


def test_counter_scores_numbers_and_gets_gradients_on_instruction_and_format():
    examples = [Example("c1", {"question": "I have a cat and a dog. How many animals do I have?"}, "2"),
                Example("c2", {"question": "I have a piano, a flute, and two apples. How many musical "
                                           "instruments do I have?"}, "2"),
                Example("c3", {"question": "I have three dogs. How many animals do I have?"}, "3")]
    pipeline = ObjectCounter()
    batch = run_batch(pipeline, examples, numeric_match, naive_counter())
    assert [(r.prediction, r.score) for r in batch.results] == [("2", 1.0), ("3", 0.0), ("1", 0.0)]
    node = batch.results[1].graph.node("count")
    assert node.output.endswith("Answer: 3")  # the raw reply is kept; the parsed number is the prediction
    params = backward(batch.results[1], pipeline)
    assert sorted(params) == ["count.instruction", "count.output_format"]
    assert_every_trainable_parameter_has_a_gradient(params)


@pytest.mark.parametrize("reply, number", [
    ("Answer: 7", "7"), ("apples 1, pears 2, so 3 in total.\nAnswer: 3", "3"), ("The answer is 12.", "12"),
    ("I count 3 apples and 4 pears, so 7", "7"), ("Answer: seven", "7"), ("Answer: 1,024", "1024"),
    ("Answer: 5.0", "5"), ("To answer this: 1 cat, 2 dogs. Answer: 3", "3"),
])
def test_parse_count_takes_the_final_number(reply, number):
    assert parse_count(reply) == number


def test_parse_count_rejects_a_reply_without_a_number():
    with pytest.raises(ValueError, match="no number"):
        parse_count("I cannot tell.")


# -- multi-hop RAG -----------------------------------------------------------------------------------
def rag_model() -> ScriptedModel:
    """Query writer: hop 1 searches the (lower-cased) person named in the question; hop 2 searches the
    company the passages say that person founded. Answerer: the first capitalised word after ' in '
    in the last passage -- right for 'in which town' questions, wrong for others."""
    def respond(messages):
        user = messages[-1]["content"]
        if user.endswith("Search query:"):
            question = user.split("Question: ")[1].split("\n")[0]
            if "Passages found so far:\n(none)" in user:
                return re.search(r"\b([A-Z][a-z]+(?:[ -][A-Z][a-z]+)+)", question).group(1).lower()
            return "Query: " + re.search(r"founded ([A-Z]\w+ [A-Z]\w+)", user).group(1).lower()
        last_passage = user.split("Passages:\n")[1].split("\n\nQuestion:")[0].split("\n")[-1]
        return "Answer: " + re.search(r"\bin ([A-Z]\w+)", last_passage).group(1)
    return ScriptedModel(respond)


def multihop_examples(*ids):
    by_id = {e.id: e for e in load_multihop()[0]}
    return [by_id[i] for i in ids]


def test_rag_runs_two_hops_and_feedback_reaches_both_query_calls_through_the_retriever():
    pipeline = MultiHopRAG(DOCUMENTS)
    batch = run_batch(pipeline, multihop_examples("mh-001", "mh-002"), f1_score, rag_model())
    assert [(r.prediction, r.target, r.status) for r in batch.results] == [
        ("Ostervale", "Ostervale", "ok"), ("Ostervale", "cobalt-blue lamp glass", "failed")]
    g = batch.results[1].graph
    assert [n.id for n in g.nodes] == ["query", "retrieve", "query#2", "retrieve#2", "answer", "loss"]
    assert g.node("query").output == "idris vantorre" and g.node("query#2").output == "Query: bluefire glassworks"
    assert g.node("retrieve#2").inputs == {"query": "bluefire glassworks"}  # the parsed query was searched
    assert {(e.source, e.target, e.input) for e in g.edges} == {
        ("query", "retrieve", "query"), ("retrieve", "query#2", "passages"), ("query#2", "retrieve#2", "query"),
        ("retrieve", "answer", "context"), ("retrieve#2", "answer", "context"), ("answer", "loss", "prediction")}
    # hop 2 found hop 1's passage again: the joined context links it to one of them, marked as a guess
    assert [(e.source, e.guess) for e in g.edges if e.target == "answer"] == [("retrieve#2", False), ("retrieve", True)]

    params = backward(batch.results[1], pipeline)
    assert sorted(params) == ["answer.instruction", "answer.output_format", "query.instruction"]
    assert_every_trainable_parameter_has_a_gradient(params)
    grads = params["query.instruction"].gradients_in_order()
    assert [(x.node_id, x.call_index) for x in grads] == [("query", 1), ("query#2", 2)]
    relayed = [x for x in g.gradients if x.node_id in ("retrieve", "retrieve#2")]
    assert {(x.node_id, x.target) for x in relayed} == {("retrieve", "query"), ("retrieve#2", "query#2")}
    assert all("relayed through function" in x.text for x in relayed)


def test_bm25_finds_the_document_a_query_is_about():
    index = BM25(DOCUMENTS)
    assert index.search("Bluefire Glassworks headquarters", top_k=1)[0]["title"] == "Bluefire Glassworks"
    assert index.search("rope maker salt water", top_k=1)[0]["title"] == "Harbourline Cordage"
    assert index.search("zzz qqq") == []  # no shared word, no result


def test_bm25_weights_rare_words_and_normalises_length():
    docs = [{"id": "1", "title": "a", "text": "river river town"},
            {"id": "2", "title": "b", "text": "river town mill"},
            {"id": "3", "title": "c", "text": "river " + "filler " * 40 + "mill"}]
    index = BM25(docs)
    assert (index.k1, index.b) == (1.5, 0.75)
    assert index.idf["mill"] > index.idf["river"]
    assert [d["id"] for d in index.search("mill", top_k=3)] == ["2", "3"]  # the short document first
    assert tokenize("The Farrow-Dunn river, in 1840!") == ["farrow", "dunn", "river", "1840"]


@pytest.mark.parametrize("reply, query", [
    ("bluefire glassworks", "bluefire glassworks"), ("Search query: \"Tobiah Quell\"", "Tobiah Quell"),
    ("Query: lake anselt\nbecause ...", "lake anselt")])
def test_parse_query(reply, query):
    assert parse_query(reply) == query


@pytest.mark.parametrize("reply, answer", [
    ("Answer: Ostervale.", "Ostervale"), ("The passages say so.\nAnswer: 1829", "1829"), ("Mirewick", "Mirewick")])
def test_parse_answer(reply, answer):
    assert parse_answer(reply) == answer


def test_parse_answer_and_query_reject_empty_replies():
    for parse in (parse_answer, parse_query):
        with pytest.raises(ValueError):
            parse("  ")


# -- ReAct agent -------------------------------------------------------------------------------------
AGE_QUESTION = "How many years did Idris Vantorre live?"


def agent_model(script=None) -> ScriptedModel:
    """Replies with the step of `script` given by how many observations the scratchpad holds.

    The default script looks the person up, subtracts birth year from death year, and answers.
    """
    script = script or [
        "Thought: I need to know about this person first.\nAction: lookup[idris vantorre]",
        "Thought: He lived from 1788 to 1859.\nAction: calculator[1859 - 1788]\nObservation: 70 (invented)",
        "Thought: The calculator gave his age.\nFinal Answer: 71",
    ]

    def respond(messages):
        return script[min(messages[-1]["content"].count("Observation:"), len(script) - 1)]
    return ScriptedModel(respond)


def test_agent_uses_tools_and_instruction_gets_one_gradient_per_step():
    pipeline = ReActAgent(DOCUMENTS)
    examples = [Example("a1", {"question": AGE_QUESTION}, "71"), Example("a2", {"question": AGE_QUESTION}, "70")]
    batch = run_batch(pipeline, examples, f1_score, agent_model())
    assert [(r.prediction, r.status) for r in batch.results] == [("71", "ok"), ("71", "failed")]
    g = batch.results[1].graph
    assert [n.id for n in g.nodes] == ["step", "lookup", "step#2", "calculator", "step#3", "loss"]
    assert g.node("lookup").output.startswith("Idris Vantorre: Idris Vantorre (1788-1859)")
    assert g.node("calculator").output == "The result of 1859 - 1788 is 71."
    step3_prompt = g.node("step#3").prompt[-1]["content"]
    assert "(invented)" not in step3_prompt  # the scratchpad keeps a reply only up to its action
    edges = {(e.source, e.target, e.input) for e in g.edges}
    assert {("step", "lookup", "query"), ("lookup", "step#2", "scratchpad"), ("step#2", "calculator", "expression"),
            ("calculator", "step#3", "scratchpad"), ("step#3", "loss", "prediction")} <= edges

    params = backward(batch.results[1], pipeline)
    assert sorted(params) == ["step.instruction", "step.output_format"]
    assert_every_trainable_parameter_has_a_gradient(params)
    for name in params:
        grads = params[name].gradients_in_order()
        assert [(x.node_id, x.call_index) for x in grads] == [("step", 1), ("step#2", 2), ("step#3", 3)]
    assert {x.node_id for x in g.gradients if x.target == "step"} >= {"lookup"}  # relayed through the tool


def test_agent_records_an_unparseable_step_as_a_failed_sample_with_feedback_on_that_step():
    pipeline = ReActAgent(DOCUMENTS)
    model = agent_model(["Thought: look it up.\nAction: lookup[idris vantorre]", "He lived 71 years, I think."])
    result = run_example(pipeline, Example("a", {"question": AGE_QUESTION}, "71"), f1_score, model)
    assert (result.status, result.score, result.prediction) == ("failed", 0.0, "He lived 71 years, I think.")
    assert result.graph.node("step#2").status == "failed"
    assert ("step#2", "loss", "prediction") in {(e.source, e.target, e.input) for e in result.graph.edges}
    params = backward(result, pipeline)
    assert [x.node_id for x in params["step.instruction"].gradients_in_order()] == ["step", "step#2"]


def test_agent_turns_tool_errors_into_observations_and_fails_when_out_of_steps():
    pipeline = ReActAgent(DOCUMENTS, max_steps=3)
    model = agent_model(["Thought: compute.\nAction: calculator[__import__('os').getcwd()]",
                         "Thought: search the web.\nAction: google[idris]",
                         "Thought: try again.\nAction: lookup[zzz qqq]"])
    result = run_example(pipeline, Example("a", {"question": AGE_QUESTION}, "71"), f1_score, model)
    assert result.status == "failed" and result.prediction == "Thought: try again.\nAction: lookup[zzz qqq]"
    assert "no final answer after 3 steps" in result.error
    prompts = [n.prompt[-1]["content"] for n in result.graph.nodes if n.component == "step"]
    assert "Observation: Error: cannot calculate" in prompts[1] and "only arithmetic is allowed" in prompts[1]
    assert "Observation: Error: there is no tool named 'google'" in prompts[2]
    assert result.graph.node("lookup").output == "No document matches 'zzz qqq'."
    assert ("step#3", "loss", "prediction") in {(e.source, e.target, e.input) for e in result.graph.edges}


@pytest.mark.parametrize("reply, expected", [
    ("Thought: find him.\nAction: lookup[Idris Vantorre]", ("find him.", "lookup", "Idris Vantorre", None)),
    ("Action: Calculator[ 2 + 3 ]", ("", "calculator", "2 + 3", None)),
    ("Thought: done.\nFinal Answer: Ostervale.", ("done.", None, None, "Ostervale")),
    ("Thought: x\nFinal Answer: 71\nAction: lookup[y]", ("x", None, None, "71")),  # whichever comes first
    ("Thought: x\nAction: lookup[y]\nObservation: z\nFinal Answer: 3", ("x", "lookup", "y", None)),
])
def test_parse_step(reply, expected):
    step = parse_step(reply)
    assert (step.thought, step.action, step.argument, step.answer) == expected


def test_parse_step_rejects_a_reply_in_neither_form():
    with pytest.raises(ValueError, match="Action: tool"):
        parse_step("Thought: I think the answer is 3.")


def test_calculator_evaluates_arithmetic_only():
    assert safe_eval("(1859 - 1788) * 2 + 10 / 4") == 144.5
    assert safe_eval("2^10") == 1024 and safe_eval("-3 ** 2") == -9
    for attack in ["__import__('os')", "__import__('os').system('echo hi')", "open('/etc/passwd').read()",
                   "(1).__class__", "[x for x in ()]", "lambda: 1", "a + 1", "'text'", "9**9**9", "True + 1"]:
        with pytest.raises(ValueError):
            safe_eval(attack)
    with pytest.raises(ValueError, match="division by zero"):
        safe_eval("1 / 0")
    assert ReActAgent(DOCUMENTS).calculator("1/0") == "Error: cannot calculate '1/0': division by zero."


def test_lookup_prefers_an_exact_title_then_keywords():
    agent = ReActAgent(DOCUMENTS)
    assert agent.lookup("tobiah quell").startswith("Tobiah Quell: ")
    assert agent.lookup("glass manufacturer furnaces").startswith("Bluefire Glassworks: ")


# -- tasks -------------------------------------------------------------------------------------------
def test_task_registry_names_and_clear_error():
    assert task_names() == ["classification", "counting", "multihop", "agent", "hotpotqa", "hotpotqa-pooled",
                            "sentiment"]
    with pytest.raises(ConfigError, match="unknown task 'nope'; available tasks: classification, counting"):
        get_task("nope")


@pytest.mark.parametrize("name, parameters", [
    ("classification", ["classify.demos", "classify.instruction", "classify.output_format"]),
    ("counting", ["count.instruction", "count.output_format"]),
    ("multihop", ["answer.instruction", "answer.output_format", "query.instruction"]),
    ("agent", ["step.instruction", "step.output_format"]),
])
def test_each_task_loads_disjoint_seeded_splits_and_makes_its_pipeline(name, parameters):
    task = get_task(name)
    splits = task.load(seed=3)
    train, val, test = splits
    ids = [e.id for part in (train, val, test) for e in part]
    assert len(ids) == len(set(ids)) == sum(task.sample_sizes)
    assert [e.id for e in task.load(seed=3).train] == [e.id for e in train]  # reproducible
    text = splits.describe()
    assert text.startswith(f"{name}: {len(train)} train / {len(val)} val / {len(test)} test, seed 3, from ")
    pipeline = task.make_pipeline()
    assert sorted(pipeline.named_parameters()) == parameters
    assert all(p.description for p in pipeline.parameters())
    assert all(p.name.split(".")[0] in {c.name for c in pipeline.components()} for p in pipeline.parameters())


def test_classification_train_split_is_stratified():
    train, _, _ = get_task("classification").load(12, 6, 6, seed=1)
    assert sorted(e.target for e in train) == sorted(["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"] * 2)


def test_tasks_read_trec_and_bbh_files(tmp_path):
    labels = ["ABBR:exp", "DESC:def", "ENTY:animal", "HUM:ind", "LOC:city", "NUM:count"]
    trec = tmp_path / "trec.label"
    trec.write_text("".join(f"{labels[i % 6]} question number {i} ?\n" for i in range(60)))
    splits = get_task("classification").load(6, 10, 20, source=trec)
    assert sorted(e.target for e in splits.train) == ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    assert str(trec) in splits.describe() and "train stratified by target" in splits.describe()
    bbh = tmp_path / "object_counting.json"
    bbh.write_text(json.dumps({"canary": "x", "examples": [{"input": f"q{i}", "target": str(i)} for i in range(9)]}))
    train, val, test = get_task("counting").load(3, 3, 3, source=bbh)
    assert sorted(int(e.target) for e in train + val + test) == list(range(9))
    with pytest.raises(ConfigError, match="reads only source='sample'"):
        get_task("multihop").load(source=bbh)
