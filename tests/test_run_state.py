"""`RunState` is what a run is: its checkpoint holds all of it, and restoring that checkpoint gives
the same state back (the live parameters included), or refuses before changing anything."""
import json
from pathlib import Path

import pytest

from workbench.engine.parameter import Parameter
from workbench.errors import WorkbenchError
from workbench.optim.demo_optimizer import DemoOptimizer
from workbench.training.run_state import RunState

from scripted_tasks import GOOD

OLD_CHECKPOINT = Path(__file__).parent / "fixtures" / "run_v_before_15" / "checkpoints" / "step-0001.json"


def fresh() -> RunState:
    return RunState({"shout.instruction": Parameter("shout.instruction", "Repeat the word.",
                                                    description="tells the model how to write the word")},
                    demo_pool=DemoOptimizer().pool)


def test_a_checkpoint_restores_the_whole_state_and_writes_back_the_same():
    saved = json.loads(OLD_CHECKPOINT.read_text())
    state = fresh()
    state.from_checkpoint(saved)
    assert state.params["shout.instruction"].value == GOOD and state.step == 1 and state.proposal_counter == 2
    assert state.next_proposal_id(2) == "p2-3"  # the id sequence goes on
    state.proposal_counter = 2
    again = state.to_checkpoint(saved["usage"])
    assert again == {k: v for k, v in saved.items() if k != "written"}  # (the store adds the time it wrote it)


def test_flags_and_the_demo_pool_survive_the_round_trip():
    state = fresh()
    state.set_sample_flag("s1", "pin", True)
    state.set_sample_flag("s2", "exclude", True)
    state.set_sample_flag("s2", "pin", True)  # pinning takes it out of the excluded ones
    state.set_sample_flag("s3", "exclude", True)
    pool = state.demo_pool  # the demo optimizer's own dict: a restore must refill it, not replace it
    pool["shout.instruction"] = {}
    other = fresh()
    other.from_checkpoint(json.loads(json.dumps(state.to_checkpoint({}))))
    assert other.sample_flags() == (frozenset({"s1", "s2"}), frozenset({"s3"}))
    restored_pool = other.demo_pool
    other.from_checkpoint(state.to_checkpoint({}))
    assert other.demo_pool is restored_pool


def test_a_checkpoint_of_another_pipeline_is_refused_before_anything_changes():
    saved = json.loads(OLD_CHECKPOINT.read_text())
    saved["parameters"]["other.instruction"] = saved["parameters"]["shout.instruction"]
    state = fresh()
    with pytest.raises(WorkbenchError, match="other.instruction"):
        state.from_checkpoint(saved)
    assert state.params["shout.instruction"].value == "Repeat the word." and state.step == 0
