"""The trainer, in parts a newcomer can read one at a time.

    config.py      TrainConfig (every knob of a run) and RunSummary (its outcome)
    step.py        one step: forward a minibatch, select samples, backward (textual gradients)
    proposals.py   the proposal loop: propose, constraint and leak checks, approval, keep or revert
    gate_runs.py   the minibatch and validation gates, paired and through the evaluation memo
    lifecycle.py   the worker thread, pause/resume/step/stop, obeying the controls between LLM calls, budgets
    checkpoint.py  what a checkpoint holds (with a schema version), how it is validated and restored
    faults.py      a helper model that fails after retries, or a parameter cut off from the loss: an event, not a crash
    branching.py   a branch: a new run from another run's checkpoint, with changed settings (branch_decision.py:
                   the other decision on one proposal of the next step)

`workbench.training.trainer.Trainer` puts them together and stays the one public face.
"""
from .config import RunSummary, TrainConfig

__all__ = ["RunSummary", "TrainConfig"]
