"""The three chat models a training run uses: task (the pipeline), backward (gradients), optimizer."""

from __future__ import annotations

import json
import logging
import os
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable

from workbench.errors import ConfigError, EndpointUnreachableError, LLMCallError
from workbench.llm.budget import Budget
from workbench.llm.cache import ResponseCache
from workbench.llm.client import LLMClient
from workbench.llm.endpoint import check_base_url, display_url, resolve_api_key
from workbench.llm.embedded_server import LocalServer
from workbench.llm.probe import DROPPED, UNKNOWN, fold_from_env, notice, probe_system_messages
from workbench.llm.scripted import ScriptedModel
from workbench.llm.types import ChatModel
from workbench.llm.usage import UsageMeter
from workbench.redact import redact

log = logging.getLogger(__name__)

ROLES = ("task", "backward", "optimizer")
# Reply caps and timeouts per role. A hosted endpoint answers many requests at once and quickly;
# the optimizer writes whole prompts, so it gets the longest reply. The embedded 270M base model
# on a CPU answers one request at a time and rarely stops by itself: short caps keep a call to
# seconds, and the timeouts cover a busy 2-core machine (the queue wait is not part of them, the
# client-side semaphore holds waiting calls).
ENDPOINT_REPLY_CAPS = {"task": 512, "backward": 512, "optimizer": 1024}
ENDPOINT_TIMEOUTS = {"task": 60.0, "backward": 90.0, "optimizer": 120.0}
EMBEDDED_REPLY_CAPS = {"task": 64, "backward": 96, "optimizer": 96}
EMBEDDED_TIMEOUTS = {"task": 180.0, "backward": 300.0, "optimizer": 300.0}


class _DefaultCache:
    """Sentinel: "use ``ResponseCache.default()``" (``None`` means no cache)."""

    def __repr__(self) -> str:
        return "DEFAULT_CACHE"


DEFAULT_CACHE: Any = _DefaultCache()


def _resolve_cache(cache: Any) -> ResponseCache | None:
    return ResponseCache.default() if cache is DEFAULT_CACHE else cache


def _first_served_model(base_url: str, api_key: str | None, timeout: float = 10.0) -> str:
    """Ask an OpenAI-compatible endpoint which model it serves (for endpoints with one model)."""
    request = urllib.request.Request(display_url(base_url) + "/models")  # urllib cannot take user:pw@ in a URL
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read())
    except urllib.error.HTTPError as exc:  # it answered: a refusal (401: the key) is not "unreachable"
        raise LLMCallError(display_url(base_url), redact(f"GET /models {_refusal(exc.code)}: {_error_text(exc)}"),
                           status=exc.code) from None
    except OSError as exc:
        raise EndpointUnreachableError(display_url(base_url), redact(f"GET /models failed: {exc}")) from None
    except ValueError:
        raise ConfigError(f"{display_url(base_url)}/models did not return JSON; set WORKBENCH_TASK_MODEL") from None
    data = payload.get("data") if isinstance(payload, dict) else None
    first = data[0] if isinstance(data, list) and data else None
    if not isinstance(first, dict) or not first.get("id"):
        raise ConfigError(f"{display_url(base_url)}/models lists no model; set WORKBENCH_TASK_MODEL")
    return str(first["id"])


def _refusal(status: int) -> str:
    return "failed: authentication refused (check the API key)" if status in (401, 403) else "failed"


def _error_text(exc: "urllib.error.HTTPError") -> str:
    """The endpoint's own message (OpenAI's `{"error": {"message": ...}}`), else the HTTP reason."""
    try:
        body = json.loads(exc.read() or b"{}")
        message = body.get("error", {}).get("message") if isinstance(body, dict) else None
    except (OSError, ValueError, AttributeError):
        message = None
    return str(message or exc.reason)


@dataclass
class EndpointChoice:
    """Where the models of a run come from, decided from arguments first, then the environment."""

    base_url: str | None
    task_model: str | None
    backward_model: str | None
    optimizer_model: str | None
    embedded: bool


