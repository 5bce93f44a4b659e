"""Branching a run: a child from step k of a 4-step run, over HTTP to our test server.

The parent rejects every proposal of step 3 that reaches a person; the branch goes on from step 2
and accepts p3-7. It must end exactly where an uninterrupted run that accepted p3-7 ends, send the
server only requests of the steps after 2 (and fewer: the parent's evaluations are reused), and
leave the parent's folder byte-identical. Every reply is a function of the messages (cli_task.py).
"""
import json
import warnings
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

import cli_task
from scripted_tasks import Shout, same_text
from workbench.errors import BadArgumentError, ConfigError
from workbench.llm.models import Models
from workbench.records.family import branch_record, family_of
from workbench.records.store import RunStore
from workbench.testing import OpenAITestServer
from workbench.training.approval import CallbackApproval, Decision
from workbench.training.branching import branch
from workbench.training.trainer import TrainConfig, Trainer

TRAIN = cli_task.sample(8, 0)
VAL = [cli_task.Example(f"v-{w}", {"word": w}, w.upper(), {}) for w in cli_task.WORDS[12:16]]
TEST = [cli_task.Example(f"t-{w}", {"word": w}, w.upper(), {}) for w in cli_task.WORDS[16:20]]
CONFIG = TrainConfig(max_steps=4, batch_size=2, concurrency=4)


def rejects_step_3(pending):
    """The parent's person: rejects whatever reaches them in step 3, accepts the rest (validation decides)."""
    return Decision("reject" if pending.proposal_id.startswith("p3-") else "accept", "person")


def accepts_p3_7(pending):
    """The uninterrupted run a branch must equal: the same person, except that they accept p3-7."""
    return Decision("accept", "person") if pending.proposal_id == "p3-7" else rejects_step_3(pending)


def models_for(server, model="test-model"):
    return Models.from_endpoint(server.base_url, model, api_key="k", cache=None, max_concurrency=4, max_retries=1)


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def comparable(state):
    return {k: v for k, v in state.items() if k not in ("written", "usage")}


def outcome(summary):
    return {k: summary[k] for k in ("status", "steps", "baseline", "final", "best_val", "best_step", "parameters")}


def canonical(body):
    return json.dumps(body, sort_keys=True)


def requests_after_step(trainer, server, step):
    """Start counting the server's requests once `trainer` has checkpointed `step`."""
    mark = {}
    trainer.bus.subscribe(lambda e: mark.setdefault("at", len(server.requests)) if e.step == step else None,
                          {"checkpoint"})
    return mark


@pytest.fixture
def parent(tmp_path):
    with OpenAITestServer(responder=cli_task.respond) as server:
        models = models_for(server)
        trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, models, config=CONFIG,
                          approval=CallbackApproval(rejects_step_3), run_dir=tmp_path / "runs" / "parent")
        summary = trainer.fit()
        yield server, models, trainer, summary


def test_a_branch_pays_only_after_its_step_and_ends_where_the_same_decisions_end(parent, tmp_path):
    server, models, trainer, summary = parent
    parent_dir = trainer.store.path
    before = snapshot(parent_dir)
    assert summary.status == "completed" and summary.steps == 4

    served = len(server.requests)
    child = branch(parent_dir, proposal="p3-7", decision="accept", pipeline=Shout(), train=TRAIN, val=VAL, test=TEST,
                   eval_fn=same_text, models=models, approval=CallbackApproval(rejects_step_3))
    assert child.step == 2 and child.store.path.parent == parent_dir.parent
    result = child.fit()
    child_requests = Counter(canonical(b) for b in server.requests[served:])

    reference = Trainer(Shout(), TRAIN, VAL, TEST, same_text, models, config=CONFIG,
                        approval=CallbackApproval(accepts_p3_7), run_dir=tmp_path / "elsewhere" / "reference")
    mark = requests_after_step(reference, server, 2)
    expected = reference.fit()
    reference_after_2 = Counter(canonical(b) for b in server.requests[mark["at"]:])

    # the same decisions, the same run: every checkpoint after the branch point and the outcome
    assert outcome(result.to_dict()) == outcome(expected.to_dict())
    assert result.parameters != summary.parameters  # accepting p3-7 changed where the run went
    for step in (2, 3, 4):
        mine = json.loads((child.store.path / "checkpoints" / f"step-{step:04d}.json").read_text())
        theirs = json.loads((reference.store.path / "checkpoints" / f"step-{step:04d}.json").read_text())
        assert comparable(mine) == comparable(theirs), step
    # the branch sent only requests of the steps after 2, and fewer: the parent's evaluations were reused
    assert 0 < sum(child_requests.values()) < sum(reference_after_2.values())
    assert not child_requests - reference_after_2
    assert sum(u["calls"] for u in result.usage.values()) == sum(child_requests.values())
    # the parent is byte-identical; the branch names it
    assert snapshot(parent_dir) == before
    record = branch_record(child.store.path)
    assert record["parent"] == "parent" and record["step"] == 2
    assert record["decision"] == {"proposal_id": "p3-7", "action": "accept", "text": None}
    assert [m.run_id for m in family_of(parent_dir)] == ["parent", child.run_id]


