"""The event bus and the event contract: how the engine tells the world what it is doing.

The trainer emits small events; the run store, the CLI progress display, the notebook widgets and
exports read them. Every event type has ONE typed definition below (a frozen dataclass registered
with `@defines("type")`), and `EventBus.emit` checks each event's `data` against it: an unknown
type, a missing required field, an unknown field or a value of the wrong type is a contract
violation. Under pytest (or with WORKBENCH_STRICT_EVENTS=1) a violation raises `EventContractError`;
in production (or with WORKBENCH_STRICT_EVENTS=0) it is logged once and the event is still delivered,
because losing the record of a paid-for run is worse than an odd field.

Optional fields have defaults, and `emit` fills them in, so a consumer may read any defined field
of a delivered event with `event.data["field"]`. docs/EVENTS.md is generated from these definitions:
`python scripts/events_doc.py --write`.

A failing subscriber is logged, never allowed to kill training (unless it is `critical`).

This module holds the definitions; the machinery lives beside it (`event_contract`: `Event`, the
checks; `event_bus`: `EventBus`; `event_reference`: the docs renderer) and is re-exported here.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

from ..errors import EventContractError
from .event_bus import EventBus, Subscriber
from .event_contract import (EVENT_TYPES, EVENTS_SCHEMA_VERSION, SHAPES, Event, EventData, Shape, _fields, _hints,
                             _required, defines, doc, fields_of, problems, shape, shape_of, strict_by_default,
                             with_defaults)
from .event_reference import DOC_BEGIN, DOC_END, render_reference, updated_doc

# the contract's machinery (event_contract), the bus (event_bus) and the docs renderer (event_reference)
# are re-exported here: `workbench.records.events` is the one import path for all of it


# -- the definitions ---------------------------------------------------------------------------------

@shape
class SampleSummary(Shape):
    """`SampleResult.summary()`: one sample's run, as `forward` and `teacher` events carry it."""
    sample_id: str
    inputs: dict = doc("input name -> text")
    target: Any
    prediction: str | None = doc("the pipeline's output as text; null when it raised or errored")
    score: float | None = doc("null when the sample errored")
    status: str = doc("`ok` / `failed` / `errored`")
    error: str | None = doc("why it failed or errored", None)
    seconds: float = doc("wall time of the sample", 0.0)


@shape
class SelectionEntry(Shape):
    """One sample of the step's minibatch and whether backward uses it."""
    sample_id: str
    selected: bool
    reason: str


@defines("run_started")
class RunStarted(EventData):
    """Once, at the start of `fit()` (also on resume)."""
    run_id: str
    config: dict = doc("`TrainConfig` as a dict")
    parameters: list = doc("`[Parameter.to_dict()]`")
    splits: dict = doc("`{train, val, test}`: sample counts")
    resumed_from: int | None = doc("the step a resumed run continues after; null for a new run")


@defines("node")
class NodeStatus(EventData):
    """A node starts or ends during a forward pass of the train split."""
    sample_id: str
    split: str
    node_id: str
    component: str
    kind: str = doc("`llm` / `function` / `loss`")
    call_index: int
    status: str = doc("`running` / `done` / `failed`")


@defines("forward")
class Forward(EventData):
    """A sample has been run and scored."""
    split: str = doc("`train` / `val` / `test` / `minibatch`")
    phase: str = doc("`baseline` / `train` / `proposal` / `final`")
    summary: SampleSummary
    graph: dict | None = doc("`Graph.to_dict()` for the train split; else null")


@defines("eval")
class Eval(EventData):
    """An evaluation of a split finished."""
    split: str
    phase: str
    score: float | None = doc("mean over the samples that were scored; null when none was")
    n: int = doc("samples run")
    errored: int = doc("samples the endpoint could not answer after retries (kept out of the mean)")
    proposal_id: str | None = doc("the candidate evaluated, or null for the current values")
    complete: bool | None = doc("for a candidate's validation: false when it stopped early (it could no "
                                "longer win); null otherwise", None)
    left_out: int = doc("samples left out of a paired comparison (errored in either run)", 0)


@defines("step_started")
class StepStarted(EventData):
    """A training step begins."""
    epoch: int
    batch: list[str] = doc("sample ids of the minibatch")


@defines("teacher")
class TeacherRan(EventData):
    """A teacher model ran the minibatch to bootstrap demos (only with `Trainer(teacher=...)`)."""
    samples: list[SampleSummary]


@defines("selection")
class Selection(EventData):
    """The backward subset is chosen."""
    samples: list[SelectionEntry]


