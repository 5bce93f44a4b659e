"""The event definitions about money and credit: the forecast made before a fit(), its re-estimates as the run
goes, and the credit of each kept change. Kept apart from events.py only for its length;
`workbench.records.events` re-exports them.
"""
from __future__ import annotations

from .event_contract import EventData, defines, doc


@defines("forecast")
class ForecastMade(EventData):
    """At the start of each `fit()`, before any call: what the rest of the run will cost (`Trainer.forecast`)."""
    roles: dict = doc("`{role: {calls, prompt_tokens, completion_tokens, cost}}`, each `{least, expected, most}` "
                      "(`most` null: unbounded; `cost` null without prices)")
    steps: int = doc("steps still to run")
    from_step: int = doc("the step the run continues after (0 for a new run)")
    baseline: bool = doc("whether the baseline is still to run")
    token_counting: dict = doc("`{role: how its tokens were counted}` (the endpoint's tokenizer or an approximation)")
    assumptions: list[str] = doc("the priors of the expected value and the bounds, in words")
    samples_probed: int = doc("samples whose real prompts were rendered (no call) to measure them", 0)
    spent: dict = doc("`{role: usage}` of the run when the forecast was made (what a resumed run spent before)", {})


@defines("forecast_revised")
class ForecastRevised(ForecastMade):
    """After the baseline and after each step: the forecast of what remains, re-estimated with the rates the run
    observed (`training/forecasting/revision.py`); no LLM call. `spent` is the usage when it was made."""
    after: str = doc("what the run had done when it re-estimated: `baseline` or `step N`")
    observed: dict = doc("the tallies behind the rates: `{attempts, kept, gates, gates_passed, validations, "
                         "validation_samples, fixes, failing, scored}`", {})


@defines("credit")
class Credit(EventData):
    """What one kept change earned: validation with that change alone reverted (`Trainer.ablate`)."""
    parameter: str
    proposal_id: str = doc("the proposal that made the change")
    step: int = doc("the step it was kept in")
    with_change: float | None = doc("validation score of the final values")
    without_change: float | None = doc("validation score with this change alone reverted")
    earned: float | None = doc("`with_change - without_change`; <= 0: the change costs nothing to remove")
    samples: int = doc("validation samples scored in both runs")
    new_calls: int = doc("task calls this ablation paid (evaluations the memo did not hold)", 0)
