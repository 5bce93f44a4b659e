"""An in-process chat model driven by a Python function, for fast and deterministic unit tests."""

from __future__ import annotations

import threading
import time
from typing import Callable

from workbench.errors import BadArgumentError
from workbench.llm.budget import Budget, reserve
from workbench.llm.types import Completion
from workbench.llm.usage import UsageMeter


def count_words(text: str) -> int:
    """The token count ScriptedModel (and the test server) charge: whitespace-separated words."""
    return len(str(text).split())


def _message_text(message: dict) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):  # OpenAI "content parts"
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content)


class ScriptedModel:
    """A :class:`~workbench.llm.types.ChatModel` whose replies come from ``respond(messages)``.

    Every call is appended to ``calls`` (a copy of its message list) so tests can assert on the
    exact prompts a pipeline sent. Tokens are counted as whitespace-separated words, so usage
    accounting behaves like a real model's without a server. A ``budget`` is checked before each
    call, exactly as :class:`~workbench.llm.client.LLMClient` does.
    """

    def __init__(
        self,
        respond: Callable[[list[dict]], str],
        role: str = "task",
        model: str = "scripted",
        usage: UsageMeter | None = None,
        budget: Budget | None = None,
    ) -> None:
        self.respond = respond
        self.budget = budget
        self.role = role
        self.model = model
        self.usage = usage if usage is not None else UsageMeter()
        self.calls: list[list[dict]] = []
        self.sampling_calls: list[dict] = []
        self._lock = threading.Lock()

    def complete(self, messages: list[dict], **sampling) -> Completion:
        messages_copy = [dict(message) for message in messages]
        reservation = reserve(self.budget)
        with self._lock:
            self.calls.append(messages_copy)
            self.sampling_calls.append(dict(sampling))
        started = time.perf_counter()
        try:
            text = self.respond(messages_copy)
            if not isinstance(text, str):
                raise BadArgumentError(f"ScriptedModel respond() must return str, got {type(text).__name__}")
        except BaseException:
            if reservation is not None:
                reservation.release()
            raise
        latency = time.perf_counter() - started
        prompt_tokens = sum(count_words(_message_text(message)) for message in messages_copy)
        completion_tokens = count_words(text)
        if reservation is not None:
            reservation.settle(prompt_tokens, completion_tokens)
        self.usage.record_call(self.role, prompt_tokens, completion_tokens, latency)
        return Completion(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cached=False,
            latency_s=latency,
            model=self.model,
            finish_reason="stop",
        )

    def __repr__(self) -> str:
        return f"ScriptedModel(role={self.role!r}, model={self.model!r}, calls={len(self.calls)})"
