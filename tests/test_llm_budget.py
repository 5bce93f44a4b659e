"""Budgets are limits checked before each call is sent, shared by every role; cache hits are free.

The HTTP tests go through the real openai SDK to our test server, so "calls" means requests the
endpoint actually received.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from workbench.errors import BudgetExceeded, ConfigError, LLMCallError, WorkbenchError
from workbench.llm import Budget, LLMClient, Models, ResponseCache, ScriptedModel
from workbench.testing import OpenAITestServer

from llm_helpers import user


def attempt_all(model, prompts, workers=16):
    """Send every prompt at once; returns (texts answered, BudgetExceeded raised)."""
    def one(prompt):
        try:
            return model.complete(user(prompt)).text
        except BudgetExceeded as exc:
            return exc
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(one, prompts))
    return [r for r in results if isinstance(r, str)], [r for r in results if isinstance(r, BudgetExceeded)]


def test_call_limit_holds_with_sixteen_calls_in_flight():
    """max_calls=6 with 16 concurrent validation samples sends exactly 6 requests (was 16)."""
    with OpenAITestServer(responder=lambda m: "yes", latency_s=0.2) as server:
        client = LLMClient("test-model", base_url=server.base_url, api_key="k", max_concurrency=16)
        client.budget = Budget(max_calls=6)
        answered, refused = attempt_all(client, [f"sample {i}" for i in range(16)])
        assert server.request_count == 6
        assert len(answered) == 6 and len(refused) == 10
        assert "max_calls=6" in str(refused[0])
        assert isinstance(refused[0], WorkbenchError)
        assert client.budget.snapshot()["calls"] == 6 and client.budget.snapshot()["in_flight"] == 0


def test_one_budget_is_shared_by_every_role_and_cache_hits_are_free(tmp_path):
    with OpenAITestServer(responder=lambda m: "fine") as server:
        models = Models.from_endpoint(server.base_url, "test-model", api_key="k",
                                      cache=ResponseCache(tmp_path / "c.sqlite"))
        budget = Budget(max_calls=3)
        models.use_budget(budget)
        assert all(m.budget is budget for m in models.by_role().values())
        models.task.complete(user("a"))
        models.backward.complete(user("b"))
        models.optimizer.complete(user("c"))
        with pytest.raises(BudgetExceeded, match="max_calls=3"):
            models.backward.complete(user("d"))
        # answered from the cache: not blocked, not charged
        assert models.task.complete(user("a")).cached
        assert budget.calls == 3 and server.request_count == 3
        models.use_budget(None)
        models.backward.complete(user("d"))
        assert server.request_count == 4
        models.close()


def test_token_limit_overshoots_by_at_most_the_calls_in_flight():
    with OpenAITestServer(responder=lambda m: "one two three four", latency_s=0.1) as server:
        client = LLMClient("test-model", base_url=server.base_url, api_key="k", max_concurrency=4)
        budget = client.budget = Budget(max_tokens=20)  # each call: 2 prompt + 4 completion words = 6 tokens
        answered, refused = attempt_all(client, [f"word {i}" for i in range(40)], workers=4)
        assert refused and len(answered) == server.request_count
        # 20 tokens are reached after 4 calls; at most 4 were in flight when they ran out
        assert 4 <= server.request_count <= 4 + 4 - 1
        assert budget.tokens == 6 * server.request_count
        assert "max_tokens=20" in str(refused[0])


def test_time_limit_is_checked_before_sending():
    clock_model = ScriptedModel(lambda m: "ok")
    clock_model.budget = Budget(max_seconds=0.0)
    with pytest.raises(BudgetExceeded, match="max_seconds=0"):
        clock_model.complete(user("late"))
    assert clock_model.calls == []  # the function (the "endpoint") was never called


def test_scripted_model_honours_the_budget_like_the_http_client():
    model = ScriptedModel(lambda m: "a b", budget=Budget(max_calls=2))
    model.complete(user("1"))
    model.complete(user("2"))
    with pytest.raises(BudgetExceeded):
        model.complete(user("3"))
    assert len(model.calls) == 2


def test_a_failed_call_frees_its_reservation_and_is_not_charged():
    with OpenAITestServer(responder=lambda m: "ok", failures=[500, 500]) as server:
        client = LLMClient("test-model", base_url=server.base_url, api_key="k", max_retries=1,
                           backoff_initial_s=0.01, backoff_max_s=0.02)
        budget = client.budget = Budget(max_calls=1)
        with pytest.raises(LLMCallError):
            client.complete(user("x"))
        assert budget.snapshot()["in_flight"] == 0 and budget.calls == 0
        assert client.complete(user("x")).text == "ok"
        assert budget.calls == 1


def test_budget_counts_from_its_creation_not_from_earlier_use():
    model = ScriptedModel(lambda m: "ok")
    for i in range(5):
        model.complete(user(str(i)))
    model.budget = Budget(max_calls=2)  # a second run on the same models starts at zero
    model.complete(user("a"))
    model.complete(user("b"))
    with pytest.raises(BudgetExceeded):
        model.complete(user("c"))
    model.budget.restart()
    model.complete(user("d"))


def test_reservations_are_exact_under_contention():
    budget = Budget(max_calls=50)
    granted = []
    lock = threading.Lock()

    def worker():
        for _ in range(20):
            try:
                reservation = budget.reserve()
            except BudgetExceeded:
                continue
            with lock:
                granted.append(reservation)
            reservation.settle(1, 1)
            reservation.settle(1, 1)  # settling twice charges once
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 50 and budget.calls == 50 and budget.tokens == 100 and budget.refused == 160 - 50


@pytest.mark.parametrize("bad", [-1, "10", True, 2.5j])
def test_bad_limits_are_refused_naming_the_value(bad):
    with pytest.raises(ConfigError, match="max_calls"):
        Budget(max_calls=bad)


def test_a_training_run_stops_at_its_call_budget_and_a_second_run_starts_fresh(tmp_path):
    """Issue 8.3 end to end: 16 validation samples in flight, max_calls=6, one budget for every role."""
    from workbench.training.trainer import TrainConfig, Trainer

    from scripted_tasks import TRAIN, WORDS, Optimizer, Shout, examples, route, same_text

    val = examples("va16", WORDS[:16])
    with OpenAITestServer(responder=route(Optimizer()), latency_s=0.05) as server:
        models = Models.from_endpoint(server.base_url, "test-model", api_key="k", cache=None)
        config = TrainConfig(max_steps=2, batch_size=4, concurrency=16, max_calls=6)
        first = Trainer(Shout(), TRAIN, val, [], same_text, models, config=config, run_dir=tmp_path / "one").fit()
        assert first.status == "budget" and server.request_count == 6
        second = Trainer(Shout(), TRAIN, val, [], same_text, models, config=config, run_dir=tmp_path / "two").fit()
        assert second.status == "budget" and server.request_count == 12  # six more: not stopped by the first's calls
