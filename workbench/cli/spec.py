"""What a CLI run is made of (RunSpec), where its settings come from, and its cli.json.

Settings are merged in one order (defaults, then the --config file, then the flags: the later wins)
and type-checked before anything starts, so a wrong value is refused in one line that names the
file, the key and the value. cli.json is what lets `workbench train --resume RUN_DIR` rebuild the
run; it never holds a credential (only the *name* of the variable holding the key, and base and
MLflow URLs without `user:password@`).
"""
from __future__ import annotations

import argparse
import json
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..redact import redact_obj, strip_url_credentials
from ..records.sinks.mlflow import tracking_uri_of

CLI_FILE = "cli.json"

# flag name -> TrainConfig field
TRAIN_FLAGS = {"steps": "max_steps", "batch_size": "batch_size", "epochs": "epochs", "concurrency": "concurrency",
               "max_calls": "max_calls", "max_tokens": "max_tokens", "max_seconds": "max_seconds",
               "patience": "patience", "optimize": "optimize", "max_proposals": "max_proposals"}
SPEC_FLAGS = ("task", "module", "train", "val", "test", "seed", "source", "base_url", "model", "backward_model",
              "optimizer_model", "api_key_env", "approval", "reply_limit", "fold_system", "train_only", "mlflow",
              "mlflow_experiment")
# what --resume may change: where the run's calls go (the endpoint may have moved since the crash), and its mirror
ENDPOINT_FLAGS = ("base_url", "model", "backward_model", "optimizer_model", "api_key_env", "fold_system", "mlflow",
                  "mlflow_experiment")
# ... and its limits: a run stopped by its budget (or its steps) goes on only if they are raised, as
# `trainer.config.max_calls = ...; trainer.fit()` does in Python
LIMIT_FLAGS = ("steps", "max_calls", "max_tokens", "max_seconds", "patience")


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
    fold_system: str = "auto"  # fold system messages into the user turn: auto (probe), on, off
    approval: str = "auto"
    train_only: list[str] | None = None  # names of the parameters to train; the others stay as they are
    mlflow: str | None = None  # mirror into MLflow: an absolute folder or a tracking URI (--mlflow)
    mlflow_experiment: str = "workbench"
    config: dict = field(default_factory=dict)  # TrainConfig fields
    data: str = ""  # how the splits were drawn, for the report

    @classmethod
    def from_dict(cls, d: dict, where: str = CLI_FILE) -> "RunSpec":
        """A spec from stored or merged settings, every value type-checked (`where` names their file)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        check_types(values, typing.get_type_hints(cls), where)
        return cls(**values)


# a config file may name a setting as its command-line flag does
FILE_ALIASES = {"steps": "max_steps", "max_reply_tokens": "reply_limit"}

CHOICES = {"approval": ("auto", "terminal"), "fold_system": ("auto", "on", "off")}


def check_types(values: dict, hints: dict[str, Any], where: str) -> None:
    """Refuse a value whose type does not match its field: one line naming `where`, the key and the value."""
    for key, value in values.items():
        hint = hints.get(key)
        if hint is not None and not _matches(value, hint):
            raise ConfigError(f"{where}: {key} must be {_describe(hint)}, not {value!r}")
        if key in CHOICES and value not in CHOICES[key]:
            raise ConfigError(f"{where}: {key} must be one of {', '.join(CHOICES[key])}, not {value!r}")


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is list or hint is list:
        args = typing.get_args(hint)
        return isinstance(value, list) and (not args or all(_matches(v, args[0]) for v in value))
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return True  # a type this check does not know: the constructor decides


def _describe(hint: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null",
             list: "a list", dict: "a mapping"}
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    if typing.get_origin(hint) is list:
        return f"a list of {_describe(typing.get_args(hint)[0]).split(' ', 1)[-1]}s"
    return names.get(hint, names.get(typing.get_origin(hint), str(hint)))


def spec_from_args(args: argparse.Namespace, defaults: dict) -> RunSpec:
    """Defaults, then the --config file, then the flags: the later wins; every value type-checked."""
    from ..training.trainer import TrainConfig

    values: dict[str, Any] = dict(defaults)
    config: dict[str, Any] = dict(defaults.get("config", {}))
    train_hints = typing.get_type_hints(TrainConfig)
    spec_hints = typing.get_type_hints(RunSpec)
    config_file = getattr(args, "config", None)
    if config_file:
        settings = read_config_file(config_file)
        for key, value in settings.items():
            if key in train_hints:
                check_types({key: value}, train_hints, config_file)
                config[key] = value
            elif key in SPEC_FLAGS or key == "cache":
                name = "key_env" if key == "api_key_env" else key
                if name == "source" and isinstance(value, str):
                    value = [value]
                check_types({name: value}, spec_hints, config_file)
                values[name] = value
            else:
                raise ConfigError(f"{config_file}: unknown setting {key!r}; known: "
                                  f"{', '.join(sorted(set(SPEC_FLAGS) | set(train_hints) | {'cache'}))}")
    for flag in SPEC_FLAGS:
        if getattr(args, flag, None) is not None:
            values["key_env" if flag == "api_key_env" else flag] = getattr(args, flag)
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
    if isinstance(module, str) and ":" in module:  # record an absolute path, so --resume works from any folder
        where, _, attr = module.rpartition(":")
        if where.endswith(".py") and Path(where).is_file():
            values["module"] = f"{Path(where).resolve()}:{attr}"
    mlflow = values.get("mlflow")
    if isinstance(mlflow, str) and tracking_uri_of(mlflow) != mlflow:  # a folder (URIs come back as they are)
        values["mlflow"] = str(Path(mlflow).expanduser().resolve())  # absolute, for the same reason
    check_types(config, train_hints, config_file or "settings")
    try:
        TrainConfig.from_dict(config)  # fail now, with the setting's name, rather than after the model starts
    except ConfigError as exc:
        raise ConfigError(f"{config_file}: {exc}" if config_file else str(exc)) from None
    values["config"] = config
    return RunSpec.from_dict(values, where=config_file or "settings")


def read_config_file(path: str) -> dict:
    """A JSON or YAML mapping of settings; damaged, non-UTF-8 or key-holding files are refused."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")  # a byte-order mark (Notepad writes one)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p} is not UTF-8 text (byte {raw[exc.start:exc.start + 1]!r} at offset {exc.start}); "
                          f"save it as UTF-8") from None
    is_yaml = p.suffix.lower() in (".yaml", ".yml")
    try:
        if is_yaml:
            import yaml
            data = yaml.safe_load(text)
            node = yaml.compose(text, Loader=yaml.SafeLoader)  # PyYAML keeps the last of repeated keys silently
            keys = [k.value for k, _ in node.value] if isinstance(node, yaml.MappingNode) else []
        else:
            pairs: list = []
            data = json.loads(text, object_pairs_hook=lambda kv: pairs.append(kv) or dict(kv))
            keys = [k for k, _ in pairs[-1]] if isinstance(data, dict) else []  # the outermost object ends last
    except Exception as exc:  # json or yaml syntax
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        read_as = "" if is_yaml or p.suffix.lower() == ".json" else " (read as JSON; name a YAML file .yaml)"
        raise ConfigError(f"{p} could not be parsed{read_as}: {first_line}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of settings, not {type(data).__name__}")
    # a setting may be spelled as its flag (steps, batch-size, max-reply-tokens), but given only once
    names = [FILE_ALIASES.get(str(k).replace("-", "_"), str(k).replace("-", "_")) for k in keys or data]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"{p}: {', '.join(twice)} given more than once; keep one")
    data = {FILE_ALIASES.get(str(k).replace("-", "_"), str(k).replace("-", "_")) if isinstance(k, str) else k: v
            for k, v in data.items()}
    if any(str(k).lower() in ("api_key", "apikey", "key") for k in data):
        raise ConfigError(f"{p}: do not put API keys in config files; put the key in an environment variable "
                          f"and name it with api_key_env")
    return data


