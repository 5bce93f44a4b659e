"""What the optimizer remembers about each parameter across steps.

Accepted values with their validation scores, and failed proposals *with their text and why they
failed*, so the optimizer does not propose the same thing twice (a weakness of the reference
implementation, which showed failures without their text).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Attempt:
    value: str
    step: int
    score: float | None  # validation score (None when it never reached validation)
    accepted: bool
    reason: str
    minibatch: float | None = None
    by: str = "optimizer"  # optimizer | demos | human | initial (the starting value, with the baseline score)


@dataclass
class ParameterMemory:
    name: str
    attempts: list[Attempt] = field(default_factory=list)

    def record(self, attempt: Attempt) -> None:
        self.attempts.append(attempt)

    def record_initial(self, value: str, score: float | None) -> None:
        """The starting value with its baseline validation score: the first line of the history."""
        if not any(a.by == "initial" for a in self.attempts):
            self.attempts.insert(0, Attempt(value, 0, score, True, "initial value (baseline)", None, "initial"))

    def best_values(self, k: int = 3) -> list[Attempt]:
        """Accepted values, best validation score first."""
        ok = [a for a in self.attempts if a.accepted and a.score is not None]
        return sorted(ok, key=lambda a: (-(a.score or 0.0), -a.step))[:k]

    def failures(self, k: int = 4) -> list[Attempt]:
        """The most recent failed proposals."""
        return [a for a in self.attempts if not a.accepted][-k:]

    def to_dict(self) -> dict:
        return {"name": self.name, "attempts": [asdict(a) for a in self.attempts]}

    @classmethod
    def from_dict(cls, d: dict) -> "ParameterMemory":
        return cls(d["name"], [Attempt(**a) for a in d.get("attempts", [])])
