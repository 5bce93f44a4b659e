"""Audit of the `workbench` command as a demanding new user meets it, in real subprocesses against our
OpenAI-compatible test server over HTTP: runs that end before their baseline is recorded, Ctrl-C, paths
that are files or hold spaces, config files written by other editors, and `workbench runs` pointed at
the wrong folder. Every error is one line, exit code 2, no traceback."""
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from argparse import Namespace
from pathlib import Path

import pytest

from workbench.cli.main import build_parser
from workbench.cli.spec import spec_from_args
from workbench.records.store import RunStore
from workbench.testing import OpenAITestServer

import cli_task

TESTS = Path(__file__).parent
MODULE = f"{TESTS / 'cli_task.py'}:shout_task"


def workbench(*args, cwd, timeout=120, **popen):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "OPENAI_"))}
    env["WORKBENCH_CACHE_DIR"] = str(Path(cwd) / "cache")
    return subprocess.run([sys.executable, "-m", "workbench", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, **popen)


def train_args(server, *more):
    return ("train", "--module", MODULE, "--base-url", server.base_url, "--model", "m", "--fold-system", "off",
            "--quiet", *more)


def one_line_error(proc, *words):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("workbench: error: ")]
    assert len(errors) == 1, proc.stderr
    for word in words:
        assert word in errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def server():
    with OpenAITestServer(responder=cli_task.respond) as s:
        yield s


def test_a_run_out_of_budget_before_its_baseline_still_ends_with_its_last_screen(server, tmp_path):
    proc = workbench(*train_args(server, "--max-calls", 1, "--runs-dir", "runs"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "workbench: error" not in proc.stderr
    assert "status      budget after 0 steps" in proc.stdout
    assert "prompts     none (no checkpoint" in proc.stdout
    assert "--resume" in proc.stderr and "--max-calls" in proc.stderr and "starts again" in proc.stderr
    run_dir = tmp_path / proc.stdout.split("run folder  ", 1)[1].splitlines()[0]
    assert RunStore(run_dir).summary()["status"] == "budget"
    # the suggested command, with a raised limit, starts the run again in the same folder and finishes it
    again = workbench("train", "--resume", run_dir, "--max-calls", 10_000, "--quiet", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "status      completed" in again.stdout and RunStore(run_dir).summary()["status"] == "completed"
    assert json.loads((run_dir / "cli.json").read_text())["config"]["max_calls"] == 10_000  # kept for the next resume


def test_ctrl_c_during_the_baseline_says_the_run_stopped_not_that_export_failed(tmp_path):
    first_call = threading.Event()

    def respond(messages):
        first_call.set()
        time.sleep(0.3)
        return cli_task.respond(messages)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "OPENAI_"))}
    env["WORKBENCH_CACHE_DIR"] = str(tmp_path / "cache")
    with OpenAITestServer(responder=respond) as slow:
        command = [sys.executable, "-m", "workbench", *map(str, train_args(slow, "--concurrency", 1))]
        proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        assert first_call.wait(60)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "workbench: error" not in err and "Traceback" not in err
    assert "status      stopped after 0 steps" in out
    assert "continue with: workbench train --resume" in err and "it ended before its baseline was recorded" in err


