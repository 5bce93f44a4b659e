"""A run's curves as plotly figures, built from its events (live, or read back from events.jsonl).

    data = CurveData.from_events(events)           # Event objects or their dicts, in order
    score_figure(data).show()                      # plotly go.Figure
    cost_figure(data, prices={"task": (0.15, 0.6)})

`CurveData` is the chart's share of the run's fold: `records.fold.RunFold` applies each event to it
(`RunFold.curves`), live for the dashboard's curves view, from the stored log for a report; it also
folds a plain list of events on its own (`from_events`). `score_spec` / `cost_spec` give the same
figures as plain JSON (what the widget sends to the browser, where plotly.js draws them).

What is drawn, and why:
- the minibatch score of each step, and the best validation score so far (a step line: it only moves
  when a candidate is kept), starting at the baseline;
- each validated candidate as its own point at its own validation score (kept or not kept);
- every proposal in a strip under the chart, one marker per proposal, with its decision and reason in
  the hover text. A proposal that was never validated has no validation score, so it is never drawn
  at a score (not on the best line, not at 0).
- the held-out test score before training (step 0) and after it (the last step), as two labelled
  diamonds, when the run evaluated a test split;
- cost (or tokens, without prices) per step per role, as stacked bars.

Text from models and users is escaped for plotly's pseudo-HTML, so it shows as typed: hover text and
every label plotly draws (trace and legend names such as a model role's, titles, annotations). Plotly
cannot isolate bidirectional text, so invisible controls are spelled out (`⟨U+202E⟩`, workbench.plain_text).
"""
from __future__ import annotations

import html
from collections import OrderedDict
from typing import Any, Iterable

from ..optim.paired_bootstrap import gain_text
from ..plain_text import show_controls
from . import usage_totals

# how each proposal outcome is drawn in the proposals strip: (label, marker symbol, colour)
OUTCOMES = OrderedDict([
    ("kept", ("kept", "triangle-up", "#16a34a")),
    ("not kept", ("validated, not kept", "x", "#dc2626")),
    ("rejected", ("rejected by a person", "square", "#9333ea")),
    ("failed minibatch", ("failed the minibatch check", "diamond", "#f59e0b")),
    ("refused", ("refused before any check", "circle-open", "#6b7280")),
    ("open", ("not decided yet", "circle", "#2563eb")),
])
ROLE_COLOURS = {"task": "#2563eb", "backward": "#7c3aed", "optimizer": "#ea580c", "teacher": "#0d9488"}
INK = "#111827"  # on a light page; the dashboard (widgets/curves.js) draws it in the theme's text colour
FONT = {"family": "system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif", "size": 12}


def esc(text: Any, limit: int = 300) -> str:
    """Text for anything plotly draws (hover, names, titles): clipped, invisible controls spelled out,
    escaped (plotly reads `<b>`, `<a href>`, `<br>`, `&lt;` ...)."""
    text = show_controls(text)
    if len(text) > limit:
        text = text[:limit] + "…"
    return html.escape(text, quote=False).replace("\n", "<br>")


def _fmt(x: Any) -> str:
    return "–" if x is None else f"{float(x):.3f}"


