"""Rows of the forecast and credit tables of `open_run(...)` (from the `forecast`, `run_finished` and
`credit` events), shared by the DataFrames and the report."""
from __future__ import annotations

FORECAST_COLUMNS = ["role", "measure", "least", "expected", "most", "actual", "error", "inside"]
CREDIT_COLUMNS = ["proposal_id", "step", "parameter", "with_change", "without_change", "earned", "samples",
                  "new_calls", "flag"]
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


def credit_rows(credits: list[dict]) -> list[dict]:
    """One row per kept change; `flag` marks a change whose removal costs no validation score."""
    return [dict(c, flag=COSTS_NOTHING if c.get("earned") is not None and c["earned"] <= 0 else "")
            for c in credits]
