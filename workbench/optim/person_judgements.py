"""A person's judgements of a parameter's values, as every later optimizer call reads them.

A reject's reason, an accept's reason, and an edit (the optimizer's text beside the person's) are
the strongest evidence the optimizer gets: the person knows what the failures cannot show. They
are kept in `ParameterMemory` (`Attempt.person_reason`, `Attempt.proposed`) and shown in full in
their own section near the top of the optimizer prompt, so no cut for length removes them.
"""
from __future__ import annotations

from typing import Sequence

from .memory import Attempt

JUDGEMENTS_HEADING = ("### What the person reviewing this run said about earlier values (their own words: "
                      "the strongest evidence; follow it and do not propose what they ruled out)")


def _outcome(a: Attempt) -> str:
    if a.accepted:
        return "kept" + (f" (validation {a.score:.3f})" if a.score is not None else "")
    return f"not kept: {a.reason}"


def format_judgement(a: Attempt) -> str:
    """One judgement: the value, what the person did and said, and what became of it."""
    reason = f"\n  Their reason: {a.person_reason}" if a.person_reason else ""
    if a.person_action == "edit":
        proposed = f"\n  The optimizer had proposed:\n    {a.proposed}" if a.proposed is not None else ""
        return (f"- Step {a.step}: the person EDITED the proposal; build on their text.{proposed}"
                f"\n  The person wrote instead:\n    {a.value}{reason}\n  Outcome: {_outcome(a)}")
    verb = "ACCEPTED" if a.person_action == "accept" else "REJECTED"
    return f"- Step {a.step}: the person {verb} this value:\n    {a.value}{reason}\n  Outcome: {_outcome(a)}"


def format_judgements(attempts: Sequence[Attempt]) -> str:
    return "\n".join(format_judgement(a) for a in attempts) or "(none)"


def judgement_sentences(attempts: Sequence[Attempt]) -> list[str]:
    """The person's reasons as short sentences, for the base model's one-line "Problem:"."""
    return [" ".join(a.person_reason.split()) for a in attempts if a.person_reason]
