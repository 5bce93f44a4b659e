"""One self-contained HTML file per run, for a reviewer without Python: `open_run(folder).report("report.html")`,
or `write_report(run, "report.html")` with the `Run` it is given (it opens nothing itself, so the read
side has no import circle: results -> report, never back).

It holds the charts (score per step with every proposal as a marker, cost per role: the dashboard's
plotly figures from `workbench.records.charts`), the final prompts, every proposal as a grouped word diff
with the gradients behind it and its decision, and the usage per role and step. plotly.js is inlined
from the installed plotly package, so opening the file fetches nothing. Every piece of run text
(prompts, model replies, feedback, reasons) is HTML-escaped: a prompt is data, never markup. Each value
is isolated (`<bdi>`), and ids, names and diffs show invisible controls as markers (workbench.plain_text).
"""
from __future__ import annotations

import datetime as _dt
import html
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .export import check_output, write_output
from ..plain_text import CONTROL_CSS, html_name, html_shown, html_text, show_controls
from ..errors import WrongTypeError
from ..redact import redact
from .branch_curve import lineage_chart
from .family import branch_record, family_of
from .forecast_frames import calls_before_forecast
from .charts import cost_figure, score_figure
from .diff import word_diff

if TYPE_CHECKING:
    from .results import Run

__all__ = ["render_report", "write_report"]

