"""Branch a run: a new run that starts from another run's state after step k.

    child = branch("runs/shout-...", at_step=2, max_proposals=2)          # a folder (with what it was built from)
    child = branch(trainer, proposal="p3-2", decision="accept")            # a live or finished trainer
    child.fit()

The child gets its own folder next to its parent's, starts from the parent's checkpoint of step k
(values with their history, the optimizer's memory, carried samples, curve, counters) and may
change settings (any TrainConfig field, the models, which parameters train, the approval), and the
decision on one proposal of step k+1 (branch_decision.py). Its config.json records the parent, the
step and what changed (records/family.py reads it); the parent's folder is only read.

A branch pays only for what is new: it reads its family's evaluation memos, and its models' response
cache answers every request any run already sent to the same endpoint and model (the cache key holds
both, so a branch with another model pays for its own replies). Its usage counts what it paid.
"""
from __future__ import annotations

import copy
import dataclasses
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import ConfigError, DamagedFileWarning, NotFoundError
from ..records.events import EventBus
from ..records.family import BRANCH_KEY, proposals_of_step, read_config
from ..records.store import RunStore, checkpoint_problem, new_run_id, write_json_atomic
from .branch_decision import check_against_parent, decision_record, step_of_proposal
from .config import TrainConfig
from .teaching import given_after_checkpoint
from .trainer import Trainer

if TYPE_CHECKING:
    from ..engine.pipeline import Pipeline

SETTING_ALIASES = {"steps": "max_steps"}  # as the command line spells them


def branch(run: Any, at_step: int | None = None, *, proposal: str | None = None, decision: str | None = None,
           text: str | None = None, pipeline: "Pipeline | None" = None, train: Sequence | None = None,
           val: Sequence | None = None, test: Sequence | None = None, eval_fn: Any = None, models: Any = None,
           approval: Any = None, teacher: Any = None, train_only: Sequence[str] | None = None,
           run_dir: str | Path | None = None, bus: Any = None, progress: bool | None = None,
           **settings: Any) -> Trainer:
    """A new Trainer that goes on from `run`'s state after step `at_step` (default: its last checkpoint).

    `run`: a run folder, an `open_run` Run, or a Trainer (live or finished); a folder needs the
    pipeline, splits, eval function and models it was trained with (a live Trainer lends its own, its
    pipeline copied). `settings`: TrainConfig fields to change (`max_steps`/`steps`, limits,
    `max_proposals`, ...). `proposal` with `decision` ("accept", "reject", or "edit" with `text`): the
    other decision on a proposal of step `at_step + 1` (`at_step` defaults to the step before it).
    """
    source = _source_of(run)
    parent_dir = source["path"]
    parent_config = read_config(parent_dir)
    if not parent_config:
        raise ConfigError(f"{parent_dir} has no readable config.json: it is not a run folder to branch from")
    if proposal is not None and at_step is None:
        at_step = step_of_proposal(proposal) - 1
    state = _checkpoint_at(parent_dir, at_step)
    at_step = state["step"]
    record = None
    if proposal is not None or decision is not None:
        if proposal is None or decision is None:
            raise ConfigError("a branch's decision needs both proposal='p3-2' and decision='accept' (or 'reject', "
                              "or 'edit' with text=...)")
        record = decision_record(proposal, decision, text)
        check_against_parent(record, at_step, proposals_of_step(parent_dir, at_step + 1), parent_dir.name)

    given = {"pipeline": pipeline, "train": train, "val": val, "test": test, "eval_fn": eval_fn, "models": models}
    parts = {k: v if v is not None else source.get(k) for k, v in given.items()}
    missing = [k for k, v in parts.items() if v is None]
    if missing:
        raise ConfigError(f"branching the folder {parent_dir} needs {', '.join(missing)}= (what it was trained "
                          f"with); a run started by `workbench train` is rebuilt by `workbench branch` or "
                          f"workbench.branch() from its cli.json")
    _check_same_splits(parent_config, parts, parent_dir)
    params = parts["pipeline"].named_parameters()
    unknown = sorted(set(state["parameters"]) - set(params))
    if unknown:
        raise ConfigError(f"the checkpoint of {parent_dir.name} has parameters {unknown} that this pipeline lacks")
    if train_only is not None:
        _train_only(params, train_only)

    base = source.get("config") or TrainConfig.from_dict(parent_config.get("config") or {})
    config = _changed_config(base, settings)
    approval = approval if approval is not None else copy.copy(source.get("approval"))
    record_of_branch = {"parent": parent_dir.name, "parent_path": str(parent_dir.resolve()), "step": at_step,
                        "decision": record,
                        "changed": _changes(parent_config, state, config, parts["models"], params, approval)}
    child_dir = Path(run_dir) if run_dir else parent_dir.parent / new_run_id(parent_config.get("task") or "run")
    arguments = (parts["pipeline"], parts["train"], parts["val"], parts["test"], parts["eval_fn"], parts["models"])
    options = {"config": config, "approval": approval, "run_dir": child_dir, "task": parent_config.get("task", ""),
               "progress": progress, "teacher": teacher if teacher is not None else source.get("teacher")}
    # the folder as a run started there writes it (on a bus of its own: this trainer never runs), then the branch
    # record and the parent's state after the step as the folder's checkpoint, which the branch resumes from
    made = Trainer(*arguments, **options, bus=EventBus())
    write_json_atomic(made.store.path / "config.json", {**made.store.config(), BRANCH_KEY: record_of_branch})
    carried = {**state, "usage": {}, **_feedback_to_carry(parent_dir, state)}  # its usage is what it pays itself
    made.store.write_checkpoint(at_step, carried)
    trainer = Trainer(*arguments, **options, bus=bus, resume=True)  # (takes a decision due: branch_decision.py)
    if record is not None:
        _warn_if_not_taken(trainer, record["proposal_id"], at_step + 1)
    return trainer


