"""Argument parsing and the entry point: every package error is one line on stderr and exit code 2."""
from __future__ import annotations

import argparse
import logging
import sys
import typing
import warnings

from ..errors import WorkbenchError
from ..redact import redact
from ..tasks import task_names
from .branch_command import add_branch_parser
from .commands import cmd_demo, cmd_export, cmd_report, cmd_runs, cmd_train

COMMANDS = "{demo,train,branch,runs,export,report}"


def _add_endpoint(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("models (default: WORKBENCH_* environment variables, else the embedded model)")
    g.add_argument("--base-url", help="an OpenAI-compatible endpoint, e.g. http://localhost:8000/v1")
    g.add_argument("--model", help="model name for all roles (default: the first the endpoint lists)")
    g.add_argument("--backward-model", help="model for textual gradients (default: --model)")
    g.add_argument("--optimizer-model", help="model proposing new prompts (default: --model)")
    g.add_argument("--api-key-env", metavar="VAR",
                   help="environment variable holding the API key (default: WORKBENCH_API_KEY, or OPENAI_API_KEY "
                        "for OpenAI's own endpoint)")
    g.add_argument("--max-reply-tokens", type=int, dest="reply_limit", metavar="N",
                   help="cap on each reply's length (default: per role; short on the embedded model)")
    g.add_argument("--fold-system", choices=["auto", "on", "off"], type=_fold_choice,
                   help="put system messages into the user turn, for servers that drop them (default: "
                        "WORKBENCH_FOLD_SYSTEM if set, else auto: probe the endpoint once)")
    g.add_argument("--no-cache", action="store_true", help="do not use the response cache (WORKBENCH_CACHE_DIR)")


def _fold_choice(value: str) -> str:
    """--fold-system: auto/on/off, also 1/0, true/false, yes/no."""
    aliases = {"1": "on", "true": "on", "yes": "on", "0": "off", "false": "off", "no": "off"}
    value = str(value).strip().lower()
    return aliases.get(value, value)


def _add_data(p: argparse.ArgumentParser, demo: bool) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--task", help="a built-in task: " + ", ".join(task_names())
                   + (" (default: counting)" if demo else ""))
    g.add_argument("--train", type=int, metavar="N", help="training examples" + (" (default 4)" if demo else ""))
    g.add_argument("--val", type=int, metavar="N", help="validation examples" + (" (default 4)" if demo else ""))
    g.add_argument("--test", type=int, metavar="N", help="test examples" + (" (default 4)" if demo else ""))
    g.add_argument("--seed", type=int, help="seed of the splits and of the batches (default 0)")
    g.add_argument("--source", nargs="+", metavar="FILE", help="data file(s) instead of the sample data")


def _add_training(p: argparse.ArgumentParser, demo: bool) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--steps", type=int, metavar="N", help="maximum training steps" + (" (default 2)" if demo else ""))
    g.add_argument("--batch-size", type=int, metavar="N", help="minibatch size" + (" (default 2)" if demo else ""))
    g.add_argument("--epochs", type=int, metavar="N")
    g.add_argument("--concurrency", type=int, metavar="N", help="samples run at once")
    g.add_argument("--max-calls", type=int, metavar="N", help="stop at this many LLM calls")
    g.add_argument("--max-tokens", type=int, metavar="N", help="stop at this many tokens")
    g.add_argument("--max-seconds", type=float, metavar="S", help="stop after this long")
    g.add_argument("--patience", type=int, metavar="N", help="stop after N steps without improvement")
    g.add_argument("--train-only", nargs="+", metavar="PARAM",
                   help="train only these parameters; the others keep their values"
                        + (" (default for counting: count.instruction)" if demo else ""))
    g.add_argument("--max-proposals", type=int, metavar="N",
                   help="optimizer attempts per parameter per step" + (" (default 3)" if demo else " (default 5)"))
    g.add_argument("--optimize", choices=["all", "one", "joint"],
                   help="all parameters each step, one in turn, or all of a prompt proposed together")
    p.add_argument("--runs-dir", default="runs", help="where run folders go (default: ./runs)")
    p.add_argument("--quiet", action="store_true", help="no progress display")