def save_spec(spec: RunSpec, run_dir: Path) -> None:
    """Write cli.json with credentials removed: base URLs without `user:password@`, known secrets masked."""
    from ..records.store import write_json_atomic

    data = asdict(spec)
    data["base_url"] = strip_url_credentials(data["base_url"])
    data["mlflow"] = strip_url_credentials(data["mlflow"])
    write_json_atomic(run_dir / CLI_FILE, redact_obj(data))


def load_spec(run_dir: Path) -> RunSpec:
    """The spec a run was started with; a missing, torn or tampered cli.json is one clear error."""
    cli_file = run_dir / CLI_FILE
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} has no {CLI_FILE}: "
                          f"{'it is a file, not a run folder' if run_dir.exists() else 'there is no such folder'}")
    if not cli_file.is_file():
        from ..records.store import RunStore
        if RunStore(run_dir).never_started():
            raise ConfigError(f"{run_dir} was stopped before training started and before it recorded how "
                              f"`workbench train` was called, so nothing was trained in it: start it again "
                              f"with the same flags and --run-dir {run_dir}")
        raise ConfigError(f"{run_dir} has no {CLI_FILE}: it was not started by `workbench train` "
                          f"(resume it from Python with Trainer(..., run_dir=..., resume=True))")
    try:
        data = json.loads(cli_file.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{cli_file} is damaged ({type(exc).__name__}: {exc}); the run cannot be rebuilt "
                          f"from it") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{cli_file} is damaged: expected a mapping, found {type(data).__name__}")
    return RunSpec.from_dict(data, where=str(cli_file))
