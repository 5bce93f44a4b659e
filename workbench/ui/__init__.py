"""The notebook dashboard: anywidget views fed by one throttled funnel (front-end in ../../widgets/).

    from workbench.ui import Workbench
    wb = Workbench(trainer)     # show it in a cell
    wb.start()                  # training runs in the trainer's worker thread

The engine never imports this package; it only emits events (docs/EVENTS.md).
"""
from .dashboard import VIEWS, Workbench
from .diff import word_diff
from .funnel import Funnel
from .state import RunState
from .widgets import ControlsView, CurvesView, GraphView, ReviewView, SamplesView, View

__all__ = ["ControlsView", "CurvesView", "Funnel", "GraphView", "ReviewView", "RunState", "SamplesView", "VIEWS",
           "View", "Workbench", "word_diff"]
