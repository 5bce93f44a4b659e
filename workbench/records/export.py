"""Export tuned prompts with their provenance, and load them back into a pipeline.

An export answers "what should I paste into production, and why should I trust it": each
parameter's value together with the run, step, validation score, source and approver that put it
there. Formats: JSON (machines), YAML (people who edit configs), Markdown (reviews, PRs).
`load_export` reads all three, so an export is also the hand-off format between runs.

    export_prompts(trainer, "prompts.json")           # or a run folder, a RunStore, a Pipeline
    apply_export(fresh_pipeline, "prompts.json")       # same values, unknown names are an error
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import re
from dataclasses import asdict
from pathlib import Path
import warnings
from typing import TYPE_CHECKING, Any, Callable

from ..errors import ConfigError, DamagedFileWarning, WorkbenchError
from ..engine.pipeline import Pipeline
from ..redact import redact_obj
from .live import is_live_run
from .store import RunStore, write_text_atomic
from .value_makers import Maker, maker_of, makers_of

if TYPE_CHECKING:
    from .live import LiveRun

FORMAT_VERSION = "workbench-prompts/1"
FORMATS = {".json": "json", ".yaml": "yaml", ".yml": "yaml", ".md": "md", ".markdown": "md"}

_HEADING = re.compile(r"^## `([^`]+)`\s*$")
_FENCE = re.compile(r"^(`{3,})text\s*$")


# -- building the document -------------------------------------------------------------------------

def build_export(source: "LiveRun | RunStore | Pipeline | str | os.PathLike") -> dict:
    """The export as plain data (what every format renders), with every registered secret masked."""
    if is_live_run(source):
        doc = _from_trainer(source)
    elif isinstance(source, Pipeline):
        doc = _document(None, [p.to_dict() for p in source.parameters()], [])
    elif isinstance(source, (RunStore, str, os.PathLike)):
        doc = _from_store(source if isinstance(source, RunStore) else RunStore(source))
    else:
        raise ConfigError(f"cannot export from a {type(source).__name__}: pass a Trainer, a run folder or a Pipeline")
    return redact_obj(doc)


def _from_trainer(trainer: "LiveRun") -> dict:
    params = []
    for p in trainer.params.values():
        d = p.to_dict()
        # a running trainer may be trying a candidate on the parameter; the accepted value is the last revision
        d["value"] = p.history[-1].value if p.history else p.value
        params.append(d)
    state = {"step": trainer.step, "baseline": trainer.baseline, "best_val": trainer.best_val,
             "best_step": trainer.best_step}
    run = _run_info(trainer.store, trainer.store.config(), state, trainer.store.summary())
    run["config"] = asdict(trainer.config)
    return _document(run, params, makers_of(trainer.store))


def _from_store(store: RunStore) -> dict:
    if not (store.path / "config.json").exists():
        store.config()  # a clear error when the folder is not a run
    state = store.latest_checkpoint()  # skips damaged ones, as resume does
    if state is None:
        raise WorkbenchError(f"{store.path} has no checkpoint yet, so there are no trained values to export")
    # the trainer keeps only improvements, so the newest checkpoint holds the best values so far
    params = [{**p, "name": p.get("name", name)} for name, p in state["parameters"].items()]
    config = _unless_damaged(store.config) or {}
    summary = _unless_damaged(store.summary, {"status": "unknown (summary.json is damaged)"})
    return _document(_run_info(store, config, state, summary), params, makers_of(store))


def _unless_damaged(read: Callable[[], dict | None], instead: dict | None = None) -> dict | None:
    """A damaged config.json or summary.json costs the export its details (with a warning), never
    the trained values, which come from the checkpoint."""
    try:
        return read()
    except WorkbenchError as exc:
        warnings.warn(f"{exc}; the export's values come from the checkpoint", DamagedFileWarning, stacklevel=3)
        return instead


def _run_info(store: RunStore, config: dict, state: dict, summary: dict | None) -> dict:
    summary = summary or {}
    baseline = summary.get("baseline") or state.get("baseline") or {}
    return {"run_id": store.run_id, "run_dir": str(store.path), "task": config.get("task", ""),
            "pipeline": config.get("pipeline", ""), "models": config.get("models", {}),
            "status": summary.get("status", "running or interrupted"),
            "steps": summary.get("steps", state.get("step", 0)),
            "baseline_val": baseline.get("val"), "baseline_test": baseline.get("test"),
            "best_val": summary.get("best_val", state.get("best_val")),
            "best_step": summary.get("best_step", state.get("best_step")),
            "test": (summary.get("final") or {}).get("test"),
            "config": config.get("config", {})}


def _document(run: dict | None, params: list[dict], makers: list[Maker]) -> dict:
    return {"format": FORMAT_VERSION, "exported_at": _iso(None), "run": run,
            "parameters": [_parameter(p, run["run_id"] if run else None, makers) for p in params]}


def _parameter(p: dict, run_id: str | None, makers: list[Maker]) -> dict:
    history = p.get("history") or []
    last = history[-1] if history else {}
    if last and last.get("value") != p["value"]:
        last = {}  # the value was set directly, bypassing the history: its origin is unknown
    maker = maker_of(last.get("step"), makers) if last else (makers[0] if makers else None)
    run_id, decisions = (maker[1], maker[2]) if maker else (run_id, {})
    proposal_id = last.get("note") or None
    decision = decisions.get(proposal_id) if proposal_id else None
    provenance = {"run_id": run_id, "step": last.get("step"), "source": last.get("source", "unknown"),
                  "validation_score": last.get("score"), "proposal_id": proposal_id,
                  "decision": decision.action if decision else None,
                  "approved_by": decision.by if decision else None,
                  "decided_at": _iso(decision.at) if decision and decision.at else None}
    return {"name": p["name"], "role": p.get("role", "text"), "description": p.get("description", ""),
            "trainable": bool(p.get("trainable", True)), "value": p["value"], "provenance": provenance}


def _iso(timestamp: float | None) -> str:
    when = _dt.datetime.now(_dt.timezone.utc) if timestamp is None else \
        _dt.datetime.fromtimestamp(timestamp, _dt.timezone.utc)
    return when.isoformat(timespec="seconds")


# -- writing ---------------------------------------------------------------------------------------

def export_prompts(source: "LiveRun | RunStore | Pipeline | str | os.PathLike", path: str | os.PathLike,
                   fmt: str | None = None) -> Path:
    """Write the export to `path` atomically; the format comes from `fmt` or the file suffix."""
    path = Path(path)
    fmt = _format_of(path, fmt)
    check_output(path)
    doc = build_export(source)
    text = {"json": render_json, "yaml": render_yaml, "md": render_markdown}[fmt](doc)
    write_output(path, text)
    return path


def check_output(path: Path) -> None:
    """An output path must name a file: refuse a folder before anything is computed."""
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; give a file name to write to")


def write_output(path: Path, text: str) -> None:
    """Write a file the user asked for atomically; a path that cannot be written is one clear error."""
    check_output(path)
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None


def _format_of(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        fmt = {"yml": "yaml", "markdown": "md"}.get(fmt.lower(), fmt.lower())
        if fmt not in ("json", "yaml", "md"):
            raise ConfigError(f"unknown export format {fmt!r}; use json, yaml or md")
        return fmt
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise ConfigError(f"cannot tell the export format of {path}: use a .json, .yaml or .md name, "
                          f"or give the format") from None


def render_json(doc: dict) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


UNICODE_BREAKS = "\x85\u2028\u2029"


def render_yaml(doc: dict) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> Any:
        # multi-line prompts read best as literal blocks; PyYAML falls back to quotes when it must.
        # Unicode line breaks (NEL, LS, PS) are folded to spaces by PyYAML's plain, single-quoted and
        # block styles on reading back, so a value holding one is written double-quoted (escaped as \N...).
        if any(c in value for c in UNICODE_BREAKS):
            style = '"'
        else:
            style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return yaml.dump(doc, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=100)


def render_markdown(doc: dict) -> str:
    """A review document: run facts first, then one section per parameter with its value fenced."""
    run = doc.get("run")
    lines = ["# Tuned prompts", ""]
    if run:
        models = ", ".join(f"{role}: `{name}`" for role, name in (run.get("models") or {}).items()) or "—"
        lines += [f"Exported {doc['exported_at']} from run `{run['run_id']}` (`{run['run_dir']}`).", "",
                  "| | |", "|---|---|",
                  f"| Task | {run.get('task') or '—'} |",
                  f"| Pipeline | {run.get('pipeline') or '—'} |",
                  f"| Models | {models} |",
                  f"| Status | {run.get('status')} after {run.get('steps')} steps |",
                  f"| Validation | baseline {_score(run.get('baseline_val'))} → best {_score(run.get('best_val'))} "
                  f"(step {run.get('best_step')}) |",
                  f"| Test | baseline {_score(run.get('baseline_test'))} → final {_score(run.get('test'))} |", ""]
    else:
        lines += [f"Exported {doc['exported_at']} from a pipeline (no training run).", ""]
    for p in doc["parameters"]:
        prov = p["provenance"]
        value = p["value"]
        fence = "`" * max(3, _longest_backtick_run(value) + 1)
        lines += [f"## `{p['name']}`", "",
                  f"- Role: {p['role']}",
                  f"- Description: {_one_line(p['description']) or '—'}",
                  f"- Trainable: {'yes' if p['trainable'] else 'no'}",
                  f"- Provenance: {_provenance_line(prov)}", "",
                  f"{fence}text", value, fence, ""]
    return "\n".join(lines)


def _provenance_line(prov: dict) -> str:
    if prov["source"] == "initial":
        text = "the initial value"
    else:
        text = f"accepted at step {prov['step']} from {prov['source']}"
    if prov.get("proposal_id"):
        text += f" (proposal `{prov['proposal_id']}`)"
    if prov.get("validation_score") is not None:
        text += f", validation {_score(prov['validation_score'])}"
    if prov.get("approved_by"):
        text += f", {_DECISION_WORDS.get(prov.get('decision'), 'decided')} by {prov['approved_by']}"
    if prov.get("run_id"):
        text += f"; run `{prov['run_id']}`"
    return text


_DECISION_WORDS = {"accept": "approved", "edit": "edited and approved", "reject": "rejected"}


def _score(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "—"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _longest_backtick_run(text: str) -> int:
    return max((len(m) for m in re.findall(r"`+", text)), default=0)


# -- reading back ----------------------------------------------------------------------------------

def load_export(path: str | os.PathLike, fmt: str | None = None) -> dict[str, str]:
    """Parameter values by name from a JSON, YAML or Markdown export."""
    path = Path(path)
    fmt = _format_of(path, fmt)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"export file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder, not an export file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start}): is it an export?") from None
    except OSError as exc:
        raise ConfigError(f"cannot read export file {path}: {exc.strerror or exc}") from None
    if fmt == "md":
        try:
            values = parse_markdown(text)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        if not values:
            raise ConfigError(f"{path}: no parameter sections (## `name` with a ```text block) found")
        return values
    try:
        if fmt == "json":
            doc = json.loads(text)
        else:
            import yaml
            doc = yaml.safe_load(text)
    except Exception as exc:  # json.JSONDecodeError or yaml.YAMLError, whose base classes differ
        raise ConfigError(f"{path} is not valid {fmt.upper()}: {exc}") from None
    return _values_of(doc, path)


def _values_of(doc: Any, path: Path) -> dict[str, str]:
    """Accept our export document, or a hand-written {name: value} mapping."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, found {type(doc).__name__}")
    params = doc["parameters"] if "parameters" in doc else doc
    values: dict[str, str] = {}
    if isinstance(params, list):
        for i, entry in enumerate(params):
            if not isinstance(entry, dict) or "name" not in entry or "value" not in entry:
                raise ConfigError(f"{path}: parameters[{i}] needs a name and a value")
            values[str(entry["name"])] = entry["value"]
    elif isinstance(params, dict):
        for name, entry in params.items():
            values[str(name)] = entry["value"] if isinstance(entry, dict) and "value" in entry else entry
    else:
        raise ConfigError(f"{path}: 'parameters' must be a list or a mapping")
    bad = sorted(name for name, value in values.items() if not isinstance(value, str))
    if bad:
        raise ConfigError(f"{path}: the values of {bad} are not text")
    return values


def parse_markdown(text: str) -> dict[str, str]:
    """Read back `render_markdown`'s output: the first ```text block after each ## `name` heading."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    name: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i].rstrip("\r")
        heading = _HEADING.match(line)
        fence = _FENCE.match(line)
        if heading:
            name = heading.group(1)
        elif fence and name is not None:
            closing = fence.group(1)
            body: list[str] = []
            i += 1
            while i < len(lines) and lines[i].rstrip("\r") != closing:
                body.append(lines[i])
                i += 1
            if i == len(lines):
                raise ConfigError(f"the value of {name!r} has no closing {closing} fence")
            values[name] = "\n".join(body)
            name = None
        i += 1
    return values


def apply_export(pipeline: Pipeline, path: str | os.PathLike, fmt: str | None = None) -> dict[str, str]:
    """Load an export's values into `pipeline`; names the pipeline lacks are an error, not skipped."""
    values = load_export(path, fmt)
    known = pipeline.named_parameters()
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{path} has parameters {unknown} that {type(pipeline).__name__} lacks; "
                          f"it has {sorted(known)}")
    pipeline.load_state(values, source="loaded")
    return values
