"""Calls and tokens a run reports equal what the endpoint served; a cached re-run costs nothing.

Real HTTP through the openai SDK to our OpenAI-compatible test server.
"""
from workbench.llm.cache import ResponseCache
from workbench.llm.models import Models
from workbench.testing import OpenAITestServer
from workbench.training.trainer import TrainConfig, Trainer

from scripted_tasks import TEST, TRAIN, VAL, Optimizer, Shout, route, same_text


def train(server, cache, run_dir):
    models = Models.from_endpoint(server.base_url, "test-model", api_key="sk-test-not-a-secret", cache=cache,
                                  max_concurrency=4, max_retries=1)
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, models,
                      config=TrainConfig(max_steps=2, batch_size=4, concurrency=4), run_dir=run_dir)
    return trainer.fit()


def test_reported_usage_equals_what_the_server_served_and_cache_replays_for_free(tmp_path):
    cache = ResponseCache(tmp_path / "cache.sqlite")
    with OpenAITestServer(responder=route(Optimizer())) as server:
        first = train(server, cache, tmp_path / "run1")
        total = {k: sum(u[k] for u in first.usage.values()) for k in ("calls", "prompt_tokens", "completion_tokens")}
        assert total == {"calls": server.served_count, "prompt_tokens": server.prompt_tokens,
                         "completion_tokens": server.completion_tokens}
        assert set(first.usage) == {"task", "backward", "optimizer"}
        assert first.final == {"val": 1.0, "test": 1.0}

        served_before = server.request_count
        second = train(server, cache, tmp_path / "run2")
        assert server.request_count == served_before  # zero HTTP calls
        assert second.parameters == first.parameters and second.final == first.final
        assert sum(u["calls"] for u in second.usage.values()) == 0
        assert sum(u["cache_hits"] for u in second.usage.values()) == total["calls"]
    # the API key never reaches the run folder
    for path in (tmp_path / "run1").rglob("*"):
        if path.is_file():
            assert "sk-test-not-a-secret" not in path.read_text()
