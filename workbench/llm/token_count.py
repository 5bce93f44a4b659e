"""Counting the tokens of a prompt before it is sent, for the cost forecast.

Where the endpoint offers a tokenizer we use it: llama.cpp's server answers `POST /tokenize`
(`{"content": text}`), llama-cpp-python's `POST /extras/tokenize` (`{"input": text}`); an in-process
`ScriptedModel` charges whitespace words, so that is its count. Anything else (OpenAI's API has no
tokenizer route) gets a stated approximation: one token per 4 characters. The count covers the
messages' text only, not the few tokens a chat template adds per message.
"""
from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

import httpx

from .scripted import ScriptedModel, _message_text, count_words

CHARS_PER_TOKEN = 4
APPROXIMATION = f"approximation: 1 token per {CHARS_PER_TOKEN} characters (the endpoint offers no tokenizer)"
TOKENIZER_ROUTES = (("/tokenize", "content"), ("/extras/tokenize", "input"))


@dataclass
class TokenCounter:
    """Counts a message list's tokens; `method` says how (shown with every forecast)."""

    count_text: Callable[[str], int]
    method: str

    def __post_init__(self) -> None:
        self.count_text = functools.lru_cache(maxsize=4096)(self.count_text)

    def count(self, messages: list[dict]) -> int:
        return sum(self.count_text(_message_text(m)) for m in messages)


def approximate(text: str) -> int:
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


_found: dict[str, TokenCounter] = {}
_lock = threading.Lock()


def token_counter(model: Any) -> TokenCounter:
    """The best counter `model` offers: its own `count_tokens(text)`, its endpoint's tokenizer, or chars / 4."""
    own = getattr(model, "count_tokens", None)
    if callable(own):
        return TokenCounter(own, f"{type(model).__name__}.count_tokens")
    if isinstance(model, ScriptedModel):
        return TokenCounter(count_words, "ScriptedModel's count: one token per whitespace word, as it charges")
    base_url = getattr(model, "base_url", None)
    if not base_url or urlsplit(base_url).hostname in (None, "api.openai.com"):
        return TokenCounter(approximate, APPROXIMATION)
    with _lock:
        if base_url not in _found:
            _found[base_url] = _endpoint_counter(base_url, getattr(model, "_api_key", None))
        return _found[base_url]


def _endpoint_counter(base_url: str, api_key: str | None) -> TokenCounter:
    """Ask the endpoint's tokenizer routes once; the first that answers counts every text."""
    root = base_url.rstrip("/").removesuffix("/v1")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    for route, field in TOKENIZER_ROUTES:
        def ask(text: str, url: str = root + route, field: str = field) -> int:
            reply = httpx.post(url, json={field: text}, headers=headers, timeout=10.0)
            reply.raise_for_status()
            return len(reply.json()["tokens"])
        try:
            ask("hello world")
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            continue
        return TokenCounter(_or_approximate(ask), f"the endpoint's tokenizer (POST {route})")
    return TokenCounter(approximate, APPROXIMATION)


def _or_approximate(ask: Callable[[str], int]) -> Callable[[str], int]:
    """A tokenizer that stops answering mid-forecast falls back to the approximation for that text."""
    def count(text: str) -> int:
        try:
            return ask(text)
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return approximate(text)
    return count
