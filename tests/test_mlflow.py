"""The MLflow sink against a local SQLite database in tmp_path (what a folder given to the sink holds,
and what MLflow's own UI and client open without flags): parameters, metrics per step, the event log
and the export as artifacts, tuned prompts in MLflow's prompt registry; live and after the fact."""
import json
import os
import sys

import pytest

mlflow = pytest.importorskip("mlflow", reason="mlflow is not installed (pip install 'workbench[mlflow]')")

from workbench.llm.models import Models  # noqa: E402
from workbench.records.sinks.mlflow import MLflowSink, log_run, prompt_name, tracking_uri_of  # noqa: E402
from workbench.training.trainer import TrainConfig, Trainer  # noqa: E402

from hostile_text import train_hostile_run  # noqa: E402
from scripted_tasks import BAD, GOOD, TEST, TRAIN, VAL, Optimizer, Shout, backward, same_text, task  # noqa: E402


def train(tmp_path, name, sink=None, steps=2, optimizer=None):
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, optimizer or Optimizer()),
                      config=TrainConfig(max_steps=steps, batch_size=4, concurrency=2), run_dir=tmp_path / name,
                      task="shout")
    if sink is not None:
        sink.attach(trainer)
    return trainer, trainer.fit()


def artifacts(client, run_id, path):
    return sorted(a.path for a in client.list_artifacts(run_id, path))


