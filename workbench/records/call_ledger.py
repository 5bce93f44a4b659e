"""The run's ledger of paid calls (`calls.jsonl`): one line per answer the moment it is counted.

A checkpoint carries the usage of the run up to its step; the calls paid after it (the step a kill
interrupted) would otherwise vanish from the record and from the budget, which is a limit across
kills too. So every answer counted by the run's usage meters is appended here at once (one
`write()` on an append-only file: a SIGKILL loses no line the process finished writing), and a
resumed run counts what the ledger holds. A kill can only miss the calls in flight: answered by the
endpoint but not yet counted.

    {"role": "task", "kind": "call", "prompt_tokens": 120, "completion_tokens": 8, "latency_s": 0.41}

`kind` is "call" (a request the endpoint answered) or "cache_hit" (free). A torn last line is skipped.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)

LEDGER_FILE = "calls.jsonl"
USAGE_KEYS = ("calls", "prompt_tokens", "completion_tokens", "cache_hits", "latency_s")


class CallLedger:
    """Appends one line per counted answer to `<run folder>/calls.jsonl` (thread safe)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.path = Path(folder) / LEDGER_FILE
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._warned = False

    def record(self, role: str, kind: str, prompt_tokens: int, completion_tokens: int, latency_s: float) -> None:
        line = json.dumps({"role": role, "kind": kind, "prompt_tokens": prompt_tokens,
                           "completion_tokens": completion_tokens, "latency_s": round(latency_s, 6)})
        try:
            with self._lock:
                if self._fd is None:
                    self._fd = self._open()
                os.write(self._fd, (line + "\n").encode("utf-8"))
        except OSError as exc:  # the reply is paid and cached: a ledger that cannot be written costs the record only
            if not self._warned:
                self._warned = True
                log.warning("could not write the ledger of paid calls %s (%s): a resume after a kill may "
                            "under-count calls paid since the last checkpoint", self.path, exc)

    def _open(self) -> int:
        """Append-only; a torn last line (a kill in mid-write) is ended first, so no later line is lost."""
        exists = self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)  # the umask applies, as to a plain write
        if exists and self.path.stat().st_size:
            with open(self.path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    os.write(fd, b"\n")
        return fd

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def ledger_usage(folder: str | os.PathLike) -> dict[str, dict] | None:
    """Usage per role summed over the ledger (`{role: {calls, prompt_tokens, ...}}`), or None when
    the run has no ledger (a folder written before it existed)."""
    path = Path(folder) / LEDGER_FILE
    if not path.is_file():
        return None
    usage: dict[str, dict] = {}
    with open(path, "rb") as f:
        for raw in f:
            try:
                entry = json.loads(raw)
                role, kind = str(entry["role"]), entry["kind"]
                counts = usage.setdefault(role, dict.fromkeys(USAGE_KEYS, 0))
                if kind == "cache_hit":
                    counts["cache_hits"] += 1
                else:
                    counts["calls"] += 1
                    counts["prompt_tokens"] += int(entry["prompt_tokens"])
                    counts["completion_tokens"] += int(entry["completion_tokens"])
                    counts["latency_s"] += float(entry["latency_s"])
            except (ValueError, KeyError, TypeError):
                continue  # a torn line (a kill in mid-write): what it would have said was in flight
    return usage


def most_of(checkpointed: dict[str, dict], ledger: dict[str, dict] | None) -> dict[str, dict]:
    """Per role and counter, the larger of a checkpoint's usage and the ledger's: the ledger holds
    every call a checkpoint does and the ones after it, unless it is missing or was not written."""
    if ledger is None:
        return checkpointed
    merged: dict[str, dict] = {}
    for role in set(checkpointed) | set(ledger):
        a, b = checkpointed.get(role, {}), ledger.get(role, {})
        merged[role] = {k: max(a.get(k, 0), b.get(k, 0)) for k in set(a) | set(b)}
    return merged