class CurveData:
    """Per step: minibatch score and best validation so far; per proposal: outcome and scores; usage."""

    def __init__(self) -> None:
        self.version = 0  # counts the changes a chart shows, so a view redraws only when it grows
        self._clear()

    def _clear(self) -> None:
        self.steps: "OrderedDict[int, dict]" = OrderedDict()   # step -> {step, minibatch, best}
        self.baseline: dict = {}                                # {val, test}
        self.final: dict = {}
        self.proposals: "OrderedDict[str, dict]" = OrderedDict()
        self.usage: "OrderedDict[int | str, dict]" = OrderedDict()  # step (or "end") -> cumulative {role: {...}}

    @classmethod
    def from_events(cls, events: Iterable[Any]) -> "CurveData":
        data = cls()
        for e in events:
            data.apply(e)
        return data

    # -- folding ---------------------------------------------------------------------------------
    def apply(self, event: Any) -> bool:
        """Fold one event (an `Event` or its dict). True when the curves changed."""
        if isinstance(event, dict):
            etype, step, d = event.get("type", ""), int(event.get("step", 0) or 0), event.get("data") or {}
        else:
            etype, step, d = event.type, event.step, event.data or {}
        handler = getattr(self, "_on_" + etype, None)
        changed = bool(handler(step, d)) if handler else False
        self.version += changed
        return changed

    def _on_run_started(self, step: int, d: dict) -> bool:
        resumed = d.get("resumed_from")
        if not resumed:  # a resumed run keeps the curves it already has
            self._clear()
        return True

    def _on_eval(self, step: int, d: dict) -> bool:
        phase, split, score = d.get("phase"), d.get("split"), d.get("score")
        if score is None or split not in ("val", "test"):
            return False
        if phase == "baseline":
            self.baseline[split] = score
            if split == "val":
                point = self._point(0)
                point["best"] = score
            return True
        if phase == "final":
            self.final[split] = score
            return True
        return False

    def _point(self, step: int) -> dict:
        point = self.steps.get(step)
        if point is None:
            point = self.steps[step] = {"step": step, "minibatch": None, "best": None}
            self.steps = OrderedDict(sorted(self.steps.items()))
        return point

    def _proposal(self, step: int, pid: str) -> dict:
        p = self.proposals.get(pid)
        if p is None:
            p = self.proposals[pid] = {"proposal_id": pid, "step": step, "parameter": "", "source": "",
                                       "outcome": "open", "validation": None, "complete": None, "gain": "",
                                       "minibatch_before": None, "minibatch_after": None, "decision": "",
                                       "by": "", "reason": "", "person_reason": ""}
        return p

    def _on_proposal(self, step: int, d: dict) -> bool:
        p = self._proposal(step, d.get("proposal_id", ""))
        name = d.get("parameter", "")
        if name and name not in p["parameter"].split("+"):  # a joint proposal names each parameter
            p["parameter"] = f"{p['parameter']}+{name}" if p["parameter"] else name
        p["source"] = p["source"] or d.get("source", "")
        return True

    def _on_minibatch(self, step: int, d: dict) -> bool:
        p = self._proposal(step, d.get("proposal_id", ""))
        p["minibatch_before"], p["minibatch_after"] = d.get("before"), d.get("after")
        return False

    def _on_decision(self, step: int, d: dict) -> bool:
        p = self._proposal(step, d.get("proposal_id", ""))
        p["decision"], p["by"] = d.get("action", ""), d.get("by", "")
        p["person_reason"] = d.get("reason") or ""  # the person's why, typed with the decision (issue 16)
        return False

    def _on_validation(self, step: int, d: dict) -> bool:
        p = self._proposal(step, d.get("proposal_id", ""))
        p["validation"], p["complete"] = d.get("score"), d.get("complete")
        p["gain"] = gain_text(d)
        return True

    def _on_update(self, step: int, d: dict) -> bool:
        p = self._proposal(step, d.get("proposal_id", ""))
        p["reason"] = d.get("reason", "") or ""
        if d.get("accepted"):
            p["outcome"] = "kept"
        elif p["validation"] is not None:
            p["outcome"] = "not kept"
        elif p["decision"] == "reject":
            p["outcome"] = "rejected"
        elif p["minibatch_after"] is not None:
            p["outcome"] = "failed minibatch"
        else:
            p["outcome"] = "refused"
        return True

    def _on_step_finished(self, step: int, d: dict) -> bool:
        point = self._point(step)
        point["minibatch"], point["best"] = d.get("train_score"), d.get("best_val")
        if d.get("usage"):
            self.usage[step] = d["usage"]
        return True

    def _on_run_finished(self, step: int, d: dict) -> bool:
        # the final evaluation's calls come after the last step: their own bar, labelled "end"
        if d.get("usage") and (not self.usage or list(self.usage.values())[-1] != d["usage"]):
            self.usage["end"] = d["usage"]
        for split in ("val", "test"):
            if (d.get("final") or {}).get(split) is not None:
                self.final[split] = d["final"][split]
            if self.baseline.get(split) is None and (d.get("baseline") or {}).get(split) is not None:
                self.baseline[split] = d["baseline"][split]  # a log that starts after the baseline's events
        return True

    # -- derived ---------------------------------------------------------------------------------
    def best_line(self) -> list[dict]:
        return [p for p in self.steps.values() if p["best"] is not None]

    def usage_per_step(self, prices: dict[str, tuple[float, float]] | None = None) -> list[dict]:
        """Per step and role: calls, tokens and (with prices, USD per 1M prompt / completion tokens) cost.

        Step usage is the difference of the cumulative counters at the ends of two steps."""
        out, before = [], {}
        for step, usage in self.usage.items():
            for role, u in usage_totals.role_usages(usage):
                spent = usage_totals.delta(u, before.get(role, {}))
                cost = None
                if prices and role in prices:
                    cost = usage_totals.cost_usd(spent["prompt_tokens"], spent["completion_tokens"], prices[role])
                out.append({"step": step, "role": role, "calls": spent["calls"], "tokens": usage_totals.tokens(spent),
                            "cost": cost})
            before = usage
        return out


# -- figures as plain JSON (the widget) and as plotly Figures (notebooks, reports) ------------------

