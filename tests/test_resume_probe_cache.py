"""The endpoint's system-message probe is remembered in the response cache, so a replay is free.

A new process forgets what the last one probed; with the same response cache it must not pay the
probe's two requests again (a replay of a run from a warm cache makes zero HTTP calls). Real HTTP
through the openai SDK to our test server; `forget_probes()` stands in for a new process.
"""
from __future__ import annotations

from workbench.llm import LLMClient, Models, ResponseCache
from workbench.llm.probe import forget_probes, probe_system_messages
from workbench.testing import OpenAITestServer

from test_llm_probe import fresh  # noqa: F401  (autouse: no endpoint env, probes forgotten)


def test_a_new_process_on_the_same_cache_makes_no_probe_calls(tmp_path):
    with OpenAITestServer(responder=lambda m: "ok", drop_system=True) as server:
        cache = ResponseCache(tmp_path / "cache.sqlite")
        first = Models.from_env(cache=cache, base_url=server.base_url, model="test-model")
        assert server.request_count == 2 and first.task.fold_system_prompt
        first.close()
        forget_probes()  # a new process
        second = Models.from_env(cache=ResponseCache(tmp_path / "cache.sqlite"), base_url=server.base_url,
                                 model="test-model")
        assert server.request_count == 2  # the answer came from the cache
        assert second.task.fold_system_prompt  # and it is the same answer: still folded
        assert {n["system_messages"] for n in second.notices} == {"dropped"}
        second.close()


def test_the_remembered_probe_belongs_to_one_endpoint_and_model(tmp_path):
    cache = ResponseCache(tmp_path / "cache.sqlite")
    with OpenAITestServer(responder=lambda m: "ok", drop_system=True) as dropping, \
            OpenAITestServer(responder=lambda m: "ok") as keeping:
        assert probe_system_messages(LLMClient("m", base_url=dropping.base_url, api_key="k", cache=cache)) == "dropped"
        forget_probes()
        assert probe_system_messages(LLMClient("m", base_url=keeping.base_url, api_key="k", cache=cache)) == "kept"
        assert probe_system_messages(LLMClient("other", base_url=dropping.base_url, api_key="k",
                                               cache=cache)) == "dropped"
        assert (dropping.request_count, keeping.request_count) == (4, 2)  # each endpoint+model probed once


def test_a_failed_probe_is_not_written_to_the_cache(tmp_path):
    cache = ResponseCache(tmp_path / "cache.sqlite")
    with OpenAITestServer(responder=lambda m: "ok", failures=[500]) as server:
        client = LLMClient("test-model", base_url=server.base_url, api_key="k", cache=cache, max_retries=0)
        assert probe_system_messages(client) == "unknown"
        assert len(cache) == 0
        forget_probes()
        assert probe_system_messages(client) == "kept"  # asked again over HTTP, then remembered
        forget_probes()
        assert probe_system_messages(client) == "kept"
        assert server.request_count == 1 + 2


def test_a_damaged_cache_entry_means_a_probe_not_a_crash(tmp_path):
    cache = ResponseCache(tmp_path / "cache.sqlite")
    with OpenAITestServer(responder=lambda m: "ok") as server:
        client = LLMClient("test-model", base_url=server.base_url, api_key="k", cache=cache)
        assert probe_system_messages(client) == "kept"
        with cache._lock:
            cache._db.execute("UPDATE responses SET value = ?", ('{"text": "maybe"}',))
        forget_probes()
        assert probe_system_messages(client) == "kept"  # an answer it does not know is probed again
        assert server.request_count == 4


def test_a_remembered_probe_expires_and_the_endpoint_is_asked_again(tmp_path, monkeypatch):
    """A server restarted with another chat template keeps its URL and model name: the cached answer
    is trusted for WORKBENCH_PROBE_MAX_AGE_DAYS (default 7), then the endpoint is probed again."""
    import time

    import pytest

    from workbench.errors import ConfigError
    from workbench.llm.probe import _cache_key

    cache = ResponseCache(tmp_path / "cache.sqlite")
    with OpenAITestServer(responder=lambda m: "ok", drop_system=True) as server:
        client = LLMClient("test-model", base_url=server.base_url, api_key="k", cache=cache)
        assert probe_system_messages(client) == "dropped" and server.request_count == 2
        entry = cache.get(_cache_key(client))
        cache.put(_cache_key(client), dict(entry, probed_at=time.time() - 6 * 86400))  # six days old
        forget_probes()
        assert probe_system_messages(client) == "dropped" and server.request_count == 2  # still trusted
        cache.put(_cache_key(client), dict(entry, probed_at=time.time() - 8 * 86400))  # eight days old
        forget_probes()
        assert probe_system_messages(client) == "dropped" and server.request_count == 4  # asked again
        monkeypatch.setenv("WORKBENCH_PROBE_MAX_AGE_DAYS", "0")  # never trust a remembered answer
        forget_probes()
        assert probe_system_messages(client) == "dropped" and server.request_count == 6
        del entry["probed_at"]  # written by a version that did not date its probes
        cache.put(_cache_key(client), entry)
        monkeypatch.setenv("WORKBENCH_PROBE_MAX_AGE_DAYS", "30")
        forget_probes()
        assert probe_system_messages(client) == "dropped" and server.request_count == 8
        monkeypatch.setenv("WORKBENCH_PROBE_MAX_AGE_DAYS", "a week")
        forget_probes()
        with pytest.raises(ConfigError, match="WORKBENCH_PROBE_MAX_AGE_DAYS.*'a week'"):
            probe_system_messages(client)
