"""The `workbench` command in real subprocesses, against our OpenAI-compatible test server over HTTP.

The server runs in this process (a thread); replies come from the deterministic responders in
cli_task.py, so every number the CLI prints can be checked against the run folder it wrote.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.tasks.datasets import make_counting
from workbench.records.export import apply_export, load_export
from workbench.llm.probe import PROBE_USER
from workbench.records.store import RunStore
from workbench.testing import OpenAITestServer

import cli_task

TESTS = Path(__file__).parent
MODULE = f"{TESTS / 'cli_task.py'}:shout_task"
SECRET = "sk-cli-test-secret-9876543210"


def workbench(*args, cwd, cache_dir=None, stdin=None, timeout=120, extra_env=None):
    """Run `python -m workbench ARGS` with a clean model environment and our own response cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "OPENAI_"))}
    env["WORKBENCH_CACHE_DIR"] = str(cache_dir or Path(cwd) / "cache")
    env["CLI_TEST_KEY"] = SECRET
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "workbench", *map(str, args)], cwd=cwd, env=env, input=stdin,
                          capture_output=True, text=True, timeout=timeout)


def report(stdout):
    """The final report's numbers, parsed from the printed text."""
    val = re.search(r"^validation\s+baseline (\S+)\s+final (\S+)\s+\(best at step (\d+)\)", stdout, re.M)
    test = re.search(r"^test\s+baseline (\S+)\s+final (\S+)", stdout, re.M)
    usage = {m[0]: {"calls": int(m[1]), "prompt_tokens": int(m[2]), "completion_tokens": int(m[3]),
                    "cache_hits": int(m[4])}
             for m in re.findall(r"^\s+(task|backward|optimizer|probe)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$", stdout,
                                 re.M)}
    run_dir = re.search(r"^run folder\s+(.+)$", stdout, re.M).group(1)
    return {"val": val.groups(), "test": test.groups(), "usage": usage, "run_dir": run_dir,
            "steps": re.findall(r"^step (\d+)/(\d+): .*$", stdout, re.M)}


def fmt(x):
    return f"{x:.3f}" if x is not None else "n/a"


@pytest.fixture(scope="module")
def shout_run(tmp_path_factory):
    """One `workbench train` run of the shout module, shared by the tests that inspect it."""
    tmp = tmp_path_factory.mktemp("cli")
    with OpenAITestServer(responder=cli_task.respond, latency_s=0.005) as server:
        proc = workbench("train", "--module", MODULE, "--base-url", server.base_url, "--model", "test-model",
                         "--api-key-env", "CLI_TEST_KEY", "--steps", 4, "--batch-size", 2, "--runs-dir", "runs",
                         "--fold-system", "off", cwd=tmp)  # no probe: every call the server counts is the run's
        served = {"calls": server.served_count, "prompt_tokens": server.prompt_tokens,
                  "completion_tokens": server.completion_tokens}
    assert proc.returncode == 0, proc.stderr
    return tmp, proc, served


def test_train_prints_the_numbers_its_run_folder_recorded(shout_run):
    tmp, proc, served = shout_run
    printed = report(proc.stdout)
    store = RunStore(tmp / printed["run_dir"])
    summary = store.summary()
    assert summary["status"] == "completed" and summary["steps"] == 4
    assert printed["val"] == (fmt(summary["baseline"]["val"]), fmt(summary["final"]["val"]), str(summary["best_step"]))
    assert printed["test"] == (fmt(summary["baseline"]["test"]), fmt(summary["final"]["test"]))
    assert printed["val"] == ("0.000", "1.000", "2") and printed["test"] == ("0.000", "1.000")
    # usage: the run folder's numbers, which are what the endpoint served (a fresh cache)
    assert printed["usage"] == {role: {k: summary["usage"][role][k] for k in
                                       ("calls", "prompt_tokens", "completion_tokens", "cache_hits")}
                                for role in ("task", "backward", "optimizer")}
    assert {k: sum(u[k] for u in printed["usage"].values()) for k in served} == served
    # one line per step, from the step_finished events
    finished = [e for e in store.events() if e.type == "step_finished"]
    assert printed["steps"] == [(str(e.step), "4") for e in finished] == [(str(i), "4") for i in range(1, 5)]
    assert "accepted p1-3 | rejected p1-1, p1-2" in proc.stdout and "accepted p2-6" in proc.stdout
    # the progress display went to stderr
    assert "baseline val score 0.000" in proc.stderr and "Traceback" not in proc.stderr
    # exports were written next to the run, and cli.json records how to rebuild it
    assert (store.path / "prompts.json").is_file() and (store.path / "prompts.md").is_file()
    cli = json.loads((store.path / "cli.json").read_text())
    assert cli["module"] == MODULE and cli["key_env"] == "CLI_TEST_KEY" and cli["config"]["max_steps"] == 4


