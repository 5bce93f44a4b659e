"""Every knob of a training run, and the record of how it ended."""
from __future__ import annotations

import math

import warnings
from dataclasses import InitVar, asdict, dataclass, field, fields

from ..errors import ConfigError


@dataclass
class TrainConfig:
    """Every knob of a run; stored in the run folder and in each export's provenance."""

    max_steps: int = 12
    epochs: int = 1
    batch_size: int = 4
    seed: int = 0
    concurrency: int = 8
    pass_threshold: float = 1.0
    max_failed: int = 2  # failed samples back-propagated per step
    max_correct: int = 2  # passing samples added for contrast
    max_proposals: int = 5  # optimizer attempts per parameter per step, one at a time; the first that passes is kept
    backprop_threshold: float = 0.9  # graded scores at or above this count as passing for selection
    minibatch_gate: str = "strict"  # "strict": a gain on the back-propagated samples (a tie if all pass); "no_worse"
    max_carried: int = 4  # failed samples carried to later steps until something is accepted
    optimize: str = "all"  # "all" trained parameters each step, "one" at a time (round robin), or "joint"
    tie_rule: str = "strict"  # "strict": validation must beat the best; "equal": a tie is kept
    min_gain: float = 0.0  # a win must beat the best by more than this (noise margin on small val sets)
    early_stop_validation: bool = True  # stop validating a candidate once it can no longer win
    num_demos: int = 3
    max_calls: int | None = None
    max_tokens: int | None = None
    max_seconds: float | None = None
    patience: int | None = None  # stop after this many steps without a validation improvement
    max_error_share: float = 0.5  # stop when more than this share of a batch errors
    accept: str = "better"  # "better": a strictly better validation mean (the paper); "significant": the
    #                         paired bootstrap interval of the gain lies above zero (optim/paired_bootstrap.py)
    confidence: float = 0.9  # the interval's coverage, reported on every validation decision
    max_cost_vs_forecast: float | None = None  # stop at this multiple of the forecast's expected calls / tokens
    credit: bool | None = None  # at the end, score each kept change reverted alone on validation (Trainer.ablate):
    #                              True always, False never, None when the memo holds every evaluation it needs (free)
    num_candidates: InitVar[int | None] = None  # the old name of max_proposals (still accepted, with a warning)

    def __post_init__(self, num_candidates: int | None) -> None:
        check_types(self)
        if num_candidates is not None:
            warnings.warn("TrainConfig(num_candidates=...) is now max_proposals (attempts per parameter per step, "
                          "one at a time)", DeprecationWarning, stacklevel=3)
            self.max_proposals = num_candidates
        if self.optimize not in ("all", "one", "joint"):
            raise ConfigError(f"optimize must be 'all', 'one' or 'joint', not {self.optimize!r}")
        if self.tie_rule not in ("strict", "equal"):
            raise ConfigError(f"tie_rule must be 'strict' or 'equal', not {self.tie_rule!r}")
        if self.accept not in ("better", "significant"):
            raise ConfigError(f"accept must be 'better' or 'significant', not {self.accept!r}")
        if self.minibatch_gate not in ("strict", "no_worse"):
            raise ConfigError(f"minibatch_gate must be 'strict' or 'no_worse', not {self.minibatch_gate!r}")
        check_ranges(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        if "num_candidates" in d:  # runs saved before the proposal loop: the same meaning, a new name
            d.setdefault("max_proposals", d.pop("num_candidates"))
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown training settings {unknown}; known: {sorted(known)}")
        return cls(**d)


KINDS = {"int": int, "float": (int, float), "str": str, "bool": bool}


def check_types(config: TrainConfig) -> None:
    """Refuse a setting of the wrong type (2.5 steps, "ten" steps, True as a batch size), naming it."""
    for f in fields(config):
        value, allowed = getattr(config, f.name), [t.strip() for t in str(f.type).split("|")]
        if value is None and "None" in allowed:
            continue
        if not any(isinstance(value, KINDS[t]) and (t == "bool" or not isinstance(value, bool))
                   for t in allowed if t in KINDS):
            raise ConfigError(f"TrainConfig {f.name} must be {' or '.join(allowed)}, not {value!r}")


# (lowest, highest, what to say): checked before a run folder exists, so a bad limit costs nothing
RANGES = {
    "max_steps": (1, math.inf, "at least 1"), "epochs": (1, math.inf, "at least 1"),
    "batch_size": (1, math.inf, "at least 1"), "concurrency": (1, math.inf, "at least 1"),
    "max_proposals": (1, math.inf, "at least 1"), "max_carried": (0, math.inf, "0 or more"),
    "max_failed": (0, math.inf, "0 or more"), "max_correct": (0, math.inf, "0 or more"),
    "num_demos": (0, math.inf, "0 or more"), "patience": (1, math.inf, "at least 1"),
    "max_calls": (1, math.inf, "at least 1"), "max_tokens": (1, math.inf, "at least 1"),
    "max_seconds": (0, math.inf, "a positive number of seconds"),
    "pass_threshold": (0.0, 1.0, "in [0, 1] (scores are in [0, 1])"),
    "backprop_threshold": (0.0, 1.0, "in [0, 1] (scores are in [0, 1])"),
    "min_gain": (0.0, 1.0, "in [0, 1] (scores are in [0, 1])"),
    "max_error_share": (0.0, 1.0, "in [0, 1] (a share of the batch)"),
    "confidence": (0.5, 0.999, "in [0.5, 0.999] (the interval's coverage)"),
    "max_cost_vs_forecast": (0.0, math.inf, "a positive multiple of the forecast's expected calls and tokens"),
}


def check_ranges(config: TrainConfig) -> None:
    """Refuse a setting outside its range (NaN included), naming it."""
    for name, (low, high, what) in RANGES.items():
        value = getattr(config, name, None)
        if value is None:
            continue
        if not (low <= value <= high) or (name in ("max_seconds", "max_cost_vs_forecast") and value == 0):
            raise ConfigError(f"{name} must be {what}, not {value!r}")


@dataclass
class RunSummary:
    run_id: str
    status: str
    steps: int
    baseline: dict[str, float | None]
    final: dict[str, float | None]
    best_val: float | None
    best_step: int
    usage: dict
    run_dir: str | None
    parameters: dict[str, str]
    error: str | None = None
    errored_samples: int = 0  # sample runs whose calls failed after retries: kept out of every score
    baseline_errored: dict = field(default_factory=dict)  # {split: n} baseline samples still errored after a resume's retry
    forecast_error: dict | None = None  # per role: the forecast's range vs what this fit() spent (forecasting/forecast.py)

    def to_dict(self) -> dict:
        return asdict(self)
