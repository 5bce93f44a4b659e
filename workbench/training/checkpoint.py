"""Finding the checkpoint a run resumes from, and going back to the last one when a step is left unfinished.

A checkpoint is the run's `RunState` after a step (run_state.py says what it holds and how it is
written and restored), written by the run store as JSON. `schema` says which layout it follows;
files written before the field existed are schema 0 and read the same way.

On resume, a checkpoint that does not validate (binary, `{}`, a missing key, an unknown schema) is
skipped and the previous one is used: a damaged newest file costs one step, never the run.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import WorkbenchError
from ..records.events import Update
from ..records.store import CHECKPOINT_SCHEMA_VERSION, READABLE_VERSIONS, REQUIRED_KEYS, checkpoint_problem  # noqa: F401 (re-exported)
from ..records.store import RunStore

if TYPE_CHECKING:
    from .emitter import RunEmitter
    from .run_state import RunState


def open_run_folder(run_dir: Path, resume: bool, config_record: dict
                    ) -> tuple[RunStore, dict | None, list[tuple[str, str]]]:
    """(the run's store, the checkpoint to resume from or None, the damaged ones skipped).

    A new run creates its folder. A resumed one uses its newest valid checkpoint; a folder whose run
    ended before its baseline was checkpointed starts again (its old log kept aside); with no usable
    checkpoint at all, resume stops and names each file and why."""
    if not resume:
        return RunStore.create(run_dir, config_record), None, []
    store = RunStore(run_dir)
    state, skipped = latest_valid_checkpoint(store)
    if state is None and not skipped and store.ended_before_its_baseline():
        moved = store.restart(config_record)  # nothing to restore: start it again
        warnings.warn(f"{run_dir} ended before its baseline was checkpointed, so it starts again "
                      f"(its earlier log is kept as {', '.join(p.name for p in moved) or 'nothing'})",
                      UserWarning, stacklevel=3)
    elif state is None:
        why = "".join(f"; {Path(p).name}: {reason}" for p, reason in skipped)
        raise WorkbenchError(f"cannot resume {run_dir}: it has no usable checkpoint{why or ' yet'}")
    return store, state, skipped


def latest_valid_checkpoint(store: RunStore) -> tuple[dict | None, list[tuple[str, str]]]:
    """The newest checkpoint that validates, and the (path, reason) of each newer one skipped."""
    skipped: list[tuple[str, str]] = []
    return store.latest_checkpoint(skipped=skipped), skipped


def back_to_checkpoint(state: "RunState", saved: dict | None, emit: "RunEmitter") -> None:
    """A run that ends in the middle of a step (stop, budget, error) goes back to its last checkpoint.

    So the summary, the checkpoint, `workbench runs` and an export name the same step, and the best
    score is one the exported values earned. What the unfinished step kept is reverted, with an
    `update` event each; a resume redoes the step (from the response cache where it was paid for).
    """
    if saved is None or saved["step"] == state.step:
        return
    unfinished = state.step
    before = {name: p.value for name, p in state.params.items()}
    state.from_checkpoint(saved, keep_usage=True)
    for name, p in state.params.items():
        if p.value != before[name]:
            emit(Update(proposal_id=f"step-{unfinished}-unfinished", parameter=name, accepted=False,
                        value=p.value, reason=f"step {unfinished} did not finish; back to the checkpoint "
                                              f"of step {state.step}"))
