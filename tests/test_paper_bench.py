"""bench/paper_tasks.py end to end over HTTP (the openai SDK against our test server): the paper's three
tasks on the shared data, repeats over seeds, and the Markdown / CSV tables it writes."""
import csv
import importlib.util
import re
from pathlib import Path

import pytest

from workbench.llm.probe import PROBE_USER
from workbench.testing import OpenAITestServer

from test_datasets import shared  # noqa: F401 (the shared data folder, or a skip)

BENCH = Path(__file__).resolve().parent.parent / "bench" / "paper_tasks.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("paper_tasks", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PROBES = []


def respond(messages):
    """Any role: the optimizer proposes a value; every other call gets a well-formed answer."""
    text = messages[-1]["content"]
    if text == PROBE_USER:  # the endpoint probe when the models are made: not part of any run
        PROBES.append(messages)
        return "OK"
    if "<CURRENT_VALUE>" in text:
        return "<PROPOSAL>Think step by step, then answer with the final number or phrase.</PROPOSAL>"
    if "Reply with the search query only" in " ".join(m["content"] for m in messages):
        return re.search(r"Question: (.*)", text).group(1)
    return "Answer: yes\nThe label is NUM\n8"


def test_bench_runs_the_three_tasks_with_repeats_and_writes_tables(bench, shared, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))
    with OpenAITestServer(responder=respond) as server:
        rows = bench.main(["--small", "--sizes", "4", "4", "4", "--steps", "1", "--repeats", "2",
                           "--base-url", server.base_url, "--model", "bench-model", "--no-cache",
                           "--data", str(shared), "--out", str(tmp_path / "out" / "table")])
        served = server.request_count
    assert [(r["task"], r["seed"]) for r in rows] == [(t, s) for t in ("counting", "classification", "hotpotqa")
                                                      for s in (0, 1)]
    assert all(r["status"] == "completed" and r["split"] == "4/4/4" for r in rows)
    assert sum(r[f"{role}_calls"] for r in rows for role in bench.ROLES) == served - len(PROBES)  # all counted
    assert all(r["other_calls"] == 0 for r in rows)
    assert all(r["task_calls"] > 0 and r["task_tokens"] > 0 for r in rows)
    table = list(csv.DictReader(open(tmp_path / "out" / "table.csv")))
    assert [t["task"] for t in table] == ["counting", "classification", "hotpotqa"]
    assert all(t["repeats"] == "2" for t in table)
    per_run = list(csv.DictReader(open(tmp_path / "out" / "table-runs.csv")))
    assert len(per_run) == 6 and {Path(r["run_dir"]).parent for r in per_run} == {tmp_path / "out" / "table-runs"}
    md = (tmp_path / "out" / "table.md").read_text()
    assert md.startswith("Paper tasks on bench-model") and "seeds 0..1; mean ± sd over runs." in md
    assert md.count("\n| counting | 4/4/4 | 2 (completed) |") == 1 and " ± " in md
    printed = capsys.readouterr().out
    assert "[counting] step 0: baseline val " in printed and "[hotpotqa] step 1 done: minibatch " in printed


def test_aggregate_gives_mean_and_sample_sd(bench):
    rows = [{"task": "t", "split": "1/1/1", "status": "completed", "val_before": 0.0, "val_after": a,
             "test_before": 0.0, "test_after": None, "wall_s": 1.0,
             "other_calls": 0,
             **{f"{r}_{w}": 1 for r in bench.ROLES for w in ("calls", "tokens", "call_s")}} for a in (0.5, 0.7, 0.9)]
    [row] = bench.aggregate(rows)
    assert row["val_after_mean"] == pytest.approx(0.7) and row["val_after_sd"] == pytest.approx(0.2)
    assert row["test_after_mean"] is None  # never a made-up number
    assert "| t | 1/1/1 | 3 (completed) | 0.000 ± 0.000 | 0.700 ± 0.200 | 0.000 ± 0.000 | n/a |" in \
        bench.markdown([row], "h")


def test_protocol_defaults_are_the_papers(bench):
    assert {k: v[2] for k, v in bench.PROTOCOL.items()} == {
        "counting": (50, 100, 100), "classification": (120, 166, 334), "hotpotqa": (100, 100, 200)}
    config, note = bench.train_config(12, 4, 0, 5)
    assert (config.max_steps, config.batch_size, config.max_failed, config.max_correct) == (12, 4, 2, 2)
    assert "5" in note
