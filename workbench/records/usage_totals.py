"""Token and cost arithmetic on the usage events carry: `{role: {calls, prompt_tokens, completion_tokens,
cache_hits, latency_s}}`, cumulative since the run started.

The one place that says what "tokens" and "cost" mean, so the progress line, the dashboard's totals,
the charts, `open_run(...).usage`, `runs()` and the MLflow sink never disagree:
tokens = prompt + completion tokens; cost = USD per million prompt / completion tokens, per role.
"""
from __future__ import annotations

from typing import Any, Iterable

USAGE_FIELDS = ("calls", "prompt_tokens", "completion_tokens", "cache_hits", "latency_s")

Prices = dict[str, tuple[float, float]]  # role -> (USD per 1M prompt tokens, USD per 1M completion tokens)


def count(value: Any) -> int:
    """A counter read from an event: anything that is not an int (null, a bool, text) counts as 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) else \
        int(value) if isinstance(value, float) else 0


def role_usages(usage: Any) -> Iterable[tuple[str, dict]]:
    """(role, counters) of a usage mapping, skipping what is not a role's counters."""
    return ((role, u) for role, u in (usage or {}).items() if isinstance(u, dict)) if isinstance(usage, dict) else ()


def tokens(u: dict) -> int:
    """Tokens of one role's counters: prompt + completion."""
    return count(u.get("prompt_tokens")) + count(u.get("completion_tokens"))


def cost_usd(prompt_tokens: int, completion_tokens: int, price: tuple[float, float]) -> float:
    """USD for these tokens at `price` (USD per million prompt tokens, per million completion tokens)."""
    return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1e6


def delta(now: dict, before: dict) -> dict:
    """What one role spent between two cumulative snapshots (latency rounded to microseconds)."""
    before = before if isinstance(before, dict) else {}
    out = {k: (now.get(k) or 0) - (before.get(k) or 0) for k in USAGE_FIELDS}
    out["latency_s"] = round(out["latency_s"], 6)
    return out


def totals(usage: Any, prices: Prices | None = None) -> dict:
    """Calls, tokens and cost over all roles, and per role: `{calls, tokens, cost, by_role}`
    (`by_role[role]`: calls, prompt_tokens, completion_tokens, tokens, cache_hits, cost).

    `cost` is None without prices; with prices, a role that has none costs nothing counted (its own
    `cost` is None) and the sum covers the priced roles."""
    prices = prices or {}
    calls = all_tokens = 0
    cost = 0.0 if prices else None
    by_role = {}
    for role, u in role_usages(usage):
        pt, ct = count(u.get("prompt_tokens")), count(u.get("completion_tokens"))
        calls += count(u.get("calls"))
        all_tokens += pt + ct
        role_cost = cost_usd(pt, ct, prices[role]) if role in prices else None
        if role_cost is not None:
            cost = (cost or 0.0) + role_cost
        by_role[role] = {"calls": count(u.get("calls")), "prompt_tokens": pt, "completion_tokens": ct,
                         "tokens": pt + ct, "cache_hits": count(u.get("cache_hits")), "cost": role_cost}
    return {"calls": calls, "tokens": all_tokens, "cost": cost, "by_role": by_role}
