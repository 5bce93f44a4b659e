"""Large texts stored once: a 2 MB sample is written to the run folder one time, not on every evaluation.

A sample's input reaches the log many times (its `forward` events, the graph's node inputs and
prompt, each line of the evaluation memo). A string longer than `LARGE_TEXT` characters in a line of
`events.jsonl` or `eval_memo.jsonl` is written to `blobs/<sha256>.txt` (once: the name is its
content's hash) and the line holds `{"$blob": "blobs/<sha256>.txt", "chars": n}` in its place.
Readers put the text back (`read_events`, `open_run`, the memo), so every consumer sees the line as
it was emitted. A blob file that is missing reads back as a visible note, never as silence.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

LARGE_TEXT = 64_000  # characters; smaller texts stay in their line
BLOB_DIR = "blobs"
MARK = b'"$blob"'  # a line without it has nothing to put back


def externalize(data: Any, folder: Path) -> Any:
    """`data` with every string longer than LARGE_TEXT replaced by a reference to its blob file."""
    if isinstance(data, str):
        return _store(data, folder) if len(data) > LARGE_TEXT else data
    if isinstance(data, dict):
        return {k: externalize(v, folder) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [externalize(v, folder) for v in data]
    return data


def internalize(data: Any, folder: Path) -> Any:
    """`data` with each blob reference replaced by its text (the inverse of `externalize`)."""
    if isinstance(data, dict):
        if set(data) == {"$blob", "chars"} and isinstance(data["$blob"], str):
            return _load(data["$blob"], data["chars"], folder)
        return {k: internalize(v, folder) for k, v in data.items()}
    if isinstance(data, list):
        return [internalize(v, folder) for v in data]
    return data


def _store(text: str, folder: Path) -> dict:
    raw = text.encode("utf-8", errors="surrogatepass")
    relative = f"{BLOB_DIR}/{hashlib.sha256(raw).hexdigest()}.txt"
    path = Path(folder) / relative
    if not path.exists():  # content-addressed: the same text is written once
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(raw)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)  # complete or absent, never half: the line refers to it only after this
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    return {"$blob": relative, "chars": len(text)}


def _load(relative: str, chars: Any, folder: Path) -> str:
    path = (Path(folder) / relative).resolve()
    if path.parent != (Path(folder) / BLOB_DIR).resolve():  # a reference names a file in blobs/, nothing else
        return f"[text of {chars} characters stored outside the run's blobs folder: {relative}; not read]"
    try:
        return path.read_bytes().decode("utf-8", errors="surrogatepass")
    except (OSError, UnicodeDecodeError) as exc:
        return f"[text of {chars} characters stored in {relative}, which cannot be read: {type(exc).__name__}]"


def _umask() -> int:
    from ..file_modes import current_umask
    return current_umask()


def expand_line(line: bytes, folder: Path) -> bytes:
    """A JSON line with its blob references replaced by their texts (a damaged line is left as it is)."""
    if MARK not in line:
        return line
    import json
    try:
        data = json.loads(line)
    except ValueError:
        return line
    return json.dumps(internalize(data, folder), ensure_ascii=False).encode("utf-8", errors="surrogatepass")
