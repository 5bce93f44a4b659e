"""Kill a real `workbench train` anywhere, resume it, and the record is the one an uninterrupted run leaves.

Each case SIGKILLs a `workbench train` process (from inside, at a narrow point named by the test-only
WORKBENCH_TEST_KILL_AT hook, or from outside at a moment read from its event log), resumes it with
`workbench train --resume`, and compares the folder with an uninterrupted run of the same settings:
parameters, scores, decisions, the checkpoints, each step logged as finished once and each checkpoint
once, the DataFrames of `open_run`, the MLflow history, and the calls the run counts against the
calls our HTTP test server served (all of them; at most the calls in flight at the kill are missing).
A longer sweep over random moments is bench/kill_resume.py.
"""
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import pytest

import cli_task
from workbench.errors import DamagedFileWarning
from workbench.llm.probe import PROBE_USER
from workbench.records.results import open_run
from workbench.records.store import RunStore
from workbench.testing import OpenAITestServer

MODULE = f"{Path(__file__).parent / 'cli_task.py'}:shout_task"
SETTINGS = ["--module", MODULE, "--model", "test-model", "--steps", 4, "--batch-size", 2, "--concurrency", 4]
CONCURRENCY = 4  # the most calls a kill can catch in flight
STEPS = 4


def command(*args):
    return [sys.executable, "-m", "workbench", *map(str, args)]


def environment(cache_dir, kill_at=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "OPENAI_"))}
    env["WORKBENCH_CACHE_DIR"] = str(cache_dir)
    if kill_at:
        env["WORKBENCH_TEST_KILL_AT"] = kill_at
    return env


def paid_requests(server, since=0):
    """Chat requests the server answered for training (the endpoint probe is not a run's call; a request
    the kill cut in the middle of its body never reached the model)."""
    return sum(1 for body in server.requests[since:]
               if body.get("messages") and body["messages"][-1].get("content") != PROBE_USER)


def counted_calls(summary):
    return sum(u["calls"] for u in summary["usage"].values())


def outcome(summary):
    return {k: summary[k] for k in ("status", "steps", "baseline", "final", "best_val", "best_step", "parameters")}


def comparable(state):
    """A checkpoint without what differs between processes (wall time, latency, cache hits of a replay)."""
    return {k: v for k, v in state.items() if k not in ("written", "usage")}


