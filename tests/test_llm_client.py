"""LLMClient against our OpenAI-compatible test server, over real HTTP through the openai SDK."""

from __future__ import annotations

import threading
import time

import pytest

from workbench.errors import EndpointUnreachableError, LLMCallError
from workbench.llm import LLMClient, Models, ResponseCache, ScriptedModel, UsageMeter
from workbench.llm.client import fold_system_messages
from workbench.testing import OpenAITestServer

from llm_helpers import closed_port


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def echo_reversed(messages: list[dict]) -> str:
    return " ".join(reversed(messages[-1]["content"].split()))


@pytest.fixture
def server():
    with OpenAITestServer(responder=echo_reversed) as srv:
        yield srv


def fast_client(base_url: str, **kwargs) -> LLMClient:
    """A client whose retries take milliseconds, so failure tests stay fast."""
    kwargs.setdefault("backoff_initial_s", 0.01)
    kwargs.setdefault("backoff_max_s", 0.05)
    kwargs.setdefault("timeout", 10.0)
    return LLMClient("test-model", base_url=base_url, api_key="test-key", **kwargs)


def test_completion_and_usage_match_what_the_server_counted(server):
    client = fast_client(server.base_url, role="backward")
    prompts = [
        [{"role": "system", "content": "You reverse words."}, {"role": "user", "content": "one two three"}],
        user("alpha beta"),
        user("a b c d e f"),
    ]
    completions = [client.complete(messages) for messages in prompts]

    assert completions[0].text == "three two one"
    assert completions[0].prompt_tokens == 3 + 3
    assert completions[0].completion_tokens == 3
    assert completions[0].model == "test-model"
    assert not completions[0].cached
    assert completions[0].latency_s > 0

    usage = client.usage.snapshot()["backward"]
    assert server.request_count == server.served_count == 3
    assert usage["calls"] == 3
    assert usage["prompt_tokens"] == server.prompt_tokens == sum(c.prompt_tokens for c in completions)
    assert usage["completion_tokens"] == server.completion_tokens == sum(c.completion_tokens for c in completions)
    assert usage["cache_hits"] == 0
    assert client.usage.total()["calls"] == 3


def test_sampling_settings_are_sent_and_overridable(server):
    client = fast_client(server.base_url, temperature=0.0, max_tokens=16)
    client.complete(user("x"))
    client.complete(user("x"), temperature=0.7, max_tokens=5, stop=["\n"])
    first, second = server.requests
    assert (first["temperature"], first["max_tokens"]) == (0.0, 16)
    assert (second["temperature"], second["max_tokens"], second["stop"]) == (0.7, 5, ["\n"])


def test_second_identical_run_is_served_from_cache_without_http(server, tmp_path):
    cache = ResponseCache(tmp_path / "cache.sqlite")
    prompts = [user(f"question number {i}") for i in range(5)]

    first_run = LLMClient("test-model", base_url=server.base_url, cache=cache)
    first_texts = [first_run.complete(p).text for p in prompts]
    assert server.request_count == 5

    # A fresh client and meter, same cache file re-opened: as if the notebook were re-run.
    second_run = LLMClient("test-model", base_url=server.base_url, cache=ResponseCache(tmp_path / "cache.sqlite"))
    second = [second_run.complete(p) for p in prompts]

    assert server.request_count == 5, "cached calls must not reach the server"
    assert [c.text for c in second] == first_texts
    assert all(c.cached for c in second)
    usage = second_run.usage.snapshot()["task"]
    assert usage["cache_hits"] == 5
    assert usage["calls"] == usage["prompt_tokens"] == usage["completion_tokens"] == 0


def test_cache_key_covers_model_and_sampling(server, tmp_path):
    cache = ResponseCache(tmp_path / "cache.sqlite")
    client = LLMClient("test-model", base_url=server.base_url, cache=cache)
    client.complete(user("same words"))
    client.complete(user("same words"), temperature=0.5, seed=7)
    LLMClient("other-model", base_url=server.base_url, cache=cache).complete(user("same words"))
    client.complete(user("same words"), use_cache=False)
    assert server.request_count == 4
    client.complete(user("same words"))
    client.complete(user("same words"), temperature=0.5, seed=7)
    assert server.request_count == 4
    assert len(cache) == 3


