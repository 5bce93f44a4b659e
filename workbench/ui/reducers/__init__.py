"""One reducer per view: each folds the run's events (docs/EVENTS.md) into what its view shows.

`RunState` (../state.py) owns one of each and hands every event to all of them. A reducer reads
event fields only as `d.get("field")` / `d["field"]` inside its `_on_<event type>` handlers, so a test
can list every field the dashboard reads and check it against the event definitions
(workbench/records/events.py): a renamed field fails that test instead of blanking a view.
"""
from .base import ALL_PARTS, CONTROLS, CURVES, LAYOUT, PANEL, REVIEW, SAMPLES, STATUS, Part, clip
from .curves import CurvesPart
from .graph import GraphPart
from .person import PersonPart
from .review import ReviewPart
from .run import RunPart
from .samples import SamplesPart

__all__ = ["ALL_PARTS", "CONTROLS", "CURVES", "LAYOUT", "PANEL", "REVIEW", "SAMPLES", "STATUS", "CurvesPart",
           "GraphPart", "Part", "PersonPart", "ReviewPart", "RunPart", "SamplesPart", "clip"]
