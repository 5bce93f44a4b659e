"""Endpoints that drop system messages are found by one probe, and the instructions are folded into
the user turn so they reach the model. Real HTTP through the openai SDK to our test server."""
from __future__ import annotations

import pytest

from workbench.errors import ConfigError, EndpointUnreachableError
from workbench.llm import LLMClient, Models
from workbench.llm.probe import PROBE_ROLE, forget_probes, probe_system_messages
from workbench.testing import OpenAITestServer

from llm_helpers import clear_endpoint_env, closed_port

INSTRUCTION = "Answer in French."


def follows_instruction(messages):
    """The model "obeys" only if the instruction reached it, in whatever turn."""
    seen = " ".join(str(m.get("content")) for m in messages)
    return "Bonjour" if INSTRUCTION in seen else "Hello"


def with_system(text):
    return [{"role": "system", "content": INSTRUCTION}, {"role": "user", "content": text}]


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    forget_probes()
    clear_endpoint_env(monkeypatch, fold_system=None)
    yield
    forget_probes()


def test_an_endpoint_that_drops_system_messages_is_probed_and_folded():
    with OpenAITestServer(responder=follows_instruction, drop_system=True) as server:
        # without the probe the trained instruction silently never reaches the model
        blind = LLMClient("test-model", base_url=server.base_url, api_key="k")
        assert blind.complete(with_system("Greet me")).text == "Hello"

        models = Models.from_env(cache=None, base_url=server.base_url)
        assert models.task.fold_system_prompt and models.optimizer.fold_system_prompt
        assert models.task.complete(with_system("Greet me")).text == "Bonjour"
        assert models.notices[0] == {"role": "task", "base_url": server.base_url, "model": "test-model",
                                     "system_messages": "dropped", "fold_system": True, "source": "probe"}
        assert [n["role"] for n in models.notices] == ["task", "backward", "optimizer"]
        # two probe calls for the one model, charged to the "probe" role; then once per process
        assert models.usage.snapshot()[PROBE_ROLE]["calls"] == 2
        Models.from_env(cache=None, base_url=server.base_url).close()
        assert server.request_count == 1 + 2 + 1
        models.close()


def test_an_endpoint_that_keeps_system_messages_is_left_alone():
    with OpenAITestServer(responder=follows_instruction) as server:
        models = Models.from_env(cache=None, base_url=server.base_url, backward_model="big-model")
        assert not any(m.fold_system_prompt for m in models.by_role().values())
        assert {n["system_messages"] for n in models.notices} == {"kept"}
        sent = server.request_count
        assert models.task.complete(with_system("Greet me")).text == "Bonjour"
        assert server.requests[-1]["messages"][0]["role"] == "system"
        assert sent == 4  # two models on the endpoint, each probed once
        models.close()


@pytest.mark.parametrize("value, folded", [("1", True), ("0", False), ("yes", True), ("off", False)])
def test_the_environment_decides_without_a_probe(monkeypatch, value, folded):
    monkeypatch.setenv("WORKBENCH_FOLD_SYSTEM", value)
    with OpenAITestServer(responder=follows_instruction, drop_system=True) as server:
        models = Models.from_env(cache=None, base_url=server.base_url)
        assert server.request_count == 0
        assert all(m.fold_system_prompt is folded for m in models.by_role().values())
        assert {(n["source"], n["fold_system"]) for n in models.notices} == {("config", folded)}
        models.close()


def test_an_explicit_argument_beats_the_environment(monkeypatch):
    monkeypatch.setenv("WORKBENCH_FOLD_SYSTEM", "0")
    with OpenAITestServer(responder=follows_instruction, drop_system=True) as server:
        models = Models.from_env(cache=None, base_url=server.base_url, fold_system=True)
        assert models.task.complete(with_system("Greet me")).text == "Bonjour"
        models.close()


def test_a_bad_environment_value_is_a_config_error_naming_it(monkeypatch):
    monkeypatch.setenv("WORKBENCH_FOLD_SYSTEM", "maybe")
    with pytest.raises(ConfigError, match="WORKBENCH_FOLD_SYSTEM.*maybe"):
        Models.from_env(cache=None, base_url="http://127.0.0.1:9/v1", model="m")


def test_a_failed_probe_is_unknown_and_not_remembered():
    with OpenAITestServer(responder=lambda m: "ok", failures=[500]) as server:
        client = LLMClient("test-model", base_url=server.base_url, api_key="k", max_retries=0)
        assert probe_system_messages(client) == "unknown"  # the probe's call failed
        assert probe_system_messages(client) == "kept"  # asked again, not a remembered failure
        assert probe_system_messages(client) == "kept"
        assert server.request_count == 1 + 2


def test_an_unreachable_endpoint_fails_at_resolution_naming_the_url():
    url = f"http://127.0.0.1:{closed_port()}/v1"
    with pytest.raises(EndpointUnreachableError, match=url):
        Models.from_env(cache=None, base_url=url, model="m", max_retries=0)