@defines("gradient")
class GradientWritten(EventData):
    """One textual gradient is written (`Gradient.to_dict()`)."""
    sample_id: str
    node_id: str = doc("the node whose backward rule wrote it")
    component: str
    call_index: int
    target: str = doc("a parameter name, or the id of the upstream node whose output is criticised")
    target_kind: Literal["parameter", "value"]
    score: float | None
    text: str
    position: int = doc("the writing node's place in the sample's time order (0 in logs before it was recorded)", 0)
    source: Literal["backward", "person"] = doc("who wrote it: the backward engine (its rules and model) or a "
                                                "person (`trainer.feedback`)", "backward")


@defines("backward_done")
class BackwardDone(EventData):
    """Backward of the step finished."""
    samples: list[str]
    gradients: int = doc("textual gradients written")


@defines("disconnected")
class Disconnected(EventData):
    """A trainable parameter's node has no path to the loss, so it gets no gradient (backward pass)."""
    parameter: str
    node_id: str = doc("the node where the path to the loss ends")
    sample_id: str
    reason: str


@defines("skipped")
class Skipped(EventData):
    """A gradient, proposal or teacher trace was skipped: its model failed after retries, or its reply
    only echoed the prompt (a base model's echo is not feedback)."""
    stage: Literal["backward", "optimizer", "teacher"]
    parameter: str | None = doc("the parameter it was for, if any")
    node_id: str | None = doc("the node it was for, if any")
    sample_id: str | None = doc("the sample it was for, if any")
    error: str = doc("the model's error (secrets redacted)")


@defines("proposal")
class Proposal(EventData):
    """The optimizer (or a person's edit, or the demo optimizer) proposes a value."""
    proposal_id: str
    parameter: str
    role: str
    old: str
    new: str
    source: Literal["optimizer", "demos", "human"]
    gradient_summary: str
    attempt: int | None = doc("attempt number of this parameter within the step", None)
    group: str | None = doc("the joint group proposed together, if any", None)


@defines("no_proposal")
class NoProposal(EventData):
    """Nothing to propose for a trainable parameter this step: the optimizer gave nothing usable, or the
    parameter got no feedback (source "feedback")."""
    parameter: str
    source: str = doc('"optimizer", "demos", or "feedback" (no gradient reached it this step)')
    reason: str
    reply: str = doc("the optimizer's raw reply, clipped (empty when no optimizer was asked)", "")


@defines("minibatch")
class Minibatch(EventData):
    """The cheap gate on the step's minibatch (paired: same sample ids before and after)."""
    proposal_id: str
    before: float | None
    after: float | None
    passed: bool
    left_out: int = doc("samples that errored in either run, left out of both means", 0)
    samples: list[str] = doc("sample ids compared", [])


@defines("approval_requested")
class ApprovalRequested(EventData):
    """A person must decide (human approval policy)."""
    proposal_id: str
    parameter: str
    old: str
    new: str
    minibatch_before: float | None
    minibatch_after: float | None


@defines("decision")
class DecisionMade(EventData):
    """A proposal was decided."""
    proposal_id: str
    action: Literal["accept", "reject", "edit"]
    by: str = doc("`policy` / `person` / `timeout`")
    text: str | None = doc("the person's text, for `edit`")
    at: float = doc("unix time of the decision")
    reason: str | None = doc("the person's reason (asked on reject; optional on accept and edit): every later "
                             "optimizer call for the parameter sees it", None)


@defines("feedback")
class FeedbackGiven(EventData):
    """A person wrote feedback (`trainer.feedback`): accepted as a gradient with source "person", or
    refused with the reason (a leaked training target, an unknown sample, node or parameter, no text)."""
    feedback_id: str
    text: str
    source: Literal["person"] = doc("always `person`", "person")
    target_kind: Literal["sample", "node", "parameter"] = doc("`sample`: the sample's final output; `node`: that "
                                                             "node's output for the sample; `parameter`: its optimizer")
    sample_id: str | None
    node_id: str | None
    parameter: str | None
    accepted: bool
    reason: str | None = doc("why it was refused; null when accepted")


@defines("feedback_used")
class FeedbackUsed(EventData):
    """A person's pending feedback reached a backward pass (sample, node) or an optimizer call (parameter)."""
    feedback_id: str
    used_in: Literal["backward", "optimizer"]
    sample_id: str | None = doc("the sample back-propagated with it", None)
    parameter: str | None = doc("the parameter whose optimizer got it", None)
    applied: bool = doc("false when it could not act (its node is not in that sample's graph)", True)
    note: str = doc("what happened, in words", "")


@defines("validation")
class Validation(EventData):
    """The candidate's validation score."""
    proposal_id: str
    score: float | None
    best: float | None = doc("the best validation score before this candidate")
    passed: bool
    complete: bool = doc("false when validation stopped early: the candidate could no longer win", True)
    left_out: int = doc("samples that errored in either run, left out of both means", 0)
    diff: float | None = doc("mean of (candidate - current) over the samples both scored; null if none", None)
    low: float | None = doc("lower bound of the seeded paired-bootstrap interval of `diff`", None)
    high: float | None = doc("upper bound of that interval", None)
    confidence: float | None = doc("the interval's coverage (`TrainConfig.confidence`)", None)
    won: list[str] = doc("sample ids the candidate scored higher on", [])
    lost: list[str] = doc("sample ids the candidate scored lower on", [])
    rule: str = doc("`better` (a strictly better mean) or `significant` (the interval above zero)", "better")


