"""A run folder written by the trainer before issue #15 restructured it (tests/fixtures/run_v_before_15/,
made by make_run_v_before_15.py) still resumes and opens; a checkpoint of an unknown schema is refused
with a message naming its version."""
import json
import shutil
from pathlib import Path

import pytest

from workbench import Models, TrainConfig, Trainer
from workbench.errors import WorkbenchError
from workbench.records.results import open_run
from workbench.records.store import CHECKPOINT_SCHEMA_VERSION, READABLE_VERSIONS

from scripted_tasks import GOOD, TEST, TRAIN, VAL, Optimizer, Shout, backward, same_text, task

FIXTURE = Path(__file__).parent / "fixtures" / "run_v_before_15"


@pytest.fixture
def old_run(tmp_path) -> Path:
    """A copy of the old run folder (a resume writes into it)."""
    return Path(shutil.copytree(FIXTURE, tmp_path / "run_v_before_15"))


def resume(run_dir: Path, steps: int = 2) -> Trainer:
    return Trainer(Shout(), TRAIN[:4], VAL[:2], TEST[:2], same_text, Models.scripted(task, backward, Optimizer()),
                   run_dir=run_dir, task="shout", resume=True,
                   config=TrainConfig(max_steps=steps, batch_size=2, concurrency=1))


def test_the_old_run_resumes_where_it_ended_and_trains_on(old_run):
    trainer = resume(old_run)
    assert trainer.resumed_from == 1 and trainer.step == 1
    assert trainer.params["shout.instruction"].value == GOOD
    assert [r.source for r in trainer.params["shout.instruction"].history] == ["initial", "optimizer"]
    assert trainer.best_val == 1.0 and trainer.best_step == 1 and trainer.baseline == {"val": 0.0, "test": 0.0}
    saved = json.loads((old_run / "checkpoints" / "step-0001.json").read_text())
    assert trainer.state()["proposal_counter"] == saved["proposal_counter"] == 2
    assert trainer.state()["memory"] == saved["memory"]
    summary = trainer.fit()
    assert summary.status == "completed" and summary.steps == 2
    assert summary.parameters["shout.instruction"] == GOOD
    ids = [e.data["proposal_id"] for e in open_run(old_run).events() if e.type == "proposal" and e.step == 2]
    assert all(int(pid.split("-")[1]) > 2 for pid in ids)  # the old run's id sequence goes on, never reused


def test_the_old_run_opens(old_run):
    run = open_run(old_run)
    assert run.summary["status"] == "completed" and run.summary["best_val"] == 1.0
    assert list(run.curve["step"]) == [0, 1]
    proposals = run.proposals
    assert len(proposals) == 2 and set(proposals["proposal_id"]) == {"p1-1", "p1-2"}
    assert run.parameters == {"shout.instruction": GOOD}


def test_a_checkpoint_of_an_unknown_schema_is_refused_naming_the_version(old_run):
    for path in [*(old_run / "checkpoints").glob("*.json"), old_run / "latest.json"]:
        state = json.loads(path.read_text())
        state["schema"] = 99
        path.write_text(json.dumps(state))
    with pytest.raises(WorkbenchError, match="schema version 99") as caught:
        resume(old_run)
    assert ", ".join(map(str, READABLE_VERSIONS)) in str(caught.value)
    assert CHECKPOINT_SCHEMA_VERSION in READABLE_VERSIONS
