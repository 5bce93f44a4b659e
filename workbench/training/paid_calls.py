"""Paid calls across kills: every answer a run counts goes to its ledger at once, and a resumed run
starts from what the ledger holds (records/call_ledger.py), so usage and the budget count the calls
paid after the last checkpoint. What a kill can still miss: the calls in flight at that moment."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..records.call_ledger import CallLedger, ledger_usage, most_of


def keep_ledger(folder: Path, meter: Any, teacher_meter: Any = None) -> Callable[[], None]:
    """Append every call and cache hit `meter` counts (and a teacher's own meter, as role "teacher")
    to the run's ledger until the returned function is called."""
    ledger = CallLedger(folder)
    stops = []
    if hasattr(meter, "listen"):
        stops.append(meter.listen(ledger.record))
    if teacher_meter is not None and teacher_meter is not meter and hasattr(teacher_meter, "listen"):
        stops.append(teacher_meter.listen(lambda role, *counts: ledger.record("teacher", *counts)))

    def stop() -> None:
        for each in stops:
            each()
        ledger.close()
    return stop


def usage_paid_before(folder: Path, checkpointed: dict[str, dict]) -> dict[str, dict]:
    """What a resumed run spent before this process: the ledger's count, never less than the checkpoint's."""
    return most_of(checkpointed, ledger_usage(folder))
