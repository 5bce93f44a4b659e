"""An OpenAI-compatible HTTP server for tests: real HTTP, scripted replies, latency and failures.

It lets the real ``openai`` SDK path of :class:`~workbench.llm.client.LLMClient` (retries, timeouts,
concurrency, usage accounting) be tested without any model or network::

    with OpenAITestServer(responder=lambda messages: "yes", latency_s=0.1) as server:
        client = LLMClient("test-model", base_url=server.base_url, api_key="x")
        ...
        assert server.request_count == 1
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterable

from workbench.llm.scripted import _message_text, count_words  # the same word-count "tokens" as ScriptedModel

Responder = Callable[[list[dict]], str]


class Failure:
    """One injected failure: an HTTP status with headers and a JSON error body."""

    def __init__(self, status: int, headers: dict | None = None, message: str | None = None) -> None:
        self.status = status
        self.headers = dict(headers or {})
        self.message = message or f"injected failure {status}"

    @classmethod
    def coerce(cls, spec) -> "Failure":
        """Accept a Failure, a status int, ``(status, headers)`` or ``(status, headers, message)``."""
        if isinstance(spec, Failure):
            return spec
        if isinstance(spec, int):
            return cls(spec)
        return cls(*spec)


class OpenAITestServer:
    """A background ThreadingHTTPServer speaking enough of the OpenAI API for the client.

    - ``POST /v1/chat/completions`` answers ``responder(messages)`` after ``latency_s`` seconds, with
      a standard ``usage`` field (tokens = whitespace word counts).
    - ``GET /v1/models`` lists ``model_ids``.
    - ``failures``: statuses (or ``(status, headers[, message])``) returned, in order, for the first
      chat requests; later requests succeed. ``fail_next()`` queues more at any time.

    Counters are thread-safe: ``request_count`` (chat requests received, including failed ones),
    ``served_count``, ``prompt_tokens`` and ``completion_tokens`` (of successful replies only),
    ``max_in_flight`` (most chat requests being handled at once) and ``requests`` (the JSON bodies).
    Each request is handled on its own thread, so latency does not serialise concurrent callers.
    """

    def __init__(
        self,
        responder: Responder | None = None,
        latency_s: float = 0.0,
        failures: Iterable | None = None,
        model_ids: Iterable[str] = ("test-model",),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.responder: Responder = responder or (lambda messages: "ok")
        self.latency_s = latency_s
        self.model_ids = list(model_ids)
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._failures = [Failure.coerce(spec) for spec in (failures or [])]
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.reset_counters()

    # -- counters ---------------------------------------------------------------------------------

    def reset_counters(self) -> None:
        with self._lock:
            self.request_count = 0
            self.served_count = 0
            self.prompt_tokens = 0
            self.completion_tokens = 0
            self.in_flight = 0
            self.max_in_flight = 0
            self.requests: list[dict] = []

    def fail_next(self, *specs) -> None:
        """Queue failures for the next chat requests (same forms as ``failures``)."""
        with self._lock:
            self._failures.extend(Failure.coerce(spec) for spec in specs)

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server is not running")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """What to pass as the OpenAI SDK's ``base_url``: ``http://127.0.0.1:PORT/v1``."""
        return f"http://{self._host}:{self.port}/v1"

    def start(self) -> "OpenAITestServer":
        if self._httpd is not None:
            return self
        handler = _make_handler(self)
        httpd = _Server((self._host, self._port), handler)
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() returns within 50 ms
            name="openai-test-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "OpenAITestServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- request handling (called from handler threads) -------------------------------------------

    def _begin_chat(self, body: dict) -> Failure | None:
        with self._lock:
            self.request_count += 1
            self.requests.append(body)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return self._failures.pop(0) if self._failures else None

    def _end_chat(self, prompt_tokens: int = 0, completion_tokens: int = 0, served: bool = False) -> None:
        with self._lock:
            self.in_flight -= 1
            if served:
                self.served_count += 1
                self.prompt_tokens += prompt_tokens
                self.completion_tokens += completion_tokens

    def _chat_completion(self, body: dict) -> tuple[int, dict, dict]:
        failure = self._begin_chat(body)
        served = False
        prompt_tokens = completion_tokens = 0
        try:
            if self.latency_s:
                time.sleep(self.latency_s)
            if failure is not None:
                error = {"error": {"message": failure.message, "type": "injected", "code": failure.status}}
                return failure.status, failure.headers, error
            messages = body.get("messages") or []
            text = self.responder(messages)
            prompt_tokens = sum(count_words(_message_text(message)) for message in messages)
            completion_tokens = count_words(text)
            served = True
            reply = {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model") or (self.model_ids[0] if self.model_ids else "test-model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
            return 200, {}, reply
        finally:
            self._end_chat(prompt_tokens, completion_tokens, served)

    def _models(self) -> dict:
        return {
            "object": "list",
            "data": [{"id": model_id, "object": "model", "owned_by": "workbench-test"} for model_id in self.model_ids],
        }


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung client must not keep the test process alive
    request_queue_size = 128  # many concurrent callers connect at once


def _make_handler(server: OpenAITestServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # headers and body go out in two writes; without this, Nagle + delayed ACK add ~40 ms a call
        disable_nagle_algorithm = True

        def log_message(self, format, *args) -> None:  # keep test output clean
            pass

        def _send_json(self, status: int, payload: dict, headers: dict | None = None) -> None:
            data = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, str(value))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                self._send_json(200, server._models())
            else:
                self._send_json(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._send_json(404, {"error": {"message": f"no route {self.path}"}})
                return
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError as exc:
                self._send_json(400, {"error": {"message": f"invalid JSON: {exc}"}})
                return
            try:
                status, headers, payload = server._chat_completion(body)
            except Exception as exc:  # a responder bug becomes a 500 the client can report
                status, headers, payload = 500, {}, {"error": {"message": f"responder failed: {exc!r}"}}
            self._send_json(status, payload, headers)

    return Handler
