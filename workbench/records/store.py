"""Run folders: everything needed to inspect, resume and export a run, and nothing secret.

    runs/<run_id>/config.json        how the run was set up (no API keys)
    runs/<run_id>/events.jsonl       every event, one JSON object a line, appended as it happens
    runs/<run_id>/checkpoints/step-0003.json   parameters + trainer state after each step
    runs/<run_id>/latest.json        a copy of the newest checkpoint
    runs/<run_id>/summary.json       the outcome, written when the run ends
    runs/<run_id>/cli.json           how `workbench train` was called (written by the CLI, for --resume)
    runs/<run_id>/eval_memo.jsonl    every evaluation's score, so a resume never pays twice (eval_memo.py)
    runs/<run_id>/calls.jsonl        every paid call as it is counted, so a resume counts them (call_ledger.py)
    runs/<run_id>/blobs/             texts over 64,000 characters, stored once (blobs.py)

Files other than the event log are written atomically (temp file, fsync, rename), so a crash at any
moment leaves the last complete checkpoint readable; temp files a crash left behind are removed when
the folder is next written. Everything written passes through `workbench.redact.redact_obj`
(secrets are masked by value, so a parameter may be called `login.password`). Text that is not
valid UTF-8 (a lone surrogate in a dataset or a reply) is stored as a JSON escape, never dropped.

Reading tolerates damage: a torn last line of the event log is skipped, a checkpoint that is not
readable JSON is skipped for the one before it, and `list_runs` shows a damaged folder as damaged.
Each skip is reported as a `DamagedFileWarning`.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import DamagedFileWarning, WorkbenchError
from .events import Event
from .blobs import LARGE_TEXT, expand_line, externalize
from .kill_points import kill_point
from ..file_modes import normal_mode
from ..redact import redact, redact_obj
from .checkpoint_file import (CHECKPOINT_SCHEMA_VERSION, READABLE_VERSIONS, REQUIRED_KEYS,  # noqa: F401 (re-exported)
                              load_checkpoint_file, checkpoint_problem)

TEMP_SUFFIX = ".tmp"
# a temp file of write_text_atomic: ".<name>.<random>.tmp" (or without ".tmp": written by older versions)
_TEMP_FILE = re.compile(r"^\..+\.json\.[A-Za-z0-9_]{6,}(\.tmp)?$|^\..+\.tmp$")


def json_bytes(data: Any, indent: int | None = None) -> bytes:
    """`data` as UTF-8 JSON, secrets masked. Lone surrogates (invalid UTF-8) become \\udXXX escapes,
    which JSON readers turn back into the same string: nothing is lost and nothing crashes."""
    data = redact_obj(data)
    text = json.dumps(data, indent=indent, ensure_ascii=False, default=lambda o: redact(str(o)))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(data, indent=indent, ensure_ascii=True, default=lambda o: redact(str(o))).encode("ascii")


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Temp file, fsync, rename, fsync the folder: a crash leaves the old file or the new one, never half.
    The file gets the mode a plain write would give it (`normal_mode`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = normal_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
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


def write_text_atomic(path: Path, text: str) -> None:
    """Text with secrets masked, atomically; text that is not valid UTF-8 is backslash-escaped."""
    write_bytes_atomic(path, redact(text).encode("utf-8", errors="backslashreplace"))


def write_json_atomic(path: Path, data: Any) -> None:
    write_bytes_atomic(path, json_bytes(data, indent=1))


def remove_temp_files(folder: Path) -> list[Path]:
    """Delete the temp files an interrupted atomic write left in `folder` (not recursive)."""
    removed = []
    if not Path(folder).is_dir():
        return removed
    for path in Path(folder).iterdir():
        if path.is_file() and _TEMP_FILE.match(path.name):
            try:
                path.unlink()
                removed.append(path)
            except OSError:
                pass
    return removed


def new_run_id(prefix: str = "run") -> str:
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(2).hex()}"


def _damaged(what: str) -> None:
    warnings.warn(what, DamagedFileWarning, stacklevel=3)


class RunStore:
    """One run's folder. Subscribe `store.on_event` to a trainer's bus (the trainer does it).

    Opening a store only reads; the first write (a new run, or a resumed one) removes leftover temp
    files and makes sure the event log ends with a newline before appending.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._writing = False

    @property
    def run_id(self) -> str:
        return self.path.name

    # -- writing ------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, config: dict) -> "RunStore":
        store = cls(path)
        if (store.path / "config.json").exists():
            if not store.never_started():
                raise WorkbenchError(f"run folder {store.path} already holds a run; resume it or pick a new folder")
            store.restart(config)  # a kill before its first event: nothing ran, so it starts here again
            return store
        store.path.mkdir(parents=True, exist_ok=True)
        store._begin_writing()
        write_json_atomic(store.path / "config.json", config)
        kill_point("run.config")
        return store

    def never_started(self) -> bool:
        """Killed between creating the folder and logging `run_started` (an *incomplete start*): no
        checkpoint, no summary, no started run in the log. Nothing was trained, so it may start again here."""
        if self.checkpoints() or any((self.path / n).exists() for n in ("latest.json", "summary.json")):
            return False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DamagedFileWarning)
            return not any(e.type == "run_started" for e in self.events())

    def ended_before_its_baseline(self) -> bool:
        """A run folder whose run stopped (budget, Ctrl-C, a crash) before its first checkpoint: there is
        no state to resume, and nothing but its log and paid-for evaluations to keep."""
        return (self.path / "config.json").is_file() and not self.checkpoints() \
            and not (self.path / "latest.json").exists()

    def restart(self, config: dict) -> list[Path]:
        """Start the run of such a folder again: its log and summary are moved aside (renamed
        `<name>.aborted-<time>`, never deleted) and config.json is rewritten; the evaluation memo
        stays, so the evaluations already paid for are reused. Returns the files moved aside."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        moved = []
        with self._lock:
            for name in ("events.jsonl", "summary.json"):
                path = self.path / name
                if path.exists():
                    aside = path.with_name(f"{path.stem}.aborted-{stamp}{path.suffix}")
                    os.replace(path, aside)
                    moved.append(aside)
            self._begin_writing()
        write_json_atomic(self.path / "config.json", config)
        return moved

    def _begin_writing(self) -> None:
        """Once per store: clean up after a crash before the first write."""
        if self._writing:
            return
        self._writing = True
        remove_temp_files(self.path)
        remove_temp_files(self.path / "checkpoints")
        log = self.path / "events.jsonl"
        if log.exists() and log.stat().st_size:
            with open(log, "rb+") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":  # a torn last line: the next event starts on a line of its own
                    f.write(b"\n")

    def on_event(self, event: Event) -> None:
        line = json_bytes(event.to_dict()) + b"\n"
        if len(line) > LARGE_TEXT:  # a large text (a 2 MB sample) goes to blobs/ once, the line refers to it
            line = json_bytes(externalize(event.to_dict(), self.path)) + b"\n"
        with self._lock:
            self._begin_writing()
            with open(self.path / "events.jsonl", "ab") as f:
                kill_point(f"mid_event:{event.type}", lambda: (f.write(line[:len(line) // 2]), f.flush()))
                f.write(line)
                if event.type in ("checkpoint", "run_finished", "step_finished"):
                    f.flush()
                    os.fsync(f.fileno())
        kill_point(f"after_event:{event.type}")

    def write_checkpoint(self, step: int, state: dict) -> Path:
        with self._lock:
            self._begin_writing()
        path = self.path / "checkpoints" / f"step-{step:04d}.json"
        data = json_bytes({**state, "step": step, "written": time.time()}, indent=1)
        write_bytes_atomic(path, data)
        kill_point("checkpoint.step_file")
        write_bytes_atomic(self.path / "latest.json", data)
        return path

    def write_summary(self, summary: dict) -> None:
        with self._lock:
            self._begin_writing()
        write_json_atomic(self.path / "summary.json", summary)

    # -- reading ------------------------------------------------------------------------------
    def config(self) -> dict:
        return self._read("config.json")

    def checkpoints(self) -> list[Path]:
        """Checkpoint files, oldest first (newest last)."""
        return sorted((self.path / "checkpoints").glob("step-*.json"))

    def read_checkpoint(self, path: str | os.PathLike) -> dict | None:
        """A checkpoint file's content, or None (with a `DamagedFileWarning`) when it is not a readable
        JSON object. Whether its content is a valid trainer state is `checkpoint_problem`'s to say."""
        state, problem = load_checkpoint_file(Path(path), None)
        if problem:
            _damaged(f"skipped checkpoint {path}: {problem}")
        return state

    def latest_checkpoint(self, check: Callable[[dict], str | None] | None = checkpoint_problem,
                          skipped: list[tuple[str, str]] | None = None) -> dict | None:
        """The newest readable checkpoint, walking back past damaged ones; `latest.json` when there are
        no step files. `check(state)` names a reason to skip a readable one (by default: it does not
        follow the checkpoint schema), so `workbench runs`, exports and resume agree on the latest step.

        Each file passed over is a `DamagedFileWarning`, or, when `skipped` is given, a (path, reason)
        appended to it for the caller to report its own way (the trainer: a warning and an event)."""
        candidates = list(reversed(self.checkpoints()))
        if not candidates and (self.path / "latest.json").exists():
            candidates = [self.path / "latest.json"]
        for path in candidates:
            state, problem = load_checkpoint_file(path, check)
            if state is not None:
                return state
            if skipped is None:
                _damaged(f"skipped checkpoint {path}: {problem}")
            else:
                skipped.append((str(path), problem))
        return None

    def summary(self) -> dict | None:
        return self._read("summary.json") if (self.path / "summary.json").exists() else None

    def events(self) -> Iterator[Event]:
        """Events in order. A line that is not a readable event (a torn last line after a crash) is
        skipped with a `DamagedFileWarning` naming the line."""
        return read_events(self.path / "events.jsonl")

    def _read(self, name: str) -> dict:
        path = self.path / name
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
        except FileNotFoundError:
            raise WorkbenchError(f"{path} not found: is {self.path} a run folder?") from None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise WorkbenchError(f"{path} is damaged: not readable JSON ({type(exc).__name__}: {exc})") from None
        if not isinstance(data, dict):
            raise WorkbenchError(f"{path} is damaged: it holds a JSON {type(data).__name__}, not an object")
        return data


