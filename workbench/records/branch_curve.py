"""What a branch's curve inherits: its ancestors' rows up to the branch point.

A branch goes on from its parent's checkpoint after step k; its own event log starts after k, with no
baseline. `open_run(branch).curve` puts these rows first (the baseline at step 0 included), each marked
`from_run` with the run whose log holds it, so a branch's curve is the whole path that led to it, as
`compare(...).curves` draws it; `lineage_chart` gives the report's chart the same path. A run started from
scratch inherits none.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Iterator

from ..errors import DamagedFileWarning
from .charts import CurveData
from .events import Event
from .family import branch_record, parent_folder
from .fold import RunFold
from .store import read_events


def with_inherited(folder: str | os.PathLike, own: list[dict]) -> list[dict]:
    """A branch's curve rows: those it inherits, then its own. A branch at its parent's last step evaluates
    only the test split there: that score goes into the inherited row of the step (the rest is the parent's)."""
    rows = {row["step"]: row for row in inherited_curve(folder)}
    for row in own:
        if row["step"] in rows:
            if row.get("test") is not None:
                rows[row["step"]] = dict(rows[row["step"]], test=row["test"])
        else:
            rows[row["step"]] = row
    return sorted(rows.values(), key=lambda row: row["step"])


def inherited_curve(folder: str | os.PathLike, _seen: frozenset = frozenset()) -> list[dict]:
    """The curve rows a branch carries from its ancestors (up to its branch point), oldest first; none for a
    run started from scratch or a branch whose parent folder is lost."""
    folder = Path(folder)
    record, parent = branch_record(folder), parent_folder(folder)
    if record is None or parent is None or not isinstance(record.get("step"), int) or parent.resolve() in _seen:
        return []
    at = record["step"]
    fold = RunFold(keep_rows=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedFileWarning)  # the parent's own open_run reports it
        for event in read_events(parent / "events.jsonl"):
            fold.apply(event)
    own = [dict(row, from_run=record["parent"]) for row in fold.curve if row["step"] <= at]
    above = [row for row in inherited_curve(parent, _seen | {folder.resolve()}) if row["step"] <= at]
    steps = {row["step"] for row in own}
    return sorted([row for row in above if row["step"] not in steps] + own, key=lambda row: row["step"])


def lineage_chart(folder: str | os.PathLike) -> CurveData:
    """The chart data of a run's whole path: its ancestors' events up to each branch point, then its own."""
    data = CurveData()
    for event in _lineage_events(Path(folder), None, frozenset()):
        data.apply(event)
    return data


def _lineage_events(folder: Path, up_to: int | None, seen: frozenset) -> Iterator[Event]:
    record, parent = branch_record(folder), parent_folder(folder)
    inherits = record is not None and parent is not None and isinstance(record.get("step"), int) \
        and parent.resolve() not in seen
    if inherits:
        at = record["step"] if up_to is None else min(record["step"], up_to)
        yield from _lineage_events(parent, at, seen | {folder.resolve()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedFileWarning)  # the run's own open_run reports it
        for event in read_events(folder / "events.jsonl"):
            if inherits and event.type == "run_started":
                continue  # a branch's start would clear the path it goes on from
            if up_to is None or event.step <= up_to:
                yield event