def test_a_branch_of_a_finished_run_at_its_last_step_makes_no_call(parent):
    server, models, trainer, summary = parent
    served = server.request_count
    child = branch(trainer)  # a finished trainer lends its pipeline (copied), data, models and approval
    result = child.fit()
    assert server.request_count == served
    assert outcome(result.to_dict()) == outcome(summary.to_dict())
    assert sum(u.get("calls", 0) for u in result.usage.values()) == 0
    assert trainer.params["shout.instruction"] is not child.params["shout.instruction"]


def test_a_branch_killed_before_its_changed_step_takes_the_decision_when_resumed(parent, tmp_path):
    server, models, trainer, _ = parent
    first = branch(trainer, proposal="p3-7", decision="accept", run_dir=tmp_path / "runs" / "first")
    finished = first.fit()
    made = branch(trainer, proposal="p3-7", decision="accept", run_dir=tmp_path / "runs" / "second")
    del made  # "killed" before it trained: its folder holds the branch point and the decision
    resumed = Trainer(Shout(), TRAIN, VAL, TEST, same_text, models, config=CONFIG,
                      approval=CallbackApproval(rejects_step_3), run_dir=tmp_path / "runs" / "second", resume=True)
    assert resumed.resumed_from == 2 and set(resumed.forced_decisions) == {"p3-7"}
    assert outcome(resumed.fit().to_dict()) == outcome(finished.to_dict())


def test_settings_and_models_change_and_another_model_reuses_no_reply(parent):
    server, models, trainer, summary = parent
    served = len(server.requests)
    other = models_for(server, "other-model")
    child = branch(trainer.store.path, at_step=4, max_steps=5, epochs=2, pipeline=Shout(), train=TRAIN, val=VAL,
                   test=TEST, eval_fn=same_text, models=other, train_only=["shout.instruction"])
    changed = branch_record(child.store.path)["changed"]
    assert changed["max_steps"] == [4, 5] and changed["epochs"] == [1, 2]
    assert changed["models"]["task"] == ["test-model", "other-model"]
    child.fit()
    sent = server.requests[served:]
    assert sent and {b["model"] for b in sent} == {"other-model"}  # nothing paid by test-model was reused


def test_what_a_branch_refuses(parent, tmp_path):
    server, models, trainer, _ = parent
    folder = trainer.store.path
    with pytest.raises(ConfigError, match="no checkpoint of step 9"):
        branch(trainer, at_step=9)
    with pytest.raises(ConfigError, match="proposal of step 3"):
        branch(trainer, at_step=1, proposal="p3-7", decision="accept")
    with pytest.raises(ConfigError, match="no proposal p3-99"):
        branch(trainer, proposal="p3-99", decision="accept")
    with pytest.raises(ConfigError, match="kept in parent already"):
        branch(trainer, proposal="p2-5", decision="accept")
    with pytest.raises(BadArgumentError, match="needs the edited text"):
        branch(trainer, proposal="p3-7", decision="edit")
    with pytest.raises(ConfigError, match="needs pipeline, train, val, test, eval_fn, models"):
        branch(folder, at_step=2)
    with pytest.raises(ConfigError, match="unknown settings"):
        branch(trainer, at_step=2, max_stepz=3)
    with pytest.raises(ConfigError, match="differs from what parent was trained on"):
        branch(folder, at_step=2, pipeline=Shout(), train=TRAIN[:4], val=VAL, test=TEST, eval_fn=same_text,
               models=models)
    assert [p.name for p in folder.parent.iterdir()] == ["parent"]  # a refused branch leaves no folder


