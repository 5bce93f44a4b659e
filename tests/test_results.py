"""Results as DataFrames: `open_run` on a finished folder and on a live trainer, `runs(root)` with
damaged folders, and a resumed run whose replayed step is not counted twice."""
import json
import shutil
import subprocess
import sys
import time

import pandas as pd
import pytest

import workbench
from workbench.training.approval import HumanApproval
from workbench.errors import WorkbenchError
from workbench.records.events import Event
from workbench.llm.client import LLMClient
from workbench.llm.models import Models
from workbench.llm.scripted import ScriptedModel
from workbench.llm.usage import UsageMeter
from workbench.records.results import RunFolderError, open_run, runs
from workbench.records.store import RunStore
from workbench.testing import OpenAITestServer
from workbench.training.trainer import TrainConfig, Trainer

from scripted_tasks import BAD, GOOD, TEST, TRAIN, VAL, Optimizer, Shout, backward, same_text, task


EDITED = "Write the word in UPPERCASE, always."


def trained(tmp_path, name="run", **kw):
    config = kw.pop("config", TrainConfig(max_steps=2, batch_size=4, concurrency=2))
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, Optimizer()),
                      config=config, run_dir=tmp_path / name, task="shout", **kw)
    return trainer


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("results")
    trainer = trained(tmp)
    summary = trainer.fit()
    return trainer, summary


def test_open_run_is_exported_at_the_top_level_and_loads_pandas_on_first_use():
    assert workbench.open_run is open_run and workbench.runs is runs
    code = "import sys, workbench; print('workbench.records.results' in sys.modules); from workbench import runs; " \
           "print('workbench.records.results' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]


def test_proposals_say_what_changed_both_gates_the_decision_and_why(finished):
    trainer, _ = finished
    p = open_run(trainer.store.path).proposals
    assert list(p.proposal_id) == ["p1-1", "p1-2"]
    first, second = p.iloc[0], p.iloc[1]
    assert (first.step, first.parameter, first.old, first.new, first.source, first.attempt) == \
        (1, "shout.instruction", "Repeat the word.", BAD, "optimizer", 1)
    assert (first.minibatch_before, first.minibatch_after, first.minibatch_passed) == (0.0, 0.0, False)
    assert pd.isna(first.validation) and pd.isna(first.decision) and first.kept == False  # noqa: E712 (never validated)
    assert "minibatch" in first.reason and first.value_after == "Repeat the word."
    assert (second.step, second.new, second.attempt, second.minibatch_after, second.validation) == \
        (1, GOOD, 2, 1.0, 1.0)
    assert (second.best_before, second.decision, second.decided_by, second.kept, second.value_after) == \
        (0.0, "accept", "policy", True, GOOD)
    assert "Sample" in second.gradient_summary


def test_curve_gradients_samples_and_usage(finished):
    trainer, summary = finished
    run = open_run(trainer.store.path)
    curve = run.curve
    assert list(curve.step) == [0, 1, 2]
    assert curve.loc[0, ["val", "best_val", "test"]].tolist() == [0.0, 0.0, 0.0]
    assert curve.best_val.tolist() == [0.0, 1.0, 1.0] and curve.accepted.tolist() == [0, 1, 0]
    assert curve.test.iloc[-1] == summary.final["test"] == 1.0

    g = run.gradients
    assert set(g.step) == {1}  # step 2 had no failed sample to learn from
    on_param = g[g.target_kind == "parameter"]
    assert set(on_param.target) == {"shout.instruction"} and set(on_param.node_id) == {"shout"}
    assert set(on_param.call_index) == {1} and on_param.text.str.contains("capital").all()
    assert set(g[g.target_kind == "value"].target) == {"shout"}  # feedback on the node's output
    assert set(g.sample_id) <= {e.id for e in TRAIN}

    s = run.samples
    batch = s[(s.step == 1) & (s.phase == "train")]
    assert len(batch) == 4 and batch.selected.sum() == 2 and batch.selection_reason.str.len().gt(0).all()
    assert batch.inputs.map(lambda i: set(i)).eq({"word"}).all() and set(batch.status) == {"failed"}
    base = s[(s.phase == "baseline") & (s.split == "val")]
    assert sorted(base.sample_id) == sorted(e.id for e in VAL) and base.score.eq(0.0).all()
    final = s[s.phase == "final"]
    assert dict(zip(final.sample_id, final.prediction)) == {e.id: e.target for e in TEST}  # upper-cased words
    trials = s[s.phase == "proposal"]
    assert set(trials.proposal_id) == {"p1-1", "p1-2"} and set(trials.split) == {"minibatch", "val"}
    assert set(trials[trials.proposal_id == "p1-1"].split) == {"minibatch"}  # it failed there

    u = run.usage
    assert list(u.columns[:3]) == ["step", "stage", "role"]
    totals = u.groupby("role")[["calls", "prompt_tokens", "completion_tokens"]].sum()
    for role, counts in summary.usage.items():
        assert totals.loc[role].tolist() == [counts["calls"], counts["prompt_tokens"], counts["completion_tokens"]]
    assert (u.tokens == u.prompt_tokens + u.completion_tokens).all()
    assert set(u.stage) == {"baseline", "step", "final"} and (u.calls + u.cache_hits > 0).all()
    assert u[u.stage == "baseline"].role.tolist() == ["task"]  # the baseline only runs the task model
    assert u[(u.stage == "final")].calls.sum() == len(TEST)


