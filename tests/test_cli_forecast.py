"""`workbench train --dry-run` prints the forecast and makes no request; `--max-cost 1.2x` is a limit
relative to it; every step line says what was spent against it (real subprocesses, HTTP test server)."""
import math
import re

import cli_task
from test_cli import MODULE, workbench

from workbench.testing import OpenAITestServer

ARGS = ("--module", MODULE, "--model", "test-model", "--steps", 2, "--batch-size", 2, "--runs-dir", "runs")


def test_dry_run_prints_the_forecast_sends_no_chat_request_and_keeps_no_run_folder(tmp_path):
    with OpenAITestServer(responder=cli_task.respond) as server:
        proc = workbench("train", *ARGS, "--base-url", server.base_url, "--dry-run", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert server.request_count == 0  # not even the system-message probe
    assert "forecast of 2 step(s) and the baseline: least / expected / most" in proc.stdout
    for role in ("task", "backward", "optimizer"):
        assert re.search(rf"^\s+{role}\s+[\d,]+ / [\d,]+ / [\d,]+ calls", proc.stdout, re.M), proc.stdout
    assert "the endpoint's tokenizer (POST /tokenize)" in proc.stdout
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_max_cost_relative_to_the_forecast_stops_the_run_and_step_lines_show_spent_vs_forecast(tmp_path):
    with OpenAITestServer(responder=cli_task.respond) as server:
        full = workbench("train", *ARGS, "--base-url", server.base_url, "--fold-system", "off", cwd=tmp_path,
                         cache_dir=tmp_path / "c1")
        assert full.returncode == 0, full.stderr
        # against the newest re-estimate: after the baseline at step 1
        step = re.search(r"^step 1/2: .* \((\d+) of ~([\d,]+) forecast calls, re-estimated after baseline\)$",
                         full.stdout, re.M)
        assert step, full.stdout + full.stderr
        first = re.search(r"forecast: ~([\d,]+) calls", full.stderr)
        assert first, full.stderr
        # the last screen: each role's calls against the forecast
        assert re.search(r"^forecast\s+task\s+\d+ calls of [\d.]+ / [\d.]+ / [\d.]+ forecast .* inside the range$",
                         full.stdout, re.M), full.stdout
        assert re.search(r"^\s+optimizer\s+\d+ calls of .* the range$", full.stdout, re.M)
        served = server.served_count
        tight = workbench("train", *ARGS, "--base-url", server.base_url, "--fold-system", "off", "--max-cost", "0.2x",
                          cwd=tmp_path, cache_dir=tmp_path / "c2")
        assert tight.returncode == 0, tight.stderr
        assert "budget" in tight.stderr
        expected = int(first.group(1).replace(",", ""))  # the budget is relative to the fit's first forecast
        # at most 0.2 x the expected calls (the printed expected value is rounded: half a call either way)
        assert 0 < server.served_count - served <= math.ceil((expected + 0.5) * 0.2)