def test_no_api_key_in_any_file_of_the_run_folder(shout_run):
    tmp, proc, _ = shout_run
    files = [p for p in (tmp / "runs").rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"config.json", "cli.json", "events.jsonl", "latest.json", "summary.json",
                                       "prompts.json", "prompts.md", "step-0004.json"}
    for path in files:
        assert SECRET not in path.read_text(encoding="utf-8"), path
    assert SECRET not in proc.stdout + proc.stderr


def test_runs_lists_the_run_with_its_scores(shout_run):
    tmp, proc, _ = shout_run
    run_id = Path(report(proc.stdout)["run_dir"]).name
    listed = workbench("runs", "--runs-dir", "runs", cwd=tmp)
    assert listed.returncode == 0
    header, row = listed.stdout.splitlines()
    assert header.split() == ["run", "task", "status", "steps", "baseline", "best", "val", "test"]
    assert row.split() == [run_id, "shout", "completed", "4", "0.000", "1.000", "1.000"]
    empty = workbench("runs", "--runs-dir", "nowhere", cwd=tmp)
    assert empty.returncode == 0 and "no runs in nowhere" in empty.stdout


def test_export_writes_each_format_and_it_loads_into_a_fresh_pipeline(shout_run):
    tmp, proc, _ = shout_run
    run_dir = tmp / report(proc.stdout)["run_dir"]
    expected = RunStore(run_dir).summary()["parameters"]
    assert expected == {"shout.instruction": "Repeat the word. " + " ".join(f"Rule {i}: use capitals." for i in range(1, 5))}
    for args, path in [((), run_dir / "prompts.json"), (("-o", tmp / "p.yaml"), tmp / "p.yaml"),
                       (("--format", "md"), run_dir / "prompts.md"), (("-o", tmp / "p.txt", "--format", "md"),
                                                                      tmp / "p.txt")]:
        done = workbench("export", run_dir, *args, cwd=tmp)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == str(path)
        fmt_ = "md" if path.suffix == ".txt" else None
        assert load_export(path, fmt_) == expected
        pipeline = cli_task.Shout()
        apply_export(pipeline, path, fmt_)
        assert pipeline.state() == expected
    prov = json.loads((run_dir / "prompts.json").read_text())["parameters"][0]["provenance"]
    assert (prov["step"], prov["source"], prov["validation_score"], prov["approved_by"]) == (2, "optimizer", 1.0,
                                                                                            "policy")


