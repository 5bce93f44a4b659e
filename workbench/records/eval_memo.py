"""Never pay twice for the same evaluation.

Within a run, the score of one sample under one set of prompt values is computed once, whatever the
response cache does (it may be off, or the model may sample at temperature > 0). The key holds the
values of ALL parameters of the pipeline, the task model's identity, the eval function and the
sample (id, inputs and target), so any change anywhere is a new evaluation. Errored runs (the
endpoint failed) are not remembered: they say nothing about the prompt and should be retried.

The memo appends each new result to `eval_memo.jsonl` in the run folder, one line per evaluation,
so a resumed run does not re-pay for them either. A damaged line (a kill mid-write) is skipped.

Only evaluations whose graphs are used later keep them: training samples are back-propagated from
their graphs, validation and test scores are only compared. So validation and test entries keep the
score and the loss but no nodes (`keep_graph=False`), which is most of a paper-sized run's memo
(HotpotQA's graphs hold ten paragraphs each); a caller that needs a graph never gets a trimmed one.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ..errors import ConfigError
from .blobs import LARGE_TEXT, externalize, internalize
from ..engine.graph import Graph
from ..engine.runner import BatchResult, SampleResult, run_batch

if TYPE_CHECKING:
    from ..engine.example import Example
    from ..llm.types import ChatModel
    from ..engine.pipeline import Pipeline

log = logging.getLogger(__name__)

MEMO_FILE = "eval_memo.jsonl"


def model_identity(model: Any) -> str:
    """What decides a model's replies: endpoint, model name and default sampling settings.

    An in-process model without an endpoint (a ScriptedModel) is identified by the object itself:
    two scripted models with the same name answer differently.
    """
    explicit = getattr(model, "identity", None)
    if isinstance(explicit, str) and explicit:
        return explicit
    base_url = getattr(model, "base_url", None)
    name = getattr(model, "model", "?")
    if base_url:
        return f"{base_url}|{name}|t={getattr(model, 'temperature', None)}|max={getattr(model, 'max_tokens', None)}"
    return f"{type(model).__name__}|{name}|{id(model)}"


def _fn_identity(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}"


def _copy(result: SampleResult, graph: dict) -> SampleResult:
    """A fresh result whose graph is a private copy (backward writes gradients into graphs)."""
    return SampleResult(result.sample_id, dict(result.inputs), result.target, result.prediction, result.score,
                        result.status, Graph.from_dict(graph), result.error, result.seconds)


def _trimmed(graph: dict) -> dict:
    """The graph without its nodes and edges: the loss (score, passed, error) is what a comparison reads."""
    return {"sample_id": graph["sample_id"], "nodes": [], "edges": [], "gradients": [], "loss": graph.get("loss"),
            "disconnected": [], "trimmed": True}


class EvalMemo:
    """Sample results by (all parameter values, model, eval function, sample)."""

    def __init__(self, path: str | Path | None = None, *, also_read: Sequence[str | Path] = ()) -> None:
        """`also_read`: the memos of the other runs of this run's family (records/family.py), read
        once here and never written, so a branch reuses what any run of its tree paid for."""
        self.path = Path(path) if path is not None else None
        self._entries: dict[str, tuple[SampleResult, dict]] = {}  # the result (its graph left out) and the graph
        self._lock = threading.Lock()
        self.hits = 0
        for other in also_read:
            if Path(other).is_file() and Path(other) != self.path:
                self._load(Path(other))
        if self.path is not None and self.path.exists():
            self._load(self.path)

    def key(self, values: Mapping[str, str], model: Any, eval_fn: Callable, example: "Example",
            pass_threshold: float) -> str:
        record = {"values": sorted(values.items()), "model": model_identity(model), "eval": _fn_identity(eval_fn),
                  "pass_threshold": pass_threshold, "sample": example.id,
                  "input": {k: str(v) for k, v in sorted(example.input.items())}, "target": str(example.target)}
        return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()

    def get(self, key: str, *, need_graph: bool = True) -> SampleResult | None:
        """The remembered result, or None; with `need_graph`, an entry kept without its graph is None too."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or (need_graph and entry[1].get("trimmed")):
                return None
            self.hits += 1
        return _copy(*entry)

    def holds(self, key: str) -> bool:
        """Whether an evaluation is remembered (with or without its graph); counts no hit."""
        with self._lock:
            return key in self._entries

    def sample_ids(self) -> set[str]:
        """The samples evaluated under any values: what a forecast's least may count as free."""
        with self._lock:
            return {result.sample_id for result, _ in self._entries.values()}

    def put(self, key: str, result: SampleResult, *, keep_graph: bool = True) -> None:
        if result.status == "errored":
            return
        graph = result.graph.to_dict()
        graph["gradients"] = []  # gradients belong to a step, not to the evaluation
        graph = graph if keep_graph else _trimmed(graph)
        with self._lock:
            old = self._entries.get(key)
            if old is not None and not (old[1].get("trimmed") and keep_graph):
                return  # (a trimmed entry gives way to the same evaluation with its graph)
            self._entries[key] = (dataclasses.replace(result, graph=None), graph)
            if self.path is not None:
                line = {"key": key, "result": {k: v for k, v in result.summary().items()}, "graph": graph}
                text = json.dumps(line)
                if len(text) > LARGE_TEXT:  # a large sample's text is stored once, in blobs/
                    text = json.dumps(externalize(line, self.path.parent))
                with self.path.open("ab+") as f:
                    fresh_line = "\n" if _ends_mid_line(f) else ""  # else the torn line would swallow this one
                    f.write((fresh_line + text + "\n").encode("utf-8"))

    def __len__(self) -> int:
        return len(self._entries)

    def _load(self, path: Path) -> None:
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            try:
                row = internalize(json.loads(line), path.parent)  # a family memo's blobs are in its own folder
                r = row["result"]
                Graph.from_dict(row["graph"])  # it must read back
                result = SampleResult(r["sample_id"], r["inputs"], r["target"], r["prediction"], r["score"],
                                      r["status"], None, r.get("error"), r.get("seconds", 0.0))
                old = self._entries.get(row["key"])
                if old is None or old[1].get("trimmed"):
                    self._entries[row["key"]] = (result, row["graph"])
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("%s line %d skipped (damaged: %s)", path, number, exc)


