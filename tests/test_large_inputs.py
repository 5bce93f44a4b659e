"""A 2 MB sample: said so once (a warning and an event), and its text stored once in the run folder,
while every reader (open_run, the memo on resume, read_events) still sees it whole."""
import warnings

import pytest

from workbench import Models, TrainConfig, Trainer
from workbench.records.blobs import LARGE_TEXT
from workbench.records.results import open_run
from workbench.records.store import RunStore
from workbench.tasks.datasets import Example

from scripted_tasks import TEST, TRAIN, VAL, Optimizer, Shout, backward, same_text, task

HUGE = "maple " + "\u00e9t\u00e9 <b>x</b> " * 200_000  # about 2.4 MB of text, not ASCII, with markup
BIG = Example("tr-huge", {"word": HUGE}, "MAPLE", {})


def big_task(messages):
    return task(messages) if "Word: maple " not in messages[-1]["content"] else "MAPLE"


def fit(tmp_path, **kwargs):
    models = Models.scripted(big_task, backward, Optimizer())
    models.task.identity = "big-task-model"  # known again by the evaluation memo after a resume
    trainer = Trainer(Shout(), [BIG, *TRAIN[:3]], VAL, TEST, same_text, models, run_dir=tmp_path / "run",
                      config=TrainConfig(max_steps=1, batch_size=4, epochs=2, **kwargs.pop("config", {})), **kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = trainer.fit()
    return summary, [w for w in caught if "characters" in str(w.message)]


def test_a_huge_sample_is_said_so_once_and_stored_once(tmp_path):
    summary, said = fit(tmp_path)
    assert summary.status == "completed"
    assert len(said) == 1 and "tr-huge" in str(said[0].message) and "blobs/" in str(said[0].message)
    events = list(RunStore(tmp_path / "run").events())
    (large,) = [e.data for e in events if e.type == "large_inputs"]
    assert large["samples"] == ["tr-huge"] and large["largest_chars"] == len(HUGE) and large["limit"] == LARGE_TEXT
    folder = tmp_path / "run"
    blobs = list((folder / "blobs").glob("*.txt"))
    assert HUGE.encode() in [b.read_bytes() for b in blobs]  # stored, whole, once (content-addressed)
    # the log and the memo refer to it instead of holding it on every evaluation
    assert (folder / "events.jsonl").stat().st_size < len(HUGE.encode()) / 4
    assert (folder / "eval_memo.jsonl").stat().st_size < len(HUGE.encode()) / 4
    # readers see it whole
    rows = open_run(folder).samples
    assert rows[rows.sample_id == "tr-huge"].inputs.iloc[0] == {"word": HUGE}
    forward = next(e for e in events if e.type == "forward" and e.data["summary"]["sample_id"] == "tr-huge")
    assert forward.data["summary"]["inputs"]["word"] == HUGE


def test_a_resume_reads_the_memo_back_and_does_not_warn_again(tmp_path):
    fit(tmp_path)
    models = Models.scripted(big_task, backward, Optimizer())
    models.task.identity = "big-task-model"
    trainer = Trainer(Shout(), [BIG, *TRAIN[:3]], VAL, TEST, same_text, models, run_dir=tmp_path / "run",
                      resume=True, config=TrainConfig(max_steps=1, batch_size=4, epochs=2))
    assert any(r.inputs == {"word": HUGE} for r, _ in trainer.eval_memo._entries.values())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit()
    assert not [w for w in caught if "characters" in str(w.message)]
    assert sum(e.type == "large_inputs" for e in RunStore(tmp_path / "run").events()) == 1


def test_a_missing_blob_reads_as_a_visible_note(tmp_path):
    fit(tmp_path)
    for blob in (tmp_path / "run" / "blobs").glob("*.txt"):
        blob.unlink()
    rows = open_run(tmp_path / "run").samples
    shown = rows[rows.sample_id == "tr-huge"].inputs.iloc[0]["word"]
    assert shown.startswith(f"[text of {len(HUGE)} characters stored in blobs/") and "cannot be read" in shown


@pytest.mark.parametrize("reference", ["../../etc/passwd", "/etc/passwd", "blobs/../config.json"])
def test_a_blob_reference_outside_blobs_is_not_read(tmp_path, reference):
    from workbench.records.blobs import internalize
    (tmp_path / "config.json").write_text("secret")
    text = internalize({"$blob": reference, "chars": 6}, tmp_path)
    assert "not read" in text and "secret" not in text


def test_a_branch_reads_its_parent_s_memo_with_the_parent_s_blobs(tmp_path):
    """The family's memos are read by a branch: a blob reference in the parent's memo names the parent's
    blobs/ folder, not the branch's, so the branch's samples (and the graphs its backward pass reads) hold
    the text, not a note that it cannot be read."""
    from workbench import branch
    fit(tmp_path)
    child = branch(tmp_path / "run", at_step=0, pipeline=Shout(), train=[BIG, *TRAIN[:3]], val=VAL, test=TEST,
                   eval_fn=same_text, models=Models.scripted(big_task, backward, Optimizer()),
                   run_dir=tmp_path / "child")
    held = [r.inputs["word"] for r, _ in child.eval_memo._entries.values() if r.sample_id == "tr-huge"]
    assert held and all(text == HUGE for text in held)
    child.fit()
    rows = open_run(tmp_path / "child").samples
    assert all(inputs == {"word": HUGE} for inputs in rows[rows.sample_id == "tr-huge"].inputs)
