"""The trainer's part for knowing before and trusting after: each fit()'s cost forecast (its event, and
its error per role at the end) and the credit per kept change (`ablate`).

`ForecastAndCredit` is given what it reads in its constructor; the arithmetic is in forecasting/forecast.py,
the dry measurement in forecasting/probe.py, the ablation in ablation.py.
"""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..engine.backward_completion import backward_style
from ..errors import BudgetExceeded, ConfigError, RunStopped, WorkbenchError
from ..optim.gates import scores_by_id
from ..optim.optimizer_completion import optimizer_style
from ..records.events import Credit, ForecastMade, ForecastRevised
from .ablation import ablate, kept_changes
from .forecasting.forecast import Forecast, Priors, forecast_error
from .forecasting.revision import OBSERVED_EVENTS, Observations, revised_priors
from .proposals import peers_of
from .forecasting.run import forecast_run
from ..redact import redact

if TYPE_CHECKING:
    from ..engine.example import Example
    from .config import TrainConfig
    from .emitter import RunEmitter
    from .evaluation import Evaluator
    from .run_state import RunState
    from .schedule import Schedule
    from .usage import RunMeter


class ForecastAndCredit:
    """See the module docstring. `last` is this fit()'s forecast (None before, or when it failed)."""

    def __init__(self, pipeline: Any, splits: tuple[Sequence["Example"], ...], eval_fn: Any, models: Any,
                 config: "TrainConfig", state: "RunState", schedule: "Schedule", evaluator: "Evaluator",
                 meter: "RunMeter", emit: "RunEmitter", teacher: bool, *,
                 training_elsewhere: Callable[[], bool] = lambda: False) -> None:
        self._pipeline, (self._train, self._val, self._test) = pipeline, splits
        self._eval_fn, self._models, self._config, self._state = eval_fn, models, config, state
        self._schedule, self._evaluator, self._meter, self._emit = schedule, evaluator, meter, emit
        self._styles, self._teacher = (backward_style(models), optimizer_style(models)), teacher
        self._training_elsewhere = training_elsewhere  # fit() is running: a step may be under way
        self.last: Forecast | None = None  # this fit()'s forecast, the one its error and a relative budget use
        self.latest: Forecast | None = None  # its newest re-estimate (`revise`)
        self._spent_at_forecast: dict[str, dict] = {}
        self._observations, self._revising = Observations(), True
        emit.bus.subscribe(lambda e: self._observations.on_event(e), OBSERVED_EVENTS)

    def forecast(self, prices: dict | None = None, priors: Priors | None = None) -> Forecast:
        """What the rest of the run will cost per role; makes no LLM call (forecasting/run.py)."""
        self._refuse_while_training("forecast()", "its forecast is the `forecast` event (open_run(trainer).forecast)")
        return self._forecast(prices, priors)

    def _forecast(self, prices: dict | None = None, priors: Priors | None = None) -> Forecast:
        state, schedule = self._state, self._schedule
        return forecast_run(pipeline=self._pipeline, train=self._train, val=self._val, test=self._test,
                            eval_fn=self._eval_fn, models=self._models, config=self._config, params=state.params,
                            memory=state.memory, memo=self._evaluator.memo, values=state.values(),
                            done_step=state.step, total_steps=schedule.total_steps,
                            baseline_done=bool(state.baseline), batch_for=schedule.batch_for,
                            peers_of=lambda p: peers_of(self._pipeline, p),
                            backward_style=self._styles[0], optimizer_style=self._styles[1], teacher=self._teacher,
                            prices=prices, priors=priors, carried=len(state.carried_samples()),
                            stale=state.stale_steps, best_val=state.best_val if state.baseline else None)

    def announce(self) -> Forecast | None:
        """This fit()'s `forecast` event; a forecast that fails costs a warning, unless a budget needs it."""
        self.last, self.latest, self._spent_at_forecast = None, None, self._meter.usage()
        self._observations, self._revising = Observations(), True  # this fit()'s outcomes feed its re-estimates
        try:
            self.last = self._forecast()
        except Exception as exc:  # a pipeline or eval that fails on placeholder replies: the run goes on
            if self._config.max_cost_vs_forecast is not None:
                raise ConfigError(f"max_cost_vs_forecast needs a forecast, which failed: {redact(str(exc))}") from exc
            # an endpoint may echo the key in its error message: the warning is shown and may be logged
            warnings.warn(f"no cost forecast for this run: {type(exc).__name__}: {redact(str(exc))}", UserWarning,
                          stacklevel=4)
            return None
        self._emit(ForecastMade(**self.last.to_dict(), spent=self._spent_at_forecast))
        return self.last

    def revise(self, after: str) -> Forecast | None:
        """After the baseline or a step: what remains, re-estimated from the rates observed (forecast_revision.py),
        as a `forecast_revised` event; no LLM call. Nothing when no steps remain or this fit() has no forecast;
        a re-estimate that fails costs a warning and no more re-estimates in this fit(), never the run."""
        if self.last is None or not self._revising or self._state.step >= self._schedule.total_steps:
            return None
        observed = self._observations.to_dict()
        try:
            failing = self._failing_now()
            priors = revised_priors(Priors(), observed, failing, len(self._val), after)
            self.latest = self._forecast(priors=priors)
        except Exception as exc:  # the first forecast worked; a later one may meet a value it cannot render
            warnings.warn(f"the cost forecast was not re-estimated after {after}: {type(exc).__name__}: "
                          f"{redact(str(exc))}", UserWarning, stacklevel=3)  # an endpoint's error may echo a key
            self._revising = False
            return None
        self._emit(ForecastRevised(**self.latest.to_dict(), spent=self._meter.usage(), after=after,
                                   observed={**observed, "failing": failing[0], "scored": failing[1]}))
        return self.latest

    def _failing_now(self) -> tuple[int, int]:
        """(failing, scored) validation and training samples of the current values, as the memo holds them (the
        baseline, a step's forward, a kept change's gates scored them); no call."""
        memo, values, cfg = self._evaluator.memo, self._state.values(), self._config
        threshold = min(cfg.pass_threshold, cfg.backprop_threshold)
        failing = scored = 0
        for e in [*self._val, *self._train]:
            r = memo.get(memo.key(values, self._models.task, self._eval_fn, e, cfg.pass_threshold), need_graph=False)
            if r is not None and r.status != "errored":
                scored += 1
                failing += (r.score or 0.0) < threshold or r.error is not None
        return failing, scored

    def error(self) -> dict | None:
        """Per role: the forecast's range against what this fit() spent since it."""
        if self.last is None:
            return None
        now, before = self._meter.usage(), self._spent_at_forecast
        spent = {role: {k: u.get(k, 0) - before.get(role, {}).get(k, 0) for k in u} for role, u in now.items()}
        return forecast_error(self.last.to_dict(), spent)

    def ablate(self) -> list[dict]:
        """For each kept change: validation with that change alone reverted (new evaluations only), a `credit` each."""
        self._refuse_while_training("ablate()", "TrainConfig(credit=True) has it at the end of the run")
        return self._ablate()

    def credit_at_end(self, error: str | None) -> str | None:
        """`ablate()` from inside fit() as `TrainConfig.credit` says (None: when it is free); returns the
        run's error, or (a stop or the budget) why the credit was skipped."""
        if self._config.credit is False or (self._config.credit is None and not self._credit_is_free()):
            return error
        try:
            self._ablate()
        except (RunStopped, BudgetExceeded) as exc:
            return error or f"credit per change skipped: {exc}"
        return error

    def _credit_is_free(self) -> bool:
        """Whether the memo holds every validation the ablation would run (then `credit=None` runs it)."""
        memo, final, cfg = self._evaluator.memo, self._state.values(), self._config
        changes = kept_changes(self._state.params)
        return bool(changes) and all(
            memo.holds(memo.key(values, self._models.task, self._eval_fn, e, cfg.pass_threshold))
            for values in [final] + [{**final, **c.before} for c in changes] for e in self._val)

    def _ablate(self) -> list[dict]:
        credits = ablate(self._state.params, self._score_values)
        for credit in credits:
            self._emit(Credit(**credit))
        return credits

    def _refuse_while_training(self, what: str, instead: str) -> None:
        """The forecast and the ablation put values and gradients in place for a moment: never under a running step."""
        if self._training_elsewhere():
            raise WorkbenchError(f"{what} cannot run while this trainer trains (it would change the prompts "
                                 f"under a running step); {instead}, or call it when the run has ended")

    def _score_values(self, values: dict[str, str]) -> tuple[dict[str, float | None], int]:
        """Validation scores of `values` (through the memo) and the task calls they cost."""
        calls = self._meter.usage().get("task", {}).get("calls", 0)
        now = self._state.values()
        with self._evaluator.trying({n: v for n, v in values.items() if now.get(n) != v}):
            result = self._evaluator.forward(self._val, split="val", phase="credit")
        return scores_by_id(result.results), self._meter.usage().get("task", {}).get("calls", 0) - calls
