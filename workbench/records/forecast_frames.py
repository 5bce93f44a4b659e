"""Rows of the forecast and credit tables of `open_run(...)` (from the `forecast`, `run_finished` and
`credit` events), shared by the DataFrames and the report."""
from __future__ import annotations

from typing import Any, Callable

from . import usage_totals

FORECAST_COLUMNS = ["role", "measure", "least", "expected", "most", "actual", "error", "inside"]
REVISION_COLUMNS = ["after", "role", "measure", "least", "expected", "most", "actual", "error", "inside"]
CREDIT_COLUMNS = ["proposal_id", "step", "parameter", "kept_by", "with_change", "without_change", "earned",
                  "samples", "new_calls", "flag"]
MEASURES = ("calls", "prompt_tokens", "completion_tokens", "cost")
COSTS_NOTHING = "removing it costs nothing"


def forecast_rows(forecast: dict | None, error: dict | None) -> list[dict]:
    """One row per role and measure: the forecast's range, and once the fit ended, the actual spend,
    the relative error of the expected value ((actual - expected) / expected) and whether it fell inside."""
    rows = []
    for role, measures in ((forecast or {}).get("roles") or {}).items():
        for measure in MEASURES:
            r = measures.get(measure)
            if not r:
                continue
            seen = ((error or {}).get(role) or {}).get(measure) or {}
            rows.append({"role": role, "measure": measure, "least": r["least"], "expected": r["expected"],
                         "most": r["most"], "actual": seen.get("actual"), "error": seen.get("error"),
                         "inside": seen.get("inside")})
    return rows


def revision_rows(forecast: dict | None, revisions: list[dict], usage_at_end: dict | None) -> list[dict]:
    """One row per re-estimate, role and measure (calls, tokens): the whole fit as that re-estimate saw it (what
    was spent since the fit's forecast + its range of what remained) and, once the fit ended, the actual spend."""
    start = (forecast or {}).get("spent") or {}
    rows = []
    for revised in revisions:
        before = revised.get("spent") or {}
        for role, measures in (revised.get("roles") or {}).items():
            for measure, keys in (("calls", ("calls",)), ("tokens", ("prompt_tokens", "completion_tokens"))):
                def spent(usage: dict | None) -> float:
                    now, then = (usage or {}).get(role) or {}, start.get(role) or {}
                    return sum(float(now.get(k, 0) or 0) - float(then.get(k, 0) or 0) for k in keys)
                ranges = [measures.get(k) or {} for k in keys]
                row = {how: None if any(r.get(how) is None for r in ranges) else
                       spent(before) + sum(r[how] for r in ranges) for how in ("least", "expected", "most")}
                actual = spent(usage_at_end) if usage_at_end is not None else None
                error = inside = None
                if actual is not None and row["expected"] is not None:
                    error = (actual - row["expected"]) / row["expected"] if row["expected"] else None
                    inside = row["least"] <= actual + 1e-9 and (row["most"] is None or actual <= row["most"] + 1e-9)
                rows.append({"after": revised.get("after"), "role": role, "measure": measure, **row,
                             "actual": actual, "error": error, "inside": inside})
    return rows


def credit_rows(credits: list[dict], kept_by: Callable[[Any], str | None] = lambda step: None) -> list[dict]:
    """One row per kept change; `kept_by` names the run that kept it (a branch's credit covers the changes its
    parent kept before the branch point too); `flag` marks a change whose removal costs no validation score."""
    return [dict(c, kept_by=kept_by(c.get("step")),
                 flag=COSTS_NOTHING if c.get("earned") is not None and c["earned"] <= 0 else "")
            for c in credits]


def forecast_line(forecast: dict) -> str:
    """The forecast in one line: expected calls (least-most) and tokens, over all roles."""
    roles = (forecast.get("roles") or {}).values()

    def total(measure: str, how: str) -> float | None:
        values = [(r.get(measure) or {}).get(how) for r in roles]
        return None if any(v is None for v in values) else sum(values)
    most_calls, most_tokens = total("calls", "most"), _sum(total("prompt_tokens", "most"),
                                                            total("completion_tokens", "most"))
    tokens = _sum(total("prompt_tokens", "expected"), total("completion_tokens", "expected"))
    return (f"forecast: ~{total('calls', 'expected'):,.0f} calls ({total('calls', 'least'):,.0f} to "
            f"{_shown(most_calls)}), ~{tokens:,.0f} tokens (at most {_shown(most_tokens)})")


def calls_before_forecast(forecast: dict | None) -> int:
    """Calls the run had paid when its (first) forecast of this fit was made: a resumed or continued run's
    earlier sessions, which the forecast's actual leaves out and the usage tables count."""
    return usage_totals.totals((forecast or {}).get("spent"))["calls"]


def spent_vs_forecast(usage: dict | None, forecast: dict | None, revised: dict | None = None) -> str:
    """`123 of ~150 forecast calls`: what this fit() spent since its forecast against the expected calls of the
    fit; with a re-estimate (`forecast_revised`), its expected calls plus what was spent before it, and when it was made."""
    if not forecast:
        return ""
    start = calls_before_forecast(forecast)
    spent = usage_totals.totals(usage)["calls"] - start
    if not revised:
        return f"{spent} of ~{expected_calls(forecast):,.0f} forecast calls"
    expected = usage_totals.totals(revised.get("spent"))["calls"] - start + expected_calls(revised)
    return f"{spent} of ~{expected:,.0f} forecast calls, re-estimated after {revised.get('after') or '?'}"


def expected_calls(forecast: dict) -> float:
    """The expected calls of a `forecast` (or `forecast_revised`) event, over all roles."""
    return sum(((r.get("calls") or {}).get("expected") or 0) for r in (forecast.get("roles") or {}).values())


def _sum(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


def _shown(x: float | None) -> str:
    return "no cap" if x is None else f"{x:,.0f}"
