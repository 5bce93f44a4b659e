"""The recorded computation graph of one pipeline run on one sample.

Plain data: nodes, value edges, gradients and the loss, so a UI can render it and a run folder can
store it as JSON. Nodes are appended in the order calls *finish being set up*, which is already a
topological order (a call can only consume values produced before it), so backward is a reverse walk.
"""
from __future__ import annotations

import html
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable


@dataclass
class NodeRecord:
    """One call: an LLM call, a functional call (retriever, parser, tool) or the loss."""

    id: str
    component: str
    kind: str  # "llm" | "function" | "loss"
    call_index: int = 1
    parameters: list[str] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)
    output: str | None = None
    prompt: list[dict] | None = None
    status: str = "running"  # running | done | failed
    error: str | None = None
    started: float = 0.0
    ended: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False


@dataclass
class Edge:
    """A value produced by `source` and consumed by `target` as its input `input`."""

    source: str
    target: str
    input: str


@dataclass
class Gradient:
    """Feedback text aimed at one parameter or one upstream value, for one sample and one call."""

    sample_id: str
    node_id: str
    component: str
    call_index: int
    target: str  # a parameter name, or the id of the upstream node whose output is criticised
    target_kind: str  # "parameter" | "value"
    score: float | None
    text: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LossRecord:
    score: float
    prediction: str
    target: str
    passed: bool


class Graph:
    """Nodes, edges, gradients and loss of one sample's run."""

    def __init__(self, sample_id: str) -> None:
        self.sample_id = sample_id
        self.nodes: list[NodeRecord] = []
        self.edges: list[Edge] = []
        self.gradients: list[Gradient] = []
        self.loss: LossRecord | None = None
        self._calls: dict[str, int] = {}
        self._lock = threading.Lock()
        # texts each node produced, for linking later inputs to it (see tracing.find_sources)
        self.output_texts: dict[str, list[str]] = {}
        self.sample_inputs: set[str] = set()  # the sample's own input texts (never linked by content)
        # called with a node when it starts and when it ends (the trainer turns it into events)
        self.listener: Callable[[NodeRecord], None] | None = None

    # -- recording ----------------------------------------------------------------------------
    def new_node(self, component: str, kind: str, **fields: Any) -> NodeRecord:
        """Add a node with a readable id: `query`, then `query#2`, `query#3` in a loop."""
        with self._lock:
            n = self._calls.get(component, 0) + 1
            self._calls[component] = n
            node = NodeRecord(id=component if n == 1 else f"{component}#{n}", component=component,
                              kind=kind, call_index=n, **fields)
            self.nodes.append(node)
        self.notify(node)
        return node

    def notify(self, node: NodeRecord) -> None:
        if self.listener is not None:
            self.listener(node)

    def add_edge(self, source: str, target: str, input: str) -> None:
        with self._lock:
            if not any(e.source == source and e.target == target and e.input == input for e in self.edges):
                self.edges.append(Edge(source, target, input))

    def add_gradient(self, gradient: Gradient) -> None:
        with self._lock:
            self.gradients.append(gradient)

    # -- queries ------------------------------------------------------------------------------
    def node(self, node_id: str) -> NodeRecord:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(f"graph of sample {self.sample_id!r} has no node {node_id!r}")

    def sources(self, node_id: str, input: str | None = None) -> list[str]:
        return [e.source for e in self.edges if e.target == node_id and (input is None or e.input == input)]

    def consumers(self, node_id: str) -> list[str]:
        return [e.target for e in self.edges if e.source == node_id]

    def gradients_for(self, node_id: str) -> list[Gradient]:
        return [g for g in self.gradients if g.node_id == node_id]

    def topological_order(self) -> list[NodeRecord]:
        """Recording order; checked, because backward relies on it."""
        position = {n.id: i for i, n in enumerate(self.nodes)}
        for e in self.edges:
            if position[e.source] >= position[e.target]:
                raise AssertionError(f"edge {e.source}->{e.target} goes backwards in time")
        return list(self.nodes)

    # -- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"sample_id": self.sample_id,
                "nodes": [asdict(n) for n in self.nodes],
                "edges": [asdict(e) for e in self.edges],
                "gradients": [g.to_dict() for g in self.gradients],
                "loss": asdict(self.loss) if self.loss else None}

    @classmethod
    def from_dict(cls, data: dict) -> "Graph":
        g = cls(data["sample_id"])
        g.nodes = [NodeRecord(**n) for n in data["nodes"]]
        g.edges = [Edge(**e) for e in data["edges"]]
        g.gradients = [Gradient(**x) for x in data.get("gradients", [])]
        g.loss = LossRecord(**data["loss"]) if data.get("loss") else None
        for n in g.nodes:
            g._calls[n.component] = max(g._calls.get(n.component, 0), n.call_index)
        return g


# -- Graphviz -----------------------------------------------------------------------------------
_KIND_SHAPE = {"llm": "box", "function": "ellipse", "loss": "doubleoctagon"}


def layout_graph(graphs: Iterable[Graph]) -> dict:
    """The union of several samples' graphs: one node per id, in first-seen order.

    A UI lays this out once; samples whose loops ran fewer times simply use fewer of its nodes.
    """
    nodes: dict[str, dict] = {}
    edges: dict[tuple, dict] = {}
    for g in graphs:
        for n in g.nodes:
            nodes.setdefault(n.id, {"id": n.id, "component": n.component, "kind": n.kind,
                                    "call_index": n.call_index, "parameters": list(n.parameters)})
        for e in g.edges:
            edges.setdefault((e.source, e.target), {"source": e.source, "target": e.target, "input": e.input})
    return {"nodes": list(nodes.values()), "edges": list(edges.values())}


def to_dot(graph: "Graph | dict", *, rankdir: str = "TB") -> str:
    """Graphviz source with stable SVG ids (`node-<id>`, `edge-<src>-<dst>`) for UIs to style."""
    data = layout_graph([graph]) if isinstance(graph, Graph) else graph
    esc = lambda s: html.escape(str(s), quote=True)
    lines = ["digraph pipeline {", f'  graph [rankdir={rankdir}, bgcolor="transparent", nodesep=0.3, ranksep=0.35];',
             '  node [fontname="Helvetica", fontsize=11, style="rounded,filled", fillcolor="#f3f4f6", color="#9ca3af"];',
             '  edge [color="#9ca3af", arrowsize=0.7];']
    for n in data["nodes"]:
        label = n["id"]
        params = n.get("parameters") or []
        if params:
            label += "\\n" + ", ".join(p.split(".")[-1] for p in params)
        shape = _KIND_SHAPE.get(n["kind"], "box")
        lines.append(f'  "{esc(n["id"])}" [id="node-{esc(n["id"])}", label="{esc(label)}", shape={shape}, '
                     f'class="wb-node wb-{esc(n["kind"])}", tooltip="{esc(n["component"])}"];')
    for e in data["edges"]:
        lines.append(f'  "{esc(e["source"])}" -> "{esc(e["target"])}" '
                     f'[id="edge-{esc(e["source"])}-{esc(e["target"])}", class="wb-edge"];')
    lines.append("}")
    return "\n".join(lines)


def render_svg(graph: "Graph | dict", **kwargs: Any) -> str:
    """Lay out with Graphviz's `dot` and return SVG text."""
    import graphviz
    return graphviz.Source(to_dot(graph, **kwargs)).pipe(format="svg").decode("utf-8")
