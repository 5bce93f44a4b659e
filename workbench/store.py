"""Run folders: everything needed to inspect, resume and export a run, and nothing secret.

    runs/<run_id>/config.json        how the run was set up (no API keys)
    runs/<run_id>/events.jsonl       every event, one JSON object a line, appended as it happens
    runs/<run_id>/checkpoints/step-0003.json   parameters + trainer state after each step
    runs/<run_id>/latest.json        a copy of the newest checkpoint (what resume reads)
    runs/<run_id>/summary.json       the outcome, written when the run ends

Files other than the event log are written atomically (temp file, fsync, rename), so a crash at any
moment leaves the last complete checkpoint readable.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from .errors import WorkbenchError
from .events import Event

# credential-like key names; `*_tokens` counters and `max_tokens` settings are not secrets
SECRET_KEYS = re.compile(r"(api[_-]?key|secret|password|authorization|(^|[_-])token$)", re.I)


def scrub(value: Any) -> Any:
    """Drop anything that looks like a credential before it reaches disk."""
    if isinstance(value, dict):
        return {k: ("<redacted>" if SECRET_KEYS.search(str(k)) and v else scrub(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def write_text_atomic(path: Path, text: str) -> None:
    """Temp file, fsync, rename, fsync the folder: a crash leaves the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=1, ensure_ascii=False))


def new_run_id(prefix: str = "run") -> str:
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(2).hex()}"


class RunStore:
    """One run's folder. Subscribe `store.on_event` to a trainer's bus (the trainer does it)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    @property
    def run_id(self) -> str:
        return self.path.name

    # -- writing ------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, config: dict) -> "RunStore":
        store = cls(path)
        if (store.path / "config.json").exists():
            raise WorkbenchError(f"run folder {store.path} already holds a run; resume it or pick a new folder")
        store.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(store.path / "config.json", scrub(config))
        return store

    def on_event(self, event: Event) -> None:
        line = json.dumps(scrub(event.to_dict()), ensure_ascii=False, default=str)
        with self._lock, open(self.path / "events.jsonl", "a", encoding="utf-8") as f:
            f.write(line + "\n")
            if event.type in ("checkpoint", "run_finished", "step_finished"):
                f.flush()
                os.fsync(f.fileno())

    def write_checkpoint(self, step: int, state: dict) -> Path:
        path = self.path / "checkpoints" / f"step-{step:04d}.json"
        state = scrub({**state, "step": step, "written": time.time()})
        write_json_atomic(path, state)
        write_json_atomic(self.path / "latest.json", state)
        return path

    def write_summary(self, summary: dict) -> None:
        write_json_atomic(self.path / "summary.json", scrub(summary))

    # -- reading ------------------------------------------------------------------------------
    def config(self) -> dict:
        return self._read("config.json")

    def latest_checkpoint(self) -> dict | None:
        """The newest complete checkpoint (a kill between the step file and latest.json loses nothing)."""
        for path in reversed(self.checkpoints()):
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
        return self._read("latest.json") if (self.path / "latest.json").exists() else None

    def checkpoints(self) -> list[Path]:
        return sorted((self.path / "checkpoints").glob("step-*.json"))

    def summary(self) -> dict | None:
        return self._read("summary.json") if (self.path / "summary.json").exists() else None

    def events(self) -> Iterator[Event]:
        """Events in order; a torn last line (a crash mid-write) is skipped."""
        path = self.path / "events.jsonl"
        if not path.exists():
            return
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    yield Event.from_dict(json.loads(line))
                except json.JSONDecodeError:
                    continue

    def _read(self, name: str) -> dict:
        path = self.path / name
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise WorkbenchError(f"{path} not found: is {self.path} a run folder?") from None
        except json.JSONDecodeError as exc:
            raise WorkbenchError(f"{path} is not valid JSON ({exc})") from None


def list_runs(root: str | os.PathLike = "runs") -> list[dict]:
    """One row per run folder under `root`, newest first."""
    rows = []
    for config in sorted(Path(root).glob("*/config.json")):
        store = RunStore(config.parent)
        summary = store.summary() or {}
        latest = store.latest_checkpoint() or {}
        rows.append({"run_id": store.run_id, "path": str(store.path),
                     "task": store.config().get("task", ""),
                     "status": summary.get("status", "running or interrupted"),
                     "steps": latest.get("step", 0),
                     "baseline_val": (summary.get("baseline") or latest.get("baseline") or {}).get("val"),
                     "best_val": summary.get("best_val", latest.get("best_val")),
                     "test": (summary.get("final") or {}).get("test"),
                     "created": config.stat().st_mtime})
    return sorted(rows, key=lambda r: -r["created"])
