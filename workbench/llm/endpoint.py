"""Which API key goes to which endpoint, and how an endpoint is named in messages and cache keys.

``OPENAI_API_KEY`` is a credential for OpenAI's own API; sending it to a third-party or local URL
hands it to whoever runs that server. So it is used only when the base URL is OpenAI's (or unset,
which means OpenAI's). Every other endpoint takes ``WORKBENCH_API_KEY`` or an explicit key.
Every key resolved here is registered with :mod:`workbench.redact`, so it is masked wherever the
package writes or prints text.
"""

from __future__ import annotations

import os
import urllib.parse

from workbench.errors import ConfigError
from workbench.redact import register_secret, strip_url_credentials

OPENAI_HOSTS = frozenset({"api.openai.com"})
OPENAI_BASE_URL = "https://api.openai.com/v1"


def is_openai_endpoint(base_url: str | None) -> bool:
    """True for OpenAI's own API (``None`` means the SDK's default, which is OpenAI's)."""
    if not base_url:
        return True
    try:
        host = urllib.parse.urlsplit(base_url).hostname or ""
    except ValueError:
        return False
    return host.lower() in OPENAI_HOSTS


def check_base_url(base_url: str | None) -> None:
    """Refuse a base URL no request could ever reach (no http(s) scheme, no host, a bad port) at
    once, instead of retrying it for a minute and calling every sample "errored"."""
    if not base_url:
        return
    shown = display_url(base_url)
    try:
        parts = urllib.parse.urlsplit(base_url)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number in 0-65535)
    except ValueError as exc:
        raise ConfigError(f"base URL {shown!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"base URL {shown!r} must start with http:// or https:// "
                          f"(for example http://127.0.0.1:8000/v1)")
    if not parts.hostname:
        raise ConfigError(f"base URL {shown!r} names no host (for example http://127.0.0.1:8000/v1)")


def resolve_api_key(base_url: str | None, api_key: str | None = None, api_key_env: str | None = None) -> str | None:
    """The key for ``base_url``: explicit, else the variable ``api_key_env``, else ``WORKBENCH_API_KEY``,
    else (only for OpenAI's endpoint) ``OPENAI_API_KEY``. The key found is registered as a secret."""
    if api_key_env and not api_key:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise ConfigError(f"environment variable {api_key_env} (named as the API key variable) is not set")
    if not api_key:
        api_key = os.environ.get("WORKBENCH_API_KEY") or None
    if not api_key and is_openai_endpoint(base_url):
        api_key = os.environ.get("OPENAI_API_KEY") or None
    register_secret(api_key)
    return api_key


def display_url(base_url: str | None) -> str:
    """The URL as shown in messages and events: credentials removed (and registered as secrets)."""
    return (strip_url_credentials(base_url) or OPENAI_BASE_URL).rstrip("/")
