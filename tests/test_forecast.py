"""The cost forecast: its range holds what the ready tasks actually spend on scripted models, across
seeds and optimizer behaviours; it makes no LLM call; the memo and the response cache lower it; a
budget relative to it is a limit; its error per role lands in the summary, the DataFrames and the report."""
import re

import pytest
from shared_data import hotpotqa_or_skip
from test_pipelines_train import PRECISE, scripted_models

from workbench import Models, TrainConfig, Trainer, open_run
from workbench.engine.backward import BACKWARD_SYSTEM
from workbench.optim.text_optimizer import OPTIMIZER_SYSTEM
from workbench.llm.token_count import APPROXIMATION, token_counter
from workbench.records.report import render_report
from workbench.tasks import get_task
from workbench.testing.openai_test_server import OpenAITestServer


def stubborn_optimizer(useless: int):
    """Proposes a useless sentence for its first `useless` calls, then the precise one: more attempts,
    rejections and validations than a first-try success (varied by seed)."""
    calls = []

    def optimizer(messages):
        current = re.search(r"<CURRENT_VALUE>\n(.*?)\n</CURRENT_VALUE>", messages[-1]["content"], re.S).group(1)
        calls.append(1)
        return f"<PROPOSAL>{current} {'Be vague.' if len(calls) <= useless else PRECISE}</PROPOSAL>"
    return optimizer


def http_responder(targets, useless):
    """For the HTTP test server: the scripted task, backward and optimizer models above, told apart by their
    system prompts (`useless`: the stubborn optimizer's)."""
    scripted, optimizer = scripted_models(targets), stubborn_optimizer(useless)

    def respond(messages):
        system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
        if system.startswith(BACKWARD_SYSTEM[:40]):
            return scripted.backward.respond(messages)
        if system.startswith(OPTIMIZER_SYSTEM[:40]):
            return optimizer(messages)
        return scripted.task.respond(messages)
    return respond


READY = [("classification", (12, 12, 12)), ("counting", (8, 8, 8)), ("multihop", (8, 8, 8)), ("agent", (8, 8, 8)),
         ("hotpotqa", (8, 8, 8))]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name,sizes", READY)
def test_forecast_range_holds_the_actual_calls(tmp_path, name, sizes, seed):
    if name.startswith("hotpotqa"):
        hotpotqa_or_skip()
    task = get_task(name)
    train, val, test = task.load(*sizes, seed=seed)
    targets = {e.input["question"].strip(): e.target for e in train + val + test}
    models = scripted_models(targets)
    models.optimizer.respond = stubborn_optimizer(useless=seed * 2)
    config = TrainConfig(max_steps=2, batch_size=4, seed=seed, max_failed=2, max_correct=1, max_proposals=3)
    trainer = Trainer(task.make_pipeline(), train, val, test, task.eval_fn, models, config=config,
                      run_dir=tmp_path / "run", task=name)
    forecast = trainer.forecast()
    assert models.usage.snapshot() == {}  # no LLM call was made to forecast
    summary = trainer.fit()
    assert summary.status == "completed"
    for role, spent in summary.usage.items():
        calls = forecast.roles[role].calls
        assert calls.holds(spent["calls"]), (role, calls, spent["calls"])
        assert summary.forecast_error[role]["calls"]["inside"] is True
        assert summary.forecast_error[role]["calls"]["actual"] == spent["calls"]
    assert forecast.token_counting["task"].startswith("ScriptedModel")


def shout_trainer(tmp_path, **config):
    from scripted_tasks import TEST, TRAIN, VAL, Optimizer, Shout, backward, same_text, task
    models = Models.scripted(task, backward, Optimizer())
    return Trainer(Shout(), TRAIN, VAL, TEST, same_text, models, config=TrainConfig(max_steps=2, **config),
                   run_dir=tmp_path / "run"), models


def test_the_memo_lowers_the_forecast_and_a_continued_run_forecasts_only_what_remains(tmp_path):
    trainer, models = shout_trainer(tmp_path)
    fresh = trainer.forecast()
    assert fresh.baseline and fresh.from_step == 0 and fresh.steps == 2
    trainer.evaluate(trainer.val, split="val", phase="baseline")  # the memo now holds validation's baseline
    paid = models.usage.snapshot()["task"]["calls"]
    lower = trainer.forecast()
    assert lower.roles["task"].calls.least == fresh.roles["task"].calls.least - paid
    trainer.fit()
    trainer.config.max_steps, trainer.config.epochs = 3, 2  # fit() again continues the same run
    later = trainer.forecast()
    assert not later.baseline and later.from_step == 2 and later.steps == 1
    assert later.roles["task"].calls.expected < fresh.roles["task"].calls.expected
    events = [e for e in open_run(tmp_path / "run").events() if e.type == "forecast"]
    assert len(events) == 1 and events[0].data["token_counting"]["task"].startswith("ScriptedModel")
    assert events[0].data["roles"]["task"]["calls"]["least"] <= events[0].data["roles"]["task"]["calls"]["expected"]


