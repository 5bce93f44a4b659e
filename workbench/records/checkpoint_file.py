"""The checkpoint file format: its schema version and the check that says why a state cannot be resumed.

The trainer's state is written in training/checkpoint.py; the run store (store.py) reads the files.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable


# The layout of a checkpoint file. It is versioned apart from the event log (events.EVENTS_SCHEMA_VERSION):
# a change to what a checkpoint holds bumps this one only, a change to an event's fields that one only.
CHECKPOINT_SCHEMA_VERSION = 1
READABLE_VERSIONS = (0, 1)  # 0: written before checkpoints carried a schema version; same layout
REQUIRED_KEYS = ("step", "parameters", "memory", "best_val", "best_step", "baseline", "curve")


def checkpoint_problem(state: Any) -> str | None:
    """Why `state` cannot be resumed from, or None when it can."""
    if not isinstance(state, dict):
        return f"it holds a JSON {type(state).__name__}, not an object"
    version = state.get("schema", 0)
    if version not in READABLE_VERSIONS:
        return (f"it has checkpoint schema version {version!r}; this workbench reads schema versions "
                f"{', '.join(map(str, READABLE_VERSIONS))}")
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        return f"it lacks {', '.join(repr(k) for k in missing)}"
    if not isinstance(state["step"], int) or isinstance(state["step"], bool) or state["step"] < 0:
        return f"its step is {state['step']!r}, not a step number"
    parameters, memory = state["parameters"], state["memory"]
    if not isinstance(parameters, dict) or not isinstance(memory, dict):
        return "its 'parameters' and 'memory' are not objects"
    for name, saved in parameters.items():
        if not (isinstance(saved, dict) and isinstance(saved.get("value"), str)
                and isinstance(saved.get("history", []), list)):
            return f"its parameter {name!r} has no text value"
    if not isinstance(state["curve"], list) or not isinstance(state["baseline"], dict):
        return "its 'curve' or 'baseline' has the wrong shape"
    return None



def load_checkpoint_file(path: Path, check: Callable[[dict], str | None] | None) -> tuple[dict | None, str | None]:
    """(state, None) for a usable checkpoint file, (None, why not) otherwise; never raises on damage."""
    try:
        state = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return None, f"not readable JSON ({type(exc).__name__}: {exc})"
    if not isinstance(state, dict):
        return None, f"it holds a JSON {type(state).__name__}, not an object"
    problem = check(state) if check else None
    return (None, problem) if problem else (state, None)