MAX_GRADIENTS_PER_PROPOSAL = 20  # feedback shown under each proposal (the rest are counted)
PERSON_TEXTS = ("text", "reason", "proposed", "refused", "outcome")  # free text in the contributions table

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0 auto;
       max-width: 1100px; padding: 1.5em; color: #1f2937; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { border-bottom: 1px solid #e5e7eb; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0; } td, th { border: 1px solid #e5e7eb; padding: .25em .6em;
       text-align: left; vertical-align: top; } th { background: #f9fafb; }
pre, .diff { white-space: pre-wrap; overflow-wrap: anywhere; background: #f9fafb; border: 1px solid #e5e7eb;
       border-radius: 4px; padding: .6em; margin: .3em 0; font: 13px/1.4 ui-monospace, Menlo, Consolas, monospace; }
del { background: #fee2e2; color: #991b1b; } ins { background: #dcfce7; color: #166534; text-decoration: none; }
details { border: 1px solid #e5e7eb; border-radius: 6px; margin: .6em 0; padding: .4em .8em; }
summary { cursor: pointer; font-weight: 600; } .muted { color: #6b7280; font-weight: normal; }
.kept { color: #15803d; } .reverted { color: #b91c1c; } .open { color: #1d4ed8; }
.meta td:first-child { font-weight: 600; white-space: nowrap; }
""" + CONTROL_CSS + "\n"


def write_report(run: "Run", out_path: str | os.PathLike = "report.html", *,
                 prices: dict[str, tuple[float, float]] | None = None) -> Path:
    """Write the report of a run (`open_run(folder or trainer)`) to `out_path`; returns the path.

    `prices` (USD per 1M prompt / completion tokens, per role) turns the token chart into cost.
    """
    out = Path(out_path)
    check_output(out)
    write_output(out, render_report(run, prices=prices))
    return out


def render_report(run: "Run", *, prices: dict[str, tuple[float, float]] | None = None) -> str:
    """The report of `run` (`open_run(...)`'s) as one HTML string (see the module docstring)."""
    if not hasattr(run, "tables") or not hasattr(run, "proposals"):
        raise WrongTypeError(f"the report reads a Run, not a {type(run).__name__}: "
                        "open_run(folder_or_trainer).report(path), or write_report(open_run(...), path)")
    # the one fold of the log, shared with the tables (the log is read once); a branch's chart starts at the
    # baseline of its root, with the path it inherits up to its branch point, as its curve table does
    curves = run.tables.curves
    scores = curves if branch_record(run.path) is None else lineage_chart(run.path)  # (cost: this run's own)
    sections = [
        _header(run),
        _section("Scores and cost", _figure_html(score_figure(scores)) + _figure_html(cost_figure(curves, prices))),
        _section("Final prompts", _final_prompts(run)),
        _section(f"Proposals ({len(run.proposals)})", _proposals(run)),
        _section("Usage", _usage(run)),
    ]
    if not run.forecast.empty:
        sections.append(_section("Forecast vs actual", _forecast(run)))
    if not run.credit.empty:
        sections.append(_section("Credit per kept change", _credit(run)))
    notices = run.notices
    if not notices.empty:  # what the tables above lack, and why
        sections.insert(4, _section(f"Notices ({len(notices)})", _table(notices, texts=("text",))))
    contributions = run.contributions
    if not contributions.empty:  # the person's reasons, edits and feedback, after the final prompts
        sections.insert(3, _section(f"The person's contributions ({len(contributions)})",
                                    _table(_without_na(contributions.drop(columns=["time"])),
                                           texts=PERSON_TEXTS)))
    title = f"Workbench run {run.run_id}"
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(show_controls(title))}</title><style>{CSS}</style>"
            f"<script>{_plotly_js()}</script></head>\n<body>\n" + "\n".join(sections) + "\n</body></html>\n")


# -- pieces ---------------------------------------------------------------------------------------------

def esc(value: Any) -> str:
    """Run text as HTML text: secrets masked, markup escaped (quotes too, for attribute safety)."""
    return html.escape(redact("" if value is None else str(value)), quote=True)


def name(value: Any) -> str:
    """An id or a name (or a line naming them) as HTML: secrets masked, escaped, isolated, controls shown."""
    return html_name(redact("" if value is None else str(value)))


def text(value: Any) -> str:
    """Free run text (a reply, a feedback, an error) as HTML: secrets masked, escaped, isolated."""
    return html_text(redact("" if value is None else str(value)))


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and pd.isna(x))


def _table(frame: pd.DataFrame, texts: tuple[str, ...] = ()) -> str:
    """A DataFrame as an HTML table: each cell isolated, names with their controls shown, free text
    (the columns in `texts`) isolated only; a missing cell is "–", never "NaN"."""
    def cell(column: str, value: Any) -> str:
        if _missing(value):
            return "–"
        if isinstance(value, float):
            value = f"{value:.6f}".rstrip("0").rstrip(".")
        return text(value) if column in texts else name(value)
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    rows = "".join("<tr>" + "".join(f"<td>{cell(c, v)}</td>" for c, v in zip(frame.columns, row)) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _score(x: Any) -> str:
    return "–" if _missing(x) else f"{float(x):.3f}"


def _section(title: str, body: str) -> str:
    return f"<section><h2>{esc(title)}</h2>\n{body}\n</section>"


def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs
    # inside <script>, only "</script" could end the element early; plotly.js has none, but be sure
    return get_plotlyjs().replace("</script", "<\\/script")


def _figure_html(figure: Any) -> str:
    # plotly escapes "</" in the figure JSON it embeds; the hover text was escaped by ui/charts.esc
    return figure.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False, "responsive": True})


def _header(run: Run) -> str:
    summary, config = run.summary, run.config
    baseline, final = summary.get("baseline") or {}, summary.get("final") or {}
    models = ", ".join(f"{role}: {model}" for role, model in (config.get("models") or {}).items())
    rows = [("run", run.run_id), ("folder", str(run.path)), ("task", config.get("task") or "–"),
            ("pipeline", config.get("pipeline") or "–"), ("models", models or "–"),
            ("status", summary.get("status")), ("steps", summary.get("steps")),
            ("validation", f"{_score(baseline.get('val'))} → {_score(summary.get('best_val'))}"),
            ("test", f"{_score(baseline.get('test'))} → {_score(final.get('test'))}"),
            *_family_rows(run),
            ("wall time", f"{run.wall_time_s:.1f} s"),
            ("written", _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))]
    settings = (config.get("config") or {})
    table = "".join(f"<tr><td>{esc(k)}</td><td>{name(v)}</td></tr>" for k, v in rows)
    if summary.get("error"):
        table += f"<tr><td>error</td><td>{text(summary['error'])}</td></tr>"
    knobs = ", ".join(f"{k}={v}" for k, v in settings.items())
    return (f"<header><h1>Workbench run {name(run.run_id)}</h1><table class=\"meta\">{table}</table>"
            + (f"<p class=\"muted\">settings: {name(knobs)}</p>" if knobs else "") + "</header>")


def _family_rows(run: Run) -> list[tuple[str, str]]:
    """Where a branch came from, and the branches of this run (records/family.py)."""
    rows = []
    record = branch_record(run.path)
    if record:
        decision = record.get("decision") or {}
        rows.append(("branched from", f"{record['parent']} after step {record.get('step')}"
                     + (f", {decision.get('action')} {decision.get('proposal_id')}" if decision else "")))
    children = [m for m in family_of(run.path) if m.parent == run.run_id]
    if children:
        rows.append(("branches", ", ".join(f"{m.run_id} (after step {m.step})" for m in children)))
    return rows


def _diff_html(old: str, new: str) -> str:
    parts = []  # a reviewer reads exactly these characters: invisible controls are shown
    for op, piece in word_diff(old or "", new or ""):
        tag = {"-": "del", "+": "ins"}.get(op)
        shown = html_shown(redact(piece))
        parts.append(f"<{tag}>{shown}</{tag}>" if tag else shown)
    return f"<div class=\"diff\"><bdi>{''.join(parts)}</bdi></div>"


def _final_prompts(run: Run) -> str:
    started = {p["name"]: p for p in (run.tables.started or {}).get("parameters") or []}
    blocks = []
    for parameter, value in run.parameters.items():
        first = started.get(parameter, {})
        head = f"<h3>{name(parameter)} <span class=\"muted\">{name(first.get('role', ''))}</span></h3>"
        about = f"<p class=\"muted\">{text(first['description'])}</p>" if first.get("description") else ""
        if first and first.get("value") != value:
            body = f"<p class=\"muted\">changed from the start:</p>{_diff_html(first.get('value', ''), value)}"
        else:
            body = "<p class=\"muted\">unchanged</p>"
        blocks.append(f"{head}{about}<pre>{text(value)}</pre>{body}")
    return "\n".join(blocks) or "<p>No parameters recorded.</p>"


def _proposals(run: Run) -> str:
    proposals, gradients = run.proposals, run.gradients
    if proposals.empty:
        return "<p>No proposals.</p>"
    by_target = {key: rows for key, rows in gradients.groupby(["step", "target"], sort=False)} \
        if not gradients.empty else {}
    shown: dict[tuple, str] = {}  # (step, parameter) -> the proposal whose block lists that feedback
    blocks = []
    for p in _without_na(proposals).itertuples(index=False):
        state = "open" if p.kept is None else "kept" if p.kept else "reverted"
        label = {"kept": "kept", "reverted": "reverted", "open": "not decided"}[state]
        decided = f"{p.decision} by {p.decided_by}" if p.decision else "no decision"
        if p.person_reason:
            decided += f", saying: {p.person_reason}"
        facts = [("source", p.source), ("decision", decided),
                 ("minibatch", f"{_score(p.minibatch_before)} → {_score(p.minibatch_after)}"),
                 ("validation", f"{_score(p.validation)} (best before: {_score(p.best_before)})"
                  + ("" if p.validation_complete in (None, True) else ", stopped early")),
                 ("gain on validation", _gain(p)),
                 ("reason", p.reason or "–")]
        table = "".join(f"<tr><td>{esc(k)}</td><td>{name(v)}</td></tr>" for k, v in facts)
        key = (p.step, p.parameter)
        own = by_target.get(key, gradients.iloc[:0])
        if own.empty:
            feedback = _gradients_html(own, p.gradient_summary)
        elif key in shown:  # every attempt of a step answers the same feedback: list it once
            feedback = (f"<p class=\"muted\">feedback: the {len(own)} gradients for this parameter in step "
                        f"{esc(p.step)}, listed under {name(shown[key])} above</p>")
        else:
            shown[key] = p.proposal_id
            feedback = _gradients_html(own, p.gradient_summary)
        blocks.append(
            f"<details><summary>step {esc(p.step)} · {name(p.parameter)} · "
            f"<span class=\"{state}\">{label}</span> <span class=\"muted\">{name(p.proposal_id)}</span></summary>"
            f"<table class=\"meta\">{table}</table>{_diff_html(p.old, p.new)}"
            + feedback + "</details>")
    return "\n".join(blocks)


def _gain(p: Any) -> str:
    """The paired difference with its bootstrap interval and the flipped samples, or why there is none."""
    if _missing(p.gain):
        return "–"
    return (f"{p.gain:+.3f}, {p.confidence:.0%} interval [{p.gain_low:+.3f}, {p.gain_high:+.3f}], "
            f"won {int(p.won)}, lost {int(p.lost)}")


def _forecast(run: Run) -> str:
    why = "; ".join(f"{role}: {how}" for role, how in sorted(((run.tables.forecast or {}).get("token_counting")
                                                             or {}).items()))
    assumptions = "".join(f"<li>{text(a)}</li>" for a in (run.tables.forecast or {}).get("assumptions") or [])
    before = calls_before_forecast(run.tables.forecast)
    since = (f" actual = what the run spent since this forecast; the {before} calls paid before it are in Usage, "
             "not here (the run was resumed or continued)." if before else "")
    return (_table(run.forecast) + f"<p class=\"muted\">error = (actual - expected) / expected; "
            f"most \u2013 = unbounded (a model without a reply cap). Tokens counted by {text(why)}.{since}</p>"
            + (f"<ul class=\"muted\">{assumptions}</ul>" if assumptions else "")
            + ("" if run.forecast_revisions.empty else "<h3>Re-estimated as the run went</h3>"
               + _table(run.forecast_revisions) + "<p class=\"muted\">each row: the whole fit as the re-estimate "
               "after the baseline or a step saw it (what was spent before it + its range of the rest)</p>"))


def _credit(run: Run) -> str:
    return (_table(run.credit) + "<p class=\"muted\">earned = validation with the final values minus validation "
            "with that change alone reverted (on the samples scored in both); flagged when removing the change "
            "costs nothing.</p>")


def _without_na(frame: pd.DataFrame) -> pd.DataFrame:
    """Missing cells as None: pandas reads a missing string as NaN, which is truthy and prints as "nan"."""
    return frame.astype(object).where(frame.notna(), None)


def _gradients_html(own: pd.DataFrame, summary: str | None) -> str:
    if own.empty:
        return f"<p class=\"muted\">feedback given to the optimizer:</p><pre>{text(summary)}</pre>" if summary else ""
    rows = "".join(f"<tr><td>{_by(g)}{name(g.sample_id)}</td><td>{name(g.node_id)} (call {esc(g.call_index)})</td>"
                   f"<td>{_score(g.score)}</td><td>{text(g.text)}</td></tr>"
                   for g in own.head(MAX_GRADIENTS_PER_PROPOSAL).itertuples(index=False))
    more = len(own) - MAX_GRADIENTS_PER_PROPOSAL
    return (f"<p class=\"muted\">gradients for this parameter in step {esc(own.step.iloc[0])}:</p>"
            f"<table><tr><th>sample</th><th>node</th><th>score</th><th>feedback</th></tr>{rows}</table>"
            + (f"<p class=\"muted\">and {more} more</p>" if more > 0 else ""))


def _by(g: Any) -> str:
    """"the person: " before a gradient a person wrote (`trainer.feedback`)."""
    return "<b>the person</b> " if getattr(g, "source", None) == "person" else ""


def _usage(run: Run) -> str:
    usage = run.usage
    if usage.empty:
        return "<p>No usage recorded.</p>"
    numbers = ["calls", "prompt_tokens", "completion_tokens", "tokens", "cache_hits", "latency_s"]
    per_role = usage.groupby("role")[numbers].sum().reset_index()
    per_role["latency_s"] = per_role["latency_s"].round(2)
    return "<h3>per role</h3>" + _table(per_role) + "<h3>per role and step</h3>" + _table(usage)