def test_an_edited_text_is_kept_as_written(parent):
    server, models, trainer, _ = parent
    text = "Rule 1: use capitals. Rule 2: use capitals. Rule 3: use capitals. <b>bold</b>\u202e"
    child = branch(trainer, proposal="p3-6", decision="edit", text=text, max_steps=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the decision was taken: no warning that it was not
        child.fit()
    assert child.params["shout.instruction"].value == text


def test_compare_the_family_curves_prompts_and_the_runs_table(parent):
    import workbench
    from workbench.records.results import open_run, runs

    server, models, trainer, summary = parent
    accepted = branch(trainer, proposal="p3-7", decision="accept", run_dir=trainer.store.path.parent / "accepted")
    accepted.fit()
    same = branch(trainer, at_step=4, run_dir=trainer.store.path.parent / "same")
    same.fit()
    fam = open_run(trainer.store.path).family
    assert fam.run_ids == ["parent", "accepted", "same"] == workbench.compare(same).run_ids
    curves = fam.curves
    branch_curve = curves[curves.run_id == "accepted"]
    assert list(branch_curve.step) == [0, 1, 2, 3, 4] and list(branch_curve.inherited) == [True] * 3 + [False] * 2
    parent_curve = curves[curves.run_id == "parent"]
    assert list(branch_curve.best_val)[:3] == list(parent_curve.best_val)[:3]  # the shared path
    spec = fam.spec()
    lines = [t for t in spec["data"] if t.get("showlegend", True)]
    assert [t["name"] for t in lines] == ["parent", "accepted", "same"]
    assert lines[1]["x"][0] == 2 and lines[2]["x"] == [4]  # a branch's line starts where it left its parent
    prompts = fam.prompts
    assert list(prompts.columns) == ["parent", "accepted", "same"]
    assert prompts.loc["shout.instruction", "same"] == prompts.loc["shout.instruction", "parent"]
    diffs = fam.diffs.set_index("run_id")
    assert not diffs.loc["accepted", "same"] and diffs.loc["same", "same"]
    assert any(op != "=" for op, _ in diffs.loc["accepted", "diff"])
    table = fam.runs.set_index("run_id")
    assert table.loc["accepted", "decision"] == "accept p3-7" and table.loc["accepted", "branch_step"] == 2
    listed = runs(trainer.store.path.parent).set_index("run_id")
    assert listed.loc["accepted", "parent"] == "parent" and listed.loc["accepted", "branch_step"] == 2
    assert pd.isna(listed.loc["parent", "parent"])


def test_a_branch_mirrored_to_mlflow_names_its_parent(parent, tmp_path):
    mlflow = pytest.importorskip("mlflow", reason="mlflow is not installed (pip install 'workbench[mlflow]')")
    from workbench.records.sinks.mlflow import MLflowSink, log_run

    server, models, trainer, _ = parent
    store = tmp_path / "mlruns"
    parent_sink = log_run(trainer.store.path, store, experiment="branches")  # the parent, after the fact
    child = branch(trainer, proposal="p3-7", decision="accept")
    sink = MLflowSink(store, experiment="branches")
    sink.attach(child)
    child.fit()
    client = mlflow.MlflowClient(tracking_uri=sink.tracking_uri)
    tags = client.get_run(sink.mlflow_run_id).data.tags
    assert tags["workbench.parent_run_id"] == "parent" and tags["workbench.branch_step"] == "2"
    assert tags["mlflow.parentRunId"] == parent_sink.mlflow_run_id  # nested under the parent in MLflow's UI
    steps = [m.step for m in client.get_metric_history(sink.mlflow_run_id, "minibatch_score")]
    assert steps == [3, 4]  # the steps the branch trained


def test_reports_and_exports_of_a_family(parent, tmp_path):
    from workbench.records.export import export_prompts
    from workbench.records.report import render_report
    from workbench.records.results import open_run

    server, models, trainer, _ = parent
    child = branch(trainer, proposal="p3-7", decision="accept", run_dir=trainer.store.path.parent / "b<i>x&amp;")
    child.fit()
    page = render_report(open_run(trainer.store.path))
    assert "b&lt;i&gt;x&amp;amp; (after step 2)" in page and "<i>x" not in page  # a hostile name is text
    page = render_report(open_run(child.store.path))
    assert "branched from" in page and "parent after step 2, accept p3-7" in page
    out = export_prompts(child.store.path, tmp_path / "prompts.json")
    exported = json.loads(Path(out).read_text())
    assert json.dumps(exported).count(child.params["shout.instruction"].value.replace('"', '\\"')) >= 1


def test_a_worse_text_is_kept_anyway_and_its_score_is_the_branch_s(parent):
    from workbench.records.results import open_run

    server, models, trainer, _ = parent
    child = branch(trainer, proposal="p3-6", decision="edit", text="Say it in French.", max_steps=3)
    result = child.fit()
    assert child.params["shout.instruction"].value == "Say it in French."
    row = open_run(child).proposals.set_index("proposal_id").loc["p3-6"]
    assert bool(row.kept) and "kept anyway" in row.reason and row.validation_complete
    assert result.best_val == row.validation == 0.0  # every French word is reversed: the kept value's own score


def test_damaged_and_missing_family_members(parent, tmp_path):
    import shutil

    from workbench.records.compare import compare
    from workbench.records.family import in_tree_order
    from workbench.records.run_list import list_runs

    server, models, trainer, summary = parent
    folder = trainer.store.path
    child = branch(trainer, at_step=4, run_dir=folder.parent / "child")
    child.fit()
    # a damaged checkpoint of the step asked for is refused, naming it; the parent is not touched
    copy = tmp_path / "copy" / "parent"
    shutil.copytree(folder, copy)
    (copy / "checkpoints" / "step-0002.json").write_bytes(b"\x00{not json")
    with pytest.raises(ConfigError, match="checkpoint of step 2 of parent cannot be branched from"):
        branch(copy, at_step=2, pipeline=Shout(), train=TRAIN, val=VAL, test=TEST, eval_fn=same_text, models=models)
    # configs edited by hand into a cycle: every run is still listed, once
    grand = branch(child, at_step=4, run_dir=folder.parent / "grand")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "branch": {"parent": "grand", "step": 4}}))
    ordered = [row["run_id"] for _, row in in_tree_order(list_runs(folder.parent))]
    assert sorted(ordered) == ["child", "grand", "parent"]
    assert sorted(compare(folder).run_ids) == ["child", "grand", "parent"]
    (folder / "config.json").write_text(json.dumps(config))
    # a parent deleted later: the branch is a root of its own, and still resumes and compares
    del grand
    shutil.rmtree(folder)
    assert compare(folder.parent / "child").run_ids == ["child", "grand"]
    resumed = Trainer(Shout(), TRAIN, VAL, TEST, same_text, models, config=CONFIG,
                      approval=CallbackApproval(rejects_step_3), run_dir=folder.parent / "grand", resume=True)
    assert resumed.fit().parameters == summary.parameters


