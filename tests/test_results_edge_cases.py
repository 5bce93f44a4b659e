"""Audit of the results / report / export APIs as a new user meets them: a proposal that never reached
a decision, an output path that is a folder, a run that stopped before its baseline was checkpointed."""
import re

import pytest

from workbench.errors import ConfigError
from workbench.records.export import export_prompts
from workbench.llm.models import Models
from workbench.records.report import render_report, write_report
from workbench.records.results import open_run
from workbench.training.trainer import TrainConfig, Trainer

from scripted_tasks import TEST, TRAIN, VAL, Optimizer, Shout, backward, same_text, task


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """The optimizer's first idea fails the minibatch gate (no decision is ever asked), its second is kept."""
    folder = tmp_path_factory.mktemp("audit2") / "run"
    Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, Optimizer()),
            config=TrainConfig(max_steps=1, batch_size=4, concurrency=2), run_dir=folder, task="shout").fit()
    return folder


def visible_text(page: str) -> str:
    page = re.sub(r"<script.*?</script>", "", page, flags=re.S)
    return re.sub(r"<[^>]+>", " ", page)


def test_a_proposal_stopped_at_the_minibatch_gate_reads_no_decision_not_nan(run_dir):
    proposals = open_run(run_dir).proposals
    assert proposals.decision.isna().any() and proposals.decision.notna().any()  # the case under test
    page = render_report(open_run(run_dir))
    assert "<td>decision</td><td><bdi class=\"name\">no decision</bdi></td>" in page
    assert "accept by policy" in page
    assert not re.search(r"\bnan\b", visible_text(page), re.I)


def test_export_and_report_to_a_folder_are_one_clear_error(run_dir, tmp_path):
    folder = tmp_path / "out.json"
    folder.mkdir()
    with pytest.raises(ConfigError, match="out.json is a folder"):
        export_prompts(run_dir, folder)
    with pytest.raises(ConfigError, match="out.json is a folder"):
        write_report(open_run(run_dir), folder)
    assert list(tmp_path.iterdir()) == [folder] and not list(folder.iterdir())  # no temp file left behind


def test_a_run_killed_between_a_step_s_checkpoint_and_its_events_reads_as_that_checkpoint(tmp_path):
    """Killed after step 1's checkpoint file, before its step_finished event: resume, `workbench runs` and
    export take step 1 as done, so open_run and runs() must say step 1 and its best score, never the
    baseline's score beside step 1's prompt."""
    import json
    import shutil

    from workbench.records.results import runs
    from workbench.records.run_list import list_runs
    folder = tmp_path / "runs" / "run"
    Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, Optimizer()),
            config=TrainConfig(max_steps=2, batch_size=4, concurrency=2), run_dir=folder, task="shout").fit()
    lines = (folder / "events.jsonl").read_text().splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if json.loads(line)["type"] == "step_finished")
    (folder / "events.jsonl").write_text("".join(lines[:cut]))
    (folder / "summary.json").unlink()
    (folder / "checkpoints" / "step-0002.json").unlink()
    shutil.copy(folder / "checkpoints" / "step-0000.json", folder / "latest.json")
    checkpoint = json.loads((folder / "checkpoints" / "step-0001.json").read_text())
    assert checkpoint["best_val"] != checkpoint["baseline"]["val"]  # the case under test: step 1 kept a change

    run = open_run(folder)
    assert run.summary["steps"] == 1 and run.summary["best_val"] == checkpoint["best_val"]
    assert ", 1 steps," in repr(run)
    listed = runs(tmp_path / "runs").iloc[0]
    cli_row = list_runs(tmp_path / "runs")[0]
    assert (listed.steps, listed.best_val) == (cli_row["steps"], cli_row["best_val"]) == (1, checkpoint["best_val"])


def test_a_killed_run_s_usage_counts_the_calls_its_ledger_holds_after_the_last_checkpoint(tmp_path):
    """Killed in step 2: calls.jsonl holds every call paid, the checkpoint only those up to step 1. runs()
    and open_run(...).usage count them all (the unfinished step's as `unfinished`), as its resume will."""
    import json

    from workbench.records.call_ledger import ledger_usage
    from workbench.records.results import runs
    folder = tmp_path / "runs" / "run"
    Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, Optimizer()),
            config=TrainConfig(max_steps=2, batch_size=4, concurrency=2), run_dir=folder, task="shout").fit()
    lines = (folder / "events.jsonl").read_text().splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if json.loads(line)["type"] == "step_started"
               and json.loads(line)["step"] == 2) + 3
    (folder / "events.jsonl").write_text("".join(lines[:cut]))
    (folder / "summary.json").unlink()
    (folder / "checkpoints" / "step-0002.json").unlink()
    paid = sum(u["calls"] for u in ledger_usage(folder).values())
    checkpointed = sum(u["calls"] for u in json.loads((folder / "checkpoints" / "step-0001.json").read_text())
                       ["usage"].values())
    assert paid > checkpointed  # the case under test: calls paid after the last checkpoint

    assert runs(tmp_path / "runs").calls.iloc[0] == paid
    usage = open_run(folder).usage
    assert usage.calls.sum() == paid and set(usage[usage.stage == "unfinished"].step) == {2}
