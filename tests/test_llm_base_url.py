"""Audit of issue 9 ("Hostile and odd input", "Secrets"): base URLs no request can reach.

Before, `http://user:KEY@host:99999/v1` crashed the CLI with a raw `ValueError` from the credential
scrubber, and `localhost:8000/v1` (no scheme), `ftp://...` or a bad port were retried for a minute
as if the endpoint were down, every sample counted "errored". Now each is one ConfigError naming
the URL, without its password.
"""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from workbench.errors import ConfigError, LLMCallError
from workbench.llm import LLMClient, Models
from workbench.redact import redact, strip_url_credentials
from workbench.testing import OpenAITestServer

from llm_helpers import no_endpoint_env_or_secrets  # noqa: F401 (a fixture)

BAD_URLS = {
    "localhost:8000/v1": "must start with http:// or https://",
    "ftp://example.org/v1": "must start with http:// or https://",
    "http:///v1": "names no host",
    "http://127.0.0.1:99999/v1": "not a valid URL",
    "http://127.0.0.1:port/v1": "not a valid URL",
}


@pytest.fixture(autouse=True)
def no_env(no_endpoint_env_or_secrets):
    yield


@pytest.mark.parametrize("url, why", BAD_URLS.items())
def test_an_unusable_base_url_is_refused_at_once_naming_it(url, why):
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=why) as caught:
        LLMClient("m", base_url=url, api_key="k")
    assert url in str(caught.value)
    with pytest.raises(ConfigError, match=why):
        Models.from_env(cache=None, base_url=url, model="m")
    assert time.perf_counter() - started < 1.0  # no retries, no backoff


def test_credentials_are_stripped_even_when_the_port_is_not_a_number():
    assert strip_url_credentials("http://user:hunter2hunter2@example.org:xx/v1") == "http://example.org:xx/v1"
    assert redact("echo hunter2hunter2") == "echo <redacted>"
    assert strip_url_credentials("http://u:pw-long-secret@[::1]:8000/v1") == "http://[::1]:8000/v1"
    assert strip_url_credentials("https://u:p%40ss-word@Example.org/v1") == "https://Example.org/v1"
    assert redact("got p@ss-word back") == "got <redacted> back"


def test_the_cli_reports_a_bad_port_in_one_line_without_the_password(tmp_path):
    url = "http://user:s3cret-in-url@127.0.0.1:99999/v1"
    cli = subprocess.run([sys.executable, "-m", "workbench", "train", "--task", "counting", "--base-url", url,
                          "--model", "m", "--steps", "1", "--runs-dir", str(tmp_path), "--no-cache", "--quiet"],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode != 0
    assert "Traceback" not in cli.stderr
    assert "s3cret-in-url" not in cli.stderr + cli.stdout
    assert "http://127.0.0.1:99999/v1" in cli.stderr and "not a valid URL" in cli.stderr


def test_openai_api_key_does_not_follow_openai_base_url_to_another_host(monkeypatch):
    """The SDK sends requests to $OPENAI_BASE_URL when no base URL is given; the OpenAI key must not go along."""
    with OpenAITestServer(responder=lambda m: "ok", api_key="the-servers-own-key") as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-only-0123456789")
        client = LLMClient("test-model", max_retries=0)
        assert client.base_url == server.base_url
        with pytest.raises(LLMCallError) as caught:  # the server echoes the key it was sent in its 401
            client.complete([{"role": "user", "content": "hi"}])
        assert "not-needed" in str(caught.value) and "<redacted>" not in str(caught.value)
        monkeypatch.setenv("WORKBENCH_API_KEY", "the-servers-own-key")
        assert LLMClient("test-model", max_retries=0).complete([{"role": "user", "content": "hi"}]).text == "ok"
