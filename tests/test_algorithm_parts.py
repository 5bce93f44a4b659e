"""The training algorithm's parts, one rule each: leaks, paired gates, selection, the memo, the optimizer prompt."""
import json

from scripted_tasks import TRAIN, VAL, Shout, same_text, task

from workbench import Parameter
from workbench.records.eval_memo import EvalMemo, model_identity, run_batch_memo
from workbench.engine.graph import Gradient
from workbench.llm.scripted import ScriptedModel
from workbench.optim import Attempt, LeakCheck, ParameterMemory, TextOptimizer, minibatch_verdict, pair
from workbench.llm.types import completion_style_of
from workbench.optim.optimizer_completion import CompletionPrompt
from workbench.optim.text_optimizer import parse_named_proposals, summarise_gradients
from workbench.training.selection import select_for_backward


# -- leaks -------------------------------------------------------------------------------------------
def test_a_proposal_copying_a_distinctive_training_target_is_a_leak():
    check = LeakCheck(["APPLE", "River Thames", "yes", "none", "42", "DESC", "DESC", "DESC"])
    assert check.targets == ["apple", "river thames"]  # short, common and label-like targets do not count
    assert check.reason("Write the word in capitals, e.g. APPLE.") == "leaks a training target: 'apple'"
    assert check.reason("Mention the river  thames when asked.") == "leaks a training target: 'river thames'"
    assert check.reason("Answer yes or none; the DESC label is for descriptions.") is None
    assert check.reason("Pineapples are not apples.") is None  # whole words only
    # a target the current value already named is not a new leak
    assert check.reason("Answer like APPLE, in capitals.", current="Example answer: APPLE") is None


# -- paired gates -------------------------------------------------------------------------------------
def test_gates_compare_the_same_samples_and_leave_errored_ones_out_of_both():
    before = {"a": 0.0, "b": 1.0, "c": 0.0}
    after = {"a": 1.0, "b": None, "c": 0.0}  # b errored in the candidate's run
    p = pair(before, after)
    assert (p.before, p.after, p.left_out, p.samples) == (0.0, 0.5, 1, ("a", "c"))
    assert minibatch_verdict(p) == (True, "minibatch score rose from 0.000 to 0.500; 1 errored sample(s) left out of both")
    tie = pair({"a": 0.0, "b": 1.0}, {"a": 0.0, "b": 1.0})
    ok, why = minibatch_verdict(tie)
    assert not ok and "strict gain is required" in why
    assert minibatch_verdict(tie, rule="no_worse")[0]
    all_pass = pair({"a": 1.0, "b": 0.95}, {"a": 1.0, "b": 0.95}, pass_threshold=0.9)
    assert minibatch_verdict(all_pass) == (True, "minibatch score stayed at 0.975 (all samples already passed)")
    assert minibatch_verdict(pair({"a": None}, {"a": 1.0}))[0] is False


# -- selection ----------------------------------------------------------------------------------------
class R:
    def __init__(self, sample_id, score, status="failed"):
        self.sample_id, self.score, self.status = sample_id, score, status


def test_graded_scores_above_the_threshold_count_as_passing_for_selection():
    results = [R("f1", 0.95), R("f2", 0.3), R("ok", 1.0, "ok")]
    chosen = {s.sample_id: s for s in select_for_backward(results, pass_threshold=0.9, max_failed=2, max_correct=1)}
    assert chosen["f2"].selected and chosen["f2"].reason.startswith("failed")
    assert not chosen["f1"].reason.startswith("failed")  # an F1 of 0.95 is not an error
    assert sum(s.selected for s in chosen.values()) == 2  # f2, and one passing sample for contrast