def test_terminal_approval_edit_is_validated_and_recorded_as_a_person(tmp_path):
    edited = "Write the word. Rule 1. Rule 2. Rule 3. Rule 4."
    with OpenAITestServer(responder=cli_task.respond) as server:
        proc = workbench("train", "--module", MODULE, "--base-url", server.base_url, "--model", "test-model",
                         "--steps", 1, "--batch-size", 2, "--approval", "terminal", "--run-dir", "run",
                         cwd=tmp_path, stdin=f"what?\ne\n{edited}\n.\n")
    assert proc.returncode == 0, proc.stderr
    # asked about the first proposal that passed the minibatch gate, shown before the question
    assert "Proposal p1-3 for shout.instruction (minibatch 0.000 -> 0.500)" in proc.stderr
    assert "+++ proposed\nRepeat the word. Rule 1: use capitals. Rule 2: use capitals.\n" in proc.stderr
    # piped answers are echoed after their question, so the transcript reads like a terminal session
    assert "[a]ccept, [r]eject, [e]dit or [f]eedback? what?\n[a]ccept, [r]eject, [e]dit or [f]eedback? e\nType the new value" in proc.stderr
    summary = RunStore(tmp_path / "run").summary()
    assert summary["parameters"]["shout.instruction"] == edited and summary["final"]["val"] == 1.0
    prov = json.loads((tmp_path / "run" / "prompts.json").read_text())["parameters"][0]["provenance"]
    assert (prov["source"], prov["decision"], prov["approved_by"]) == ("human", "edit", "person")
    assert "edited and approved by person" in (tmp_path / "run" / "prompts.md").read_text()


