"""Every exception the workbench package raises.

All of them derive from :class:`WorkbenchError`, so callers can catch the package's failures
without also catching programming errors.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class of every error raised on purpose by workbench."""


class ConfigError(WorkbenchError):
    """Raised when a configuration (env vars, run config, pipeline spec) is invalid or incomplete."""


class EndpointUnreachableError(WorkbenchError):
    """Raised when no connection to an LLM endpoint could be made, even after retries."""

    def __init__(self, url: str, detail: str = "") -> None:
        self.url = url
        self.detail = detail
        message = f"LLM endpoint {url} is unreachable"
        if detail:
            message += f": {detail}"
        super().__init__(message)


class LLMCallError(WorkbenchError):
    """Raised when an LLM call finally fails (after retries) for a reason other than no connection."""

    def __init__(self, url: str, message: str, status: int | None = None) -> None:
        self.url = url
        self.message = message
        self.status = status
        where = f"{url} (HTTP {status})" if status is not None else url
        super().__init__(f"LLM call to {where} failed: {message}")


class LocalModelError(WorkbenchError):
    """Raised when the embedded llama.cpp server cannot be installed, started, or reached."""


class TemplateError(WorkbenchError):
    """Raised when a prompt template is rendered without a variable it references."""

    def __init__(self, variable: str, node: str, detail: str = "") -> None:
        self.variable = variable
        self.node = node
        message = f"template of node '{node}' needs variable '{variable}'"
        message += f" ({detail})" if detail else " but it was not provided"
        super().__init__(message)


class ParseError(WorkbenchError, ValueError):
    """Raised when an LLM reply cannot be parsed into the expected structure; keeps the raw text.

    Also a ValueError (what `json.loads` and `int()` raise), so a pipeline's own `except ValueError`
    around a node with `parser=` catches it, as it would without the parser argument."""

    def __init__(self, raw_text: str, detail: str = "") -> None:
        self.raw = raw_text
        self.detail = detail
        preview = raw_text if len(raw_text) <= 200 else raw_text[:200] + "..."
        super().__init__(f"could not parse LLM output ({detail}): {preview!r}")


class DuplicateParameterError(WorkbenchError):
    """Raised when two trainable parameters of one pipeline share a name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"parameter name '{name}' is used more than once")


class BudgetExceeded(WorkbenchError):
    """Raised when a run would spend more calls or tokens than its configured budget."""


class RunStopped(WorkbenchError):
    """Raised inside a training run when the user (or a policy) asks it to stop."""


class EventContractError(WorkbenchError, ValueError):
    """Raised when an event breaks its definition in workbench/records/events.py (unknown type or field, missing field)."""


class DamagedFileWarning(UserWarning):
    """Warned when a damaged file of a run folder (a torn event line, an unreadable checkpoint) is skipped."""


class BadArgumentError(WorkbenchError, ValueError):
    """Raised when a function or class of the package is called with a value it does not accept.

    Also a ValueError, so `except ValueError` written against older versions keeps working."""


class WrongTypeError(WorkbenchError, TypeError):
    """Raised when a function of the package is given an object of a kind it does not take
    (a folder where a `Run` is read, a type string where a typed event is emitted).

    Also a TypeError, so `except TypeError` keeps working."""


class NotFoundError(WorkbenchError, KeyError):
    """Raised when a name that does not exist (a parameter, a node) is looked up; names it and what exists.

    Also a KeyError, so `except KeyError` keeps working; printed without KeyError's quotes."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class NotDefinedError(ConfigError, NotImplementedError):
    """Raised when a subclass lacks a method the package calls (a Pipeline without `forward`).

    A ConfigError, so a run stops at once with this message instead of failing every sample."""


class DatasetError(WorkbenchError, ValueError):
    """A dataset file is missing or malformed, or a split asks for more examples than exist
    (importable from `workbench.tasks.datasets` too)."""


class FeedbackRefused(BadArgumentError):
    """Raised by `Trainer.feedback` when a person's feedback cannot be used: it would leak a training
    target, names a sample, node or parameter the run does not have, or holds no text. The message
    says which; a `feedback` event with `accepted: false` records it too."""
