"""The training loop with a scripted model whose accuracy depends on what the instruction says."""
import threading

import pytest

from workbench.training.approval import HumanApproval
from workbench.errors import ConfigError, WorkbenchError
from workbench.llm.models import Models
from workbench.records.store import RunStore
from workbench.records.run_list import list_runs
from workbench.training.trainer import TrainConfig, Trainer

from scripted_tasks import TEST, TRAIN, VAL, Optimizer, Shout, backward, same_text, task
from workbench.tasks.datasets import Example

def make(tmp_path, **kw):
    opt = Optimizer()
    models = Models.scripted(task, backward, opt)
    config = kw.pop("config", TrainConfig(max_steps=2, batch_size=4, concurrency=2))
    val = kw.pop("val", VAL)
    trainer = Trainer(Shout(), TRAIN, val, TEST, same_text, models, config=config,
                      run_dir=tmp_path / "run", **kw)
    return trainer, opt


def test_training_raises_validation_rejects_bad_proposal_and_remembers_it(tmp_path):
    trainer, opt = make(tmp_path)
    events = []
    trainer.bus.subscribe(events.append)
    summary = trainer.fit()
    assert summary.baseline == {"val": 0.0, "test": 0.0}
    assert summary.final == {"val": 1.0, "test": 1.0}
    assert summary.status == "completed" and summary.steps == 2
    assert trainer.params["shout.instruction"].value == "Repeat the word in UPPERCASE letters."
    updates = [e.data for e in events if e.type == "update"]
    assert [u["accepted"] for u in updates] == [False, True]
    assert updates[0]["value"] == "Repeat the word."  # reverted
    assert updates[0]["reason"] == "minibatch score stayed at 0.000 (a strict gain is required)"
    # the second attempt of the same step shows the failed proposal, with its text and why it failed
    assert "Repeat the word, in French." in opt.prompts[1] and "<FAILED step=1" in opt.prompts[1]
    assert [e.step for e in events if e.type == "update"] == [1, 1]
    # gradients reached the parameter, and only failed samples were back-propagated
    sel = next(e.data["samples"] for e in events if e.type == "selection")
    assert sum(s["selected"] for s in sel) == 2
    types = [e.type for e in events]
    assert types[0] == "run_started" and types[1:5] == ["forward"] * 4 and types[5] == "eval"
    assert events[-1].type == "run_finished"


def test_run_folder_holds_config_events_checkpoints_and_summary(tmp_path):
    trainer, _ = make(tmp_path)
    trainer.fit()
    store = RunStore(tmp_path / "run")
    assert [p.name for p in store.checkpoints()] == ["step-0000.json", "step-0001.json", "step-0002.json"]
    assert store.latest_checkpoint()["parameters"]["shout.instruction"]["value"].endswith("UPPERCASE letters.")
    types = [e.type for e in store.events()]
    assert types.count("checkpoint") == 3 and types[-1] == "run_finished"
    assert store.summary()["final"]["test"] == 1.0
    rows = list_runs(tmp_path)
    assert rows[0]["best_val"] == 1.0 and rows[0]["steps"] == 2


def test_human_edit_then_accept_validates_and_records_the_edited_text(tmp_path):
    trainer, opt = make(tmp_path, approval=HumanApproval(timeout=30))
    edited = "Write the word in UPPERCASE."

    def person():
        seen = set()
        while not done.is_set():
            pending = trainer.pending
            if pending and pending.proposal_id not in seen:
                seen.add(pending.proposal_id)
                assert trainer.decide("stale-id", "accept") is False  # stale buttons do nothing
                trainer.decide(pending.proposal_id, "edit", text=edited)
            done.wait(0.01)
    done = threading.Event()
    t = threading.Thread(target=person)
    t.start()
    events = []
    trainer.bus.subscribe(events.append)
    try:
        summary = trainer.start().result(timeout=60)
    finally:
        done.set()
        t.join()
    assert trainer.params["shout.instruction"].value == edited
    decision = next(e.data for e in events if e.type == "decision")
    assert decision["action"] == "edit" and decision["by"] == "person" and decision["text"] == edited
    assert trainer.params["shout.instruction"].history[-1].source == "human"
    assert summary.final["val"] == 1.0


