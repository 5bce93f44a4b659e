"""The subcommands: `demo`, `train`, `runs`, `export`, `report`."""
from __future__ import annotations

import argparse
import shlex
import sys
import typing
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..records.progress import fmt_score
from ..redact import redact
from .last_screen import print_report
from .running import register_key_env, run_training, say_to_stderr
from .spec import ENDPOINT_FLAGS, LIMIT_FLAGS, TRAIN_FLAGS, RunSpec, check_types, load_spec, spec_from_args


def cmd_train(args: argparse.Namespace) -> int:
    if args.resume:
        return _resume(args)
    if not args.task and not args.module and not args.config:
        raise ConfigError("train needs --task NAME, --module FILE.py:factory or --resume RUN_DIR")
    spec = spec_from_args(args, {})
    return run_training(spec, run_dir=Path(args.run_dir) if args.run_dir else None, runs_root=args.runs_dir,
                        resume=False, quiet=args.quiet, dry_run=args.dry_run)


def _resume(args: argparse.Namespace) -> int:
    from ..records.store import RunStore
    from ..training.trainer import TrainConfig

    run_dir = Path(args.resume)
    kept = ("task", "module", "train", "val", "test", "seed", "source", "train_only", "config", "run_dir",
            *(f for f in TRAIN_FLAGS if f not in LIMIT_FLAGS))
    changed = [f"--{f.replace('_', '-')}" for f in kept if getattr(args, f, None) is not None]
    if changed:
        raise ConfigError(f"{', '.join(changed)} cannot change when resuming; the run keeps its own settings")
    spec = load_spec(run_dir)
    for flag in LIMIT_FLAGS:  # raised (or lowered) limits apply from now on
        if getattr(args, flag, None) is not None:
            spec.config[TRAIN_FLAGS[flag]] = getattr(args, flag)
    check_types(spec.config, typing.get_type_hints(TrainConfig), str(run_dir / "cli.json"))
    for flag in ENDPOINT_FLAGS + ("approval",):  # the endpoint may have moved since the crash
        if getattr(args, flag, None) is not None:
            setattr(spec, "key_env" if flag == "api_key_env" else flag, getattr(args, flag))
    if args.no_cache:
        spec.cache = False
    register_key_env(spec)
    summary = RunStore(run_dir).summary()
    if summary and summary.get("status") in ("completed", "plateau"):
        say_to_stderr(f"{run_dir} already finished ({summary['status']}); nothing to resume")
        exports = [p for p in (run_dir / "prompts.json", run_dir / "prompts.md") if p.is_file()]
        from ..records.results import open_run
        print_report(RunStore(run_dir), spec.data, exports, open_run(run_dir).wall_time_s)  # the run's own time
        return 0
    return run_training(spec, run_dir=run_dir, runs_root=str(run_dir.parent), resume=True, quiet=args.quiet,
                        dry_run=args.dry_run)


# The demo on the embedded Gemma 3 270M (two cores, one request at a time): a counting task a base model
# can attempt, small splits, one trained parameter (half the backward calls) and three attempts per step
# (the embedded models have short per-role reply caps), so the whole loop (baseline, forward, backward,
# proposal, both gates, decision, test) ends in minutes.
DEMO_DEFAULTS = {"task": "counting", "train": 4, "val": 4, "test": 4,
                 "config": {"max_steps": 2, "batch_size": 2, "max_proposals": 3, "concurrency": 4}}
DEMO_TRAIN_ONLY = {"counting": ["count.instruction"], "sentiment": ["sentiment.demos"]}
# The embedded model is a 270M *base* model: it cannot count nor write a better instruction, but it
# continues a pattern. So with no endpoint the demo trains what such a model can use: the few-shot
# examples of a completion-style sentiment prompt, chosen by the demo optimizer from training samples
# (measured with bench/embedded_demo.py).
EMBEDDED_DEMO_DEFAULTS = {"task": "sentiment", "train": 16, "val": 16, "test": 24,
                          "config": {"max_steps": 4, "batch_size": 4, "max_proposals": 1, "concurrency": 2}}


