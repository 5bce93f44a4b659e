"""One way to resolve a run's models (Models.from_env), per-role reply caps and timeouts, and a
concurrency setting that reaches the endpoint."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from workbench.errors import ConfigError
from workbench.llm import LLMClient, Models, uses_embedded_model
from workbench.llm.models import EMBEDDED_REPLY_CAPS, EMBEDDED_TIMEOUTS, ENDPOINT_REPLY_CAPS, ENDPOINT_TIMEOUTS
from workbench.testing import OpenAITestServer

from llm_helpers import clear_endpoint_env, user


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    clear_endpoint_env(monkeypatch)


def test_arguments_come_before_the_environment(monkeypatch):
    with OpenAITestServer(model_ids=["listed-model"]) as server:
        monkeypatch.setenv("WORKBENCH_BASE_URL", "http://127.0.0.1:9/v1")  # would be unreachable
        monkeypatch.setenv("WORKBENCH_OPTIMIZER_MODEL", "env-optimizer")
        models = Models.from_env(cache=None, base_url=server.base_url, backward_model="flag-backward")
        assert (models.task.model, models.backward.model, models.optimizer.model) == (
            "listed-model", "flag-backward", "env-optimizer")
        assert models.task.base_url == server.base_url
        models.close()


def test_nothing_configured_means_the_embedded_model():
    assert uses_embedded_model()
    assert not uses_embedded_model(base_url="http://localhost:8000/v1")
    with pytest.raises(ConfigError, match="no endpoint configured"):
        Models.from_env(cache=None, embedded=False)


def test_a_model_without_endpoint_or_key_is_a_config_error(monkeypatch):
    with pytest.raises(ConfigError, match="OpenAI API, which needs a key"):
        Models.from_env(cache=None, model="gpt-4o-mini")
    monkeypatch.setenv("WORKBENCH_TASK_MODEL", "gpt-4o-mini")
    assert not uses_embedded_model()  # a named model is never silently replaced by the embedded one


def test_backward_model_alone_needs_an_endpoint():
    with pytest.raises(ConfigError, match="need an endpoint"):
        Models.from_env(cache=None, backward_model="big")


def test_a_hosted_model_with_a_key_goes_to_openai(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-hosted-123456789")
    models = Models.from_env(cache=None, model="gpt-4o-mini", fold_system=False)
    assert models.task.base_url == "https://api.openai.com/v1" and models.task.model == "gpt-4o-mini"
    models.close()


def test_reply_caps_and_timeouts_are_per_role_and_overridable():
    with OpenAITestServer() as server:
        models = Models.from_endpoint(server.base_url, "m", api_key="k", cache=None)
        assert {r: m.max_tokens for r, m in models.by_role().items()} == ENDPOINT_REPLY_CAPS
        assert {r: m.timeout for r, m in models.by_role().items()} == ENDPOINT_TIMEOUTS
        models.optimizer.complete(user("propose"))
        assert server.requests[-1]["max_tokens"] == ENDPOINT_REPLY_CAPS["optimizer"]

        capped = Models.from_endpoint(server.base_url, "m", api_key="k", cache=None, max_tokens=40,
                                      timeouts={"task": 5.0})
        assert {m.max_tokens for m in capped.by_role().values()} == {40}
        assert capped.task.timeout == 5.0 and capped.backward.timeout == ENDPOINT_TIMEOUTS["backward"]
    # the embedded model's are short: a base model on a CPU rarely stops by itself
    assert max(EMBEDDED_REPLY_CAPS.values()) <= 128 and EMBEDDED_REPLY_CAPS["task"] < ENDPOINT_REPLY_CAPS["task"]
    assert min(EMBEDDED_TIMEOUTS.values()) > max(ENDPOINT_TIMEOUTS.values())


def test_set_concurrency_reaches_the_endpoint():
    """The client used to cap every role at 8 in flight whatever the trainer asked for."""
    with OpenAITestServer(responder=lambda m: "ok", latency_s=0.5) as server:
        models = Models.from_endpoint(server.base_url, "m", api_key="k", cache=None)
        assert models.set_concurrency(32) == 32
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=32) as pool:
            list(pool.map(lambda i: models.task.complete(user(f"q{i}")), range(32)))
        wall = time.perf_counter() - started
        assert server.max_in_flight == 32
        assert wall < 1.5  # one round of 0.5 s, not four
        pool_limits = models.task._sdk._client._transport._pool
        assert pool_limits._max_connections >= 32 and pool_limits._max_keepalive_connections >= 32
        models.close()


def test_an_endpoint_that_takes_one_request_at_a_time_keeps_its_shared_slot():
    with OpenAITestServer(responder=lambda m: "ok", latency_s=0.1) as server:
        shared = threading.BoundedSemaphore(1)
        models = Models.from_endpoint(server.base_url, "m", api_key="k", cache=None, max_concurrency=1,
                                      semaphore=shared)
        models.concurrency_cap = 1  # as Models.local sets for the embedded server
        assert models.set_concurrency(8) == 1
        with ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(lambda i: list(models.by_role().values())[i % 3].complete(user(f"q{i}")), range(6)))
        assert server.max_in_flight == 1
        models.close()


@pytest.mark.parametrize("bad", [0, -3, 2.5, "8"])
def test_bad_concurrency_is_refused_naming_the_value(bad):
    models = Models.from_endpoint("http://127.0.0.1:9/v1", "m", api_key="k", cache=None)
    with pytest.raises(ConfigError, match="concurrency"):
        models.set_concurrency(bad)
    with pytest.raises(ConfigError, match=str(bad)):
        LLMClient("m", base_url="http://127.0.0.1:9/v1", api_key="k", max_concurrency=bad)


def test_an_endpoint_listing_no_model_asks_for_one_by_name():
    with OpenAITestServer(model_ids=[]) as server:
        with pytest.raises(ConfigError, match="lists no model; set WORKBENCH_TASK_MODEL"):
            Models.from_env(cache=None, base_url=server.base_url)