def parse_event_line(line: str | bytes) -> tuple[Event | None, str | None]:
    """One line of an events.jsonl: ``(event, None)``, or ``(None, why it is not one)``.

    A run killed mid-write leaves a torn line; a run resumed by an older version appended its first
    event right after the fragment. That event is recovered from the end of the line, not lost with it.
    """
    text = line.decode("utf-8", errors="backslashreplace") if isinstance(line, bytes) else line
    problem = "not an event object"
    for start in dict.fromkeys((0, text.rfind('{"type"'))):
        if start < 0:
            continue
        try:
            d = json.loads(text[start:])
        except ValueError as exc:
            problem = f"unreadable JSON ({exc})"
            continue
        if isinstance(d, dict) and isinstance(d.get("type"), str) and isinstance(d.get("data", {}), dict):
            try:
                return Event.from_dict(d), None
            except (KeyError, TypeError, ValueError) as exc:
                problem = f"not an event ({type(exc).__name__}: {exc})"
    return None, problem


def read_events(path: str | os.PathLike) -> Iterator[Event]:
    """Every readable event of an events.jsonl, in order: the one reader of the log (the store,
    `open_run`, the report and export all use it). Damaged lines are skipped with a warning."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            event, problem = parse_event_line(expand_line(raw, path.parent))
            if event is None:
                _damaged(f"{path}, line {number}: skipped a damaged event line: {problem}")
            else:
                yield event