def demo_defaults(args: argparse.Namespace) -> dict:
    """The sentiment demo on the embedded model, the counting demo on an endpoint."""
    from ..llm.models import uses_embedded_model

    embedded = uses_embedded_model(args.base_url, args.model, backward_model=args.backward_model,
                                   optimizer_model=args.optimizer_model)
    return EMBEDDED_DEMO_DEFAULTS if embedded else DEMO_DEFAULTS


def cmd_demo(args: argparse.Namespace) -> int:
    spec = spec_from_args(args, demo_defaults(args))
    if spec.train_only is None:
        spec.train_only = DEMO_TRAIN_ONLY.get(spec.task or "")

    def confirm(spec: RunSpec, models: Any) -> bool:
        """A remote endpoint may cost money: say what will happen and ask, unless --yes."""
        if models.server is not None or args.yes:
            return True
        question = (f"Train {spec.task} for {spec.config['max_steps']} steps on {spec.train}/{spec.val}/{spec.test} "
                    f"examples with {models.task.model} at {spec.base_url or 'the configured endpoint'}? [y/N] ")
        if not sys.stdin.isatty():
            raise ConfigError("the demo would call a remote endpoint; pass --yes to run it non-interactively")
        return input(redact(question)).strip().lower() in ("y", "yes")

    return run_training(spec, run_dir=None, runs_root=args.runs_dir, resume=False, quiet=args.quiet,
                        confirm=confirm, story=True)


RUNS_HEADER = f"{'run':<40} {'task':<14} {'status':<22} {'steps':>5} {'baseline':>9} {'best val':>9} {'test':>7}"


def cmd_runs(args: argparse.Namespace) -> int:
    """Every run under --runs-dir; a damaged folder is one row that says so, and the others still show."""
    from ..records.family import branch_record, in_tree_order
    from ..records.run_list import list_runs

    root = Path(args.runs_dir)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--runs-dir {root} is a file, not a folder of runs")
    if (root / "config.json").is_file():
        raise ConfigError(f"--runs-dir {root} is a run folder itself; list the folder holding it: "
                          f"workbench runs --runs-dir {shlex.quote(str(root.parent))}")
    rows = list_runs(root)
    if not rows:
        print(f"no runs in {args.runs_dir}")
        return 0
    print(RUNS_HEADER)
    for depth, r in in_tree_order(rows):  # a branch under its parent, indented, with the step it started after
        run_id = r.get("run_id") or Path(str(r.get("path", "?"))).name
        record = branch_record(r["path"])
        if depth:
            run_id = f"{'  ' * (depth - 1)}└ {run_id} @{(record or {}).get('step', '?')}"
        elif record is not None:  # its parent is not in this folder
            run_id = f"{run_id} (branch of {record['parent']} @{record.get('step', '?')})"
        damage = r.get("damaged") or r.get("error")
        if damage or r.get("status") == "damaged":
            reason = damage if isinstance(damage, str) else "unreadable files"
            print(redact(f"{run_id:<40} {'-':<14} {'damaged':<22} {reason}"))
            continue
        if r.get("note"):
            print(redact(f"{run_id:<40} {'-':<14} {r.get('status'):<22} {r['note']}"))
            continue
        print(redact(f"{run_id:<40} {r.get('task') or '-':<14} {r.get('status') or '?':<22} {r.get('steps', 0):>5} "
                     f"{fmt_score(r.get('baseline_val')):>9} {fmt_score(r.get('best_val')):>9} "
                     f"{fmt_score(r.get('test')):>7}"))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..records.export import export_prompts

    run_dir = Path(args.run_dir)
    _require_run_folder(run_dir)
    output = Path(args.output) if args.output else run_dir / f"prompts.{args.format or 'json'}"
    print(export_prompts(run_dir, output, args.format))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """One self-contained HTML page of a run (charts, final prompts, every proposal with its diff)."""
    run_dir = Path(args.run_dir)
    _require_run_folder(run_dir)
    try:
        from ..records.report import write_report
    except ImportError as exc:
        raise ConfigError(f"the HTML report is not available in this installation ({exc})") from None
    output = Path(args.output) if args.output else run_dir / "report.html"
    from ..records.results import open_run
    print(write_report(open_run(run_dir), output) or output)
    return 0


def _require_run_folder(run_dir: Path) -> None:
    if not (run_dir / "config.json").is_file():
        raise ConfigError(f"{run_dir} is not a run folder (no config.json)")

