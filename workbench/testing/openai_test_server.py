"""An OpenAI-compatible HTTP server for tests: real HTTP, scripted replies, latency and failures.

It lets the real ``openai`` SDK path of :class:`~workbench.llm.client.LLMClient` (retries, timeouts,
concurrency, usage accounting) be tested without any model or network::

    with OpenAITestServer(responder=lambda messages: "yes", latency_s=0.1) as server:
        client = LLMClient("test-model", base_url=server.base_url, api_key="x")
        ...
        assert server.request_count == 1

Beyond scripted failures it can misbehave the way real endpoints and proxies do: random faults at
a seeded rate (:class:`FaultPlan`: 429 with Retry-After, 500, 503, slow replies past the client's
timeout, 200 replies with a truncated JSON body, connection resets), dropping system messages
(llama.cpp's ``gemma`` chat format does), and a 401 that echoes the API key it was sent.
"""

from __future__ import annotations

import json
import random
import socket
import struct
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterable

from workbench.errors import BadArgumentError, WorkbenchError
from workbench.llm.scripted import _message_text, count_words  # the same word-count "tokens" as ScriptedModel

Responder = Callable[[list[dict]], "str | dict"]  # a dict: {"content": str, "finish_reason": str}

FAULT_KINDS = ("429", "500", "503", "timeout", "truncated", "reset")


