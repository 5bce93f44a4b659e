"""One CLI run: build the task, resolve the models, train with progress, export, print the last screen."""
from __future__ import annotations

import logging
import os
import shlex
import sys
import time
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError, WorkbenchError
from ..records.progress import Progress
from ..redact import redact, register_secret, strip_url_credentials
from .factory import build
from .last_screen import print_next, print_report, print_story
from .learned import print_learned
from .spec import CLI_FILE, RunSpec, save_spec
from .terminal_approval import terminal_approval

log = logging.getLogger(__name__)


def say_to_stderr(text: str) -> None:
    print(redact(text), file=sys.stderr, flush=True)


def register_key_env(spec: RunSpec) -> None:
    """The value of the variable named by --api-key-env is a secret: masked in everything written or printed."""
    if spec.key_env:
        if not os.environ.get(spec.key_env):
            raise ConfigError(f"environment variable {spec.key_env} (from --api-key-env) is not set")
        register_secret(os.environ.get(spec.key_env))


def resolve_models(spec: RunSpec, say: Callable[[str], None]):
    """The run's models: flags first, then the WORKBENCH_* environment, else the embedded model
    (the one resolver, `Models.from_env`)."""
    from ..llm.models import DEFAULT_CACHE, Models

    register_key_env(spec)
    return Models.from_env(DEFAULT_CACHE if spec.cache else None, base_url=spec.base_url, model=spec.model,
                           backward_model=spec.backward_model, optimizer_model=spec.optimizer_model,
                           api_key_env=spec.key_env, max_tokens=spec.reply_limit,
                           fold_system=FOLD_SYSTEM[spec.fold_system], say=say)


FOLD_SYSTEM = {"auto": None, "on": True, "off": False}  # None: WORKBENCH_FOLD_SYSTEM, else probe the endpoint


def run_training(spec: RunSpec, *, run_dir: Path | None, runs_root: str, resume: bool, quiet: bool,
                 confirm: Callable[[RunSpec, Any], bool] | None = None, story: bool = False,
                 make_trainer: Callable[..., Any] | None = None) -> int:
    """Build, train (Ctrl-C stops cleanly at the next LLM call), export, and print the last screen.
    `make_trainer(built, models, config, approval)`: another way to the trainer (a branch)."""
    from ..records.export import export_prompts
    from ..records.store import RunStore
    from ..training.trainer import TrainConfig, Trainer

    say = (lambda text: None) if quiet else say_to_stderr
    sink = mlflow_sink(spec)  # before the model starts: a missing mlflow is one line, at once
    for flag, folder in (("--run-dir", run_dir), ("--runs-dir", None if run_dir else Path(runs_root))):
        if folder is not None and folder.exists() and not folder.is_dir():
            raise ConfigError(f"{flag} {folder} is a file, not a folder")
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
    models = resolve_models(spec, say)
    with models:
        if confirm is not None and not confirm(spec, models):
            say_to_stderr("cancelled")
            return 1
        progress = Progress(0, {"train": len(built.train), "val": len(built.val), "test": len(built.test)},
                            config.batch_size, mode="off" if quiet else "auto")
        approval = terminal_approval(progress, feedback=lambda text, parameter: trainer.feedback(
            text, parameter=parameter)) if spec.approval == "terminal" else None  # (trainer exists by then)
        trainer = make_trainer(built, models, config, approval) if make_trainer else \
            Trainer(built.pipeline, built.train, built.val, built.test, built.eval_fn, models, config=config,
                    approval=approval, task=built.name, run_dir=run_dir, runs_root=runs_root, resume=resume)
        save_spec(spec, trainer.store.path)  # on resume: with its new endpoint or limits, for the next resume
        progress.total_steps = trainer.total_steps
        trainer.bus.subscribe(progress)
        detach = attach_mlflow(sink, trainer, resume) if sink else lambda: None
        say(f"task model {models.task.model}, backward {models.backward.model}, optimizer {models.optimizer.model}"
            f"{' (embedded)' if models.server is not None else ''}; run folder {trainer.store.path}")
        try:
            fit_interruptibly(trainer, say)
        except WorkbenchError:
            progress.close()  # the error line must not be drawn over by the bar
            for line in after_failure(trainer.store.path, models.server):
                say_to_stderr(line)
            raise
        finally:
            detach()
    progress.close()
    if sink and sink.mlflow_run_id:
        say(f"mirrored to MLflow run {sink.mlflow_run_id} (experiment {sink.experiment}) "
            f"at {strip_url_credentials(sink.tracking_uri or spec.mlflow)}")
        if sink.view_command():
            say(f"  see it in MLflow: {sink.view_command()}")
    store = trainer.store
    checkpointed = store.latest_checkpoint() is not None  # none when the run ended before its baseline was recorded
    exports = [export_prompts(store, store.path / "prompts.json"),
               export_prompts(store, store.path / "prompts.md")] if checkpointed else []
    if story:
        print_story(store, small_model=models.server is not None)
        print_learned(store)
    print_report(store, spec.data, exports, time.monotonic() - started)
    print_next(store)
    status = (store.summary() or {}).get("status")
    if status in ("stopped", "budget"):
        say_to_stderr(f"{status}; continue with: workbench train --resume {shlex.quote(str(store.path))}")
        if status == "budget":
            say_to_stderr("  with a higher limit than the one that stopped it: --max-calls, --max-tokens or --max-seconds")
        if not checkpointed:
            say_to_stderr("  it ended before its baseline was recorded, so it starts again (paid evaluations are reused)")
    return 130 if status == "stopped" else 0


def after_failure(run_dir: Path, server: Any = None) -> list[str]:
    """What to tell a person whose run failed: where it is, why the embedded server is gone if it
    is, and how to go on (a failed run resumes from its last checkpoint once the cause is fixed)."""
    note = server.exit_note() if server is not None else None
    return [f"the run failed; its folder is {run_dir}", *([note] if note else []),
            f"once the cause is fixed, continue with: workbench train --resume {shlex.quote(str(run_dir))}"]


def mlflow_sink(spec: RunSpec):
    """The MLflow mirror of --mlflow, or None; without mlflow installed, a ConfigError naming the extra."""
    if not spec.mlflow:
        return None
    from ..records.sinks.mlflow import MLflowSink
    return MLflowSink(spec.mlflow, experiment=spec.mlflow_experiment)


def attach_mlflow(sink, trainer, resume: bool) -> Callable[[], None]:
    """Mirror the trainer's events; a resumed run goes on in the MLflow run it started, so its steps stay one
    curve. Finding that run is best effort, like the sink itself: MLflow being down must not stop training."""
    if resume:
        try:
            experiment = sink.client.get_experiment_by_name(sink.experiment)
            found = experiment and sink.client.search_runs(
                [experiment.experiment_id], f"tags.`workbench.run_id` = '{trainer.run_id}'", max_results=1)
            sink.mlflow_run_id = found[0].info.run_id if found else None
        except Exception as exc:
            log.warning("MLflow: could not find the run to continue (%s); a new one is started", exc)
    return sink.attach(trainer)


def fit_interruptibly(trainer, say: Callable[[str], None]) -> None:
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
