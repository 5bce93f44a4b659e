"""Where the front-end files live, and how a view's ES module is put together.

The ES modules and CSS are in `widgets/` at the top of the repository. An installed wheel carries
them as the data-only package `workbench._widgets` (the package-dir mapping in pyproject.toml); a
source checkout or an editable install reads `widgets/` directly. `WORKBENCH_WIDGETS_DIR` overrides.

Each view module imports its helpers from `./util.js`. anywidget loads one module from a string,
so relative imports cannot be resolved in the browser: `esm()` inlines util.js in place of that
import (a two-file "bundle", no build step, nothing fetched at run time).
"""
from __future__ import annotations

import functools
import importlib.util
import os
import re
from pathlib import Path

from ..errors import WorkbenchError

_HERE = Path(__file__).resolve().parent
_IMPORT_UTIL = re.compile(r'^import\s*\{[^}]*\}\s*from\s*"\./util\.js";?\s*$', re.M)
_EXPORT = re.compile(r"^export\s+(?=(?:async\s+)?function|const|let|class)", re.M)


def _packaged() -> list[Path]:
    """Where the data-only package `workbench._widgets` (widgets/ in the wheel) is, if installed."""
    try:
        spec = importlib.util.find_spec("workbench._widgets")
    except (ImportError, ValueError):
        return []
    return [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []


def widgets_dir() -> Path:
    candidates = []
    if os.environ.get("WORKBENCH_WIDGETS_DIR"):
        candidates.append(Path(os.environ["WORKBENCH_WIDGETS_DIR"]))
    candidates += _packaged() + [_HERE.parent / "_widgets", _HERE.parent.parent / "widgets"]
    for c in candidates:
        if (c / "util.js").is_file():
            return c
    raise WorkbenchError("the notebook widgets' front-end files were not found; looked in "
                         + ", ".join(str(c) for c in candidates)
                         + " (a wheel must ship widgets/ as the package workbench._widgets)")


@functools.lru_cache(maxsize=None)
def _read(name: str) -> str:
    return (widgets_dir() / name).read_text(encoding="utf-8")


def esm(name: str) -> str:
    """The view module `name` with util.js inlined: one self-contained ES module."""
    source = _read(name)
    if not _IMPORT_UTIL.search(source):
        return source
    util = _EXPORT.sub("", _read("util.js"))
    return _IMPORT_UTIL.sub(lambda _m: "// ---- util.js (inlined) ----\n" + util + "\n// ---- " + name + " ----", source,
                            count=1)


def css() -> str:
    return _read("workbench.css")


def reload() -> None:
    """Forget cached files (for front-end development: edit widgets/, reload, re-display)."""
    _read.cache_clear()


@functools.lru_cache(maxsize=1)
def plotly_js() -> bytes:
    """plotly.js from the installed plotly package (offline; the curves view asks for it once per page)."""
    spec = importlib.util.find_spec("plotly")
    roots = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    for root in roots:
        path = root / "package_data" / "plotly.min.js"
        if path.is_file():
            return path.read_bytes()
    raise WorkbenchError("plotly.js was not found in the installed plotly package (looked in "
                         + ", ".join(str(r / "package_data") for r in roots) + "); reinstall plotly")
