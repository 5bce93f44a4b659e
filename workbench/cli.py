"""The `workbench` command: `demo`, `train`, `runs` and `export`.

The CLI is one more subscriber of the trainer's events (docs/EVENTS.md): it draws a progress line on
stderr, prints one line per finished step, and reads every number of its final report back from the
run folder, so what it prints is what was recorded. `train` writes its own arguments to
`<run>/cli.json` (never a key, only the *name* of the variable holding it), which is what lets
`workbench train --resume RUN_DIR` rebuild the same pipeline, data and models after a crash.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import sys
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, TextIO

from .errors import ConfigError, RunStopped, WorkbenchError

CLI_FILE = "cli.json"
ROLES = ("task", "backward", "optimizer")


# -- what a run is made of ---------------------------------------------------------------------------

@dataclass
class RunSpec:
    """Everything `train` needs to build a run, and to rebuild it on `--resume` (stored as cli.json)."""

    task: str | None = None
    module: str | None = None  # "path/to/file.py:factory" or "package.module:factory"
    train: int | None = None
    val: int | None = None
    test: int | None = None
    seed: int = 0
    source: list[str] = field(default_factory=lambda: ["sample"])
    base_url: str | None = None
    model: str | None = None
    backward_model: str | None = None
    optimizer_model: str | None = None
    key_env: str | None = None  # the name of the variable holding the API key; the key is never written
    cache: bool = True
    reply_limit: int | None = None  # max tokens per reply (--max-reply-tokens); None: the client's default
    approval: str = "auto"
    config: dict = field(default_factory=dict)  # TrainConfig fields
    data: str = ""  # how the splits were drawn, for the report

    @classmethod
    def from_dict(cls, d: dict) -> "RunSpec":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class Built:
    """A pipeline with its data and eval function, ready for a Trainer."""

    name: str
    pipeline: Any
    train: list
    val: list
    test: list
    eval_fn: Any
    pass_threshold: float | None
    data: str


def build(spec: RunSpec) -> Built:
    """Instantiate the spec's task (by name or from a user module) and draw its splits."""
    from .pipeline import Pipeline
    from .tasks import Task, get_task

    if bool(spec.task) == bool(spec.module):
        raise ConfigError("give exactly one of --task NAME or --module FILE.py:factory")
    made = get_task(spec.task) if spec.task else _call_factory(spec.module)
    source: Any = spec.source[0] if len(spec.source) == 1 else list(spec.source)
    if isinstance(made, Task):
        splits = made.load(spec.train, spec.val, spec.test, seed=spec.seed, source=source)
        return Built(made.name, made.make_pipeline(), splits.train, splits.val, splits.test, made.eval_fn,
                     made.pass_threshold, splits.describe())
    if isinstance(made, dict) and isinstance(made.get("pipeline"), Pipeline):
        missing = [k for k in ("train", "val", "test", "eval_fn") if k not in made]
        if missing:
            raise ConfigError(f"{spec.module} returned a dict without {missing}")
        name = str(made.get("name") or spec.module.rsplit(":", 1)[-1])
        train, val, test = (list(made[k]) for k in ("train", "val", "test"))
        data = f"{name}: {len(train)} train / {len(val)} val / {len(test)} test, from {spec.module}"
        return Built(name, made["pipeline"], train, val, test, made["eval_fn"], made.get("pass_threshold"), data)
    raise ConfigError(f"{spec.module} must return a workbench.tasks.Task or a dict with pipeline, train, val, "
                      f"test and eval_fn; it returned {type(made).__name__}")


