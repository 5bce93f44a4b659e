"""Finding the checkpoint a run resumes from.

A checkpoint is the run's `RunState` after a step (run_state.py says what it holds and how it is
written and restored), written by the run store as JSON. `schema` says which layout it follows;
files written before the field existed are schema 0 and read the same way.

On resume, a checkpoint that does not validate (binary, `{}`, a missing key, an unknown schema) is
skipped and the previous one is used: a damaged newest file costs one step, never the run.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..records.store import CHECKPOINT_SCHEMA_VERSION, READABLE_VERSIONS, REQUIRED_KEYS, checkpoint_problem  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from ..records.store import RunStore


def latest_valid_checkpoint(store: "RunStore") -> tuple[dict | None, list[tuple[str, str]]]:
    """The newest checkpoint that validates, and the (path, reason) of each newer one skipped."""
    skipped: list[tuple[str, str]] = []
    return store.latest_checkpoint(skipped=skipped), skipped