def test_a_branch_stopped_in_its_changed_step_takes_the_decision_when_fit_again(parent):
    server, models, trainer, _ = parent
    expected = branch(trainer, proposal="p3-7", decision="accept").fit()
    child = branch(trainer, proposal="p3-7", decision="accept")
    unsubscribe = child.bus.subscribe(lambda e: child.stop() if e.data.get("proposal_id") == "p3-7" else None,
                                      {"proposal"})
    assert child.fit().status == "stopped" and child.step == 2  # back to the branch point
    unsubscribe()
    assert outcome(child.fit().to_dict()) == outcome(expected.to_dict())


def test_a_decision_that_never_comes_up_again_is_a_warning(parent):
    server, models, trainer, _ = parent
    child = branch(trainer, proposal="p3-10", decision="accept", max_proposals=2)  # p3-10 was the 5th attempt
    with pytest.warns(UserWarning, match="p3-10 did not come up again in step 3"):
        child.fit()
    assert child.forced_decisions == {}


def test_a_branch_s_run_says_as_many_steps_as_its_summary(parent, tmp_path):
    """A branch's curve starts at the baseline it inherits (rows up to its branch point are the parent's);
    its Run names the run's step."""
    from workbench.records.results import open_run
    server, models, trainer, _ = parent
    child = branch(trainer, at_step=2, run_dir=tmp_path / "runs" / "child")
    child.fit()
    run = open_run(child.store.path)
    assert run.summary["steps"] == 4 and run.curve["step"].tolist() == [0, 1, 2, 3, 4]
    assert run.curve["from_run"].tolist()[:3] == ["parent"] * 3
    assert ", 4 steps," in repr(run), repr(run)


