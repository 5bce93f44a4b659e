"""Kill `workbench train` with SIGKILL mid-run, resume it, and end exactly where an uninterrupted run ends.

Both runs talk over HTTP to our test server in this process; its replies are functions of the
messages (cli_task.py), so the decisions of a replayed step are the same. Each run has its own
response cache (WORKBENCH_CACHE_DIR), which the resumed process reads back for the calls the killed
one already paid for.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from workbench.records.store import RunStore
from workbench.testing import OpenAITestServer

import cli_task

MODULE = f"{Path(__file__).parent / 'cli_task.py'}:shout_task"
SETTINGS = ["--module", MODULE, "--model", "test-model", "--steps", 8, "--epochs", 2, "--batch-size", 2,
            "--concurrency", 4]


def command(*args):
    return [sys.executable, "-m", "workbench", *map(str, args)]


def environment(cache_dir):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "OPENAI_"))}
    return {**env, "WORKBENCH_CACHE_DIR": str(cache_dir)}


def comparable(state):
    """A checkpoint without what legitimately differs between processes (wall time, money spent)."""
    return {k: v for k, v in state.items() if k not in ("written", "usage")}


def outcome(summary):
    return {k: summary[k] for k in ("status", "steps", "baseline", "final", "best_val", "best_step", "parameters")}


def test_sigkill_then_resume_ends_where_an_uninterrupted_run_ends(tmp_path):
    with OpenAITestServer(responder=cli_task.respond, latency_s=0.05) as server:
        url = ["--base-url", server.base_url]

        reference = subprocess.run(command("train", *SETTINGS, *url, "--run-dir", "reference", "--quiet"),
                                   cwd=tmp_path, env=environment(tmp_path / "cache-ref"), capture_output=True,
                                   text=True, timeout=300)
        assert reference.returncode == 0, reference.stderr
        expected = RunStore(tmp_path / "reference")
        assert len(expected.checkpoints()) == 9 and expected.summary()["status"] == "completed"

        env = environment(tmp_path / "cache")
        victim = subprocess.Popen(command("train", *SETTINGS, *url, "--run-dir", "run", "--quiet"), cwd=tmp_path,
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        first_step = tmp_path / "run" / "checkpoints" / "step-0001.json"
        deadline = time.monotonic() + 120
        while not first_step.exists():
            assert victim.poll() is None, f"the run ended before its first step: {victim.stderr.read()}"
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.005)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        victim.stderr.close()
        assert victim.returncode == -signal.SIGKILL

        run = RunStore(tmp_path / "run")
        assert run.summary() is None, "killed too late: the run had already finished"
        on_disk = run.checkpoints()
        assert 1 <= len(on_disk) - 1 < 8
        for path in [*on_disk, tmp_path / "run" / "latest.json", tmp_path / "run" / "config.json",
                     tmp_path / "run" / "cli.json"]:
            json.loads(path.read_text())  # every file the kill could have torn is complete JSON
        killed_at = run.latest_checkpoint()["step"]
        # latest.json is written right after the step's file, so a kill in between leaves it one step behind
        assert killed_at in (len(on_disk) - 1, len(on_disk) - 2)

        served_before = server.request_count
        resumed = subprocess.run(command("train", "--resume", "run", *url), cwd=tmp_path, env=env,
                                 capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        assert f"resuming run run after step {killed_at}" in resumed.stderr
        resumed_calls = server.request_count - served_before

        # the cache path works across processes: the same run from scratch on the resumed run's cache is free,
        # the endpoint's system-message probe included (its answer is in the cache too)
        served_before = server.request_count
        replay = subprocess.run(command("train", *SETTINGS, *url, "--run-dir", "replay", "--quiet"), cwd=tmp_path,
                                env=env, capture_output=True, text=True, timeout=300)
        assert replay.returncode == 0, replay.stderr
        assert server.request_count == served_before, server.requests[served_before:]

    assert (tmp_path / "cache" / "llm-cache.sqlite").is_file()
    summary = run.summary()
    assert outcome(summary) == outcome(expected.summary()) == outcome(RunStore(tmp_path / "replay").summary())
    assert summary["parameters"]["shout.instruction"] != "Repeat the word."  # training changed something
    # every step's checkpoint (parameters with their history, optimizer memory, curve) is the same
    assert [p.name for p in run.checkpoints()] == [p.name for p in expected.checkpoints()]
    for mine, theirs in zip(run.checkpoints(), expected.checkpoints()):
        assert comparable(json.loads(mine.read_text())) == comparable(json.loads(theirs.read_text())), mine.name
    # the resumed process re-did only the steps after the checkpoint: fewer HTTP calls than a whole run
    whole_run = sum(u["calls"] for u in expected.summary()["usage"].values())
    assert 0 < resumed_calls < whole_run
    # and what it printed is what it recorded
    assert f"final {summary['final']['val']:.3f}" in resumed.stdout
    assert "run folder  run" in resumed.stdout


def test_ctrl_c_stops_cleanly_and_the_run_resumes_to_the_end(tmp_path):
    with OpenAITestServer(responder=cli_task.respond, latency_s=0.05) as server:
        env = environment(tmp_path / "cache")
        url = ["--base-url", server.base_url]
        reference = subprocess.run(command("train", *SETTINGS, *url, "--run-dir", "reference", "--quiet"),
                                   cwd=tmp_path, env=environment(tmp_path / "cache-ref"), capture_output=True,
                                   text=True, timeout=300)
        assert reference.returncode == 0, reference.stderr
        proc = subprocess.Popen(command("train", *SETTINGS, *url, "--run-dir", "run"), cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while not (tmp_path / "run" / "checkpoints" / "step-0001.json").exists():
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.005)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "stopping at the next LLM call" in err and "continue with: workbench train --resume run" in err
        stopped = RunStore(tmp_path / "run").summary()
        assert stopped["status"] == "stopped" and 1 <= stopped["steps"] < 8
        latest = RunStore(tmp_path / "run").latest_checkpoint()  # a stop mid-step goes back to the last checkpoint
        assert stopped["steps"] == latest["step"] and stopped["best_val"] == latest["best_val"]
        assert stopped["parameters"] == {n: p["value"] for n, p in latest["parameters"].items()}
        assert "status      stopped" in out and "Traceback" not in err

        resumed = subprocess.run(command("train", "--resume", "run", *url), cwd=tmp_path, env=env,
                                 capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    summary = RunStore(tmp_path / "run").summary()
    assert summary["status"] == "completed" and summary["steps"] == 8
    assert outcome(summary) == outcome(RunStore(tmp_path / "reference").summary())  # as if never interrupted
    assert summary["parameters"]["shout.instruction"].startswith("Repeat the word. Rule 1: use capitals.")
