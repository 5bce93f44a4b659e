"""What a chat request carries over the wire: the SDK's keyword arguments (the rest in `extra_body`),
valid UTF-8 text, and system messages folded into the user turn for endpoints that drop them."""
from __future__ import annotations

import inspect
import re
from typing import Any

import openai

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _sdk_parameters() -> frozenset[str]:
    """The keyword arguments ``chat.completions.create`` accepts; other sampling settings
    (``top_k``, ``repeat_penalty``, ...) travel in ``extra_body`` as servers like llama.cpp expect."""
    try:
        return frozenset(inspect.signature(openai.OpenAI(api_key="x").chat.completions.create).parameters)
    except (TypeError, ValueError):
        return frozenset({"temperature", "max_tokens", "stop", "seed", "top_p", "n"})


_SDK_PARAMETERS: frozenset[str] | None = None


def request_kwargs(settings: dict) -> dict:
    global _SDK_PARAMETERS
    if _SDK_PARAMETERS is None:
        _SDK_PARAMETERS = _sdk_parameters()
    kwargs = {k: v for k, v in settings.items() if k in _SDK_PARAMETERS}
    extra = {k: v for k, v in settings.items() if k not in _SDK_PARAMETERS}
    if extra:
        kwargs["extra_body"] = {**kwargs.get("extra_body", {}), **extra}
    return kwargs


def wire_safe(messages: list[dict]) -> list[dict]:
    """Messages with lone surrogates replaced by U+FFFD: JSON over HTTP must be valid UTF-8."""
    def clean(value):
        return _LONE_SURROGATE.sub("\ufffd", value) if isinstance(value, str) else value
    return [{k: clean(v) for k, v in m.items()} for m in messages]


def fold_system_messages(messages: list[dict]) -> list[dict]:
    """Prepend the system messages' text to the first user message (as Gemma's own template does).

    llama.cpp's ``gemma`` chat format discards ``role="system"`` messages, which would silently
    drop a pipeline's trained instructions.
    """
    system_texts = [text_of(m.get("content")) for m in messages if m.get("role") == "system"]
    rest = [dict(m) for m in messages if m.get("role") != "system"]
    if not system_texts:
        return rest
    preamble = "\n\n".join(text for text in system_texts if text)
    for message in rest:
        if message.get("role") == "user":
            if not preamble:
                return rest
            content = message.get("content")
            if isinstance(content, list):  # OpenAI content parts (text, images): the preamble is one more part
                message["content"] = [{"type": "text", "text": preamble + "\n\n"}, *content]
            else:
                message["content"] = f"{preamble}\n\n{content or ''}"
            return rest
    return [{"role": "user", "content": preamble}, *rest]


def text_of(content: Any) -> str:
    """The text of a message's content, whether a string or a list of content parts."""
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")
