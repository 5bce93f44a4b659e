"""What the dashboard knows about a run, rebuilt from trainer events (docs/EVENTS.md).

Plain Python, no widgets: `RunState.apply(event)` folds one event in and marks which views
changed; the snapshot methods return the JSON the widgets' traits carry. The funnel applies events
in its own thread, so the trainer only ever appends to a queue.
"""
from __future__ import annotations

import functools
from collections import OrderedDict
from typing import Any, Iterable

from ..events import Event
from .diff import word_diff as _word_diff


@functools.lru_cache(maxsize=1024)
def _diff(old: str, new: str) -> tuple:
    return tuple(tuple(seg) for seg in _word_diff(old, new))


def word_diff(old: str, new: str) -> list[list[str]]:
    """Cached: the review view redraws the same diffs on every push."""
    return [list(seg) for seg in _diff(old or "", new or "")]

# The parts of the dashboard; a change marks one or more of them dirty.
LAYOUT, STATUS, PANEL, SAMPLES, CURVES, REVIEW, CONTROLS = (
    "layout", "status", "panel", "samples", "curves", "review", "controls")
ALL_PARTS = frozenset({LAYOUT, STATUS, PANEL, SAMPLES, CURVES, REVIEW, CONTROLS})

MAX_TEXT = 6000          # characters of one text shown in a view (a full prompt can be long)
MAX_HISTORY = 400        # proposals kept in the review history
DIFF_IN_HISTORY = 40     # the newest proposals whose diff is sent with the history


def clip(text: Any, limit: int = MAX_TEXT) -> str:
    if text is None:
        return ""
    text = text if isinstance(text, str) else str(text)
    return text if len(text) <= limit else text[:limit] + f" ... [{len(text) - limit} more characters]"


def received_by(gradients: Iterable[dict], node_id: str) -> list[dict]:
    """Gradients a node received: feedback on its output, and feedback on its own parameters.

    A gradient is written *at* `node_id` and aimed at `target`: an upstream node's output
    (`target_kind == "value"`) or a parameter of the writing node (`"parameter"`).
    """
    return [g for g in gradients
            if (g.get("target_kind") == "value" and g.get("target") == node_id)
            or (g.get("target_kind") == "parameter" and g.get("node_id") == node_id)]


def inputs_text(inputs: dict | None) -> str:
    if not inputs:
        return ""
    if len(inputs) == 1:
        return clip(next(iter(inputs.values())), 400)
    return clip("; ".join(f"{k}: {v}" for k, v in inputs.items()), 400)


