"""The mode a file gets: what a plain write would give it, also when it is written atomically.

`tempfile.mkstemp` makes its files 0600, and renaming a temp file over the target carries that mode
over: a report meant for a reviewer ended up readable by its writer alone. Files are given the mode
`open(path, "w")` would leave instead (docs/FAILURES.md says why run folders are no different).
"""
from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

__all__ = ["current_umask", "normal_mode"]

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where Linux says it (/proc/self/status)."""
    try:
        with open("/proc/self/status", encoding="utf-8", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:  # elsewhere: set and restore (another thread creating a file meanwhile is the risk)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def normal_mode(path: Path) -> int:
    """The mode a plain `open(path, "w")` would leave: an existing file keeps its own, a new one gets
    0o666 less the umask (0644 under 022), so a report or a run folder can be read by whom the user's
    settings allow. (mkstemp's temp files are 0600; the rename would carry that over.)"""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~current_umask()
