"""Exports carry values and provenance, read back exactly, and never carry a credential."""
import json
import re

import pytest
import yaml

from workbench import LLMCall, Parameter, Pipeline
from workbench.training.approval import CallbackApproval, Decision
from workbench.errors import ConfigError, WorkbenchError
from workbench.records.export import apply_export, build_export, export_prompts, load_export
from workbench.llm.cache import ResponseCache
from workbench.llm.models import Models
from workbench.records.store import RunStore
from workbench.testing import OpenAITestServer
from workbench.training.trainer import TrainConfig, Trainer

import cli_task
from scripted_tasks import GOOD, TEST, TRAIN, VAL, Optimizer, Shout, backward, same_text, task

SECRET = "sk-export-test-secret-0123456789"


def trained(tmp_path, approval=None):
    models = Models.scripted(task, backward, Optimizer())
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, models, approval=approval, task="shout",
                      config=TrainConfig(max_steps=2, batch_size=4, concurrency=2), run_dir=tmp_path / "run")
    trainer.fit()
    return trainer


class Tricky(Pipeline):
    """Values that break naive formats: fences, headings, trailing newlines, quotes, unicode."""

    def __init__(self):
        self.a = Parameter("tricky.fences", "Use ```json\n{\"k\": 1}\n```\nand ```` too.\n", description="x")
        self.b = Parameter("tricky.heading", "## `tricky.fences`\n  indented: yes\n\n", role="output_format")
        self.c = Parameter("tricky.plain", "naïve «quotes» 'single' \"double\" #hash: colon", trainable=False)
        self.d = Parameter("tricky.empty", "", role="text")
        self.node = LLMCall("tricky", "{{fences}}{{heading}}{{plain}}{{empty}}", [self.a, self.b, self.c, self.d])


@pytest.mark.parametrize("suffix", ["json", "yaml", "yml", "md"])
def test_round_trip_gives_the_same_values(tmp_path, suffix):
    source = Tricky()
    path = export_prompts(source, tmp_path / f"prompts.{suffix}")
    assert load_export(path) == source.state()
    fresh = Tricky()
    for p in fresh.parameters():
        p.value = "changed"
    apply_export(fresh, path)
    assert fresh.state() == source.state()
    assert fresh.named_parameters()["tricky.fences"].history[-1].source == "loaded"


def test_trained_run_round_trips_into_a_fresh_pipeline(tmp_path):
    trainer = trained(tmp_path)
    for fmt in ("json", "yaml", "md"):
        path = export_prompts(tmp_path / "run", tmp_path / f"out.{fmt}")
        fresh = Shout()
        apply_export(fresh, path)
        assert fresh.state() == trainer.pipeline.state() == {"shout.instruction": GOOD}


def test_provenance_of_a_policy_accepted_value_and_run_facts(tmp_path):
    trainer = trained(tmp_path)
    doc = json.loads(export_prompts(trainer, tmp_path / "p.json").read_text())
    run = doc["run"]
    summary = RunStore(tmp_path / "run").summary()
    assert run["run_id"] == trainer.run_id and run["task"] == "shout"
    assert run["models"] == {"task": "scripted", "backward": "scripted", "optimizer": "scripted"}
    assert (run["baseline_val"], run["best_val"], run["test"]) == (0.0, 1.0, 1.0) == \
        (summary["baseline"]["val"], summary["best_val"], summary["final"]["test"])
    assert run["config"]["max_steps"] == 2 and re.match(r"\d{4}-\d\d-\d\dT", doc["exported_at"])
    [param] = doc["parameters"]
    assert {k: param[k] for k in ("name", "role", "description", "value", "trainable")} == {
        "name": "shout.instruction", "role": "instruction", "description": "tells the model how to write the word",
        "value": GOOD, "trainable": True}
    prov = param["provenance"]
    # step 1's first proposal is rejected; its second attempt, which sees that rejection, is kept
    assert prov["run_id"] == trainer.run_id and prov["step"] == 1 and prov["source"] == "optimizer"
    assert prov["validation_score"] == 1.0 and prov["proposal_id"] == "p1-2"
    assert prov["decision"] == "accept" and prov["approved_by"] == "policy"
    # the same document whichever handle of the run is exported
    from_folder = build_export(tmp_path / "run")
    from_store = build_export(RunStore(tmp_path / "run"))
    for other in (from_folder, from_store):
        assert other["parameters"] == doc["parameters"]
        assert {k: v for k, v in other["run"].items()} == doc["run"]


def test_a_person_approved_value_says_so_in_every_format(tmp_path):
    asked = []

    def person(pending):
        asked.append(pending.proposal_id)
        return Decision("accept", "person")
    trainer = trained(tmp_path, approval=CallbackApproval(person))
    assert asked == ["p1-2"]  # the first proposal fails the minibatch gate before anyone is asked
    doc = build_export(trainer)
    prov = doc["parameters"][0]["provenance"]
    assert (prov["approved_by"], prov["decision"], prov["source"]) == ("person", "accept", "optimizer")
    assert re.match(r"\d{4}-\d\d-\d\dT", prov["decided_at"])
    md = export_prompts(trainer, tmp_path / "p.md").read_text()
    assert "approved by person" in md and "proposal `p1-2`" in md and "validation 1.000" in md
    assert yaml.safe_load(export_prompts(trainer, tmp_path / "p.yaml").read_text())["parameters"][0][
        "provenance"]["approved_by"] == "person"