def test_the_response_cache_lowers_the_forecast(tmp_path):
    from scripted_tasks import TEST, TRAIN, VAL, Optimizer, Shout, route, same_text
    from workbench.llm.cache import ResponseCache
    with OpenAITestServer(route(Optimizer())) as server:
        def models():
            return Models.from_endpoint(server.base_url, "test-model", cache=ResponseCache(tmp_path / "cache.db"))
        first = models()
        trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, first, config=TrainConfig(max_steps=2),
                          run_dir=tmp_path / "a")
        cold = trainer.forecast()
        trainer.fit()
        again = Trainer(Shout(), TRAIN, VAL, TEST, same_text, models(), config=TrainConfig(max_steps=2),
                        run_dir=tmp_path / "b")
        served = server.served_count
        warm = again.forecast()
        assert server.served_count == served  # forecasting sent no chat request
        assert warm.roles["task"].calls.least == 0 and warm.roles["task"].calls.expected == 0
        assert cold.roles["task"].calls.least > 0
        summary = again.fit()
        assert all(warm.roles[role].calls.holds(u["calls"]) for role, u in summary.usage.items())


def test_forecast_error_reaches_summary_dataframe_and_report(tmp_path):
    trainer, _ = shout_trainer(tmp_path)
    summary = trainer.fit()
    run = open_run(tmp_path / "run")
    frame = run.forecast
    assert set(frame["role"]) == set(summary.usage)
    calls = frame[frame["measure"] == "calls"].set_index("role")
    for role, spent in summary.usage.items():
        assert calls.loc[role, "actual"] == spent["calls"]
        expected = calls.loc[role, "expected"]
        assert calls.loc[role, "error"] == pytest.approx((spent["calls"] - expected) / expected if expected else 0.0)
    html = render_report(run)
    assert "Forecast vs actual" in html and "error = (actual - expected) / expected" in html


def test_prices_give_a_cost_range(tmp_path):
    trainer, _ = shout_trainer(tmp_path)
    forecast = trainer.forecast(prices={"task": (1.0, 2.0), "backward": (3.0, 4.0)})
    task = forecast.roles["task"]
    assert task.cost.expected == pytest.approx(task.prompt_tokens.expected * 1e-6 + task.completion_tokens.expected * 2e-6)
    assert forecast.roles["optimizer"].cost is None  # no price given for it
    assert "$" in str(forecast)


def test_budget_relative_to_the_forecast_is_a_limit(tmp_path):
    trainer, models = shout_trainer(tmp_path, max_cost_vs_forecast=1.0)
    expected = trainer.forecast().total("calls").expected
    tight = Trainer(trainer.pipeline, trainer.train, trainer.val, trainer.test, trainer.eval_fn, models,
                    config=TrainConfig(max_steps=2, max_cost_vs_forecast=1.0), run_dir=tmp_path / "run2")
    summary = tight.fit()
    spent = sum(u["calls"] for u in summary.usage.values())
    assert spent <= -(-expected // 1)  # never past 1.0 x the expected calls
    if summary.status == "budget":
        assert "call budget" in summary.error or "token budget" in summary.error


def test_the_test_servers_tokenizer_is_used_and_counts_as_the_server_charges():
    with OpenAITestServer() as server:
        models = Models.from_endpoint(server.base_url, "test-model", cache=None)
        counter = token_counter(models.task)
        assert counter.method == "the endpoint's tokenizer (POST /tokenize)"
        messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "one two  three"}]
        assert counter.count(messages) == 5
        models.task.complete(messages)
        assert server.prompt_tokens == 5  # what the chat route charged for the same messages
        models.close()


def test_an_endpoint_without_a_tokenizer_gets_the_stated_approximation():
    class Remote:
        base_url = "http://127.0.0.1:9/v1"  # nothing listens: no tokenizer answers
        model = "m"
    counter = token_counter(Remote())
    assert counter.method == APPROXIMATION and counter.count([{"role": "user", "content": "x" * 9}]) == 3


def test_the_dashboard_header_shows_the_forecast_and_what_was_spent_against_it(tmp_path):
    from workbench.records.events import Event
    from workbench.ui.state import RunState
    trainer, _ = shout_trainer(tmp_path)
    events = []
    trainer.bus.subscribe(events.append, {"forecast", "step_finished"})
    trainer.fit()
    st = RunState()
    st.apply(events[0])
    line = st.run.traits({"controls"})["forecast"]
    expected = sum(r["calls"]["expected"] for r in events[0].data["roles"].values())
    assert line.startswith(f"forecast: ~{expected:,.0f} calls") and line.endswith(f"spent 0 of ~{expected:,.0f} forecast calls")
    st.apply(events[1])
    spent = sum(u["calls"] for u in events[1].data["usage"].values())
    assert f"spent {spent} of ~" in st.run.traits({"controls"})["forecast"]
    hostile = Event("forecast", {**events[0].data, "token_counting": {"task": "<script>alert(1)</script>"}})
    st.apply(hostile)  # the line is text (the view sets textContent); a role's counting method is not in it
    assert "<script>" not in st.run.traits({"controls"})["forecast"]


