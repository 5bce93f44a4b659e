"""The three chat models a training run uses: task (the pipeline), backward (gradients), optimizer."""

from __future__ import annotations

import json
import os
import threading
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable

from workbench.errors import ConfigError, EndpointUnreachableError
from workbench.llm.cache import ResponseCache
from workbench.llm.client import LLMClient
from workbench.llm.local import LocalServer
from workbench.llm.scripted import ScriptedModel
from workbench.llm.types import ChatModel
from workbench.llm.usage import UsageMeter

OPENAI_DEFAULT_MODEL = "gpt-4o-mini"


class _DefaultCache:
    """Sentinel: "use ``ResponseCache.default()``" (``None`` means no cache)."""

    def __repr__(self) -> str:
        return "DEFAULT_CACHE"


DEFAULT_CACHE: Any = _DefaultCache()


def _resolve_cache(cache: Any) -> ResponseCache | None:
    return ResponseCache.default() if cache is DEFAULT_CACHE else cache


def _first_served_model(base_url: str, api_key: str | None, timeout: float = 10.0) -> str:
    """Ask an OpenAI-compatible endpoint which model it serves (for endpoints with one model)."""
    request = urllib.request.Request(base_url.rstrip("/") + "/models")
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = json.loads(response.read()).get("data") or []
    except OSError as exc:
        raise EndpointUnreachableError(base_url, f"GET /models failed: {exc}") from exc
    except ValueError as exc:
        raise ConfigError(f"{base_url}/models did not return JSON; set WORKBENCH_TASK_MODEL") from exc
    if not data:
        raise ConfigError(f"{base_url}/models lists no model; set WORKBENCH_TASK_MODEL")
    return str(data[0]["id"])


@dataclass
class Models:
    """The task, backward and optimizer models of a run, sharing one :class:`UsageMeter`.

    ``server`` is the embedded :class:`LocalServer` when the models run on it; :meth:`close`
    stops it (it is also stopped at interpreter exit).
    """

    task: ChatModel
    backward: ChatModel
    optimizer: ChatModel
    server: LocalServer | None = field(default=None, repr=False)

    @property
    def usage(self) -> UsageMeter:
        return self.task.usage

    def by_role(self) -> dict[str, ChatModel]:
        return {"task": self.task, "backward": self.backward, "optimizer": self.optimizer}

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
        **client_kwargs: Any,
    ) -> "Models":
        """Three :class:`LLMClient` on one endpoint; backward/optimizer default to the task model."""
        usage = usage if usage is not None else UsageMeter()
        cache = _resolve_cache(cache)
        names = {"task": task_model, "backward": backward_model or task_model, "optimizer": optimizer_model or task_model}
        clients = {
            role: LLMClient(name, base_url=base_url, api_key=api_key, role=role, cache=cache, usage=usage, **client_kwargs)
            for role, name in names.items()
        }
        return cls(**clients)

    @classmethod
    def from_env(cls, cache: Any = DEFAULT_CACHE, **client_kwargs: Any) -> "Models":
        """Models configured by environment variables, falling back to the embedded model.

        - ``WORKBENCH_BASE_URL``: an OpenAI-compatible endpoint. Model names come from
          ``WORKBENCH_TASK_MODEL`` / ``WORKBENCH_BACKWARD_MODEL`` / ``WORKBENCH_OPTIMIZER_MODEL``;
          without them the first model listed by ``/models`` is used.
        - No base URL but ``WORKBENCH_TASK_MODEL`` and a key (``WORKBENCH_API_KEY`` or
          ``OPENAI_API_KEY``): the OpenAI API itself.
        - Otherwise: the embedded Gemma 3 270M server (:meth:`local`).

        ``cache`` defaults to the user's shared response cache; pass ``None`` to disable caching.
        """
        base_url = os.environ.get("WORKBENCH_BASE_URL") or None
        api_key = os.environ.get("WORKBENCH_API_KEY") or os.environ.get("OPENAI_API_KEY") or None
        task_model = os.environ.get("WORKBENCH_TASK_MODEL") or None
        backward_model = os.environ.get("WORKBENCH_BACKWARD_MODEL") or None
        optimizer_model = os.environ.get("WORKBENCH_OPTIMIZER_MODEL") or None
        if base_url is None and not (task_model and api_key):
            return cls.local(cache=cache, **client_kwargs)
        if task_model is None:
            task_model = _first_served_model(base_url, api_key) if base_url else OPENAI_DEFAULT_MODEL
        return cls.from_endpoint(
            base_url, task_model, backward_model, optimizer_model, api_key=api_key, cache=cache, **client_kwargs
        )

    @classmethod
    def local(
        cls,
        server: LocalServer | None = None,
        cache: Any = DEFAULT_CACHE,
        usage: UsageMeter | None = None,
        **client_kwargs: Any,
    ) -> "Models":
        """Three clients on the embedded llama.cpp server (started here unless ``server`` is given).

        The server computes one reply at a time, so the three roles share one concurrency slot
        and get a long timeout instead of timing out while queued.
        """
        if server is None:
            server = LocalServer()
        if not server.is_running:
            server.start()
        client_kwargs.setdefault("timeout", 600.0)
        client_kwargs.setdefault("fold_system_prompt", True)  # llama.cpp's gemma format drops system messages
        client_kwargs.setdefault("max_concurrency", 1)
        client_kwargs.setdefault("semaphore", threading.BoundedSemaphore(client_kwargs["max_concurrency"]))
        models = cls.from_endpoint(server.base_url, server.model, cache=cache, usage=usage, **client_kwargs)
        models.server = server
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