def test_live_trainer_gives_the_same_rows_up_to_now(tmp_path):
    trainer = trained(tmp_path, approval=HumanApproval())
    trainer.start()
    deadline = time.monotonic() + 30
    while trainer.pending is None and time.monotonic() < deadline:
        time.sleep(0.02)
    pending = trainer.pending
    assert pending is not None
    live = open_run(trainer)
    waiting = live.proposals.set_index("proposal_id").loc[pending.proposal_id]
    assert waiting.new == GOOD and waiting.minibatch_passed and pd.isna(waiting.decision) and pd.isna(waiting.kept)
    assert live.summary["status"] == "running" and "running" in repr(live)
    assert "in progress" in set(live.usage.stage)
    assert live.curve.step.tolist() == [0]
    trainer.decide(pending.proposal_id, "edit", text=EDITED)
    summary = trainer.wait(30)
    assert summary.final["val"] == 1.0
    row = live.proposals.set_index("proposal_id").loc[pending.proposal_id]  # the same object reads the grown log
    assert (row.decision, row.decided_by, row.source, row.new, row.kept) == ("edit", "person", "human", EDITED, True)
    assert "in progress" not in set(live.usage.stage)
    folder = open_run(trainer.store.path)
    for table in ("curve", "proposals", "gradients", "samples", "usage"):
        pd.testing.assert_frame_equal(getattr(live, table), getattr(folder, table), check_like=True)
    assert live.parameters == folder.parameters == {"shout.instruction": EDITED}


def test_usage_over_http_counts_what_the_endpoint_served(tmp_path):
    """The task model is the real openai SDK against our test server: usage rows are the server's counts."""
    def respond(messages):
        return task(messages)
    with OpenAITestServer(responder=respond) as server:
        meter = UsageMeter()
        models = Models(task=LLMClient("shout-model", base_url=server.base_url, api_key="k", role="task",
                                       usage=meter, cache=None),
                        backward=ScriptedModel(backward, role="backward", usage=meter),
                        optimizer=ScriptedModel(Optimizer(), role="optimizer", usage=meter))
        trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, models,
                          config=TrainConfig(max_steps=1, batch_size=4, concurrency=2), run_dir=tmp_path / "r")
        trainer.fit()
        served = server.request_count
    usage = open_run(tmp_path / "r").usage
    assert usage[usage.role == "task"].calls.sum() == served > 0
    assert usage[usage.role == "task"].latency_s.sum() > 0


# -- resumed runs and damaged folders -----------------------------------------------------------------

def write_log(folder, events, config=True):
    folder.mkdir(parents=True)
    if config:
        (folder / "config.json").write_text(json.dumps({"task": "synthetic"}))
    store = RunStore(folder)
    for e in events:
        store.on_event(e)
    return folder


def started(resumed_from=None, t=0.0):
    return Event("run_started", {"run_id": "r", "config": {}, "parameters": [{"name": "a", "value": "x"}],
                                 "splits": {"train": 4, "val": 2, "test": 0}, "resumed_from": resumed_from}, "r", 0, t)


def proposal(pid, new, step, t):
    return Event("proposal", {"proposal_id": pid, "parameter": "a", "role": "instruction", "old": "x", "new": new,
                              "source": "optimizer", "gradient_summary": ""}, "r", step, t)


def step_finished(step, t, calls):
    return Event("step_finished", {"epoch": 0, "train_score": 0.5, "val_score": 0.5, "best_val": 0.5, "accepted": [],
                                   "rejected": ["p1-1"],
                                   "usage": {"task": {"calls": calls, "prompt_tokens": 10 * calls,
                                                      "completion_tokens": calls, "cache_hits": 0,
                                                      "latency_s": 0.1}}}, "r", step, t)


