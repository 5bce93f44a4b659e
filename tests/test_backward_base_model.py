"""The backward pass on a base model: a short document ending at the feedback cue, one line back;
an echo of the prompt (or an empty reply) is reported as skipped, never passed on as a gradient."""
import warnings

import pytest

from workbench import BackwardEngine, LLMCall, Models, Parameter, Pipeline, TrainConfig, Trainer, run_example
from workbench.engine.backward import BACKWARD_SYSTEM, RELAYED_AFTER_ECHO, loss_feedback
from workbench.engine.backward_completion import ECHO_ERROR, backward_style, is_echo
from workbench.tasks.datasets import Example
from workbench.errors import BadArgumentError
from workbench.engine.loss import get_eval_fn
from workbench.llm.client import LLMClient
from workbench.llm.scripted import ScriptedModel
from workbench.tasks.pipelines.counting import DEFAULT_INSTRUCTION, ObjectCounter
from workbench.testing import OpenAITestServer

from scripted_tasks import TEST, TRAIN, VAL, Optimizer, Shout, backward, same_text, task

QUESTION = "I have a chair, two plums and a car. How many objects do I have?"


def failed_counting_sample():
    pipeline = ObjectCounter()
    r = run_example(pipeline, Example("c1", {"question": QUESTION}, "2", {}), get_eval_fn("numeric_match"),
                    ScriptedModel(lambda m: "Let me count. Answer: 4"))
    assert r.status == "failed"
    return pipeline, r


def base_model(respond):
    model = ScriptedModel(respond, role="backward")
    model.is_base_model = True  # what a client of a base model says about itself
    return model


def test_a_base_model_gets_a_short_document_that_ends_at_the_cue_with_a_stop_and_a_cap():
    pipeline, r = failed_counting_sample()
    model = base_model(lambda m: " Say to count only the objects, and to add up numbered items.\n")
    engine = BackwardEngine(model)
    assert engine.style == "completion"
    params = pipeline.named_parameters()
    engine.backward(r.graph, params)

    prompts = {c[-1]["content"].splitlines()[0].split(":")[0]: c for c in model.calls}
    assert sorted(prompts) == ["Instruction", "Output format"]  # one call per trained parameter
    prompt = prompts["Instruction"][-1]["content"]
    assert prompt.splitlines()[0] == f"Instruction: {DEFAULT_INSTRUCTION}"
    assert prompt.endswith("\nFeedback on the instruction:")
    assert prompts["Output format"][-1]["content"].endswith("\nFeedback on the output format:")
    assert f"Question: {QUESTION}" in prompt and "Answer: Let me count. Answer: 4" in prompt
    assert "'2'" in prompt  # what went wrong: the loss's feedback, shortened
    assert all(m["role"] == "user" for m in prompts["Instruction"]) and BACKWARD_SYSTEM[:30] not in prompt
    assert all(s["stop"] == ["\n"] and s["max_tokens"] <= 64 for s in model.sampling_calls)
    assert [g.text for g in params["count.instruction"].gradients] == [
        "Say to count only the objects, and to add up numbered items."]


def test_a_base_model_that_rewrites_its_document_is_skipped_as_an_echo_not_a_gradient():
    pipeline, r = failed_counting_sample()
    # what Gemma 3 270M does through the gemma chat format: it writes the document's first line back
    model = base_model(lambda m: m[-1]["content"].splitlines()[0].replace("objects", "items"))
    params, skipped = pipeline.named_parameters(), []
    BackwardEngine(model).backward(r.graph, params, on_skipped=skipped.append)
    assert sorted(s["parameter"] for s in skipped) == ["count.instruction", "count.output_format"]
    assert {(s["stage"], s["error"], s["node_id"], s["sample_id"]) for s in skipped} == {
        ("backward", ECHO_ERROR, "count", "c1")}
    # instead of the echo, each parameter gets the evaluation's words that reached the node, marked as relayed
    for name in ("count.instruction", "count.output_format"):
        [g] = params[name].gradients
        assert g.text == loss_feedback(r.graph) + RELAYED_AFTER_ECHO
        assert "Instruction:" not in g.text and "the expected answer was '2'" in g.text


def test_a_reply_that_repeats_the_document_then_writes_after_the_cue_gives_that_line():
    pipeline, r = failed_counting_sample()
    model = base_model(lambda m: m[-1]["content"] + " Count only what the question asks about.\nQuestion: more")
    params = pipeline.named_parameters()
    BackwardEngine(model).backward(r.graph, params)
    assert [g.text for g in params["count.instruction"].gradients] == ["Count only what the question asks about."]


@pytest.mark.parametrize("reply", [BACKWARD_SYSTEM, "  \n ", "### Task\nGive feedback on the parameter below"])
def test_a_chat_model_that_echoes_its_prompt_or_says_nothing_is_skipped(reply):
    pipeline, r = failed_counting_sample()
    model = ScriptedModel(lambda m: reply, role="backward")
    engine = BackwardEngine(model)
    assert engine.style == "chat"
    params, skipped = pipeline.named_parameters(), []
    engine.backward(r.graph, params, on_skipped=skipped.append)
    assert [s["error"] for s in skipped] == [ECHO_ERROR, ECHO_ERROR]
    assert model.calls[0][0] == {"role": "system", "content": BACKWARD_SYSTEM}  # the chat prompt is unchanged
    assert [g.text for g in params["count.instruction"].gradients] == [loss_feedback(r.graph) + RELAYED_AFTER_ECHO]