def test_cache_is_thread_safe(server, tmp_path):
    cache = ResponseCache(tmp_path / "cache.sqlite")
    client = LLMClient("test-model", base_url=server.base_url, cache=cache, max_concurrency=8)
    threads = [threading.Thread(target=client.complete, args=(user(f"q {i % 4}"),)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    usage = client.usage.snapshot()["task"]
    assert usage["calls"] + usage["cache_hits"] == 16
    assert len(cache) == 4


def test_default_cache_location_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "wb"))
    cache = ResponseCache.default()
    assert cache.path == tmp_path / "wb" / "llm-cache.sqlite"
    key = ResponseCache.key("http://a/v1", "m", user("hi"), {"temperature": 0})
    cache.put(key, {"text": "hello"})
    assert cache.get(key) == {"text": "hello"}
    assert cache.get(ResponseCache.key("http://a/v1", "m", user("hi"), {"temperature": 1})) is None
    assert cache.get(ResponseCache.key("http://b/v1", "m", user("hi"), {"temperature": 0})) is None


def test_429_is_retried_after_the_servers_retry_after(server):
    server.fail_next((429, {"Retry-After": "0.4"}, "slow down"))
    # Backoff alone would wait >= 5 s: finishing sooner proves Retry-After was used.
    client = fast_client(server.base_url, backoff_initial_s=10.0, backoff_max_s=10.0)
    started = time.monotonic()
    completion = client.complete(user("hello world"))
    elapsed = time.monotonic() - started

    assert completion.text == "world hello"
    assert server.request_count == 2
    assert 0.4 <= elapsed < 3.0
    usage = client.usage.snapshot()["task"]
    assert usage["calls"] == 1 and usage["prompt_tokens"] == server.prompt_tokens


def test_retry_after_is_capped(server):
    server.fail_next((503, {"Retry-After": "3600"}))
    client = fast_client(server.base_url, retry_after_cap_s=0.1)
    started = time.monotonic()
    assert client.complete(user("a b")).text == "b a"
    assert time.monotonic() - started < 3.0


def test_exhausted_500s_raise_llm_call_error_naming_url(server):
    server.fail_next(*[(500, {}, "model exploded")] * 3)
    client = fast_client(server.base_url, max_retries=2)
    with pytest.raises(LLMCallError) as info:
        client.complete(user("hi"))
    error = info.value
    assert server.request_count == 3
    assert error.status == 500
    assert server.base_url in str(error)
    assert "model exploded" in str(error)
    assert client.usage.total()["calls"] == 0


def test_client_errors_are_not_retried(server):
    server.fail_next((400, {}, "bad request: unknown field"))
    client = fast_client(server.base_url, max_retries=3)
    with pytest.raises(LLMCallError, match="unknown field") as info:
        client.complete(user("hi"))
    assert info.value.status == 400
    assert server.request_count == 1


def test_slow_server_times_out_with_llm_call_error():
    with OpenAITestServer(latency_s=1.5) as slow:
        client = fast_client(slow.base_url, timeout=0.2, max_retries=1)
        with pytest.raises(LLMCallError, match="no reply within") as info:
            client.complete(user("hi"))
        assert slow.base_url in str(info.value)
        assert slow.request_count == 2


def test_unreachable_endpoint_raises_quickly_naming_url():
    url = f"http://127.0.0.1:{closed_port()}/v1"
    client = fast_client(url, max_retries=2)
    started = time.monotonic()
    with pytest.raises(EndpointUnreachableError) as info:
        client.complete(user("hi"))
    assert time.monotonic() - started < 5.0
    assert info.value.url == url
    assert url in str(info.value)


