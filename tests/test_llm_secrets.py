"""API keys go only where they belong and never appear in the layer's error messages.

Real HTTP through the openai SDK to a test server that checks the key and, like some real
endpoints, echoes the wrong one back in its 401 message.
"""
from __future__ import annotations

import logging

import pytest

from workbench.errors import ConfigError, LLMCallError
from workbench.llm import LLMClient, Models
from workbench.llm.endpoint import is_openai_endpoint, resolve_api_key
from workbench.redact import MASK, redact
from workbench.testing import OpenAITestServer

from llm_helpers import no_endpoint_env_or_secrets, user  # noqa: F401 (a fixture)

OPENAI_KEY = "sk-openai-personal-0123456789"
WORKBENCH_KEY = "wb-endpoint-key-9876543210"


@pytest.fixture(autouse=True)
def clean_env(no_endpoint_env_or_secrets):
    yield


def test_openai_key_is_never_sent_to_another_endpoint(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    with OpenAITestServer(api_key=OPENAI_KEY) as server:  # a server that would gladly take it
        client = LLMClient("test-model", base_url=server.base_url, max_retries=0)
        with pytest.raises(LLMCallError, match="HTTP 401"):
            client.complete(user("hi"))
        assert server.request_count == 1


def test_workbench_key_goes_to_the_configured_endpoint(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("WORKBENCH_API_KEY", WORKBENCH_KEY)
    with OpenAITestServer(responder=lambda m: "in", api_key=WORKBENCH_KEY) as server:
        monkeypatch.setenv("WORKBENCH_BASE_URL", server.base_url)
        models = Models.from_env(cache=None)
        assert models.task.complete(user("hi")).text == "in"
        models.close()


def test_openai_key_is_used_for_openai_itself(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    assert resolve_api_key(None) == OPENAI_KEY
    assert resolve_api_key("https://api.openai.com/v1") == OPENAI_KEY
    assert resolve_api_key("http://localhost:8080/v1") is None
    assert resolve_api_key("https://api.openai.com.evil.example/v1") is None
    assert resolve_api_key("http://localhost:8080/v1", api_key="explicit-key") == "explicit-key"
    assert is_openai_endpoint("https://API.OPENAI.COM/v1")


def test_a_key_echoed_in_a_401_is_redacted_from_the_error():
    wrong = "sk-wrong-but-still-secret-4242"
    with OpenAITestServer(api_key="the-right-key-000") as server:
        url = server.base_url
        client = LLMClient("test-model", base_url=server.base_url, api_key=wrong, max_retries=0)
        with pytest.raises(LLMCallError) as caught:
            client.complete(user("hi"))
    message = str(caught.value)
    assert "Incorrect API key provided" in message and url in message
    assert wrong not in message and MASK in message
    assert wrong not in redact(repr(caught.value.message))


def test_a_key_echoed_by_a_500_is_redacted_in_retry_warnings(caplog):
    key = "sk-echoed-in-500-777777"
    with OpenAITestServer(failures=[(500, {}, f"upstream rejected {key}")] * 2) as server:
        client = LLMClient("test-model", base_url=server.base_url, api_key=key, max_retries=1,
                           backoff_initial_s=0.01, backoff_max_s=0.02)
        with caplog.at_level(logging.WARNING), pytest.raises(LLMCallError) as caught:
            client.complete(user("hi"))
    assert key not in str(caught.value)
    assert caplog.records and all(key not in record.getMessage() for record in caplog.records)


def test_credentials_in_the_base_url_never_appear_in_errors():
    with OpenAITestServer(api_key="needed-key-123456") as server:
        plain = server.base_url
        url = plain.replace("http://", "http://alice:url-password-555@")
        client = LLMClient("test-model", base_url=url, api_key="other-key-123456", max_retries=0)
        assert client.base_url == plain
        with pytest.raises(LLMCallError) as caught:
            client.complete(user("hi"))
    assert "url-password-555" not in str(caught.value) and plain in str(caught.value)


def test_a_named_key_variable_that_is_not_set_is_a_config_error(monkeypatch):
    monkeypatch.delenv("MY_PROVIDER_KEY", raising=False)
    with pytest.raises(ConfigError, match="MY_PROVIDER_KEY"):
        Models.from_env(cache=None, base_url="http://127.0.0.1:9/v1", model="m", api_key_env="MY_PROVIDER_KEY")


def test_a_named_key_variable_is_used_and_registered(monkeypatch):
    monkeypatch.setenv("MY_PROVIDER_KEY", "provider-key-31415926")
    with OpenAITestServer(responder=lambda m: "ok", api_key="provider-key-31415926") as server:
        models = Models.from_env(cache=None, base_url=server.base_url, api_key_env="MY_PROVIDER_KEY")
        assert models.task.complete(user("hi")).text == "ok"
        assert redact("leaked provider-key-31415926") == f"leaked {MASK}"
        models.close()


def test_a_401_from_an_endpoint_asked_for_its_model_is_an_authentication_failure(monkeypatch):
    """Without --model the endpoint is asked which model it serves (GET /models); its 401 is a refused key,
    reported as with --model (HTTP 401, the key masked), never as "unreachable"."""
    wrong = "sk-wrong-key-for-models-2718"
    with OpenAITestServer(api_key="the-right-key-000") as server:
        monkeypatch.setenv("H21_KEY", wrong)
        with pytest.raises(LLMCallError) as caught:
            Models.from_env(None, base_url=server.base_url, api_key_env="H21_KEY", fold_system=False)
        assert Models.from_env(None, base_url=server.base_url, api_key="the-right-key-000",
                               fold_system=False).task.model == "test-model"
    message = str(caught.value)
    assert caught.value.status == 401 and "authentication refused (check the API key)" in message
    assert "unreachable" not in message and wrong not in message and "Incorrect API key provided" in message
