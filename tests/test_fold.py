"""The one fold of the event log (workbench.records.fold): the same numbers live and from the stored log,
and every reader (open_run, the report's charts, CLI progress, the dashboard, the MLflow sink's
metrics) shows the fold's numbers, never its own sum."""
import io
import json

import pytest

from workbench.llm.models import Models
from workbench.records import usage_totals
from workbench.records.events import Event
from workbench.records.fold import RunFold
from workbench.records.progress import Progress
from workbench.records.results import open_run, runs
from workbench.records.store import read_events
from workbench.training.trainer import TrainConfig, Trainer
from workbench.ui.state import RunState

from scripted_tasks import TEST, TRAIN, VAL, Optimizer, Shout, backward, same_text, task


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished two-step run, with a fold, a progress display and a dashboard state applied live."""
    folder = tmp_path_factory.mktemp("fold") / "run"
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, Optimizer()),
                      config=TrainConfig(max_steps=2, batch_size=4, concurrency=2), run_dir=folder, task="shout")
    live, state, out = RunFold(keep_rows=False), RunState(prices={"task": (1.0, 2.0)}), io.StringIO()
    progress = Progress(2, {"train": 8, "val": 4, "test": 4}, 4, out=out, err=io.StringIO(), mode="off")
    for subscriber in (live.apply, state.apply, progress):
        trainer.bus.subscribe(subscriber)
    summary = trainer.fit()
    return {"folder": folder, "summary": summary, "live": live, "state": state, "progress": out.getvalue()}


def test_a_live_fold_and_the_stored_log_give_the_same_numbers(trained):
    live, stored = trained["live"], open_run(trained["folder"]).tables
    for name in ("run_id", "status", "step", "epoch", "usage", "baseline", "final", "best_val", "best_step",
                 "errored_samples", "last_step", "curve", "proposals", "sessions"):
        assert getattr(live, name) == getattr(stored, name), name
    assert live.curves.steps == stored.curves.steps and live.curves.proposals == stored.curves.proposals
    assert live.gradients == [] and stored.gradients  # the live readers keep no rows they never show


def test_the_fold_agrees_with_the_trainers_own_summary(trained):
    fold, summary = open_run(trained["folder"]).tables, trained["summary"]
    assert (fold.run_id, fold.status, fold.best_val, fold.best_step) == \
        (summary.run_id, summary.status, summary.best_val, summary.best_step)
    assert fold.baseline == summary.baseline and fold.final == summary.final and fold.usage == summary.usage
    assert fold.totals()["calls"] == sum(u["calls"] for u in summary.usage.values()) > 0


def test_before_the_end_the_fold_says_what_is_known_so_far(trained):
    """Cut at the first step's end, the fold reports that step's numbers, not the finished run's."""
    events = list(read_events(trained["folder"] / "events.jsonl"))
    first_end = next(i for i, e in enumerate(events) if e.type == "step_finished")
    fold = RunFold()
    for event in events[:first_end + 1]:
        fold.apply(event)
    step_finished = events[first_end].data
    assert fold.status == "running" and fold.step == 1 and fold.errored_samples is None
    assert fold.best_val == step_finished["best_val"] and fold.usage == step_finished["usage"]
    assert fold.baseline["val"] == next(e.data["score"] for e in events
                                        if e.type == "eval" and e.data["phase"] == "baseline" and e.data["split"] == "val")
    assert fold.final == {"val": fold.best_val, "test": None}


def test_every_reader_shows_the_folds_token_totals(trained):
    run = open_run(trained["folder"])
    totals = run.tables.totals()
    usage = run.usage
    assert (int(usage.calls.sum()), int(usage.tokens.sum())) == (totals["calls"], totals["tokens"])
    row = runs(trained["folder"].parent).iloc[0]
    assert (row.calls, row.tokens) == (totals["calls"], totals["tokens"])
    last_step_line = trained["progress"].strip().splitlines()[-1]
    step_usage = usage_totals.totals(run.tables.usage_points[-2][2])  # the last step's, before the final test
    assert last_step_line.endswith(f"{step_usage['calls']} calls, {step_usage['tokens']} tokens so far")
    shown = trained["state"].curves.totals()
    assert (shown["calls"], shown["tokens"]) == (totals["calls"], totals["tokens"])
    assert shown["cost"] == pytest.approx(usage_totals.cost_usd(shown["by_role"]["task"]["prompt_tokens"],
                                                                shown["by_role"]["task"]["completion_tokens"],
                                                                (1.0, 2.0)))
    assert trained["state"].run.finished["best_step"] == run.tables.best_step


def test_a_resume_replays_its_step_without_counting_it_twice(trained, tmp_path):
    """A log where the run was killed in step 2 and resumed after step 1: step 2's numbers are the replay's."""
    lines = (trained["folder"] / "events.jsonl").read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines]
    end_of_1 = next(i for i, e in enumerate(events) if e["type"] == "step_finished" and e["step"] == 1)
    killed = events[:end_of_1 + 1] + [e for e in events[end_of_1 + 1:] if e["type"] != "run_finished"][:5]
    started = dict(events[0], data=dict(events[0]["data"], resumed_from=1), step=1)
    fold_whole, fold_resumed = RunFold(), RunFold()
    for e in events:
        fold_whole.apply(Event.from_dict(e))
    for e in killed + [started] + events[end_of_1 + 1:]:
        fold_resumed.apply(Event.from_dict(e))
    for name in ("status", "usage", "best_val", "best_step", "baseline", "final", "curve", "proposals"):
        assert getattr(fold_resumed, name) == getattr(fold_whole, name), name
    assert len(fold_resumed.sessions) == 2


def test_usage_totals_price_each_role_and_skip_what_is_not_a_count():
    usage = {"task": {"calls": 2, "prompt_tokens": 1000, "completion_tokens": 10},
             "backward": {"calls": 1, "prompt_tokens": None, "completion_tokens": "7", "cache_hits": True},
             "<b>odd</b>": "not counters"}
    got = usage_totals.totals(usage, {"task": (0.5, 4.0)})
    assert (got["calls"], got["tokens"]) == (3, 1010)
    assert got["cost"] == pytest.approx((1000 * 0.5 + 10 * 4.0) / 1e6)
    assert got["by_role"]["backward"] == {"calls": 1, "prompt_tokens": 0, "completion_tokens": 0, "tokens": 0,
                                          "cache_hits": 0, "cost": None}
    assert set(got["by_role"]) == {"task", "backward"}
    assert usage_totals.totals(None) == {"calls": 0, "tokens": 0, "cost": None, "by_role": {}}
    assert usage_totals.totals({"task": {"calls": 1}}, {"task": (1.0, 1.0)})["cost"] == 0.0


def test_a_damaged_event_costs_its_own_numbers_not_the_fold():
    fold = RunFold()
    fold.apply(Event("run_started", {"run_id": "r", "config": {}, "parameters": [], "splits": {},
                                     "resumed_from": None}))
    fold.apply(Event("step_finished", {"usage": "garbage"}, step=1))  # lacks required fields: not folded
    fold.apply(Event("step_finished", {"epoch": 0, "train_score": None, "val_score": None, "best_val": 0.5,
                                       "accepted": [], "rejected": [], "usage": {"task": "not counters"}}, step=2))
    assert fold.status == "running" and fold.best_val == 0.5 and fold.best_step == 2
    assert fold.totals() == {"calls": 0, "tokens": 0, "cost": None, "by_role": {}}