def _call_factory(target: str) -> Any:
    """Import `file.py:factory` (by path, its folder importable) or `package.module:factory`, and call it."""
    where, sep, attr = target.rpartition(":")
    if not sep or not where or not attr:
        raise ConfigError(f"--module must look like path/to/file.py:factory, not {target!r}")
    if where.endswith(".py") or os.sep in where or "/" in where:
        path = Path(where)
        if not path.is_file():
            raise ConfigError(f"--module: file not found: {path}")
        if str(path.parent.resolve()) not in sys.path:
            sys.path.insert(0, str(path.parent.resolve()))  # so the file can import its neighbours
        spec = importlib.util.spec_from_file_location(f"workbench_user_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise ConfigError(f"--module: cannot import {where!r}: {exc}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError(f"--module: {where} has no function {attr!r}")
    return factory()


def make_models(spec: RunSpec, say: Callable[[str], None]):
    """Models from the flags, else from the environment (which falls back to the embedded model)."""
    from .llm.models import DEFAULT_CACHE, Models, _first_served_model

    cache = DEFAULT_CACHE if spec.cache else None
    client_kwargs = {"max_tokens": spec.reply_limit} if spec.reply_limit else {}
    if spec.key_env:
        api_key = os.environ.get(spec.key_env)
        if not api_key:
            raise ConfigError(f"environment variable {spec.key_env} (from --api-key-env) is not set")
    else:
        api_key = os.environ.get("WORKBENCH_API_KEY") or os.environ.get("OPENAI_API_KEY") or None
    if not (spec.base_url or spec.model or spec.backward_model or spec.optimizer_model or spec.key_env):
        if uses_embedded_model(spec):
            say("starting the embedded model (Gemma 3 270M on llama.cpp; no endpoint configured)...")
        return Models.from_env(cache=cache, **client_kwargs)
    env = os.environ.get  # flags first, then the WORKBENCH_* variables Models.from_env reads
    base_url = spec.base_url or env("WORKBENCH_BASE_URL") or None
    model = spec.model or env("WORKBENCH_TASK_MODEL") or None
    if not base_url and not model:
        raise ConfigError("model flags need an endpoint: pass --base-url URL (or --model NAME for the OpenAI API)")
    if not base_url and not api_key:
        raise ConfigError(f"--model {model} without --base-url means the OpenAI API, which needs a key: "
                          f"set OPENAI_API_KEY or pass --api-key-env VAR")
    model = model or _first_served_model(base_url, api_key)
    return Models.from_endpoint(base_url, model, spec.backward_model or env("WORKBENCH_BACKWARD_MODEL"),
                                spec.optimizer_model or env("WORKBENCH_OPTIMIZER_MODEL"), api_key=api_key,
                                cache=cache, **client_kwargs)


def uses_embedded_model(spec: RunSpec) -> bool:
    """What Models.from_env decides: no endpoint flag, no WORKBENCH_BASE_URL, no hosted model with a key."""
    if spec.base_url or spec.model or os.environ.get("WORKBENCH_BASE_URL"):
        return False
    key = os.environ.get("WORKBENCH_API_KEY") or os.environ.get("OPENAI_API_KEY")
    return not (os.environ.get("WORKBENCH_TASK_MODEL") and key)


# -- progress display --------------------------------------------------------------------------------

class Progress:
    """Event subscriber: a redrawn bar on a terminal, one line per notable event otherwise.

    Step summaries go to `out` (they are results); the moving parts go to `err`.
    """

    QUIET = {"node", "gradient", "forward", "checkpoint", "step_finished", "run_finished", "approval_requested"}

    def __init__(self, total_steps: int, splits: dict[str, int], batch_size: int, *,
                 out: TextIO = sys.stdout, err: TextIO = sys.stderr, enabled: bool = True) -> None:
        self.total_steps, self.splits, self.batch_size = total_steps, splits, batch_size
        self.out, self.err, self.enabled = out, err, enabled
        self.tty = enabled and hasattr(err, "isatty") and err.isatty()
        self.lock = threading.Lock()
        self.step = self.finished = 0
        self.phase = "starting"
        self.done = 0
        self.key: tuple | None = None

    def __call__(self, event) -> None:
        with self.lock:
            self.step = event.step
            d = event.data
            if event.type == "run_started":
                self.finished = d.get("resumed_from") or 0
            if event.type == "forward":
                key = (d["split"], d["phase"])
                self.done = self.done + 1 if key == self.key else 1
                self.key = key
                self.phase = f"{d['phase']} {d['split']} {self.done}/{self._size(d['split'])}"
            elif event.type == "step_finished":
                self.finished = event.step
                self._clear()
                print(step_line(event.step, self.total_steps, d), file=self.out, flush=True)
            elif event.type == "run_finished":
                self._clear()  # the report comes next, on a clean line
                return
            else:
                self.phase = describe_event(event.type, d) or self.phase
            if not self.enabled:
                return
            if self.tty:
                self._draw()
            elif event.type not in self.QUIET and not (event.type == "eval" and d["phase"] == "proposal") \
                    and describe_event(event.type, d):
                print(f"[step {event.step}/{self.total_steps}] {describe_event(event.type, d)}",
                      file=self.err, flush=True)

    def _size(self, split: str) -> int | str:
        return self.batch_size if split in ("train", "minibatch") else self.splits.get(split, "?")

    def _draw(self) -> None:
        width = 24
        filled = int(width * min(self.finished, self.total_steps) / max(1, self.total_steps))
        bar = "#" * filled + "." * (width - filled)
        line = f"[{bar}] step {self.step}/{self.total_steps}  {self.phase}"
        self.err.write("\r\033[K" + line[:160])
        self.err.flush()

    def _clear(self) -> None:
        if self.tty:
            self.err.write("\r\033[K")
            self.err.flush()

    def pause(self) -> None:
        """Before writing a question to the terminal."""
        with self.lock:
            if self.tty:
                self.err.write("\n")
                self.err.flush()


def describe_event(kind: str, d: dict) -> str | None:
    if kind == "run_started":
        return (f"resuming run {d['run_id']} after step {d['resumed_from']}" if d.get("resumed_from") is not None
                else f"run {d['run_id']} started: {d['splits']['train']} train / {d['splits']['val']} val / "
                     f"{d['splits']['test']} test")
    if kind == "eval":
        return f"{d['phase']} {d['split']} score {fmt_score(d['score'])} on {d['n']} samples"
    if kind == "step_started":
        return f"step started (epoch {d['epoch']}): batch of {len(d['batch'])}"
    if kind == "backward_done":
        return f"{d['gradients']} textual gradients from {len(d['samples'])} samples"
    if kind == "no_proposal":
        return f"no proposal for {d['parameter']}: {d['reason']}"
    if kind == "proposal":
        return f"proposal {d['proposal_id']} for {d['parameter']} ({d['source']})"
    if kind == "minibatch":
        return (f"{d['proposal_id']} minibatch {fmt_score(d['before'])} -> {fmt_score(d['after'])}"
                f" {'passed' if d['passed'] else 'failed'}")
    if kind == "decision":
        return f"{d['proposal_id']} {d['action']} by {d['by']}"
    if kind == "validation":
        return f"{d['proposal_id']} validation {fmt_score(d['score'])} vs best {fmt_score(d['best'])}"
    if kind == "update":
        return f"{d['proposal_id']} {'kept' if d['accepted'] else 'reverted'}: {d['reason']}"
    return None


def step_line(step: int, total: int, d: dict) -> str:
    usage = d.get("usage") or {}
    calls = sum(_int(u.get("calls")) for u in usage.values())
    tokens = sum(_int(u.get("prompt_tokens")) + _int(u.get("completion_tokens")) for u in usage.values())
    accepted, rejected = ", ".join(d.get("accepted") or []) or "-", ", ".join(d.get("rejected") or []) or "-"
    return (f"step {step}/{total}: train {fmt_score(d.get('train_score'))} | best val {fmt_score(d.get('best_val'))}"
            f" | accepted {accepted} | rejected {rejected} | {calls} calls, {tokens} tokens so far")


def fmt_score(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "n/a"


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


# -- terminal approval ---------------------------------------------------------------------------------

def terminal_approval(progress: Progress | None, stdin: TextIO = sys.stdin, err: TextIO = sys.stderr):
    """A CallbackApproval that asks on the terminal: accept, reject, or edit the proposed text."""
    from .approval import CallbackApproval, Decision

    def read_line(prompt: str) -> str:
        err.write(prompt)
        err.flush()
        line = stdin.readline()
        if not line:
            raise RunStopped("stdin closed while a proposal waited for a decision")
        return line.rstrip("\n")

    def ask(pending) -> Decision:
        if progress is not None:
            progress.pause()
        err.write(f"\nProposal {pending.proposal_id} for {pending.parameter} "
                  f"(minibatch {fmt_score(pending.minibatch_before)} -> {fmt_score(pending.minibatch_after)})\n"
                  f"--- current\n{pending.old}\n+++ proposed\n{pending.new}\n")
        while True:
            answer = read_line("[a]ccept, [r]eject or [e]dit? ").strip().lower()
            if answer in ("a", "accept", "y", "yes"):
                return Decision("accept", "person")
            if answer in ("r", "reject", "n", "no"):
                return Decision("reject", "person")
            if answer in ("e", "edit"):
                err.write("Type the new value; end with a line holding only a dot (.)\n")
                lines = []
                while (line := read_line("")) != ".":
                    lines.append(line)
                text = "\n".join(lines)
                if text.strip():
                    return Decision("edit", "person", text=text)
                err.write("empty value; try again\n")

    return CallbackApproval(ask)


# -- running -------------------------------------------------------------------------------------------

def run_training(spec: RunSpec, *, run_dir: Path | None, runs_root: str, resume: bool, quiet: bool,
                 confirm: Callable[[RunSpec, Any], bool] | None = None) -> int:
    """Build, train (Ctrl-C stops cleanly at the next LLM call), export, and print the report."""
    from .export import export_prompts
    from .store import RunStore, scrub, write_json_atomic
    from .trainer import TrainConfig, Trainer

    say = (lambda text: None) if quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    built = build(spec)
    if resume:
        recorded = RunStore(run_dir).config().get("splits", {})
        rebuilt = {k: [e.id for e in getattr(built, k)] for k in ("train", "val", "test")}
        if recorded and recorded != rebuilt:
            raise ConfigError(f"the data rebuilt from {run_dir / CLI_FILE} differs from the run's recorded splits; "
                              f"did the task, module or data file change since the run started?")
    config = TrainConfig.from_dict(spec.config)
    if built.pass_threshold is not None and "pass_threshold" not in spec.config:
        config.pass_threshold = built.pass_threshold
        spec.config = asdict(config)
    spec.data = built.data
    started = time.monotonic()
    models = make_models(spec, say)
    with models:
        if confirm is not None and not confirm(spec, models):
            print("cancelled", file=sys.stderr)
            return 1
        progress = Progress(0, {"train": len(built.train), "val": len(built.val), "test": len(built.test)},
                            config.batch_size, enabled=not quiet)
        if spec.approval not in ("auto", "terminal"):
            raise ConfigError(f"approval must be auto or terminal, not {spec.approval!r}")
        approval = terminal_approval(progress) if spec.approval == "terminal" else None
        trainer = Trainer(built.pipeline, built.train, built.val, built.test, built.eval_fn, models,
                          config=config, approval=approval, task=built.name, run_dir=run_dir, runs_root=runs_root,
                          resume=resume)
        if not resume:
            write_json_atomic(trainer.store.path / CLI_FILE, scrub(asdict(spec)))
        progress.total_steps = trainer.total_steps
        trainer.bus.subscribe(progress)
        say(f"task model {models.task.model}, backward {models.backward.model}, optimizer {models.optimizer.model}"
            f"{' (embedded)' if models.server is not None else ''}; run folder {trainer.store.path}")
        try:
            _fit_interruptibly(trainer, say)
        except WorkbenchError:
            print(f"the run failed; its folder is {trainer.store.path}", file=sys.stderr)
            raise
    store = trainer.store
    exports = [export_prompts(store, store.path / "prompts.json"), export_prompts(store, store.path / "prompts.md")]
    print_report(store, spec.data, exports, time.monotonic() - started)
    status = (store.summary() or {}).get("status")
    if status == "stopped":
        print(f"stopped; continue with: workbench train --resume {store.path}", file=sys.stderr)
        return 130
    return 0


def _fit_interruptibly(trainer, say: Callable[[str], None]) -> None:
    """Train in the trainer's worker thread so Ctrl-C can ask for a clean stop (a valid checkpoint)."""
    future = trainer.start()
    while True:
        try:
            future.result(timeout=0.5)
            return
        except FutureTimeout:
            continue
        except KeyboardInterrupt:
            say("\nstopping at the next LLM call (Ctrl-C again to quit at once)...")
            trainer.stop()
            future.result()
            return


def print_report(store, data: str, exports: list[Path], seconds: float, out: TextIO | None = None) -> None:
    """The run's outcome, read back from summary.json so the numbers are the recorded ones."""
    out = out or sys.stdout
    summary = store.summary() or {}
    baseline, final = summary.get("baseline") or {}, summary.get("final") or {}
    usage = summary.get("usage") or {}
    lines = [
        f"data        {data}",
        f"validation  baseline {fmt_score(baseline.get('val'))}  final {fmt_score(final.get('val'))}"
        f"  (best at step {summary.get('best_step')})",
        f"test        baseline {fmt_score(baseline.get('test'))}  final {fmt_score(final.get('test'))}",
        f"usage       {'role':<10} {'calls':>7} {'prompt tokens':>14} {'completion tokens':>18} {'cache hits':>11}",
    ]
    for role in [r for r in ROLES if r in usage] + sorted(set(usage) - set(ROLES)):
        u = usage[role]
        lines.append(f"            {role:<10} {u.get('calls', 0):>7} {u.get('prompt_tokens', 0):>14} "
                     f"{u.get('completion_tokens', 0):>18} {u.get('cache_hits', 0):>11}")
    status = f"{summary.get('status', 'unknown')} after {_steps(summary.get('steps'))} in {_duration(seconds)}"
    if summary.get("errored_samples"):
        status += f"; {summary['errored_samples']} sample runs errored (endpoint failures, kept out of scores)"
    lines += [f"status      {status}" + (f" ({summary['error']})" if summary.get("error") else ""),
              f"prompts     {', '.join(str(p) for p in exports)}",
              f"run folder  {store.path}"]
    print("\n".join(lines), file=out, flush=True)


def _steps(n: Any) -> str:
    return f"{n} step" if n == 1 else f"{n} steps"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{seconds:.1f}s"


# -- commands ------------------------------------------------------------------------------------------

TRAIN_FLAGS = {"steps": "max_steps", "batch_size": "batch_size", "epochs": "epochs", "concurrency": "concurrency",
               "max_calls": "max_calls", "max_tokens": "max_tokens", "max_seconds": "max_seconds",
               "patience": "patience", "optimize": "optimize"}
SPEC_FLAGS = ("task", "module", "train", "val", "test", "seed", "source", "base_url", "model", "backward_model",
              "optimizer_model", "api_key_env", "approval", "reply_limit")
ENDPOINT_FLAGS = ("base_url", "model", "backward_model", "optimizer_model", "api_key_env")


def spec_from_args(args: argparse.Namespace, defaults: dict) -> RunSpec:
    """Defaults, then the --config file, then the flags: the later wins."""
    from .trainer import TrainConfig

    values: dict[str, Any] = dict(defaults)
    config: dict[str, Any] = dict(defaults.get("config", {}))
    train_fields = {f.name for f in fields(TrainConfig)}
    if getattr(args, "config", None):
        for key, value in read_config_file(args.config).items():
            if key in train_fields:
                config[key] = value
            elif key in SPEC_FLAGS or key == "cache":
                values[key] = value
            else:
                raise ConfigError(f"{args.config}: unknown setting {key!r}; known: "
                                  f"{sorted(set(SPEC_FLAGS) | train_fields | {'cache'})}")
    for flag in SPEC_FLAGS:
        if getattr(args, flag, None) is not None:
            values[flag] = getattr(args, flag)
    if "api_key_env" in values:  # stored under a name the store's secret filter leaves alone
        values["key_env"] = values.pop("api_key_env")
    for flag, name in TRAIN_FLAGS.items():
        if getattr(args, flag, None) is not None:
            config[name] = getattr(args, flag)
    if "seed" in values:
        config["seed"] = values["seed"]
    if getattr(args, "no_cache", False):
        values["cache"] = False
    if isinstance(values.get("source"), str):
        values["source"] = [values["source"]]
    module = values.get("module")
    if module and ":" in module:  # record an absolute path, so --resume works from any folder
        where, _, attr = module.rpartition(":")
        if where.endswith(".py") and Path(where).is_file():
            values["module"] = f"{Path(where).resolve()}:{attr}"
    TrainConfig.from_dict(config)  # fail now, with the setting's name, rather than after the model starts
    values["config"] = config
    return RunSpec.from_dict(values)


def read_config_file(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # json or yaml syntax
        raise ConfigError(f"{p} could not be parsed: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of settings")
    if any(k.lower() in ("api_key", "apikey", "key") for k in data):
        raise ConfigError(f"{p}: do not put API keys in config files; put the key in an environment variable "
                          f"and name it with api_key_env")
    return data


def cmd_train(args: argparse.Namespace) -> int:
    if args.resume:
        return _resume(args)
    if not args.task and not args.module and not args.config:
        raise ConfigError("train needs --task NAME, --module FILE.py:factory or --resume RUN_DIR")
    spec = spec_from_args(args, {})
    return run_training(spec, run_dir=Path(args.run_dir) if args.run_dir else None, runs_root=args.runs_dir,
                        resume=False, quiet=args.quiet)


def _resume(args: argparse.Namespace) -> int:
    from .store import RunStore

    run_dir = Path(args.resume)
    cli_file = run_dir / CLI_FILE
    if not cli_file.is_file():
        raise ConfigError(f"{run_dir} has no {CLI_FILE}: it was not started by `workbench train` "
                          f"(resume it from Python with Trainer(..., run_dir=..., resume=True))")
    changed = [f"--{f.replace('_', '-')}" for f in ("task", "module", "train", "val", "test", "seed", "source",
                                                    "config", *TRAIN_FLAGS) if getattr(args, f, None) is not None]
    if changed:
        raise ConfigError(f"{', '.join(changed)} cannot change when resuming; the run keeps its own settings")
    spec = RunSpec.from_dict(json.loads(cli_file.read_text(encoding="utf-8")))
    for flag in ENDPOINT_FLAGS + ("approval",):  # the endpoint may have moved since the crash
        if getattr(args, flag, None) is not None:
            setattr(spec, "key_env" if flag == "api_key_env" else flag, getattr(args, flag))
    if args.no_cache:
        spec.cache = False
    summary = RunStore(run_dir).summary()
    if summary and summary.get("status") in ("completed", "plateau"):
        print(f"{run_dir} already finished ({summary['status']}); nothing to resume", file=sys.stderr)
        print_report(RunStore(run_dir), spec.data, [], 0.0)
        return 0
    return run_training(spec, run_dir=run_dir, runs_root=str(run_dir.parent), resume=True, quiet=args.quiet)


EMBEDDED_DEMO_REPLY_TOKENS = 160
DEMO_DEFAULTS = {"task": "counting", "train": 8, "val": 8, "test": 8,
                 "config": {"max_steps": 2, "batch_size": 4, "optimize": "one", "concurrency": 4}}


def cmd_demo(args: argparse.Namespace) -> int:
    spec = spec_from_args(args, DEMO_DEFAULTS)
    if spec.reply_limit is None and uses_embedded_model(spec):
        spec.reply_limit = EMBEDDED_DEMO_REPLY_TOKENS  # a 270M model on a laptop CPU: keep replies short

    def confirm(spec: RunSpec, models: Any) -> bool:
        """A remote endpoint may cost money: say what will happen and ask, unless --yes."""
        if models.server is not None or args.yes:
            return True
        question = (f"Train {spec.task} for {spec.config['max_steps']} steps on {spec.train}/{spec.val}/{spec.test} "
                    f"examples with {models.task.model} at {spec.base_url or 'the configured endpoint'}? [y/N] ")
        if not sys.stdin.isatty():
            raise ConfigError("the demo would call a remote endpoint; pass --yes to run it non-interactively")
        return input(question).strip().lower() in ("y", "yes")

    return run_training(spec, run_dir=None, runs_root=args.runs_dir, resume=False, quiet=args.quiet,
                        confirm=confirm)


def cmd_runs(args: argparse.Namespace) -> int:
    from .store import list_runs

    rows = list_runs(args.runs_dir)
    if not rows:
        print(f"no runs in {args.runs_dir}")
        return 0
    header = f"{'run':<40} {'task':<14} {'status':<22} {'steps':>5} {'baseline':>9} {'best val':>9} {'test':>7}"
    print(header)
    for r in rows:
        print(f"{r['run_id']:<40} {r['task'] or '-':<14} {r['status']:<22} {r['steps']:>5} "
              f"{fmt_score(r['baseline_val']):>9} {fmt_score(r['best_val']):>9} {fmt_score(r['test']):>7}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_prompts

    run_dir = Path(args.run_dir)
    if not (run_dir / "config.json").is_file():
        raise ConfigError(f"{run_dir} is not a run folder (no config.json)")
    output = Path(args.output) if args.output else run_dir / f"prompts.{args.format or 'json'}"
    print(export_prompts(run_dir, output, args.format))
    return 0


# -- argument parsing ----------------------------------------------------------------------------------

def _add_endpoint(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("models (default: WORKBENCH_* environment variables, else the embedded model)")
    g.add_argument("--base-url", help="an OpenAI-compatible endpoint, e.g. http://localhost:8000/v1")
    g.add_argument("--model", help="model name for all roles (default: the first the endpoint lists)")
    g.add_argument("--backward-model", help="model for textual gradients (default: --model)")
    g.add_argument("--optimizer-model", help="model proposing new prompts (default: --model)")
    g.add_argument("--api-key-env", metavar="VAR",
                   help="environment variable holding the API key (default: WORKBENCH_API_KEY or OPENAI_API_KEY)")
    g.add_argument("--max-reply-tokens", type=int, dest="reply_limit", metavar="N",
                   help="cap on each reply's length (default: 512; the demo uses 160 on the embedded model)")
    g.add_argument("--no-cache", action="store_true", help="do not use the response cache (WORKBENCH_CACHE_DIR)")


def _add_data(p: argparse.ArgumentParser, demo: bool) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--task", help="a built-in task: classification, counting, multihop, agent"
                   + (" (default: counting)" if demo else ""))
    g.add_argument("--train", type=int, metavar="N", help="training examples" + (" (default 8)" if demo else ""))
    g.add_argument("--val", type=int, metavar="N", help="validation examples" + (" (default 8)" if demo else ""))
    g.add_argument("--test", type=int, metavar="N", help="test examples" + (" (default 8)" if demo else ""))
    g.add_argument("--seed", type=int, help="seed of the splits and of the batches (default 0)")
    g.add_argument("--source", nargs="+", metavar="FILE", help="data file(s) instead of the sample data")


def _add_training(p: argparse.ArgumentParser, demo: bool) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--steps", type=int, metavar="N", help="maximum training steps" + (" (default 2)" if demo else ""))
    g.add_argument("--batch-size", type=int, metavar="N", help="minibatch size" + (" (default 4)" if demo else ""))
    g.add_argument("--epochs", type=int, metavar="N")
    g.add_argument("--concurrency", type=int, metavar="N", help="samples run at once")
    g.add_argument("--max-calls", type=int, metavar="N", help="stop at this many LLM calls")
    g.add_argument("--max-tokens", type=int, metavar="N", help="stop at this many tokens")
    g.add_argument("--max-seconds", type=float, metavar="S", help="stop after this long")
    g.add_argument("--patience", type=int, metavar="N", help="stop after N steps without improvement")
    g.add_argument("--optimize", choices=["all", "one"], help="all parameters each step, or one in turn")
    p.add_argument("--runs-dir", default="runs", help="where run folders go (default: ./runs)")
    p.add_argument("--quiet", action="store_true", help="no progress display")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description="Train the prompts of LLM pipelines "
                                     "with textual gradients (LLM-AutoDiff).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{demo,train,runs,export}")

    demo = sub.add_parser("demo", help="train a sample pipeline on small splits and show what changed")
    _add_data(demo, demo=True)
    _add_training(demo, demo=True)
    _add_endpoint(demo)
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
    train.set_defaults(func=cmd_train)

    runs = sub.add_parser("runs", help="list runs with their scores")
    runs.add_argument("--runs-dir", default="runs")
    runs.set_defaults(func=cmd_runs)

    export = sub.add_parser("export", help="write a run's tuned prompts with provenance")
    export.add_argument("run_dir", metavar="RUN_DIR")
    export.add_argument("-o", "--output", metavar="FILE", help="default: RUN_DIR/prompts.<format>")
    export.add_argument("--format", choices=["json", "yaml", "md"], help="default: from FILE's suffix, else json")
    export.set_defaults(func=cmd_export)
    return parser


class _LineLogHandler(logging.StreamHandler):
    """Warnings (e.g. LLM retries) as plain lines that first wipe a progress bar drawn on a terminal."""

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self.stream, "isatty", lambda: False)():
            self.stream.write("\r\033[K")
        super().emit(record)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `workbench` command; package errors are one line and exit code 2."""
    args = build_parser().parse_args(argv)
    root = logging.getLogger()
    if not root.handlers:
        handler = _LineLogHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.WARNING)
    try:
        return args.func(args)
    except WorkbenchError as exc:  # ConfigError, DatasetError, endpoint and model errors
        print(f"workbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nworkbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
