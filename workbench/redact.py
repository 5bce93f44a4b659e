"""Keep secrets out of everything the package writes or prints, by value.

Scrubbing by field name misses a key that an endpoint echoes inside an error message, and it
breaks legal names (a parameter called ``login.password``). So every secret value the package
learns (an API key, the value of a variable named by ``--api-key-env``, a password in a base URL)
is registered here, and writers (run store, CLI, exports, cache) pass text through :func:`redact`.
"""
from __future__ import annotations

import threading
import urllib.parse
from typing import Any

MASK = "<redacted>"
MIN_SECRET_LENGTH = 6  # shorter values ("x", "none") would mask ordinary words

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret value so that :func:`redact` masks it wherever it appears."""
    if not value or not isinstance(value, str):
        return
    value = value.strip()
    if len(value) < MIN_SECRET_LENGTH:
        return
    with _lock:
        _secrets.add(value)


def forget_secrets() -> None:
    """Drop every registered secret (for tests)."""
    with _lock:
        _secrets.clear()


def secrets_known() -> int:
    with _lock:
        return len(_secrets)


def redact(text: str) -> str:
    """`text` with every registered secret value replaced by ``<redacted>``."""
    if not isinstance(text, str) or not text:
        return text
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)  # longest first: a key containing another
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_obj(value: Any) -> Any:
    """A copy of a JSON-like value with secrets masked in every string (keys included)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(k) if isinstance(k, str) else k: redact_obj(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_obj(v) for v in value]
    return value


def strip_url_credentials(url: str | None) -> str | None:
    """`url` without ``user:password@`` (the password is registered as a secret first)."""
    if not url:
        return url
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return redact(url)
    if parts.username is None and parts.password is None:
        return url
    register_secret(parts.password)
    register_secret(urllib.parse.unquote(parts.password or "") or None)
    netloc = parts.netloc.rpartition("@")[2]  # host and port as written (even a port that is not a number)
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