def test_carried_failures_are_chosen_first_and_outside_the_batch_cap():
    results = [R("new1", 0.0), R("new2", 0.0), R("old1", 0.0), R("old2", 1.0, "ok")]
    sel = {s.sample_id: s for s in select_for_backward(results, max_failed=1, max_correct=0,
                                                       carried=["old1", "old2"], max_carried=4)}
    assert sel["old1"].selected and sel["old1"].reason.startswith("carried")
    assert [sel[i].selected for i in ("new1", "new2")].count(True) == 1
    assert not sel["old2"].selected and sel["old2"].reason == "carried, and passes now"
    capped = {s.sample_id: s for s in select_for_backward(results, max_failed=0, max_correct=0,
                                                          carried=["new1", "old1"], max_carried=1)}
    assert capped["old1"].selected and not capped["new1"].selected  # the most recent carried ones are kept


# -- never pay twice ----------------------------------------------------------------------------------
def test_the_same_values_on_the_same_sample_are_evaluated_once(tmp_path):
    model = ScriptedModel(task)
    pipeline = Shout()
    values = lambda: {n: p.value for n, p in pipeline.named_parameters().items()}  # noqa: E731
    memo = EvalMemo(tmp_path / "eval_memo.jsonl")
    first, reused = run_batch_memo(memo, pipeline, TRAIN[:3], same_text, model, values=values())
    assert (len(model.calls), reused) == (3, 0)
    again, reused = run_batch_memo(memo, pipeline, TRAIN[:4], same_text, model, values=values())
    assert (len(model.calls), reused) == (4, 3)  # only the new sample ran
    assert [r.score for r in again.results[:3]] == [r.score for r in first.results]
    # a reused graph is a private copy: gradients written into one do not show up in the next
    again.results[0].graph.add_gradient(Gradient("tr-apple", "shout", "shout", 1, "x", "parameter", 0.0, "fb"))
    third, _ = run_batch_memo(memo, pipeline, TRAIN[:1], same_text, model, values=values())
    assert third.results[0].graph.gradients == [] and len(model.calls) == 4
    # any change of any parameter value is a new evaluation
    pipeline.instruction.value = "Repeat the word in UPPERCASE."
    changed, _ = run_batch_memo(memo, pipeline, TRAIN[:1], same_text, model, values=values())
    assert len(model.calls) == 5 and changed.results[0].score == 1.0
    # it survives a restart of the process (resume), and a damaged last line is skipped
    with (tmp_path / "eval_memo.jsonl").open("a") as f:
        f.write('{"key": "cut in the mid')
    reloaded = EvalMemo(tmp_path / "eval_memo.jsonl")
    assert len(reloaded) == 5
    r, reused = run_batch_memo(reloaded, pipeline, TRAIN[:1], same_text, model, values=values())
    assert reused == 1 and len(model.calls) == 5 and r.results[0].graph.nodes[0].id == "shout"


def test_validation_and_test_evaluations_are_remembered_without_their_graphs(tmp_path):
    """Their graphs are never read again; on a paper-sized HotpotQA run they were most of a 61 MB memo.
    A caller that needs the graph (a training forward) never gets a trimmed entry: it runs the sample."""
    model = ScriptedModel(task)
    pipeline = Shout()
    values = {n: p.value for n, p in pipeline.named_parameters().items()}
    path = tmp_path / "eval_memo.jsonl"
    memo = EvalMemo(path)
    scored, _ = run_batch_memo(memo, pipeline, VAL, same_text, model, values=values, keep_graphs=False)
    assert [r.graph.nodes[0].id for r in scored.results] == ["shout"] * len(VAL)  # the caller's own results are whole
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert all(line["graph"]["nodes"] == [] and line["graph"]["loss"]["score"] is not None for line in lines)
    again, reused = run_batch_memo(EvalMemo(path), pipeline, VAL, same_text, model, values=values, keep_graphs=False)
    assert reused == len(VAL) and len(model.calls) == len(VAL)  # after a restart too: scores are not paid twice
    assert [r.score for r in again.results] == [r.score for r in scored.results]
    assert [r.passed for r in again.results] == [r.passed for r in scored.results]  # the loss is kept
    whole, reused = run_batch_memo(memo, pipeline, VAL[:1], same_text, model, values=values)
    assert reused == 0 and len(model.calls) == len(VAL) + 1 and whole.results[0].graph.nodes
    reloaded = EvalMemo(path)  # the whole entry replaces the trimmed one, also on disk
    assert run_batch_memo(reloaded, pipeline, VAL[:1], same_text, model, values=values)[1] == 1