def test_stop_request_ends_cleanly_with_valid_checkpoint(tmp_path):
    trainer, _ = make(tmp_path, approval=HumanApproval())
    fut = trainer.start()
    for _ in range(500):
        if trainer.pending:
            break
        threading.Event().wait(0.01)
    assert trainer.pending is not None
    trainer.stop()
    summary = fut.result(timeout=30)
    assert summary.status == "stopped"
    assert RunStore(tmp_path / "run").latest_checkpoint()["step"] == 0


def test_budget_stops_training_cleanly(tmp_path):
    trainer, _ = make(tmp_path, config=TrainConfig(max_steps=5, batch_size=4, max_calls=12))
    summary = trainer.fit()
    assert summary.status == "budget" and "call budget" in summary.error


def test_worker_thread_errors_reach_the_caller(tmp_path):
    def broken(messages):
        raise RuntimeError("scripted model broke")
    models = Models.scripted(broken)
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, "exact_match", models, run_dir=tmp_path / "r")
    with pytest.raises(WorkbenchError, match=r"4 of 4 samples errored .*RuntimeError: scripted model broke"):
        trainer.start().result(timeout=30)
    assert RunStore(tmp_path / "r").summary()["status"] == "failed"


def test_config_errors_name_the_setting(tmp_path):
    with pytest.raises(ConfigError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ConfigError, match="validation set is empty"):
        Trainer(Shout(), TRAIN, [], TEST, "exact_match", Models.scripted(task), run_dir=tmp_path / "x")


def test_errored_samples_are_kept_out_of_scores_and_counted(tmp_path):
    """The task endpoint fails for one word: that sample is errored, not a silent 0."""
    from workbench.errors import LLMCallError

    def flaky(messages):
        if "Word: lemon" in messages[-1]["content"]:
            raise LLMCallError("http://127.0.0.1:9/v1", "server error", 500)
        return task(messages)
    models = Models.scripted(flaky, backward, Optimizer())
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, models,
                      config=TrainConfig(max_steps=2, batch_size=4), run_dir=tmp_path / "run")
    events = []
    trainer.bus.subscribe(events.append)
    summary = trainer.fit()
    baseline_val = next(e.data for e in events if e.type == "eval" and e.data["split"] == "val")
    assert baseline_val["errored"] == 1 and baseline_val["n"] == 4
    assert summary.final["val"] == 1.0  # mean over the 3 scored samples, not 3/4
    assert summary.errored_samples >= 1
    errored = [e.data["summary"] for e in events if e.type == "forward" and e.data["summary"]["status"] == "errored"]
    assert errored and all("127.0.0.1:9" in s["error"] and s["score"] is None for s in errored)


def test_validation_of_a_losing_candidate_stops_early(tmp_path):
    """Validation wants lower case, so the baseline already scores 1.0: no candidate can beat it under
    the strict rule, and validation stops after its first chunk of 2 instead of running all 8."""
    words = ["apple", "river", "stone", "cloud", "maple", "tiger", "piano", "ocean"]
    val = [Example(f"v-{w}", {"word": w}, w, {}) for w in words]
    trainer, _ = make(tmp_path, config=TrainConfig(max_steps=1, batch_size=4, concurrency=2), val=val)
    events = []
    trainer.bus.subscribe(events.append)
    trainer.fit()
    proposal_evals = [e.data for e in events if e.type == "eval" and e.data["phase"] == "proposal"
                      and e.data["split"] == "val"]
    assert proposal_evals and proposal_evals[0]["complete"] is False and proposal_evals[0]["n"] < len(val)
    updates = [e.data for e in events if e.type == "update"]
    assert not any(u["accepted"] for u in updates) and any("stopped early" in u["reason"] for u in updates)
