"""A run's lifecycle: budgets that are limits, fit() that continues, a stop that leaves one story,
concurrency that reaches the endpoint, and a fit() that would block a notebook forever refused."""
import re
import threading

import pytest

from workbench import LLMCall, Models, Parameter, Pipeline, TrainConfig, Trainer
from workbench.training.approval import HumanApproval
from workbench.errors import ConfigError, WorkbenchError
from workbench.records.export import build_export
from workbench.llm import LLMClient
from workbench.records.store import RunStore
from workbench.records.run_list import list_runs
from workbench.tasks import get_task
from workbench.testing import OpenAITestServer
from workbench.training import lifecycle

from scripted_tasks import GOOD, TEST, TRAIN, VAL, WORDS, Optimizer, Shout, backward, examples, same_text, task

VAL16 = examples("va", WORDS)  # 16 validation samples


def calls(usage):
    return sum(u["calls"] for u in usage.values())


def test_max_calls_is_a_limit_through_the_openai_sdk(tmp_path):
    """16 validation samples in flight, max_calls=6: at most 6 requests reach the endpoint."""
    with OpenAITestServer(responder=task, latency_s=0.05) as server:
        models = Models.from_endpoint(server.base_url, "test-model", api_key="x", cache=None, fold_system=False)
        trainer = Trainer(Shout(), TRAIN, VAL16, TEST, same_text, models, run_dir=tmp_path / "run",
                          config=TrainConfig(max_steps=2, batch_size=4, concurrency=8, max_calls=6))
        summary = trainer.fit()
    assert summary.status == "budget" and "call budget" in summary.error
    assert server.request_count <= 6
    assert calls(summary.usage) == server.served_count <= 6
    models.use_budget(None)


def test_a_second_trainer_on_the_same_models_is_not_billed_for_the_first(tmp_path):
    models = Models.scripted(task, backward, Optimizer())
    first = Trainer(Shout(), TRAIN, VAL, TEST, same_text, models, run_dir=tmp_path / "one",
                    config=TrainConfig(max_steps=2, batch_size=4))
    spent_first = calls(first.fit().usage)
    assert spent_first > 10
    before = len(models.task.calls) + len(models.backward.calls) + len(models.optimizer.calls)
    second = Trainer(Shout(), TRAIN, VAL, TEST, same_text, models, run_dir=tmp_path / "two",
                     config=TrainConfig(max_steps=2, batch_size=4, max_calls=spent_first + 5))
    summary = second.fit()
    after = len(models.task.calls) + len(models.backward.calls) + len(models.optimizer.calls)
    assert summary.status == "completed"
    assert calls(summary.usage) == after - before  # its own calls, not the first trainer's
    assert calls(RunStore(tmp_path / "two").latest_checkpoint()["usage"]) == after - before - len(TEST)  # + final test


def test_fit_again_continues_the_run_and_keeps_the_baseline(tmp_path):
    opt = Optimizer()
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, opt),
                      run_dir=tmp_path / "run", config=TrainConfig(max_steps=1, batch_size=4))
    first = trainer.fit()
    assert first.steps == 1 and first.baseline["val"] == 0.0
    events = []
    trainer.bus.subscribe(events.append)
    trainer.config.max_steps = 2
    second = trainer.fit()
    assert second.steps == 2 and second.baseline == first.baseline and second.final["val"] == 1.0
    assert not [e for e in events if e.type == "eval" and e.data["phase"] == "baseline"]
    assert events[0].type == "run_started" and events[0].data["resumed_from"] == 1
    assert [e.step for e in events if e.type == "step_started"] == [2]
    third = trainer.fit()  # nothing left: the same outcome, the baseline still the untrained one
    assert third.steps == 2 and third.baseline == first.baseline and third.best_val == 1.0


class TwoParts(Pipeline):
    def __init__(self):
        self.instruction = Parameter("shout.instruction", "Repeat the word.", description="how to write it")
        self.format = Parameter("shout.format", "One word.", role="output_format", description="reply shape")
        self.node = LLMCall("shout", "{{instruction}}\n{{format}}\nWord: {{word}}", [self.instruction, self.format])

    def forward(self, word):
        return self.node(word=word)


