"""Test-only kill points: narrow moments inside writes where a test makes the process SIGKILL itself.

`WORKBENCH_TEST_KILL_AT=<point>[@<n>]` kills the process the n-th time (default: the first) it reaches
`<point>`; unset (always, outside tests) every check is one dictionary lookup and does nothing. The
points (docs/FAILURES.md says what a kill at each costs):

    after_event:<type>    right after an event of that type is appended to events.jsonl
    mid_event:<type>      half of that event's line written, the rest never
    checkpoint.step_file  the step's checkpoint file written, latest.json not yet
    checkpoint.files      both checkpoint files written, no step_finished / checkpoint event yet
    run.config            config.json written, nothing after it
"""
from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from typing import Callable

ENV = "WORKBENCH_TEST_KILL_AT"
_reached: Counter = Counter()
_lock = threading.Lock()


def kill_point(name: str, before_kill: Callable[[], None] | None = None) -> None:
    """SIGKILL this process here when WORKBENCH_TEST_KILL_AT names `name` and this is its n-th visit;
    `before_kill` runs first (to leave a half-written line behind)."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    with _lock:
        _reached[name] += 1
        if _reached[name] != int(nth or 1):
            return
        if before_kill is not None:
            before_kill()
        os.kill(os.getpid(), signal.SIGKILL)