@pytest.mark.parametrize("flag", ["--run-dir", "--runs-dir"])
def test_a_run_folder_flag_naming_a_file_is_one_line(server, tmp_path, flag):
    (tmp_path / "notes.txt").write_text("mine")
    proc = workbench(*train_args(server, flag, "notes.txt"), cwd=tmp_path)
    one_line_error(proc, flag, "notes.txt", "is a file")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_export_and_report_to_a_folder_are_one_line(server, tmp_path):
    proc = workbench(*train_args(server, "--steps", 1, "--run-dir", "run"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "out").mkdir()
    one_line_error(workbench("export", "run", "-o", "out", "--format", "json", cwd=tmp_path), "out is a folder")
    one_line_error(workbench("report", "run", "-o", "out", cwd=tmp_path), "out is a folder")


def test_suggested_commands_survive_a_run_folder_with_spaces(server, tmp_path):
    """`next workbench report PATH` and `continue with: workbench train --resume PATH` are pasted into a shell."""
    run_dir = tmp_path / "my runs" / "ü run 1"
    proc = workbench(*train_args(server, "--steps", 3, "--batch-size", 2, "--max-calls", 30, "--run-dir", run_dir),
                     cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "status      budget" in proc.stdout
    report_line = next(line for line in proc.stdout.splitlines() if line.startswith("next        workbench report"))
    assert shlex.split(report_line)[3] == str(run_dir)
    resume_line = next(line for line in proc.stderr.splitlines() if "continue with:" in line)
    command = shlex.split(resume_line.split("continue with:", 1)[1])
    assert command[:3] == ["workbench", "train", "--resume"] and command[3] == str(run_dir)
    resumed = workbench(*command[1:], "--quiet", cwd=tmp_path)  # and it works as printed
    assert resumed.returncode == 0, resumed.stderr


def test_resuming_a_finished_run_names_its_prompt_files(server, tmp_path):
    proc = workbench(*train_args(server, "--steps", 1, "--run-dir", "run"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    again = workbench("train", "--resume", "run", cwd=tmp_path)
    assert again.returncode == 0 and "already finished" in again.stderr
    assert "prompts     run/prompts.json, run/prompts.md" in again.stdout


def test_resume_of_a_missing_folder_or_a_file_says_so(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    one_line_error(workbench("train", "--resume", "nowhere", cwd=tmp_path), "nowhere", "no such folder")
    one_line_error(workbench("train", "--resume", "notes.txt", cwd=tmp_path), "notes.txt", "a file")


def spec_of(tmp_path, name, content: bytes):
    path = tmp_path / name
    path.write_bytes(content)
    args = build_parser().parse_args(["train", "--module", MODULE, "--config", str(path)])
    return spec_from_args(args, {})


def test_a_json_config_saved_with_a_byte_order_mark_is_read(tmp_path):
    spec = spec_of(tmp_path, "settings.json", "\ufeff".encode() + json.dumps({"max_steps": 3}).encode())
    assert spec.config["max_steps"] == 3


def test_config_keys_may_be_spelled_as_their_flags(tmp_path):
    spec = spec_of(tmp_path, "settings.yaml", b"steps: 3\nbatch-size: 2\nmax-reply-tokens: 40\n")
    assert (spec.config["max_steps"], spec.config["batch_size"], spec.reply_limit) == (3, 2, 40)


@pytest.mark.parametrize("name, content", [
    ("settings.yaml", b"max_steps: 1\nbatch_size: 2\nmax_steps: 9\n"),
    ("settings.json", b'{"max_steps": 1, "max_steps": 9}'),
    ("settings.yaml", b"steps: 1\nmax_steps: 9\n"),
])
def test_a_setting_given_twice_in_a_config_file_is_refused(tmp_path, name, content):
    from workbench.errors import ConfigError
    with pytest.raises(ConfigError, match=f"{name}: max_steps given more than once"):
        spec_of(tmp_path, name, content)


def test_runs_pointed_at_a_file_or_at_a_run_folder_is_one_line(server, tmp_path):
    proc = workbench(*train_args(server, "--steps", 1, "--run-dir", "runs/one"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "notes.txt").write_text("x")
    one_line_error(workbench("runs", "--runs-dir", "notes.txt", cwd=tmp_path), "notes.txt", "is a file")
    line = one_line_error(workbench("runs", "--runs-dir", "runs/one", cwd=tmp_path), "is a run folder")
    assert line.endswith("workbench runs --runs-dir runs")
    listed = workbench("runs", "--runs-dir", "runs", cwd=tmp_path)
    assert listed.returncode == 0 and "\none " in listed.stdout


@pytest.mark.parametrize("args, words", [
    (["train", "--steps", "abc"], ["--steps", "'abc'"]),
    (["train", "--optimize", "best"], ["--optimize", "'best'", "'joint'"]),
    (["trian"], ["'trian'", "train"]),
    (["export"], ["RUN_DIR"]),
])
def test_a_mistyped_command_line_is_one_line_too(tmp_path, args, words):
    """argparse's own errors follow the rule every other error does: one line, exit code 2, no usage dump."""
    proc = workbench(*args, cwd=tmp_path)
    line = one_line_error(proc, *words)
    assert proc.stderr.strip() == line and "--help" in line


def test_resume_refuses_a_run_folder_flag_it_would_ignore(server, tmp_path):
    proc = workbench(*train_args(server, "--steps", 1, "--run-dir", "run"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    one_line_error(workbench("train", "--resume", "run", "--run-dir", "elsewhere", cwd=tmp_path), "--run-dir")
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("code, where", [
    ("import sys\nsys.exit(3)\n", "importing"),  # a script run as a module: its top level exits
    ("import sys\ndef factory():\n    sys.exit('bye')\n", "factory()"),
])
def test_a_module_that_exits_is_one_line_naming_it_not_a_silent_exit(tmp_path, code, where):
    (tmp_path / "my script.py").write_text(code)
    proc = workbench("train", "--module", "my script.py:factory", "--base-url", "http://127.0.0.1:9/v1",
                     cwd=tmp_path)
    one_line_error(proc, "my script.py", where, "sys.exit")
