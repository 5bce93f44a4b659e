"""Test helpers shipped with workbench (usable by the project's tests and by users' own tests)."""

from workbench.testing.openai_server import Failure, OpenAITestServer

__all__ = ["Failure", "OpenAITestServer"]
