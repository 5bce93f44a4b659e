"""The sentiment pipeline for a small base model: demos become conversation turns, a reply counts
only when it starts with a label, and the task draws stratified splits from the sample reviews."""
import argparse

import pytest

from workbench import run_example
from workbench.cli.commands import DEMO_DEFAULTS, EMBEDDED_DEMO_DEFAULTS, demo_defaults
from workbench.tasks.datasets import Example, load_review_sentiment
from workbench.llm.scripted import ScriptedModel
from workbench.optim.demo_optimizer import Demo, format_demos
from workbench.tasks.pipelines.sentiment import ReviewSentiment, demo_turns, parse_sentiment
from workbench.tasks import get_task

DEMOS = format_demos([Demo("a", (("review", "Cold soup."),), "negative", "raw"),
                      Demo("b", (("review", "Lovely view."),), "positive", "bootstrapped")])


def test_the_demo_optimizers_examples_become_user_and_assistant_turns_before_the_review():
    seen = []
    model = ScriptedModel(lambda messages: seen.append(messages) or "positive")
    r = run_example(ReviewSentiment(demos=DEMOS), Example("r1", {"review": "Kind staff."}, "positive", {}),
                    get_task("sentiment").eval_fn, model)
    assert r.score == 1.0
    assert seen[0] == [{"role": "system", "content": "Label each review positive or negative."},
                       {"role": "user", "content": "Review: Cold soup."}, {"role": "assistant", "content": "negative"},
                       {"role": "user", "content": "Review: Lovely view."}, {"role": "assistant", "content": "positive"},
                       {"role": "user", "content": "Review: Kind staff."}]
    assert model.sampling_calls[0]["stop"] == ["\n"] and model.sampling_calls[0]["max_tokens"] == 1


def test_text_that_is_not_an_example_block_stays_in_the_final_user_turn():
    turns, loose = demo_turns("Reviews about food are tricky.\n\nExample 1:\nReview: Cold soup.\nAnswer: negative")
    assert turns == [{"role": "user", "content": "Review: Cold soup."}, {"role": "assistant", "content": "negative"}]
    assert loose == "Reviews about food are tricky.\n\n"
    assert demo_turns("") == ([], "")


@pytest.mark.parametrize("reply, label", [("negative", "negative"), (" Positive anaknya", "positive"),
                                          ("Answer: negative", "negative")])
def test_a_reply_that_starts_with_a_label_is_read(reply, label):
    assert parse_sentiment(reply) == label


@pytest.mark.parametrize("reply", ["Label each review positive or negative.", "Review: The soup", ""])
def test_a_copy_of_the_prompt_is_not_an_answer(reply):
    with pytest.raises(ValueError, match="does not start with positive or negative"):
        parse_sentiment(reply)


def test_the_sample_reviews_are_balanced_and_the_splits_stratified_and_disjoint():
    examples = load_review_sentiment()
    assert len(examples) == 80 and sum(e.target == "positive" for e in examples) == 40
    train, val, test = get_task("sentiment").load(seed=3)
    assert (len(train), len(val), len(test)) == (16, 16, 24)
    assert sum(e.target == "positive" for e in train) == 8
    assert not {e.id for e in train} & {e.id for e in val + test} and not {e.id for e in val} & {e.id for e in test}


def demo_args(**endpoint):
    return argparse.Namespace(base_url=endpoint.get("base_url"), model=endpoint.get("model"),
                              backward_model=None, optimizer_model=None)


def test_the_demo_trains_sentiment_on_the_embedded_model_and_counting_on_an_endpoint(monkeypatch):
    for name in ("WORKBENCH_BASE_URL", "WORKBENCH_TASK_MODEL", "WORKBENCH_BACKWARD_MODEL", "WORKBENCH_OPTIMIZER_MODEL"):
        monkeypatch.delenv(name, raising=False)
    assert demo_defaults(demo_args()) is EMBEDDED_DEMO_DEFAULTS and EMBEDDED_DEMO_DEFAULTS["task"] == "sentiment"
    assert demo_defaults(demo_args(base_url="http://127.0.0.1:9/v1")) is DEMO_DEFAULTS
    assert DEMO_DEFAULTS["task"] == "counting"
    monkeypatch.setenv("WORKBENCH_BASE_URL", "http://127.0.0.1:9/v1")
    assert demo_defaults(demo_args()) is DEMO_DEFAULTS
