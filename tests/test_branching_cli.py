"""`workbench branch RUN --step K` and the tree `workbench runs` shows, over HTTP to our test server."""
import json

import workbench as workbench_api

from workbench.records.family import branch_record
from workbench.records.store import RunStore
from workbench.testing import OpenAITestServer

import cli_task
from test_cli import MODULE, workbench

SETTINGS = ["--model", "test-model", "--fold-system", "off", "--quiet"]


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_branch_from_the_command_line_and_the_runs_tree(tmp_path, monkeypatch):
    with OpenAITestServer(responder=cli_task.respond, latency_s=0.005) as server:
        url = ["--base-url", server.base_url]
        trained = workbench("train", "--module", MODULE, *url, *SETTINGS, "--steps", 4, "--batch-size", 2,
                            "--run-dir", "runs/parent", cwd=tmp_path)
        assert trained.returncode == 0, trained.stderr
        parent = tmp_path / "runs" / "parent"
        before = snapshot(parent)

        served = server.request_count
        same = workbench("branch", "runs/parent", *url, *SETTINGS, "--run-dir", "runs/same", cwd=tmp_path)
        assert same.returncode == 0, same.stderr
        assert server.request_count == served  # at the last step with nothing changed: no call at all
        assert RunStore(tmp_path / "runs" / "same").summary()["parameters"] == RunStore(parent).summary()["parameters"]

        served = server.request_count
        fewer = workbench("branch", "runs/parent", "--step", 2, "--max-proposals", 1, *url, *SETTINGS,
                          "--run-dir", "runs/fewer", cwd=tmp_path)
        assert fewer.returncode == 0, fewer.stderr
        # its steps 3 and 4 make only the first attempt of each, which the parent paid for: all from the cache
        assert server.request_count == served
        record = branch_record(tmp_path / "runs" / "fewer")
        assert record["step"] == 2 and record["changed"]["max_proposals"] == [5, 1]
        assert json.loads((tmp_path / "runs" / "fewer" / "cli.json").read_text())["config"]["max_proposals"] == 1

        served = server.request_count
        nested = workbench("branch", "runs/fewer", "--step", 3, "--steps", 5, "--epochs", 2, *url, *SETTINGS,
                           "--model", "other-model", "--run-dir", "runs/nested", cwd=tmp_path)
        assert nested.returncode == 0, nested.stderr
        sent = server.requests[served:]
        assert sent and {b["model"] for b in sent} == {"other-model"}  # no reply of test-model was reused
        assert RunStore(tmp_path / "runs" / "nested").summary()["steps"] == 5
        resumed = workbench("train", "--resume", "runs/fewer", *url, cwd=tmp_path)
        assert resumed.returncode == 0 and "already finished" in resumed.stderr

        # from Python, a folder `workbench train` made is rebuilt from its cli.json (no pipeline= needed)
        monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))
        served = server.request_count
        child = workbench_api.branch(str(parent), run_dir=tmp_path / "runs" / "python")
        assert child.step == 4 and child.fit().status == "completed"
        assert server.request_count == served

    assert snapshot(parent) == before
    listed = workbench("runs", "--runs-dir", "runs", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()[1:]
    assert [line.split()[0] for line in lines[:1]] == ["parent"], listed.stdout
    assert lines[1].startswith("└ same @4") and lines[2].startswith("└ fewer @2"), listed.stdout
    assert lines[3].startswith("  └ nested @3")  # a branch of a branch is indented once more
    assert lines[4].startswith("└ python @4")


def test_branch_refusals_are_one_line(tmp_path):
    proc = workbench("branch", "nowhere", "--step", 1, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    (tmp_path / "runs").mkdir()
    proc = workbench("branch", "runs", "--accept", "p3-2", "--reject", "p3-1", cwd=tmp_path)
    assert proc.returncode == 2 and "not allowed with argument" in proc.stderr
