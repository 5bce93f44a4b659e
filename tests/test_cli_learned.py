"""The demo's 'what was learned': each kept change as a diff with the samples it flipped, and the test
before and after, all read from the run's events."""
import io

from workbench.cli.learned import print_learned
from workbench.records.events import Event

from test_cli_last_screen import Folder

OLD = ""
NEW = "Example 1:\nReview: Lovely food.\nAnswer: positive\n\n"


def forward(split, phase, sid, prediction, ok, target="positive", error=None):
    return Event("forward", {"split": split, "phase": phase, "graph": None, "summary": {
        "sample_id": sid, "inputs": {"review": f"review {sid}"}, "target": target, "prediction": prediction,
        "score": 1.0 if ok else 0.0, "status": "ok" if ok else "failed", "error": error, "seconds": 0.1}})


def run(kept: bool):
    no_label = "no sentiment (positive or negative) on the reply's first line"
    events = [forward("val", "baseline", "v1", None, False, error=no_label),
              forward("val", "baseline", "v2", "negative", False),
              forward("val", "baseline", "v3", "positive", True),
              forward("test", "baseline", "t1", None, False, error=no_label),
              forward("test", "baseline", "t2", "positive", True),
              Event("proposal", {"proposal_id": "p1-1", "parameter": "sentiment.demos", "role": "demos", "old": OLD,
                                 "new": NEW, "source": "demos", "gradient_summary": "", "attempt": 1, "group": None},
                    step=1),
              forward("minibatch", "proposal", "m1", "positive", True),
              forward("val", "proposal", "v1", "positive", True),
              forward("val", "proposal", "v2", "positive", True),
              forward("val", "proposal", "v3", "negative" if kept else "positive", not kept),
              Event("validation", {"proposal_id": "p1-1", "score": 0.667, "best": 0.333, "passed": kept,
                                   "complete": True, "left_out": 0}, step=1),
              Event("update", {"proposal_id": "p1-1", "parameter": "sentiment.demos", "accepted": kept,
                               "value": NEW if kept else OLD, "reason": "..."}, step=1)]
    events += [forward("test", "final", "t1", "positive", True), forward("test", "final", "t2", "positive", True)] \
        if kept else [forward("test", "final", "t1", None, False, error=no_label),
                      forward("test", "final", "t2", "positive", True)]
    out = io.StringIO()
    print_learned(Folder(events), out)
    return out.getvalue().splitlines()


def test_a_kept_change_shows_its_diff_the_flipped_samples_and_why_they_failed_before():
    lines = run(kept=True)
    assert lines[1:6] == ["what was learned",
                          "  step 1  p1-1  sentiment.demos: validation 0.333 -> 0.667",
                          "    + 1. Review: Lovely food. Answer: positive",
                          "    answers shown, in order: none -> positive",
                          "    2 of 3 went from wrong to right, 1 from right to wrong"]
    assert "      v1  'review v1'  expected 'positive': '' (unreadable) -> 'positive'" in lines
    assert "      v2  'review v2'  expected 'positive': 'negative' -> 'positive'" in lines
    assert "      v3  'review v3'  expected 'positive': 'positive' -> 'negative'" in lines
    assert "      the 2 fixed (expected: 2 positive) had before: 1 no readable answer, 1 a wrong one" in lines
    assert lines[-1] == ("  test (never seen in training): 0.500 -> 1.000; 1 of 2 went from wrong to right, "
                         "0 from right to wrong")


def test_reordered_demos_read_as_the_examples_now_with_the_added_and_removed_ones_marked():
    from workbench.cli.learned import _demos_diff

    old = "Example 1:\nReview: A\nAnswer: negative\n\nExample 2:\nReview: B\nAnswer: positive\n\n"
    new = "Example 1:\nReview: C\nAnswer: positive\n\nExample 2:\nReview: A\nAnswer: negative\n\n"
    assert _demos_diff(old, new) == ["+ 1. Review: C Answer: positive", "  2. Review: A Answer: negative",
                                     "- Review: B Answer: positive",
                                     "answers shown, in order: negative, positive -> positive, negative"]


def test_a_text_parameter_reads_as_a_line_diff():
    from workbench.cli.learned import _diff

    assert _diff("Count.\nBe brief.", "Count each item.\nBe brief.") == ["- Count.", "+ Count each item."]


def test_a_run_that_kept_nothing_says_so():
    lines = run(kept=False)
    assert lines[1:3] == ["what was learned",
                          "  nothing: no change was kept, so the prompts and the scores are the baseline's"]
    assert lines[-1].startswith("  test (never seen in training): 0.500 -> 0.500; 0 of 2")
