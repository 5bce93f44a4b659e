"""The run folders under a root, and the one verdict on each: `workbench runs`, `list_runs()` and
`workbench.runs()` share `folder_problems` and `folder_status`, so they never disagree about a folder.

A folder a kill interrupted between its creation and its first event (`run_started`) is an
*incomplete start*, not damaged: nothing was trained in it, `workbench train --resume` starts it
again in place, and so does `workbench train --run-dir` with it.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

from ..errors import DamagedFileWarning, WorkbenchError
from .store import RunStore, read_events

INCOMPLETE_START = "incomplete start"

RUN_FILES = ("config.json", "events.jsonl", "latest.json")  # a folder holding any of these is a run


def restart_note(folder: str | os.PathLike) -> str:
    """How to start an incomplete start again: `--resume` rebuilds it from cli.json, if it was written."""
    how = f"`workbench train --resume {folder}`" if (Path(folder) / "cli.json").is_file() else \
        f"`workbench train` with the same flags and --run-dir {folder}"
    return f"killed before training started (nothing was trained): {how} starts it again in place"


def run_folders(root: str | os.PathLike) -> list[Path]:
    """The run folders directly under `root` (other folders, such as exports, are not runs)."""
    if not Path(root).is_dir():
        return []
    return sorted(p for p in Path(root).iterdir() if p.is_dir() and any((p / n).exists() for n in RUN_FILES))


def folder_problems(folder: str | os.PathLike) -> list[str]:
    """Why a run folder is damaged (empty when it is not): the one check behind `workbench runs`,
    `list_runs()` and `workbench.runs()`, so they never disagree about a folder.

    Damaged means a file the run is read from cannot be read: `config.json` missing or not a JSON
    object, a torn `summary.json` or `cli.json`, or an `events.jsonl` with no readable `run_started`
    in a folder that has a checkpoint or a summary (without them it is an incomplete start).
    A damaged checkpoint is not listed here: resume walks back past it (with a warning).
    """
    store = RunStore(folder)
    problems = []
    for name, required in (("config.json", True), ("summary.json", False), ("cli.json", False)):
        if not (store.path / name).exists():
            if required:
                problems.append(f"{name} is missing")
            continue
        try:
            store._read(name)  # the store's own reader: a JSON object, or why not
        except WorkbenchError as exc:
            problems.append(str(exc))
    if store.never_started():  # an incomplete start: no events yet is what it is, not damage
        return problems
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedFileWarning)  # the reason is reported here instead
        if not any(e.type == "run_started" for e in read_events(store.path / "events.jsonl")):
            problems.append("events.jsonl is missing or holds no run_started event")
    return problems


def folder_status(folder: str | os.PathLike) -> str | None:
    """INCOMPLETE_START for a folder a kill left before its first event (and nothing damaged), else None."""
    return INCOMPLETE_START if RunStore(folder).never_started() and not folder_problems(folder) else None


def list_runs(root: str | os.PathLike = "runs") -> list[dict]:
    """One row per run folder under `root`, newest first. A damaged folder (see `folder_problems`)
    is a row with status `damaged` and the reasons in `damaged`; it never hides the others."""
    rows = []
    for folder in run_folders(root):
        store = RunStore(folder)
        try:
            created = (folder / "config.json").stat().st_mtime
        except OSError:
            created = 0.0
        problems = folder_problems(folder)
        if not problems and folder_status(folder) == INCOMPLETE_START:
            rows.append({"run_id": store.run_id, "path": str(store.path), "task": "", "status": INCOMPLETE_START,
                         "note": restart_note(store.path), "steps": None, "baseline_val": None,
                         "best_val": None, "test": None, "created": created})
            continue
        if not problems:
            try:
                rows.append(_run_row(store, created))
                continue
            except (WorkbenchError, OSError, AttributeError, TypeError) as exc:
                problems = [str(exc)]
        rows.append({"run_id": store.run_id, "path": str(store.path), "task": "", "status": "damaged",
                     "damaged": "; ".join(problems), "steps": None, "baseline_val": None, "best_val": None,
                     "test": None, "created": created})
    return sorted(rows, key=lambda r: -r["created"])


def _run_row(store: RunStore, created: float) -> dict:
    config = store.config()
    summary = store.summary() or {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedFileWarning)  # a skipped checkpoint is not a damaged run
        latest = store.latest_checkpoint() or {}
    return {"run_id": store.run_id, "path": str(store.path), "task": config.get("task", ""),
            "status": summary.get("status", "running or interrupted"),
            "steps": summary.get("steps", latest.get("step", 0)),
            "baseline_val": (summary.get("baseline") or latest.get("baseline") or {}).get("val"),
            "best_val": summary.get("best_val", latest.get("best_val")),
            "test": (summary.get("final") or {}).get("test"),
            "created": created}
