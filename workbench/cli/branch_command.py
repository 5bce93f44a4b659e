"""`workbench branch RUN --step K`: a new run that goes on from RUN's state after step K.

The branch is rebuilt from the parent's cli.json (task or module, data, models), with the flags
given here changed; it is trained like `workbench train` (progress, export, last screen), and
gets a cli.json of its own, so `workbench train --resume BRANCH` works on it like on any run.
"""
from __future__ import annotations

import argparse
import typing
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .running import register_key_env, run_training
from .spec import ENDPOINT_FLAGS, TRAIN_FLAGS, RunSpec, check_types, load_spec

# what a branch may not change: the data it goes on with is its parent's
FIXED = ("task", "module", "train", "val", "test", "seed", "source")


def add_branch_parser(sub: Any, add_training: Any, add_endpoint: Any, add_tracking: Any) -> None:
    p = sub.add_parser("branch", help="a new run from a run's state after a step, with changed settings or "
                                      "the other decision on a proposal")
    p.add_argument("run", metavar="RUN_DIR", help="the run to branch (started by workbench train or demo)")
    p.add_argument("--step", type=int, metavar="K",
                   help="go on from the state after step K (default: the step before --accept/--reject/--edit's "
                        "proposal, else the run's last step)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--accept", metavar="PROPOSAL", help="keep this proposal of step K+1 (e.g. p3-2)")
    g.add_argument("--reject", metavar="PROPOSAL", help="revert this proposal of step K+1")
    g.add_argument("--edit", nargs=2, metavar=("PROPOSAL", "TEXT"), help="keep this text instead of the proposal")
    p.add_argument("--run-dir", metavar="DIR", help="the branch's folder (default: next to RUN_DIR)")
    p.add_argument("--approval", choices=["auto", "terminal"], help="default: the parent's")
    add_training(p, demo=False)
    add_endpoint(p)
    add_tracking(p)
    p.set_defaults(func=cmd_branch)


def cmd_branch(args: argparse.Namespace) -> int:
    from ..training.branching import branch
    from ..training.trainer import TrainConfig

    parent = Path(args.run)
    for flag in FIXED:
        if getattr(args, flag, None) is not None:
            raise ConfigError(f"--{flag.replace('_', '-')} cannot change in a branch: it goes on with its "
                              f"parent's data")
    spec = load_spec(parent)
    parent_config = dict(spec.config)
    for flag, name in TRAIN_FLAGS.items():
        if getattr(args, flag, None) is not None:
            spec.config[name] = getattr(args, flag)
    check_types(spec.config, typing.get_type_hints(TrainConfig), "settings")
    for flag in (*ENDPOINT_FLAGS, "approval", "train_only"):
        if getattr(args, flag, None) is not None:
            setattr(spec, "key_env" if flag == "api_key_env" else flag, getattr(args, flag))
    if args.no_cache:
        spec.cache = False
    register_key_env(spec)
    proposal, decision, text = _decision(args)

    def make_trainer(built: Any, models: Any, config: TrainConfig, approval: Any) -> Any:
        changed = {k: v for k, v in asdict(config).items() if parent_config.get(k, v) != v}
        return branch(parent, args.step, proposal=proposal, decision=decision, text=text, pipeline=built.pipeline,
                      train=built.train, val=built.val, test=built.test, eval_fn=built.eval_fn, models=models,
                      approval=approval, run_dir=args.run_dir, **changed)

    return run_training(RunSpec.from_dict(asdict(spec)), run_dir=Path(args.run_dir) if args.run_dir else None,
                        runs_root=str(parent.parent), resume=False, quiet=args.quiet, make_trainer=make_trainer)


def _decision(args: argparse.Namespace) -> tuple[str | None, str | None, str | None]:
    if args.accept:
        return args.accept, "accept", None
    if args.reject:
        return args.reject, "reject", None
    if args.edit:
        return args.edit[0], "edit", args.edit[1]
    return None, None, None


def branch_from_cli_json(parent: str | Path, at_step: int | None = None, **options: Any) -> Any:
    """`workbench.branch(folder, ...)` for a run `workbench train` started: its pipeline, data and models
    are rebuilt from its cli.json (the models from the same flags and WORKBENCH_* environment)."""
    from ..training.branching import branch
    from .factory import build
    from .running import resolve_models, say_to_stderr

    spec = load_spec(Path(parent))
    if options.get("train_only") is not None:
        spec.train_only = list(options.pop("train_only"))
    built = build(spec)
    models = options.pop("models", None) or resolve_models(spec, say_to_stderr)
    return branch(parent, at_step, pipeline=built.pipeline, train=built.train, val=built.val, test=built.test,
                  eval_fn=built.eval_fn, models=models, **options)
