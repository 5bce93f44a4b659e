"""The run store survives damaged files and text that is not valid UTF-8, and never loses an event."""
import json
import os
import warnings

import pytest

from workbench.errors import DamagedFileWarning, WorkbenchError
from workbench.records.events import Event
from workbench.records.store import RunStore, json_bytes, remove_temp_files, write_json_atomic
from workbench.records.run_list import list_runs

LONE = "caf\udce9 \ud800 end"  # lone surrogates: what a bytes-decoded-with-surrogateescape string holds


def make_run(root, name="run-a", steps=3, task="t", started=False):
    store = RunStore.create(root / name, {"task": task})
    if started:  # a listed run needs its run_started event
        store.on_event(Event("run_started", {"run_id": name, "config": {}, "parameters": [], "splits": {},
                                             "resumed_from": None}, run_id=name))
    for step in range(steps):
        store.write_checkpoint(step, {"schema": 1, "step": step, "memory": {}, "best_step": step, "curve": [],
                                      "parameters": {"a.b": {"name": "a.b", "value": f"v{step}"}},
                                      "best_val": step / 10, "baseline": {"val": 0.0}})
        store.on_event(Event("checkpoint", {"path": f"step-{step}"}, run_id=name, step=step))
    return store


# -- checkpoints -------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", [b"\x00\xff\xfe binary", b"{\"step\": 2, \"parame", b"", b"[1, 2]",
                                    "\u00e9t\u00e9".encode("latin-1")])
def test_a_damaged_newest_checkpoint_is_skipped_for_the_one_before(tmp_path, damage):
    store = make_run(tmp_path)
    newest = store.checkpoints()[-1]
    newest.write_bytes(damage)
    with pytest.warns(DamagedFileWarning, match="step-0002.json"):
        assert store.read_checkpoint(newest) is None
    with pytest.warns(DamagedFileWarning):
        state = store.latest_checkpoint()
    assert state["step"] == 1 and state["parameters"]["a.b"]["value"] == "v1"


def test_latest_checkpoint_walks_back_past_readable_but_unusable_ones(tmp_path):
    store = make_run(tmp_path)
    store.checkpoints()[-1].write_text("{}")
    assert store.latest_checkpoint(check=None) == {}  # readable JSON, but not a checkpoint:
    with pytest.warns(DamagedFileWarning, match="lacks"):  # by default it is skipped, as resume skips it
        state = store.latest_checkpoint()
    assert state["step"] == 1


def test_no_readable_checkpoint_gives_none(tmp_path):
    store = make_run(tmp_path, steps=1)
    store.checkpoints()[0].write_bytes(b"\x80")
    with pytest.warns(DamagedFileWarning):
        assert store.latest_checkpoint() is None


def test_checkpoints_are_listed_newest_last(tmp_path):
    store = make_run(tmp_path, steps=3)
    assert [p.name for p in store.checkpoints()] == ["step-0000.json", "step-0001.json", "step-0002.json"]


# -- the event log -----------------------------------------------------------------------------

def test_a_torn_last_line_is_skipped_and_the_next_event_starts_a_fresh_line(tmp_path):
    store = make_run(tmp_path, steps=2)
    log = store.path / "events.jsonl"
    with open(log, "ab") as f:
        f.write(b'{"type": "checkpoint", "run_id": "run-a", "da')  # killed mid-write
    with pytest.warns(DamagedFileWarning, match="line 3"):
        assert [e.step for e in RunStore(store.path).events()] == [0, 1]
    resumed = RunStore(store.path)  # what a resumed trainer opens
    resumed.on_event(Event("control", {"action": "resume"}, run_id="run-a", step=2))
    resumed.on_event(Event("control", {"action": "stop"}, run_id="run-a", step=2))
    with pytest.warns(DamagedFileWarning):
        events = list(resumed.events())
    assert [e.type for e in events] == ["checkpoint", "checkpoint", "control", "control"]
    assert events[-1].data == {"action": "stop"}


