"""One control channel into a run: typed controls, applied by the run's own thread between LLM calls
(or at once when no run is in progress), each recorded as a `control` event; a candidate's values are
in place only while it is evaluated."""
import threading

import pytest

from workbench import Models, TrainConfig, Trainer
from workbench.engine.parameter import Parameter, trying_values
from workbench.errors import BadArgumentError
from workbench.records.store import RunStore
from workbench.training.approval import AutoApproval, HumanApproval
from workbench.training.controls import AutoApprove, Exclude, Pin, Resume, Stop

from hostile_text import RLO_ID as HOSTILE
from scripted_tasks import TEST, TRAIN, VAL, Optimizer, Shout, backward, same_text, task


def make(tmp_path, **kw):
    return Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, Optimizer()),
                   run_dir=tmp_path / "run", config=TrainConfig(max_steps=1, batch_size=4, concurrency=2), **kw)


def controls_in(events):
    return [(e.data["action"], e.data["sample_id"], e.data["on"]) for e in events if e.type == "control"]


def test_controls_sent_to_a_running_run_are_applied_by_its_thread_and_recorded(tmp_path):
    trainer = make(tmp_path)
    seen, threads = [], {}
    trainer.bus.subscribe(lambda e: (seen.append(e), threads.setdefault(
        (e.data["action"], e.data["sample_id"]), threading.current_thread().name)), {"control"})
    batch = [e.id for e in trainer.batch_for(1)]
    future = trainer.start(paused=True)  # waits before its first call: a control meets a live run
    trainer.control(Pin(batch[0]))
    trainer.control(Exclude(batch[1]))
    trainer.control(Pin(batch[1]))  # pinning an excluded sample includes it again
    trainer.control(Exclude(batch[2]))
    trainer.control(Resume())
    assert future.result(timeout=60).status == "completed"
    run_thread = f"workbench-{trainer.run_id}"
    assert controls_in(seen) == [("pin", batch[0], None), ("exclude", batch[1], None), ("pin", batch[1], None),
                                 ("exclude", batch[2], None), ("resume", None, None)]
    assert set(threads.values()) == {run_thread}
    assert trainer.pinned == {batch[0], batch[1]} and trainer.excluded == {batch[2]}
    selection = next(e for e in RunStore(tmp_path / "run").events() if e.type == "selection")
    reasons = {s["sample_id"]: s["reason"] for s in selection.data["samples"]}
    assert reasons[batch[0]] == reasons[batch[1]] == "pinned by the user"
    assert reasons[batch[2]] == "excluded by the user"
    saved = RunStore(tmp_path / "run").latest_checkpoint()
    assert saved["pinned"] == sorted([batch[0], batch[1]]) and saved["excluded"] == [batch[2]]


def test_on_an_idle_trainer_a_control_is_applied_at_once(tmp_path):
    trainer = make(tmp_path, approval=HumanApproval(timeout=5))
    seen = []
    trainer.bus.subscribe(seen.append, {"control"})
    trainer.control(Pin(HOSTILE))  # an odd sample id is just text
    trainer.control(AutoApprove(True))
    assert trainer.pinned == {HOSTILE} and trainer.approval.auto is True
    assert controls_in(seen) == [("pin", HOSTILE, None), ("auto_approve", None, True)]
    trainer.control(Pin(HOSTILE, on=False))
    assert trainer.pinned == frozenset()
    with pytest.raises(AttributeError):
        trainer.pinned = {"x"}  # the sets are the run's: only a control changes them


def test_an_auto_approval_policy_stays_automatic(tmp_path):
    trainer = make(tmp_path, approval=AutoApproval())
    seen = []
    trainer.bus.subscribe(seen.append, {"control"})
    trainer.control(AutoApprove(False))
    assert controls_in(seen) == [("auto_approve", None, True)]  # the event says what is in effect


@pytest.mark.parametrize("bad", ["pause", None, Pin(""), Exclude(None)])
def test_what_is_not_a_control_is_refused(tmp_path, bad):
    trainer = make(tmp_path)
    with pytest.raises(BadArgumentError):
        trainer.control(bad)


def test_a_stop_is_recorded_at_once_and_ends_a_paused_run(tmp_path):
    trainer = make(tmp_path)
    seen = []
    trainer.bus.subscribe(seen.append, {"control", "run_finished"})
    future = trainer.start(paused=True)
    trainer.control(Stop())
    assert future.result(timeout=60).status == "stopped"
    assert [e.type for e in seen] == ["control", "run_finished"] and seen[0].data["action"] == "stop"


def test_a_candidate_is_in_place_only_inside_the_block_even_when_it_raises():
    p = Parameter("a.instruction", "current")
    with pytest.raises(RuntimeError):
        with trying_values({"a.instruction": p}, {"a.instruction": "candidate"}):
            assert p.value == "candidate"
            raise RuntimeError("the pipeline broke")
    assert p.value == "current" and [r.value for r in p.history] == ["current"]


def test_a_candidate_is_seen_only_by_the_evaluating_context_never_by_another_thread():
    """While a gate scores a candidate, a dashboard or an export on another thread reads the committed
    value; the runner's workers, which run in a copy of the evaluating context, read the candidate."""
    import contextvars
    import threading
    from concurrent.futures import ThreadPoolExecutor
    p = Parameter("a.instruction", "current")
    other = []
    with trying_values({"a.instruction": p}, {"a.instruction": "candidate"}):
        reader = threading.Thread(target=lambda: other.append(p.value))
        reader.start()
        reader.join()
        with ThreadPoolExecutor(2) as pool:  # as engine/runner.py submits each sample
            workers = [pool.submit(contextvars.copy_context().run, lambda: p.value).result() for _ in range(2)]
        assert p.value == "candidate" and p.to_dict()["value"] == "candidate"
    assert other == ["current"] and workers == ["candidate", "candidate"]
    assert p.value == "current" and [r.value for r in p.history] == ["current"]