class RunState:
    """The dashboard's model of one run. Not thread-safe: the funnel serialises access."""

    def __init__(self, prices: dict[str, tuple[float, float]] | None = None) -> None:
        self.prices = dict(prices or {})
        self.run_id = ""
        self.run_dir = ""
        self.status = "idle"          # idle | starting | running | paused | stopping | finished
        self.finish_status = ""       # completed | stopped | budget | plateau | failed
        self.finished: dict = {}
        self.step = 0
        self.epoch = 0
        self.phase = ""
        self.splits: dict = {}
        self.parameters: "OrderedDict[str, dict]" = OrderedDict()
        # graph
        self.layout_nodes: "OrderedDict[str, dict]" = OrderedDict()
        self.layout_edges: "OrderedDict[tuple, dict]" = OrderedDict()
        self.layout_version = 0
        self.node_status: dict[str, str] = {}
        self._running: dict[str, set] = {}
        self._status_split = ""
        self.graphs: dict[str, dict] = {}
        self.selected_node = ""
        self.selected_sample = ""
        self.user_picked_sample = False  # a person chose the sample: do not move it for them
        # samples
        self.batch: list[str] = []
        self.rows: "OrderedDict[str, dict]" = OrderedDict()
        self.pinned: set[str] = set()
        self.excluded: set[str] = set()
        # gradients of the latest backward
        self.gradients: list[dict] = []
        self._gradients_step = -1
        # curves
        self.points: "OrderedDict[int, dict]" = OrderedDict()
        self.marks: list[dict] = []
        self.usage_points: list[dict] = []
        self.usage: dict = {}
        # review
        self.proposals: "OrderedDict[str, dict]" = OrderedDict()
        self.pending_id = ""
        self.auto_approve = False
        self.message = ""
        self.dirty: set[str] = set(ALL_PARTS)

    # -- folding events in ---------------------------------------------------------------------
    def apply(self, event: Event) -> None:
        handler = getattr(self, "_on_" + event.type, None)
        if handler is not None:
            handler(event, event.data or {})

    def _on_run_started(self, e: Event, d: dict) -> None:
        self.run_id = d.get("run_id") or e.run_id
        self.status = "running"
        self.finish_status, self.finished = "", {}
        self.splits = d.get("splits") or {}
        self.step = e.step
        for p in d.get("parameters") or []:
            self.parameters[p["name"]] = {"name": p["name"], "value": p.get("value", ""),
                                          "role": p.get("role", ""), "trainable": p.get("trainable", True),
                                          "description": p.get("description", "")}
        self.phase = "resumed from step %s" % d["resumed_from"] if d.get("resumed_from") else "started"
        self.dirty |= {CONTROLS, REVIEW, PANEL}

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
        self.phase = f"forward · {split}" if split else "forward"
        self.dirty |= {STATUS}

    def _reset_status(self) -> None:
        self.node_status = {}
        self._running = {}

    def _on_forward(self, e: Event, d: dict) -> None:
        graph = d.get("graph")
        summary = d.get("summary") or {}
        if d.get("split") != "train":
            return
        sid = summary.get("sample_id") or (graph or {}).get("sample_id")
        if not sid:
            return
        if graph:
            self.graphs[sid] = graph
            self._grow_layout(graph)
            self._sample_finished(sid, graph)
            if self.selected_sample == sid:
                self.dirty.add(PANEL)
        row = self.rows.get(sid)
        if row is None:
            row = self._new_row(sid)
            self.rows[sid] = row
        row.update({"input": inputs_text(summary.get("inputs")), "prediction": clip(summary.get("prediction"), 400),
                    "target": clip(summary.get("target"), 400), "score": summary.get("score"),
                    "status": summary.get("status", ""), "error": clip(summary.get("error"), 400)})
        if not self.selected_sample:
            self.selected_sample = sid
            self.dirty |= {PANEL}
        self.dirty |= {SAMPLES}

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
                self.dirty.add(STATUS)

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
            if key not in self.layout_edges:
                self.layout_edges[key] = {"source": ed["source"], "target": ed["target"], "input": ed.get("input", "")}
                grew = True
        if grew:
            self.layout_version += 1
            self.dirty.add(LAYOUT)

    def _new_row(self, sid: str) -> dict:
        return {"sample_id": sid, "input": "", "prediction": "", "target": "", "score": None, "status": "running",
                "error": "", "selected": None, "reason": ""}

    def _on_eval(self, e: Event, d: dict) -> None:
        phase, split, score = d.get("phase"), d.get("split"), d.get("score")
        if phase in ("baseline", "final") and split in ("train", "val") and score is not None:
            step = e.step if phase == "final" else 0
            point = self.points.setdefault(step, {"step": step, "train": None, "val": None, "best": None})
            if phase == "baseline" or point.get(split) is None:
                point[split] = score
            if split == "val" and phase == "baseline":
                point["best"] = score
            self.dirty.add(CURVES)
        if split == "val" and d.get("proposal_id"):
            self.phase = "validating proposal"
            self.dirty.add(CONTROLS)

    def _on_step_started(self, e: Event, d: dict) -> None:
        self.step, self.epoch = e.step, d.get("epoch", self.epoch)
        self.batch = list(d.get("batch") or [])
        self.rows = OrderedDict((sid, self._new_row(sid)) for sid in self.batch)
        self.graphs = {}
        self.gradients = []  # the panel shows this step's feedback only
        self._reset_status()
        self._status_split = ""
        if self.selected_sample not in self.rows:
            self.selected_sample = self.batch[0] if self.batch else ""
            self.user_picked_sample = False
        self.phase = "forward · train"
        self.dirty |= {SAMPLES, STATUS, PANEL, CONTROLS}

    def _on_selection(self, e: Event, d: dict) -> None:
        first = ""
        for s in d.get("samples") or []:
            row = self.rows.get(s.get("sample_id"))
            if row is not None:
                row["selected"], row["reason"] = bool(s.get("selected")), s.get("reason", "")
                if s.get("selected") and not first:
                    first = s.get("sample_id")
        # show a back-propagated sample in the graph panel, unless the user picked one
        if first and not self.user_picked_sample and not (self.rows.get(self.selected_sample) or {}).get("selected"):
            self.selected_sample = first
            self.dirty.add(PANEL)
        self.phase = "backward"
        self.dirty |= {SAMPLES, CONTROLS}

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
        self.dirty |= {STATUS, PANEL}

    def _on_backward_done(self, e: Event, d: dict) -> None:
        self.phase = "proposing"
        self.dirty |= {CONTROLS}

    def _proposal(self, pid: str) -> dict:
        p = self.proposals.get(pid)
        if p is None:
            p = {"proposal_id": pid, "step": self.step, "parameter": "", "role": "", "old": "", "new": "",
                 "source": "", "gradient_summary": "", "minibatch_before": None, "minibatch_after": None,
                 "minibatch_passed": None, "validation": None, "best": None, "action": "", "by": "", "text": "",
                 "accepted": None, "reason": "", "status": "proposed", "value": ""}
            self.proposals[pid] = p
            while len(self.proposals) > MAX_HISTORY:
                self.proposals.popitem(last=False)
        return p

    def _on_proposal(self, e: Event, d: dict) -> None:
        p = self._proposal(d.get("proposal_id", ""))
        p.update({"step": e.step, "parameter": d.get("parameter", ""), "role": d.get("role", ""),
                  "old": clip(d.get("old")), "new": clip(d.get("new")), "source": d.get("source", ""),
                  "gradient_summary": clip(d.get("gradient_summary"))})
        self.phase = f"proposal for {p['parameter']}"
        self.dirty |= {REVIEW, CONTROLS}

    def _on_minibatch(self, e: Event, d: dict) -> None:
        p = self._proposal(d.get("proposal_id", ""))
        p.update({"minibatch_before": d.get("before"), "minibatch_after": d.get("after"),
                  "minibatch_passed": d.get("passed")})
        if d.get("passed") is False:
            p["status"] = "failed the minibatch gate"
        self.dirty.add(REVIEW)

    def _on_approval_requested(self, e: Event, d: dict) -> None:
        pid = d.get("proposal_id", "")
        p = self._proposal(pid)
        for key in ("parameter", "old", "new"):
            if d.get(key) is not None and not p.get(key):
                p[key] = clip(d[key])
        if d.get("minibatch_before") is not None:
            p["minibatch_before"] = d["minibatch_before"]
        if d.get("minibatch_after") is not None:
            p["minibatch_after"] = d["minibatch_after"]
        p["status"] = "awaiting decision"
        self.pending_id = pid
        self.phase = f"waiting for a decision on {p['parameter'] or pid}"
        self.dirty |= {REVIEW, CONTROLS}

    def _on_decision(self, e: Event, d: dict) -> None:
        pid = d.get("proposal_id", "")
        p = self._proposal(pid)
        action = d.get("action", "")
        p.update({"action": action, "by": d.get("by", ""), "text": clip(d.get("text"))})
        p["status"] = {"accept": "accepted", "reject": "rejected", "edit": "edited"}.get(action, action)
        if action == "edit" and d.get("text"):
            p["edited_diff"] = word_diff(p.get("old", ""), clip(d.get("text")))
        if self.pending_id == pid:
            self.pending_id = ""
        self.phase = "validating" if action != "reject" else "reverting"
        self.dirty |= {REVIEW, CONTROLS}

    def _on_no_proposal(self, e: Event, d: dict) -> None:
        """Say so when the optimizer gave nothing usable (tiny base models echo their prompt)."""
        self.message = clip(f"step {e.step}: no proposal for {d.get('parameter', '?')}: {d.get('reason', '')}", 300)
        self.dirty |= {CONTROLS}

    def _on_validation(self, e: Event, d: dict) -> None:
        p = self._proposal(d.get("proposal_id", ""))
        p.update({"validation": d.get("score"), "best": d.get("best")})
        self.dirty.add(REVIEW)

    def _on_update(self, e: Event, d: dict) -> None:
        pid = d.get("proposal_id", "")
        p = self._proposal(pid)
        accepted = bool(d.get("accepted"))
        p.update({"accepted": accepted, "reason": clip(d.get("reason"), 600), "value": clip(d.get("value"))})
        p["status"] = "kept" if accepted else "reverted"
        name = d.get("parameter") or p.get("parameter")
        if name and d.get("value") is not None:
            param = self.parameters.setdefault(name, {"name": name, "value": "", "role": p.get("role", ""),
                                                      "trainable": True, "description": ""})
            param["value"] = d["value"]
        if self.pending_id == pid:
            self.pending_id = ""
        self.marks.append({"step": e.step, "proposal_id": pid, "parameter": name or "", "accepted": accepted,
                           "score": p.get("validation"), "reason": clip(d.get("reason"), 300)})
        self.dirty |= {REVIEW, CURVES, PANEL}

    def _on_step_finished(self, e: Event, d: dict) -> None:
        point = self.points.setdefault(e.step, {"step": e.step, "train": None, "val": None, "best": None})
        point.update({"train": d.get("train_score"), "val": d.get("val_score"), "best": d.get("best_val")})
        self._record_usage(e.step, d.get("usage"))
        self.phase = f"step {e.step} finished"
        self.dirty |= {CURVES, CONTROLS}

    def _on_checkpoint(self, e: Event, d: dict) -> None:
        pass

    def _on_run_finished(self, e: Event, d: dict) -> None:
        self.status = "finished"
        self.finish_status = d.get("status", "")
        self.finished = {k: d.get(k) for k in ("status", "baseline", "final", "best_val", "best_step", "error",
                                               "run_dir")}
        self.run_dir = d.get("run_dir") or self.run_dir
        self._record_usage(e.step, d.get("usage"), final=True)
        self.pending_id = ""
        for p in self.proposals.values():
            if p["status"] in ("proposed", "awaiting decision"):
                p["status"] = "not decided (run ended)"
        self.phase = f"finished: {self.finish_status}"
        self._running = {}
        self.node_status = {k: ("done" if v == "running" else v) for k, v in self.node_status.items()}
        self.dirty |= {CONTROLS, REVIEW, STATUS, CURVES}

    # -- usage and cost ------------------------------------------------------------------------
    def _record_usage(self, step: int, usage: dict | None, final: bool = False) -> None:
        if not usage:
            return
        self.usage = usage
        totals = self.usage_totals()
        point = {"step": step, "calls": totals["calls"], "tokens": totals["tokens"], "cost": totals["cost"]}
        if self.usage_points and self.usage_points[-1]["step"] == step:
            self.usage_points[-1] = point
        elif not final or not self.usage_points or self.usage_points[-1] != point:
            self.usage_points.append(point)

    def set_live_usage(self, usage: dict | None) -> None:
        """The trainer's usage right now (events carry it only at the end of a step)."""
        if usage and usage != self.usage:
            self.usage = usage
            self.dirty.add(CURVES)

    def usage_totals(self) -> dict:
        calls = tokens = 0
        cost = 0.0 if self.prices else None
        by_role = {}
        for role, u in (self.usage or {}).items():
            if not isinstance(u, dict):
                continue
            c = int(u.get("calls", 0) or 0)
            pt, ct = int(u.get("prompt_tokens", 0) or 0), int(u.get("completion_tokens", 0) or 0)
            calls += c
            tokens += pt + ct
            role_cost = None
            if role in self.prices:
                pin, pout = self.prices[role]
                role_cost = (pt * pin + ct * pout) / 1e6
                cost = (cost or 0.0) + role_cost
            by_role[role] = {"calls": c, "prompt_tokens": pt, "completion_tokens": ct,
                             "cache_hits": int(u.get("cache_hits", 0) or 0), "cost": role_cost}
        return {"calls": calls, "tokens": tokens, "cost": cost, "by_role": by_role}

    # -- snapshots (what the traits carry) --------------------------------------------------------
    def layout(self) -> dict:
        return {"nodes": list(self.layout_nodes.values()), "edges": list(self.layout_edges.values())}

    def rows_snapshot(self) -> list[dict]:
        out = []
        for sid, row in self.rows.items():
            out.append(dict(row, pinned=sid in self.pinned, excluded=sid in self.excluded))
        return out

    def panel(self) -> dict:
        """The side panel of the graph view for the selected node and sample."""
        node_id = self.selected_node
        if not node_id:
            return {}
        info = self.layout_nodes.get(node_id, {"id": node_id, "component": node_id, "kind": "", "parameters": []})
        component = info.get("component", node_id)
        sid = self.selected_sample
        graph = self.graphs.get(sid) if sid else None
        params = []
        for name in info.get("parameters") or []:
            p = self.parameters.get(name, {"name": name, "value": "", "role": "", "trainable": True})
            params.append({"name": name, "role": p.get("role", ""), "value": clip(p.get("value")),
                           "trainable": p.get("trainable", True)})
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
                               "score": g.get("score"), "text": g.get("text", "")} for g in grads],
            })
        note = ""
        if not sid:
            note = "No sample selected yet."
        elif graph is None:
            note = f"No recorded graph for sample {sid} in this step yet."
        elif self.gradients and not any(g.get("sample_id") == sid for g in self.gradients):
            note = f"Sample {sid} was not sent to backward in this step: the gradients shown are other samples'."
        return {"node_id": node_id, "component": component, "kind": info.get("kind", ""), "sample_id": sid,
                "parameters": params, "calls": calls, "note": note, "multi_call": len(calls) > 1}

    def pending(self) -> dict:
        if not self.pending_id or self.pending_id not in self.proposals:
            return {}
        p = self.proposals[self.pending_id]
        return dict(p, diff=word_diff(p.get("old", ""), p.get("new", "")), awaiting=True)

    def history(self) -> list[dict]:
        out = []
        for i, p in enumerate(reversed(self.proposals.values())):
            if p["proposal_id"] == self.pending_id:
                continue
            item = {k: v for k, v in p.items() if k not in ("old", "new", "value", "edited_diff")}
            item["gradient_summary"] = clip(p.get("gradient_summary"), 1500)
            if i < DIFF_IN_HISTORY:
                item["diff"] = word_diff(p.get("old", ""), p.get("new", ""))
                if p.get("edited_diff"):
                    item["edited_diff"] = p["edited_diff"]
            out.append(item)
        return out

    def parameters_snapshot(self) -> list[dict]:
        return [{"name": p["name"], "role": p.get("role", ""), "value": clip(p.get("value")),
                 "trainable": p.get("trainable", True)} for p in self.parameters.values()]

    def curves(self) -> tuple[list[dict], list[dict], list[dict], dict]:
        points = sorted(self.points.values(), key=lambda p: p["step"])
        return points, list(self.marks), list(self.usage_points), self.usage_totals()
