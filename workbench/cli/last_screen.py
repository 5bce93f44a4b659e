"""What the CLI prints when a run ends, read back from the run folder so it is what was recorded.

`print_report` gives the numbers (scores, usage, status); `print_story` tells, proposal by proposal,
what the optimizer proposed, what each gate decided and why; `print_next` says where to look next.
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any, TextIO

from ..optim.paired_bootstrap import gain_text
from ..records.progress import fmt_score
from ..redact import redact

ROLES = ("task", "backward", "optimizer")
CLIP = 160  # characters of a proposed value shown in the story
NO_EXPORTS = "none (no checkpoint: the run ended before its baseline was recorded)"


def _print(lines: list[str], out: TextIO | None) -> None:
    print(redact("\n".join(lines)), file=out or sys.stdout, flush=True)


def print_report(store, data: str, exports: list[Path], seconds: float, out: TextIO | None = None) -> None:
    """The run's outcome, read back from summary.json so the numbers are the recorded ones."""
    summary = store.summary() or {}
    baseline, final = summary.get("baseline") or {}, summary.get("final") or {}
    usage = summary.get("usage") or {}
    lines = [
        f"data        {data}",
        f"validation  baseline {fmt_score(baseline.get('val'))}  final {fmt_score(final.get('val'))}"
        f"  (best at step {summary.get('best_step')})" + _baseline_subset(summary.get("baseline_errored") or {}, "val"),
        f"test        baseline {fmt_score(baseline.get('test'))}  final {fmt_score(final.get('test'))}"
        + _baseline_subset(summary.get("baseline_errored") or {}, "test"),
        f"usage       {'role':<10} {'calls':>7} {'prompt tokens':>14} {'completion tokens':>18} {'cache hits':>11}",
    ]
    extra = sorted(r for r in set(usage) - set(ROLES) if (usage[r] or {}).get("calls"))  # e.g. the endpoint probe
    for role in [r for r in ROLES if r in usage] + extra:
        u = usage[role]
        lines.append(f"            {role:<10} {u.get('calls', 0):>7} {u.get('prompt_tokens', 0):>14} "
                     f"{u.get('completion_tokens', 0):>18} {u.get('cache_hits', 0):>11}")
    lines += forecast_lines(summary.get("forecast_error"), usage)
    status = f"{summary.get('status', 'unknown')} after {_steps(summary.get('steps'))} in {_duration(seconds)}"
    if summary.get("errored_samples"):
        n = summary["errored_samples"]
        status += f"; {n} sample run{'' if n == 1 else 's'} errored (endpoint failures, kept out of scores)"
    lines += [f"status      {status}" + (f" ({summary['error']})" if summary.get("error") else ""),
              f"prompts     {', '.join(str(p) for p in exports) or NO_EXPORTS}",
              f"run folder  {store.path}"]
    _print(lines, out)


def _baseline_subset(errored: dict, split: str) -> str:
    """Says so when the baseline's score leaves out samples the endpoint never answered (the final one does not)."""
    n = errored.get(split)
    return f"  (baseline without {n} sample{'' if n == 1 else 's'} the endpoint could not answer)" if n else ""


def forecast_lines(error: dict | None, usage: dict | None = None) -> list[str]:
    """Per role: the calls spent against the forecast (least / expected / most) and the expected value's error.
    A resumed run's forecast covers only its last session, so when `usage` (the whole run's) holds more
    calls than the forecast was measured against, a last line says whose calls were compared."""
    lines = []
    earlier = sum(((usage or {}).get(role) or {}).get("calls", 0) - (m.get("calls") or {}).get("actual", 0)
                  for role, m in (error or {}).items())
    for role, measures in (error or {}).items():
        calls = measures.get("calls")
        if not calls:
            continue
        most = "no cap" if calls["most"] is None else f"{calls['most']:.0f}"
        off = "n/a" if calls["error"] is None else f"{calls['error']:+.0%}"
        lines.append(f"{'forecast' if not lines else '':<11} {role:<10} {calls['actual']:.0f} calls of "
                     f"{calls['least']:.0f} / {calls['expected']:.0f} / {most} forecast (least / expected / most): "
                     f"{off}, {'inside' if calls['inside'] else 'OUTSIDE'} the range")
    if lines and earlier > 0:
        lines.append(f"{'':<11} (calls since this session's forecast; the usage above also counts the "
                     f"{earlier:.0f} paid before it)")
    return lines


