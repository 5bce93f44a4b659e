"""The trainer, as parts a newcomer can read one at a time, each given what it needs in its constructor.

    trainer.py     Trainer: builds the parts, fit / start / control, the end of a run
    run_state.py   RunState: what a run is at one moment; the checkpoint writes and restores it whole
    controls.py    the one channel of controls (Pause, Resume, Step, Stop, Pin, Exclude, AutoApprove)
    emitter.py     RunEmitter: every event as its typed definition, with the run's id and step
    usage.py       RunMeter: usage per role, the one budget of each fit()
    schedule.py    Schedule: epochs, steps and the seeded minibatches
    evaluation.py  Evaluator: forward passes through the memo; candidate values only inside trying()
    step.py        TrainingStep: the baseline; forward a minibatch, select samples, backward, proposals
    proposals.py   ProposalLoop: propose, checks, approval, keep (the one commit) or revert
    gate_runs.py   GateRuns: the minibatch and validation gates, paired and through the memo
    faults.py      FaultReporter: a helper model that fails, a parameter cut off: an event, not a crash
    checkpoint.py  which checkpoint a run resumes from (damaged ones skipped); back to it from an unfinished step
    lifecycle.py   the worker thread of start(), and whether fit() draws a progress bar
    config.py      TrainConfig (every knob of a run) and RunSummary (its outcome)
    approval.py    who decides a proposal: a policy or a person
    branching.py   a branch: a new run from another run's checkpoint, with changed settings (branch_decision.py:
                   the other decision on one proposal of the next step)
    paid_calls.py     the ledger of paid calls (calls.jsonl), and the usage a resume starts from
    resume_record.py  the events of a checkpointed step a kill kept out of the log, logged on resume
    baseline_retry.py the baseline samples an outage errored, retried on resume
    large_inputs.py   samples with very large inputs, said so once per run

`workbench.training.trainer.Trainer` puts them together and stays the one public face.
"""
from .config import RunSummary, TrainConfig

__all__ = ["RunSummary", "TrainConfig"]
