"""The forecast of one trainer's run, from its parts (what `Trainer.forecast()` calls).

Which samples are probed (a few of the next minibatch, of validation and of test), what the memo
already holds of the baseline, and which steps remain: the inputs of `forecast.forecast`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ...records.eval_memo import EvalMemo
from .forecast import Forecast, Priors, Protocol, forecast
from .expected import Remaining
from .probe import probe

if TYPE_CHECKING:
    from ...engine.example import Example
    from ...engine.parameter import Parameter
    from ...engine.pipeline import Pipeline
    from ...optim import ParameterMemory
    from ..config import TrainConfig

PROBED_PER_SPLIT = 4


def forecast_run(*, pipeline: "Pipeline", train: Sequence["Example"], val: Sequence["Example"],
                 test: Sequence["Example"], eval_fn: Any, models: Any, config: "TrainConfig",
                 params: Mapping[str, "Parameter"], memory: Mapping[str, "ParameterMemory"], memo: EvalMemo,
                 values: Mapping[str, str], done_step: int, total_steps: int, baseline_done: bool,
                 batch_for: Callable[[int], list["Example"]],
                 peers_of: Callable[[Any], list[str]], backward_style: str, optimizer_style: str,
                 teacher: bool = False, prices: dict | None = None, priors: Priors | None = None,
                 carried: int = 0, stale: int = 0, best_val: float | None = None) -> Forecast:
    """What the steps after `done_step` (and the baseline, unless done) will cost; no LLM call is made."""
    steps = list(range(done_step + 1, total_steps + 1))
    first = batch_for(steps[0]) if steps else list(train)
    samples = list({e.id: e for e in [*first[:PROBED_PER_SPLIT], *val[:PROBED_PER_SPLIT],
                                      *test[:PROBED_PER_SPLIT]]}.values())
    measured = probe(pipeline, samples, eval_fn, models, dict(params), dict(memory),
                     pass_threshold=config.pass_threshold, backward_style=backward_style,
                     optimizer_style=optimizer_style, optimize=config.optimize, peers_of=peers_of)

    def held(e: "Example") -> bool:
        return memo.holds(memo.key(values, models.task, eval_fn, e, config.pass_threshold))

    todo = (0, 0) if baseline_done else (sum(not held(e) for e in val), sum(not held(e) for e in test))
    batches = [batch_for(s) for s in steps]
    fresh, repeats, last_ran = [], [], {e.id: -1 for b in batches for e in b if held(e)}
    seen, sure = memo.sample_ids(), []  # evaluated under any values: a later step may run those values again
    for i, batch in enumerate(batches):  # a sample run again is paid only if a change was kept since
        fresh.append(sum(e.id not in last_ran for e in batch))
        sure.append(fresh[-1] if i == 0 else sum(e.id not in last_ran and e.id not in seen for e in batch))
        repeats.append([last_ran[e.id] for e in batch if e.id in last_ran])
        last_ran.update({e.id: i for e in batch})
    test_held = len(test) if not baseline_done else sum(held(e) for e in test)
    remaining = Remaining([len(b) for b in batches], fresh, repeats, len(val), len(test), test_held,
                          carried=carried, stale=stale, can_win=can_win(config, best_val), sure=sure)
    protocol = Protocol(config, remaining, len(train), len(val), len(test), todo, teacher=teacher)
    return forecast(measured, protocol, from_step=done_step, prices=prices, priors=priors)


def can_win(config: "TrainConfig", best: float | None) -> bool:
    """Whether a candidate scoring 1.0 on every validation sample would beat `best` (as GateRuns decides)."""
    if best is None or not config.early_stop_validation:
        return True
    margin = best + config.min_gain
    return 1.0 > margin or (config.tie_rule == "equal" and 1.0 >= margin)
