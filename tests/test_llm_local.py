"""The embedded model: llama.cpp's server running Gemma 3 270M, driven through LLMClient."""

from __future__ import annotations

import importlib.util
import json
import urllib.request

import pytest

from workbench.errors import LocalModelError
from workbench.llm import LLMClient, LocalServer, Models, ResponseCache
from workbench.llm import embedded_server as local_module
from workbench.llm.models import EMBEDDED_REPLY_CAPS
from workbench.llm.probe import forget_probes, probe_system_messages

QUESTION = [{"role": "user", "content": "Name a color of the sky."}]


@pytest.fixture(scope="module")
def local_server():
    with LocalServer(startup_timeout_s=300) as server:
        yield server


def post_chat(base_url: str, body: dict) -> dict:
    request = urllib.request.Request(
        base_url + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.loads(response.read())


@pytest.mark.local_model
def test_real_completion_and_usage_match_the_servers_usage(local_server, tmp_path):
    client = LLMClient(
        local_server.model, base_url=local_server.base_url, cache=ResponseCache(tmp_path / "c.sqlite"),
        max_tokens=16, timeout=300, cache_truncated=True,  # a 16-token reply is cut: cache it anyway
    )
    completion = client.complete(QUESTION)

    assert completion.text.strip()
    assert not completion.cached
    assert completion.model == local_server.model
    assert completion.prompt_tokens > 0
    assert 0 < completion.completion_tokens <= 16

    # Temperature 0 is deterministic: the same request sent by hand reports the same usage.
    raw = post_chat(local_server.base_url, {
        "model": local_server.model, "messages": QUESTION, "temperature": 0.0, "max_tokens": 16,
    })
    assert raw["choices"][0]["message"]["content"] == completion.text
    assert raw["usage"]["prompt_tokens"] == completion.prompt_tokens
    assert raw["usage"]["completion_tokens"] == completion.completion_tokens

    usage = client.usage.snapshot()["task"]
    assert (usage["calls"], usage["prompt_tokens"], usage["completion_tokens"], usage["cache_hits"]) == (
        1, completion.prompt_tokens, completion.completion_tokens, 0)

    again = client.complete(QUESTION)
    assert again.cached and again.text == completion.text
    usage = client.usage.snapshot()["task"]
    assert (usage["calls"], usage["cache_hits"], usage["prompt_tokens"]) == (1, 1, completion.prompt_tokens)


@pytest.mark.local_model
def test_models_local_reuses_a_running_server_and_keeps_system_prompts(local_server):
    models = Models.local(server=local_server, cache=None, max_tokens=8)
    assert models.server is local_server
    assert {m.model for m in models.by_role().values()} == {local_server.model}

    with_system = [{"role": "system", "content": "Reply with one word."}, *QUESTION]
    completion = models.backward.complete(with_system)
    plain = models.backward.complete(QUESTION)
    assert completion.text.strip()
    # llama.cpp's gemma format would drop the system message; folded into the user turn it counts.
    assert completion.prompt_tokens > plain.prompt_tokens
    assert models.usage.snapshot()["backward"]["calls"] == 2
    for model in models.by_role().values():
        model.close()  # not models.close(): the module's server stays up for the other tests


@pytest.mark.local_model
def test_the_probe_finds_that_llama_cpp_gemma_drops_system_messages(local_server):
    """The case of issue 8.8: the same prompt tokens with and without a system message."""
    forget_probes()
    client = LLMClient(local_server.model, base_url=local_server.base_url, timeout=300)
    try:
        assert probe_system_messages(client) == "dropped"
        assert client.usage.snapshot()["probe"]["calls"] == 2
    finally:
        client.close()
        forget_probes()


@pytest.mark.local_model
def test_embedded_models_are_short_folded_and_cached_by_model_file(local_server):
    models = Models.local(server=local_server, cache=None)
    try:
        assert {r: m.max_tokens for r, m in models.by_role().items()} == EMBEDDED_REPLY_CAPS
        assert {(n["system_messages"], n["fold_system"], n["source"]) for n in models.notices} == {
            ("dropped", True, "config")}
        namespace = models.task.cache_namespace
        assert namespace.startswith("embedded:") and local_server.model_path.name in namespace
        assert str(local_server.port) not in namespace  # a restart on another port still hits the cache
        assert models.set_concurrency(8) == 1
    finally:
        for model in models.by_role().values():
            model.close()


@pytest.mark.local_model
def test_start_failure_reports_the_server_log(tmp_path):
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"this is not a gguf file")
    server = LocalServer(model_path=bogus, startup_timeout_s=120)
    with pytest.raises(LocalModelError) as info:
        server.start()
    assert "llama.cpp server" in str(info.value)
    assert str(server.log_path) in str(info.value)
    assert not server.is_running


def test_missing_local_extra_says_how_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        local_module.importlib.util, "find_spec",
        lambda name, *a: None if name == "llama_cpp" else real_find_spec(name, *a),
    )
    with pytest.raises(LocalModelError, match=r"pip install 'workbench\[local\]'"):
        LocalServer().start()
