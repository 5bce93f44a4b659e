"""LLMClient: chat completions against any OpenAI-compatible endpoint, with our own retries.

The SDK's built-in retries are turned off (``max_retries=0``) so that retrying, the concurrency
limit, the budget, caching and usage accounting all happen in one place we can test and reason about.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import random
import threading
import time
from typing import Any

import openai
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from workbench.errors import ConfigError, EndpointUnreachableError, LLMCallError
from workbench.llm.budget import Budget, reserve
from workbench.llm.cache import ResponseCache, is_deterministic, is_storable
from workbench.llm.endpoint import check_base_url, display_url, resolve_api_key
from workbench.llm.request_errors import (MalformedReply, is_connect_failure, is_retryable,  # noqa: F401 (re-exported)
                                          retry_after_seconds, server_message)
from workbench.llm.types import Completion
from workbench.llm.usage import UsageMeter
from workbench.llm.wire import fold_system_messages, request_kwargs, wire_safe  # noqa: F401 (re-exported)
from workbench.redact import redact

log = logging.getLogger(__name__)

# Used when no key is configured: local servers (llama.cpp, vLLM, Ollama) ignore it, but the SDK
# refuses to start without one.
PLACEHOLDER_API_KEY = "not-needed"


# The HTTP library the SDK is built on (``httpx``, or ``httpx2`` in newer SDKs): pool limits must be its own class.
_http = importlib.import_module(openai.DefaultHttpxClient.__mro__[1].__module__.split(".")[0])


class LLMClient:
    """A :class:`~workbench.llm.types.ChatModel` over the ``openai`` SDK's chat completions.

    - Retries 408/409/429/5xx, timeouts, connection errors and malformed reply bodies (a 200 whose
      JSON is cut or is not a chat completion) up to ``max_retries`` times with exponential backoff
      and jitter; a server's ``Retry-After`` is honoured, capped at ``retry_after_cap_s``.
    - After the retries, a connection that was never established raises
      :class:`EndpointUnreachableError`; any other failure raises :class:`LLMCallError`. Both name
      the endpoint URL without credentials, and every registered secret is masked in them.
    - At most ``max_concurrency`` requests of this client are in flight at once (pass a shared
      ``semaphore`` to limit several clients together, e.g. three roles on one small local server);
      the HTTP connection pool is sized to match, so the number set is the number the endpoint sees.
    - ``budget``: a :class:`~workbench.llm.budget.Budget` checked before each request is sent.
    - ``fold_system_prompt=True`` moves system messages into the first user turn, for servers whose
      chat format silently drops them (see :mod:`workbench.llm.probe`).
    - With a ``cache``, an identical request (endpoint, model, messages, every sampling setting) at
      temperature 0 or with a seed is answered from disk for free. Empty replies and replies cut by
      the length limit are not stored (``cache_truncated=True`` stores the latter).
    - ``api_key``: explicit, else ``WORKBENCH_API_KEY``, else ``OPENAI_API_KEY`` only for OpenAI's
      own endpoint (see :mod:`workbench.llm.endpoint`).
    - Any other keyword of :meth:`complete` (``stop=[...]``, ``seed``, ``top_k``) is sent with the
      request and is part of the cache key.
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
        max_retries: int = 6,
        max_concurrency: int = 8,
        temperature: float = 0.0,
        max_tokens: int = 512,
        *,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 20.0,
        retry_after_cap_s: float = 30.0,
        semaphore: threading.Semaphore | None = None,
        fold_system_prompt: bool = False,
        budget: Budget | None = None,
        cache_namespace: str | None = None,
        cache_truncated: bool = False,
    ) -> None:
        if not isinstance(max_concurrency, int) or isinstance(max_concurrency, bool) or max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be a whole number of at least 1, not {max_concurrency!r}")
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None  # where the SDK would send it anyway
        check_base_url(base_url)
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(f"the {role} model needs a name (the endpoint's model id), got {model!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ConfigError(f"timeout must be a number of seconds above 0, not {timeout!r}")
        self.model = model
        self.role = role
        self.cache = cache
        self.usage = usage if usage is not None else UsageMeter()
        self.timeout = timeout
        self.max_retries = max(0, int(max_retries))
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.retry_after_cap_s = retry_after_cap_s
        self.fold_system_prompt = fold_system_prompt
        self.budget = budget
        self.cache_truncated = cache_truncated
        self.retries = 0  # attempts that failed and were retried, over this client's life
        self._api_key = resolve_api_key(base_url, api_key) or PLACEHOLDER_API_KEY
        self._sdk_base_url = base_url
        self._retired: list[openai.OpenAI] = []
        self._lock = threading.Lock()
        self.max_concurrency = max_concurrency
        self._semaphore = semaphore if semaphore is not None else threading.BoundedSemaphore(max_concurrency)
        self._sdk = self._make_sdk(max_concurrency)
        self.base_url = display_url(str(self._sdk.base_url))
        # what identifies "the same endpoint" for the cache: the URL, or a stable name the caller gives
        self.cache_namespace = cache_namespace or self.base_url

    def _make_sdk(self, connections: int) -> openai.OpenAI:
        """An SDK client whose connection pool holds ``connections`` (httpx keeps only 100 alive by
        default, so hundreds of concurrent calls would each open a new TCP connection)."""
        limits = _http.Limits(max_connections=max(connections, 1), max_keepalive_connections=max(connections, 1))
        http_client = openai.DefaultHttpxClient(limits=limits, timeout=self.timeout)
        return openai.OpenAI(base_url=self._sdk_base_url, api_key=self._api_key, max_retries=0,
                             timeout=self.timeout, http_client=http_client)

    def set_concurrency(self, n: int, semaphore: threading.Semaphore | None = None) -> None:
        """Allow ``n`` requests in flight (or share ``semaphore`` with other clients); resizes the pool.

        Meant to be called between runs: calls already in flight finish on the old pool.
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ConfigError(f"concurrency must be a whole number of at least 1, not {n!r}")
        with self._lock:
            if n != self.max_concurrency:
                self._retired.append(self._sdk)
                self._sdk = self._make_sdk(n)
            self.max_concurrency = n
            self._semaphore = semaphore if semaphore is not None else threading.BoundedSemaphore(n)

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
        if self.cache is not None and use_cache and is_deterministic(settings):
            cache_key = ResponseCache.key(self.cache_namespace, self.model, messages, settings)
            hit = self._cache_get(cache_key)
            if hit is not None:
                self.usage.record_cache_hit(self.role)
                return Completion(
                    text=hit["text"],
                    prompt_tokens=int(hit.get("prompt_tokens", 0)),
                    completion_tokens=int(hit.get("completion_tokens", 0)),
                    cached=True,
                    latency_s=0.0,
                    model=hit.get("model", self.model),
                    finish_reason=hit.get("finish_reason"),
                )

        completion = self.send(messages, settings)
        if cache_key is not None and is_storable(completion.text, completion.finish_reason, settings, self.cache_truncated):
            self._cache_put(cache_key, completion)
        return completion

    def send(self, messages: list[dict], settings: dict, role: str | None = None) -> Completion:
        """One paid request, no cache: reserve budget, send with retries, record usage."""
        reservation = reserve(self.budget)
        started = time.perf_counter()
        try:
            response = self._create_with_retries(wire_safe(messages), settings)
        except BaseException:
            if reservation is not None:
                reservation.release()
            raise
        latency = time.perf_counter() - started
        choice = response.choices[0]
        text = (choice.message.content if choice.message is not None else None) or ""
        usage = response.usage
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        if reservation is not None:
            reservation.settle(prompt_tokens, completion_tokens)
        self.usage.record_call(role or self.role, prompt_tokens, completion_tokens, latency)
        return Completion(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cached=False,
            latency_s=latency,
            model=response.model or self.model,
            finish_reason=getattr(choice, "finish_reason", None),
        )

    def close(self) -> None:
        """Close the HTTP connection pools."""
        with self._lock:
            sdks, self._retired = [self._sdk, *self._retired], []
        for sdk in sdks:
            sdk.close()

    def __enter__(self) -> "LLMClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LLMClient(model={self.model!r}, base_url={self.base_url!r}, role={self.role!r})"

    # -- internals --------------------------------------------------------------------------------

    def _cache_get(self, key: str) -> dict | None:
        try:
            return self.cache.get(key)
        except Exception as exc:  # a broken cache costs a call, never the run
            log.warning("response cache %s unreadable (%s); calling the endpoint", self.cache, exc)
            return None

    def _cache_put(self, key: str, completion: Completion) -> None:
        value = {"text": completion.text, "prompt_tokens": completion.prompt_tokens,
                 "completion_tokens": completion.completion_tokens, "model": completion.model,
                 "finish_reason": completion.finish_reason}
        try:
            self.cache.put(key, value)
        except Exception as exc:  # the reply is paid for: the caller gets it even if it cannot be stored
            log.warning("could not store a reply in the response cache %s: %s", self.cache, exc)

    def _backoff_seconds(self, state: RetryCallState) -> float:
        """Exponential backoff with full jitter, or the server's Retry-After (capped) when it sent one."""
        exc = state.outcome.exception() if state.outcome is not None else None
        requested = retry_after_seconds(exc)
        if requested is not None:
            return min(requested, self.retry_after_cap_s)
        ceiling = min(self.backoff_max_s, self.backoff_initial_s * (2 ** (state.attempt_number - 1)))
        return random.uniform(ceiling / 2, ceiling)

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        with self._lock:
            self.retries += 1
        log.warning(
            "LLM call to %s failed (%s: %s); retry %d/%d in %.2fs",
            self.base_url, type(exc).__name__, redact(str(exc)), state.attempt_number, self.max_retries, delay,
        )

    def _create_once(self, messages: list[dict], settings: dict):
        with self._semaphore:
            try:
                response = self._sdk.chat.completions.create(
                    model=self.model, messages=messages, timeout=self.timeout, **request_kwargs(settings)
                )
            except json.JSONDecodeError as exc:
                raise MalformedReply(f"the reply body is not valid JSON ({exc.msg} at character {exc.pos})") from exc
        choices = getattr(response, "choices", None)
        if not isinstance(choices, list) or not choices or not hasattr(choices[0], "message"):
            raise MalformedReply(f"the reply is not a chat completion: {redact(str(response))[:200]}")
        return response

    def _create_with_retries(self, messages: list[dict], settings: dict):
        retrying = Retrying(
            retry=retry_if_exception(is_retryable),
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._backoff_seconds,
            before_sleep=self._log_retry,
            reraise=True,
        )
        attempts = self.max_retries + 1
        try:
            return retrying(self._create_once, messages, settings)
        except openai.APIStatusError as exc:
            raise LLMCallError(self.base_url, server_message(exc), status=exc.status_code) from None
        except MalformedReply as exc:
            raise LLMCallError(self.base_url, f"{exc} (after {attempts} attempts)") from None
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            if is_connect_failure(exc):
                cause = exc.__cause__
                detail = f"could not connect after {attempts} attempts"
                if cause is not None:
                    detail += f" ({type(cause).__name__}: {redact(str(cause))})"
                raise EndpointUnreachableError(self.base_url, detail) from None
            if isinstance(exc, openai.APITimeoutError):
                message = f"no reply within {self.timeout}s after {attempts} attempts"
            else:
                cause = exc.__cause__
                message = f"{type(exc).__name__}: {exc}" + (f" ({type(cause).__name__}: {cause})" if cause else "")
                message = f"{redact(message)} after {attempts} attempts"
            raise LLMCallError(self.base_url, message) from None
        except openai.OpenAIError as exc:
            raise LLMCallError(self.base_url, redact(f"{type(exc).__name__}: {exc}")) from None
