"""LLMClient: chat completions against any OpenAI-compatible endpoint, with our own retries.

The SDK's built-in retries are turned off (``max_retries=0``) so that retrying, the concurrency
limit, caching and usage accounting all happen in one place we can test and reason about.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
import time
from typing import Any

import openai
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from workbench.errors import EndpointUnreachableError, LLMCallError
from workbench.llm.cache import ResponseCache
from workbench.llm.types import Completion
from workbench.llm.usage import UsageMeter

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))
# Used when no key is configured: local servers (llama.cpp, vLLM, Ollama) ignore it, but the SDK
# refuses to start without one.
PLACEHOLDER_API_KEY = "not-needed"


def _is_retryable(exc: BaseException) -> bool:
    """Rate limits, server errors, timeouts and connection failures are worth another try."""
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in RETRYABLE_STATUSES
    return isinstance(exc, (openai.APIConnectionError, openai.APITimeoutError))


def _retry_after_seconds(exc: BaseException | None) -> float | None:
    """The delay a server asked for (``retry-after-ms`` or ``Retry-After``: seconds or HTTP date)."""
    response = getattr(exc, "response", None)
    if response is None:
        return None
    headers = response.headers
    value_ms = headers.get("retry-after-ms")
    if value_ms:
        try:
            return max(0.0, float(value_ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, parsed.timestamp() - time.time())


_CONNECT_FAILURE_TYPES = frozenset({"ConnectError", "ConnectTimeout"})


def _is_connect_failure(exc: BaseException) -> bool:
    """True when no connection was ever made (refused, DNS, connect timeout), as opposed to a slow
    or broken reply on a connection that did open.

    The SDK's transport exception (``httpx`` or ``httpx2`` depending on the SDK version) is the
    ``__cause__``; it is recognised by class name so both work.
    """
    cause = exc.__cause__
    if cause is not None and type(cause).__name__ in _CONNECT_FAILURE_TYPES:
        return True
    if isinstance(exc, openai.APITimeoutError):
        return False
    return isinstance(exc, openai.APIConnectionError) and cause is None


def _server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return exc.message or str(exc)


def fold_system_messages(messages: list[dict]) -> list[dict]:
    """Prepend the system messages' text to the first user message (as Gemma's own template does).

    llama.cpp's ``gemma`` chat format discards ``role="system"`` messages, which would silently
    drop a pipeline's trained instructions.
    """
    system_texts = [str(m.get("content") or "") for m in messages if m.get("role") == "system"]
    rest = [dict(m) for m in messages if m.get("role") != "system"]
    if not system_texts:
        return rest
    preamble = "\n\n".join(text for text in system_texts if text)
    for message in rest:
        if message.get("role") == "user":
            message["content"] = f"{preamble}\n\n{message.get('content') or ''}" if preamble else message.get("content")
            return rest
    return [{"role": "user", "content": preamble}, *rest]


class LLMClient:
    """A :class:`~workbench.llm.types.ChatModel` over the ``openai`` SDK's chat completions.

    - Retries 408/409/429/5xx, timeouts and connection errors up to ``max_retries`` times with
      exponential backoff and jitter; a server's ``Retry-After`` is honoured, capped at
      ``retry_after_cap_s`` so a misbehaving server cannot stall a run.
    - After the retries, a connection that was never established raises
      :class:`EndpointUnreachableError`; any other failure raises :class:`LLMCallError`. Both name
      the endpoint URL.
    - At most ``max_concurrency`` requests of this client are in flight at once (pass a shared
      ``semaphore`` to limit several clients together, e.g. three roles on one small local server).
    - ``fold_system_prompt=True`` moves system messages into the first user turn, for servers whose
      chat format silently drops them (llama.cpp's ``gemma`` format does).
    - With a ``cache``, an identical request (model, messages, sampling) is answered from disk: the
      usage meter records a cache hit and charges no tokens.
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        role: str = "task",
        cache: ResponseCache | None = None,
        usage: UsageMeter | None = None,
        timeout: float = 60.0,
        max_retries: int = 4,
        max_concurrency: int = 8,
        temperature: float = 0.0,
        max_tokens: int = 512,
        *,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 20.0,
        retry_after_cap_s: float = 30.0,
        semaphore: threading.Semaphore | None = None,
        fold_system_prompt: bool = False,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.model = model
        self.role = role
        self.cache = cache
        self.usage = usage if usage is not None else UsageMeter()
        self.timeout = timeout
        self.max_retries = max(0, int(max_retries))
        self.max_concurrency = max_concurrency
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.retry_after_cap_s = retry_after_cap_s
        self.fold_system_prompt = fold_system_prompt
        self._semaphore = semaphore if semaphore is not None else threading.BoundedSemaphore(max_concurrency)
        api_key = api_key or os.environ.get("OPENAI_API_KEY") or PLACEHOLDER_API_KEY
        self._sdk = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=timeout)
        self.base_url = str(self._sdk.base_url).rstrip("/")

    # -- public -----------------------------------------------------------------------------------

    def complete(self, messages: list[dict], *, use_cache: bool = True, **sampling: Any) -> Completion:
        """Send ``messages`` and return the reply; ``sampling`` overrides temperature, max_tokens, etc.

        ``use_cache=False`` skips the cache for this call (e.g. to draw several samples at
        temperature > 0 from the same prompt).
        """
        settings = {"temperature": self.temperature, "max_tokens": self.max_tokens, **sampling}
        if self.fold_system_prompt:
            messages = fold_system_messages(messages)
        cache_key = None
        if self.cache is not None and use_cache:
            cache_key = ResponseCache.key(self.model, messages, settings)
            hit = self.cache.get(cache_key)
            if hit is not None:
                self.usage.record_cache_hit(self.role)
                return Completion(
                    text=hit["text"],
                    prompt_tokens=int(hit.get("prompt_tokens", 0)),
                    completion_tokens=int(hit.get("completion_tokens", 0)),
                    cached=True,
                    latency_s=0.0,
                    model=hit.get("model", self.model),
                )

        started = time.perf_counter()
        response = self._create_with_retries(messages, settings)
        latency = time.perf_counter() - started

        choice = response.choices[0] if response.choices else None
        text = (choice.message.content if choice is not None and choice.message is not None else None) or ""
        usage = response.usage
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        served_model = response.model or self.model
        self.usage.record_call(self.role, prompt_tokens, completion_tokens, latency)
        if cache_key is not None:
            self.cache.put(
                cache_key,
                {
                    "text": text,
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "model": served_model,
                },
            )
        return Completion(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cached=False,
            latency_s=latency,
            model=served_model,
        )

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._sdk.close()

    def __enter__(self) -> "LLMClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LLMClient(model={self.model!r}, base_url={self.base_url!r}, role={self.role!r})"

    # -- internals --------------------------------------------------------------------------------

    def _backoff_seconds(self, state: RetryCallState) -> float:
        """Exponential backoff with full jitter, or the server's Retry-After (capped) when it sent one."""
        exc = state.outcome.exception() if state.outcome is not None else None
        requested = _retry_after_seconds(exc)
        if requested is not None:
            return min(requested, self.retry_after_cap_s)
        ceiling = min(self.backoff_max_s, self.backoff_initial_s * (2 ** (state.attempt_number - 1)))
        return random.uniform(ceiling / 2, ceiling)

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "LLM call to %s failed (%s: %s); retry %d/%d in %.2fs",
            self.base_url, type(exc).__name__, exc, state.attempt_number, self.max_retries, delay,
        )

    def _create_once(self, messages: list[dict], settings: dict):
        with self._semaphore:
            return self._sdk.chat.completions.create(
                model=self.model, messages=messages, timeout=self.timeout, **settings
            )

    def _create_with_retries(self, messages: list[dict], settings: dict):
        retrying = Retrying(
            retry=retry_if_exception(_is_retryable),
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._backoff_seconds,
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            return retrying(self._create_once, messages, settings)
        except openai.APIStatusError as exc:
            raise LLMCallError(self.base_url, _server_message(exc), status=exc.status_code) from exc
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            if _is_connect_failure(exc):
                cause = exc.__cause__
                detail = f"could not connect after {self.max_retries + 1} attempts"
                if cause is not None:
                    detail += f" ({type(cause).__name__}: {cause})"
                raise EndpointUnreachableError(self.base_url, detail) from exc
            if isinstance(exc, openai.APITimeoutError):
                message = f"no reply within {self.timeout}s after {self.max_retries + 1} attempts"
            else:
                message = f"{type(exc).__name__}: {exc}"
            raise LLMCallError(self.base_url, message) from exc
        except openai.OpenAIError as exc:
            raise LLMCallError(self.base_url, f"{type(exc).__name__}: {exc}") from exc