def choose_endpoint(base_url: str | None = None, model: str | None = None, backward_model: str | None = None,
                    optimizer_model: str | None = None, api_key: str | None = None,
                    api_key_env: str | None = None) -> EndpointChoice:
    """Arguments first, then ``WORKBENCH_BASE_URL`` / ``WORKBENCH_*_MODEL``; no endpoint and no
    hosted model means the embedded model. A model named without an endpoint means OpenAI's API,
    which needs a key (``OPENAI_API_KEY``, ``WORKBENCH_API_KEY`` or ``api_key_env``)."""
    env = os.environ.get
    base_url = base_url or env("WORKBENCH_BASE_URL") or None
    task = model or env("WORKBENCH_TASK_MODEL") or None
    backward = backward_model or env("WORKBENCH_BACKWARD_MODEL") or None
    optimizer = optimizer_model or env("WORKBENCH_OPTIMIZER_MODEL") or None
    if base_url:
        check_base_url(base_url)
        return EndpointChoice(base_url, task, backward, optimizer, embedded=False)
    if task:
        if not resolve_api_key(None, api_key, api_key_env):
            raise ConfigError(f"model {task!r} without a base URL means the OpenAI API, which needs a key: "
                              f"set OPENAI_API_KEY (or WORKBENCH_API_KEY, or name the variable with --api-key-env)")
        return EndpointChoice(None, task, backward, optimizer, embedded=False)
    if backward_model or optimizer_model or api_key_env:
        raise ConfigError("model settings need an endpoint: pass a base URL (--base-url / WORKBENCH_BASE_URL) "
                          "or a task model for the OpenAI API (--model / WORKBENCH_TASK_MODEL)")
    return EndpointChoice(None, None, backward, optimizer, embedded=True)


def uses_embedded_model(base_url: str | None = None, model: str | None = None, **endpoint: str | None) -> bool:
    """True when :meth:`Models.from_env` with these arguments would start the embedded model."""
    try:
        return choose_endpoint(base_url, model, **endpoint).embedded
    except ConfigError:
        return False


def _per_role(defaults: dict[str, Any], override: Any, per_role: dict[str, Any] | None) -> dict[str, Any]:
    """Role -> value: one override for every role, else the per-role dict over the defaults."""
    if override is not None:
        return {role: override for role in ROLES}
    return {**defaults, **(per_role or {})}


