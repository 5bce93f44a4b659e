"""The LLM layer: the ChatModel protocol and its implementations, caching and usage accounting.

See the "LLM layer contract" in docs/ARCHITECTURE.md.
"""

from workbench.llm.budget import Budget
from workbench.llm.cache import ResponseCache
from workbench.llm.client import LLMClient
from workbench.llm.embedded_server import LocalServer, ensure_model_file
from workbench.llm.models import DEFAULT_CACHE, Models, uses_embedded_model
from workbench.llm.scripted import ScriptedModel
from workbench.llm.types import ChatModel, Completion
from workbench.llm.usage import UsageMeter

__all__ = [
    "Budget",
    "ChatModel",
    "Completion",
    "DEFAULT_CACHE",
    "LLMClient",
    "LocalServer",
    "Models",
    "ResponseCache",
    "ScriptedModel",
    "UsageMeter",
    "ensure_model_file",
    "uses_embedded_model",
]
