"""Compare runs, typically the branches of one tree: their curves on one chart, their final prompts
as word diffs against each other.

    fam = workbench.compare("runs/shout-...")            # one run: its whole family
    fam = workbench.compare([run_a, "runs/b", trainer])  # or any runs
    fam.curves; fam.figure().show(); fam.prompts; fam.diffs

A branch's curve starts at its parent's baseline: its checkpoints carry the curve it inherited,
so each line shows the whole path that led to it, and lines part where the branches part.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from ..errors import DamagedFileWarning
from .charts import INK, _axis, _base_layout, _figure, esc
from .diff import word_diff
from .family import Member, branch_record, family_of
from .frames import TextFrame
from .store import RunStore

# one colour per run, in family order (the first run, usually the root, in the page's ink)
PALETTE = [INK, "#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0d9488", "#ca8a04", "#db2777"]
CURVE_COLUMNS = ["run_id", "step", "minibatch", "best_val", "accepted", "rejected", "inherited"]
RUN_COLUMNS = ["run_id", "parent", "branch_step", "depth", "decision", "changed", "steps", "best_val", "path"]
DIFF_COLUMNS = ["run_id", "against", "parameter", "same", "diff"]


class Comparison:
    """Several runs side by side (see the module docstring)."""

    def __init__(self, members: list[Member]) -> None:
        self.members = members

    @property
    def run_ids(self) -> list[str]:
        return [m.run_id for m in self.members]

    def __repr__(self) -> str:
        return f"Comparison({', '.join(self.run_ids)})"

    def _state(self, member: Member) -> dict:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DamagedFileWarning)  # a damaged checkpoint: the one before it
            return RunStore(member.path).latest_checkpoint() or {}

    @property
    def runs(self) -> pd.DataFrame:
        """One row per run: its parent and the step it branched after, the decision and settings it
        changed, how far it got and its best validation score."""
        rows = []
        for m in self.members:
            record, state = branch_record(m.path) or {}, self._state(m)
            decision = record.get("decision") or {}
            rows.append({"run_id": m.run_id, "parent": m.parent, "branch_step": m.step, "depth": m.depth,
                         "decision": f"{decision.get('action')} {decision.get('proposal_id')}" if decision else None,
                         "changed": _changed_text(record.get("changed") or {}), "steps": state.get("step"),
                         "best_val": state.get("best_val"), "path": str(m.path)})
        return TextFrame(rows, columns=RUN_COLUMNS)

    @property
    def curves(self) -> pd.DataFrame:
        """Per run and step: minibatch score, best validation so far, how many proposals were kept and
        rejected, and whether the point was inherited from the parent (at or before the branch step)."""
        rows = []
        for m in self.members:
            for point in self._state(m).get("curve") or []:
                rows.append({"run_id": m.run_id, "step": point.get("step"), "minibatch": point.get("train"),
                             "best_val": point.get("val"), "accepted": len(point.get("accepted") or []),
                             "rejected": len(point.get("rejected") or []),
                             "inherited": m.step is not None and point.get("step", 0) <= m.step})
        return TextFrame(rows, columns=CURVE_COLUMNS)

    @property
    def prompts(self) -> pd.DataFrame:
        """The final value of every parameter (rows) in every run (columns)."""
        values = {m.run_id: self._values(m) for m in self.members}
        names = list(dict.fromkeys(n for v in values.values() for n in v))
        return TextFrame({run: [v.get(n) for n in names] for run, v in values.items()},
                         index=pd.Index(names, name="parameter"))

    def _values(self, member: Member) -> dict[str, str]:
        return {n: p.get("value", "") for n, p in (self._state(member).get("parameters") or {}).items()}

    @property
    def diffs(self) -> pd.DataFrame:
        """Each run's final prompts against its parent's (the first run's, for runs of no family):
        `diff` is `[[op, text], ...]` with op `=`, `-` or `+` (records/diff.py)."""
        by_id = {m.run_id: m for m in self.members}
        rows = []
        for m in self.members[1:] if self.members else []:
            against = by_id.get(m.parent or "") or self.members[0]
            old, new = self._values(against), self._values(m)
            for name in dict.fromkeys([*old, *new]):
                rows.append({"run_id": m.run_id, "against": against.run_id, "parameter": name,
                             "same": old.get(name) == new.get(name), "diff": word_diff(old.get(name), new.get(name))})
        return TextFrame(rows, columns=DIFF_COLUMNS)

    def spec(self) -> dict:
        """The runs' best-validation curves on one chart, as plotly JSON; a branch's line starts where it
        left its parent (its inherited part is drawn thin), and each line's hover names its run."""
        traces = []
        curves = self.curves
        for i, m in enumerate(self.members):
            colour = PALETTE[i % len(PALETTE)]
            own = curves[curves.run_id == m.run_id].sort_values("step")
            start = m.step if m.step is not None else 0
            shown = own[own.step >= start]
            traces.append({"type": "scatter", "mode": "lines+markers", "name": esc(m.run_id, 80),
                           "x": [int(s) for s in shown.step], "y": [_num(v) for v in shown.best_val],
                           "line": {"color": colour, "width": 2, "shape": "hv"}, "marker": {"size": 6, "color": colour},
                           "customdata": [esc(m.run_id, 80)] * len(shown), "legendgroup": m.run_id,
                           "hovertemplate": "%{customdata} · step %{x}<br>best validation %{y:.3f}<extra></extra>"})
            mb = own[own.step >= max(start, 1)]
            traces.append({"type": "scatter", "mode": "lines", "name": esc(f"{m.run_id} minibatch", 90),
                           "x": [int(s) for s in mb.step], "y": [_num(v) for v in mb.minibatch],
                           "line": {"color": colour, "width": 1, "dash": "dot"}, "legendgroup": m.run_id,
                           "showlegend": False, "customdata": [esc(m.run_id, 80)] * len(mb),
                           "hovertemplate": "%{customdata} · step %{x}<br>minibatch %{y:.3f}<extra></extra>"})
        layout = _base_layout(340)
        steps = [int(s) for s in curves.step] if len(curves) else [0]
        layout.update({"xaxis": _axis("step", **({"dtick": 1} if max(steps) <= 20 else {})),
                       "yaxis": _axis("best validation score (dotted: minibatch)", range=[-0.03, 1.03])})
        return {"data": traces, "layout": layout}

    def figure(self) -> Any:
        """The chart of `spec()` as a plotly `go.Figure`."""
        return _figure(self.spec())


def _num(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _changed_text(changed: dict) -> str:
    parts = []
    for key, value in changed.items():
        if key == "models" and isinstance(value, dict):
            parts += [f"{role} model {old} → {new}" for role, (old, new) in value.items()]
        elif isinstance(value, list) and len(value) == 2:
            parts.append(f"{key} {value[0]} → {value[1]}")
    return "; ".join(parts)


def compare(runs: Any) -> Comparison:
    """A run (folder, Run, Trainer): its whole family. Several: those runs, in the order given."""
    if isinstance(runs, (str, os.PathLike)) or hasattr(runs, "path") or hasattr(runs, "store"):
        return Comparison(family_of(_folder(runs)))
    folders = [_folder(r) for r in _as_list(runs)]
    members = []
    for folder in folders:
        record = branch_record(folder) or {}
        members.append(Member(folder.resolve(), record.get("parent"), record.get("step")))
    return Comparison(members)


def _as_list(runs: Any) -> list:
    return list(runs) if isinstance(runs, Iterable) else [runs]


def _folder(run: Any) -> Path:
    store = getattr(run, "store", None)
    if isinstance(store, RunStore):
        return Path(store.path)
    path = getattr(run, "path", run)
    return Path(path.path if isinstance(path, RunStore) else path)