def _axis(title: str, **extra: Any) -> dict:
    return dict({"title": {"text": title, "font": {"size": 12}}, "tickfont": {"size": 12}, "automargin": True,
                 "gridcolor": "rgba(128,128,128,0.2)", "zeroline": False}, **extra)


def _base_layout(height: int) -> dict:
    return {"height": height, "autosize": True, "font": FONT, "margin": {"l": 48, "r": 12, "t": 28, "b": 40},
            "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)", "hovermode": "closest",
            "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0, "font": {"size": 12}},
            "hoverlabel": {"font": {"size": 12}, "align": "left"}}


def _proposal_hover(p: dict) -> str:
    label = OUTCOMES.get(p["outcome"], (p["outcome"],))[0]
    bits = [f"<b>{esc(p['proposal_id'])}</b> · step {p['step']}", f"parameter: {esc(p['parameter'])}",
            f"decision: {esc(label)}" + (f" ({esc(p['decision'])} by {esc(p['by'])})" if p["decision"] else "")]
    if p["validation"] is not None:
        bits.append(f"validation: {_fmt(p['validation'])}" + ("" if p["complete"] is not False else
                                                              " (stopped early)"))
    else:
        bits.append("validation: not validated")
    if p.get("gain"):
        bits.append("gain: " + esc(p["gain"]))
    if p["minibatch_after"] is not None:
        bits.append(f"minibatch: {_fmt(p['minibatch_before'])} → {_fmt(p['minibatch_after'])}")
    if p["reason"]:
        bits.append("reason: " + esc(p["reason"], 200))
    if p.get("person_reason"):
        bits.append("the person's reason: " + esc(p["person_reason"], 200))
    return "<br>".join(bits)


def held_out_points(data: CurveData) -> list[dict]:
    """The held-out test score before training (at step 0) and after it (at the last step), when
    the run evaluated the test split: the number a reader compares, drawn where the curve starts and ends."""
    points = []
    if data.baseline.get("test") is not None:
        points.append({"step": 0, "score": data.baseline["test"], "label": "before training (baseline)"})
    if data.final.get("test") is not None:
        last = max([p["step"] for p in data.steps.values()] + [p["step"] for p in data.proposals.values()] + [0])
        points.append({"step": last, "score": data.final["test"], "label": f"after training (final, step {last})"})
    return points


def strip_positions(data: CurveData) -> dict[str, float]:
    """Where each proposal's marker goes in the strip: a step's proposals side by side around the
    step, in the order they came (five attempts at one step drew as one marker, so none could be counted)."""
    by_step: dict[int, list[str]] = {}
    for p in data.proposals.values():
        by_step.setdefault(p["step"], []).append(p["proposal_id"])
    x = {}
    for step, ids in by_step.items():
        gap = min(0.12, 0.7 / len(ids))
        for i, pid in enumerate(ids):
            x[pid] = step + (i - (len(ids) - 1) / 2) * gap
    return x