def test_a_node_with_a_model_of_its_own_is_not_called_to_forecast(tmp_path):
    from scripted_tasks import TEST, TRAIN, VAL, Optimizer, backward, same_text, task
    from workbench import LLMCall, Parameter, Pipeline
    from workbench.llm.scripted import ScriptedModel
    own = ScriptedModel(task)

    class Fixed(Pipeline):
        def __init__(self):
            self.instruction = Parameter("shout.instruction", "Repeat the word.")
            self.node = LLMCall("shout", "{{instruction}}\nWord: {{word}}", [self.instruction], model=own)

        def forward(self, word):
            return self.node(word=word)
    pipeline = Fixed()
    trainer = Trainer(pipeline, TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, Optimizer()),
                      config=TrainConfig(max_steps=1), run_dir=tmp_path / "run")
    trainer.forecast()
    assert own.calls == [] and pipeline.node.model is own


def eval_refusing_placeholders(prediction, target):
    """Fine on real replies; out of range on anything else (a bug the forecast's placeholder meets)."""
    return float(prediction == target) if prediction.isalpha() else 2.0


def test_a_forecast_that_fails_warns_and_the_run_goes_on_unless_a_budget_needs_it(tmp_path):
    from scripted_tasks import TEST, TRAIN, VAL, Optimizer, Shout, backward, task
    from workbench.errors import ConfigError

    def make(name, **config):
        return Trainer(Shout(), TRAIN, VAL, TEST, eval_refusing_placeholders,
                       Models.scripted(task, backward, Optimizer()), config=TrainConfig(max_steps=1, **config),
                       run_dir=tmp_path / name)
    with pytest.warns(UserWarning, match="no cost forecast for this run: EvalFunctionError"):
        summary = make("plain").fit()
    assert summary.status == "completed" and summary.forecast_error is None
    assert open_run(tmp_path / "plain").forecast.empty
    with pytest.raises(ConfigError, match="max_cost_vs_forecast needs a forecast"):
        make("limited", max_cost_vs_forecast=1.5).fit()
    assert open_run(tmp_path / "limited").summary["status"] == "failed"


def test_forecast_and_ablate_are_refused_while_the_run_trains(tmp_path):
    import threading
    from scripted_tasks import TEST, TRAIN, VAL, Optimizer, Shout, backward, same_text, task
    from workbench import HumanApproval
    from workbench.errors import WorkbenchError
    asked = threading.Event()

    class Waiting(HumanApproval):
        def decide(self, pending, stopped):
            asked.set()
            return super().decide(pending, stopped)
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, Optimizer()),
                      config=TrainConfig(max_steps=1), approval=Waiting(), run_dir=tmp_path / "run")
    future = trainer.start()
    assert asked.wait(30)  # the run waits for a person in the middle of its step
    value = trainer.params["shout.instruction"].value
    for call in (trainer.forecast, trainer.ablate):
        with pytest.raises(WorkbenchError, match="while this trainer trains"):
            call()
    assert trainer.params["shout.instruction"].value == value
    trainer.stop()
    future.result(30)
    assert trainer.forecast().from_step == trainer.step  # once it ended, it answers


def test_priors_move_the_expected_value_only_and_are_stated(tmp_path):
    from workbench.errors import ConfigError
    from workbench.training.forecasting.forecast import Priors
    trainer, _ = shout_trainer(tmp_path)
    default, calm = trainer.forecast(), trainer.forecast(priors=Priors(failing_share=0.1, keep_chance=0.9))
    for role in ("backward", "optimizer"):
        a, b = default.roles[role].calls, calm.roles[role].calls
        assert b.expected < a.expected and (b.least, b.most) == (a.least, a.most)
    assert calm.assumptions[0].startswith("expected: 10% of samples fail; an attempt is kept with probability 0.9")
    with pytest.raises(ConfigError, match="keep_chance must be in"):
        Priors(keep_chance=1.5)



def test_a_continued_run_s_report_says_its_forecast_counts_only_the_calls_since_it(tmp_path):
    """fit() again (or a resume) forecasts what remains: the report's actual is the spend since that
    forecast, while its usage table counts every session; the report says which and how many came before."""
    trainer, _ = shout_trainer(tmp_path)
    trainer.config.max_steps = 1
    first = trainer.fit()
    before = sum(u["calls"] for u in first.usage.values())
    trainer.config.max_steps = 2
    trainer.fit()
    html = render_report(open_run(tmp_path / "run"))
    assert f"the {before} calls paid before it are in Usage" in html
    fresh, _ = shout_trainer(tmp_path / "fresh")
    fresh.fit()
    assert "paid before it" not in render_report(open_run(tmp_path / "fresh" / "run"))
