"""What a run will cost before it runs, and again as it goes (issue 18), with no LLM call.

forecast (the counts and their least / expected / most, `Forecast`, `Priors`), probe (the real prompts of a
few samples rendered on dry models), expected (the remaining steps walked with expected counts), revision (the
rates re-estimated from what the run observed), run (one trainer's forecast from its parts).
"""
from .forecast import Forecast, Priors, forecast, forecast_error

__all__ = ["Forecast", "Priors", "forecast", "forecast_error"]
