"""Which samples of a batch are back-propagated, and why.

Backward costs several LLM calls per node, so only failed samples are sent (the worst first),
capped, plus a few passing ones for contrast. Errored samples (the endpoint failed) say nothing
about the prompt and are never sent. The reason for every choice is recorded for the UI.

Graded scores: a sample at or above `pass_threshold` counts as passing here (an F1 of 0.95 is not
an error worth a backward pass). Samples that failed in a step where no proposal was accepted are
*carried over* to the next steps (as in AdalFlow) until something is accepted, capped; they are
chosen first, outside the `max_failed` cap of the fresh batch.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterable, Protocol


class Scored(Protocol):
    sample_id: str
    score: float | None
    status: str  # "ok" | "failed" | "errored"


@dataclass(frozen=True)
class Selection:
    sample_id: str
    selected: bool
    reason: str


def _passing(r: Scored, pass_threshold: float) -> bool:
    """At or above the threshold, and not a sample on which the pipeline's own code (or the eval
    function) raised: that one scored 0 and failed, even when the threshold is 0."""
    return r.score is not None and r.score >= pass_threshold and getattr(r, "error", None) is None


def select_for_backward(results: Iterable[Scored], *, pass_threshold: float = 1.0, max_failed: int = 4,
                        max_correct: int = 1, seed: int = 0, pinned: Iterable[str] = (),
                        excluded: Iterable[str] = (), carried: Iterable[str] = (),
                        max_carried: int = 4, taught: Iterable[str] = ()) -> list[Selection]:
    """Return one `Selection` per result, in the results' order.

    `taught`: samples a person gave feedback on (`trainer.feedback`): always sent backward, so the
    feedback reaches the parameters, even when they pass (and even when excluded: the person asked).

    `carried`: ids (among `results`) of samples that failed in earlier steps with nothing accepted;
    those still failing are chosen first, up to `max_carried`.
    """
    results = list(results)
    pinned, excluded, carried, taught = set(pinned), set(excluded), list(dict.fromkeys(carried)), set(taught)
    chosen: dict[str, str] = {}
    by_id = {r.sample_id: r for r in results}
    for sample_id in carried[-max_carried:] if max_carried > 0 else []:
        r = by_id.get(sample_id)
        if r is not None and sample_id not in excluded and r.status != "errored" and not _passing(r, pass_threshold):
            chosen[sample_id] = f"carried: failed in an earlier step (score {r.score or 0:g}), nothing accepted since"
    failed = [r for r in results if r.status != "errored" and r.sample_id not in excluded
              and not _passing(r, pass_threshold)]
    passed = [r for r in results if r.status != "errored" and r.sample_id not in excluded
              and _passing(r, pass_threshold)]
    for r in results:
        if r.sample_id in pinned and r.sample_id not in excluded and r.status != "errored":
            chosen[r.sample_id] = "pinned by the user"
    for r in results:
        if r.sample_id in taught and r.status != "errored":
            chosen[r.sample_id] = "the person gave feedback on it"
    failed.sort(key=lambda r: (r.score if r.score is not None else 0.0))
    for r in failed:
        if r.sample_id in carried:
            continue
        if sum(1 for v in chosen.values() if v.startswith("failed")) >= max_failed:
            break
        chosen.setdefault(r.sample_id, "failed (the pipeline raised: score 0)" if getattr(r, "error", None)
                          else f"failed (score {r.score or 0:g} < {pass_threshold:g})")
    if chosen:
        rng = random.Random(seed)
        contrast = [r for r in passed if r.sample_id not in chosen]
        for r in rng.sample(contrast, min(max_correct, len(contrast))):
            chosen[r.sample_id] = f"passed (score {r.score:g}), kept for contrast"
    out = []
    for r in results:
        if r.sample_id in chosen:
            out.append(Selection(r.sample_id, True, chosen[r.sample_id]))
        elif r.status == "errored":
            out.append(Selection(r.sample_id, False, "errored: the call failed, says nothing about the prompt"))
        elif r.sample_id in excluded:
            out.append(Selection(r.sample_id, False, "excluded by the user"))
        elif r.sample_id in carried and r in failed:
            out.append(Selection(r.sample_id, False, f"carried, but over the cap of {max_carried}"))
        elif r.sample_id in carried:
            out.append(Selection(r.sample_id, False, "carried, and passes now"))
        elif r in failed:
            out.append(Selection(r.sample_id, False, f"failed, but over the cap of {max_failed}"))
        else:
            out.append(Selection(r.sample_id, False, "passed"))
    return out
