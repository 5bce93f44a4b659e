"""Small helpers shared by the LLM-layer tests (tests/test_llm_*.py)."""

import socket

import pytest

from workbench.redact import forget_secrets

ENDPOINT_ENV_VARS = ("OPENAI_API_KEY", "WORKBENCH_API_KEY", "WORKBENCH_BASE_URL", "WORKBENCH_TASK_MODEL",
                     "WORKBENCH_BACKWARD_MODEL", "WORKBENCH_OPTIMIZER_MODEL", "WORKBENCH_FOLD_SYSTEM")


def user(text: str) -> list[dict]:
    """One user turn."""
    return [{"role": "user", "content": text}]


def clear_endpoint_env(monkeypatch, fold_system: str | None = "0") -> None:
    """No endpoint configured by the machine's environment; system-message folding fixed (no probe)
    unless ``fold_system`` is None."""
    for name in (*ENDPOINT_ENV_VARS, "WORKBENCH_PROBE_MAX_AGE_DAYS"):
        monkeypatch.delenv(name, raising=False)
    if fold_system is not None:
        monkeypatch.setenv("WORKBENCH_FOLD_SYSTEM", fold_system)


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def no_endpoint_env_or_secrets(monkeypatch):
    """No endpoint from the machine's environment and no secret registered, before and after a test."""
    clear_endpoint_env(monkeypatch)
    forget_secrets()
    yield
    forget_secrets()