@pytest.mark.parametrize("ending", ["stopped", "budget"])
def test_a_stop_in_the_middle_of_a_step_leaves_summary_checkpoint_runs_and_export_in_agreement(tmp_path, ending):
    holder = {}

    def optimizer(messages):
        holder["n"] = holder.get("n", 0) + 1
        if holder["n"] == 2:  # the first parameter was kept; end the run while the second one is being tried
            if ending == "stopped":
                holder["trainer"].stop()
            else:  # the budget runs out now: the next call is refused
                budget = holder["trainer"].models.task.budget
                budget.max_calls = budget.calls + budget.in_flight
        return f"<PROPOSAL>{GOOD}</PROPOSAL>"
    trainer = Trainer(TwoParts(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, optimizer),
                      run_dir=tmp_path / "run", config=TrainConfig(max_steps=3, batch_size=4))
    holder["trainer"] = trainer
    events = []
    trainer.bus.subscribe(events.append)
    summary = trainer.fit()
    kept = [e for e in events if e.type == "update" and e.data["accepted"]]
    assert kept and kept[0].step == 1  # something was kept in the step that did not finish
    store = RunStore(tmp_path / "run")
    checkpoint = store.latest_checkpoint()
    assert summary.status == ending
    assert summary.steps == checkpoint["step"] == list_runs(tmp_path)[0]["steps"] == 0
    assert summary.best_val == checkpoint["best_val"] == list_runs(tmp_path)[0]["best_val"] == 0.0
    saved = {n: p["value"] for n, p in checkpoint["parameters"].items()}
    assert summary.parameters == saved == {n: p.value for n, p in trainer.params.items()}
    for export in (build_export(trainer), build_export(tmp_path / "run")):
        assert {p["name"]: p["value"] for p in export["parameters"]} == saved
    reverted = [e.data for e in events if e.type == "update" and not e.data["accepted"]]
    assert reverted[-1]["parameter"] == kept[0].data["parameter"] and "did not finish" in reverted[-1]["reason"]
    resumed = Trainer(TwoParts(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, optimizer),
                      run_dir=tmp_path / "run", resume=True, config=TrainConfig(max_steps=3, batch_size=4))
    assert resumed.step == 0 and resumed.best_val == 0.0


def test_concurrency_reaches_the_endpoint(tmp_path):
    """The client's default of 8 in flight no longer caps TrainConfig.concurrency."""
    with OpenAITestServer(responder=task, latency_s=0.3) as server:
        models = Models.from_endpoint(server.base_url, "test-model", api_key="x", cache=None, fold_system=False)
        trainer = Trainer(Shout(), TRAIN, VAL16, [], same_text, models, run_dir=tmp_path / "run",
                          config=TrainConfig(max_steps=1, batch_size=4, concurrency=16, max_calls=16))
        trainer.fit()
    assert server.max_in_flight > 8 and trainer.concurrency_applied == 16


def test_fit_with_human_approval_and_no_timeout_is_refused_on_the_notebook_thread(tmp_path):
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, Optimizer()),
                      run_dir=tmp_path / "run", approval=HumanApproval())
    guard = threading.Timer(10, trainer.stop)  # were fit() to block, this ends it (and the test fails)
    guard.start()
    with pytest.raises(WorkbenchError, match=r"start\(\)"):
        trainer.fit()
    guard.cancel()
    # from a worker thread (start()), a person can answer: it runs
    future = trainer.start()
    for _ in range(500):
        if trainer.pending:
            break
        threading.Event().wait(0.01)
    trainer.decide(trainer.pending.proposal_id, "reject")
    trainer.stop()
    assert future.result(timeout=30).status in ("stopped", "completed")


def test_progress_bar_in_a_notebook_without_a_dashboard(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(lifecycle, "in_notebook", lambda: True)

    def run(name, **kw):
        trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, Optimizer()),
                          run_dir=tmp_path / name, config=TrainConfig(max_steps=1, batch_size=4), **kw)
        return trainer

    run("auto").fit()
    assert "sample" in capsys.readouterr().err  # a tqdm bar counted samples
    with_dashboard = run("dash")
    with_dashboard.has_dashboard = True
    with_dashboard.fit()
    assert capsys.readouterr().err == ""
    run("off", progress=False).fit()
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(lifecycle, "in_notebook", lambda: False)
    run("forced", progress=True).fit()
    assert "sample" in capsys.readouterr().err


def test_the_endpoint_probe_is_recorded_once_in_the_run(tmp_path):
    """An endpoint that drops system messages: the run's record says so (folded), once per role."""
    def answer(messages):  # the probe's own question is not a word to shout
        return task(messages) if "Word:" in messages[-1]["content"] else "ok"
    with OpenAITestServer(responder=answer, drop_system=True) as server:
        models = Models.from_endpoint(server.base_url, "test-model", api_key="x", cache=None, fold_system=None)
        trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, models, run_dir=tmp_path / "run",
                          config=TrainConfig(max_steps=1, batch_size=4))
        trainer.fit()
        trainer.fit()
    probes = [e.data for e in RunStore(tmp_path / "run").events() if e.type == "endpoint_probe"]
    assert sorted(p["role"] for p in probes) == ["backward", "optimizer", "task"]
    assert all(p["system_messages"] == "dropped" and p["fold_system"] for p in probes)