@dataclass
class Models:
    """The task, backward and optimizer models of a run, sharing one :class:`UsageMeter`.

    ``server`` is the embedded :class:`LocalServer` when the models run on it; :meth:`close`
    stops it (it is also stopped at interpreter exit). ``notices`` holds one ``endpoint_probe``
    event's data per role (whether the endpoint keeps system messages, whether they are folded);
    the trainer emits them on its bus and the CLI prints them. ``concurrency_cap`` is the most
    requests the endpoint can usefully take at once (1 for the embedded server).
    """

    task: ChatModel
    backward: ChatModel
    optimizer: ChatModel
    server: LocalServer | None = field(default=None, repr=False)
    notices: list[dict] = field(default_factory=list, repr=False)
    concurrency_cap: int | None = None

    @property
    def usage(self) -> UsageMeter:
        return self.task.usage

    def by_role(self) -> dict[str, ChatModel]:
        return {"task": self.task, "backward": self.backward, "optimizer": self.optimizer}

    def use_budget(self, budget: Budget | None) -> None:
        """Check ``budget`` before every call of every role (``None`` detaches it).

        :class:`LLMClient` and :class:`ScriptedModel` check it themselves; a model of your own
        should call ``workbench.llm.budget.reserve(self.budget)`` before sending (a warning says
        when one does not declare a ``budget`` attribute, since its calls would go unchecked).
        """
        for role, model in self.by_role().items():
            if budget is not None and not hasattr(model, "budget"):
                log.warning("the %s model %r has no 'budget' attribute: the run's budget cannot stop its calls",
                            role, model)
            model.budget = budget

    def set_concurrency(self, n: int) -> int:
        """Let each role have ``n`` requests in flight (at most ``concurrency_cap``); returns the
        number applied. Roles that shared one limit (the embedded server) keep sharing it."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ConfigError(f"concurrency must be a whole number of at least 1, not {n!r}")
        applied = min(n, self.concurrency_cap) if self.concurrency_cap else n
        clients = [m for m in self.by_role().values() if hasattr(m, "set_concurrency")]
        shared = len({id(getattr(m, "_semaphore", m)) for m in clients}) == 1 and len(clients) > 1
        semaphore = threading.BoundedSemaphore(applied) if shared else None
        for model in clients:
            model.set_concurrency(applied, semaphore=semaphore)
        return applied

    def close(self) -> None:
        """Close HTTP clients and stop the embedded server, if any."""
        for model in self.by_role().values():
            close = getattr(model, "close", None)
            if close is not None:
                close()
        if self.server is not None:
            self.server.stop()

    def __enter__(self) -> "Models":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- constructors -----------------------------------------------------------------------------

    @classmethod
    def from_endpoint(
        cls,
        base_url: str | None,
        task_model: str,
        backward_model: str | None = None,
        optimizer_model: str | None = None,
        api_key: str | None = None,
        cache: Any = DEFAULT_CACHE,
        usage: UsageMeter | None = None,
        *,
        fold_system: bool | None = False,
        max_tokens: int | None = None,
        reply_caps: dict[str, int] | None = None,
        timeout: float | None = None,
        timeouts: dict[str, float] | None = None,
        concurrency: int | None = None,
        **client_kwargs: Any,
    ) -> "Models":
        """Three :class:`LLMClient` on one endpoint; backward/optimizer default to the task model.

        Reply caps and timeouts are per role (:data:`ENDPOINT_REPLY_CAPS`, :data:`ENDPOINT_TIMEOUTS`);
        ``max_tokens`` / ``timeout`` set one value for every role, ``reply_caps`` / ``timeouts``
        override some roles. ``fold_system``: True/False folds or keeps system messages; None probes
        the endpoint once per model (:mod:`workbench.llm.probe`) and folds when they are dropped.
        """
        usage = usage if usage is not None else UsageMeter()
        cache = _resolve_cache(cache)
        if concurrency is not None:
            client_kwargs["max_concurrency"] = concurrency
        caps = _per_role(ENDPOINT_REPLY_CAPS, max_tokens, reply_caps)
        waits = _per_role(ENDPOINT_TIMEOUTS, timeout, timeouts)
        names = {"task": task_model, "backward": backward_model or task_model, "optimizer": optimizer_model or task_model}
        clients = {
            role: LLMClient(name, base_url=base_url, api_key=api_key, role=role, cache=cache, usage=usage,
                            max_tokens=caps[role], timeout=waits[role], fold_system_prompt=bool(fold_system),
                            **client_kwargs)
            for role, name in names.items()
        }
        models = cls(**clients)
        models.apply_fold_system(fold_system)
        return models

    def apply_fold_system(self, fold_system: bool | None, known: str = UNKNOWN) -> None:
        """Set folding on every HTTP client and record one notice per role: explicit (source
        "config", with what is ``known`` about the endpoint) or probed (None)."""
        self.notices = []
        self._fold_policy = (fold_system, known)
        probed: dict[tuple[str, str], str] = {}  # roles on one endpoint and model share one probe, even a failed one
        for role, client in self.by_role().items():
            self._fold(role, client, probed)

    def adopt(self, role: str, client: ChatModel) -> None:
        """Give a model of another role (a run's ``teacher``) the folding policy of these models: probed
        when they were probed, else the same explicit setting; its notice joins :attr:`notices`.
        Without a policy (models not built by :meth:`from_endpoint` / :meth:`local`) nothing changes."""
        if getattr(self, "_fold_policy", None) is None or any(n["role"] == role for n in self.notices):
            return
        self._fold(role, client, {})

    def _fold(self, role: str, client: ChatModel, probed: dict[tuple[str, str], str]) -> None:
        if not isinstance(client, LLMClient):
            return
        fold_system, known = self._fold_policy
        if fold_system is None:
            key = (client.cache_namespace, client.model)
            if key not in probed:
                probed[key] = probe_system_messages(client)  # once per process per endpoint and model
            kept = probed[key]
            client.fold_system_prompt = kept == DROPPED
            self.notices.append(notice(role, client, kept, client.fold_system_prompt, "probe"))
        else:
            client.fold_system_prompt = bool(fold_system)
            self.notices.append(notice(role, client, known, client.fold_system_prompt, "config"))

    @classmethod
    def from_env(
        cls,
        cache: Any = DEFAULT_CACHE,
        *,
        base_url: str | None = None,
        model: str | None = None,
        backward_model: str | None = None,
        optimizer_model: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = None,
        max_tokens: int | None = None,
        fold_system: bool | None = None,
        concurrency: int | None = None,
        embedded: bool = True,
        say: Callable[[str], None] | None = None,
        **client_kwargs: Any,
    ) -> "Models":
        """The one way to resolve a run's models: arguments first, then environment variables, then
        the embedded model.

        - ``base_url`` / ``WORKBENCH_BASE_URL``: an OpenAI-compatible endpoint. Model names come
          from ``model`` / ``WORKBENCH_TASK_MODEL`` (and the backward/optimizer equivalents);
          without one, the first model listed by ``/models`` is used.
        - No base URL but a task model: the OpenAI API (it needs a key).
        - Otherwise the embedded Gemma 3 270M server (:meth:`local`), unless ``embedded=False``.

        The key is ``api_key``, else the variable named by ``api_key_env``, else
        ``WORKBENCH_API_KEY``, else ``OPENAI_API_KEY`` for OpenAI's own endpoint only.
        ``fold_system`` (else ``WORKBENCH_FOLD_SYSTEM=1/0``; unset means probe) decides whether
        system messages are folded into the user turn. ``max_tokens`` caps every role's reply
        (default: per role). ``say`` receives one-line progress messages. ``cache`` defaults to the
        user's shared response cache; pass ``None`` to disable caching.
        """
        choice = choose_endpoint(base_url, model, backward_model, optimizer_model, api_key, api_key_env)
        if fold_system is None:
            fold_system = fold_from_env()
        if choice.embedded:
            if not embedded:
                raise ConfigError("no endpoint configured: set WORKBENCH_BASE_URL (or pass a base URL)")
            if say is not None:
                say("starting the embedded model (Gemma 3 270M on llama.cpp; no endpoint configured)...")
            return cls.local(cache=cache, max_tokens=max_tokens, fold_system=fold_system, **client_kwargs)
        key = resolve_api_key(choice.base_url, api_key, api_key_env)
        task_model = choice.task_model or _first_served_model(choice.base_url, key)
        return cls.from_endpoint(
            choice.base_url, task_model, choice.backward_model, choice.optimizer_model, api_key=key, cache=cache,
            fold_system=fold_system, max_tokens=max_tokens, concurrency=concurrency, **client_kwargs,
        )

    @classmethod
    def local(
        cls,
        server: LocalServer | None = None,
        cache: Any = DEFAULT_CACHE,
        usage: UsageMeter | None = None,
        *,
        fold_system: bool | None = None,
        max_tokens: int | None = None,
        **client_kwargs: Any,
    ) -> "Models":
        """Three clients on the embedded llama.cpp server (started here unless ``server`` is given).

        The server computes one reply at a time, so the three roles share one concurrency slot
        (``concurrency_cap`` 1) and get short per-role reply caps and long timeouts
        (:data:`EMBEDDED_REPLY_CAPS`, :data:`EMBEDDED_TIMEOUTS`). Its ``gemma`` chat format drops
        system messages, so they are folded unless ``fold_system=False``. Cached replies are keyed
        by the model file, not the port, so they survive a restart and never mix with another file's.
        """
        if server is None:
            server = LocalServer()
        if not server.is_running:
            server.start()
        client_kwargs.setdefault("max_concurrency", 1)
        client_kwargs.setdefault("semaphore", threading.BoundedSemaphore(client_kwargs["max_concurrency"]))
        client_kwargs.setdefault("cache_namespace", server.cache_namespace)
        client_kwargs.setdefault("reply_caps", EMBEDDED_REPLY_CAPS)
        client_kwargs.setdefault("timeouts", EMBEDDED_TIMEOUTS)
        models = cls.from_endpoint(server.base_url, server.model, cache=cache, usage=usage, max_tokens=max_tokens,
                                   **client_kwargs)
        models.apply_fold_system(True if fold_system is None else fold_system,
                                 known=DROPPED if server.chat_format == "gemma" else UNKNOWN)
        models.server = server
        models.concurrency_cap = 1
        return models

    @classmethod
    def scripted(
        cls,
        task_fn: Callable[[list[dict]], str],
        backward_fn: Callable[[list[dict]], str] | None = None,
        optimizer_fn: Callable[[list[dict]], str] | None = None,
        usage: UsageMeter | None = None,
    ) -> "Models":
        """In-process :class:`ScriptedModel` for each role (backward/optimizer default to ``task_fn``)."""
        usage = usage if usage is not None else UsageMeter()
        return cls(
            task=ScriptedModel(task_fn, role="task", usage=usage),
            backward=ScriptedModel(backward_fn or task_fn, role="backward", usage=usage),
            optimizer=ScriptedModel(optimizer_fn or task_fn, role="optimizer", usage=usage),
        )