def _add_tracking(p: argparse.ArgumentParser) -> None:
    """Mirror the run into MLflow, where many teams already track experiments (kept in cli.json, so
    --resume goes on mirroring; a flag given with --resume overrides it)."""
    g = p.add_argument_group("tracking (pip install 'workbench[mlflow]')")
    g.add_argument("--mlflow", metavar="URI", help="mirror the run into MLflow: a folder (e.g. ./mlruns, which holds "
                                                   "the SQLite database mlflow.db), a .db file, or a tracking URI "
                                                   "(http://..., sqlite:///...)")
    g.add_argument("--mlflow-experiment", metavar="NAME", help="MLflow experiment (default: workbench)")


class _Parser(argparse.ArgumentParser):
    """A mistyped command line is one line too, like every other error (not a screen of usage)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"workbench: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="workbench", description="Train the prompts of LLM pipelines "
                                     "with textual gradients (LLM-AutoDiff).")
    sub = parser.add_subparsers(dest="command", required=True, metavar=COMMANDS)

    demo = sub.add_parser("demo", help="train a sample pipeline on small splits and show what changed")
    _add_data(demo, demo=True)
    _add_training(demo, demo=True)
    _add_endpoint(demo)
    _add_tracking(demo)
    demo.add_argument("--yes", action="store_true", help="do not ask before calling a remote endpoint")
    demo.set_defaults(func=cmd_demo)

    train = sub.add_parser("train", help="train a task or your own pipeline, headless")
    _add_data(train, demo=False)
    train.add_argument("--module", metavar="FILE.py:factory",
                       help="your factory returning a workbench.tasks.Task, or a dict with "
                            "pipeline, train, val, test, eval_fn")
    train.add_argument("--config", metavar="FILE", help="JSON or YAML settings (TrainConfig fields and these flags)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    train.add_argument("--run-dir", metavar="DIR", help="exact run folder (default: RUNS_DIR/<task>-<time>)")
    train.add_argument("--approval", choices=["auto", "terminal"],
                       help="auto: validation decides; terminal: you accept, reject or edit each proposal")
    _add_training(train, demo=False)
    _add_endpoint(train)
    _add_tracking(train)
    train.set_defaults(func=cmd_train)

    add_branch_parser(sub, _add_training, _add_endpoint, _add_tracking)

    runs = sub.add_parser("runs", help="list runs with their scores (a branch under its parent)")
    runs.add_argument("--runs-dir", default="runs", help="the folder holding the run folders (default: ./runs)")
    runs.set_defaults(func=cmd_runs)

    export = sub.add_parser("export", help="write a run's tuned prompts with provenance")
    export.add_argument("run_dir", metavar="RUN_DIR")
    export.add_argument("-o", "--output", metavar="FILE", help="default: RUN_DIR/prompts.<format>")
    export.add_argument("--format", choices=["json", "yaml", "md"],
                        help="default: from FILE's suffix (.json, .yaml/.yml, .md); json without -o")
    export.set_defaults(func=cmd_export)

    report = sub.add_parser("report", help="write a run as one self-contained HTML page")
    report.add_argument("run_dir", metavar="RUN_DIR")
    report.add_argument("-o", "--output", metavar="FILE", help="default: RUN_DIR/report.html")
    report.set_defaults(func=cmd_report)
    return parser


class _LineLogHandler(logging.StreamHandler):
    """Warnings (e.g. LLM retries) as plain, redacted lines that first wipe a progress bar on a terminal."""

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self.stream, "isatty", lambda: False)():
            self.stream.write("\r\033[K")
        super().emit(record)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Python warnings (e.g. a damaged checkpoint skipped on resume) as one redacted line, not a source dump."""
    print(redact(f"workbench: warning: {' '.join(str(message).split())}"), file=file or sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `workbench` command; package errors are one line and exit code 2."""
    args = build_parser().parse_args(argv)
    root = logging.getLogger()
    if not root.handlers:
        handler = _LineLogHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.WARNING)
    warnings.showwarning = _show_warning
    try:
        return args.func(args)
    except WorkbenchError as exc:  # ConfigError, DatasetError, endpoint and model errors
        print(redact(f"workbench: error: {' '.join(str(exc).split())}"), file=sys.stderr)
        return 2
    except OSError as exc:  # a path that cannot be read or written: the file and the reason, in one line
        where = f"{exc.filename}: " if exc.filename else ""
        print(redact(f"workbench: error: {where}{exc.strerror or exc}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nworkbench: interrupted", file=sys.stderr)
        return 130
