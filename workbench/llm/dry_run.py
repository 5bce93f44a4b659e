"""A stand-in for a role's model while forecasting a run: it renders real prompts and sends nothing.

`DryModel(real, counter)` answers each request from the real model's response cache when that holds
the reply (the run would get it free too), else with a fixed placeholder, and records per request
the prompt's tokens (by `counter`), whether the cache answered, and the reply's tokens. Pipelines,
the backward engine and the optimizer run on it unchanged, so the prompts are the ones a run sends.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from .cache import ResponseCache, is_deterministic
from .client import fold_system_messages
from .token_count import TokenCounter
from .types import Completion
from .usage import UsageMeter

PLACEHOLDER = "(no reply: forecasting)"


@dataclass(frozen=True)
class DryCall:
    """One request the run would make: its prompt's tokens, and whether the response cache holds it."""
    prompt_tokens: int
    cached: bool
    reply_tokens: int | None  # of the cached reply; None when not cached (unknown before the call)


class DryModel:
    """Satisfies `ChatModel`; never calls an endpoint (see the module docstring)."""

    def __init__(self, real: Any, counter: TokenCounter, placeholder: str = PLACEHOLDER) -> None:
        self.real = real
        self.counter = counter
        self.placeholder = placeholder
        self.role = getattr(real, "role", "task")
        self.model = getattr(real, "model", "?")
        self.usage = UsageMeter()  # its own: a forecast spends nothing of the run's
        self.budget = None
        self.calls: list[DryCall] = []
        self._lock = threading.Lock()
        for name in ("completion_style", "is_base_model"):  # prompts follow the real model's style
            if hasattr(real, name):
                setattr(self, name, getattr(real, name))

    @property
    def reply_cap(self) -> int | None:
        """The most tokens one reply of the real model may have (its `max_tokens`), or None without a cap."""
        cap = getattr(self.real, "max_tokens", None)
        return cap if isinstance(cap, int) and not isinstance(cap, bool) else None

    def complete(self, messages: list[dict], **sampling: Any) -> Completion:
        hit = self._cached(messages, sampling)
        prompt_tokens = self.counter.count(messages)
        text = hit["text"] if hit else self.placeholder
        reply_tokens = int(hit.get("completion_tokens") or self.counter.count_text(text)) if hit else None
        with self._lock:
            self.calls.append(DryCall(prompt_tokens, hit is not None, reply_tokens))
        return Completion(text=text, prompt_tokens=0, completion_tokens=0, cached=True, latency_s=0.0,
                          model=self.model, finish_reason="stop")

    def _cached(self, messages: list[dict], sampling: dict) -> dict | None:
        """The real client's cached reply to exactly this request, if it holds one (as `LLMClient.complete` looks)."""
        real, cache = self.real, getattr(self.real, "cache", None)
        if cache is None or not hasattr(real, "cache_namespace"):
            return None
        settings = {"temperature": getattr(real, "temperature", 0.0), "max_tokens": getattr(real, "max_tokens", None),
                    **sampling}
        if not is_deterministic(settings):
            return None
        if getattr(real, "fold_system_prompt", False):
            messages = fold_system_messages(messages)
        try:
            return cache.get(ResponseCache.key(real.cache_namespace, real.model, messages, settings))
        except Exception:  # a broken cache only makes the forecast assume the call is paid
            return None
