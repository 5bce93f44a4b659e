"""What the optimizer remembers about each parameter across steps.

Accepted values with their validation scores, and failed proposals *with their text and why they
failed*, so the optimizer does not propose the same thing twice (a weakness of the reference
implementation, which showed failures without their text). What a person said about a value (a
reject's reason, an edit with the optimizer's text beside it) is kept as the strongest evidence.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass
class Attempt:
    value: str
    step: int
    score: float | None  # validation score (None when it never reached validation)
    accepted: bool
    reason: str
    minibatch: float | None = None
    by: str = "optimizer"  # optimizer | demos | human | initial (the starting value, with the baseline score)
    person_action: str | None = None  # accept | reject | edit when a person decided it
    person_reason: str | None = None  # the person's own words on this value (a reject's reason above all)
    proposed: str | None = None  # for a person's edit (by "human"): the optimizer's text the person changed


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

    def person_judgements(self, k: int = 8) -> list[Attempt]:
        """What a person said about values of this parameter (reasons, edits), oldest first: every
        later optimizer call sees them, so the optimizer does not propose what the person ruled out."""
        return [a for a in self.attempts if a.person_reason or a.person_action in ("reject", "edit")][-k:]

    def to_dict(self) -> dict:
        return {"name": self.name, "attempts": [_attempt_dict(a) for a in self.attempts]}

    @classmethod
    def from_dict(cls, d: dict) -> "ParameterMemory":
        known = {f.name for f in fields(Attempt)}  # a checkpoint of another version may hold other fields
        return cls(d["name"], [Attempt(**{k: v for k, v in a.items() if k in known}) for a in d.get("attempts", [])])


PERSON_FIELDS = ("person_action", "person_reason", "proposed")


def _attempt_dict(a: Attempt) -> dict:
    """An attempt as a checkpoint holds it; the person's fields only when a person spoke (so a run
    without a person writes the checkpoints earlier versions wrote)."""
    return {k: v for k, v in asdict(a).items() if v is not None or k not in PERSON_FIELDS}
