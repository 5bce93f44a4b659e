"""Does an endpoint keep system messages? Ask it once, by counting tokens.

Some OpenAI-compatible servers silently drop ``role="system"`` messages (llama.cpp with its
``gemma`` chat format counts the same prompt tokens with and without one), so the instructions
being trained would never reach the model. The probe sends the same short user turn twice, once
with a system message in front, with a one-token reply cap: if the server reports the same prompt
tokens for both, the system message was dropped and the client folds system messages into the
user turn from then on.

The answer is remembered per (endpoint, model) for the life of the process, so an endpoint is
probed once however many ``Models`` are built on it, and in the client's response cache (when it
has one), so a later process on the same cache, such as a replay or a resumed run, makes no
probe calls at all: with a warm cache a replay costs zero HTTP requests. A server can be upgraded
or restarted with another chat template under the same URL and model name, so a remembered answer
is trusted for ``WORKBENCH_PROBE_MAX_AGE_DAYS`` (default 7) days, then the endpoint is asked again.
Each result becomes an ``endpoint_probe`` notice: ``{role, base_url, model, system_messages,
fold_system, source}``.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from workbench.errors import ConfigError, EndpointUnreachableError, WorkbenchError
from workbench.llm.cache import ResponseCache

log = logging.getLogger(__name__)

PROBE_SYSTEM = "You are a careful assistant. Always follow these instructions exactly and completely."
PROBE_USER = "Reply with the single word OK."
PROBE_ROLE = "probe"  # usage of the probe's two calls is recorded under this role

KEPT, DROPPED, UNKNOWN = "kept", "dropped", "unknown"
CACHE_SETTINGS = {"probe": "system_messages", "version": 1}  # no chat request has these settings
FOLD_ENV = "WORKBENCH_FOLD_SYSTEM"
MAX_AGE_ENV = "WORKBENCH_PROBE_MAX_AGE_DAYS"
DEFAULT_MAX_AGE_DAYS = 7.0

_lock = threading.Lock()
_results: dict[tuple[str, str], str] = {}


def fold_from_env() -> bool | None:
    """``WORKBENCH_FOLD_SYSTEM``: 1/true/yes folds, 0/false/no keeps system messages, unset probes."""
    value = (os.environ.get(FOLD_ENV) or "").strip().lower()
    if not value:
        return None
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{FOLD_ENV} must be 1 or 0 (fold system messages into the user turn or not), not {value!r}")


def max_age_seconds() -> float:
    """How long a probe answer remembered in the response cache is trusted (``WORKBENCH_PROBE_MAX_AGE_DAYS``)."""
    value = (os.environ.get(MAX_AGE_ENV) or "").strip()
    if not value:
        return DEFAULT_MAX_AGE_DAYS * 86400
    try:
        days = float(value)
    except ValueError:
        days = -1.0
    if not days >= 0:  # also NaN
        raise ConfigError(f"{MAX_AGE_ENV} must be a number of days (0 or more), not {value!r}")
    return days * 86400


def probe_system_messages(client) -> str:
    """``"kept"``, ``"dropped"`` or ``"unknown"`` (no token counts, or the probe call failed).
    An endpoint that cannot be reached at all raises :class:`EndpointUnreachableError`.

    ``client`` is an :class:`~workbench.llm.client.LLMClient`; its two calls skip the cache and the
    budget's caller (they are recorded in its usage meter under the role ``"probe"``).
    """
    key = (client.cache_namespace, client.model)
    with _lock:
        if key in _results:
            return _results[key]
    remembered = _cached_result(client)
    if remembered is not None:
        with _lock:
            _results[key] = remembered
        return remembered
    settings = {"temperature": 0.0, "max_tokens": 1}
    user = {"role": "user", "content": PROBE_USER}
    try:
        without = client.send([user], settings, role=PROBE_ROLE).prompt_tokens
        with_system = client.send([{"role": "system", "content": PROBE_SYSTEM}, user], settings,
                                  role=PROBE_ROLE).prompt_tokens
    except EndpointUnreachableError:
        raise  # nothing to probe; the run could not start either: say so now, naming the URL
    except WorkbenchError as exc:
        log.warning("could not probe %s (%s) for system messages: %s", client.base_url, client.model, exc)
        return UNKNOWN  # not remembered: the next run may reach the endpoint
    if without <= 0 or with_system <= 0 or with_system < without:
        result = UNKNOWN
    else:
        result = KEPT if with_system > without else DROPPED
    with _lock:
        _results[key] = result
    if result != UNKNOWN:
        _cache_result(client, result)
    return result


def _cache_key(client) -> str:
    messages = [{"role": "system", "content": PROBE_SYSTEM}, {"role": "user", "content": PROBE_USER}]
    return ResponseCache.key(client.cache_namespace, client.model, messages, CACHE_SETTINGS)


def _cached_result(client) -> str | None:
    """What an earlier process found for this endpoint and model, from the response cache (or None)."""
    cache = getattr(client, "cache", None)
    if cache is None:
        return None
    try:
        hit = cache.get(_cache_key(client))
    except Exception as exc:  # a broken cache costs a probe, never the run
        log.warning("response cache %s unreadable (%s); probing the endpoint", cache, exc)
        return None
    text = hit.get("text") if hit else None
    if text not in (KEPT, DROPPED):
        return None
    probed_at = hit.get("probed_at")
    if not isinstance(probed_at, (int, float)) or time.time() - probed_at > max_age_seconds():
        log.info("the remembered probe of %s (%s) is too old; asking the endpoint again", client.base_url, client.model)
        return None  # an entry without a date comes from a version that did not record one: too old
    return text


def _cache_result(client, result: str) -> None:
    cache = getattr(client, "cache", None)
    if cache is None:
        return
    try:
        cache.put(_cache_key(client), {"text": result, "prompt_tokens": 0, "completion_tokens": 0,
                                       "model": client.model, "finish_reason": "probe", "probed_at": time.time()})
    except Exception as exc:
        log.warning("could not remember the probe of %s in the response cache %s: %s", client.base_url, cache, exc)


def forget_probes() -> None:
    """Forget every remembered probe result (for tests)."""
    with _lock:
        _results.clear()


def notice(role: str, client, system_messages: str, fold_system: bool, source: str) -> dict:
    """The data of one ``endpoint_probe`` event."""
    return {"role": role, "base_url": client.base_url, "model": client.model,
            "system_messages": system_messages, "fold_system": bool(fold_system), "source": source}