def test_errored_runs_are_not_remembered_and_models_are_told_apart():
    calls = []

    def flaky(messages):
        calls.append(1)
        if len(calls) == 1:
            from workbench.errors import LLMCallError
            raise LLMCallError("http://x/v1", "503 busy")
        return "APPLE"
    model = ScriptedModel(flaky)
    memo = EvalMemo()
    pipeline = Shout()
    values = {"shout.instruction": pipeline.instruction.value}
    batch, _ = run_batch_memo(memo, pipeline, TRAIN[:1], same_text, model, values=values)
    assert batch.results[0].status == "errored" and len(memo) == 0
    batch, reused = run_batch_memo(memo, pipeline, TRAIN[:1], same_text, model, values=values)
    assert reused == 0 and batch.results[0].score == 1.0
    other = ScriptedModel(flaky)
    assert model_identity(other) != model_identity(model)
    run_batch_memo(memo, pipeline, TRAIN[:1], same_text, other, values=values)
    assert len(calls) == 3


# -- the optimizer prompt -----------------------------------------------------------------------------
def grads(*scores):
    return [Gradient(f"s{i}", "shout", "shout", 1, "shout.instruction", "parameter", score,
                     f"Feedback {i}. More detail.") for i, score in enumerate(scores)]


def test_the_prompt_shows_this_steps_rejections_the_initial_value_and_passing_samples_as_keep():
    param = Parameter("shout.instruction", "Repeat the word.")
    memory = ParameterMemory(param.name)
    memory.record_initial(param.value, 0.25)
    memory.record(Attempt("Old idea.", 1, 0.2, False, "validation 0.200 does not beat best 0.250", 0.5))
    memory.record(Attempt("Say it in French.", 2, None, False, "minibatch score fell from 0.500 to 0.000", 0.0))
    opt = TextOptimizer(ScriptedModel(lambda m: "<PROPOSAL>x</PROPOSAL>"), pass_threshold=0.9)
    text = opt.prompt(param, [], memory, grads(0.0, 1.0), step=2)[1]["content"]
    this_step = text.split("Already tried in THIS step")[1]
    assert "Say it in French." in this_step and "minibatch score fell" in this_step and "minibatch=0.000" in this_step
    assert "Old idea." in text.split("Already tried in THIS step")[0]  # earlier failures stay in their section
    assert "- score 0.250 (step 0, initial value): 'Repeat the word.'" in text
    assert "Sample s1 PASSED (score 1): what works here, keep it:" in text and "Sample s0 (score 0):" in text


def test_a_value_rejected_several_times_in_a_step_is_shown_once_with_how_often_it_came_back():
    param = Parameter("shout.instruction", "Repeat the word.")
    memory = ParameterMemory(param.name)
    memory.record(Attempt("Old idea.", 1, 0.2, False, "validation 0.200 does not beat best 0.250", 0.5))
    memory.record(Attempt("Use capitals.", 2, None, False, "minibatch score stayed at 0.500", 0.5))
    memory.record(Attempt("Use capitals. ", 2, None, False, "already rejected in this step"))
    memory.record(Attempt("Use capitals.", 2, None, False, "already rejected in this step"))
    memory.record(Attempt("Say it in French.", 2, None, False, "minibatch score fell from 0.500 to 0.000", 0.0))
    opt = TextOptimizer(ScriptedModel(lambda m: "<PROPOSAL>x</PROPOSAL>"))
    earlier, this_step = opt.prompt(param, [], memory, [], step=2)[1]["content"].split("Already tried in THIS step")
    assert this_step.count("Use capitals.") == 1 and "already rejected in this step" not in this_step
    assert 'reason="minibatch score stayed at 0.500; proposed 3 times in this step"' in this_step
    assert "Say it in French." in this_step and "Old idea." in earlier  # the other sections are as before
    assert "Use capitals." not in earlier
    joint = opt.joint_prompt([param], {param.name: memory}, step=2)[1]["content"]
    assert joint.count("Use capitals.") == 1