def test_a_replayed_step_replaces_what_the_killed_run_recorded(tmp_path):
    events = [started(None, 100.0),
              Event("eval", {"split": "val", "phase": "baseline", "score": 0.5, "n": 2, "errored": 0,
                             "proposal_id": None}, "r", 0, 101.0),
              proposal("p1-1", "killed attempt", 1, 102.0),
              Event("gradient", {"sample_id": "s1", "node_id": "n", "component": "n", "call_index": 1, "target": "a",
                                 "target_kind": "parameter", "score": 0.0, "text": "old feedback"}, "r", 1, 103.0),
              # killed here; resumed 1000 s later from the step-0 checkpoint, step 1 runs again
              started(0, 1100.0),
              proposal("p1-1", "replayed", 1, 1101.0),
              step_finished(1, 1102.0, calls=6)]
    folder = write_log(tmp_path / "runs" / "resumed", events)
    run = open_run(folder)
    assert run.proposals.new.tolist() == ["replayed"] and run.gradients.empty
    assert run.curve.step.tolist() == [0, 1]
    assert run.wall_time_s == pytest.approx(3.0 + 2.0)  # the downtime between sessions is not counted
    assert run.usage.calls.tolist() == [6]


def test_runs_lists_every_folder_and_damaged_ones_as_rows(tmp_path, finished):
    trainer, summary = finished
    root = tmp_path / "runs"
    shutil.copytree(trainer.store.path, root / "good")
    bad_config = write_log(root / "bad-config", [started(None, 5.0)])
    (bad_config / "config.json").write_text("{ not json")
    write_log(root / "no-events", [], config=True)
    torn = write_log(root / "torn", [started(None, 7.0), step_finished(1, 9.0, calls=3)])
    with open(torn / "events.jsonl", "a") as f:
        f.write('{"type": "step_finished", "run_id": "r", "st')  # killed mid-line
    (root / "exports").mkdir()  # not a run: skipped
    (root / "exports" / "prompts.json").write_text("{}")
    table = runs(root).set_index("run_id")
    assert sorted(table.index) == ["bad-config", "good", "no-events", "torn"]
    good = table.loc["good"]
    assert (good.task, good.status, good.steps, good.baseline_val, good.best_val, good.test) == \
        ("shout", "completed", 2, 0.0, 1.0, 1.0)
    assert good.calls == sum(u["calls"] for u in summary.usage.values()) and good.tokens > 0
    assert good.wall_time_s > 0
    assert table.loc["bad-config", "status"] == "damaged" and "config.json is damaged" in table.loc["bad-config", "error"]
    # config.json and no event: a kill before the run started (issue 21), which --resume starts again
    assert table.loc["no-events", "status"] == "incomplete start"
    assert "with the same flags and --run-dir" in table.loc["no-events", "error"]  # no cli.json to --resume from
    torn_row = table.loc["torn"]
    assert (torn_row.status, torn_row.steps, torn_row.calls, torn_row.wall_time_s) == \
        ("running or interrupted", 1, 3, 2.0)
    assert runs(root).run_id.iloc[-1] == "no-events"  # newest first; unknown start last


def test_the_python_table_and_the_cli_listing_agree_on_every_damaged_folder(tmp_path, finished):
    """`workbench.runs()` and `workbench runs` (list_runs) share one verdict: a torn summary.json was
    "completed" in one and damaged in the other; a binary events.jsonl the other way round."""
    import warnings

    from workbench.records.run_list import list_runs
    trainer, _ = finished
    root = tmp_path / "runs"
    damage = {"good": None, "torn-summary": ("summary.json", b'{"status": "comp'),
              "torn-cli": ("cli.json", b'{"task'), "binary-events": ("events.jsonl", b"\x00\xff\xfe"),
              "list-config": ("config.json", b"[]")}
    for name, spoil in damage.items():
        shutil.copytree(trainer.store.path, root / name)
        if spoil:
            (root / name / spoil[0]).write_bytes(spoil[1])
    (root / "no-events").mkdir()
    shutil.copy(trainer.store.path / "config.json", root / "no-events" / "config.json")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = runs(root).set_index("run_id")
        listed = {r["run_id"]: r for r in list_runs(root)}
    assert set(table.index) == set(listed) == set(damage) | {"no-events"}
    for name in listed:
        assert table.loc[name, "status"] == listed[name]["status"], name
        assert (listed[name]["status"] == "damaged") == (name not in ("good", "no-events")), name
        if name not in ("good", "no-events"):
            assert listed[name]["damaged"] == table.loc[name, "error"], name
    assert "summary.json is damaged" in listed["torn-summary"]["damaged"]
    assert "events.jsonl" in listed["binary-events"]["damaged"]
    # only config.json: killed before the run started, which is no damage (issue 21)
    assert listed["no-events"]["status"] == "incomplete start" and listed["no-events"]["note"] == table.loc["no-events", "error"]
    assert open_run(root / "no-events").summary["status"] == "incomplete start"  # its report says so too


def test_a_run_whose_event_log_is_lost_reads_its_status_from_summary_json(tmp_path, finished):
    trainer, summary = finished
    folder = tmp_path / "lost-log"
    shutil.copytree(trainer.store.path, folder)
    (folder / "events.jsonl").unlink()
    run = open_run(folder)
    assert (run.summary["status"], run.summary["best_val"]) == ("completed", summary.best_val)
    assert run.parameters == summary.parameters


