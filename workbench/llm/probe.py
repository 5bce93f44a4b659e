"""Does an endpoint keep system messages? Ask it once, by counting tokens.

Some OpenAI-compatible servers silently drop ``role="system"`` messages (llama.cpp with its
``gemma`` chat format counts the same prompt tokens with and without one), so the instructions
being trained would never reach the model. The probe sends the same short user turn twice, once
with a system message in front, with a one-token reply cap: if the server reports the same prompt
tokens for both, the system message was dropped and the client folds system messages into the
user turn from then on.

The answer is remembered per (endpoint, model) for the life of the process, so an endpoint is
probed once however many ``Models`` are built on it. Each result becomes an ``endpoint_probe``
notice: ``{role, base_url, model, system_messages, fold_system, source}``.
"""

from __future__ import annotations

import logging
import os
import threading

from workbench.errors import ConfigError, EndpointUnreachableError, WorkbenchError

log = logging.getLogger(__name__)

PROBE_SYSTEM = "You are a careful assistant. Always follow these instructions exactly and completely."
PROBE_USER = "Reply with the single word OK."
PROBE_ROLE = "probe"  # usage of the probe's two calls is recorded under this role

KEPT, DROPPED, UNKNOWN = "kept", "dropped", "unknown"
FOLD_ENV = "WORKBENCH_FOLD_SYSTEM"

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
    return result


def forget_probes() -> None:
    """Forget every remembered probe result (for tests)."""
    with _lock:
        _results.clear()


def notice(role: str, client, system_messages: str, fold_system: bool, source: str) -> dict:
    """The data of one ``endpoint_probe`` event."""
    return {"role": role, "base_url": client.base_url, "model": client.model,
            "system_messages": system_messages, "fold_system": bool(fold_system), "source": source}
