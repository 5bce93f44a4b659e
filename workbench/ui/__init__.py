"""The notebook dashboard: anywidget views fed by one throttled funnel (front-end in ../../widgets/).

    from workbench.ui import Workbench
    wb = Workbench(trainer)     # show it in a cell
    wb.start()                  # training runs in the trainer's worker thread

The engine never imports this package; it only emits events (docs/EVENTS.md). Names are imported on
first use, so the widget libraries load only when a view is asked for. Chart specifications and the
word diff live in `workbench.records` (the report uses them too); they are re-exported here.
"""
from __future__ import annotations

import importlib
from typing import Any

_WHERE = {"VIEWS": ".dashboard", "Workbench": ".dashboard", "word_diff": "..records.diff", "Funnel": ".funnel",
          "RunState": ".state", "ControlsView": ".widgets", "CurvesView": ".widgets", "GraphView": ".widgets",
          "ReviewView": ".widgets", "SamplesView": ".widgets", "View": ".widgets", "CurveData": "..records.charts",
          "score_figure": "..records.charts", "cost_figure": "..records.charts"}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'workbench.ui' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name], __name__), name)
    globals()[name] = value
    return value
