"""Audit of issues 8.7 and 9: bad use raises a WorkbenchError naming the bad input, damaged files
cost a warning, not the run or a paid-for evaluation.

Each case here escaped before as a plain TypeError / ValueError / sqlite3 error, or was accepted
and failed later, far from the mistake.
"""
from __future__ import annotations

import json
import logging

import pytest

from workbench import LLMCall, Parameter, tool
from workbench.tasks.datasets import Example
from workbench.errors import BadArgumentError, ConfigError, WorkbenchError
from workbench.records.eval_memo import EvalMemo, run_batch_memo
from workbench.engine.graph import Graph
from workbench.llm import Budget, LLMClient
from workbench.llm.cache import ResponseCache
from workbench.llm.scripted import ScriptedModel
from workbench.engine.loss import get_eval_fn
from workbench.engine.prompt import PromptTemplate

from scripted_tasks import TRAIN, Shout, same_text, task


@pytest.mark.parametrize("make, names", [
    (lambda: Parameter("answer.instruction", "Be brief.", role="instructions"), ["'instructions'", "output_format"]),
    (lambda: LLMCall("answer", "{{instruction}} {{q}}", Parameter("answer.instruction", "x")),
     ["'answer'", "list of Parameter"]),
    (lambda: LLMCall("answer", "{{q}}", ["Be brief."]), ["'answer'", "list of Parameter"]),
    (lambda: LLMCall("answer", None), ["'answer'", "NoneType"]),
    (lambda: PromptTemplate(user=None), ["user part", "NoneType"]),
    (lambda: tool("retrieve"), ["'retrieve'"]),
    (lambda: LLMClient(None, base_url="http://127.0.0.1:9/v1", api_key="k"), ["model needs a name", "None"]),
    (lambda: LLMClient("m", base_url="http://127.0.0.1:9/v1", api_key="k", timeout=0), ["timeout", "0"]),
    (lambda: Budget(max_seconds=float("nan")), ["max_seconds", "nan"]),  # would never stop: NaN compares false
    (lambda: Graph.from_dict({"nodes": []}), ["not a graph record", "sample_id"]),
    (lambda: Graph.from_dict({"sample_id": "s", "nodes": [{"id": "a"}], "edges": []}), ["not a graph record"]),
])
def test_bad_use_is_a_workbench_error_naming_the_input(make, names):
    with pytest.raises(WorkbenchError) as caught:
        make()
    for name in names:
        assert name in str(caught.value)


def test_a_generator_of_parameters_is_still_accepted():
    instruction = Parameter("answer.instruction", "Be brief.")
    node = LLMCall("answer", "{{instruction}} {{q}}", (p for p in [instruction]))
    assert node.parameters() == [instruction]


def test_a_graph_record_that_does_not_load_is_also_a_value_error():
    with pytest.raises(ValueError):  # older `except ValueError` around loading keeps working
        Graph.from_dict([])
    assert issubclass(BadArgumentError, ValueError)


# -- the response cache file ----------------------------------------------------------------------

def test_a_cache_file_that_is_not_a_database_is_kept_aside_and_a_new_cache_starts(tmp_path, caplog):
    path = tmp_path / "llm-cache.sqlite"
    path.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 8)  # a torn or foreign file
    with caplog.at_level(logging.WARNING, logger="workbench.llm.cache"):
        cache = ResponseCache(path)
    cache.put("k", {"text": "paid for"})
    assert cache.get("k") == {"text": "paid for"}
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("llm-cache.sqlite.damaged-")]
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"SQLite format 3\x00")  # never deleted
    assert any("damaged" in r.getMessage() and str(aside[0]) in r.getMessage() for r in caplog.records)
    cache.close()


def test_a_cache_path_that_cannot_be_opened_is_a_config_error_naming_it(tmp_path):
    with pytest.raises(ConfigError, match="--no-cache") as caught:
        ResponseCache(tmp_path)  # a folder, not a file
    assert str(tmp_path) in str(caught.value)


# -- the evaluation memo after a kill -------------------------------------------------------------

def test_an_evaluation_after_a_torn_memo_line_is_not_lost(tmp_path):
    path = tmp_path / "eval_memo.jsonl"
    model, eval_fn = ScriptedModel(task), get_eval_fn(same_text)
    run_batch_memo(EvalMemo(path), Shout(), TRAIN[:2], eval_fn, model, values={"shout.instruction": "v"})
    path.write_text(path.read_text()[:-40])  # a kill while the second evaluation was being written
    resumed = EvalMemo(path)
    assert len(resumed) == 1
    _, reused = run_batch_memo(resumed, Shout(), TRAIN[:3], eval_fn, model, values={"shout.instruction": "v"})
    assert reused == 1 and len(model.calls) == 2 + 2  # the torn one and the new one are paid for again
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1])["result"]["sample_id"] == TRAIN[2].id  # on its own line
    assert json.loads(lines[-2])["result"]["sample_id"] == TRAIN[1].id
    again = EvalMemo(path)
    assert len(again) == 3  # nothing paid for after the tear is lost
    _, reused = run_batch_memo(again, Shout(), TRAIN[:3], eval_fn, model, values={"shout.instruction": "v"})
    assert reused == 3 and len(model.calls) == 4


def test_repeated_sample_ids_in_a_split_are_refused_before_a_wrong_mean():
    """Results, the memo and the paired gates are keyed by sample id: two examples sharing one id made
    the mean count one of them twice and the other never (0.0 here instead of 0.5)."""
    repeated = [Example("dup", {"word": "apple"}, "APPLE", {}), Example("dup", {"word": "river"}, "RIVER", {})]
    model = ScriptedModel(lambda messages: "APPLE")
    for memo in (EvalMemo(), None):
        with pytest.raises(ConfigError, match=r"\['dup'\] occur more than once"):
            run_batch_memo(memo, Shout(), repeated, get_eval_fn(same_text), model, values={"shout.instruction": "v"})
    assert model.calls == []
