"""The forecast of one trainer's run, from its parts (what `Trainer.forecast()` calls).

Which samples are probed (a few of the next minibatch, of validation and of test), what the memo
already holds of the baseline, and which steps remain: the inputs of `forecast.forecast`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ..records.eval_memo import EvalMemo
from .forecast import Forecast, Priors, Protocol, forecast
from .forecast_probe import probe

if TYPE_CHECKING:
    from ..engine.example import Example
    from ..engine.parameter import Parameter
    from ..engine.pipeline import Pipeline
    from ..optim import ParameterMemory
    from .config import TrainConfig

PROBED_PER_SPLIT = 4


def forecast_run(*, pipeline: "Pipeline", train: Sequence["Example"], val: Sequence["Example"],
                 test: Sequence["Example"], eval_fn: Any, models: Any, config: "TrainConfig",
                 params: Mapping[str, "Parameter"], memory: Mapping[str, "ParameterMemory"], memo: EvalMemo,
                 values: Mapping[str, str], done_step: int, total_steps: int, baseline_done: bool,
                 batch_for: Callable[[int], list["Example"]], epoch_of: Callable[[int], int],
                 peers_of: Callable[[Any], list[str]], backward_style: str, optimizer_style: str,
                 teacher: bool = False, prices: dict | None = None, priors: Priors | None = None) -> Forecast:
    """What the steps after `done_step` (and the baseline, unless done) will cost; no LLM call is made."""
    steps = list(range(done_step + 1, total_steps + 1))
    first = batch_for(steps[0]) if steps else list(train)
    samples = list({e.id: e for e in [*first[:PROBED_PER_SPLIT], *val[:PROBED_PER_SPLIT],
                                      *test[:PROBED_PER_SPLIT]]}.values())
    measured = probe(pipeline, samples, eval_fn, models, dict(params), dict(memory),
                     pass_threshold=config.pass_threshold, backward_style=backward_style,
                     optimizer_style=optimizer_style, optimize=config.optimize, peers_of=peers_of)

    def not_in_memo(examples: Sequence["Example"]) -> int:
        return sum(not memo.holds(memo.key(values, models.task, eval_fn, e, config.pass_threshold)) for e in examples)

    todo = (0, 0) if baseline_done else (not_in_memo(val), not_in_memo(test))
    # the least a step's minibatch can cost is what the memo (a branch's: its family's) lacks: the next
    # step runs it with today's values; a later one with values not known yet, which may be ones the memo
    # holds it under (the parent's), so only a sample it holds under no values at all is sure to be paid
    seen = memo.sample_ids()
    lacking = [not_in_memo(batch_for(s)) if i == 0 else sum(e.id not in seen for e in batch_for(s))
               for i, s in enumerate(steps)]
    protocol = Protocol(config, [len(batch_for(s)) for s in steps], [epoch_of(s) == 0 for s in steps],
                        len(train), len(val), len(test), todo, teacher=teacher, batches_todo=lacking)
    return forecast(measured, protocol, from_step=done_step, prices=prices, priors=priors)
