"""How a failed chat request is read: worth another try or not, how long the server asked us to wait,
whether a connection was ever made, and the server's own message (secrets redacted)."""
from __future__ import annotations

import email.utils
import time

import openai

from workbench.redact import redact

RETRYABLE_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))
class MalformedReply(Exception):
    """A 200 reply whose body is not a chat completion (cut JSON, an HTML error page): transient."""


def is_retryable(exc: BaseException) -> bool:
    """Rate limits, server errors, timeouts, connection failures and malformed bodies are worth another try."""
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in RETRYABLE_STATUSES
    return isinstance(exc, (openai.APIConnectionError, openai.APITimeoutError, MalformedReply))


def retry_after_seconds(exc: BaseException | None) -> float | None:
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


def is_connect_failure(exc: BaseException) -> bool:
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


def server_message(exc: openai.APIStatusError) -> str:
    return redact(raw_server_message(exc))


def raw_server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return exc.message or str(exc)
