"""Which samples each step trains on: epochs, steps and the seeded minibatches (the one place they are computed)."""
from __future__ import annotations

import math
import random
import warnings
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from ..engine.example import Example
    from .config import TrainConfig


class Schedule:
    """Steps and minibatches of a run over `train`; a seeded shuffle per epoch, so resume sees the same batches."""

    def __init__(self, train: Sequence["Example"], config: "TrainConfig") -> None:
        self._train, self._config = list(train), config

    @property
    def steps_per_epoch(self) -> int:
        """Minibatches in one pass over the training set (the last may be short)."""
        return math.ceil(len(self._train) / self._config.batch_size)

    def epoch_of(self, step: int) -> int:
        """The 0-based epoch a 1-based step belongs to."""
        return (step - 1) // self.steps_per_epoch

    @property
    def total_steps(self) -> int:
        return min(self._config.max_steps, self.steps_per_epoch * self._config.epochs)

    def batch_for(self, step: int) -> list["Example"]:
        """The minibatch of a step."""
        epoch, index = divmod(step - 1, self.steps_per_epoch)
        order = list(self._train)
        random.Random(f"{self._config.seed}:epoch:{epoch}").shuffle(order)
        size = self._config.batch_size
        return order[index * size:(index + 1) * size]

    def warn_if_epochs_end_first(self) -> None:
        """`max_steps` is a ceiling: the `epochs` passes over the training set may end the run first
        (also when `max_steps` is raised to train further), so say so at each fit()."""
        cfg = self._config
        if self.total_steps < cfg.max_steps:
            warnings.warn(f"max_steps={cfg.max_steps}, but epochs={cfg.epochs} over {len(self._train)} training "
                          f"samples at batch_size={cfg.batch_size} is {self.total_steps} steps, so training stops "
                          f"after step {self.total_steps}: set epochs={math.ceil(cfg.max_steps / self.steps_per_epoch)} "
                          f"to reach {cfg.max_steps}", UserWarning, stacklevel=2)
