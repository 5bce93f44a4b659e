"""The graph view: the pipeline's layout (grown from recorded graphs), live node status, the gradients
of the latest backward, parameters with no path to the loss, and the side panel of the clicked node."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Iterable

from ...records.events import Event
from .base import CONTROLS, LAYOUT, PANEL, REVIEW, SAMPLES, STATUS, Part, clip


def received_by(gradients: Iterable[dict], node_id: str) -> list[dict]:
    """Gradients a node received: feedback on its output, and feedback on its own parameters.

    A gradient is written *at* `node_id` and aimed at `target`: an upstream node's output
    (`target_kind == "value"`) or a parameter of the writing node (`"parameter"`).
    """
    return [g for g in gradients
            if (g.get("target_kind") == "value" and g.get("target") == node_id)
            or (g.get("target_kind") == "parameter" and g.get("node_id") == node_id)]


class GraphPart(Part):
    view = "graph"

    def __init__(self, state: Any, svg_renderer: Callable[[dict], str] | None = None) -> None:
        super().__init__(state)
        self.layout_nodes: "OrderedDict[str, dict]" = OrderedDict()
        self.layout_edges: "OrderedDict[tuple, dict]" = OrderedDict()
        self.layout_version = 0
        self.node_status: dict[str, str] = {}
        self._running: dict[str, set] = {}
        self._status_split = ""
        self.graphs: dict[str, dict] = {}       # this step's recorded graphs, by sample id
        self.gradients: list[dict] = []         # the latest backward's gradients
        self._gradients_step = -1
        self.disconnected: dict[str, dict] = {}  # parameter -> {node_id, sample_id, reason, step}
        self.selected_node = ""
        self._svg_renderer = svg_renderer
        self._svg, self.svg_error, self._svg_version = "", "", -1

    # -- forward: layout and status --------------------------------------------------------------
    def _on_node(self, e: Event, d: dict) -> None:
        node_id, status, split = d.get("node_id", ""), d.get("status", ""), d.get("split", "")
        if split != self._status_split:  # a new pass (train batch, minibatch, validation): repaint
            self._status_split = split
            self._reset_status()
        key = (d.get("sample_id"), d.get("call_index"))
        running = self._running.setdefault(node_id, set())
        if status == "running":
            running.add(key)
            self.node_status[node_id] = "running"
        else:
            running.discard(key)
            if running:
                self.node_status[node_id] = "running"
            elif not (status == "done" and self.node_status.get(node_id) == "failed"):
                self.node_status[node_id] = status  # a failure in this pass stays visible
        self.mark(STATUS)

    def _reset_status(self) -> None:
        self.node_status = {}
        self._running = {}

    def _on_forward(self, e: Event, d: dict) -> None:
        graph = d.get("graph")
        if d.get("split") != "train" or not graph:
            return
        sid = graph.get("sample_id")
        if not sid:
            return
        self.graphs[sid] = graph
        self._grow_layout(graph)
        self._sample_finished(sid, graph)
        if self.state.samples.selected_sample == sid:
            self.mark(PANEL)

    def _sample_finished(self, sid: str, graph: dict) -> None:
        """The sample's forward pass is over: none of its calls is still running.

        (A node may announce its start and never its end, e.g. the loss node; the final graph
        carries every node's last status.)"""
        for n in graph.get("nodes") or []:
            running = self._running.get(n["id"])
            if running is None:
                continue
            running.discard((sid, n.get("call_index")))
            if not running and self.node_status.get(n["id"]) == "running":
                self.node_status[n["id"]] = "failed" if n.get("status") == "failed" else "done"
                self.mark(STATUS)

    def _grow_layout(self, graph: dict) -> None:
        grew = False
        for n in graph.get("nodes") or []:
            if n["id"] not in self.layout_nodes:
                self.layout_nodes[n["id"]] = {"id": n["id"], "component": n.get("component", n["id"]),
                                              "kind": n.get("kind", "llm"), "call_index": n.get("call_index", 1),
                                              "parameters": list(n.get("parameters") or [])}
                grew = True
        for ed in graph.get("edges") or []:
            key = (ed["source"], ed["target"])
            known = self.layout_edges.get(key)
            if known is None:
                self.layout_edges[key] = {"source": ed["source"], "target": ed["target"],
                                          "input": ed.get("input", ""), "guess": bool(ed.get("guess"))}
                grew = True
            elif known["guess"] and not ed.get("guess"):  # seen for sure in another sample
                known["guess"] = False
                grew = True
        if grew:
            self.layout_version += 1
            self.mark(LAYOUT)

    def _on_step_started(self, e: Event, d: dict) -> None:
        self.graphs = {}
        self.gradients = []  # the panel shows this step's feedback only
        self._reset_status()
        self._status_split = ""
        self.mark(STATUS, PANEL)

    # -- backward --------------------------------------------------------------------------------
    def _on_gradient(self, e: Event, d: dict) -> None:
        if self._gradients_step != e.step:
            self._gradients_step = e.step
            self.gradients = []
        self.gradients.append(dict(d, text=clip(d.get("text"))))
        receiver = d.get("target") if d.get("target_kind") == "value" else d.get("node_id")
        if receiver:
            if self._status_split != "backward":
                self._status_split = "backward"
                self.node_status = {k: v for k, v in self.node_status.items() if v != "running"}
            self.node_status[receiver] = "gradient"
        if d.get("target_kind") == "parameter" and self.disconnected.pop(d.get("target", ""), None):
            self.mark(LAYOUT, REVIEW)  # feedback reaches it now
        self.mark(STATUS, PANEL)

    def _on_disconnected(self, e: Event, d: dict) -> None:
        self.disconnected[d.get("parameter", "")] = {"node_id": d.get("node_id", ""), "sample_id": d.get("sample_id", ""),
                                                     "reason": d.get("reason", ""), "step": e.step}
        self.mark(LAYOUT, PANEL, REVIEW)

    def _on_run_finished(self, e: Event, d: dict) -> None:
        self._running = {}
        self.node_status = {k: ("done" if v == "running" else v) for k, v in self.node_status.items()}
        self.mark(STATUS)

    # -- what the view shows -----------------------------------------------------------------------
    def layout(self) -> dict:
        return {"nodes": list(self.layout_nodes.values()), "edges": list(self.layout_edges.values())}

    def svg(self) -> str:
        if self.layout_version != self._svg_version:
            self._svg_version = self.layout_version
            try:
                self._svg = self._svg_renderer(self.layout()) if self.layout_nodes and self._svg_renderer else ""
            except Exception as exc:  # e.g. Graphviz's `dot` is not installed
                self.svg_error = f"could not draw the graph with Graphviz ({type(exc).__name__}: {exc})"
                self._svg = ""
            else:
                self.svg_error = ""
        return self._svg

    def breaks(self) -> dict[str, str]:
        """{node_id: why} for nodes whose parameter has no path to the loss (a badge on the node)."""
        out: dict[str, str] = {}
        for name, info in self.disconnected.items():
            node = info["node_id"] or next((n["id"] for n in self.layout_nodes.values()
                                            if name in n.get("parameters", [])), "")
            if node:
                text = f"{name}: no path to the loss" + (f" ({info['reason']})" if info["reason"] else "")
                out[node] = (out[node] + "; " + text) if node in out else text
        return out

    def panel(self) -> dict:
        """The side panel for the selected node and sample."""
        node_id = self.selected_node
        if not node_id:
            return {}
        samples, params_now = self.state.samples, self.state.run.parameters
        info = self.layout_nodes.get(node_id, {"id": node_id, "component": node_id, "kind": "", "parameters": []})
        component = info.get("component", node_id)
        sid = samples.selected_sample
        graph = self.graphs.get(sid) if sid else None
        params = []
        for name in info.get("parameters") or []:
            p = params_now.get(name, {"name": name})
            params.append({"name": name, "role": p.get("role", ""), "value": clip(p.get("value")),
                           "trainable": p.get("trainable", True), "description": p.get("description", ""),
                           "disconnected": self.why_disconnected(name)})
        # every call of this component (loops), from the sample's graph, else from the layout
        if graph:
            call_nodes = [n for n in graph.get("nodes") or [] if n.get("component") == component]
        else:
            call_nodes = [n for n in self.layout_nodes.values() if n.get("component") == component]
        calls = []
        for n in sorted(call_nodes, key=lambda n: n.get("call_index", 1)):
            grads = received_by(self.gradients, n["id"])
            grads.sort(key=lambda g: (g.get("sample_id") != sid, str(g.get("sample_id")), g.get("call_index", 0)))
            calls.append({
                "node_id": n["id"], "call_index": n.get("call_index", 1), "current": n["id"] == node_id,
                "inputs": [[k, clip(v)] for k, v in (n.get("inputs") or {}).items()] if graph else [],
                "output": clip(n.get("output")) if graph else "",
                "status": n.get("status", "") if graph else "", "error": clip(n.get("error")) if graph else "",
                "gradients": [{"sample_id": g.get("sample_id", ""), "from": g.get("node_id", ""),
                               "target": g.get("target", ""), "kind": g.get("target_kind", ""),
                               "score": g.get("score"), "text": g.get("text", ""),
                               "source": g.get("source") or "backward"} for g in grads],
                "person": self.state.person.on_node(sid, n["id"]) if graph else [],
            })
        note = ""
        if not sid:
            note = "No sample selected yet."
        elif graph is None:
            note = f"No recorded graph for sample {sid} in this step yet."
        elif self.gradients and not any(g.get("sample_id") == sid for g in self.gradients):
            note = f"Sample {sid} was not sent to backward in this step: the gradients shown are other samples'."
        return {"node_id": node_id, "component": component, "kind": info.get("kind", ""), "sample_id": sid,
                "parameters": params, "calls": calls, "note": note, "multi_call": len(calls) > 1,
                "broken": self.breaks().get(node_id, "")}

    def why_disconnected(self, name: str) -> str:
        info = self.disconnected.get(name)
        if not info:
            return ""
        where = f" (the path ends at {info['node_id']}" + (f", sample {info['sample_id']})" if info["sample_id"]
                                                            else ")")
        reason = info["reason"].strip().rstrip(".")
        return ("No feedback reaches this parameter: it has no path to the loss" + where
                + (f": {reason}" if reason else "") + ". Nothing can be proposed for it.")

    def traits(self, parts: set[str]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if LAYOUT in parts:
            values["svg"] = self.svg()
            values["badges"] = self.breaks()
        if STATUS in parts or LAYOUT in parts:
            values["node_status"] = dict(self.node_status)
        if parts & {STATUS, CONTROLS, SAMPLES, REVIEW, LAYOUT}:
            values["caption"] = self.state.run.caption() + (f" · {self.svg_error}" if self.svg_error else "")
        if parts & {PANEL, SAMPLES, LAYOUT}:
            samples = self.state.samples
            values.update(selected_node=self.selected_node, selected_sample=samples.selected_sample,
                          sample_ids=list(samples.rows), panel=self.panel())
        return values
