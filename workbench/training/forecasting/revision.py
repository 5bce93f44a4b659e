"""Re-estimating the rest of a run from what it observed: the rates of the forecast's expected value.

After the baseline and after each step, the forecast is made again (no LLM call) with `Priors` whose
rates come from the run, each blended with the stated prior counted as `PRIOR_WEIGHT` observations
(Laplace's rule of succession when the prior is 1/2), so a few observations move it and many decide it:

- failing share: the validation and training samples that fail with the current values, read from
  the memo (the baseline, a step's forward, a kept change's gates scored them);
- keep chance: attempts kept / attempts made in this fit; minibatch pass: gates passed / gates run;
- validated share: validation samples run per validation / the split's size;
- fix share: per kept change, (score - best) / (1 - best) on validation: the share of what was
  missing that it recovered.
"""
from __future__ import annotations

import threading
from dataclasses import replace

from ...records.events import Event
from .forecast import Priors

PRIOR_WEIGHT = 2.0
OBSERVED_EVENTS = {"proposal", "minibatch", "eval", "validation", "update"}


class Observations:
    """This fit's proposal outcomes, tallied from its events (`on_event`, subscribed to the run's bus)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._attempts: set[str] = set()
        self._kept: set[str] = set()
        self.gates = self.passed = self.validations = self.validated = 0
        self.fixes: list[float] = []

    def on_event(self, e: Event) -> None:
        d = e.data
        with self._lock:
            if e.type == "proposal":
                self._attempts.add(d["proposal_id"])
            elif e.type == "minibatch":
                self.gates += 1
                self.passed += bool(d.get("passed"))
            elif e.type == "eval" and d.get("split") == "val" and d.get("phase") == "proposal" and d.get("proposal_id"):
                self.validations += 1
                self.validated += int(d.get("n") or 0)
            elif e.type == "validation" and d.get("passed") and d.get("score") is not None \
                    and d.get("best") is not None and d["best"] < 1.0:
                self.fixes.append(max(0.0, min(1.0, (d["score"] - d["best"]) / (1.0 - d["best"]))))
            elif e.type == "update" and d.get("accepted"):
                self._kept.add(d["proposal_id"])

    def to_dict(self) -> dict:
        with self._lock:
            return {"attempts": len(self._attempts), "kept": len(self._kept & self._attempts), "gates": self.gates,
                    "gates_passed": self.passed, "validations": self.validations,
                    "validation_samples": self.validated, "fixes": [round(f, 4) for f in self.fixes]}


def revised_priors(prior: Priors, observed: dict, failing: tuple[int, int], val_size: int, after: str) -> Priors:
    """`prior` with each rate blended with what was observed (`Observations.to_dict()`, and `failing`:
    (failing, scored) samples of the current values)."""
    def blend(hits: float, n: float, stated: float) -> float:
        return (hits + PRIOR_WEIGHT * stated) / (n + PRIOR_WEIGHT)

    o = observed
    fails, scored = failing
    return replace(prior,
                   failing_share=blend(fails, scored, prior.failing_share),
                   keep_chance=blend(o["kept"], o["attempts"], prior.keep_chance),
                   minibatch_pass=blend(o["gates_passed"], o["gates"], prior.minibatch_pass),
                   validated_share=blend(o["validation_samples"] / val_size if val_size else 0.0,
                                         o["validations"] if val_size else 0, prior.validated_share),
                   fix_share=blend(sum(o["fixes"]), len(o["fixes"]), prior.fix_share),
                   source=f"re-estimated after {after} from {fails} of {scored} samples failing with "
                          f"the current values, {o['kept']} of {o['attempts']} attempts kept, {o['gates_passed']} of "
                          f"{o['gates']} minibatch gates passed, {o['validation_samples']} samples in "
                          f"{o['validations']} validations; the stated prior counts as {PRIOR_WEIGHT:g} observations")
