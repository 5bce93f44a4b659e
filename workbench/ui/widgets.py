"""The five views as thin anywidget classes: flat synced traits down, custom messages up.

Every trait is written by Python only (the funnel); the browser renders them and reports what the
person did with `model.send({...})` (see `Funnel.handle` for the message types). Nothing here knows
about the trainer; a view without a funnel simply shows what its traits hold.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anywidget
import traitlets as t

from . import assets
from ..redact import redact_obj

if TYPE_CHECKING:
    from .funnel import Funnel


class View(anywidget.AnyWidget):
    """Base: forwards the browser's messages to the funnel that feeds this view."""

    kind = ""
    _css = assets.css()

    def __init__(self, funnel: "Funnel | None" = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.funnel = funnel
        self.on_msg(self._on_browser_msg)
        if funnel is not None:
            funnel.attach(self)

    def _on_browser_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if self.funnel is not None and isinstance(content, dict):
            self.funnel.handle(self, content)

    def reply(self, **content: Any) -> None:
        """A one-off answer to the browser (e.g. `decision_result`); state goes through traits.
        Masked like the traits: a refusal's reason may quote an endpoint's error, key included."""
        self.send(redact_obj(content))


class GraphView(View):
    """The pipeline graph (Graphviz SVG, laid out once), live node status and the node panel."""

    kind = "graph"
    _esm = assets.esm("graph.js")
    svg = t.Unicode("").tag(sync=True)                 # Graphviz SVG text; changes only when nodes appear
    node_status = t.Dict().tag(sync=True)              # {node_id: waiting|running|done|failed|gradient}
    caption = t.Unicode("").tag(sync=True)             # what the run is doing now
    selected_node = t.Unicode("").tag(sync=True)
    selected_sample = t.Unicode("").tag(sync=True)
    sample_ids = t.List().tag(sync=True)               # the current batch, for the panel's sample picker
    panel = t.Dict().tag(sync=True)                    # parameters, calls (inputs, output, gradients)
    badges = t.Dict().tag(sync=True)                   # {node_id: why} a parameter there has no path to the loss


class SamplesView(View):
    """The current batch: input, prediction, target, score, backward selection; pin / exclude."""

    kind = "samples"
    _esm = assets.esm("samples.js")
    rows = t.List().tag(sync=True)
    selected_sample = t.Unicode("").tag(sync=True)
    caption = t.Unicode("").tag(sync=True)


class CurvesView(View):
    """plotly charts: scores per step with every proposal's outcome; cost (or tokens) per step per role.

    plotly.js comes from the installed plotly package: the first curves view on a page asks its
    kernel for it (`{type: "plotly_js"}`, answered with the file as a binary buffer), every other
    view on the page reuses it."""

    kind = "curves"
    _esm = assets.esm("curves.js")
    points = t.List().tag(sync=True)                   # [{step, minibatch, best}]
    marks = t.List().tag(sync=True)                    # every proposal: [{step, proposal_id, parameter, outcome, validation, ...}]
    usage = t.List().tag(sync=True)                    # [{step, role, calls, tokens, cost}] per step
    totals = t.Dict().tag(sync=True)                   # {calls, tokens, cost, by_role}, live
    figures = t.Dict().tag(sync=True)                  # {score, cost}: plotly JSON from workbench.records.charts

    def _on_browser_msg(self, widget: Any, content: Any, buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "plotly_js":
            self.send({"type": "plotly_js"}, [assets.plotly_js()])
            return
        super()._on_browser_msg(widget, content, buffers)


class ReviewView(View):
    """The pending proposal as a word diff with Accept / Reject / Edit; auto-approve; history."""

    kind = "review"
    _esm = assets.esm("review.js")
    pending = t.Dict().tag(sync=True)                  # {} when nothing waits for a decision
    history = t.List().tag(sync=True)                  # newest first
    parameters = t.List().tag(sync=True)               # current values
    auto_approve = t.Bool(False).tag(sync=True)
    can_decide = t.Bool(False).tag(sync=True)          # False: the policy decides, no buttons
    notice = t.Unicode("").tag(sync=True)
    activity = t.Unicode("").tag(sync=True)            # the proposal in flight when none waits for you
    feedback = t.List().tag(sync=True)                 # the person's feedback, newest first, with what became of it


class ControlsView(View):
    """Start, pause / resume, stop, one step, export."""

    kind = "controls"
    _esm = assets.esm("controls.js")
    status = t.Unicode("idle").tag(sync=True)          # idle|starting|running|waiting|paused|stopping|finished
    step = t.Int(0).tag(sync=True)
    epoch = t.Int(0).tag(sync=True)
    detail = t.Unicode("").tag(sync=True)
    run_id = t.Unicode("").tag(sync=True)
    run_dir = t.Unicode("").tag(sync=True)             # the run folder (events, checkpoints)
    export_path = t.Unicode("tuned_prompts.json").tag(sync=True)
    export_formats = t.List(["json", "yaml", "md"]).tag(sync=True)
    message = t.Unicode("").tag(sync=True)
    summary = t.Dict().tag(sync=True)                  # run_finished: baseline / final scores
    forecast = t.Unicode("").tag(sync=True)            # the cost forecast and what was spent against it