def _feedback_to_carry(parent_dir: Path, state: dict) -> dict:
    """The checkpoint's feedback and, as a resume of the parent would, the feedback its log holds from
    after that checkpoint (given before the next step began), pending."""
    held = list(state.get("person_feedback") or [])
    later = given_after_checkpoint(RunStore(parent_dir), {d["feedback_id"] for d in held}, state["step"])
    items = held + [item.to_dict() for item in later]
    return {"person_feedback": items} if items else {}


def _source_of(run: Any) -> dict:
    """What a parent lends its branch: its folder, and for a trainer its pipeline (copied), data and models."""
    trainer = getattr(run, "trainer", None) if not isinstance(run, Trainer) else run
    if isinstance(trainer, Trainer):
        return {"path": Path(trainer.store.path), "pipeline": clone_pipeline(trainer.pipeline),
                "train": trainer.train, "val": trainer.val, "test": trainer.test, "eval_fn": trainer.eval_fn,
                "models": trainer.models, "approval": trainer.approval, "teacher": trainer.teacher,
                "config": trainer.config}
    path = getattr(run, "path", run)
    if isinstance(path, RunStore):
        path = path.path
    if not isinstance(path, (str, Path)):
        raise ConfigError(f"branch() takes a run folder, an open_run() Run or a Trainer, not {type(run).__name__}")
    path = Path(path)
    if not (path / "config.json").is_file():
        raise ConfigError(f"{path} is not a run folder (no config.json)")
    return {"path": path}


def clone_pipeline(pipeline: "Pipeline") -> "Pipeline":
    """A copy with its own parameters; the models its nodes name are shared, not copied."""
    shared = {id(m): m for c in pipeline.components() for m in [getattr(c, "model", None)] if m is not None}
    try:
        return copy.deepcopy(pipeline, memo=dict(shared))
    except Exception as exc:  # something in the user's pipeline cannot be copied (a lock, a connection)
        raise ConfigError(f"{type(pipeline).__name__} cannot be copied for a branch ({type(exc).__name__}: {exc}); "
                          f"pass pipeline= a new instance of it") from None


