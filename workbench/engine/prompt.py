"""Prompt templates that keep peer sub-prompts apart.

A template names its parts with `{{name}}`. Parts are either parameters (trainable peers such as
an instruction, an output format and demos) or the node's inputs. Double braces leave ordinary
JSON braces in prompts alone.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import BadArgumentError, TemplateError

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def placeholders(text: str) -> list[str]:
    """Variable names used in `text`, in order of first use."""
    seen: list[str] = []
    for name in PLACEHOLDER.findall(text):
        if name not in seen:
            seen.append(name)
    return seen


def render(text: str, variables: dict[str, object], *, node: str) -> str:
    """Fill `{{name}}` slots; a missing variable names itself and the node."""
    def fill(match: re.Match) -> str:
        name = match.group(1)
        if name not in variables:
            raise TemplateError(name, node)
        return str(variables[name])
    return PLACEHOLDER.sub(fill, text)


@dataclass(frozen=True)
class PromptTemplate:
    """A system part and a user part, each with `{{slots}}`."""

    user: str
    system: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.user, str) or not (self.system is None or isinstance(self.system, str)):
            raise BadArgumentError(f"a PromptTemplate's user part must be text and its system part text or "
                                   f"None, got {type(self.user).__name__} and {type(self.system).__name__}")

    def variables(self) -> list[str]:
        names = placeholders(self.system or "")
        return names + [n for n in placeholders(self.user) if n not in names]

    def render(self, variables: dict[str, object], *, node: str) -> list[dict]:
        """Render to chat messages. Checks every slot before rendering anything."""
        for name in self.variables():
            if name not in variables:
                raise TemplateError(name, node)
        messages = []
        if self.system:
            messages.append({"role": "system", "content": render(self.system, variables, node=node)})
        messages.append({"role": "user", "content": render(self.user, variables, node=node)})
        return messages