def test_completion_style_prompt_ends_where_the_value_begins_and_rejects_echoes():
    class Base(ScriptedModel):
        is_base_model = True
    model = Base(lambda m: "Instruction: Repeat the word in capital letters. Problem: more text\nInstruction: more")
    assert completion_style_of(model) == "completion" and completion_style_of(ScriptedModel(str)) == "chat"
    param = Parameter("shout.instruction", "Repeat the word.")
    memory = ParameterMemory(param.name)
    memory.record(Attempt("Repeat the word twice.", 3, None, False, "minibatch score stayed at 0.000", 0.0))
    opt = TextOptimizer(model)
    assert opt.retry_when_empty and not TextOptimizer(ScriptedModel(str)).retry_when_empty
    found, _ = opt.propose_with_reply(param, [], memory, grads(0.0), step=3)
    assert found == ["Repeat the word in capital letters."]  # the first line, label and trailing copy cut off
    prompt = model.calls[0][-1]["content"]
    # the second attempt of step 3 (one rejection so far): the current value's label varies by attempt
    assert prompt == ("Old instruction: Repeat the word.\nProblem: Feedback 0.\nAlready tried: Repeat the word twice.\n"
                      "Better instruction:")
    opt.propose_with_reply(param, [], memory, grads(0.0), step=3, attempt=4)
    assert model.calls[1][-1]["content"].startswith("Draft instruction: Repeat the word.\n")
    # end at the line, short, and a new seed per attempt (reproducible, so the cache and resume replay it)
    wide = {"stop": ["\n"], "max_tokens": 22, "temperature": 1.0, "top_k": 100, "min_p": 0.0}
    assert model.sampling_calls == [{**wide, "seed": 3002}, {**wide, "seed": 3004}]
    messages = opt.prompt(param, [], memory, grads(0.0), step=3)
    parse = CompletionPrompt().parse
    for echo in ("Repeat the word.", "Instruction: Repeat the", "Problem: Feedback 0.", "Better instruction:",
                 "Already tried: Repeat the word twice.", "", "  \n", "42", "instruction"):
        assert parse(echo, param, messages) is None, echo
    assert parse(" Better instruction: Shout the word!\nmore", param, messages) == "Shout the word!"
    assert parse("draft output format: Shout it.", param, messages) == "Shout it."
    assert parse("Problem: the reply was in French.", param, messages) is None  # feedback rewritten, not a value
    longer = Parameter("a.instruction", "Count the objects. Think step by step.")
    messages = opt.prompt(longer, [], memory, grads(0.0), step=3)
    assert parse("Instruction: Count the objects.", longer, messages) == "Count the objects."  # a shorter value
    assert parse("Instruction: Count the objects. Think step", longer, messages) is None  # a copy cut short


def test_joint_proposals_are_parsed_by_name():
    reply = '<PROPOSAL name="a.instruction">Use JSON.</PROPOSAL> <PROPOSAL name=\'a.format\'>{"x": 1}</PROPOSAL>'
    assert parse_named_proposals(reply) == {"a.instruction": "Use JSON.", "a.format": '{"x": 1}'}
    assert parse_named_proposals('<PROPOSAL name="a">### Parameter: a <CURRENT_VALUE></PROPOSAL>') == {}
    assert summarise_gradients([]) == "(no feedback)"

