"""The data the LLM layer returns and the protocol every chat model satisfies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from workbench.errors import LLMCallError, WorkbenchError

if TYPE_CHECKING:
    from workbench.llm.usage import UsageMeter


@dataclass
class Completion:
    """One chat completion, with the accounting the trainer and the UI show."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    cached: bool
    latency_s: float
    model: str
    finish_reason: str | None = None  # "stop", "length" (cut by the reply cap), ... when the server says


@runtime_checkable
class ChatModel(Protocol):
    """Anything that turns a list of chat messages into a :class:`Completion`.

    ``LLMClient`` (real HTTP) and ``ScriptedModel`` (in-process) both satisfy it, so pipelines and
    the trainer never care which one they hold.
    """

    role: str  # "task" | "backward" | "optimizer"
    model: str
    usage: "UsageMeter"

    def complete(self, messages: list[dict], **sampling) -> Completion: ...


def ask(model: ChatModel, messages: list[dict], **sampling) -> Completion:
    """``model.complete(messages)``; a model of the user's own that raises anything but a
    WorkbenchError could not answer, like an endpoint after retries: LLMCallError naming it.

    So a failing custom model costs a sample (errored), a gradient or a proposal (skipped), the
    same as a failing endpoint, never a raw exception out of training.
    """
    try:
        return model.complete(messages, **sampling)
    except WorkbenchError:
        raise
    except Exception as exc:
        where = getattr(model, "base_url", None) or f"model {getattr(model, 'model', type(model).__name__)}"
        raise LLMCallError(str(where), f"{type(exc).__name__}: {exc}") from exc


def completion_style_of(model: Any) -> str:
    """"completion" for a base model (it says so with `completion_style` or `is_base_model`), else "chat"."""
    style = getattr(model, "completion_style", None)
    if style in ("chat", "completion"):
        return style
    return "completion" if getattr(model, "is_base_model", False) is True else "chat"