def test_live_sink_logs_params_metrics_artifacts_and_registers_prompts(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    store = tmp_path / "mlruns"
    sink = MLflowSink(store, experiment="shout-tests")
    trainer, summary = train(tmp_path, "run", sink)
    # the folder holds one SQLite database, which MLflow's client opens as it is (no MLFLOW_ALLOW_FILE_STORE)
    assert sorted(p.name for p in store.iterdir()) == ["mlartifacts", "mlflow.db"]
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ
    uri = f"sqlite:///{store.resolve() / 'mlflow.db'}"
    assert sink.tracking_uri == uri and sink.view_command() == f"mlflow ui --backend-store-uri {uri}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    run = client.get_run(sink.mlflow_run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == trainer.run_id
    assert run.data.tags["workbench.status"] == "completed" and run.data.tags["workbench.task"] == "shout"
    params = run.data.params
    assert params["config.max_steps"] == "2" and params["config.batch_size"] == "4"
    assert params["splits.val"] == str(len(VAL)) and params["task"] == "shout" and params["pipeline"] == "Shout"
    assert params["models.task"] == "scripted"
    best = client.get_metric_history(run.info.run_id, "best_val")
    assert [(m.step, m.value) for m in best] == [(1, 1.0), (2, 1.0)]  # once per step: run_finished adds none
    minibatch = client.get_metric_history(run.info.run_id, "minibatch_score")
    assert [m.step for m in minibatch] == [1, 2]
    tokens = client.get_metric_history(run.info.run_id, "tokens.task")
    assert [m.step for m in tokens] == [1, 2] and tokens[1].value > tokens[0].value > 0
    assert run.data.metrics["final_test"] == summary.final["test"] == 1.0
    assert run.data.metrics["baseline_val"] == 0.0
    assert artifacts(client, run.info.run_id, "run") == ["run/config.json", "run/events.jsonl", "run/summary.json"]
    assert artifacts(client, run.info.run_id, "export") == ["export/prompts.json", "export/prompts.md"]
    local = client.download_artifacts(run.info.run_id, "export/prompts.json", str(tmp_path / "dl"))
    assert json.loads(open(local).read())["parameters"][0]["value"] == GOOD
    events = client.download_artifacts(run.info.run_id, "run/events.jsonl", str(tmp_path / "dl"))
    assert open(events).read() == (trainer.store.path / "events.jsonl").read_text()
    assert (store / "mlartifacts" / "shout-tests" / run.info.run_id / "artifacts" / "run" / "events.jsonl").is_file()

    name = prompt_name("shout", "shout.instruction")
    assert name == "shout.shout.instruction" and sink.registered == {name: 1}
    prompt = client.load_prompt(f"prompts:/{name}/1")
    assert prompt.template == GOOD
    assert prompt.tags["workbench.run_id"] == trainer.run_id and prompt.tags["workbench.validation_score"] == "1.0"
    linked = json.loads(client.get_run(sink.mlflow_run_id).data.tags["mlflow.linkedPrompts"])
    assert linked == [{"name": name, "version": "1"}]


def test_log_run_after_the_fact_versions_only_changed_prompts(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    store = tmp_path / "mlruns"
    trainer, _ = train(tmp_path, "first")
    first = log_run(trainer.store.path, store)
    name = prompt_name("shout", "shout.instruction")
    assert first.registered == {name: 1}
    again, _ = train(tmp_path, "second")  # reaches the same value: no new version
    assert log_run(again.store.path, store).registered == {name: 1}
    untrained, _ = train(tmp_path, "third", steps=1, optimizer=lambda messages: f"<PROPOSAL>{BAD}</PROPOSAL>")
    # every proposal fails: the start value stays, and differs from the latest version: a new version
    third = log_run(untrained.store.path, store)
    assert third.registered == {name: 2}
    client = first.client
    assert client.load_prompt(f"prompts:/{name}@latest").template == "Repeat the word."
    runs = client.search_runs([client.get_experiment_by_name("workbench").experiment_id])
    assert sorted(r.info.run_name for r in runs) == sorted([trainer.run_id, again.run_id, untrained.run_id])


def test_prompt_names_are_what_the_registry_accepts():
    assert prompt_name("multi hop/RAG", "answer.output_format") == "multi-hop-RAG.answer.output_format"
    assert prompt_name("", "a b") == "a-b"


def test_where_runs_go_a_folder_a_database_file_or_a_uri(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tracking_uri_of("mlruns") == f"sqlite:///{tmp_path.resolve() / 'mlruns' / 'mlflow.db'}"
    assert tracking_uri_of("team.db") == f"sqlite:///{tmp_path.resolve() / 'team.db'}"
    for uri in ("sqlite:///mlflow.db", "http://127.0.0.1:5000", "databricks", "file:///tmp/x"):
        assert tracking_uri_of(uri) == uri
    assert tracking_uri_of(None) is None and "MLFLOW_ALLOW_FILE_STORE" not in os.environ


def test_a_folder_that_already_is_a_file_store_stays_one(tmp_path, monkeypatch):
    """Runs mirrored by older versions into a file store: a resume goes on there, not in a new database."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    old = tmp_path / "mlruns"
    mlflow.MlflowClient(tracking_uri=old.as_uri()).create_experiment("workbench")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")
    assert tracking_uri_of(old) == old.resolve().as_uri()
    assert os.environ["MLFLOW_ALLOW_FILE_STORE"] == "true"  # MLflow 3.7+ reads a file store only with it
    assert not (old / "mlflow.db").exists()


def test_a_database_without_mlflows_database_parts_is_one_clear_error(tmp_path, monkeypatch):
    from workbench.errors import ConfigError
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)  # mlflow-skinny alone: no database parts
    with pytest.raises(ConfigError, match=r"needs its database parts .*pip install 'workbench\[mlflow\]'"):
        MLflowSink(tmp_path / "mlruns")


def test_a_role_named_with_markup_costs_no_metric(tmp_path, monkeypatch):
    """MLflow refuses a metric named `calls.<a href=...>`: the name is made acceptable, the step's metrics kept."""
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    sink = log_run(train_hostile_run(tmp_path), tmp_path / "mlruns")
    metrics = sink.client.get_run(sink.mlflow_run_id).data.metrics
    role = [k for k in metrics if k.startswith("calls.") and k not in ("calls.backward", "calls.optimizer")]
    assert len(role) == 1 and "javascript" in role[0] and "<" not in role[0], sorted(metrics)
    assert {"calls.backward", "calls.optimizer", "best_val", "final_val"} <= set(metrics)
