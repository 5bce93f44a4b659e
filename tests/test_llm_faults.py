"""Endpoint faults: every transient kind is retried with backoff, then fails as LLMCallError naming
the URL; never a raw JSONDecodeError. Real HTTP through the openai SDK to our fault-injecting server."""
from __future__ import annotations

import time

import pytest

from workbench.errors import LLMCallError
from workbench.llm import LLMClient
from workbench.testing import FAULT_KINDS, FaultPlan, OpenAITestServer

from llm_helpers import user


def quick_client(server, **kwargs) -> LLMClient:
    kwargs.setdefault("max_retries", 3)
    # a timeout well above a loaded machine's slowest normal reply, so only injected faults are retried
    return LLMClient("test-model", base_url=server.base_url, api_key="k", backoff_initial_s=0.01,
                     backoff_max_s=0.02, timeout=kwargs.pop("timeout", 1.5), **kwargs)


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_each_fault_kind_is_retried_until_the_reply_arrives(kind):
    plan = FaultPlan(rate=0.5, kinds=[kind], seed=2, retry_after="0", slow_s=1.7)
    with OpenAITestServer(responder=lambda m: "answer " + m[-1]["content"], faults=plan) as server:
        client = quick_client(server, max_retries=8)
        texts = [client.complete(user(f"q{i}")).text for i in range(5)]
        assert texts == [f"answer q{i}" for i in range(5)]
        assert server.faults_injected.get(kind, 0) > 0
        assert client.retries == server.faults_total == server.request_count - 5


@pytest.mark.parametrize("kind", ["truncated", "reset", "timeout"])
def test_a_fault_that_persists_ends_in_llm_call_error_naming_the_url(kind):
    plan = FaultPlan(rate=1.0, kinds=[kind], retry_after="0", slow_s=1.7)
    with OpenAITestServer(faults=plan) as server:
        client = quick_client(server, max_retries=1)
        with pytest.raises(LLMCallError) as caught:
            client.complete(user("q"))
        assert server.base_url in str(caught.value) and "2 attempts" in str(caught.value)
        assert server.request_count == 2
        assert client.usage.total()["calls"] == 0


def test_a_truncated_200_body_is_retried_not_a_json_decode_error():
    """The reported bug: a 200 whose JSON a proxy cut short escaped as json.JSONDecodeError."""
    with OpenAITestServer(responder=lambda m: "whole", faults=FaultPlan(rate=1.0, kinds=["truncated"])) as server:
        client = quick_client(server, max_retries=1)
        try:
            client.complete(user("q"))
        except LLMCallError as exc:
            assert "not valid JSON" in str(exc)
        else:
            pytest.fail("a cut body must not pass as a reply")
        server.faults = None
        assert client.complete(user("q")).text == "whole"


def test_a_429_waits_for_the_servers_retry_after():
    plan = FaultPlan(rate=1.0, kinds=["429"], retry_after="1")
    with OpenAITestServer(responder=lambda m: "ok", faults=plan) as server:
        client = quick_client(server, max_retries=1)
        started = time.perf_counter()
        with pytest.raises(LLMCallError, match="HTTP 429"):
            client.complete(user("q"))
        assert time.perf_counter() - started >= 0.95  # one wait of the server's 1 s, not 10 ms of backoff


def test_fault_plans_are_reproducible_from_their_seed():
    def fates(seed):
        plan = FaultPlan(rate=0.3, seed=seed)
        return [plan.draw() for _ in range(200)]
    assert fates(4) == fates(4) and fates(4) != fates(5)
    drawn = [f for f in fates(4) if f]
    assert 40 <= len(drawn) <= 80 and set(drawn) == set(FAULT_KINDS)


def test_fault_plan_refuses_unknown_kinds():
    with pytest.raises(ValueError, match="fault kinds"):
        FaultPlan(kinds=["502"])
