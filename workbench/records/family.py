"""Runs as a tree: which run a branch came from, and the family a run belongs to.

A branch's config.json holds a `branch` record: its parent's run id and folder, the step it
started after, the decision it changed on a proposal of the next step (if any) and the settings
it changed. Nothing is written to the parent: a family is found by reading the folders of the
runs root (the parent's folder and the branch's), so a parent folder stays byte-identical.

The family's evaluation memos are read by each member (`family_memo_files`), so a branch never
pays for an evaluation any run of its tree already paid for.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .eval_memo import MEMO_FILE
from .run_list import run_folders
from .store import read_events

BRANCH_KEY = "branch"  # the key of the branch record in config.json


@dataclass(frozen=True)
class Member:
    """One run of a family: its folder, and for a branch its parent's run id and the step it started after."""

    path: Path
    parent: str | None = None
    step: int | None = None
    depth: int = 0

    @property
    def run_id(self) -> str:
        return self.path.name


def read_config(folder: str | os.PathLike) -> dict:
    """config.json as a dict, or {} when it is missing or damaged (`workbench runs` reports that)."""
    try:
        data = json.loads((Path(folder) / "config.json").read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def branch_record(folder: str | os.PathLike) -> dict | None:
    """The branch record of a run folder, or None for a run started from scratch."""
    record = read_config(folder).get(BRANCH_KEY)
    return record if isinstance(record, dict) and isinstance(record.get("parent"), str) else None


def parent_folder(folder: str | os.PathLike) -> Path | None:
    """The folder of a branch's parent: where it was when branched, else a sibling of the same run id."""
    record = branch_record(folder)
    if record is None:
        return None
    recorded = Path(str(record.get("parent_path") or ""))
    if record.get("parent_path") and (recorded / "config.json").is_file():
        return recorded
    sibling = Path(folder).parent / record["parent"]
    return sibling if (sibling / "config.json").is_file() else None


def root_of(folder: str | os.PathLike) -> Path:
    """The run a family started from (a missing or cyclic parent ends the walk)."""
    here, seen = Path(folder).resolve(), set()
    while here not in seen:
        seen.add(here)
        parent = parent_folder(here)
        if parent is None:
            return here
        here = parent.resolve()
    return here


def family_of(folder: str | os.PathLike) -> list[Member]:
    """Every run of `folder`'s tree, parents before their branches (depth first, oldest branch first).

    Branches are looked for in the runs roots of the family's folders (where `branch()` puts them)."""
    root = root_of(folder)
    roots = {root.parent, Path(folder).resolve().parent}
    children: dict[Path, list[tuple[Path, int | None]]] = {}
    for runs_root in roots:
        for candidate in run_folders(runs_root):
            parent = parent_folder(candidate)
            if parent is not None:
                step = (branch_record(candidate) or {}).get("step")
                children.setdefault(parent.resolve(), []).append((candidate.resolve(), step))
    members: list[Member] = []
    seen: set[Path] = set()

    def visit(path: Path, parent: str | None, step: int | None, depth: int) -> None:
        if path in seen:
            return
        seen.add(path)
        members.append(Member(path, parent, step, depth))
        kids = sorted(set(children.get(path, [])), key=lambda c: (_created(c[0]), c[0].name))
        for child, child_step in kids:
            visit(child, path.name, child_step if isinstance(child_step, int) else None, depth + 1)

    visit(root, None, None, 0)
    return members


def _created(folder: Path) -> float:
    try:
        return (folder / "config.json").stat().st_mtime
    except OSError:
        return 0.0


def family_memo_files(folder: str | os.PathLike) -> list[Path]:
    """The evaluation memos of the other runs of `folder`'s family (read, never written, by this run)."""
    here = Path(folder).resolve()
    if branch_record(here) is None and not any(branch_record(c) for c in run_folders(here.parent)
                                               if c.resolve() != here):
        return []  # a run with no family: nothing to read (the common case, decided without a tree walk)
    return [m.path / MEMO_FILE for m in family_of(here) if m.path != here and (m.path / MEMO_FILE).is_file()]


def proposals_of_step(folder: str | os.PathLike, step: int) -> dict[str, dict]:
    """The proposals of one step of a run: id -> parameters, proposed values, whether kept, and why."""
    found: dict[str, dict] = {}
    for event in read_events(Path(folder) / "events.jsonl"):
        if event.step != step:
            continue
        if event.type == "run_started":
            found = {pid: p for pid, p in found.items() if p.get("kept") is not None}  # a replayed step
        pid = event.data.get("proposal_id")
        if not isinstance(pid, str) or not pid.startswith("p"):
            continue
        row = found.setdefault(pid, {"parameters": [], "new": {}, "kept": None, "reason": ""})
        if event.type == "proposal":
            row["new"][event.data.get("parameter")] = event.data.get("new")
            if event.data.get("parameter") not in row["parameters"]:
                row["parameters"].append(event.data.get("parameter"))
        elif event.type == "update":
            row["kept"] = bool(event.data.get("accepted"))
            row["reason"] = str(event.data.get("reason") or "")
    return found


def in_tree_order(rows: list[dict]) -> list[tuple[int, dict]]:
    """(depth, row) for rows of `list_runs`: each run followed by its branches (indented by depth),
    roots in the rows' order (newest first), branches oldest first. A branch whose parent is not
    among the rows is a root here."""
    by_path = {str(Path(r["path"]).resolve()): r for r in rows}
    parent_of: dict[str, str] = {}
    for key in by_path:
        parent = parent_folder(key)
        if parent is not None and str(parent.resolve()) in by_path and str(parent.resolve()) != key:
            parent_of[key] = str(parent.resolve())
    children: dict[str, list[str]] = {}
    for key in by_path:
        if key in parent_of:
            children.setdefault(parent_of[key], []).append(key)
    ordered: list[tuple[int, dict]] = []
    seen: set[str] = set()

    def visit(key: str, depth: int) -> None:
        if key in seen:
            return
        seen.add(key)
        ordered.append((depth, by_path[key]))
        for child in sorted(children.get(key, []), key=lambda k: by_path[k].get("created") or 0):
            visit(child, depth + 1)

    for key in by_path:
        if key not in parent_of:
            visit(key, 0)
    for key in by_path:  # a cycle of parents (hand-edited configs) still lists every run
        visit(key, 0)
    return ordered