def test_a_person_edited_value_is_sourced_human(tmp_path):
    edited = "Write the word in UPPERCASE."
    trainer = trained(tmp_path, approval=CallbackApproval(lambda p: Decision("edit", "person", text=edited)))
    prov = build_export(trainer)["parameters"][0]
    assert prov["value"] == edited
    assert (prov["provenance"]["source"], prov["provenance"]["decision"], prov["provenance"]["approved_by"]) == \
        ("human", "edit", "person")
    assert "edited and approved by person" in export_prompts(trainer, tmp_path / "p.md").read_text()


def test_an_untrained_pipeline_exports_initial_values_without_a_run(tmp_path):
    doc = json.loads(export_prompts(Shout(), tmp_path / "p.json").read_text())
    assert doc["run"] is None
    prov = doc["parameters"][0]["provenance"]
    assert prov["source"] == "initial" and prov["step"] == 0 and prov["run_id"] is None
    assert "from a pipeline (no training run)" in export_prompts(Shout(), tmp_path / "p.md").read_text()


def test_api_keys_never_reach_the_run_folder_or_an_export(tmp_path):
    with OpenAITestServer(responder=cli_task.respond) as server:
        models = Models.from_endpoint(server.base_url, "test-model", api_key=SECRET,
                                      cache=ResponseCache(tmp_path / "cache.sqlite"))
        built = cli_task.shout_task()
        train, val, test = built.load(4, 4, 4)
        with models:
            trainer = Trainer(built.make_pipeline(), train, val, test, built.eval_fn, models, task="shout",
                              config=TrainConfig(max_steps=2, batch_size=2), run_dir=tmp_path / "run")
            trainer.fit()
    for fmt in ("json", "yaml", "md"):
        export_prompts(trainer, tmp_path / "run" / f"prompts.{fmt}")
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert len(files) >= 8
    for path in files:
        assert SECRET not in path.read_text(encoding="utf-8"), path

    # a key that slipped into the run's config (a hand edit, an older tool) is redacted on export
    config_path = tmp_path / "run" / "config.json"
    config = json.loads(config_path.read_text())
    config["api_key"] = SECRET
    config["endpoint"] = {"base_url": "http://x", "OPENAI_API_KEY": SECRET}
    config["models"]["api_key"] = SECRET
    config_path.write_text(json.dumps(config))
    for fmt in ("json", "yaml", "md"):
        text = export_prompts(tmp_path / "run", tmp_path / f"out.{fmt}", fmt).read_text()
        assert SECRET not in text


def test_unknown_names_and_bad_files_are_clear_errors(tmp_path):
    path = export_prompts(Tricky(), tmp_path / "tricky.json")
    with pytest.raises(ConfigError, match=r"tricky\.fences.*Shout lacks.*shout\.instruction"):
        apply_export(Shout(), path)
    with pytest.raises(ConfigError, match="cannot tell the export format"):
        export_prompts(Shout(), tmp_path / "prompts.txt")
    assert export_prompts(Shout(), tmp_path / "prompts.txt", fmt="md").read_text().startswith("# Tuned prompts")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_export(tmp_path / "broken.json")
    with pytest.raises(ConfigError, match="not found"):
        load_export(tmp_path / "missing.yaml")
    with pytest.raises(WorkbenchError, match="not a run folder|not found"):
        export_prompts(tmp_path / "no-run", tmp_path / "x.json")


def test_hand_written_mappings_load_too(tmp_path):
    (tmp_path / "values.yaml").write_text("shout.instruction: |\n  Shout it.\n")
    pipeline = Shout()
    apply_export(pipeline, tmp_path / "values.yaml")
    assert pipeline.state() == {"shout.instruction": "Shout it.\n"}


def test_export_replaces_files_atomically_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "p.json"
    target.write_text("old")
    export_prompts(Shout(), target)
    assert json.loads(target.read_text())["format"] == "workbench-prompts/1"
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]


def test_an_export_reads_decisions_typed_and_passes_over_damaged_ones(tmp_path):
    trainer = trained(tmp_path, approval=CallbackApproval(lambda p: Decision("accept", "person")))
    log = tmp_path / "run" / "events.jsonl"
    lines = log.read_text().splitlines()
    # another version wrote an extra field; a damaged line lost the action: neither breaks the export
    extra = [json.dumps({"type": "decision", "run_id": "run", "step": 9, "time": 0.0,
                         "data": {"proposal_id": "p9-9", "action": "accept", "by": "person", "text": None,
                                  "at": 0.0, "reviewer": "ana"}}),
             json.dumps({"type": "decision", "run_id": "run", "step": 9, "time": 0.0,
                         "data": {"proposal_id": "p1-2", "by": "nobody"}})]
    log.write_text("\n".join(lines + extra) + "\n")
    prov = build_export(tmp_path / "run")["parameters"][0]["provenance"]
    assert (prov["proposal_id"], prov["decision"], prov["approved_by"]) == ("p1-2", "accept", "person")
