"""The recorded computation graph of one pipeline run on one sample.

Plain data: nodes, value edges, gradients and the loss, so a UI can render it and a run folder can
store it as JSON. Nodes are appended in the order calls *finish being set up*, which is already a
topological order (a call can only consume values produced before it), so backward is a reverse walk.
"""
from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

from ..errors import BadArgumentError, NotFoundError, WorkbenchError
from ..plain_text import show_controls


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
    """A value produced by `source` and consumed by `target` as its input `input`.

    `guess` is true when the link was found by matching text content and the text could have come
    from elsewhere too (several nodes produced it, or the sample's own inputs hold it).
    """

    source: str
    target: str
    input: str
    guess: bool = False


@dataclass
class Gradient:
    """Feedback text aimed at one parameter or one upstream value, for one sample and one call."""

    @staticmethod
    def time_order(g: "Gradient") -> tuple:
        """Sort key: by sample, then in the order the nodes ran, so the calls of a loop that shares a
        parameter between nodes (think, act, think#2, act#2) read as they happened."""
        return g.sample_id, g.position, g.call_index, g.node_id


    sample_id: str
    node_id: str
    component: str
    call_index: int
    target: str  # a parameter name, or the id of the upstream node whose output is criticised
    target_kind: str  # "parameter" | "value"
    score: float | None
    text: str
    position: int = 0  # the writing node's place in the sample's time order (graph.nodes), for sorting
    source: str = "backward"  # "backward" (the backward engine) | "person" (trainer.feedback): shown everywhere

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LossRecord:
    """The score of one sample, with what the eval function measures and why, for the feedback.

    `error` is set when the pipeline's own code raised on the sample (scored 0); `feedback` is an
    eval function's own explanation of its score (an LLM judge's reasoning).
    """

    score: float
    prediction: str
    target: str
    passed: bool
    measure: str = ""
    feedback: str | None = None
    error: str | None = None


@dataclass
class Disconnection:
    """A trainable parameter whose node has no path to the loss on one sample: it gets no gradient.

    `node_id` is where the path ends (the last node its output reaches); `reason` says why.
    Its `to_dict()` is the data of a `disconnected` event.
    """

    parameter: str
    node_id: str
    sample_id: str
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


class Graph:
    """Nodes, edges, gradients and loss of one sample's run."""

    def __init__(self, sample_id: str) -> None:
        self.sample_id = sample_id
        self.nodes: list[NodeRecord] = []
        self.edges: list[Edge] = []
        self.gradients: list[Gradient] = []
        self.loss: LossRecord | None = None
        self.disconnected: list[Disconnection] = []  # filled by the backward pass
        self._calls: dict[str, int] = {}
        self._lock = threading.Lock()
        # texts each node produced, for linking later inputs to it (see tracing.find_sources)
        self.output_texts: dict[str, list[str]] = {}
        self.sample_inputs: set[str] = set()  # the sample's own input texts (never linked by content)
        # texts derived from node outputs by string handling (strip, slices, ...): text -> source ids
        self.derived_texts: dict[str, tuple[str, ...]] = {}
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

    def add_edge(self, source: str, target: str, input: str, *, guess: bool = False) -> None:
        """Add an edge once; an exact link replaces a guessed one for the same value."""
        with self._lock:
            for e in self.edges:
                if e.source == source and e.target == target and e.input == input:
                    e.guess = e.guess and guess
                    return
            self.edges.append(Edge(source, target, input, guess))

    def remember_text(self, text: str, sources: tuple[str, ...], *, limit: int) -> None:
        """Remember a text derived from node outputs, so content matching can find it later."""
        with self._lock:
            if text not in self.derived_texts and len(self.derived_texts) < limit:
                self.derived_texts[text] = sources

    def known_texts(self, exclude: str | None = None) -> list[tuple[str, list[str]]]:
        """Every text an earlier node produced (outputs and derived texts), with its producers in
        recording order."""
        position = {n.id: i for i, n in enumerate(self.nodes)}
        producers: dict[str, list[str]] = {}
        with self._lock:
            outputs = list(self.output_texts.items())
            derived = list(self.derived_texts.items())
        for node_id, texts in outputs:
            for t in texts:
                producers.setdefault(t, []).append(node_id)
        for t, sources in derived:
            producers.setdefault(t, []).extend(sources)
        result = []
        for t, nodes in producers.items():
            nodes = sorted({n for n in nodes if n != exclude and n in position}, key=position.__getitem__)
            if nodes:
                result.append((t, nodes))
        return result

    def add_gradient(self, gradient: Gradient) -> None:
        with self._lock:
            self.gradients.append(gradient)

    # -- queries ------------------------------------------------------------------------------
    def node(self, node_id: str) -> NodeRecord:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise NotFoundError(f"graph of sample {self.sample_id!r} has no node {node_id!r}")

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
                raise WorkbenchError(f"graph of sample {self.sample_id!r}: edge {e.source}->{e.target} "
                                 f"goes backwards in time")
        return list(self.nodes)

    # -- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"sample_id": self.sample_id,
                "nodes": [asdict(n) for n in self.nodes],
                "edges": [asdict(e) for e in self.edges],
                "gradients": [g.to_dict() for g in self.gradients],
                "loss": asdict(self.loss) if self.loss else None,
                "disconnected": [d.to_dict() for d in self.disconnected]}

    @classmethod
    def from_dict(cls, data: dict) -> "Graph":
        """The graph `to_dict` wrote; anything else is a BadArgumentError (also a ValueError)."""
        try:
            g = cls(data["sample_id"])
            g.nodes = [NodeRecord(**n) for n in data["nodes"]]
            g.edges = [Edge(**e) for e in data["edges"]]
            g.gradients = [Gradient(**x) for x in data.get("gradients", [])]
            g.loss = LossRecord(**data["loss"]) if data.get("loss") else None
            g.disconnected = [Disconnection(**d) for d in data.get("disconnected", [])]
            for n in g.nodes:
                g._calls[n.component] = max(g._calls.get(n.component, 0), n.call_index)
        except (KeyError, TypeError, AttributeError) as exc:
            raise BadArgumentError(f"not a graph record ({type(exc).__name__}: {exc})") from None
        return g


