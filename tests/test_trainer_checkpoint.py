"""Checkpoints carry a schema version; on resume a damaged one is skipped (with a warning and an
event) and the previous one is used; a checkpoint written before schema versions still loads."""
import json

import pytest

from workbench import Models, TrainConfig, Trainer
from workbench.errors import DamagedFileWarning, WorkbenchError
from workbench.records.store import RunStore
from workbench.training.checkpoint import CHECKPOINT_SCHEMA_VERSION, checkpoint_problem

from scripted_tasks import GOOD, TEST, TRAIN, VAL, Optimizer, Shout, backward, same_text, task


def trained(tmp_path, steps=2):
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, Optimizer()),
                      run_dir=tmp_path / "run", config=TrainConfig(max_steps=steps, batch_size=4))
    trainer.fit()
    return RunStore(tmp_path / "run")


def resume(tmp_path, **kw):
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, Optimizer()),
                      run_dir=tmp_path / "run", resume=True, config=TrainConfig(max_steps=2, batch_size=4), **kw)
    return trainer


def test_checkpoints_carry_the_schema_version(tmp_path):
    store = trained(tmp_path, steps=1)
    assert [json.loads(p.read_text())["schema"] for p in store.checkpoints()] == [CHECKPOINT_SCHEMA_VERSION] * 2


def test_a_checkpoint_written_before_schema_versions_still_loads(tmp_path):
    store = trained(tmp_path)
    for path in store.checkpoints():
        state = json.loads(path.read_text())
        del state["schema"]
        path.write_text(json.dumps(state))
    trainer = resume(tmp_path)
    assert trainer.step == 2 and trainer.params["shout.instruction"].value == GOOD


@pytest.mark.parametrize("damage", [
    b"\x00\xff\xfe binary garbage",
    b"{}",
    b"[1, 2, 3]",
    b'{"step": 2, "best_val": 1.0, "best_step": 2, "baseline": {}, "curve": [], "memory": {}}',  # no parameters
    "drop:memory",
    "schema:99",
    "value:7",
])
def test_a_damaged_newest_checkpoint_is_skipped_and_the_previous_one_used(tmp_path, damage):
    store = trained(tmp_path)
    newest = store.checkpoints()[-1]
    assert newest.name == "step-0002.json"
    if isinstance(damage, bytes):
        newest.write_bytes(damage)
    else:
        state = json.loads(newest.read_text())
        what, arg = damage.split(":")
        if what == "drop":
            del state[arg]
        elif what == "schema":
            state["schema"] = int(arg)
        else:
            state["parameters"]["shout.instruction"]["value"] = int(arg)
        newest.write_text(json.dumps(state))
    with pytest.warns(DamagedFileWarning, match="step-0002.json"):
        trainer = resume(tmp_path)
    assert trainer.step == 1  # the previous checkpoint
    skipped = [e for e in RunStore(tmp_path / "run").events() if e.type == "checkpoint_skipped"]
    assert len(skipped) == 1 and skipped[0].data["path"].endswith("step-0002.json") and skipped[0].data["reason"]
    summary = trainer.fit()  # redoes step 2
    assert summary.status == "completed" and summary.steps == 2


def test_no_usable_checkpoint_is_refused_with_the_reason(tmp_path):
    store = trained(tmp_path, steps=1)
    for path in store.checkpoints():
        state = json.loads(path.read_text())
        state["schema"] = 99
        path.write_text(json.dumps(state))
    with pytest.raises(WorkbenchError, match=r"no usable checkpoint.*schema version 99"):
        resume(tmp_path)


def test_checkpoint_problem_names_what_is_wrong():
    assert "schema version 'x'" in checkpoint_problem({"schema": "x"})
    assert "'parameters'" in checkpoint_problem({"schema": 1, "step": 0, "memory": {}, "best_val": None,
                                                 "best_step": 0, "baseline": {}, "curve": []})
    assert "not an object" in checkpoint_problem([])


def test_a_run_that_ended_before_its_baseline_starts_again_on_resume_and_keeps_its_paid_evaluations(tmp_path):
    """No checkpoint means nothing to restore; resume used to refuse such a folder for good, and a new
    run in it was refused too ("already holds a run"). It starts again; the old log is kept aside."""
    first = Models.scripted(task, backward, Optimizer())
    stopped = Trainer(Shout(), TRAIN, VAL, TEST, same_text, first, run_dir=tmp_path / "run",
                      config=TrainConfig(max_steps=1, batch_size=4, max_calls=3, concurrency=1)).fit()
    assert stopped.status == "budget" and RunStore(tmp_path / "run").latest_checkpoint() is None
    paid = len(first.task.calls)
    with pytest.warns(UserWarning, match="ended before its baseline was checkpointed, so it starts again"):
        again = Trainer(Shout(), TRAIN, VAL, TEST, same_text, first, run_dir=tmp_path / "run", resume=True,
                        config=TrainConfig(max_steps=1, batch_size=4))
    summary = again.fit()
    assert summary.status == "completed" and summary.steps == 1
    fresh = Models.scripted(task, backward, Optimizer())
    Trainer(Shout(), TRAIN, VAL, TEST, same_text, fresh, run_dir=tmp_path / "fresh",
            config=TrainConfig(max_steps=1, batch_size=4)).fit()
    assert (paid, len(first.task.calls) - paid) == (3, len(fresh.task.calls) - 3)  # the 3 paid for were reused
    folder = tmp_path / "run"
    assert len(list(folder.glob("events.aborted-*.jsonl"))) == 1 and len(list(folder.glob("summary.aborted-*.json"))) == 1
    started = [e for e in RunStore(folder).events() if e.type == "run_started"]
    assert len(started) == 1 and started[0].data["resumed_from"] is None
    assert RunStore(folder).summary()["status"] == "completed"


def test_a_folder_with_a_damaged_checkpoint_is_still_refused_not_restarted(tmp_path):
    trained(tmp_path, steps=1)
    for path in RunStore(tmp_path / "run").checkpoints():
        path.write_bytes(b"\x00")
    (tmp_path / "run" / "latest.json").write_bytes(b"\x00")
    with pytest.raises(WorkbenchError, match="no usable checkpoint"):
        resume(tmp_path)
