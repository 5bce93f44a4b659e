"""Mirror runs into MLflow, where many teams already track experiments (`pip install workbench[mlflow]`).

    sink = MLflowSink("mlruns")                 # a folder (its SQLite database mlflow.db), or a tracking URI
    sink.attach(trainer)                        # live: params at the start, metrics after every step,
    trainer.fit()                               # artifacts and prompts when the run ends
    log_run("runs/classification-...", "mlruns")   # or afterwards, from a run folder

What lands in MLflow: the run's settings, task, pipeline, models and split sizes as parameters; per
step the minibatch score, the validation score, the best validation score so far and the calls and
tokens per role; at the end the baseline and final scores; the event log, config, summary and the
prompt export (JSON and Markdown) as artifacts; and each tuned parameter registered in MLflow's prompt
registry (`<task>.<parameter>`, a new version when the value changed, tagged with the run and its
validation score), linked to the MLflow run. The sink runs on the trainer's bus as an ordinary (not
critical) subscriber: if MLflow is unreachable the error is logged and training goes on.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shlex
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ...errors import ConfigError, DamagedFileWarning
from ..events import Event
from ..fold import RunFold
from ...redact import redact

if TYPE_CHECKING:
    from ..live import LiveRun

log = logging.getLogger(__name__)

__all__ = ["MLflowSink", "log_run", "prompt_name"]

PARAM_LIMIT = 6000  # MLflow's longest parameter value


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        raise ConfigError("the MLflow sink needs mlflow: pip install 'workbench[mlflow]'") from None
    return mlflow


DATABASE = "mlflow.db"  # the SQLite database a folder given to --mlflow holds
DATABASE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def _database_parts() -> None:
    """mlflow-skinny alone cannot open a SQLite database ("model registry functionality is unavailable")."""
    try:
        import alembic  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ImportError:
        raise ConfigError("MLflow's SQLite database needs its database parts (sqlalchemy, alembic): "
                          "pip install 'workbench[mlflow]'") from None


def tracking_uri_of(where: str | os.PathLike | None) -> str | None:
    """The tracking URI for a folder, a database file or a URI; None means MLflow's own default.

    A URI (`http://`, `sqlite:///`, `databricks`, `file://`) is kept. A file named `*.db` is that
    SQLite database. A folder holds a SQLite database, `<folder>/mlflow.db`: the backend MLflow
    recommends, which its UI and client open without flags (`mlflow ui --backend-store-uri
    sqlite:///<folder>/mlflow.db`). A folder that already is an MLflow file store (older workbench
    versions wrote one) stays one, so a resumed run goes on where it started; MLflow 3.7+ reads a
    file store only with MLFLOW_ALLOW_FILE_STORE=true, which is then set."""
    if where is None:
        return None
    text = str(where)
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text) or text.startswith(("databricks", "sqlite:")):
        return text
    path = Path(text).expanduser().resolve()
    if path.suffix.lower() in DATABASE_SUFFIXES and not path.is_dir():
        return f"sqlite:///{path}"
    if _is_file_store(path):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        return path.as_uri()
    return f"sqlite:///{path / DATABASE}"


def _is_file_store(folder: Path) -> bool:
    """MLflow's file store keeps a meta.yaml per experiment and a .trash folder."""
    return folder.is_dir() and ((folder / ".trash").is_dir() or any(folder.glob("*/meta.yaml")))


def local_database(uri: str | None) -> Path | None:
    """The file of a `sqlite:///` tracking URI (None for other URIs and in-memory databases)."""
    if not uri or not uri.startswith("sqlite:///") or uri in ("sqlite:///", "sqlite:///:memory:"):
        return None
    return Path(uri[len("sqlite:///"):].split("?", 1)[0])


def prompt_name(prefix: str, parameter: str) -> str:
    """A prompt-registry name (letters, digits, `-`, `_`, `.`) for a parameter of a task."""
    name = f"{prefix}.{parameter}" if prefix else parameter
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "prompt"