def proposal_stories(events) -> tuple[list[str], dict[str, int]]:
    """Lines telling each proposal's fate from the run's events, and counts of what happened."""
    lines: list[str] = []
    counts = {"proposed": 0, "minibatch_passed": 0, "validated": 0, "kept": 0, "no_proposal": 0, "disconnected": 0}
    for event in events:
        d, kind = event.data, event.type
        pid = d.get("proposal_id")
        if kind == "proposal" and d.get("source") != "human":
            counts["proposed"] += 1
            attempt = f", attempt {d['attempt']}" if d.get("attempt") else ""
            lines.append(f"step {event.step}  {pid}  {d.get('parameter')} ({d.get('source')}{attempt}) proposed:")
            lines.append(f"            {_clip(d.get('new'))}")
        elif kind == "no_proposal":
            counts["no_proposal"] += 1
            lead = "nothing to propose for" if d.get("source") == "feedback" else "no usable proposal for"
            lines.append(f"step {event.step}  {lead} {d.get('parameter')}: {d.get('reason')}")
            if str(d.get("reply") or "").strip():
                lines.append(f"            the reply was: {_clip(d.get('reply'), 100)}")
        elif kind == "minibatch":
            counts["minibatch_passed"] += bool(d.get("passed"))
            verdict = "passed" if d.get("passed") else "failed"  # the update line that follows says why
            left_out = f" ({d['left_out']} errored samples left out)" if d.get("left_out") else ""
            lines.append(f"            minibatch gate {fmt_score(d.get('before'))} -> {fmt_score(d.get('after'))}"
                         f" {verdict}{left_out}")
        elif kind == "decision" and d.get("by") != "policy":
            lines.append(f"            {d.get('by')} chose to {d.get('action')}")
        elif kind == "validation":
            counts["validated"] += 1
            gain = gain_text(d)
            lines.append(f"            validation gate {fmt_score(d.get('score'))} vs best {fmt_score(d.get('best'))}"
                         f" {'passed' if d.get('passed') else 'failed'}" + (f"; gain {gain}" if gain else ""))
        elif kind == "update":
            counts["kept"] += bool(d.get("accepted"))
            lines.append(f"            {'KEPT' if d.get('accepted') else 'reverted'}: {d.get('reason')}")
        elif kind == "disconnected":
            counts["disconnected"] += 1
            lines.append(f"step {event.step}  {d.get('parameter')} gets no feedback: node {d.get('node_id')} "
                         f"has no path to the loss")
    return lines, counts


def print_story(store, out: TextIO | None = None, *, small_model: bool = False) -> dict[str, int]:
    """What was proposed, what each gate decided and why, and an honest one-line verdict."""
    lines, counts = proposal_stories(store.events())
    lines = ["", "what happened"] + [f"  {line}" for line in lines] if lines else ["", "what happened",
                                                                                   "  no step ran"]
    lines.append("")
    if counts["kept"]:
        lines.append(f"verdict     {counts['kept']} of {counts['proposed']} proposals kept: they beat the best "
                     f"validation score")
    elif counts["proposed"]:
        gates = ("none passed the minibatch gate" if not counts["minibatch_passed"]
                 else f"{counts['minibatch_passed']} passed the minibatch gate but none beat the validation score")
        lines.append(f"verdict     no proposal was kept: {counts['proposed']} proposed, {gates}; the prompts "
                     f"are unchanged")
    else:
        lines.append("verdict     the optimizer never gave a usable proposal; the prompts are unchanged")
    if small_model and not counts["kept"]:
        lines.append("            (a 270M base model rarely writes a better prompt: the demo shows the loop, "
                     "not prompt quality; try --base-url with a stronger model)")
    _print(lines, out)
    return counts


def print_next(store, out: TextIO | None = None) -> None:
    """Where to look next."""
    _print([f"next        workbench report {shlex.quote(str(store.path))} -o report.html   (the run as one HTML page)",
            "            workbench runs                     (every run with its scores)",
            "            notebooks/01_quickstart.ipynb      (the dashboard: watch the graph, approve each change)"],
           out)


def _clip(text: Any, limit: int = CLIP) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _steps(n: Any) -> str:
    return f"{n} step" if n == 1 else f"{n} steps"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{seconds:.1f}s"
