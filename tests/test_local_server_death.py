"""The embedded server dying under a run (the out-of-memory killer, a crash) is named in the CLI's
failure lines with the way to go on, not only as "endpoint unreachable". A real process is killed."""
import signal
import subprocess
import sys

from workbench.cli.running import after_failure
from workbench.llm.embedded_server import LocalServer


def test_a_killed_embedded_server_is_named_with_its_signal_and_log(tmp_path):
    server = LocalServer(log_path=tmp_path / "llama.log")
    assert server.exit_note() is None  # never started
    server._process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert server.exit_note() is None  # running
        server._process.send_signal(signal.SIGKILL)
        server._process.wait(timeout=10)
        note = server.exit_note()
    finally:
        server.stop()
    assert "was killed by signal 9 (SIGKILL, often the out-of-memory killer)" in note
    assert str(tmp_path / "llama.log") in note


def test_a_failed_run_says_where_it_is_why_and_how_to_go_on(tmp_path):
    folder = tmp_path / "runs" / "demo run"
    server = LocalServer()
    server._process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    server._process.wait(timeout=10)
    lines = after_failure(folder, server)
    assert lines[0] == f"the run failed; its folder is {folder}"
    assert "exited with code 3" in lines[1]
    assert lines[2] == f"once the cause is fixed, continue with: workbench train --resume '{folder}'"
    assert len(after_failure(folder, None)) == 2  # an endpoint of the user's own: no server note
