"""Thread-safe token and call accounting, per model role."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Callable

# what a listener is told of each counted answer: (role, kind "call" or "cache_hit", prompt tokens,
# completion tokens, latency in seconds)
UsageListener = Callable[[str, str, int, int, float], None]


@dataclass
class _RoleUsage:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hits: int = 0
    latency_s: float = 0.0


class UsageMeter:
    """Counts calls, tokens, cache hits and latency per role ("task", "backward", "optimizer").

    One meter is usually shared by the three models of a :class:`~workbench.llm.models.Models`, so
    a run can report its total spend. ``calls`` counts requests that reached the server; a cache hit
    increments ``cache_hits`` only and charges no tokens.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_role: dict[str, _RoleUsage] = {}
        self._listeners: list[UsageListener] = []

    def listen(self, listener: UsageListener) -> Callable[[], None]:
        """Tell `listener` of every call and cache hit counted from now on (a run's ledger of paid
        calls, which outlives a kill); returns the function that stops it."""
        with self._lock:
            self._listeners.append(listener)

        def stop() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)
        return stop

    def _tell(self, *what) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(*what)

    def record_call(self, role: str, prompt_tokens: int, completion_tokens: int, latency_s: float) -> None:
        """Record one request answered by the server."""
        with self._lock:
            usage = self._by_role.setdefault(role, _RoleUsage())
            usage.calls += 1
            usage.prompt_tokens += int(prompt_tokens)
            usage.completion_tokens += int(completion_tokens)
            usage.latency_s += float(latency_s)
        self._tell(role, "call", int(prompt_tokens), int(completion_tokens), float(latency_s))

    def record_cache_hit(self, role: str) -> None:
        """Record one answer served from the response cache (no tokens are charged)."""
        with self._lock:
            self._by_role.setdefault(role, _RoleUsage()).cache_hits += 1
        self._tell(role, "cache_hit", 0, 0, 0.0)

    def snapshot(self) -> dict[str, dict]:
        """Counters per role, as plain dicts (a copy; safe to keep)."""
        with self._lock:
            return {role: asdict(usage) for role, usage in self._by_role.items()}

    def total(self) -> dict:
        """Counters summed over all roles."""
        total = _RoleUsage()
        with self._lock:
            for usage in self._by_role.values():
                total.calls += usage.calls
                total.prompt_tokens += usage.prompt_tokens
                total.completion_tokens += usage.completion_tokens
                total.cache_hits += usage.cache_hits
                total.latency_s += usage.latency_s
        return asdict(total)

    def reset(self) -> None:
        """Forget every counter (e.g. between two runs that share the models)."""
        with self._lock:
            self._by_role.clear()

    def __repr__(self) -> str:
        return f"UsageMeter({self.total()})"
