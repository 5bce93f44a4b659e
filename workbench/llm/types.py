"""The data the LLM layer returns and the protocol every chat model satisfies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

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