def test_without_a_skip_callback_an_echo_is_warned_about_and_dropped():
    pipeline, r = failed_counting_sample()
    params = pipeline.named_parameters()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        BackwardEngine(ScriptedModel(lambda m: BACKWARD_SYSTEM)).backward(r.graph, params)
    said = sorted(str(w.message) for w in seen)
    assert len(said) == 2 and all("echoed its prompt" in w for w in said) and "'count.instruction'" in said[0]
    assert all(g.text.endswith(RELAYED_AFTER_ECHO) for g in params["count.instruction"].gradients)


def test_is_echo_tells_copies_from_feedback():
    messages = [{"role": "user", "content": "Instruction: Read the question and count the objects.\n"
                                            "Problem: the answer was 4; the expected answer was 2.\n"
                                            "Feedback on the instruction:"}]
    copies = ["Instruction: Read the question and count the objects.", "Feedback on the instruction:",
              "Read the question and count the items.", "instruction", "", "..."]
    assert all(is_echo(c, messages) for c in copies)
    fresh = ["Tell the model to skip items that are not objects.", "fine",
             "The instruction 'count the objects' should also say to add numbered items."]
    assert not any(is_echo(f, messages) for f in fresh)
    relayed = "the answer was 4; the expected answer was 2"  # passing downstream feedback on is not an echo
    assert is_echo(relayed, messages) and not is_echo(relayed, messages, relayed="- from loss: " + relayed)


def test_the_style_is_chosen_like_the_optimizers_and_a_bad_one_is_named():
    assert backward_style(Models.scripted(task)) == "chat"
    embedded = Models.scripted(task)
    embedded.server = object()  # Models.local() keeps its LocalServer here: a base model
    assert backward_style(embedded) == "completion"
    with pytest.raises(BadArgumentError, match="'poem'"):
        BackwardEngine(ScriptedModel(task), style="poem")


def test_a_trainer_reports_an_echoed_gradient_as_a_skipped_event_and_trains_on_the_rest(tmp_path):
    calls = []

    def echo_first(messages):
        calls.append(1)
        return messages[0]["content"] if len(calls) == 1 else backward(messages)
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, echo_first, Optimizer()),
                      config=TrainConfig(max_steps=1, batch_size=4, concurrency=1), run_dir=tmp_path / "run")
    assert trainer.backward_engine.style == "chat"
    events = []
    trainer.bus.subscribe(events.append)
    summary = trainer.fit()
    assert summary.status == "completed"
    skipped = [e.data for e in events if e.type == "skipped"]
    assert [(s["stage"], s["parameter"], s["error"]) for s in skipped] == [("backward", "shout.instruction", ECHO_ERROR)]
    gradients = [e.data["text"] for e in events if e.type == "gradient" and e.data["target_kind"] == "parameter"]
    assert gradients and BACKWARD_SYSTEM[:30] not in " ".join(gradients)
    assert sum(g.endswith(RELAYED_AFTER_ECHO) for g in gradients) == 1  # the echoed one: the evaluation's words


def test_an_echo_over_real_http_is_skipped():
    def respond(messages):
        return "Answer: 4" if messages[-1]["content"].startswith("Question") else messages[0]["content"]
    with OpenAITestServer(responder=respond) as server:
        client = LLMClient("test-model", base_url=server.base_url, api_key="k-test", role="backward", max_retries=0)
        pipeline, r = failed_counting_sample()
        skipped = []
        BackwardEngine(client).backward(r.graph, pipeline.named_parameters(), on_skipped=skipped.append)
    assert [s["error"] for s in skipped] == [ECHO_ERROR, ECHO_ERROR]


def test_an_echo_about_an_upstream_value_relays_the_feedback_with_the_target_masked():
    from test_engine_backward import TARGET, run_failed_sample

    pipeline, r = run_failed_sample()

    def respond(messages):
        text = messages[-1]["content"]
        return text if "### Target value from node lookup" in text else "Ask for the furnace town by name."
    skipped = []
    BackwardEngine(ScriptedModel(respond, role="backward")).backward(r.graph, pipeline.named_parameters(),
                                                                     on_skipped=skipped.append)
    assert [(s["parameter"], s["node_id"], s["error"]) for s in skipped] == [(None, "answer", ECHO_ERROR)]
    [relayed] = [g.text for g in r.graph.gradients if g.target == "lookup" and g.node_id == "answer"]
    assert relayed.endswith(RELAYED_AFTER_ECHO) and "[the expected answer]" in relayed and TARGET not in relayed
    assert "### Target value" not in relayed


def test_the_progress_line_of_an_echo_does_not_blame_retries():
    from workbench.records.progress import describe_event

    line = describe_event("skipped", {"stage": "backward", "parameter": "count.instruction", "node_id": "count",
                                      "sample_id": "c1", "error": ECHO_ERROR})
    assert line == f"skipped a backward call for count.instruction: {ECHO_ERROR}"


class SayWord(Pipeline):
    """One LLM call with one parameter: the smallest pipeline (two nodes with its loss)."""

    def __init__(self):
        self.instruction = Parameter("say.instruction", "Say the word.")
        self.say = LLMCall("say", "{{instruction}}\nWord: {{word}}", [self.instruction])

    def forward(self, word):
        return self.say(word=word)


def test_a_multi_line_answer_reaches_the_feedback_on_one_line_without_escapes():
    """The loss's words are relayed to every upstream node and shown in the dashboard: a reply with
    blank lines read there as a literal `\\n\\n` (its repr) instead of text."""
    r = run_example(SayWord(), Example("w1", {"word": "plum"}, "plum", {}), get_eval_fn("exact_match"),
                    ScriptedModel(lambda m: "pear\n\nand then\tplum"))
    text = loss_feedback(r.graph)
    assert "\\n" not in text and "\\t" not in text
    assert "final answer was 'pear and then plum'; the expected answer was 'plum'." in text