def test_a_teacher_on_an_endpoint_that_drops_system_messages_is_probed_and_folded(tmp_path):
    """The teacher's traces become demos: its prompt must carry the instructions too. It is probed like
    the run's other models (its own endpoint here) and recorded as a "teacher" endpoint_probe."""
    def answer(messages):
        return task(messages) if "Word:" in messages[-1]["content"] else "ok"
    with OpenAITestServer(responder=answer) as keeping, \
            OpenAITestServer(responder=answer, drop_system=True) as dropping:
        models = Models.from_endpoint(keeping.base_url, "test-model", api_key="x", cache=None, fold_system=None)
        teacher = LLMClient("big-model", base_url=dropping.base_url, api_key="x", role="teacher")
        assert not teacher.fold_system_prompt
        trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, models, run_dir=tmp_path / "run", teacher=teacher,
                          config=TrainConfig(max_steps=1, batch_size=4))
        assert teacher.fold_system_prompt and dropping.request_count == 2  # the probe's two calls
        trainer.fit()
        dropping_url = dropping.base_url
    probes = {e.data["role"]: e.data for e in RunStore(tmp_path / "run").events() if e.type == "endpoint_probe"}
    assert sorted(probes) == ["backward", "optimizer", "task", "teacher"]
    assert probes["teacher"]["system_messages"] == "dropped" and probes["teacher"]["fold_system"]
    assert probes["teacher"]["base_url"] == dropping_url and probes["task"]["system_messages"] == "kept"


def test_a_resumed_run_is_charged_what_it_spent_before(tmp_path):
    first = Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, Optimizer()),
                    run_dir=tmp_path / "run", config=TrainConfig(max_steps=1, batch_size=4))
    paid = first.fit().usage
    spent = calls(paid)  # the final test's calls too, though they came after the last checkpoint
    assert spent > calls(RunStore(tmp_path / "run").latest_checkpoint()["usage"])
    models = Models.scripted(task, backward, Optimizer())
    resumed = Trainer(Shout(), TRAIN, VAL, TEST, same_text, models, run_dir=tmp_path / "run", resume=True,
                      config=TrainConfig(max_steps=2, batch_size=4, max_calls=spent + 2))
    summary = resumed.fit()
    assert summary.status == "budget" and summary.steps == 1
    assert len(models.task.calls) + len(models.backward.calls) + len(models.optimizer.calls) <= 2
    assert calls(summary.usage) <= spent + 2


def test_a_teachers_calls_share_the_budget_and_are_counted(tmp_path):
    task_ = get_task("classification")
    train, val, test = task_.load(8, 4, 4, seed=2)
    targets = {e.input["question"].strip(): e.target for e in train + val + test}

    def answer(messages):
        return f"Answer: {targets[re.findall(r'Question: (.*)', messages[-1]['content'])[-1].strip()]}"
    teacher = Models.scripted(answer).task
    pipeline = task_.make_pipeline()
    for p in pipeline.parameters():
        p.trainable = p.name == "classify.demos"
    models = Models.scripted(answer, lambda m: "Show examples.", lambda m: "<PROPOSAL>x</PROPOSAL>")
    trainer = Trainer(pipeline, train, val, test, task_.eval_fn, models, teacher=teacher,
                      config=TrainConfig(max_steps=1, batch_size=4), run_dir=tmp_path / "run")
    shared = []
    trainer.bus.subscribe(lambda e: shared.append(teacher.budget is models.task.budget is not None), {"teacher"})
    summary = trainer.fit()
    assert shared == [True] and teacher.budget is None and models.task.budget is None  # detached at the end
    assert summary.usage["teacher"]["calls"] == len(teacher.calls) == 4


@pytest.mark.parametrize("setting, words", [
    ({"batch_size": 2.5}, "batch_size must be int, not 2.5"),
    ({"max_steps": "ten"}, "max_steps must be int, not 'ten'"),
    ({"concurrency": True}, "concurrency must be int, not True"),
    ({"max_seconds": "60"}, "max_seconds must be float or None, not '60'"),
    ({"early_stop_validation": 1}, "early_stop_validation must be bool, not 1"),
])
def test_a_setting_of_the_wrong_type_is_a_config_error_naming_it(setting, words):
    with pytest.raises(ConfigError, match=re.escape(words)):
        TrainConfig(**setting)
    assert TrainConfig(pass_threshold=1, max_seconds=30).max_seconds == 30  # whole numbers are fine as floats
