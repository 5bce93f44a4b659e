"""What a run learned, read back from its events: each kept change as a diff, with its evidence.

For every kept proposal: the parameter's value before and after (a line diff, so added demos read
as added lines), the validation score before and after, and the validation samples that flipped
(wrong -> right, right -> wrong) with their answers before and after, and why the ones it fixed
had failed (no readable answer, or a wrong one). Then the test set: baseline against final, and
which test samples flipped. Every line is computed from `events.jsonl`, so it says what happened.
"""
from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, TextIO

from ..records.progress import fmt_score
from .last_screen import _clip, _print

FLIPS_SHOWN = 6  # flipped samples listed per kept change (the count is always given)
_EXAMPLE_HEADER = re.compile(r"^\s*example\s+\d+\s*:\s*$", re.IGNORECASE)
_ANSWER = re.compile(r"\banswer\s*:\s*(.+)$", re.IGNORECASE)


@dataclass
class Change:
    """A kept proposal and the validation samples it changed."""

    proposal_id: str
    step: int
    parameter: str
    role: str
    old: str
    new: str
    best_before: float | None = None
    score: float | None = None
    before: dict[str, dict] = field(default_factory=dict)  # sample id -> summary with the values it replaced
    after: dict[str, dict] = field(default_factory=dict)   # sample id -> summary with the kept values


def _passed(summary: dict | None) -> bool:
    """Scored as passing (a sample never run before counts as not passing)."""
    return bool(summary) and summary.get("status") == "ok"


def kept_changes(events: Iterable[Any]) -> tuple[list[Change], dict[str, dict], dict[str, dict]]:
    """(kept changes with their validation samples, test samples at baseline, test samples at the end)."""
    current_val: dict[str, dict] = {}       # the validation results of the values in force
    candidates: dict[str, Change] = {}
    validating: Change | None = None        # the candidate whose validation samples are arriving
    test_before: dict[str, dict] = {}
    test_after: dict[str, dict] = {}
    kept: list[Change] = []
    for event in events:
        d, kind = event.data, event.type
        if kind == "proposal":
            change = candidates.setdefault(d["proposal_id"], Change(d["proposal_id"], event.step, "", "", "", ""))
            change.parameter = "+".join(filter(None, (change.parameter, d.get("parameter"))))
            change.old, change.new, change.role = d.get("old") or "", d.get("new") or "", d.get("role") or ""
            validating = change
        elif kind == "forward" and d.get("split") == "val":
            summary = d.get("summary") or {}
            if d.get("phase") == "proposal" and validating is not None:
                validating.after[summary.get("sample_id")] = summary
            elif d.get("phase") == "baseline":
                current_val[summary.get("sample_id")] = summary
        elif kind == "forward" and d.get("split") == "test":
            summary = d.get("summary") or {}
            (test_before if d.get("phase") == "baseline" else test_after)[summary.get("sample_id")] = summary
        elif kind == "validation" and d.get("proposal_id") in candidates:
            change = candidates[d["proposal_id"]]
            change.best_before, change.score = d.get("best"), d.get("score")
            validating = None
        elif kind == "update" and d.get("accepted") and d.get("proposal_id") in candidates:
            change = candidates[d["proposal_id"]]
            change.before = {sid: current_val.get(sid, {}) for sid in change.after}
            current_val.update(change.after)
            kept.append(change)
    return kept, test_before, test_after


def _diff(old: str, new: str) -> list[str]:
    """Changed lines only: `-` removed, `+` added (blank lines left out)."""
    lines = []
    for line in difflib.ndiff(old.splitlines(), new.splitlines()):
        if line[:2] in ("- ", "+ ") and line[2:].strip():
            lines.append(f"{line[0]} {_clip(line[2:], 110)}")
    return lines or ["(whitespace only)"]


def _examples(demos: str) -> list[str]:
    """The examples of a demos value (blocks as the demo optimizer writes them), each on one line."""
    blocks = [[ln.strip() for ln in b.splitlines() if ln.strip() and not _EXAMPLE_HEADER.match(ln)]
              for b in re.split(r"\n\s*\n", demos.strip())]
    return [" ".join(b) for b in blocks if b]


