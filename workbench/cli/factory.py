"""From a spec to a pipeline with its data: a built-in task by name, or the user's own factory.

A user module is ordinary Python that may fail in any way on import or when called; that becomes
one line naming the module and the error, never a traceback.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, WorkbenchError
from .spec import RunSpec


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
    """Instantiate the spec's task (by name or from a user module), draw its splits, and freeze the
    parameters that `--train-only` leaves out."""
    built = _build(spec)
    if spec.train_only:
        params = built.pipeline.named_parameters()
        unknown = sorted(set(spec.train_only) - set(params))
        if unknown:
            raise ConfigError(f"--train-only: {built.name} has no parameter {', '.join(map(repr, unknown))}; "
                              f"its parameters: {', '.join(params)}")
        for name, param in params.items():
            if name not in spec.train_only:
                param.trainable = False
    return built


def _build(spec: RunSpec) -> Built:
    from ..engine.pipeline import Pipeline
    from ..tasks import Task, get_task

    if bool(spec.task) == bool(spec.module):
        raise ConfigError("give exactly one of --task NAME or --module FILE.py:factory")
    made = get_task(spec.task) if spec.task else call_factory(spec.module)
    source: Any = spec.source[0] if len(spec.source) == 1 else list(spec.source)
    if isinstance(made, Task):
        splits = made.load(spec.train, spec.val, spec.test, seed=spec.seed, source=source)
        return Built(made.name, made.pipeline_for(splits), splits.train, splits.val, splits.test, made.eval_fn,
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


def call_factory(target: str) -> Any:
    """Import `file.py:factory` (by path, its folder importable) or `package.module:factory`, and call it."""
    where, sep, attr = target.rpartition(":")
    if not sep or not where or not attr:
        raise ConfigError(f"--module must look like path/to/file.py:factory, not {target!r}")
    module = _import(where)
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError(f"--module: {where} has no function {attr!r}")
    try:
        return factory()
    except WorkbenchError:
        raise
    except (Exception, SystemExit) as exc:  # sys.exit() in the user's code must not end the CLI in silence
        raise ConfigError(f"--module: {target}() raised {_one_line(exc)}") from None


def _import(where: str) -> Any:
    if where.endswith(".py") or os.sep in where or "/" in where:
        path = Path(where)
        if not path.is_file():
            raise ConfigError(f"--module: file not found: {path}")
        if str(path.parent.resolve()) not in sys.path:
            sys.path.insert(0, str(path.parent.resolve()))  # so the file can import its neighbours
        spec = importlib.util.spec_from_file_location(f"workbench_user_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:  # anything the user's file does on import: a SyntaxError, sys.exit()
            raise ConfigError(f"--module: importing {path} raised {_one_line(exc)}"
                              f"{_GUARD * isinstance(exc, SystemExit)}") from None
        return module
    try:
        return importlib.import_module(where)
    except ImportError as exc:
        raise ConfigError(f"--module: cannot import {where!r}: {exc}") from None
    except (Exception, SystemExit) as exc:
        raise ConfigError(f"--module: importing {where} raised {_one_line(exc)}"
                          f"{_GUARD * isinstance(exc, SystemExit)}") from None


_GUARD = " (guard a script's top-level code with if __name__ == '__main__')"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, SyntaxError) and exc.lineno:
        text = f"{exc.msg} (line {exc.lineno})"
    if isinstance(exc, SystemExit):  # e.g. a script's own argparse or sys.exit() at its top level
        return f"SystemExit: it called sys.exit({exc.code!r})"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