def test_an_event_appended_to_a_torn_line_by_an_older_version_is_recovered_by_every_reader(tmp_path):
    """Before resume started on a fresh line, the next event was glued to the fragment. The store,
    `open_run` and the report read the log through one reader, which recovers that event."""
    from workbench.records.results import open_run
    store = make_run(tmp_path, steps=1)
    with open(store.path / "events.jsonl", "ab") as f:
        f.write(b'{"type": "checkpoint", "run_id": "run-a", "da')
        f.write(json_bytes(Event("control", {"action": "stop"}, run_id="run-a", step=1).to_dict()) + b"\n")
    assert [e.type for e in RunStore(store.path).events()] == ["checkpoint", "control"]
    assert [e.type for e in open_run(store.path).events()] == ["checkpoint", "control"]


def test_garbage_lines_in_the_middle_are_skipped_not_fatal(tmp_path):
    store = make_run(tmp_path, steps=1)
    log = store.path / "events.jsonl"
    with open(log, "ab") as f:
        f.write(b"\xff\xfe\x00 not utf-8\n[1, 2]\n{\"no_type\": 1}\n")
    store.on_event(Event("control", {"action": "stop"}, run_id="run-a"))
    with pytest.warns(DamagedFileWarning) as caught:
        types = [e.type for e in store.events()]
    assert types == ["checkpoint", "control"]
    assert len(caught) == 3


def test_every_log_line_carries_the_event_schema(tmp_path):
    store = make_run(tmp_path, steps=1)
    line = json.loads((store.path / "events.jsonl").read_text().splitlines()[0])
    assert line["schema"] >= 2 and line["type"] == "checkpoint"


# -- temp files --------------------------------------------------------------------------------

def test_leftover_temp_files_are_removed_on_the_first_write_not_by_readers(tmp_path):
    store = make_run(tmp_path, steps=1)
    leftovers = [store.path / ".latest.json.k2j4h1x9.tmp", store.path / ".summary.json.abc_12de",
                 store.path / "checkpoints" / ".step-0001.json.zz99aa00.tmp"]
    for path in leftovers:
        path.write_text('{"half": ')
    keep = store.path / "notes.txt"
    keep.write_text("mine")
    RunStore(store.path).latest_checkpoint()
    list_runs(tmp_path)
    assert all(p.exists() for p in leftovers)  # reading never deletes: a live writer may own them
    resumed = RunStore(store.path)
    resumed.write_checkpoint(1, {"parameters": {}})
    assert not any(p.exists() for p in leftovers) and keep.exists()


def test_create_removes_temp_files_of_a_crashed_create(tmp_path):
    folder = tmp_path / "run-b"
    folder.mkdir()
    (folder / ".config.json.q1w2e3r4.tmp").write_text("{")
    RunStore.create(folder, {"task": "t"})
    assert sorted(p.name for p in folder.iterdir()) == ["config.json"]