def _demos_diff(old: str, new: str) -> list[str]:
    """The examples now, in order (`+` marks an added one; a base model is swayed by order, the last
    ones most), the ones removed (`-`), and the answers the examples show, in order."""
    before, after = _examples(old), _examples(new)
    lines = [f"{'+' if e not in before else ' '} {i}. {_clip(e, 106)}" for i, e in enumerate(after, 1)]
    lines += [f"- {_clip(e, 110)}" for e in before if e not in after]
    def answers(examples: list[str]) -> str:
        return ", ".join(m.group(1) for e in examples for m in [_ANSWER.search(e)] if m) or "none"
    lines.append(f"answers shown, in order: {answers(before)} -> {answers(after)}")
    return lines


def _readable(summary: dict | None) -> bool:
    return bool(summary) and not summary.get("error") and summary.get("prediction") not in (None, "")


def _answer(summary: dict) -> str:
    said = repr(_clip(summary.get("prediction") or "", 40))
    return said if _readable(summary) else f"{said} (unreadable)"


def _flips(before: dict[str, dict], after: dict[str, dict]) -> tuple[list[str], list[str]]:
    fixed = [sid for sid in after if _passed(after[sid]) and not _passed(before.get(sid))]
    broken = [sid for sid in after if _passed(before.get(sid)) and not _passed(after[sid])]
    return fixed, broken


def _flip_lines(fixed: list[str], broken: list[str], before: dict[str, dict], after: dict[str, dict],
                n: int) -> list[str]:
    lines = [f"{len(fixed)} of {n} went from wrong to right, {len(broken)} from right to wrong"]
    for sid in (fixed + broken)[:FLIPS_SHOWN]:
        b, a = before.get(sid) or {}, after[sid]
        text = " ".join(str(v) for v in (a.get("inputs") or {}).values())
        lines.append(f"  {sid}  {_clip(text, 60)!r}  expected {a.get('target')!r}: "
                     f"{_answer(b)} -> {_answer(a)}")
    if len(fixed) + len(broken) > FLIPS_SHOWN:
        lines.append(f"  ... and {len(fixed) + len(broken) - FLIPS_SHOWN} more (the run's events hold them all)")
    if fixed:
        unreadable = sum(not _readable(before.get(sid)) for sid in fixed)
        expected = ", ".join(f"{n} {t}" for t, n in Counter(str(after[sid].get("target")) for sid in fixed).most_common())
        lines.append(f"  the {len(fixed)} fixed (expected: {expected}) had before: {unreadable} no readable answer, "
                     f"{len(fixed) - unreadable} a wrong one")
    return lines


def learned_lines(events: Iterable[Any]) -> list[str]:
    kept, test_before, test_after = kept_changes(events)
    lines = ["", "what was learned"]
    if not kept:
        lines.append("  nothing: no change was kept, so the prompts and the scores are the baseline's")
    for change in kept:
        lines.append(f"  step {change.step}  {change.proposal_id}  {change.parameter}: validation "
                     f"{fmt_score(change.best_before)} -> {fmt_score(change.score)}")
        diff = _demos_diff if change.role == "demos" else _diff
        lines += [f"    {line}" for line in diff(change.old, change.new)]
        fixed, broken = _flips(change.before, change.after)
        lines += [f"    {line}" for line in _flip_lines(fixed, broken, change.before, change.after, len(change.after))]
    if test_before and test_after:
        mean = lambda results: sum(r.get("score") or 0.0 for r in results.values()) / len(results)  # noqa: E731
        fixed, broken = _flips(test_before, test_after)
        lines.append(f"  test (never seen in training): {fmt_score(mean(test_before))} -> {fmt_score(mean(test_after))}; "
                     + _flip_lines(fixed, broken, test_before, test_after, len(test_after))[0])
    return lines


def print_learned(store, out: TextIO | None = None) -> None:
    """The kept changes with their evidence, and the test before and after."""
    _print(learned_lines(store.events()), out)
