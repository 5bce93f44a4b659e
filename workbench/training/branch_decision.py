"""The other decision a branch takes on one proposal of the step after its branch point.

"What if I had accepted p3-2?": the branch replays step k+1 (from the family's memo and the
response cache, so it pays nothing it already paid) and, when proposal p3-2 comes up again, takes
the decision given here instead of asking. That decision is a person's and is final: the proposal
(or the edited text) is kept without the checks or the minibatch gate, and validated in full (no
early stop) so the branch's curve shows what it kept; when validation would not keep it, it is kept
anyway and says so in its reason (the run's best_val is then that value's score). A "reject" reverts it.
The decision is stored in the branch's config.json, so a branch killed during that step takes it
again when resumed.
"""
from __future__ import annotations

from ..errors import BadArgumentError, ConfigError
from .approval import Decision

DECISIONS = ("accept", "reject", "edit")


def decision_record(proposal: str, action: str, text: str | None = None) -> dict:
    """The branch record's `decision`: checked here, so a typo fails before any folder is made."""
    if action not in DECISIONS:
        raise BadArgumentError(f"a branch's decision must be one of {', '.join(DECISIONS)}, not {action!r}")
    if action == "edit" and (not isinstance(text, str) or not text.strip()):
        raise BadArgumentError(f"decision='edit' on {proposal} needs the edited text: text='...'")
    if action != "edit" and text is not None:
        raise BadArgumentError(f"text= goes with decision='edit', not {action!r}")
    return {"proposal_id": proposal, "action": action, "text": text}


def step_of_proposal(proposal: str) -> int:
    """The step a proposal id belongs to: p3-2 -> 3."""
    head = proposal[1:].split("-", 1)[0] if proposal.startswith("p") else ""
    if not head.isdigit() or "-" not in proposal:
        raise BadArgumentError(f"{proposal!r} is not a proposal id (they look like p3-2: step 3, the 2nd proposal)")
    return int(head)


def check_against_parent(record: dict, at_step: int, found: dict[str, dict], parent: str) -> None:
    """Refuse a decision the parent's log cannot take: another step's proposal, an unknown id, or the
    decision the parent already took (the branch would be the parent again, paid twice)."""
    pid, action = record["proposal_id"], record["action"]
    if step_of_proposal(pid) != at_step + 1:
        raise ConfigError(f"{pid} is a proposal of step {step_of_proposal(pid)}: a branch after step {at_step} can "
                          f"change a decision of step {at_step + 1} only (branch at step {step_of_proposal(pid) - 1})")
    if pid not in found:
        known = ", ".join(sorted(found)) or "none"
        raise ConfigError(f"{parent} has no proposal {pid} in step {at_step + 1} (its proposals there: {known})")
    kept = found[pid]["kept"]
    if action == "accept" and kept:
        raise ConfigError(f"{pid} was kept in {parent} already; a branch that accepts it is the same run")
    if action == "reject" and kept is False:
        raise ConfigError(f"{pid} was rejected in {parent} already ({found[pid]['reason']}); "
                          f"a branch that rejects it is the same run")


def as_decision(record: dict) -> Decision:
    return Decision(record["action"], "person", record.get("text"))


def decisions_still_due(config: dict, step: int) -> dict[str, Decision]:
    """The decision a branch (config.json) has yet to take when it goes on after `step`: due while the
    step after its branch point has not finished."""
    branch = config.get("branch") if isinstance(config, dict) else None
    record = branch.get("decision") if isinstance(branch, dict) else None
    if not isinstance(record, dict) or branch.get("step") != step:
        return {}
    return {record["proposal_id"]: as_decision(record)}