@defines("update")
class Update(EventData):
    """A proposal was kept (accepted) or reverted."""
    proposal_id: str
    parameter: str
    accepted: bool
    value: str = doc("the parameter's value after the decision")
    reason: str


@defines("step_finished")
class StepFinished(EventData):
    """A step ended."""
    epoch: int
    train_score: float | None
    val_score: float | None
    best_val: float | None
    accepted: list[str] = doc("proposal ids kept")
    rejected: list[str] = doc("proposal ids reverted")
    optimized: list[str] = doc("parameters the optimizer worked on", [])
    mode: Literal["all", "one", "joint"] = doc("`TrainConfig.optimize`", "all")
    usage: dict = doc("`{role: {calls, prompt_tokens, completion_tokens, cache_hits, latency_s}}`")


@defines("checkpoint")
class CheckpointWritten(EventData):
    """Parameters and trainer state were written (the step is the event's `step`)."""
    path: str


@defines("checkpoint_skipped")
class CheckpointSkipped(EventData):
    """A damaged checkpoint was skipped on resume; an older one is used."""
    path: str
    reason: str


@defines("control")
class ControlApplied(EventData):
    """The run applied a control (`workbench.training.controls`): paused, resumed, one step, stopped, a
    sample pinned / unpinned / excluded / included, auto-approve switched; `pause` also when a single step ends."""
    action: Literal["pause", "resume", "step", "stop", "pin", "unpin", "exclude", "include", "auto_approve"]
    sample_id: str | None = doc("the sample, for pin / unpin / exclude / include", None)
    on: bool | None = doc("for auto_approve: whether proposals are now accepted by the policy", None)


@defines("endpoint_probe")
class EndpointProbe(EventData):
    """Whether an endpoint drops system messages (then they are folded into the user turn)."""
    role: str = doc("the model's role: task / backward / optimizer / teacher")
    base_url: str | None = doc("without credentials")
    model: str
    system_messages: Literal["kept", "dropped", "unknown"]
    fold_system: bool
    source: Literal["probe", "config"]


@defines("large_inputs")
class LargeInputs(EventData):
    """Once per run: samples whose inputs pass `limit` characters (each such text is stored once, in blobs/)."""
    samples: list[str] = doc("ids of the samples")
    largest_chars: int = doc("characters of the largest sample's inputs")
    limit: int = doc("the size above which a text is large (records/blobs.py LARGE_TEXT)")


@defines("run_finished")
class RunFinished(EventData):
    """Once, at the end (`RunSummary.to_dict()` without the parameters)."""
    run_id: str
    status: Literal["completed", "stopped", "budget", "plateau", "failed"]
    steps: int
    baseline: dict = doc("`{val, test}`")
    final: dict = doc("`{val, test}`")
    best_val: float | None
    best_step: int
    usage: dict
    run_dir: str | None
    error: str | None
    errored_samples: int = doc("sample runs whose calls failed after retries", 0)
    baseline_errored: dict = doc("`{split: n}`: baseline samples the endpoint could not answer, also when a resume "
                                 "retried them (so the baseline's mean is on fewer samples than the final one)", {})
    forecast_error: dict | None = doc("per role and measure (calls, prompt_tokens, completion_tokens): `{least, "
                                      "expected, most, actual, error, inside}` against this fit's `forecast`; "
                                      "null without one", None)


# what a run will cost and what each kept change earned (defined in cost_events, registered here in order)
from .cost_events import Credit, ForecastMade, ForecastRevised  # noqa: E402,F401


# -- docs/EVENTS.md ---------------------------------------------------------------------------------------

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "EVENTS.md"


def main(argv: list[str] | None = None) -> int:
    """Print the generated reference; `--write` updates docs/EVENTS.md; `--check` fails when it is stale."""
    argv = sys.argv[1:] if argv is None else argv
    if "--write" in argv or "--check" in argv:
        current = DOC_PATH.read_text(encoding="utf-8") if DOC_PATH.exists() else "# Events\n"
        wanted = updated_doc(current)
        if "--check" in argv:
            if wanted != current:
                print(f"{DOC_PATH} is out of date: run python scripts/events_doc.py --write", file=sys.stderr)
                return 1
            return 0
        DOC_PATH.write_text(wanted, encoding="utf-8")
        print(f"wrote {DOC_PATH}")
        return 0
    print(render_reference())
    return 0
