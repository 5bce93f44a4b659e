"""Every knob of a training run, and the record of how it ended."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

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
    num_candidates: int = 1  # proposals per parameter per step
    optimize: str = "all"  # "all" trained parameters each step, or "one" at a time (round robin)
    tie_rule: str = "strict"  # "strict": validation must beat the best; "equal": a tie is kept
    min_gain: float = 0.0  # a win must beat the best by more than this (noise margin on small val sets)
    early_stop_validation: bool = True  # stop validating a candidate once it can no longer win
    num_demos: int = 3
    max_calls: int | None = None
    max_tokens: int | None = None
    max_seconds: float | None = None
    patience: int | None = None  # stop after this many steps without a validation improvement
    max_error_share: float = 0.5  # stop when more than this share of a batch errors

    def __post_init__(self) -> None:
        if self.optimize not in ("all", "one"):
            raise ConfigError(f"optimize must be 'all' or 'one', not {self.optimize!r}")
        if self.tie_rule not in ("strict", "equal"):
            raise ConfigError(f"tie_rule must be 'strict' or 'equal', not {self.tie_rule!r}")
        for name in ("max_steps", "epochs", "batch_size", "concurrency", "num_candidates"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, not {getattr(self, name)}")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown training settings {unknown}; known: {sorted(known)}")
        return cls(**d)


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

    def to_dict(self) -> dict:
        return asdict(self)