def _ends_mid_line(f) -> bool:
    """True when the file's last line has no newline (a kill cut it while it was written)."""
    end = f.seek(0, 2)
    if end == 0:
        return False
    f.seek(end - 1)
    return f.read(1) != b"\n"


def check_unique_ids(examples: Sequence["Example"], split: str = "") -> None:
    """Results, the memo and the paired gates are keyed by sample id: a repeated id would silently
    replace another sample's result, so it is refused, naming the ids. So is an example whose input
    is not a dict of the pipeline's keyword inputs (`Example("s1", "the question", ...)`)."""
    where = f"the {split} split" if split else "a split"
    not_fields = next((e for e in examples if not isinstance(e.input, Mapping)), None)
    if not_fields is not None:
        raise ConfigError(f"example {not_fields.id!r} of {where} has the input {not_fields.input!r}: an example's "
                          f"input must be a dict of the keyword inputs of forward(), e.g. {{'question': ...}}")
    repeated = sorted(i for i, n in Counter(e.id for e in examples).items() if n > 1)
    if repeated:
        raise ConfigError(f"sample ids must be unique within a split, but in {where} {repeated[:5]} occur more "
                          f"than once; give each example its own id")


def run_batch_memo(memo: EvalMemo | None, pipeline: "Pipeline", examples: Sequence["Example"], eval_fn: Callable,
                   model: "ChatModel", *, values: Mapping[str, str], pass_threshold: float = 1.0,
                   on_result: Callable[[SampleResult], None] | None = None, keep_graphs: bool = True,
                   **kwargs: Any) -> tuple[BatchResult, int]:
    """`run_batch`, but samples already scored under these exact `values` are not run again.

    Returns the batch (in the examples' order) and how many results were reused. `on_result` sees
    every result, reused or new. `keep_graphs=False` (validation, test): the memo keeps scores and
    losses only, and reused results come without nodes.
    """
    check_unique_ids(examples)
    if memo is None:
        return run_batch(pipeline, examples, eval_fn, model, pass_threshold=pass_threshold,
                         on_result=on_result, **kwargs), 0
    keys = {e.id: memo.key(values, model, eval_fn, e, pass_threshold) for e in examples}
    known = {e.id: r for e in examples if (r := memo.get(keys[e.id], need_graph=keep_graphs)) is not None}
    for r in known.values():
        if on_result:
            on_result(r)
    todo = [e for e in examples if e.id not in known]

    def remember(r: SampleResult) -> None:  # as each result arrives: a budget stop mid-batch keeps what was paid
        memo.put(keys[r.sample_id], r, keep_graph=keep_graphs)
        if on_result:
            on_result(r)

    fresh = run_batch(pipeline, todo, eval_fn, model, pass_threshold=pass_threshold, on_result=remember,
                      **kwargs) if todo else BatchResult([])
    by_id = {**known, **{r.sample_id: r for r in fresh.results}}
    return BatchResult([by_id[e.id] for e in examples if e.id in by_id]), len(known)
