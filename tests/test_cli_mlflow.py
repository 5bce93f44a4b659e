"""`workbench train --mlflow DIR` in real subprocesses against our test server, then the SQLite database
in DIR read back with MLflow's own client, without flags: the run, its per-step metrics, the event log; a stopped and resumed
run goes on in the same MLflow run; without mlflow installed the flag is refused in one line."""
import json
import sys

import pytest

mlflow = pytest.importorskip("mlflow", reason="mlflow is not installed (pip install 'workbench[mlflow]')")

from workbench.cli import main  # noqa: E402
from workbench.records.store import RunStore  # noqa: E402
from workbench.testing import OpenAITestServer  # noqa: E402

import cli_task  # noqa: E402
from test_cli import MODULE, workbench  # noqa: E402


@pytest.fixture
def read_store(monkeypatch):
    """MLflow's own client on the database a folder given to --mlflow holds: no MLFLOW_ALLOW_FILE_STORE."""
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)

    def client_of(store, patch=monkeypatch):
        uri = f"sqlite:///{store.resolve() / 'mlflow.db'}"
        return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    return client_of


def only_run(client, experiment):
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return runs[0]


def test_train_mirrors_the_run_into_mlflow(tmp_path, read_store):
    with OpenAITestServer(responder=cli_task.respond) as server:
        proc = workbench("train", "--module", MODULE, "--base-url", server.base_url, "--model", "test-model",
                         "--steps", 2, "--batch-size", 2, "--run-dir", "run", "--fold-system", "off",
                         "--mlflow", "./mlruns", "--mlflow-experiment", "cli-tests", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    client = read_store(tmp_path / "mlruns")
    run = only_run(client, "cli-tests")
    assert f"mirrored to MLflow run {run.info.run_id} (experiment cli-tests)" in proc.stderr
    # and says how to see it in MLflow's own UI
    assert f"see it in MLflow: mlflow ui --backend-store-uri sqlite:///{tmp_path.resolve()}/mlruns/mlflow.db" in proc.stderr
    store = RunStore(tmp_path / "run")
    summary = store.summary()
    assert run.info.status == "FINISHED" and run.info.run_name == summary["run_id"]
    assert run.data.params["config.max_steps"] == "2" and run.data.params["task"] == "shout"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_score")] == [1, 2]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "calls.task")] == [1, 2]
    assert run.data.metrics["final_val"] == summary["final"]["val"]
    events = client.download_artifacts(run.info.run_id, "run/events.jsonl", str(tmp_path / "dl"))
    assert open(events).read() == (store.path / "events.jsonl").read_text()
    # kept with the run as an absolute folder, so --resume mirrors into the same store from anywhere
    cli = json.loads((store.path / "cli.json").read_text())
    assert (cli["mlflow"], cli["mlflow_experiment"]) == (str((tmp_path / "mlruns").resolve()), "cli-tests")


def test_a_resumed_run_goes_on_in_the_same_mlflow_run(tmp_path, read_store, monkeypatch):
    with OpenAITestServer(responder=cli_task.respond) as server:
        stopped = workbench("train", "--module", MODULE, "--base-url", server.base_url, "--model", "test-model",
                            "--steps", 2, "--batch-size", 2, "--approval", "terminal", "--run-dir", "run",
                            "--mlflow", "mlruns", cwd=tmp_path, stdin="")
        assert stopped.returncode == 130, stopped.stderr
        with monkeypatch.context() as reading:
            client = read_store(tmp_path / "mlruns", reading)
            assert only_run(client, "workbench").info.status == "KILLED"
        (tmp_path / "elsewhere").mkdir()  # resumed from another folder, without --mlflow
        resumed = workbench("train", "--resume", tmp_path / "run", "--approval", "auto", "--base-url",
                            server.base_url, cwd=tmp_path / "elsewhere")
    assert resumed.returncode == 0, resumed.stderr
    client = read_store(tmp_path / "mlruns")
    run = only_run(client, "workbench")
    assert run.info.status == "FINISHED" and run.data.tags["workbench.status"] == "completed"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_score")] == [1, 2]


def test_without_mlflow_the_flag_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError, as if not installed
    monkeypatch.chdir(tmp_path)
    code = main(["train", "--module", MODULE, "--mlflow", "mlruns"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == ["workbench: error: the MLflow sink needs mlflow: pip install 'workbench[mlflow]'"]
    assert not (tmp_path / "runs").exists()