def test_a_branch_carries_the_person_s_words_given_before_its_step_and_says_so(tmp_path):
    """The parent's person rejected p1-2 with a reason and gave feedback before step 1; a branch from step 1
    starts with both (its optimizer still reads the reason) and its contributions list them as the parent's;
    a branch from step 0 uses the feedback itself and says in which of its steps."""
    from workbench.records.results import open_run
    reason = "No more than two rules, please."

    def person(pending):
        if pending.proposal_id == "p1-2":
            return Decision("reject", "person", reason=reason)
        return Decision("accept", "policy")

    with OpenAITestServer(responder=cli_task.respond) as server:
        trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, models_for(server),
                          config=TrainConfig(max_steps=3, batch_size=2), approval=CallbackApproval(person),
                          run_dir=tmp_path / "runs" / "parent")
        trainer.feedback("Capital letters, every time.", parameter="shout.instruction")
        trainer.fit()
        served = len(server.requests)
        later = branch(trainer, at_step=1, run_dir=tmp_path / "runs" / "later")
        later.fit()
        optimizer_prompts = [canonical(b) for b in server.requests[served:] if "<CURRENT_VALUE>" in canonical(b)]
        early = branch(trainer, at_step=0, run_dir=tmp_path / "runs" / "early")
        early.fit()
    assert optimizer_prompts and all(reason in p for p in optimizer_prompts)  # the reason carried
    rows = open_run(later.store.path).contributions.set_index("kind")
    assert set(rows.index) == {"reject", "feedback"} and set(rows["from_run"]) == {"parent"}
    assert rows.loc["reject", "reason"] == reason and bool(rows.loc["reject", "used"])
    assert rows.loc["feedback", "used_at_step"] == 1  # used by the parent, before the branch point
    rows = open_run(early.store.path).contributions  # its person (the parent's, lent) rejects p1-2 again itself
    assert rows.kind.tolist() == ["feedback", "reject"] and rows.from_run.fillna("").tolist() == ["parent", ""]
    assert bool(rows.used.iloc[0]) and rows.used_at_step.iloc[0] == 1  # the branch's own step 1 used it
    assert open_run(trainer.store.path).contributions.from_run.isna().all()  # the parent's own words


def test_a_branch_forecast_counts_what_the_family_memo_already_holds(parent):
    """A branch from step 1 with the parent's settings re-walks its steps: the next minibatch is in the
    family's memo with today's values, the later ones with the values the parent kept; so the least the task
    can cost is what no run of the family evaluated, and the actual spend falls inside the range."""
    server, models, trainer, _ = parent
    child = branch(trainer, at_step=1)
    forecast = child.forecast()
    summary = child.fit()
    for role, spent in summary.usage.items():
        assert forecast.roles[role].calls.holds(spent["calls"]), (role, forecast.roles[role].calls, spent)


def test_an_export_of_a_branch_names_the_run_that_kept_each_value(parent, tmp_path):
    """A value a branch carries from its parent (kept at or before the branch point) was decided in the
    parent: its provenance names the parent and that decision, not the branch with no decision; a value
    the branch kept itself names the branch, and a branch of that branch at its last step names it too."""
    from workbench.records.export import build_export
    server, models, trainer, _ = parent
    mine = {p["name"]: p["provenance"] for p in build_export(trainer.store.path)["parameters"]}
    assert mine["shout.instruction"]["run_id"] == "parent" and mine["shout.instruction"]["decision"] == "accept"

    same = branch(trainer, run_dir=tmp_path / "same")  # at the last step: every value is the parent's
    same.fit()
    carried = {p["name"]: p["provenance"] for p in build_export(same.store.path)["parameters"]}
    assert carried == mine

    child = branch(trainer, proposal="p3-7", decision="accept", run_dir=tmp_path / "child")
    child.fit()
    own = {p["name"]: p["provenance"] for p in build_export(child.store.path)["parameters"]}["shout.instruction"]
    assert own["run_id"] == "child" and own["step"] > 2 and own["decision"] == "accept"
    grandchild = branch(child.store.path, pipeline=Shout(), train=TRAIN, val=VAL, test=TEST, eval_fn=same_text,
                        models=models, run_dir=tmp_path / "grandchild")
    grandchild.fit()
    assert {p["name"]: p["provenance"] for p in build_export(grandchild.store.path)["parameters"]}[
        "shout.instruction"] == own


