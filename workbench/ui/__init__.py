"""The notebook dashboard: anywidget views fed by one throttled funnel (front-end in ../../widgets/).

    from workbench.ui import Workbench
    wb = Workbench(trainer)     # show it in a cell
    wb.start()                  # training runs in the trainer's worker thread

The engine never imports this package; it only emits events (docs/EVENTS.md). Names are imported on
first use, so `workbench.ui.charts` (plotly figures of a run, used by reports) and `workbench.ui.diff`
load without the widget libraries.
"""
from __future__ import annotations

import importlib
from typing import Any

_WHERE = {"VIEWS": "dashboard", "Workbench": "dashboard", "word_diff": "diff", "Funnel": "funnel",
          "RunState": "state", "ControlsView": "widgets", "CurvesView": "widgets", "GraphView": "widgets",
          "ReviewView": "widgets", "SamplesView": "widgets", "View": "widgets", "CurveData": "charts",
          "score_figure": "charts", "cost_figure": "charts"}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'workbench.ui' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value
