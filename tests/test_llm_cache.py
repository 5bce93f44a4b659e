"""The response cache answers only the same request to the same endpoint, and only stores what may
be replayed. Real HTTP through the openai SDK to our test server."""
from __future__ import annotations

import sqlite3

import pytest

from workbench.llm import LLMClient, ResponseCache
from workbench.testing import OpenAITestServer

from llm_helpers import user


def client_for(server, cache, **kwargs) -> LLMClient:
    return LLMClient("same-name", base_url=server.base_url, api_key="k", cache=cache, **kwargs)


def test_two_endpoints_serving_the_same_model_name_never_share_answers(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    with OpenAITestServer(responder=lambda m: "from A") as a, OpenAITestServer(responder=lambda m: "from B") as b:
        assert client_for(a, cache).complete(user("q")).text == "from A"
        reply_b = client_for(b, cache).complete(user("q"))
        assert reply_b.text == "from B" and not reply_b.cached
        assert client_for(a, cache).complete(user("q")).cached
        assert (a.request_count, b.request_count) == (1, 1)


def test_the_endpoint_in_the_key_has_no_credentials(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    with OpenAITestServer(responder=lambda m: "x y") as server:
        with_password = server.base_url.replace("http://", "http://user:hunter2-secret@")
        first = LLMClient("m", base_url=with_password, api_key="k", cache=cache)
        assert "hunter2-secret" not in first.cache_namespace and "hunter2-secret" not in first.base_url
        first.complete(user("q"))
        assert client_for(server, cache).cache_namespace == first.cache_namespace


def test_empty_and_length_cut_replies_are_not_stored_unless_asked(tmp_path):
    replies = {"empty": "", "cut": {"content": "a reply that ran out of", "finish_reason": "length"}}
    with OpenAITestServer(responder=lambda m: replies[m[-1]["content"]]) as server:
        cache = ResponseCache(tmp_path / "c.sqlite")
        client = client_for(server, cache)
        assert client.complete(user("empty")).text == ""
        cut = client.complete(user("cut"))
        assert cut.finish_reason == "length" and cut.text == "a reply that ran out of"
        assert len(cache) == 0
        client.complete(user("cut"))
        assert server.request_count == 3  # nothing replayed

        keeping = client_for(server, ResponseCache(tmp_path / "keep.sqlite"), cache_truncated=True)
        keeping.complete(user("cut"))
        again = keeping.complete(user("cut"))
        assert again.cached and again.finish_reason == "length"


def test_sampled_replies_without_a_seed_are_neither_stored_nor_replayed(tmp_path):
    counter = iter(range(1000))
    with OpenAITestServer(responder=lambda m: f"sample {next(counter)}") as server:
        cache = ResponseCache(tmp_path / "c.sqlite")
        client = client_for(server, cache)
        texts = {client.complete(user("q"), temperature=0.9).text for _ in range(3)}
        assert len(texts) == 3 and len(cache) == 0
        seeded = client.complete(user("q"), temperature=0.9, seed=3)
        assert client.complete(user("q"), temperature=0.9, seed=3).text == seeded.text
        assert len(cache) == 1


def test_stop_and_server_specific_settings_reach_the_endpoint_and_the_key(tmp_path):
    with OpenAITestServer(responder=lambda m: "ok go") as server:
        cache = ResponseCache(tmp_path / "c.sqlite")
        client = client_for(server, cache)
        client.complete(user("q"), stop=["\n"], top_k=5)
        sent = server.requests[-1]
        assert sent["stop"] == ["\n"] and sent["top_k"] == 5  # top_k travels in extra_body
        client.complete(user("q"), stop=["###"], top_k=5)  # another stop: another request
        client.complete(user("q"), stop=["\n"], top_k=5)  # the first again: from the cache
        assert server.request_count == 2


def test_lone_surrogates_in_prompt_and_reply_never_lose_the_paid_reply(tmp_path):
    broken = "caf\udce9 au lait"  # what decoding Latin-1 bytes with surrogateescape gives
    with OpenAITestServer(responder=lambda m: "answer \udcff end") as server:
        cache = ResponseCache(tmp_path / "c.sqlite")
        client = client_for(server, cache)
        first = client.complete(user(broken))
        assert first.text  # the caller gets the reply (the server's JSON escapes the surrogate)
        assert server.requests[-1]["messages"][0]["content"] == "caf\ufffd au lait"  # valid UTF-8 on the wire
        again = client.complete(user(broken))
        assert again.cached and again.text == first.text
        assert server.request_count == 1


def test_a_cache_that_cannot_store_still_returns_the_reply(tmp_path):
    with OpenAITestServer(responder=lambda m: "paid for") as server:
        cache = ResponseCache(tmp_path / "c.sqlite")
        client = client_for(server, cache)
        cache.close()  # every cache operation now raises sqlite3.ProgrammingError
        with pytest.raises(sqlite3.ProgrammingError):
            len(cache)
        assert client.complete(user("q")).text == "paid for"
        assert client.usage.total()["calls"] == 1


def test_a_damaged_cache_row_is_a_miss_not_a_crash(tmp_path):
    with OpenAITestServer(responder=lambda m: "fresh") as server:
        cache = ResponseCache(tmp_path / "c.sqlite")
        client = client_for(server, cache)
        client.complete(user("q"))
        cache._db.execute("UPDATE responses SET value = ?", ("{not json",))
        reply = client.complete(user("q"))
        assert reply.text == "fresh" and not reply.cached
        assert client.complete(user("q")).cached  # stored again, readable again
