"""Test helpers shipped with workbench (usable by the project's tests and by users' own tests)."""

from workbench.testing.openai_test_server import FAULT_KINDS, Failure, FaultPlan, OpenAITestServer

__all__ = ["FAULT_KINDS", "Failure", "FaultPlan", "OpenAITestServer"]