def test_stdin_closing_during_terminal_approval_stops_cleanly_and_can_resume(tmp_path):
    with OpenAITestServer(responder=cli_task.respond) as server:
        proc = workbench("train", "--module", MODULE, "--base-url", server.base_url, "--model", "test-model",
                         "--steps", 1, "--batch-size", 2, "--approval", "terminal", "--run-dir", "run",
                         cwd=tmp_path, stdin="")
        assert proc.returncode == 130
        assert "continue with: workbench train --resume run" in proc.stderr
        assert "[a]ccept, [r]eject, [e]dit or [f]eedback? \n" in proc.stderr  # the next line does not run on after it
        assert RunStore(tmp_path / "run").summary()["status"] == "stopped"
        (tmp_path / "run" / "checkpoints" / "step-0099.json").write_bytes(b"\x00\xff torn")  # a damaged newest one
        resumed = workbench("train", "--resume", "run", "--approval", "auto", "--base-url", server.base_url,
                            cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    warned = [line for line in resumed.stderr.splitlines() if "step-0099.json" in line]
    assert warned and all(line.startswith("workbench: warning: skipped") for line in warned), resumed.stderr
    assert "Traceback" not in resumed.stderr and "warnings.warn" not in resumed.stderr
    assert RunStore(tmp_path / "run").summary()["status"] == "completed"


def counting_responder(train, val, test, seed=0):
    """The counting task's model: right only once a prompt mentions quantities; the optimizer adds that."""
    answers = {e.input["question"]: int(e.target) for e in make_counting(train + val + test, seed)}

    def respond(messages):
        if messages[-1]["content"] == PROBE_USER:
            return "OK"
        text = "\n".join(m["content"] for m in messages)
        system = messages[0]["content"]  # a system message, or one folded into the user turn
        if system.startswith("You are the backward engine"):
            return "Items given with a quantity (two apples) must be counted that many times."
        if system.startswith("You improve one part of a prompt"):
            current = re.search(r"<CURRENT_VALUE>\n(.*?)\n</CURRENT_VALUE>", text, re.S).group(1)
            return f"<PROPOSAL>{current} Add up the quantities.</PROPOSAL>"
        question = re.search(r"Question: (.*)", text).group(1)
        answer = answers[question] if "quantities" in text else answers[question] + 1
        return f"Let me count.\nAnswer: {answer}"
    return respond


def test_demo_on_an_endpoint_trains_the_counting_task(tmp_path):
    with OpenAITestServer(responder=counting_responder(4, 4, 4)) as server:
        refused = workbench("demo", "--base-url", server.base_url, "--train", 4, "--val", 4, "--test", 4,
                            cwd=tmp_path)
        assert refused.returncode == 2 and "pass --yes" in refused.stderr
        proc = workbench("demo", "--base-url", server.base_url, "--train", 4, "--val", 4, "--test", 4, "--steps", 1,
                         "--yes", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    printed = report(proc.stdout)
    summary = RunStore(tmp_path / printed["run_dir"]).summary()
    assert re.search(r"^data\s+counting: 4 train / 4 val / 4 test, seed 0", proc.stdout, re.M)
    assert printed["val"] == ("0.000", "1.000", "1") and printed["test"] == ("0.000", "1.000")
    assert printed["usage"]["task"]["calls"] == summary["usage"]["task"]["calls"] > 0
    assert summary["parameters"]["count.instruction"].endswith("Add up the quantities.")
    assert "test-model" in proc.stderr
    # the demo trains one parameter: the other gets no gradient and keeps its value
    run = RunStore(tmp_path / printed["run_dir"])
    assert json.loads((run.path / "cli.json").read_text())["train_only"] == ["count.instruction"]
    targets = {e.data["target"] for e in run.events() if e.type == "gradient" and e.data["target_kind"] == "parameter"}
    assert targets == {"count.instruction"}
    # the last screen tells what was proposed, what each gate decided, and where to look next
    assert re.search(r"^  step 1  p1-1  count.instruction \(optimizer.*\) proposed:$", proc.stdout, re.M)
    assert "minibatch gate 0.000 -> 1.000 passed" in proc.stdout
    assert "validation gate 1.000 vs best 0.000 passed" in proc.stdout and "KEPT: " in proc.stdout
    assert "verdict     1 of 1 proposals kept" in proc.stdout
    assert f"workbench report {printed['run_dir']} -o report.html" in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["train", "--task", "nosuch"], "unknown task 'nosuch'; available tasks: classification, counting"),
    (["train", "--module", "missing.py:make"], "file not found: missing.py"),
    (["train", "--module", f"{TESTS / 'cli_task.py'}:nothing"], "has no function 'nothing'"),
    (["train", "--task", "counting", "--batch-size", "0"], "batch_size must be at least 1"),
    (["train", "--task", "counting", "--api-key-env", "NOT_SET_ANYWHERE"], "NOT_SET_ANYWHERE"),
    (["train", "--task", "counting", "--base-url", "http://127.0.0.1:9/v1"], "127.0.0.1:9/v1 is unreachable"),
    (["train", "--resume", "nowhere"], "nowhere has no cli.json"),
    (["train"], "train needs --task NAME, --module FILE.py:factory or --resume RUN_DIR"),
    (["export", "nowhere"], "nowhere is not a run folder"),
])
def test_errors_are_one_clear_line_with_exit_code_2(tmp_path, args, message):
    proc = workbench(*args, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("workbench: error: ") and message in lines[-1], proc.stderr
    assert "Traceback" not in proc.stderr


def test_config_file_settings_and_secrets(tmp_path):
    (tmp_path / "bad.yaml").write_text("task: counting\nmax_steps: 2\napi_key: sk-oops\n")
    proc = workbench("train", "--config", "bad.yaml", cwd=tmp_path)
    assert proc.returncode == 2 and "do not put API keys in config files" in proc.stderr
    (tmp_path / "typo.json").write_text(json.dumps({"task": "counting", "max_step": 2}))
    proc = workbench("train", "--config", "typo.json", cwd=tmp_path)
    assert proc.returncode == 2 and "unknown setting 'max_step'" in proc.stderr
    (tmp_path / "good.yaml").write_text(f"module: {MODULE}\nmax_steps: 1\nbatch_size: 2\ntrain: 4\nval: 4\ntest: 4\n")
    with OpenAITestServer(responder=cli_task.respond) as server:
        proc = workbench("train", "--config", "good.yaml", "--base-url", server.base_url, "--model", "test-model",
                         "--batch-size", 4, "--run-dir", "run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    cli = json.loads((tmp_path / "run" / "cli.json").read_text())
    assert cli["config"]["max_steps"] == 1 and cli["config"]["batch_size"] == 4  # the flag beats the file
    assert (cli["train"], cli["val"], cli["test"]) == (4, 4, 4)


def test_resume_refuses_to_change_the_run_and_a_finished_run_is_left_alone(shout_run):
    tmp, proc, _ = shout_run
    run_dir = report(proc.stdout)["run_dir"]
    changed = workbench("train", "--resume", run_dir, "--batch-size", 9, cwd=tmp)
    assert changed.returncode == 2 and "--batch-size cannot change when resuming" in changed.stderr
    again = workbench("train", "--resume", run_dir, cwd=tmp)
    assert again.returncode == 0 and "already finished (completed)" in again.stderr
    took = re.search(r"^status\s+completed after .* in (\S+)$", again.stdout, re.M).group(1)
    assert took != "0.0s"  # the run's own training time, not this command's
    assert report(again.stdout)["val"] == report(proc.stdout)["val"]


def test_python_dash_m_and_the_console_script_agree():
    script = Path(sys.executable).parent / "workbench"
    if not script.exists():
        pytest.skip("the console script is not installed next to this interpreter")
    via_script = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    via_module = subprocess.run([sys.executable, "-m", "workbench", "--help"], capture_output=True, text=True)
    assert via_script.returncode == via_module.returncode == 0
    assert "{demo,train,branch,runs,export,report}" in via_script.stdout == via_module.stdout


def test_progress_is_printed_as_lines_while_the_baseline_runs_without_a_terminal(shout_run):
    tmp, proc, _ = shout_run
    stderr = proc.stderr.splitlines()
    moving = [line for line in stderr if line.startswith("[step 0/4] baseline val: ")]
    assert moving == [f"[step 0/4] baseline val: {i}/8 samples" for i in range(1, 8)]
    assert stderr.index(moving[-1]) < stderr.index("[step 0/4] baseline val score 0.000 on 8 samples")
    assert "\r" not in proc.stderr and "\033[" not in proc.stderr  # no bar drawing into a log


def test_runs_lists_the_others_and_shows_a_damaged_run_as_damaged(shout_run, tmp_path):
    import shutil

    tmp, proc, _ = shout_run
    good = Path(report(proc.stdout)["run_dir"]).name
    shutil.copytree(tmp / "runs" / good, tmp_path / "runs" / good)
    torn = tmp_path / "runs" / "torn-run"
    torn.mkdir()
    (torn / "config.json").write_text('{"task": "sho')
    binary = tmp_path / "runs" / "binary-run"
    shutil.copytree(tmp / "runs" / good, binary)
    (binary / "summary.json").write_bytes(b"\x00\xff\xfe garbage")
    listed = workbench("runs", "--runs-dir", "runs", cwd=tmp_path)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert set(rows) == {good, "torn-run", "binary-run"}
    assert rows[good].split() == [good, "shout", "completed", "4", "0.000", "1.000", "1.000"]
    assert rows["torn-run"].split()[1:3] == ["-", "damaged"]
    assert rows["binary-run"].split()[1:3] == ["-", "damaged"]


def test_a_base_url_with_credentials_is_stored_without_them(tmp_path):
    password = "pw-in-the-url-31337"
    with OpenAITestServer(responder=cli_task.respond) as server:
        clean = server.base_url
        url = clean.replace("http://", f"http://alice:{password}@")
        proc = workbench("train", "--module", MODULE, "--base-url", url, "--model", "test-model",
                         "--api-key-env", "CLI_TEST_KEY", "--steps", 1, "--batch-size", 2, "--run-dir", "run",
                         cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    cli = json.loads((tmp_path / "run" / "cli.json").read_text())
    assert cli["base_url"] == clean and cli["key_env"] == "CLI_TEST_KEY"
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert password not in text and SECRET not in text, path
    assert password not in proc.stdout + proc.stderr and SECRET not in proc.stdout + proc.stderr


def test_report_writes_one_html_page_of_the_run(shout_run):
    pytest.importorskip("workbench.records.report", reason="workbench.records.report (the HTML report) is not in this checkout")
    tmp, proc, _ = shout_run
    run_dir = tmp / report(proc.stdout)["run_dir"]
    done = workbench("report", run_dir, "-o", tmp / "report.html", cwd=tmp)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp / "report.html")
    html = (tmp / "report.html").read_text(encoding="utf-8")
    assert "<html" in html.lower() and "shout.instruction" in html
    missing = workbench("report", tmp / "nowhere", cwd=tmp)
    assert missing.returncode == 2 and "is not a run folder" in missing.stderr


def test_an_endpoint_that_drops_system_messages_is_probed_folded_and_said(tmp_path):
    with OpenAITestServer(responder=cli_task.respond, drop_system=True) as server:
        base_url = server.base_url
        proc = workbench("train", "--module", MODULE, "--base-url", base_url, "--model", "test-model",
                         "--steps", 1, "--batch-size", 2, "--run-dir", "run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    said = [line for line in proc.stderr.splitlines() if "system messages are folded" in line]
    assert said == [f"[step 0/1] test-model at {base_url}: system messages are folded into the user turn "
                    f"(it drops them)"]  # one line for the endpoint, though each role was probed
    probes = [e.data for e in RunStore(tmp_path / "run").events() if e.type == "endpoint_probe"]
    assert [(p["role"], p["system_messages"], p["fold_system"], p["source"]) for p in probes] == [
        (role, "dropped", True, "probe") for role in ("task", "backward", "optimizer")]
    # folded, the trained instruction reached the model: the run learned (a dropped one never could)
    assert RunStore(tmp_path / "run").summary()["final"]["val"] > 0
    assert json.loads((tmp_path / "run" / "cli.json").read_text())["fold_system"] == "auto"


def test_fold_system_off_is_recorded_and_not_probed(tmp_path):
    with OpenAITestServer(responder=cli_task.respond) as server:
        proc = workbench("train", "--module", MODULE, "--base-url", server.base_url, "--model", "test-model",
                         "--steps", 1, "--batch-size", 2, "--run-dir", "run", "--fold-system", "off", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    probes = [e.data for e in RunStore(tmp_path / "run").events() if e.type == "endpoint_probe"]
    assert {(p["fold_system"], p["source"]) for p in probes} == {(False, "config")}
    assert "folded" not in proc.stderr
    assert json.loads((tmp_path / "run" / "cli.json").read_text())["fold_system"] == "off"


def test_a_parameter_cut_off_from_the_loss_is_said_in_one_line(tmp_path):
    """A pipeline that loses the trace of its output (bytes round trip) cannot send feedback back."""
    (tmp_path / "cut.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(TESTS)!r})\n"
        "import cli_task\n"
        "from scripted_tasks import Shout\n"
        "class Cut(Shout):\n"
        "    def forward(self, word):\n"
        "        return self.node(word=word).encode().decode() + ' '  # the eval strips the space\n"
        "def make():\n"
        "    task = cli_task.shout_task()\n"
        "    splits = task.load(4, 4, 0)\n"
        "    return {'name': 'cut', 'pipeline': Cut(), 'train': splits.train, 'val': splits.val, 'test': [],\n"
        "            'eval_fn': task.eval_fn}\n")
    with OpenAITestServer(responder=cli_task.respond) as server:
        proc = workbench("train", "--module", f"{tmp_path / 'cut.py'}:make", "--base-url", server.base_url,
                         "--model", "test-model", "--steps", 1, "--batch-size", 2, "--run-dir", "run",
                         "--fold-system", "off", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    cut = [line for line in proc.stderr.splitlines() if "no feedback can reach" in line]
    assert len(cut) == 1 and cut[0].startswith("[step 1/1] no feedback can reach shout.instruction: its node shout "
                                               "has no path to the loss"), proc.stderr