# -- Graphviz -----------------------------------------------------------------------------------
_KIND_SHAPE = {"llm": "box", "function": "ellipse", "loss": "doubleoctagon"}


def layout_graph(graphs: Iterable[Graph]) -> dict:
    """The union of several samples' graphs: one node per id, in first-seen order.

    A UI lays this out once; samples whose loops ran fewer times simply use fewer of its nodes.
    An edge is a guess only if it was guessed in every sample that has it.
    """
    nodes: dict[str, dict] = {}
    edges: dict[tuple, dict] = {}
    for g in graphs:
        for n in g.nodes:
            nodes.setdefault(n.id, {"id": n.id, "component": n.component, "kind": n.kind,
                                    "call_index": n.call_index, "parameters": list(n.parameters)})
        for e in g.edges:
            edge = edges.setdefault((e.source, e.target), {"source": e.source, "target": e.target,
                                                           "input": e.input, "guess": e.guess})
            edge["guess"] = edge["guess"] and e.guess
    return {"nodes": list(nodes.values()), "edges": list(edges.values())}


def _dot_string(text: Any, *, line_break: str) -> str:
    """A double-quoted DOT string whose Graphviz escString reads back as `text` exactly.

    Inside DOT quotes only `\\"` is special, but Graphviz then expands `\\N`, `\\G`, `\\n`, `\\l` ... in
    ids and labels and reads `&...;` as XML entities in SVG output, so `\\` and `&` are escaped
    too. `line_break` is how a newline is written: `\\n` in a label, `&#10;` in an id.
    """
    text = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("&", "&amp;")
    return '"' + text.replace("\r", "&#13;").replace("\n", line_break) + '"'


def _dot_id(text: Any) -> str:
    """An id: XML reads a raw tab or newline in an attribute as a space; Graphviz turns runs of spaces
    into no-break spaces. Character references keep each as it is."""
    return _dot_string(text, line_break="&#10;").replace("\t", "&#9;").replace(" ", "&#32;")


def _dot_label(text: Any) -> str:
    return _dot_string(text, line_break="\\n")


def to_dot(graph: "Graph | dict", *, rankdir: str = "TB") -> str:
    """Graphviz source with stable SVG ids (`node-<id>`, `edge-<src>-<dst>`) for UIs to style.

    Any node name is safe (backslashes, quotes, `<>`, newlines, unicode); guessed edges are dashed.
    """
    data = layout_graph([graph]) if isinstance(graph, Graph) else graph
    lines = ["digraph pipeline {", f'  graph [rankdir={rankdir}, bgcolor="transparent", nodesep=0.3, ranksep=0.35];',
             '  node [fontname="Helvetica", fontsize=11, style="rounded,filled", fillcolor="#f3f4f6", color="#9ca3af"];',
             '  edge [color="#9ca3af", arrowsize=0.7];']
    for n in data["nodes"]:
        label = str(n["id"])
        params = n.get("parameters") or []
        if params:
            label += "\n" + ", ".join(p.split(".")[-1] for p in params)
        shape = _KIND_SHAPE.get(n["kind"], "box")
        # the label and tooltip spell out invisible controls (a right-to-left override cannot disguise a name)
        lines.append(f'  {_dot_id(n["id"])} [id={_dot_id("node-" + str(n["id"]))}, label={_dot_label(show_controls(label))}, '
                     f'shape={shape}, class={_dot_label("wb-node wb-" + str(n["kind"]))}, '
                     f'tooltip={_dot_label(show_controls(n["component"]))}];')
    for e in data["edges"]:
        edge_id = _dot_id(f"edge-{e['source']}-{e['target']}")
        style = ', class="wb-edge wb-guess", style=dashed' if e.get("guess") else ', class="wb-edge"'
        lines.append(f'  {_dot_id(e["source"])} -> {_dot_id(e["target"])} [id={edge_id}{style}];')
    lines.append("}")
    return "\n".join(lines)


def render_svg(graph: "Graph | dict", **kwargs: Any) -> str:
    """Lay out with Graphviz's `dot` and return SVG text."""
    import graphviz
    return graphviz.Source(to_dot(graph, **kwargs)).pipe(format="svg").decode("utf-8")