def events_of(folder, kind):
    """The readable events of a type (a line a kill tore is skipped, as every reader skips it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedFileWarning)
        return [e.to_dict() for e in RunStore(folder).events() if e.type == kind]


def rows(frame, drop=("seconds", "time")):
    """A DataFrame as a sorted list of rows, without wall-clock columns."""
    kept = frame[[c for c in frame.columns if c not in drop]]
    return sorted(json.dumps(r, sort_keys=True, default=str) for r in kept.to_dict("records"))


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """One test server and the uninterrupted reference runs (with and without a call budget)."""
    root = tmp_path_factory.mktemp("kill")
    with OpenAITestServer(responder=cli_task.respond, latency_s=0.01) as server:
        for name, extra in (("reference", []), ("reference-budget", ["--max-calls", 40])):
            before = len(server.requests)
            done = subprocess.run(command("train", *SETTINGS, *extra, "--base-url", server.base_url, "--run-dir", name,
                                          "--quiet"), cwd=root, env=environment(root / f"cache-{name}"),
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            summary = RunStore(root / name).summary()
            assert counted_calls(summary) == paid_requests(server, before)  # uninterrupted: every call counted
        yield root, server


def kill_and_resume(bench, name, *, kill_at=None, kill_when=None, extra=()):
    """Run until killed (by WORKBENCH_TEST_KILL_AT, or from outside once `kill_when(folder)` holds),
    then resume to the end. Returns (folder, requests the server answered for the run, stderr of the resume)."""
    root, server = bench
    folder, before = root / name, len(server.requests)
    victim = subprocess.Popen(command("train", *SETTINGS, *extra, "--base-url", server.base_url, "--run-dir", name,
                                      "--quiet"), cwd=root, env=environment(root / f"cache-{name}", kill_at),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if kill_when is not None:
        deadline = time.monotonic() + 60
        while not kill_when(folder):
            assert victim.poll() is None, f"ended before the kill: {victim.stderr.read()}"
            assert time.monotonic() < deadline
            time.sleep(0.002)
        victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=60)
    err = victim.stderr.read()
    victim.stderr.close()
    assert victim.returncode == -signal.SIGKILL, err
    assert RunStore(folder).summary() is None, "killed too late: the run had already finished"
    resumed = subprocess.run(command("train", "--resume", name, "--base-url", server.base_url), cwd=root,
                             env=environment(root / f"cache-{name}"), capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr
    return folder, paid_requests(server, before), resumed.stderr


def assert_same_record(folder, reference):
    """The killed-and-resumed run's record is the uninterrupted run's."""
    mine, theirs = RunStore(folder), RunStore(reference)
    assert outcome(mine.summary()) == outcome(theirs.summary())
    assert [p.name for p in mine.checkpoints()] == [p.name for p in theirs.checkpoints()]
    for a, b in zip(mine.checkpoints(), theirs.checkpoints()):
        assert comparable(json.loads(a.read_text())) == comparable(json.loads(b.read_text())), a.name
    steps = mine.summary()["steps"]
    # every step logged as finished once, every checkpoint written has its event, once
    assert Counter(e["step"] for e in events_of(folder, "step_finished")) == Counter(range(1, steps + 1))
    assert Counter(e["step"] for e in events_of(folder, "checkpoint")) == Counter(range(0, steps + 1))
    run, ref = open_run(folder), open_run(reference)
    assert rows(run.curve) == rows(ref.curve)
    assert rows(run.proposals) == rows(ref.proposals)
    assert rows(run.samples) == rows(ref.samples)
    final = run.samples[run.samples.phase == "final"]
    if mine.summary()["final"]["test"] is not None:  # one row per test sample, and their mean is the test score
        assert sorted(final.sample_id) == sorted(json.loads((folder / "config.json").read_text())["splits"]["test"])
        assert final.score.mean() == pytest.approx(mine.summary()["final"]["test"])
    # usage never goes backwards from one logged step to the next
    calls = [sum(u["calls"] for u in e["data"]["usage"].values()) for e in events_of(folder, "step_finished")]
    assert calls == sorted(calls)


# (kill point, calls that can be in flight there): narrow points inside the writes of a step's end,
# a torn event line, an event in the middle of a step, and the final test
POINTS = [
    ("checkpoint.step_file@3", 0),  # step 2's file written, latest.json not
    ("checkpoint.files@3", 0),  # step 2's checkpoint written, neither step_finished nor checkpoint logged
    ("mid_event:step_finished@1", 0),  # half of step 1's step_finished line written
    ("mid_event:forward@30", CONCURRENCY),  # a torn line in the middle of a step, calls in flight
    ("after_event:gradient@3", CONCURRENCY),  # during backward
]


@pytest.mark.parametrize("kill_at,in_flight", POINTS, ids=[p for p, _ in POINTS])
def test_a_kill_at_a_narrow_point_resumes_to_the_uninterrupted_record(bench, kill_at, in_flight):
    name = "run-" + kill_at.replace(":", "-").replace("@", "-")
    folder, served, _ = kill_and_resume(bench, name, kill_at=kill_at)
    assert_same_record(folder, bench[0] / "reference")
    counted = counted_calls(RunStore(folder).summary())
    assert served - in_flight <= counted <= served  # every paid call counted, but the ones in flight at the kill


def test_a_kill_during_the_final_test_leaves_one_row_per_test_sample(bench):
    reference = [e["data"]["phase"] for e in events_of(bench[0] / "reference", "forward")]
    third_final = [i for i, phase in enumerate(reference) if phase == "final"][2] + 1
    folder, served, _ = kill_and_resume(bench, "run-final", kill_at=f"after_event:forward@{third_final}")
    assert_same_record(folder, bench[0] / "reference")
    assert served - CONCURRENCY <= counted_calls(RunStore(folder).summary()) <= served


@pytest.mark.parametrize("seed", [1])
def test_a_kill_from_outside_at_a_random_moment(bench, seed):
    lines = len((bench[0] / "reference" / "events.jsonl").read_text().splitlines())
    at = 20 + (seed * 7919) % (lines - 40)  # somewhere in the steps

    def logged_enough(folder):
        log = folder / "events.jsonl"
        return log.exists() and log.read_bytes().count(b"\n") >= at
    folder, served, _ = kill_and_resume(bench, f"run-random-{seed}", kill_when=logged_enough)
    assert_same_record(folder, bench[0] / "reference")
    assert served - CONCURRENCY <= counted_calls(RunStore(folder).summary()) <= served


def test_a_budget_is_a_limit_across_kills(bench):
    """--max-calls 40: the uninterrupted run sends 40; killed and resumed, the run sends at most 40 plus the
    calls in flight at the kill, and counts every one it was answered."""
    root, _ = bench
    folder, served, _ = kill_and_resume(bench, "run-budget", kill_at="checkpoint.files@2", extra=["--max-calls", 40])
    reference = RunStore(root / "reference-budget").summary()
    summary = RunStore(folder).summary()
    assert reference["status"] == summary["status"] == "budget"
    assert counted_calls(reference) == 40
    assert served == counted_calls(summary) <= 40  # killed between writes: nothing in flight, nothing lost
    assert outcome(summary) == outcome(reference)

    folder, served, _ = kill_and_resume(bench, "run-budget-mid", kill_at="after_event:forward@30",
                                        extra=["--max-calls", 40])
    summary = RunStore(folder).summary()
    assert summary["status"] == "budget"
    assert served <= 40 + CONCURRENCY and served - CONCURRENCY <= counted_calls(summary) <= min(served, 40)


def test_a_kill_after_config_json_leaves_a_folder_that_starts_again(bench):
    root, server = bench
    victim = subprocess.run(command("train", *SETTINGS, "--base-url", server.base_url, "--run-dir", "run-config",
                                    "--quiet"), cwd=root, env=environment(root / "cache-config", "run.config"),
                            capture_output=True, text=True, timeout=60)
    assert victim.returncode == -signal.SIGKILL
    assert (root / "run-config" / "config.json").is_file() and not (root / "run-config" / "cli.json").exists()
    listing = subprocess.run(command("runs", "--runs-dir", "."), cwd=root, env=environment(root / "cache-config"),
                             capture_output=True, text=True, timeout=60)
    line = next(line for line in listing.stdout.splitlines() if line.startswith("run-config"))
    assert "incomplete start" in line and "damaged" not in line and "same flags and --run-dir" in line
    refused = subprocess.run(command("train", "--resume", "run-config"), cwd=root, capture_output=True, text=True,
                             env=environment(root / "cache-config"), timeout=60)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "start it again with the same flags and --run-dir run-config" in refused.stderr
    again = subprocess.run(command("train", *SETTINGS, "--base-url", server.base_url, "--run-dir", "run-config",
                                   "--quiet"), cwd=root, env=environment(root / "cache-config"),
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert_same_record(root / "run-config", root / "reference")


def test_the_mlflow_mirror_logs_each_step_once_and_counts_never_go_backwards(bench):
    mlflow = pytest.importorskip("mlflow")
    root, _ = bench
    folder, _, _ = kill_and_resume(bench, "run-mlflow", kill_at="after_event:step_finished@2",
                                   extra=["--mlflow", root / "mlruns"])
    assert_same_record(folder, root / "reference")
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
    (found,) = client.search_runs([client.get_experiment_by_name("workbench").experiment_id])
    for key in ("val_score", "best_val", "accepted", "calls.task", "minibatch_score"):
        history = sorted(client.get_metric_history(found.info.run_id, key), key=lambda m: m.timestamp)
        assert [m.step for m in history] == list(range(1, STEPS + 1)), key  # each step once, in order
        if key.startswith("calls."):
            values = [m.value for m in history]
            assert values == sorted(values), key
    val = {m.step: m.value for m in client.get_metric_history(found.info.run_id, "val_score")}
    assert val == {e["step"]: e["data"]["val_score"] for e in events_of(root / "reference", "step_finished")}


def test_an_incomplete_start_with_its_cli_json_is_started_again_by_resume(bench):
    """A kill after config.json and cli.json but before the first event: --resume starts it in place."""
    root, server = bench
    folder = root / "run-cli-only"
    folder.mkdir()
    for name in ("config.json", "cli.json"):
        (folder / name).write_bytes((root / "reference" / name).read_bytes())
    listing = subprocess.run(command("runs", "--runs-dir", "."), cwd=root, env=environment(root / "cache-cli-only"),
                             capture_output=True, text=True, timeout=60)
    line = next(line for line in listing.stdout.splitlines() if line.startswith("run-cli-only"))
    assert "incomplete start" in line and "workbench train --resume run-cli-only" in line
    resumed = subprocess.run(command("train", "--resume", "run-cli-only", "--base-url", server.base_url), cwd=root,
                             env=environment(root / "cache-cli-only"), capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_record(folder, root / "reference")