def _checkpoint_at(parent_dir: Path, at_step: int | None) -> dict:
    """The parent's checkpoint after `at_step` (default: its newest), validated."""
    store = RunStore(parent_dir)
    steps = {}
    for path in store.checkpoints():
        try:
            steps[int(path.stem.split("-")[-1])] = path
        except ValueError:
            continue
    if not steps:
        raise ConfigError(f"{parent_dir.name} has no checkpoint yet: a run can be branched after its baseline")
    if at_step is None:
        at_step = max(steps)
    if isinstance(at_step, bool) or not isinstance(at_step, int) or at_step not in steps:
        raise ConfigError(f"{parent_dir.name} has no checkpoint of step {at_step!r}; its steps: "
                          f"{', '.join(map(str, sorted(steps)))}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedFileWarning)  # the error below says it, once
        state = store.read_checkpoint(steps[at_step])
    problem = checkpoint_problem(state) if state is not None else "it is not a readable JSON object"
    if problem:
        raise ConfigError(f"the checkpoint of step {at_step} of {parent_dir.name} cannot be branched from: {problem}")
    return state


def _check_same_splits(parent_config: dict, parts: dict, parent_dir: Path) -> None:
    recorded = parent_config.get("splits") or {}
    given = {k: [e.id for e in parts[k]] for k in ("train", "val", "test")}
    if recorded and recorded != given:
        differ = [k for k in given if recorded.get(k) != given[k]]
        raise ConfigError(f"the {', '.join(differ)} data given differs from what {parent_dir.name} was trained on; "
                          f"a branch goes on from its parent's state, so it keeps its parent's splits")


def _train_only(params: dict, names: Sequence[str]) -> None:
    unknown = sorted(set(names) - set(params))
    if unknown:
        raise NotFoundError(f"train_only: no parameter {', '.join(map(repr, unknown))}; the parameters: "
                            f"{', '.join(params)}")
    for name, p in params.items():
        p.trainable = name in names


def _changed_config(base: TrainConfig, settings: dict) -> TrainConfig:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    changes = {SETTING_ALIASES.get(k, k): v for k, v in settings.items()}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise ConfigError(f"branch(): unknown settings {unknown}; a branch may change any TrainConfig field "
                          f"({', '.join(sorted(names))}), models=, approval=, train_only=")
    return dataclasses.replace(base, **changes)


def _changes(parent_config: dict, state: dict, config: TrainConfig, models: Any, params: dict,
             approval: Any) -> dict:
    """What the branch does differently from its parent, for its config.json (and the family's table)."""
    changed: dict[str, Any] = {}
    before = parent_config.get("config") or {}
    for key, value in dataclasses.asdict(config).items():
        if key in before and before[key] != value:
            changed[key] = [before[key], value]
    names = {role: getattr(m, "model", "?") for role, m in models.by_role().items()} \
        if hasattr(models, "by_role") else {}
    old_models = parent_config.get("models") or {}
    moved = {role: [old_models.get(role), name] for role, name in names.items() if old_models.get(role) != name}
    if moved:
        changed["models"] = moved
    trained = sorted(n for n, p in params.items() if p.trainable)
    was_trained = sorted(n for n, p in state["parameters"].items() if p.get("trainable", True))
    if trained != was_trained:
        changed["trained"] = [was_trained, trained]
    if approval is not None and parent_config.get("approval") not in (None, type(approval).__name__):
        changed["approval"] = [parent_config.get("approval"), type(approval).__name__]
    return changed


def _warn_if_not_taken(trainer: Trainer, proposal: str, step: int) -> None:
    """The decision stays due until its step ends (a step redone after a stop takes it again); then it is
    dropped, with a warning if a changed setting (models, proposals per step) meant it never came up."""
    taken: list[bool] = []

    def decided(event: Any) -> None:
        if event.data.get("proposal_id") == proposal:
            taken.append(True)

    def step_ended(event: Any) -> None:
        if event.step == step and proposal in trainer.forced_decisions:
            trainer.forced_decisions.pop(proposal, None)
            if not taken:
                warnings.warn(f"branch {trainer.run_id}: proposal {proposal} did not come up again in step {step} "
                              f"(a changed setting changed what was proposed), so its decision was not taken",
                              UserWarning, stacklevel=2)
    trainer.bus.subscribe(decided, {"decision"})
    trainer.bus.subscribe(step_ended, {"step_finished"})