def test_open_run_names_what_is_wrong(tmp_path):
    with pytest.raises(RunFolderError, match="is not a run folder"):
        open_run(tmp_path)
    with pytest.raises(RunFolderError, match="not a folder"):
        open_run(tmp_path / "missing")
    with pytest.raises(WorkbenchError, match="expects a run folder or a Trainer, got int"):
        open_run(3)
    with pytest.raises(RunFolderError, match="is not a folder"):
        runs(tmp_path / "nowhere")


def test_a_growing_log_is_read_incrementally_and_a_half_written_line_waits(tmp_path):
    folder = write_log(tmp_path / "live", [started(None, 1.0), proposal("p1-1", "first", 1, 2.0)])
    run = open_run(folder)
    assert run.proposals.new.tolist() == ["first"]
    line = json.dumps(proposal("p1-2", "second", 1, 3.0).to_dict())
    with open(folder / "events.jsonl", "a") as f:
        f.write(line[:25])  # the writer is mid-line
    assert run.proposals.new.tolist() == ["first"]
    with open(folder / "events.jsonl", "a") as f:
        f.write(line[25:] + "\n")
    assert run.proposals.new.tolist() == ["first", "second"]


def test_the_event_after_a_torn_line_is_recovered(tmp_path):
    """A kill mid-write leaves a fragment; the resumed run's first event lands on the same line."""
    folder = write_log(tmp_path / "torn", [started(None, 1.0), proposal("p1-1", "killed", 1, 2.0)])
    with open(folder / "events.jsonl", "a") as f:
        f.write('{"type": "gradient", "run_id": "r", "da')  # torn, no newline
        f.write(json.dumps(started(0, 10.0).to_dict()) + "\n")
        f.write(json.dumps(proposal("p1-1", "replayed", 1, 11.0).to_dict()) + "\n")
    run = open_run(folder)
    assert run.proposals.new.tolist() == ["replayed"] and len(run.tables.sessions) == 2


def test_a_joint_proposal_has_a_row_per_parameter_sharing_its_gates(tmp_path):
    def part(name, new):
        return Event("proposal", {"proposal_id": "p1-1", "parameter": name, "role": "instruction", "old": "x",
                                  "new": new, "source": "optimizer", "gradient_summary": "", "attempt": 1,
                                  "group": "a+b"}, "r", 1, 2.0)
    events = [started(None, 1.0), part("a", "new a"), part("b", "new b"),
              Event("minibatch", {"proposal_id": "p1-1", "before": 0.0, "after": 0.5, "passed": True}, "r", 1, 3.0),
              Event("validation", {"proposal_id": "p1-1", "score": 0.75, "best": 0.5, "passed": True}, "r", 1, 4.0)]
    events += [Event("update", {"proposal_id": "p1-1", "parameter": n, "accepted": True, "value": f"new {n}",
                                "reason": "validation 0.750 beats best 0.500"}, "r", 1, 5.0) for n in ("a", "b")]
    rows = open_run(write_log(tmp_path / "joint", events)).proposals
    assert rows[["proposal_id", "parameter", "new", "group"]].values.tolist() == [
        ["p1-1", "a", "new a", "a+b"], ["p1-1", "b", "new b", "a+b"]]
    assert rows.minibatch_after.tolist() == [0.5, 0.5] and rows.validation.tolist() == [0.75, 0.75]
    assert rows.kept.tolist() == [True, True] and rows.value_after.tolist() == ["new a", "new b"]


def test_notices_say_what_is_missing_and_why(tmp_path):
    events = [started(None, 1.0),
              Event("skipped", {"stage": "backward", "parameter": "a", "node_id": "n", "sample_id": "s1",
                                "error": "LLMCallError: 503 after 4 retries"}, "r", 1, 2.0),
              Event("disconnected", {"parameter": "b", "node_id": "m", "sample_id": "s1",
                                     "reason": "the output of m never reaches the loss"}, "r", 1, 2.5),
              Event("no_proposal", {"parameter": "a", "source": "optimizer", "reason": "it echoed its prompt",
                                    "reply": "### Parameter: a"}, "r", 1, 3.0)]
    notices = open_run(write_log(tmp_path / "n", events)).notices
    assert notices[["type", "stage", "parameter", "text"]].values.tolist() == [
        ["skipped", "backward", "a", "LLMCallError: 503 after 4 retries"],
        ["disconnected", "backward", "b", "the output of m never reaches the loss"],
        ["no_proposal", "optimizer", "a", "it echoed its prompt"]]
    assert notices.sample_id.tolist()[:2] == ["s1", "s1"] and notices.step.eq(1).all()