def _key(name: str) -> str:
    """A metric or parameter name MLflow accepts: a role named `<b>x</b>` must not cost the step's metrics."""
    return re.sub(r"[^A-Za-z0-9_\-. :/]+", "-", name).strip("-") or "-"


def _flat(prefix: str, value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for k, v in value.items():
            out.update(_flat(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    text = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
    return {prefix: redact(text)[:PARAM_LIMIT]}


class MLflowSink:
    """One workbench run -> one MLflow run. Feed it events (`attach` a trainer, or `on_event`)."""

    def __init__(self, tracking_uri: str | os.PathLike | None = None, *, experiment: str = "workbench",
                 registry_uri: str | os.PathLike | None = None, register_prompts: bool = True,
                 prompt_prefix: str | None = None) -> None:
        mlflow = _mlflow()
        uri = tracking_uri_of(tracking_uri)
        if uri is not None and uri.startswith("sqlite:"):
            _database_parts()
        database = local_database(uri)
        if database is not None:
            database.parent.mkdir(parents=True, exist_ok=True)
        self.tracking_uri = uri
        self.client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=tracking_uri_of(registry_uri) or uri)
        self.experiment = experiment
        self.register_prompts = register_prompts
        self.prompt_prefix = prompt_prefix
        self.run_folder: Path | None = None
        self.mlflow_run_id: str | None = None
        self.registered: dict[str, int] = {}  # prompt name -> version registered by this run
        self.fold = RunFold(keep_rows=False)  # the run's numbers, as every other reader has them
        self._lock = threading.Lock()
        self._live = False

    # -- wiring ------------------------------------------------------------------------------------
    def attach(self, trainer: "LiveRun") -> Callable[[], None]:
        """Subscribe to `trainer`'s events; returns the function that unsubscribes."""
        self.run_folder = Path(trainer.store.path)
        self._live = True  # a resumed run's missing steps are caught up from its folder (not so in log_run)
        return trainer.bus.subscribe(self.on_event, {"run_started", "step_finished", "run_finished"})

    def on_event(self, event: Event) -> None:
        with self._lock:  # events come from the trainer's worker threads
            self.fold.apply(event)
            handler = getattr(self, "_on_" + event.type, None)
            if handler is not None:
                handler(event, event.data or {})

    # -- events ------------------------------------------------------------------------------------
    def _on_run_started(self, event: Event, data: dict) -> None:
        if self.mlflow_run_id is None:  # else a resumed run continues the same MLflow run
            self._create_run(event, data)
        if data.get("resumed_from") is not None:
            self._catch_up()

    def _create_run(self, event: Event, data: dict) -> None:
        config = self._folder_config()
        experiment = self.client.get_experiment_by_name(self.experiment)
        experiment_id = experiment.experiment_id if experiment else \
            self.client.create_experiment(self.experiment, artifact_location=self._artifact_location())
        run_id = data.get("run_id") or event.run_id
        tags = {"workbench.run_id": run_id, "workbench.task": config.get("task", "")}
        tags |= self._branch_tags(experiment_id, config.get("branch"))
        run = self.client.create_run(experiment_id, run_name=run_id, start_time=int(event.time * 1000), tags=tags)
        self.mlflow_run_id = run.info.run_id
        params = _flat("config", data.get("config") or {})
        params |= _flat("splits", data.get("splits") or {})
        params |= {"task": config.get("task") or "", "pipeline": config.get("pipeline") or ""}
        params |= _flat("models", config.get("models") or {})
        self._log(params=params)

    def _catch_up(self) -> None:
        """A resumed run: fold the run folder's whole log (this process saw only its own events), and
        log the steps it finished that this MLflow run lacks (a kill can fall after the store wrote
        `step_finished` and before this mirror got it). A step is logged once, never twice."""
        if self.run_folder is None or not self._live:
            return
        from ..store import read_events
        logged = {m.step for m in self.client.get_metric_history(self.mlflow_run_id, "accepted")}
        self.fold = RunFold(keep_rows=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DamagedFileWarning)  # the resume reports a torn line its own way
            for event in read_events(self.run_folder / "events.jsonl"):  # this run_started included
                self.fold.apply(event)
                if event.type == "step_finished" and event.step not in logged:
                    logged.add(event.step)
                    self._on_step_finished(event, event.data or {})

    def _on_step_finished(self, event: Event, data: dict) -> None:
        metrics = {"minibatch_score": data.get("train_score"), "val_score": data.get("val_score"),
                   "best_val": self.fold.best_val, "accepted": len(data.get("accepted") or []),
                   "rejected": len(data.get("rejected") or [])}
        for role, usage in self.fold.totals()["by_role"].items():
            metrics[f"calls.{role}"] = usage["calls"]
            metrics[f"tokens.{role}"] = usage["tokens"]
        self._log(metrics=metrics, step=event.step, at=event.time)

    def _on_run_finished(self, event: Event, data: dict) -> None:
        if self.mlflow_run_id is None:
            return
        fold = self.fold
        metrics = {"baseline_val": fold.baseline["val"], "baseline_test": fold.baseline["test"],
                   "final_val": fold.final["val"], "final_test": fold.final["test"]}
        if not self._has_metric_at("best_val", event.step):  # a finished step logged it already
            metrics["best_val"] = fold.best_val
        self._log(metrics=metrics, step=event.step, at=event.time)
        self.client.set_tag(self.mlflow_run_id, "workbench.status", fold.status)
        if self.run_folder is not None:
            self._log_artifacts(self.run_folder)
            if self.register_prompts:
                self._register_prompts(self.run_folder, data)
        status = {"completed": "FINISHED", "plateau": "FINISHED", "failed": "FAILED"}.get(fold.status, "KILLED")
        self.client.set_terminated(self.mlflow_run_id, status, end_time=int(event.time * 1000))

    # -- helpers -----------------------------------------------------------------------------------
    def _has_metric_at(self, key: str, step: int | None) -> bool:
        """Whether this MLflow run holds `key` at `step` (asked of MLflow: the step may have been logged
        by the process a kill ended, before this resume)."""
        return any(m.step == step for m in self.client.get_metric_history(self.mlflow_run_id, key))

    def _branch_tags(self, experiment_id: str, branch: Any) -> dict[str, str]:
        """A branch names its parent run and step; when the parent is mirrored in the same experiment,
        MLflow's own parent tag nests the branch under it in the UI (best effort, like the sink)."""
        if not isinstance(branch, dict) or not isinstance(branch.get("parent"), str):
            return {}
        tags = {"workbench.parent_run_id": branch["parent"], "workbench.branch_step": str(branch.get("step"))}
        if "'" not in branch["parent"] and "\\" not in branch["parent"]:
            try:
                found = self.client.search_runs([experiment_id], f"tags.`workbench.run_id` = '{branch['parent']}'",
                                                max_results=1)
                if found:
                    tags["mlflow.parentRunId"] = found[0].info.run_id
            except Exception as exc:  # MLflow down or a filter it cannot read: the workbench tags still say it
                log.warning("MLflow: could not look up the parent run %s (%s)", branch["parent"], exc)
        return tags

    def view_command(self) -> str | None:
        """How to open these runs and prompts in MLflow's own UI (for a local database)."""
        if local_database(self.tracking_uri) is None:
            return None
        return f"mlflow ui --backend-store-uri {shlex.quote(self.tracking_uri)}"

    def _artifact_location(self) -> str | None:
        """Beside a local database, in `mlartifacts/` (MLflow would use ./mlruns in the current folder)."""
        database = local_database(self.tracking_uri)
        if database is None:
            return None
        return (database.parent / "mlartifacts" / prompt_name("", self.experiment)).as_uri()

    def _folder_config(self) -> dict:
        try:
            return json.loads((self.run_folder / "config.json").read_text(encoding="utf-8")) if self.run_folder else {}
        except (OSError, json.JSONDecodeError):
            return {}

    def _log(self, *, params: dict | None = None, metrics: dict | None = None, step: int = 0,
             at: float | None = None) -> None:
        mlflow = _mlflow()
        stamp = int((at or time.time()) * 1000)
        self.client.log_batch(
            self.mlflow_run_id,
            metrics=[mlflow.entities.Metric(_key(k), float(v), stamp, step) for k, v in (metrics or {}).items()
                     if v is not None],
            params=[mlflow.entities.Param(_key(k), v) for k, v in (params or {}).items()])

    def _log_artifacts(self, folder: Path) -> None:
        from ..export import export_prompts
        for name in ("events.jsonl", "config.json", "summary.json"):
            if (folder / name).exists():
                self.client.log_artifact(self.mlflow_run_id, str(folder / name), "run")
        with tempfile.TemporaryDirectory(prefix="workbench-mlflow-") as tmp:
            for fmt in ("json", "md"):
                path = Path(tmp) / f"prompts.{fmt}"
                export_prompts(folder, path)
                self.client.log_artifact(self.mlflow_run_id, str(path), "export")

    def _register_prompts(self, folder: Path, data: dict) -> None:
        from ..export import build_export
        doc = build_export(folder)
        prefix = self.prompt_prefix or (doc.get("run") or {}).get("task") or (doc.get("run") or {}).get("pipeline") or ""
        for p in doc["parameters"]:
            if not p.get("trainable", True):
                continue
            name = prompt_name(prefix, p["name"])
            value = redact(p["value"])
            existing = self.client.load_prompt(f"prompts:/{name}@latest", allow_missing=True)
            if existing is not None and existing.template == value:
                version = existing  # unchanged since the last registration: no new version
            else:
                prov = p.get("provenance") or {}
                tags = {"workbench.run_id": str(data.get("run_id") or ""), "workbench.engine.parameter": p["name"],
                        "workbench.role": str(p.get("role", "")), "workbench.source": str(prov.get("source")),
                        "workbench.validation_score": str(prov.get("validation_score"))}
                version = self.client.register_prompt(
                    name, value, commit_message=f"workbench run {data.get('run_id')}: "
                                                f"validation {data.get('best_val')}", tags=tags)
            self.registered[name] = int(version.version)
            self._link(version)

    def _link(self, version: Any) -> None:
        """Show the prompt version on the run, as `link_prompt_version_to_run` does; that function
        reads the process-wide tracking URI instead of this client's, so it cannot be used here."""
        from mlflow.tracing.constant import TraceTagKey
        from mlflow.tracing.utils.prompt import update_linked_prompts_tag
        current = self.client.get_run(self.mlflow_run_id).data.tags.get(TraceTagKey.LINKED_PROMPTS)
        self.client.set_tag(self.mlflow_run_id, TraceTagKey.LINKED_PROMPTS,
                            update_linked_prompts_tag(current, [version]))


def log_run(run_dir: str | os.PathLike, tracking_uri: str | os.PathLike | None = None, **options: Any) -> MLflowSink:
    """Log a finished (or interrupted) run folder to MLflow after the fact; returns the sink
    (`sink.mlflow_run_id`, `sink.registered`)."""
    from ..results import open_run
    run = open_run(run_dir)
    sink = MLflowSink(tracking_uri, **options)
    sink.run_folder = run.path
    for event in run.events():
        sink.on_event(event)
    if sink.mlflow_run_id is not None and not any(e.type == "run_finished" for e in run.events()):
        sink.client.set_tag(sink.mlflow_run_id, "workbench.status", "running or interrupted")
    return sink
