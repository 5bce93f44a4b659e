""""Branch from here" in the dashboard: the kernel makes the branch, the dashboard follows it.

A click on a decided proposal in the review history sends `{type: "branch", proposal_id, decision}`
(the other decision: accept what was not kept, reject what was), or `{type: "branch", step}` to decide
again from the step after `step` (the branch asks a person, auto-approve off). The kernel makes a branch of the
run after the step before that proposal (training/branching.py), moves every view of the dashboard
to the branch (a new funnel on its trainer), and starts it. The curves view then draws the family
chart (records/compare.py): the parent's curve and the branch's on one chart.
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from ..records.family import branch_record
from ..training.approval import AutoApproval
from ..training.branching import branch
from .funnel import Funnel
from .reducers import CONTROLS

if TYPE_CHECKING:
    from .dashboard import Workbench


def branch_and_follow(wb: "Workbench", proposal_id: str | None = None, decision: str | None = None, *,
                      at_step: int | None = None, start: bool = True, **settings: Any) -> Any:
    """Branch the dashboard's run (see `workbench.training.branching.branch` for the arguments), show the
    branch in this dashboard, and start it unless `start=False`. Returns the branch's trainer."""
    parent = wb.trainer
    child = branch(parent, at_step, proposal=proposal_id, decision=decision, **settings)
    follow(wb, child)
    if start:
        wb.start()
    record = branch_record(child.store.path) or {}
    what = f", {decision} {proposal_id}" if proposal_id else ", deciding again" if "approval" in settings else ""
    with wb.funnel._lock:  # after the start, whose "started" it replaces
        wb.funnel.state.run.say(f"branch of {record.get('parent')} after step {record.get('step')}{what}")
        wb.funnel.push_now(CONTROLS)
    return child


def deciding_again(approval: Any) -> Any:
    """The branch's approval when a person goes back to decide again: the parent's, asking (auto off)."""
    mine = copy.copy(approval)
    if not isinstance(mine, AutoApproval) and hasattr(mine, "auto"):
        mine.auto = False
    return mine


def follow(wb: "Workbench", trainer: Any) -> None:
    """Show another run (a branch) in `wb`: every view moves to a new funnel on `trainer`."""
    old = wb.funnel
    new = Funnel(trainer, interval=old.interval, prices=old.state.curves.prices)
    new.on_branch = old.on_branch
    trainer.has_dashboard = True
    wb.trainer, wb.funnel = trainer, new
    for view in wb.all_views():
        old.detach(view)
        view.funnel = new
        new.attach(view)
    old.close()
