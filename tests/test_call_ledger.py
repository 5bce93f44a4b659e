"""The ledger of paid calls (calls.jsonl): what a resume counts when a kill fell after the last checkpoint."""
import json

from workbench.llm.usage import UsageMeter
from workbench.records.call_ledger import LEDGER_FILE, ledger_usage, most_of
from workbench.training.paid_calls import keep_ledger, usage_paid_before


def test_every_counted_answer_is_in_the_ledger_at_once_and_a_torn_line_costs_only_itself(tmp_path):
    meter, teacher = UsageMeter(), UsageMeter()
    stop = keep_ledger(tmp_path, meter, teacher)
    meter.record_call("task", 10, 2, 0.5)
    meter.record_cache_hit("task")
    meter.record_call("backward", 7, 3, 0.25)
    teacher.record_call("task", 4, 1, 0.1)  # a teacher with its own meter is counted as "teacher"
    assert ledger_usage(tmp_path)["task"]["calls"] == 1  # written when counted, not when the run ends
    with open(tmp_path / LEDGER_FILE, "ab") as f:
        f.write(b'{"role": "task", "kind": "call", "prompt_to')  # a kill in the middle of a line
    stop()
    stop = keep_ledger(tmp_path, meter)  # the resumed process appends on a fresh line
    meter.record_call("task", 1, 1, 0.0)
    stop()
    meter.record_call("task", 100, 100, 1.0)  # after stop(): not the run's
    usage = ledger_usage(tmp_path)
    assert usage["task"] == {"calls": 2, "prompt_tokens": 11, "completion_tokens": 3, "cache_hits": 1,
                             "latency_s": 0.5}
    assert usage["backward"]["calls"] == 1 and usage["teacher"]["calls"] == 1
    lines = (tmp_path / LEDGER_FILE).read_text().splitlines()
    assert len(lines) == 6 and json.loads(lines[-1])["prompt_tokens"] == 1


def test_a_resume_counts_the_ledger_never_less_than_the_checkpoint(tmp_path):
    checkpointed = {"task": {"calls": 5, "prompt_tokens": 50}, "optimizer": {"calls": 1, "prompt_tokens": 9}}
    assert usage_paid_before(tmp_path, checkpointed) == checkpointed  # a folder written before the ledger
    meter = UsageMeter()
    stop = keep_ledger(tmp_path, meter)
    for _ in range(7):
        meter.record_call("task", 10, 1, 0.0)
    stop()
    paid = usage_paid_before(tmp_path, checkpointed)
    assert paid["task"]["calls"] == 7 and paid["task"]["prompt_tokens"] == 70
    assert paid["optimizer"] == {"calls": 1, "prompt_tokens": 9}  # the ledger lacked it: the checkpoint's count
    assert most_of({}, None) == {}