def score_spec(data: CurveData) -> dict:
    """The score chart as plotly JSON: `{"data": [...], "layout": {...}}`."""
    traces: list[dict] = []
    mb = [p for p in data.steps.values() if p["minibatch"] is not None]
    traces.append({"type": "scatter", "mode": "lines+markers", "name": "minibatch score",
                   "x": [p["step"] for p in mb], "y": [p["minibatch"] for p in mb],
                   "line": {"color": "#60a5fa", "width": 1.5}, "marker": {"size": 5},
                   "hovertemplate": "step %{x}<br>minibatch score %{y:.3f}<extra></extra>"})
    best = data.best_line()
    traces.append({"type": "scatter", "mode": "lines+markers", "name": "best validation so far",
                   "x": [p["step"] for p in best], "y": [p["best"] for p in best],  # a marker per step: the
                   "line": {"color": INK, "width": 2, "shape": "hv"}, "marker": {"color": INK, "size": 5},  # baseline
                   # alone (before step 1 ends) is one point, which a line without markers never draws
                   "hovertemplate": "step %{x}<br>best validation %{y:.3f}<extra></extra>"})
    for outcome, name, colour, symbol in (("kept", "candidate kept", "#16a34a", "circle"),
                                          ("not kept", "candidate not kept", "#dc2626", "circle-open"),
                                          ("open", "candidate, not decided yet", "#2563eb", "circle-open")):
        cands = [p for p in data.proposals.values() if p["validation"] is not None and p["outcome"] == outcome]
        if not cands and outcome == "open":
            continue
        traces.append({"type": "scatter", "mode": "markers", "name": name,
                       "x": [p["step"] for p in cands], "y": [p["validation"] for p in cands],
                       "text": [_proposal_hover(p) for p in cands], "hoverinfo": "text",
                       "marker": {"color": colour, "size": 9, "symbol": symbol, "line": {"width": 2, "color": colour}}})
    spread = strip_positions(data)
    for outcome, (label, symbol, colour) in OUTCOMES.items():
        ps = [p for p in data.proposals.values() if p["outcome"] == outcome]
        if not ps:
            continue
        traces.append({"type": "scatter", "mode": "markers", "name": "proposal " + label, "yaxis": "y2",
                       "x": [spread[p["proposal_id"]] for p in ps], "y": ["proposals"] * len(ps),
                       "text": [_proposal_hover(p) for p in ps], "hoverinfo": "text", "legendgroup": "proposals",
                       "marker": {"color": colour, "size": 10, "symbol": symbol, "line": {"width": 1.5, "color": colour}}})
    test = held_out_points(data)
    if test:  # labels inside the plot: above a low score, below a high one; right of step 0, left of the end
        places = [("top " if t["score"] < 0.5 else "bottom ") + ("right" if t["step"] == 0 else "left") for t in test]
        traces.append({"type": "scatter", "mode": "markers+text", "name": "test score (held out)",
                       "x": [t["step"] for t in test], "y": [t["score"] for t in test],
                       "text": [f"test {_fmt(t['score'])}" for t in test],
                       "textposition": places,
                       "textfont": {"size": 11, "color": "#be185d"},
                       "customdata": [t["label"] for t in test],
                       "hovertemplate": "%{customdata}<br>test score %{y:.3f}<extra></extra>",
                       "marker": {"color": "#be185d", "size": 10, "symbol": "diamond"}})
    steps = [p["step"] for p in data.steps.values()] + [p["step"] for p in data.proposals.values()]
    layout = _base_layout(340)
    layout.update({
        # autorange (not "tozero"), so a marker at step 0 is drawn whole; under the proposals strip
        "xaxis": _axis("step", anchor="y2",
                       **({"dtick": 1} if max(steps or [0]) <= 20 else {})),
        "yaxis": _axis("score", domain=[0.2, 1.0], range=[-0.03, 1.03]),  # scores are in [0, 1]
        "yaxis2": dict(_axis("", domain=[0.0, 0.12], showgrid=False, fixedrange=True), type="category"),
    })
    if not steps:
        layout["annotations"] = [{"text": "scores appear after the baseline evaluation", "showarrow": False,
                                  "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.6, "font": {"size": 13}}]
    return {"data": traces, "layout": layout}


def cost_spec(data: CurveData, prices: dict[str, tuple[float, float]] | None = None) -> dict:
    """Cost per step per role (stacked bars); tokens per step per role when no prices are given."""
    rows = data.usage_per_step(prices)
    priced = bool(prices) and all(r["cost"] is not None for r in rows)
    key, title = ("cost", "cost (USD, estimated)") if priced else ("tokens", "tokens")
    traces = []
    for role in dict.fromkeys(r["role"] for r in rows):
        rs = [r for r in rows if r["role"] == role]
        # a role is named by the user: its name is escaped text, and reaches the hover through customdata
        # (in the template itself "%{...}" in a name would be read as a placeholder)
        traces.append({"type": "bar", "name": esc(role, 80), "x": [str(r["step"]) for r in rs], "y": [r[key] for r in rs],
                       "marker": {"color": ROLE_COLOURS.get(role, "#6b7280")},
                       "customdata": [[r["calls"], r["tokens"], esc(role, 80)] for r in rs],
                       "hovertemplate": f"%{{customdata[2]}} · step %{{x}}<br>{key} %{{y:,}}<br>calls %{{customdata[0]}}"
                                        "<br>tokens %{customdata[1]:,}<extra></extra>"})
    layout = _base_layout(220)
    ended = "end" in data.usage
    layout.update({"barmode": "stack", "showlegend": True,
                   "xaxis": dict(_axis("step" + (" (end: the final evaluation)" if ended else "")), type="category"),
                   "yaxis": _axis(title + " per step", rangemode="tozero")})
    if not rows:
        layout["annotations"] = [{"text": "cost per step appears when the first step ends", "showarrow": False,
                                  "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5, "font": {"size": 13}}]
    return {"data": traces, "layout": layout}


def _figure(spec: dict) -> Any:
    import plotly.graph_objects as go
    return go.Figure(spec)


def score_figure(data: "CurveData | Iterable[Any]") -> Any:
    """plotly `go.Figure` of scores per step (see the module docstring)."""
    return _figure(score_spec(data if isinstance(data, CurveData) else CurveData.from_events(data)))


def cost_figure(data: "CurveData | Iterable[Any]", prices: dict[str, tuple[float, float]] | None = None) -> Any:
    """plotly `go.Figure` of cost (or tokens) per step per role."""
    return _figure(cost_spec(data if isinstance(data, CurveData) else CurveData.from_events(data), prices))
