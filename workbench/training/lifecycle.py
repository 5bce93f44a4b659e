"""A run's worker thread, and whether it draws a progress bar of its own.

`Trainer.start()` runs `fit()` in a `RunThread` and returns its Future at once; errors land in the
Future. Pausing, stepping and stopping a running run go through the control channel (controls.py).
"""
from __future__ import annotations

import sys
import threading
from concurrent.futures import Future
from typing import Callable

from ..errors import WorkbenchError
from .config import RunSummary


class RunThread:
    """The worker thread of `start()`; one at a time per trainer."""

    def __init__(self) -> None:
        self.future: Future | None = None

    def start(self, work: Callable[[], RunSummary], name: str) -> Future:
        if self.is_running:
            raise WorkbenchError("this trainer is already running")
        future: Future = Future()
        self.future = future

        def run() -> None:
            try:
                future.set_result(work())
            except BaseException as exc:  # reaches the caller through the Future
                future.set_exception(exc)
        threading.Thread(target=run, name=name, daemon=True).start()
        return future

    @property
    def is_running(self) -> bool:
        return self.future is not None and not self.future.done()

    def wait(self, timeout: float | None = None) -> RunSummary:
        if self.future is None:
            raise WorkbenchError("start() the trainer first")
        return self.future.result(timeout)


def wants_progress_bar(progress: bool | None, has_dashboard: bool) -> bool:
    """A tqdm bar for fit() in a notebook without a dashboard (`progress=None`), or as forced."""
    return in_notebook() and not has_dashboard if progress is None else progress


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where a tqdm.auto bar is a widget)."""
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    return bool(get and type(get()).__name__ == "ZMQInteractiveShell")