def test_concurrency_limit_is_respected():
    with OpenAITestServer(latency_s=0.15) as srv:
        client = fast_client(srv.base_url, max_concurrency=3)
        threads = [threading.Thread(target=client.complete, args=(user(f"q{i}"),)) for i in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert srv.served_count == 12
        assert 2 <= srv.max_in_flight <= 3


def test_server_handles_concurrent_requests_in_parallel():
    with OpenAITestServer(latency_s=0.5) as srv:
        client = fast_client(srv.base_url, max_concurrency=10)
        threads = [threading.Thread(target=client.complete, args=(user(f"q{i}"),)) for i in range(10)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        assert srv.served_count == 10
        assert srv.max_in_flight >= 8
        assert elapsed < 2.0, f"10 requests of 0.5 s took {elapsed:.2f} s: they were serialised"


def test_test_server_lists_models(server):
    import json
    import urllib.request

    with urllib.request.urlopen(server.base_url + "/models") as response:
        assert [m["id"] for m in json.loads(response.read())["data"]] == ["test-model"]


def test_scripted_model_records_calls_and_usage():
    usage = UsageMeter()
    model = ScriptedModel(lambda messages: "yes indeed", role="optimizer", usage=usage)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Is it?"}]
    completion = model.complete(messages, temperature=0.3)

    assert completion.text == "yes indeed"
    assert (completion.prompt_tokens, completion.completion_tokens) == (4, 2)
    assert model.calls == [messages]
    assert model.sampling_calls == [{"temperature": 0.3}]
    messages.append({"role": "user", "content": "mutated later"})
    assert len(model.calls[0]) == 2, "calls keeps a copy of what was sent"
    assert usage.snapshot() == {
        "optimizer": {"calls": 1, "prompt_tokens": 4, "completion_tokens": 2, "cache_hits": 0,
                      "latency_s": completion.latency_s}
    }


def test_models_scripted_share_one_usage_meter():
    models = Models.scripted(lambda m: "task", lambda m: "grad", lambda m: "new prompt")
    assert models.task.complete(user("x")).text == "task"
    assert models.backward.complete(user("x")).text == "grad"
    assert models.optimizer.complete(user("x")).text == "new prompt"
    assert set(models.usage.snapshot()) == {"task", "backward", "optimizer"}
    assert models.usage.total()["calls"] == 3


def test_models_from_env_uses_configured_endpoint(server, monkeypatch):
    monkeypatch.setenv("WORKBENCH_BASE_URL", server.base_url)
    monkeypatch.setenv("WORKBENCH_API_KEY", "k")
    monkeypatch.delenv("WORKBENCH_TASK_MODEL", raising=False)
    monkeypatch.setenv("WORKBENCH_BACKWARD_MODEL", "big-model")
    monkeypatch.delenv("WORKBENCH_OPTIMIZER_MODEL", raising=False)
    monkeypatch.setenv("WORKBENCH_FOLD_SYSTEM", "0")  # no probe: the counts below are the test's calls
    models = Models.from_env(cache=None)
    try:
        assert {(n["role"], n["fold_system"], n["source"]) for n in models.notices} == {
            ("task", False, "config"), ("backward", False, "config"), ("optimizer", False, "config")}
        assert models.server is None
        assert (models.task.model, models.backward.model, models.optimizer.model) == (
            "test-model", "big-model", "test-model")
        assert [m.role for m in models.by_role().values()] == ["task", "backward", "optimizer"]
        models.task.complete(user("a b"))
        models.backward.complete(user("c d"))
        assert models.usage.total()["calls"] == 2
        assert [r["model"] for r in server.requests] == ["test-model", "big-model"]
    finally:
        models.close()


def test_fold_system_messages_moves_instructions_into_first_user_turn():
    folded = fold_system_messages([
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Bonjour"},
        {"role": "user", "content": "Bye"},
    ])
    assert folded == [
        {"role": "user", "content": "Answer in French.\n\nHello"},
        {"role": "assistant", "content": "Bonjour"},
        {"role": "user", "content": "Bye"},
    ]
    assert fold_system_messages([{"role": "system", "content": "Only"}]) == [{"role": "user", "content": "Only"}]


def test_fold_system_messages_keeps_content_parts_intact():
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    folded = fold_system_messages([
        {"role": "system", "content": [{"type": "text", "text": "Describe briefly."}]},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]},
    ])
    assert folded == [{"role": "user", "content": [{"type": "text", "text": "Describe briefly.\n\n"},
                                                   {"type": "text", "text": "What is this?"}, image]}]
