"""A persistent response cache, so re-running a notebook or a test does not pay for the same call twice."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

CACHE_FILE_NAME = "llm-cache.sqlite"


def default_cache_dir() -> Path:
    """``$WORKBENCH_CACHE_DIR`` if set, else ``~/.cache/workbench``."""
    configured = os.environ.get("WORKBENCH_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "workbench"


class ResponseCache:
    """Chat responses stored in one SQLite file, keyed by what determines the answer.

    The key is the sha256 of the canonical JSON of model, messages and sampling settings, so the
    same request at temperature 0 is answered from disk. Safe to share between threads (one
    connection behind a lock) and tolerant of other processes using the same file (WAL, busy timeout).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False, isolation_level=None)
        with self._lock:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError:
                pass  # e.g. a filesystem without shared memory: the default journal still works
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS responses ("
                " key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"
            )

    @classmethod
    def default(cls) -> "ResponseCache":
        """The user's shared cache: ``~/.cache/workbench/llm-cache.sqlite`` (or under ``$WORKBENCH_CACHE_DIR``)."""
        return cls(default_cache_dir() / CACHE_FILE_NAME)

    @staticmethod
    def key(model: str, messages: list[dict], sampling: dict[str, Any]) -> str:
        """The cache key of one request: sha256 of its canonical JSON."""
        canonical = json.dumps(
            {"model": model, "messages": messages, "sampling": sampling},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            default=str,
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def get(self, key: str) -> dict | None:
        """The stored value for ``key``, or None."""
        with self._lock:
            row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: dict) -> None:
        """Store (or replace) the value for ``key``."""
        encoded = json.dumps(value, ensure_ascii=False)
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
