"""Audit of issue 8.8: a probe that fails is asked once per endpoint and model, not once per role.

A wrong key (401) or a failing endpoint made `Models.from_env` probe three times on one endpoint,
paying for six requests (each with its own retries) and printing the same warning three times.
Real HTTP through the openai SDK to our test server.
"""
from __future__ import annotations

import logging

from workbench.llm import Models
from workbench.testing import OpenAITestServer

from test_llm_probe import fresh  # noqa: F401  (autouse: no endpoint env, probes forgotten)


def test_a_probe_refused_with_a_wrong_key_is_sent_and_reported_once(caplog):
    with OpenAITestServer(responder=lambda m: "ok", api_key="the-right-key-42") as server:
        with caplog.at_level(logging.WARNING, logger="workbench.llm.probe"):
            models = Models.from_env(cache=None, base_url=server.base_url, model="test-model",
                                     api_key="a-wrong-key-1234567", max_retries=0)
        assert server.request_count == 1  # the first probe call failed; the other roles did not ask again
        assert [n["system_messages"] for n in models.notices] == ["unknown"] * 3
        warnings = [r for r in caplog.records if "could not probe" in r.getMessage()]
        assert len(warnings) == 1
        assert "a-wrong-key-1234567" not in warnings[0].getMessage()
        models.close()


def test_a_failed_probe_is_asked_again_by_the_next_models_on_that_endpoint():
    with OpenAITestServer(responder=lambda m: "ok", failures=[500]) as server:
        first = Models.from_env(cache=None, base_url=server.base_url, model="test-model", max_retries=0)
        assert {n["system_messages"] for n in first.notices} == {"unknown"}
        assert server.request_count == 1
        second = Models.from_env(cache=None, base_url=server.base_url, model="test-model", max_retries=0)
        assert {n["system_messages"] for n in second.notices} == {"kept"}
        assert server.request_count == 1 + 2
        first.close()
        second.close()


def test_roles_on_different_models_are_each_probed():
    with OpenAITestServer(responder=lambda m: "ok", drop_system=True) as server:
        models = Models.from_env(cache=None, base_url=server.base_url, model="small", backward_model="big")
        assert server.request_count == 2 + 2
        assert all(m.fold_system_prompt for m in models.by_role().values())
        models.close()
