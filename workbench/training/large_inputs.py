"""Samples with very large inputs are said so once per run (a warning and a `large_inputs` event).

A 2 MB sample trains like any other but costs tokens on every call and, before texts were stored
once (records/blobs.py), megabytes of log per step: the person paying should hear of it.
"""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Callable, Sequence

from ..records.blobs import LARGE_TEXT
from ..records.events import EventData, LargeInputs

if TYPE_CHECKING:
    from ..engine.example import Example


def input_chars(example: "Example") -> int:
    return sum(len(str(v)) for v in example.input.values())


def warn_of_large_inputs(splits: Sequence[Sequence["Example"]], emit: Callable[[EventData], None]) -> None:
    """One warning and one event naming every sample whose inputs pass LARGE_TEXT characters."""
    large = [(e.id, input_chars(e)) for split in splits for e in split if input_chars(e) > LARGE_TEXT]
    if not large:
        return
    largest = max(n for _, n in large)
    shown = ", ".join(sample_id for sample_id, _ in large[:5]) + (f" and {len(large) - 5} more" if len(large) > 5 else "")
    warnings.warn(f"{len(large)} sample{'s' if len(large) > 1 else ''} ({shown}) have inputs over {LARGE_TEXT:,} "
                  f"characters (the largest {largest:,}): every call on them pays for that text; the run folder "
                  f"stores each such text once, in blobs/", UserWarning, stacklevel=3)
    emit(LargeInputs(samples=[sample_id for sample_id, _ in large], largest_chars=largest, limit=LARGE_TEXT))