def test_an_atomic_write_leaves_no_temp_file(tmp_path):
    write_json_atomic(tmp_path / "x.json", {"a": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
    assert remove_temp_files(tmp_path) == []


# -- listing runs ------------------------------------------------------------------------------

def test_one_damaged_run_folder_does_not_hide_the_others(tmp_path):
    good = make_run(tmp_path, "run-good", started=True)
    good.write_summary({"status": "completed", "steps": 2, "best_val": 0.5, "baseline": {"val": 0.1},
                        "final": {"test": 0.4}})
    torn_summary = make_run(tmp_path, "run-torn-summary", started=True)
    (torn_summary.path / "summary.json").write_text('{"status": "comp')
    torn_cli = make_run(tmp_path, "run-torn-cli", started=True)
    (torn_cli.path / "cli.json").write_bytes(b'{"task": "cou')
    binary_config = make_run(tmp_path, "run-binary-config", started=True)
    (binary_config.path / "config.json").write_bytes(b"\x00\x01\x02\xff")
    list_config = make_run(tmp_path, "run-list-config", started=True)
    (list_config.path / "config.json").write_text("[]")
    rows = {r["run_id"]: r for r in list_runs(tmp_path)}
    assert len(rows) == 5
    assert rows["run-good"]["status"] == "completed" and rows["run-good"]["best_val"] == 0.5
    assert "damaged" not in rows["run-good"]
    for name, reason in [("run-torn-summary", "summary.json"), ("run-torn-cli", "cli.json"),
                         ("run-binary-config", "config.json"), ("run-list-config", "config.json")]:
        assert rows[name]["status"] == "damaged", name
        assert reason in rows[name]["damaged"], rows[name]["damaged"]


def test_a_run_with_only_a_damaged_checkpoint_is_listed_not_damaged(tmp_path):
    store = make_run(tmp_path, steps=2, started=True)
    store.checkpoints()[-1].write_bytes(b"\x00")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (row,) = list_runs(tmp_path)
    assert row["status"] == "running or interrupted" and row["steps"] == 0


def test_reading_a_damaged_config_names_the_file(tmp_path):
    store = make_run(tmp_path, steps=0)
    (store.path / "config.json").write_bytes(b"\xff")
    with pytest.raises(WorkbenchError, match=r"config.json is damaged"):
        store.config()


# -- lone surrogates ---------------------------------------------------------------------------

def test_lone_surrogates_are_stored_and_read_back_unchanged(tmp_path):
    store = RunStore.create(tmp_path / "run", {"task": LONE})
    store.on_event(Event("forward", {"split": "train", "phase": "train", "graph": None,
                                     "summary": {"sample_id": "s1", "inputs": {"word": LONE}, "prediction": LONE}}))
    store.on_event(Event("control", {"action": "stop"}))
    store.write_checkpoint(1, {"parameters": {"a.b": {"name": "a.b", "value": LONE}}})
    store.write_summary({"status": "failed", "error": LONE})
    forward, control = list(store.events())
    assert forward.data["summary"]["inputs"]["word"] == LONE and control.data == {"action": "stop"}
    assert store.latest_checkpoint(check=None)["parameters"]["a.b"]["value"] == LONE
    assert store.summary()["error"] == LONE and store.config()["task"] == LONE
    (store.path / "events.jsonl").read_bytes().decode("utf-8")  # the file itself is valid UTF-8


def test_ordinary_unicode_stays_readable_in_the_files(tmp_path):
    assert json_bytes({"w": "Grüße, 東京"}) == '{"w": "Grüße, 東京"}'.encode("utf-8")
    assert json.loads(json_bytes({"w": LONE})) == {"w": LONE}


def test_a_training_run_on_a_dataset_with_lone_surrogates_keeps_every_event(tmp_path):
    from scripted_tasks import TEST, VAL, Optimizer, Shout, backward, same_text, task
    from workbench.tasks.datasets import Example
    from workbench.llm.models import Models
    from workbench.training.trainer import TrainConfig, Trainer

    train = [Example(f"tr-{i}-\udcff", {"word": w}, w.upper(), {"note": "\ud83d"})
             for i, w in enumerate(["apple", "river", "stone", "cloud"])]
    seen = []
    trainer = Trainer(Shout(), train, VAL, TEST, same_text, Models.scripted(task, backward, Optimizer()),
                      config=TrainConfig(max_steps=1, batch_size=4, concurrency=2), run_dir=tmp_path / "run")
    trainer.bus.subscribe(seen.append)
    trainer.fit()
    stored = list(RunStore(tmp_path / "run").events())
    assert len(stored) == len(seen) and [e.type for e in stored] == [e.type for e in seen]
    assert any("tr-0-\udcff" in json.dumps(e.data, ensure_ascii=False) for e in stored)


def test_a_resumed_training_run_after_a_torn_log_line_loses_no_event(tmp_path):
    from scripted_tasks import TEST, TRAIN, VAL, Optimizer, Shout, backward, same_text, task
    from workbench.llm.models import Models
    from workbench.training.trainer import TrainConfig, Trainer

    def trainer(steps, **kw):
        return Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, Optimizer()),
                       config=TrainConfig(max_steps=steps, batch_size=4, concurrency=2), run_dir=tmp_path / "run", **kw)

    trainer(1).fit()
    log = tmp_path / "run" / "events.jsonl"
    before = len(log.read_bytes().splitlines())
    with open(log, "ab") as f:
        f.write(b'{"type": "node", "da')  # the process was killed in the middle of a line
    resumed = trainer(2, resume=True)
    seen = []
    resumed.bus.subscribe(seen.append)
    resumed.fit()
    with pytest.warns(DamagedFileWarning, match=f"line {before + 1}"):
        stored = list(RunStore(tmp_path / "run").events())
    assert [e.type for e in stored[-len(seen):]] == [e.type for e in seen]  # every event after the resume
    assert [e.type for e in stored].count("run_started") == 2 and stored[-1].type == "run_finished"