class FaultPlan:
    """Which chat requests misbehave: each one, with probability ``rate``, gets a fault drawn
    uniformly from ``kinds`` (seeded, so a run's faults are reproducible in count and mix).

    - ``"429"``: rate limited, with ``Retry-After: retry_after`` seconds.
    - ``"500"`` / ``"503"``: server errors with a JSON error body.
    - ``"timeout"``: the server sits on the request for ``slow_s`` seconds, then hangs up.
    - ``"truncated"``: a 200 whose JSON body is cut in half (a proxy dropped the rest).
    - ``"reset"``: the connection is reset (TCP RST) without any reply.
    """

    def __init__(self, rate: float = 0.2, kinds: Iterable[str] = FAULT_KINDS, seed: int = 0,
                 retry_after: str = "1", slow_s: float = 2.0) -> None:
        kinds = tuple(kinds)
        unknown = set(kinds) - set(FAULT_KINDS)
        if unknown or not kinds:
            raise BadArgumentError(f"fault kinds must be some of {FAULT_KINDS}, not {sorted(unknown) or kinds}")
        if not 0.0 <= rate <= 1.0:
            raise BadArgumentError(f"fault rate must be in [0, 1], not {rate}")
        self.rate = rate
        self.kinds = kinds
        self.retry_after = retry_after
        self.slow_s = slow_s
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def draw(self) -> str | None:
        """The fault for the next request, or None."""
        with self._lock:
            if self._random.random() >= self.rate:
                return None
            return self._random.choice(self.kinds)

    def failure(self, kind: str) -> "Failure":
        """The HTTP error of an error-status kind."""
        headers = {"Retry-After": self.retry_after} if kind == "429" else {}
        return Failure(int(kind), headers, f"injected {kind}")


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
    - ``faults``: a :class:`FaultPlan` for random faults; ``faults_injected`` counts them by kind.
    - ``drop_system=True``: system messages are discarded before the reply and the token count.
    - ``api_key``: requests must carry this bearer key; others get a 401 whose message echoes the
      key they sent (as some real endpoints do), to test that keys never leak.
    - A responder may return ``{"content": text, "finish_reason": "length"}`` to simulate a cut reply.

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
        faults: FaultPlan | None = None,
        drop_system: bool = False,
        api_key: str | None = None,
    ) -> None:
        self.responder: Responder = responder or (lambda messages: "ok")
        self.latency_s = latency_s
        self.faults = faults
        self.drop_system = drop_system
        self.api_key = api_key
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
            self.faults_injected: dict[str, int] = {}

    def fail_next(self, *specs) -> None:
        """Queue failures for the next chat requests (same forms as ``failures``)."""
        with self._lock:
            self._failures.extend(Failure.coerce(spec) for spec in specs)

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise WorkbenchError("the test server is not running: start() it or use it in a `with` block")
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

    @property
    def faults_total(self) -> int:
        with self._lock:
            return sum(self.faults_injected.values())

    def _begin_chat(self, body: dict) -> "Failure | str | None":
        """Count the request and decide its fate: a queued Failure, a random fault kind, or None."""
        fault = self.faults.draw() if self.faults is not None else None
        with self._lock:
            self.request_count += 1
            self.requests.append(body)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if self._failures:
                return self._failures.pop(0)
            if fault is not None:
                self.faults_injected[fault] = self.faults_injected.get(fault, 0) + 1
            return fault

    def _end_chat(self, prompt_tokens: int = 0, completion_tokens: int = 0, served: bool = False) -> None:
        with self._lock:
            self.in_flight -= 1
            if served:
                self.served_count += 1
                self.prompt_tokens += prompt_tokens
                self.completion_tokens += completion_tokens

    def _chat_completion(self, body: dict, auth: str = "") -> tuple[int, dict, "dict | _SocketFault"]:
        """(status, headers, payload): a dict is sent as JSON; a :class:`_SocketFault` is acted out
        on the connection by the handler."""
        fate = self._begin_chat(body)
        served = False
        prompt_tokens = completion_tokens = 0
        try:
            if self.api_key is not None and auth != f"Bearer {self.api_key}":
                sent = auth.removeprefix("Bearer ")
                return 401, {}, {"error": {"message": f"Incorrect API key provided: {sent}", "code": "invalid_api_key"}}
            if isinstance(fate, str) and fate in ("429", "500", "503"):
                fate = self.faults.failure(fate)
            if isinstance(fate, str) and fate == "timeout":
                time.sleep(self.faults.slow_s)
                return 0, {}, _SocketFault("timeout")
            if isinstance(fate, str) and fate == "reset":
                return 0, {}, _SocketFault("reset")
            if self.latency_s:
                time.sleep(self.latency_s)
            if isinstance(fate, Failure):
                error = {"error": {"message": fate.message, "type": "injected", "code": fate.status}}
                return fate.status, fate.headers, error
            messages = body.get("messages") or []
            if self.drop_system:
                messages = [m for m in messages if m.get("role") != "system"]
            answer = self.responder(messages)
            text, finish_reason = (answer.get("content", ""), answer.get("finish_reason", "stop")) \
                if isinstance(answer, dict) else (answer, "stop")
            prompt_tokens = sum(count_words(_message_text(message)) for message in messages)
            completion_tokens = count_words(text)
            reply = {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model") or (self.model_ids[0] if self.model_ids else "test-model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": finish_reason,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
            if fate == "truncated":  # computed, then cut: the client never gets all of it
                data = json.dumps(reply).encode("utf-8")
                return 200, {}, _SocketFault("truncated", data[: len(data) // 2])
            served = True
            return 200, {}, reply
        finally:
            self._end_chat(prompt_tokens, completion_tokens, served)

    def stats(self) -> dict:
        """The counters as a dict (also served at ``GET /_stats``, for a server in another process)."""
        with self._lock:
            return {"request_count": self.request_count, "served_count": self.served_count,
                    "max_in_flight": self.max_in_flight, "faults_injected": dict(self.faults_injected)}

    def _models(self) -> dict:
        return {
            "object": "list",
            "data": [{"id": model_id, "object": "model", "owned_by": "workbench-test"} for model_id in self.model_ids],
        }


class _SocketFault:
    """A reply the handler must botch: hang up ("timeout"), reset, or send ``body`` cut short."""

    def __init__(self, kind: str, body: bytes = b"") -> None:
        self.kind = kind
        self.body = body


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung client must not keep the test process alive
    request_queue_size = 2048  # hundreds of callers connect at once; a full backlog costs a 1 s SYN retry


def _make_handler(server: OpenAITestServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # headers and body go out in two writes; without this, Nagle + delayed ACK add ~40 ms a call
        disable_nagle_algorithm = True

        def log_message(self, format, *args) -> None:  # keep test output clean
            pass

        def _send_json(self, status: int, payload: dict, headers: dict | None = None) -> None:
            self._send_bytes(status, json.dumps(payload).encode("utf-8"), headers)

        def _send_bytes(self, status: int, data: bytes, headers: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, str(value))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                auth = self.headers.get("Authorization") or ""
                if server.api_key is not None and auth != f"Bearer {server.api_key}":  # as real endpoints do
                    sent = auth.removeprefix("Bearer ")
                    self._send_json(401, {"error": {"message": f"Incorrect API key provided: {sent}",
                                                    "code": "invalid_api_key"}})
                    return
                self._send_json(200, server._models())
            elif self.path.rstrip("/") == "/_stats":
                self._send_json(200, server.stats())
            else:
                self._send_json(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self.path.rstrip("/") == "/_reset":
                server.reset_counters()
                self._send_json(200, server.stats())
                return
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._send_json(404, {"error": {"message": f"no route {self.path}"}})
                return
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError as exc:
                self._send_json(400, {"error": {"message": f"invalid JSON: {exc}"}})
                return
            try:
                status, headers, payload = server._chat_completion(body, self.headers.get("Authorization") or "")
            except Exception as exc:  # a responder bug becomes a 500 the client can report
                status, headers, payload = 500, {}, {"error": {"message": f"responder failed: {exc!r}"}}
            if isinstance(payload, _SocketFault) and payload.kind == "truncated":
                self._send_bytes(200, payload.body)  # Content-Length matches: the JSON itself is cut
            elif isinstance(payload, _SocketFault):
                self._hang_up(reset=payload.kind == "reset")
            else:
                self._send_json(status, payload, headers)

        def _hang_up(self, reset: bool) -> None:
            """Close the connection without a reply; ``reset`` makes the close a TCP RST."""
            self.close_connection = True
            if reset:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                self.connection.shutdown(socket.SHUT_RDWR)

    return Handler