def test_feedback_given_after_the_parent_s_last_checkpoint_goes_with_a_branch_from_it(tmp_path):
    """A resume recovers feedback the log holds and the checkpoint does not (given after it); a branch from
    that checkpoint carries it the same way, uses it, and its contributions say whose it was."""
    from workbench.records.results import open_run
    with OpenAITestServer(responder=cli_task.respond) as server:
        trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, models_for(server),
                          config=TrainConfig(max_steps=2, batch_size=2), run_dir=tmp_path / "runs" / "parent")
        trainer.fit()
        trainer.feedback("Capital letters, every time.", parameter="shout.instruction")  # after step 2's checkpoint
        later = trainer.feedback("And keep the word whole.", parameter="shout.instruction")
        child = branch(trainer, at_step=1, run_dir=tmp_path / "runs" / "early")  # before it was given: not carried
        child.fit()
        child = branch(trainer, run_dir=tmp_path / "runs" / "child", max_steps=3)
        child.fit()
    assert open_run(tmp_path / "runs" / "early").contributions.empty
    rows = open_run(child.store.path).contributions
    assert rows.text.tolist() == ["Capital letters, every time.", later.text]
    assert rows.used.tolist() == [True, True] and rows.used_at_step.tolist() == [3, 3]
    assert rows.from_run.tolist() == ["parent", "parent"]
    assert (open_run(child.store.path).gradients.source == "person").any()


def test_workbench_runs_names_the_parent_of_a_branch_listed_without_it(parent, tmp_path, capsys):
    """A branch whose parent is in another runs folder is listed at the top level: it says whose branch it is."""
    import argparse

    from workbench.cli.commands import cmd_runs
    server, models, trainer, _ = parent
    branch(trainer, at_step=2, run_dir=tmp_path / "elsewhere" / "x").fit()
    assert cmd_runs(argparse.Namespace(runs_dir=str(tmp_path / "elsewhere"))) == 0
    line = capsys.readouterr().out.splitlines()[1]
    assert line.startswith("x (branch of parent @2)"), line


def test_a_branch_s_credit_names_the_run_that_kept_each_change(parent, tmp_path):
    """A branch's kept changes include those its parent kept up to the branch point: each credit row names the
    run that kept it (the parent before the branch point, the branch after), as the export's provenance does."""
    from workbench.records.results import open_run
    server, models, trainer, _ = parent
    child = branch(trainer, proposal="p3-7", decision="accept", run_dir=tmp_path / "child")
    child.fit()
    credits = child.ablate()
    frame = open_run(child.store.path).credit
    assert len(frame) == len(credits) and frame["step"].min() <= 2 < frame["step"].max()
    assert [("parent" if step <= 2 else "child") for step in frame["step"]] == list(frame["kept_by"])
    trainer.ablate()
    assert set(open_run(trainer.store.path).credit["kept_by"]) == {"parent"}


def test_a_branch_s_curve_and_report_chart_start_at_the_baseline_it_inherits(parent, tmp_path):
    """A branch's own log starts after its branch point; its curve table and its report's score chart hold the
    path that led there (the baseline included), each inherited row naming the run that made it; a branch of a
    branch inherits its parent's inheritance too."""
    from workbench.records.branch_curve import lineage_chart
    from workbench.records.results import open_run
    server, models, trainer, _ = parent
    child = branch(trainer, proposal="p3-7", decision="accept", run_dir=tmp_path / "child")
    child.fit()
    mine, theirs = open_run(child.store.path).curve, open_run(trainer.store.path).curve
    assert list(mine["step"]) == list(range(0, int(mine["step"].max()) + 1))
    inherited = mine[mine["step"] <= 2]
    assert list(inherited["from_run"]) == ["parent"] * 3 and mine[mine["step"] > 2]["from_run"].isna().all()
    columns = ["step", "minibatch", "val", "best_val", "accepted", "rejected"]
    assert inherited[columns].reset_index(drop=True).equals(theirs[theirs["step"] <= 2][columns].reset_index(drop=True))
    chart = lineage_chart(child.store.path)
    assert [p["step"] for p in chart.steps.values()] == list(mine["step"])
    assert chart.baseline["val"] == theirs["val"][0]
    assert theirs["from_run"].isna().all() and lineage_chart(trainer.store.path).steps.keys() == \
        open_run(trainer.store.path).tables.curves.steps.keys()

    last = int(mine["step"].max())
    grandchild = branch(child.store.path, pipeline=Shout(), train=TRAIN, val=VAL, test=TEST, eval_fn=same_text,
                        models=models, run_dir=tmp_path / "grandchild")
    grandchild.fit()
    rows = open_run(grandchild.store.path).curve
    assert list(rows["from_run"]) == ["parent"] * 3 + ["child"] * (last - 2)
