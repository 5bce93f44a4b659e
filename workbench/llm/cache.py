"""A persistent response cache, so re-running a notebook or a test does not pay for the same call twice."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError

CACHE_FILE_NAME = "llm-cache.sqlite"
KEY_VERSION = 2  # v2: the endpoint is part of the key (v1 keys simply never match again)

log = logging.getLogger(__name__)


def is_deterministic(settings: dict[str, Any]) -> bool:
    """A request whose answer may be replayed: temperature 0 (the default) or a fixed seed."""
    temperature = settings.get("temperature")
    return not temperature or settings.get("seed") is not None


def is_storable(text: str, finish_reason: str | None, settings: dict[str, Any], keep_truncated: bool = False) -> bool:
    """Whether a reply may be cached: not empty, not cut by the length limit (unless the user asked
    for that with ``keep_truncated``), and from a deterministic request."""
    if not text or not text.strip():
        return False
    if finish_reason == "length" and not keep_truncated:
        return False
    return is_deterministic(settings)


def default_cache_dir() -> Path:
    """``$WORKBENCH_CACHE_DIR`` if set, else ``~/.cache/workbench``."""
    configured = os.environ.get("WORKBENCH_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "workbench"


class ResponseCache:
    """Chat responses stored in one SQLite file, keyed by what determines the answer.

    The key is the sha256 of the canonical JSON of the endpoint (base URL without credentials, or
    a stable name such as the embedded model's file), the model, the messages and every sampling
    setting, so two endpoints that serve a model under the same name never share answers. Values
    are stored ASCII-escaped, so text that is not valid UTF-8 (a lone surrogate) round-trips.
    Safe to share between threads (one connection behind a lock) and tolerant of other processes
    using the same file (WAL, busy timeout).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._open()
        except (sqlite3.DatabaseError, OSError) as exc:
            damaged = type(exc) is sqlite3.DatabaseError and self.path.is_file()  # "file is not a database"
            if not damaged:
                raise ConfigError(f"response cache {self.path} cannot be opened ({exc}); pass another path, "
                                  f"set WORKBENCH_CACHE_DIR, or run without a cache (--no-cache / cache=None)") from None
            self._db = self._open_after_moving_damaged_file_aside(exc)

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False, isolation_level=None)
        try:
            try:
                db.execute("PRAGMA journal_mode=WAL")
                # a commit without fsync: an application crash loses nothing, a power cut may lose the
                # last replies (they are paid for again), and each store costs microseconds, not an fsync
                db.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.OperationalError:
                pass  # e.g. a filesystem without shared memory: the default journal still works
            db.execute("CREATE TABLE IF NOT EXISTS responses ("
                       " key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)")
        except BaseException:
            db.close()
            raise
        return db

    def _open_after_moving_damaged_file_aside(self, exc: Exception) -> sqlite3.Connection:
        """A file that is not a database (a torn copy, another program's file) is kept under a new
        name, never deleted, and a fresh cache starts in its place: a damaged cache costs calls, not the run."""
        aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            part = Path(f"{self.path}{suffix}")
            if part.exists():
                part.replace(f"{aside}{suffix}")
        log.warning("response cache %s is damaged (%s); moved it to %s and started a new one", self.path, exc, aside)
        return self._open()

    @classmethod
    def default(cls) -> "ResponseCache":
        """The user's shared cache: ``~/.cache/workbench/llm-cache.sqlite`` (or under ``$WORKBENCH_CACHE_DIR``)."""
        return cls(default_cache_dir() / CACHE_FILE_NAME)

    @staticmethod
    def key(endpoint: str, model: str, messages: list[dict], sampling: dict[str, Any]) -> str:
        """The cache key of one request: sha256 of its canonical JSON (ASCII-escaped, so any text hashes)."""
        canonical = json.dumps(
            {"v": KEY_VERSION, "endpoint": endpoint, "model": model, "messages": messages, "sampling": sampling},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=True,
            default=str,
        )
        return hashlib.sha256(canonical.encode("ascii")).hexdigest()

    def get(self, key: str) -> dict | None:
        """The stored value for ``key``, or None (also for a row that no longer decodes)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        if not row:
            return None
        try:
            value = json.loads(row[0])
        except (TypeError, ValueError):
            log.warning("ignoring a damaged cache entry %s in %s", key[:12], self.path)
            return None
        return value if isinstance(value, dict) and isinstance(value.get("text"), str) else None

    def put(self, key: str, value: dict) -> None:
        """Store (or replace) the value for ``key``."""
        encoded = json.dumps(value, ensure_ascii=True)  # \udXXX escapes keep lone surrogates intact
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, value, created) VALUES (?, ?, ?)",
                (key, encoded, time.time()),
            )

    def clear(self) -> None:
        """Delete every stored response."""
        with self._lock:
            self._db.execute("DELETE FROM responses")

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r})"
